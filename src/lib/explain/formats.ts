/**
 * Reading, validating and writing the JSON formats released with Bills et al. (2023):
 * NeuronRecord (activation records of one neuron) and NeuronSimulationResults (scored
 * explanations), with every nested object tagged by its `dataclass_name`.
 *
 * Reading accepts a single JSON document, a JSON array of documents, or JSON Lines (one document
 * per line, as the paper stores explanations). Validation never alters what it checks, so fields
 * this code does not know survive a round trip. Writing puts keys in the order the paper's
 * serializer writes them (dataclass_name first, then the dataclass's fields in declaration order),
 * then Neurolens' extension fields, then any unknown fields in their original order.
 *
 * Note for interop: the reference Python reader builds dataclasses with `cls(**fields)`, so it
 * rejects unknown fields (including Neurolens' `simulation_mode`/`coverage`/`ablation_score`); write with
 * `{ paperFieldsOnly: true }` for files meant for that code.
 */
import type { ActivationRecord, NeuronId, NeuronRecord } from '../activations/records.ts';
import type {
  NeuronSimulationResults,
  ScoredExplanation,
  ScoredSequenceSimulation,
  ScoredSimulation,
  SequenceSimulation,
} from './explanation-types.ts';

/** A malformed document. `path` locates the offending value, e.g. `random_sample[3].tokens`. */
export class FormatError extends Error {
  constructor(
    readonly detail: string,
    readonly path: string = '',
    readonly line?: number,
  ) {
    super(`${line !== undefined ? `line ${line}: ` : ''}${path ? `${path}: ` : ''}${detail}`);
    this.name = 'FormatError';
  }
}

export type DataclassName =
  | 'ActivationRecord'
  | 'NeuronId'
  | 'NeuronRecord'
  | 'SequenceSimulation'
  | 'ScoredSequenceSimulation'
  | 'ScoredSimulation'
  | 'ScoredExplanation'
  | 'NeuronSimulationResults';

/** Fields of each dataclass in the paper's declaration (= serialisation) order. */
const PAPER_FIELDS: Record<DataclassName, readonly string[]> = {
  ActivationRecord: ['tokens', 'activations'],
  NeuronId: ['layer_index', 'neuron_index'],
  NeuronRecord: [
    'neuron_id',
    'random_sample',
    'random_sample_by_quantile',
    'quantile_boundaries',
    'mean',
    'variance',
    'skewness',
    'kurtosis',
    'most_positive_activation_records',
  ],
  SequenceSimulation: [
    'tokens',
    'expected_activations',
    'activation_scale',
    'distribution_values',
    'distribution_probabilities',
    'uncalibrated_simulation',
  ],
  ScoredSequenceSimulation: [
    'simulation',
    'true_activations',
    'ev_correlation_score',
    'rsquared_score',
    'absolute_dev_explained_score',
  ],
  ScoredSimulation: [
    'scored_sequence_simulations',
    'ev_correlation_score',
    'rsquared_score',
    'absolute_dev_explained_score',
  ],
  ScoredExplanation: ['explanation', 'scored_simulation'],
  NeuronSimulationResults: ['neuron_id', 'scored_explanations'],
};

/** Neurolens additions, written after the paper's fields (see explanation-types.ts). */
const NEUROLENS_FIELDS: Partial<Record<DataclassName, readonly string[]>> = {
  SequenceSimulation: ['simulation_mode', 'coverage'],
  ScoredSimulation: ['ablation_score'],
};

/** Which fields hold dataclasses: [dataclass, array nesting depth]. */
const NESTED_FIELDS: Partial<Record<DataclassName, Record<string, readonly [DataclassName, number]>>> = {
  NeuronRecord: {
    neuron_id: ['NeuronId', 0],
    random_sample: ['ActivationRecord', 1],
    random_sample_by_quantile: ['ActivationRecord', 2],
    most_positive_activation_records: ['ActivationRecord', 1],
  },
  SequenceSimulation: { uncalibrated_simulation: ['SequenceSimulation', 0] },
  ScoredSequenceSimulation: { simulation: ['SequenceSimulation', 0] },
  ScoredSimulation: { scored_sequence_simulations: ['ScoredSequenceSimulation', 1] },
  ScoredExplanation: { scored_simulation: ['ScoredSimulation', 0] },
  NeuronSimulationResults: {
    neuron_id: ['NeuronId', 0],
    scored_explanations: ['ScoredExplanation', 1],
  },
};

// ---------------------------------------------------------------------------------------------
// Validation helpers

type JsonObject = Record<string, unknown>;

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') {
    const shown = value.length > 24 ? `${value.slice(0, 24)}…` : value;
    return `string ${JSON.stringify(shown)}`;
  }
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return typeof value === 'object' ? 'an object' : typeof value;
}

const fieldPath = (path: string, key: string): string => (path ? `${path}.${key}` : key);
const indexPath = (path: string, index: number): string => `${path}[${index}]`;

function expectObject(value: unknown, path: string): JsonObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FormatError(`expected a JSON object, got ${describe(value)}`, path);
  }
  return value as JsonObject;
}

function expectArray(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) throw new FormatError(`expected an array, got ${describe(value)}`, path);
  return value;
}

function required(obj: JsonObject, key: string, path: string): unknown {
  if (!Object.prototype.hasOwnProperty.call(obj, key) || obj[key] === undefined) {
    throw new FormatError(`missing required field "${key}"`, path);
  }
  return obj[key];
}

function has(obj: JsonObject, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(obj, key) && obj[key] !== undefined;
}

function checkDataclassName(obj: JsonObject, expected: DataclassName, path: string): void {
  if (!has(obj, 'dataclass_name')) return; // Older files omit it; the reference reader allows that.
  const name = obj.dataclass_name;
  if (name !== expected) {
    throw new FormatError(`expected "${expected}", got ${describe(name)}`, fieldPath(path, 'dataclass_name'));
  }
}

function expectFinite(value: unknown, path: string, nullable: boolean): number | null {
  if (value === null && nullable) return null;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new FormatError(`expected a finite number${nullable ? ' or null' : ''}, got ${describe(value)}`, path);
  }
  return value;
}

function expectString(value: unknown, path: string): string {
  if (typeof value !== 'string') throw new FormatError(`expected a string, got ${describe(value)}`, path);
  return value;
}

function expectIndex(value: unknown, path: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new FormatError(`expected a non-negative integer, got ${describe(value)}`, path);
  }
  return value;
}

function expectStringArray(value: unknown, path: string): string[] {
  const items = expectArray(value, path);
  items.forEach((item, i) => expectString(item, indexPath(path, i)));
  return items as string[];
}

/** Array of finite numbers (or nulls if allowed), optionally of a required length. */
function expectNumberArray(
  value: unknown,
  path: string,
  options: { length?: number; nullable?: boolean } = {},
): (number | null)[] {
  const items = expectArray(value, path);
  const nullable = options.nullable ?? false;
  if (options.length !== undefined && items.length !== options.length) {
    throw new FormatError(`expected ${options.length} ${nullable ? 'values' : 'numbers'}, got ${items.length}`, path);
  }
  items.forEach((item, i) => expectFinite(item, indexPath(path, i), nullable));
  return items as (number | null)[];
}

function expectArrayOf<T>(value: unknown, path: string, item: (v: unknown, p: string) => T): T[] {
  const items = expectArray(value, path);
  items.forEach((v, i) => item(v, indexPath(path, i)));
  return items as T[];
}

// ---------------------------------------------------------------------------------------------
// Validators: each checks `value` in place and returns it typed (same object, nothing copied).

export function validateActivationRecord(value: unknown, path = ''): ActivationRecord {
  const obj = expectObject(value, path);
  checkDataclassName(obj, 'ActivationRecord', path);
  const tokens = expectStringArray(required(obj, 'tokens', path), fieldPath(path, 'tokens'));
  expectNumberArray(required(obj, 'activations', path), fieldPath(path, 'activations'), { length: tokens.length });
  return obj as unknown as ActivationRecord;
}

export function validateNeuronId(value: unknown, path = ''): NeuronId {
  const obj = expectObject(value, path);
  checkDataclassName(obj, 'NeuronId', path);
  expectIndex(required(obj, 'layer_index', path), fieldPath(path, 'layer_index'));
  expectIndex(required(obj, 'neuron_index', path), fieldPath(path, 'neuron_index'));
  return obj as unknown as NeuronId;
}

export function validateNeuronRecord(value: unknown, path = ''): NeuronRecord {
  const obj = expectObject(value, path);
  checkDataclassName(obj, 'NeuronRecord', path);
  validateNeuronId(required(obj, 'neuron_id', path), fieldPath(path, 'neuron_id'));
  expectArrayOf(required(obj, 'random_sample', path), fieldPath(path, 'random_sample'), validateActivationRecord);
  const byQuantilePath = fieldPath(path, 'random_sample_by_quantile');
  const byQuantile = required(obj, 'random_sample_by_quantile', path);
  if (byQuantile !== null) {
    expectArrayOf(byQuantile, byQuantilePath, (q, qPath) => expectArrayOf(q, qPath, validateActivationRecord));
  }
  const boundaries = required(obj, 'quantile_boundaries', path);
  if (boundaries !== null) {
    // The paper writes the open ends of the outer quantiles (±infinity) as null.
    expectNumberArray(boundaries, fieldPath(path, 'quantile_boundaries'), { nullable: true });
  }
  for (const moment of ['mean', 'variance', 'skewness', 'kurtosis']) {
    expectFinite(required(obj, moment, path), fieldPath(path, moment), true);
  }
  expectArrayOf(
    required(obj, 'most_positive_activation_records', path),
    fieldPath(path, 'most_positive_activation_records'),
    validateActivationRecord,
  );
  return obj as unknown as NeuronRecord;
}

const ACTIVATION_SCALES = ['neuron_activations', 'simulated_normalized_activations'];
const SIMULATION_MODES = ['logprob', 'sampled', 'prompt-logprob'];

export function validateSequenceSimulation(value: unknown, path = ''): SequenceSimulation {
  const obj = expectObject(value, path);
  checkDataclassName(obj, 'SequenceSimulation', path);
  const tokens = expectStringArray(required(obj, 'tokens', path), fieldPath(path, 'tokens'));
  expectNumberArray(required(obj, 'expected_activations', path), fieldPath(path, 'expected_activations'), {
    length: tokens.length,
    nullable: true,
  });
  const scale = required(obj, 'activation_scale', path);
  if (typeof scale !== 'string' || !ACTIVATION_SCALES.includes(scale)) {
    throw new FormatError(
      `expected one of ${ACTIVATION_SCALES.map((s) => `"${s}"`).join(', ')}, got ${describe(scale)}`,
      fieldPath(path, 'activation_scale'),
    );
  }
  const valuesPath = fieldPath(path, 'distribution_values');
  const probabilitiesPath = fieldPath(path, 'distribution_probabilities');
  const values = expectArray(required(obj, 'distribution_values', path), valuesPath);
  const probabilities = expectArray(required(obj, 'distribution_probabilities', path), probabilitiesPath);
  // Distributions are per token, or absent altogether (empty) for simulators that only give means.
  if (values.length !== 0 && values.length !== tokens.length) {
    throw new FormatError(`expected ${tokens.length} distributions (one per token), got ${values.length}`, valuesPath);
  }
  if (probabilities.length !== values.length) {
    throw new FormatError(
      `expected ${values.length} distributions (as many as distribution_values), got ${probabilities.length}`,
      probabilitiesPath,
    );
  }
  values.forEach((v, i) => {
    const tokenValues = expectNumberArray(v, indexPath(valuesPath, i));
    const tokenProbabilities = expectNumberArray(probabilities[i], indexPath(probabilitiesPath, i), {
      length: tokenValues.length,
    });
    tokenProbabilities.forEach((p, j) => {
      if ((p as number) < 0) {
        throw new FormatError(`expected a probability (>= 0), got ${p}`, indexPath(indexPath(probabilitiesPath, i), j));
      }
    });
  });
  if (has(obj, 'uncalibrated_simulation') && obj.uncalibrated_simulation !== null) {
    validateSequenceSimulation(obj.uncalibrated_simulation, fieldPath(path, 'uncalibrated_simulation'));
  }
  if (has(obj, 'simulation_mode')) {
    const mode = obj.simulation_mode;
    if (typeof mode !== 'string' || !SIMULATION_MODES.includes(mode)) {
      throw new FormatError(
        `expected one of ${SIMULATION_MODES.map((s) => `"${s}"`).join(', ')}, got ${describe(mode)}`,
        fieldPath(path, 'simulation_mode'),
      );
    }
  }
  if (has(obj, 'coverage')) {
    const coverage = expectFinite(obj.coverage, fieldPath(path, 'coverage'), false) as number;
    if (coverage < 0 || coverage > 1) {
      throw new FormatError(`expected a fraction between 0 and 1, got ${coverage}`, fieldPath(path, 'coverage'));
    }
  }
  return obj as unknown as SequenceSimulation;
}

/** The three score fields: finite numbers, or null where the score is undefined. */
function checkScores(obj: JsonObject, path: string, evRequired: boolean): void {
  if (evRequired) required(obj, 'ev_correlation_score', path);
  for (const key of ['ev_correlation_score', 'rsquared_score', 'absolute_dev_explained_score']) {
    if (has(obj, key)) expectFinite(obj[key], fieldPath(path, key), true);
  }
}

export function validateScoredSequenceSimulation(value: unknown, path = ''): ScoredSequenceSimulation {
  const obj = expectObject(value, path);
  checkDataclassName(obj, 'ScoredSequenceSimulation', path);
  const simulation = validateSequenceSimulation(required(obj, 'simulation', path), fieldPath(path, 'simulation'));
  expectNumberArray(required(obj, 'true_activations', path), fieldPath(path, 'true_activations'), {
    length: simulation.tokens.length,
  });
  checkScores(obj, path, true);
  return obj as unknown as ScoredSequenceSimulation;
}

export function validateScoredSimulation(value: unknown, path = ''): ScoredSimulation {
  const obj = expectObject(value, path);
  checkDataclassName(obj, 'ScoredSimulation', path);
  expectArrayOf(
    required(obj, 'scored_sequence_simulations', path),
    fieldPath(path, 'scored_sequence_simulations'),
    validateScoredSequenceSimulation,
  );
  checkScores(obj, path, true);
  if (has(obj, 'ablation_score')) expectFinite(obj.ablation_score, fieldPath(path, 'ablation_score'), true);
  return obj as unknown as ScoredSimulation;
}

export function validateScoredExplanation(value: unknown, path = ''): ScoredExplanation {
  const obj = expectObject(value, path);
  checkDataclassName(obj, 'ScoredExplanation', path);
  expectString(required(obj, 'explanation', path), fieldPath(path, 'explanation'));
  validateScoredSimulation(required(obj, 'scored_simulation', path), fieldPath(path, 'scored_simulation'));
  return obj as unknown as ScoredExplanation;
}

export function validateNeuronSimulationResults(value: unknown, path = ''): NeuronSimulationResults {
  const obj = expectObject(value, path);
  checkDataclassName(obj, 'NeuronSimulationResults', path);
  validateNeuronId(required(obj, 'neuron_id', path), fieldPath(path, 'neuron_id'));
  expectArrayOf(
    required(obj, 'scored_explanations', path),
    fieldPath(path, 'scored_explanations'),
    validateScoredExplanation,
  );
  return obj as unknown as NeuronSimulationResults;
}

const VALIDATORS: Record<DataclassName, (value: unknown, path?: string) => unknown> = {
  ActivationRecord: validateActivationRecord,
  NeuronId: validateNeuronId,
  NeuronRecord: validateNeuronRecord,
  SequenceSimulation: validateSequenceSimulation,
  ScoredSequenceSimulation: validateScoredSequenceSimulation,
  ScoredSimulation: validateScoredSimulation,
  ScoredExplanation: validateScoredExplanation,
  NeuronSimulationResults: validateNeuronSimulationResults,
};

// ---------------------------------------------------------------------------------------------
// Reading text

/** One parsed document, with where it came from for error messages. */
export interface JsonDocument {
  value: unknown;
  /** 1-based line number in a JSON Lines file. */
  line?: number;
  /** `[i]` for the elements of a top-level JSON array, else ''. */
  path: string;
}

function jsonErrorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Line of a character offset, for errors inside a multi-line (pretty-printed) document. */
function lineOfJsonError(text: string, message: string): number | undefined {
  const match = /position (\d+)/.exec(message);
  if (!match) return undefined;
  const position = Math.min(Number(match[1]), text.length);
  let line = 1;
  for (let i = 0; i < position; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/**
 * Splits text into JSON documents: one JSON value (an array gives one document per element), or
 * JSON Lines (one value per non-blank line).
 */
export function parseJsonDocuments(text: string): JsonDocument[] {
  if (typeof text !== 'string') throw new FormatError(`expected text, got ${describe(text)}`);
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (body.trim() === '') throw new FormatError('empty input: expected a JSON object or JSON Lines');
  let whole: unknown;
  let wholeError: unknown;
  try {
    whole = JSON.parse(body);
  } catch (error) {
    wholeError = error;
  }
  if (wholeError === undefined) {
    if (Array.isArray(whole)) return whole.map((value, i) => ({ value, path: `[${i}]` }));
    return [{ value: whole, path: '' }];
  }
  const lines = body.split('\n');
  const numbered = lines
    .map((content, i) => ({ content: content.replace(/\r$/, ''), line: i + 1 }))
    .filter((l) => l.content.trim() !== '');
  const parseLine = (l: { content: string; line: number }): JsonDocument => {
    try {
      return { value: JSON.parse(l.content), line: l.line, path: '' };
    } catch (error) {
      throw new FormatError(`not valid JSON (${jsonErrorMessage(error)})`, '', l.line);
    }
  };
  let first: JsonDocument | undefined;
  try {
    first = parseLine(numbered[0]);
  } catch {
    first = undefined;
  }
  if (first === undefined && numbered.length > 1) {
    // Not JSON Lines: a single multi-line document with a syntax error somewhere.
    const message = jsonErrorMessage(wholeError);
    throw new FormatError(`not valid JSON (${message})`, '', lineOfJsonError(body, message));
  }
  return numbered.map(parseLine);
}

function validateDocuments<T>(
  documents: JsonDocument[],
  validate: (value: unknown, path: string) => T,
): T[] {
  return documents.map((doc) => {
    try {
      return validate(doc.value, doc.path);
    } catch (error) {
      if (error instanceof FormatError && doc.line !== undefined) {
        throw new FormatError(error.detail, error.path, doc.line);
      }
      throw error;
    }
  });
}

function exactlyOne<T>(items: T[], what: string): T {
  if (items.length !== 1) throw new FormatError(`expected exactly one ${what}, got ${items.length}`);
  return items[0];
}

/** Every NeuronRecord in a JSON / JSON array / JSON Lines text. */
export function parseAllNeuronRecords(text: string): NeuronRecord[] {
  return validateDocuments(parseJsonDocuments(text), validateNeuronRecord);
}

/** The one NeuronRecord in a text (as the paper stores one per file). */
export function parseNeuronRecord(text: string): NeuronRecord {
  return exactlyOne(parseAllNeuronRecords(text), 'NeuronRecord');
}

/** Every NeuronSimulationResults in a JSON / JSON array / JSON Lines text. */
export function parseAllNeuronSimulationResults(text: string): NeuronSimulationResults[] {
  return validateDocuments(parseJsonDocuments(text), validateNeuronSimulationResults);
}

/** The one NeuronSimulationResults in a text (the paper's `<layer>/<neuron>.jsonl` files). */
export function parseNeuronSimulationResults(text: string): NeuronSimulationResults {
  return exactlyOne(parseAllNeuronSimulationResults(text), 'NeuronSimulationResults');
}

export type PaperDocument =
  | { kind: 'NeuronRecord'; value: NeuronRecord }
  | { kind: 'NeuronSimulationResults'; value: NeuronSimulationResults };

/** Which top-level dataclass a document is: by its dataclass_name, else by its fields. */
function topLevelKind(value: unknown, path: string): PaperDocument['kind'] {
  const obj = expectObject(value, path);
  const name = obj.dataclass_name;
  if (name === 'NeuronRecord' || name === 'NeuronSimulationResults') return name;
  if (name !== undefined) {
    throw new FormatError(
      `expected "NeuronRecord" or "NeuronSimulationResults", got ${describe(name)}`,
      fieldPath(path, 'dataclass_name'),
    );
  }
  if (has(obj, 'scored_explanations')) return 'NeuronSimulationResults';
  if (has(obj, 'most_positive_activation_records')) return 'NeuronRecord';
  throw new FormatError(
    'not a NeuronRecord or NeuronSimulationResults (no dataclass_name, most_positive_activation_records or scored_explanations)',
    path,
  );
}

/** Every document of a file holding NeuronRecords and/or NeuronSimulationResults. */
export function parsePaperDocuments(text: string): PaperDocument[] {
  return validateDocuments(parseJsonDocuments(text), (value, path): PaperDocument => {
    const kind = topLevelKind(value, path);
    return kind === 'NeuronRecord'
      ? { kind, value: validateNeuronRecord(value, path) }
      : { kind, value: validateNeuronSimulationResults(value, path) };
  });
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface WriteOptions {
  /** Spaces of indentation; 0 (default) writes one compact line, as the paper's files are. */
  indent?: number;
  /** Add `dataclass_name` where it is missing (default true: the reference reader relies on it). */
  addDataclassNames?: boolean;
  /** Drop Neurolens extensions and unknown fields, for the reference Python reader (default false). */
  paperFieldsOnly?: boolean;
}

/** A copy of a dataclass object with keys in the paper's order (recursively). */
function inPaperOrder(value: unknown, name: DataclassName, options: WriteOptions): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const obj = value as JsonObject;
  const nested = NESTED_FIELDS[name] ?? {};
  const paper = PAPER_FIELDS[name];
  const extensions = NEUROLENS_FIELDS[name] ?? [];
  const out: JsonObject = {};
  if (has(obj, 'dataclass_name')) out.dataclass_name = obj.dataclass_name;
  else if (options.addDataclassNames ?? true) out.dataclass_name = name;
  const copyField = (key: string): void => {
    if (!has(obj, key)) return;
    const child = nested[key];
    out[key] = child ? mapNested(obj[key], child[0], child[1], options) : obj[key];
  };
  paper.forEach(copyField);
  if (options.paperFieldsOnly) return out;
  extensions.forEach(copyField);
  for (const key of Object.keys(obj)) {
    if (key !== 'dataclass_name' && !paper.includes(key) && !extensions.includes(key)) out[key] = obj[key];
  }
  return out;
}

function mapNested(value: unknown, name: DataclassName, depth: number, options: WriteOptions): unknown {
  if (depth === 0) return inPaperOrder(value, name, options);
  if (!Array.isArray(value)) return value;
  return value.map((item) => mapNested(item, name, depth - 1, options));
}

/**
 * JSON text of a value. Unlike JSON.stringify it keeps the sign of -0 (the paper's files hold
 * -0.0) and refuses non-finite numbers instead of silently writing null.
 */
function writeJson(value: unknown, indent: number, depth = 0, path = ''): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'number':
      if (!Number.isFinite(value)) throw new FormatError(`cannot write non-finite number ${value}`, path);
      return Object.is(value, -0) ? '-0.0' : JSON.stringify(value);
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw new FormatError(`cannot write a ${typeof value} as JSON`, path);
  }
  const pad = indent > 0 ? `\n${' '.repeat(indent * (depth + 1))}` : '';
  const close = indent > 0 ? `\n${' '.repeat(indent * depth)}` : '';
  const colon = indent > 0 ? ': ' : ':';
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    const items = value.map((item, i) =>
      item === undefined ? 'null' : writeJson(item, indent, depth + 1, indexPath(path, i)),
    );
    return `[${pad}${items.join(`,${pad}`)}${close}]`;
  }
  const entries = Object.entries(value as JsonObject).filter(([, v]) => v !== undefined);
  if (entries.length === 0) return '{}';
  const items = entries.map(
    ([k, v]) => `${JSON.stringify(k)}${colon}${writeJson(v, indent, depth + 1, fieldPath(path, k))}`,
  );
  return `{${pad}${items.join(`,${pad}`)}${close}}`;
}

/** Validates `value` as a `name` dataclass and writes it as JSON in the paper's key order. */
export function serializeDataclass(value: unknown, name: DataclassName, options: WriteOptions = {}): string {
  VALIDATORS[name](value, '');
  const indent = options.indent ?? 0;
  if (!Number.isInteger(indent) || indent < 0) throw new FormatError(`indent must be a non-negative integer, got ${indent}`);
  return writeJson(inPaperOrder(value, name, options), indent);
}

export function serializeNeuronRecord(record: NeuronRecord, options: WriteOptions = {}): string {
  return serializeDataclass(record, 'NeuronRecord', options);
}

export function serializeNeuronSimulationResults(
  results: NeuronSimulationResults,
  options: WriteOptions = {},
): string {
  return serializeDataclass(results, 'NeuronSimulationResults', options);
}

/** JSON Lines: one compact document per line, each ending in a newline. */
export function serializeJsonl(
  items: readonly unknown[],
  name: DataclassName,
  options: Omit<WriteOptions, 'indent'> = {},
): string {
  return items
    .map((item, i) => {
      try {
        return `${serializeDataclass(item, name, { ...options, indent: 0 })}\n`;
      } catch (error) {
        if (error instanceof FormatError) throw new FormatError(error.detail, error.path, i + 1);
        throw error;
      }
    })
    .join('');
}
