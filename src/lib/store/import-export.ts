/**
 * Moving data in and out of the store: the paper's JSON formats (NeuronRecord, and
 * NeuronSimulationResults as JSON Lines) and whole-scan bundles (bundle-format.ts).
 *
 * Imports parse and validate everything first (formats.ts), then write in one transaction, so a
 * malformed file is refused with a FormatError that says what is wrong and where (line, path) and
 * leaves the store untouched. Imported activations are stored losslessly (compact-activations.ts),
 * so exporting gives back the same JSON content: parse(export(import(file))) deep-equals
 * parse(file) for a file with one document per neuron.
 */
import { summarizeNeuronRecord } from '../activations/neuron-summary.ts';
import type { NeuronRecord } from '../activations/records.ts';
import type { NeuronSimulationResults } from '../explain/explanation-types.ts';
import {
  FormatError,
  parseAllNeuronRecords,
  parseAllNeuronSimulationResults,
  parseJsonDocuments,
  parsePaperDocuments,
  serializeJsonl,
  serializeNeuronRecord,
} from '../explain/formats.ts';
import type { ActivationEncoding } from './compact-activations.ts';
import { type CompactRecords, compactNeuronRecord, compactRecords } from './compact-record.ts';
import { ExcerptTable } from './excerpt-table.ts';
import {
  type BundleHeader,
  type BundleItem,
  type BundleItemType,
  type BundleSource,
  bundleHeader,
  readBundle,
  streamToBlob,
  writeBundle,
} from './bundle-format.ts';
import type { ImportContents, ImportTarget, NeurolensStore } from './neurolens-store.ts';
import { BundleError } from './store-errors.ts';
import type { NeuronKey, ScanInit, ScanMeta } from './store-types.ts';

export interface ImportSummary {
  scan: ScanMeta;
  neuronRecords: number;
  simulationResults: number;
  /** How many records went to each storage encoding. */
  encodings: Record<ActivationEncoding, number>;
}

/** Where paper-format data goes: an existing scan, or a new 'imported' scan (defaults filled in). */
export type PaperImportTarget = { scanId: string } | { newScan: Partial<ScanInit> & { name: string } };

export type PaperKind = 'NeuronRecord' | 'NeuronSimulationResults';

/**
 * Exports write documents as they were stored: formats.ts would otherwise add `dataclass_name`
 * where an imported file had none, and the export would no longer equal the import. (Records the
 * app builds carry every dataclass_name already.)
 */
const AS_STORED = { addDataclassNames: false } as const;

/** Records per read transaction when exporting (bounds memory and transaction length). */
const EXPORT_BATCH = 128;

// ---------------------------------------------------------------------------------------------
// Parsing

/** Position of the first NaN / Infinity literal outside strings, which JSON does not allow. */
function nonFiniteLiteral(text: string): string | undefined {
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
    } else if (c === 'N' && text.startsWith('NaN', i)) {
      return 'NaN';
    } else if (c === 'I' && text.startsWith('Infinity', i)) {
      return text[i - 1] === '-' ? '-Infinity' : 'Infinity';
    }
  }
  return undefined;
}

/**
 * Parses with formats.ts, explaining the JSON syntax error that Python's json module causes by
 * writing NaN / Infinity for non-finite floats.
 */
function parseWith<T>(text: string, parse: (text: string) => T): T {
  if (typeof text !== 'string') throw new FormatError('expected the file as text');
  try {
    return parse(text);
  } catch (error) {
    if (error instanceof FormatError && error.detail.startsWith('not valid JSON')) {
      const where = error.line !== undefined ? text.split('\n')[error.line - 1] ?? '' : text;
      const literal = nonFiniteLiteral(where);
      if (literal) {
        throw new FormatError(
          `not valid JSON: ${literal} is not a JSON number (activations and scores must be finite numbers)`,
          error.path,
          error.line,
        );
      }
    }
    throw error;
  }
}

interface ParsedPaperFile {
  records: NeuronRecord[];
  results: NeuronSimulationResults[];
}

/** Parses and validates a paper-format file; refuses two documents of one neuron. */
export function parsePaperFile(text: string, expect?: PaperKind): ParsedPaperFile {
  let docs: { kind: PaperKind; value: NeuronRecord | NeuronSimulationResults }[];
  if (expect === 'NeuronRecord') docs = parseWith(text, parseAllNeuronRecords).map((value) => ({ kind: expect, value }));
  else if (expect === 'NeuronSimulationResults') docs = parseWith(text, parseAllNeuronSimulationResults).map((value) => ({ kind: expect, value }));
  else if (expect === undefined) docs = parseWith(text, parsePaperDocuments);
  else throw new FormatError(`unknown document kind ${JSON.stringify(expect)}`);

  // Stored rows are keyed by neuron (and explanation text): a second document of one neuron, or
  // a repeated explanation, would be lost on export, so refuse them. Errors are rare, so the text
  // is parsed again only then, to say where.
  const refuse = (index: number, detail: string, field: string): never => {
    const located = parseJsonDocuments(text)[index];
    throw new FormatError(detail, located.path ? `${located.path}.${field}` : field, located.line);
  };
  const where = (index: number) => {
    const located = parseJsonDocuments(text)[index];
    return located.line !== undefined ? `line ${located.line}` : located.path || 'the document';
  };
  const firstSeen = new Map<string, number>();
  docs.forEach(({ kind, value }, index) => {
    const id = value.neuron_id;
    const key = `${kind}:${id.layer_index}:${id.neuron_index}`;
    const first = firstSeen.get(key);
    if (first !== undefined) {
      refuse(
        index,
        `a second ${kind} of layer ${id.layer_index} neuron ${id.neuron_index} (the first is at ${where(first)}); a file holds one per neuron`,
        'neuron_id',
      );
    }
    firstSeen.set(key, index);
    if (kind === 'NeuronSimulationResults') {
      const texts = new Map<string, number>();
      (value as NeuronSimulationResults).scored_explanations.forEach((scored, i) => {
        const earlier = texts.get(scored.explanation);
        if (earlier !== undefined) {
          refuse(index, `repeats the explanation of scored_explanations[${earlier}]`, `scored_explanations[${i}].explanation`);
        }
        texts.set(scored.explanation, i);
      });
    }
  });
  return {
    records: docs.filter((d) => d.kind === 'NeuronRecord').map((d) => d.value as NeuronRecord),
    results: docs.filter((d) => d.kind === 'NeuronSimulationResults').map((d) => d.value as NeuronSimulationResults),
  };
}

function summarize(scan: ScanMeta, { records }: CompactRecords, results: number): ImportSummary {
  const encodings: Record<ActivationEncoding, number> = { float16: 0, float32: 0, float64: 0 };
  for (const r of records) encodings[r.encoding]++;
  return { scan, neuronRecords: records.length, simulationResults: results, encodings };
}

/** A new scan's metadata for imported paper files, filling what the files cannot tell. */
function importedScanInit(partial: Partial<ScanInit> & { name: string }, parsed: ParsedPaperFile): ScanInit {
  const ids = [...parsed.records.map((r) => r.neuron_id), ...parsed.results.map((r) => r.neuron_id)];
  const layers = [...new Set(ids.map((id) => id.layer_index))].sort((a, b) => a - b);
  const topK = parsed.records.reduce((m, r) => Math.max(m, r.most_positive_activation_records.length), 0);
  return {
    model: { label: 'unknown (imported)' },
    corpus: { name: 'imported', fingerprint: '' },
    layers,
    topK,
    seed: 0,
    excerptCount: 0,
    status: 'imported',
    progress: 1,
    ...partial,
  };
}

// ---------------------------------------------------------------------------------------------
// Paper formats

/**
 * Imports a file of NeuronRecords and/or NeuronSimulationResults (one JSON document, a JSON array
 * or JSON Lines). `expect` restricts it to one kind. Nothing is written unless the whole file is
 * valid.
 */
export async function importPaperText(
  store: NeurolensStore,
  text: string,
  target: PaperImportTarget,
  options: { expect?: PaperKind } = {},
): Promise<ImportSummary> {
  const parsed = parsePaperFile(text, options.expect);
  const records = compactRecords(parsed.records);
  const storeTarget: ImportTarget = 'newScan' in target ? { newScan: importedScanInit(target.newScan, parsed) } : target;
  const scan = await store.writeImport(storeTarget, { records, simulationResults: parsed.results });
  return summarize(scan, records, parsed.results.length);
}

/** Reads a scan's records in batches of read transactions. */
async function* recordBatches(store: NeurolensStore, scanId: string, neurons: readonly NeuronKey[]): AsyncGenerator<NeuronRecord> {
  for (let i = 0; i < neurons.length; i += EXPORT_BATCH) {
    yield* await store.getNeuronRecords(scanId, neurons.slice(i, i + EXPORT_BATCH));
  }
}

async function requireScan(store: NeurolensStore, scanId: string): Promise<ScanMeta> {
  const scan = await store.getScan(scanId);
  if (!scan) throw new BundleError(`there is no scan with id ${JSON.stringify(scanId)} to export`);
  return scan;
}

/** NeuronRecords of a scan (all, or the given neurons) as JSON Lines in the paper's format. */
export async function exportNeuronRecordsJsonl(store: NeurolensStore, scanId: string, neurons?: readonly NeuronKey[]): Promise<string> {
  await requireScan(store, scanId);
  const list = neurons ?? (await store.listNeuronIds(scanId));
  const parts: string[] = [];
  for await (const record of recordBatches(store, scanId, list)) parts.push(serializeJsonl([record], 'NeuronRecord', AS_STORED));
  return parts.join('');
}

/** One neuron's record as a JSON document (the paper stores one per file). */
export async function exportNeuronRecordJson(
  store: NeurolensStore,
  scanId: string,
  neuron: NeuronKey,
  options: { indent?: number } = {},
): Promise<string> {
  const record = await store.getNeuronRecord(scanId, neuron.layer, neuron.neuron);
  if (!record) throw new BundleError(`scan ${JSON.stringify(scanId)} has no record of layer ${neuron.layer} neuron ${neuron.neuron}`);
  return serializeNeuronRecord(record, { ...AS_STORED, indent: options.indent });
}

/** Every neuron's NeuronSimulationResults (one line per neuron), as the paper's explanation files. */
export async function exportSimulationResultsJsonl(store: NeurolensStore, scanId: string): Promise<string> {
  await requireScan(store, scanId);
  const results: NeuronSimulationResults[] = [];
  for (const neuron of await store.listExplainedNeurons(scanId)) {
    const r = await store.getSimulationResults(scanId, neuron);
    if (r) results.push(r);
  }
  return serializeJsonl(results, 'NeuronSimulationResults', AS_STORED);
}

// ---------------------------------------------------------------------------------------------
// Scan bundles

/** The whole scan as a gzip-compressed bundle (see bundle-format.ts), ready to download. */
export async function exportScanBundle(store: NeurolensStore, scanId: string): Promise<Blob> {
  const scan = await requireScan(store, scanId);
  const neurons = await store.listNeuronIds(scanId);
  const explained = await store.listExplainedNeurons(scanId);
  const results: NeuronSimulationResults[] = [];
  for (const neuron of explained) {
    const r = await store.getSimulationResults(scanId, neuron);
    if (r) results.push(r);
  }
  const explanations = await store.listAllExplanations(scanId);
  const scores = await store.listScores(scanId);
  const counts: Record<BundleItemType, number> = {
    neuron_record: neurons.length,
    simulation_results: results.length,
    explanation: explanations.length,
    explanation_scores: scores.length,
    mean_tokens: 0,
  };
  async function* items(): AsyncGenerator<BundleItem> {
    for await (const value of recordBatches(store, scanId, neurons)) yield { type: 'neuron_record', value };
    for (const value of explanations) yield { type: 'explanation', value };
    for (const value of results) yield { type: 'simulation_results', value };
    for (const value of scores) yield { type: 'explanation_scores', value };
  }
  return streamToBlob(writeBundle(bundleHeader(scan, counts), items()));
}

/** A file name for a scan's bundle. */
export function bundleFileName(scan: Pick<ScanMeta, 'name'>): string {
  const base = scan.name.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '') || 'scan';
  return `${base}.neurolens.json.gz`;
}

/** A bundle read and validated in memory, ready to write (records already compacted). */
export interface ReadBundle {
  header: BundleHeader;
  contents: Required<ImportContents>;
}

/**
 * Reads and validates a whole bundle without writing anything. Records are compacted as they are
 * read (their excerpts kept once), so memory stays near their stored size rather than their JSON
 * size. Mean-token tables of older bundles are checked and left out.
 */
export async function readScanBundle(source: BundleSource): Promise<ReadBundle> {
  let header: BundleHeader | undefined;
  const contents: Required<ImportContents> = {
    records: { excerpts: new ExcerptTable(), records: [], summaries: [] },
    simulationResults: [],
    explanations: [],
    scores: [],
  };
  const firstLine = new Map<string, number>();
  const once = (key: string, line: number, what: string) => {
    const first = firstLine.get(key);
    if (first !== undefined) throw new FormatError(`a second ${what} (the first is on line ${first})`, 'value', line);
    firstLine.set(key, line);
  };
  for await (const entry of readBundle(source)) {
    if ('header' in entry) {
      header = entry.header;
      continue;
    }
    const { item, line } = entry;
    switch (item.type) {
      case 'neuron_record': {
        const id = item.value.neuron_id;
        once(`r:${id.layer_index}:${id.neuron_index}`, line, `record of layer ${id.layer_index} neuron ${id.neuron_index}`);
        contents.records.records.push(compactNeuronRecord(item.value, contents.records.excerpts, 'lossless'));
        contents.records.summaries.push(summarizeNeuronRecord(item.value));
        break;
      }
      case 'simulation_results': {
        const id = item.value.neuron_id;
        once(`s:${id.layer_index}:${id.neuron_index}`, line, `simulation results of layer ${id.layer_index} neuron ${id.neuron_index}`);
        contents.simulationResults.push(item.value);
        break;
      }
      case 'explanation':
        once(`e:${item.value.layer}:${item.value.neuron}:${item.value.explanation}`, line, 'copy of an explanation');
        contents.explanations.push(item.value);
        break;
      case 'explanation_scores':
        once(`c:${item.value.layer}:${item.value.neuron}:${item.value.explanation}`, line, 'score of an explanation');
        contents.scores.push(item.value);
        break;
      case 'mean_tokens':
        once(`m:${item.value.layer}:${item.value.neuron}`, line, 'mean-token table of a neuron');
        break;
    }
  }
  return { header: header!, contents };
}

/** Writes a read bundle as a new scan (status 'imported'), in one transaction. */
async function writeBundleScan(store: NeurolensStore, bundle: ReadBundle, name?: string): Promise<ImportSummary & { header: BundleHeader }> {
  const { createdAt: _c, updatedAt: _u, inputs: _i, ...scanFields } = bundle.header.scan as ScanMeta;
  const newScan: ScanInit = { ...scanFields, status: 'imported', ...(name !== undefined ? { name } : {}) };
  const scan = await store.writeImport({ newScan }, bundle.contents);
  return { ...summarize(scan, bundle.contents.records, bundle.contents.simulationResults.length), header: bundle.header };
}

/**
 * Imports a bundle as a new scan (status 'imported'): read and validated whole first, then
 * written in one transaction. `name` overrides the bundle's scan name.
 */
export async function importScanBundle(
  store: NeurolensStore,
  source: BundleSource,
  options: { name?: string } = {},
): Promise<ImportSummary & { header: BundleHeader }> {
  return writeBundleScan(store, await readScanBundle(source), options.name);
}

// ---------------------------------------------------------------------------------------------
// Files, for the app's import and download buttons

export interface ExportedFile {
  name: string;
  data: Uint8Array | string;
  type: string;
}

/**
 * A scan as a file to download: `bundle` (everything, see bundle-format.ts) or `records` (its
 * NeuronRecords as JSON Lines in the paper's format).
 */
export async function exportScan(store: NeurolensStore, scanId: string, format: 'bundle' | 'records'): Promise<ExportedFile> {
  const scan = await requireScan(store, scanId);
  if (format === 'bundle') {
    const blob = await exportScanBundle(store, scanId);
    return { name: bundleFileName(scan), data: new Uint8Array(await blob.arrayBuffer()), type: 'application/gzip' };
  }
  if (format === 'records') {
    const name = bundleFileName(scan).replace(/\.neurolens\.json\.gz$/, '.records.jsonl');
    return { name, data: await exportNeuronRecordsJsonl(store, scanId), type: 'application/jsonl' };
  }
  throw new BundleError(`unknown export format ${JSON.stringify(format)} (expected "bundle" or "records")`);
}

/** A file that could not be imported; the message starts with the file's name. */
export class FileImportError extends Error {
  constructor(
    readonly fileName: string,
    readonly reason: Error,
  ) {
    super(`${fileName}: ${reason.message}`, { cause: reason });
    this.name = 'FileImportError';
  }
}

export interface FilesImportResult {
  /** The scans created, in file order (paper files share one). */
  imported: ImportSummary[];
  /** One line for the user. */
  summary: string;
}

/** True when the bytes are a bundle: gzip, or plain JSON Lines whose first line is a bundle header. */
function looksLikeBundle(bytes: Uint8Array): boolean {
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) return true;
  const head = new TextDecoder().decode(bytes.subarray(0, 256));
  return /^\s*\{\s*"format"\s*:\s*"neurolens-scan-bundle"/.test(head);
}

function baseName(fileName: string): string {
  return fileName.replace(/\.(jsonl?|json\.gz|gz|txt)$/i, '').replace(/\.neurolens$/, '') || fileName;
}

/**
 * Imports dropped files: each bundle becomes a new scan; all paper-format files (NeuronRecords
 * and/or NeuronSimulationResults, JSON or JSON Lines, e.g. the paper's one-file-per-neuron data)
 * become one new scan together. Every file is read and validated before anything is written, so a
 * bad file (FileImportError naming it) leaves the store as it was. Each new scan is one transaction.
 */
export async function importFiles(store: NeurolensStore, files: readonly { name: string; bytes: Uint8Array }[]): Promise<FilesImportResult> {
  if (!Array.isArray(files) || files.length === 0) throw new BundleError('no files to import');
  const bundles: { name: string; bundle: ReadBundle }[] = [];
  const paper: ParsedPaperFile = { records: [], results: [] };
  const paperNames: string[] = [];
  const seen = new Map<string, string>();
  for (const file of files) {
    try {
      if (/\.gz$/i.test(file.name) && !(file.bytes[0] === 0x1f && file.bytes[1] === 0x8b)) {
        throw new FormatError('the name ends in .gz but the file is not gzip-compressed (a Neurolens bundle is a .neurolens.json.gz file as the app exports it)');
      }
      if (looksLikeBundle(file.bytes)) {
        bundles.push({ name: file.name, bundle: await readScanBundle(file.bytes) });
        continue;
      }
      let text: string;
      try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(file.bytes);
      } catch {
        throw new FormatError('not UTF-8 text: expected JSON, JSON Lines or a .neurolens.json.gz bundle');
      }
      const parsed = parsePaperFile(text);
      // Across files too, one document per neuron and kind.
      for (const [kind, docs] of [['NeuronRecord', parsed.records], ['NeuronSimulationResults', parsed.results]] as const) {
        for (const doc of docs) {
          const key = `${kind}:${doc.neuron_id.layer_index}:${doc.neuron_id.neuron_index}`;
          const other = seen.get(key);
          if (other !== undefined) {
            throw new FormatError(`a second ${kind} of layer ${doc.neuron_id.layer_index} neuron ${doc.neuron_id.neuron_index} (the first is in ${other})`);
          }
          seen.set(key, file.name);
        }
      }
      paper.records.push(...parsed.records);
      paper.results.push(...parsed.results);
      paperNames.push(file.name);
    } catch (error) {
      if (error instanceof Error) throw new FileImportError(file.name, error);
      throw error;
    }
  }
  const imported: ImportSummary[] = [];
  // Each import gets a name of its own, so a re-imported file is told apart from its source.
  const taken = new Set((await store.listScans()).map((s) => s.name));
  const distinct = (name: string) => {
    let candidate = name;
    for (let n = 2; taken.has(candidate); n++) candidate = `${name} (${n})`;
    taken.add(candidate);
    return candidate;
  };
  if (paperNames.length > 0) {
    const name = distinct(paperNames.length === 1 ? baseName(paperNames[0]) : `${baseName(paperNames[0])} and ${paperNames.length - 1} more`);
    const records = compactRecords(paper.records);
    const scan = await store.writeImport({ newScan: importedScanInit({ name }, paper) }, { records, simulationResults: paper.results });
    imported.push(summarize(scan, records, paper.results.length));
  }
  for (const { bundle } of bundles) imported.push(await writeBundleScan(store, bundle, distinct((bundle.header.scan as ScanMeta).name)));
  const records = imported.reduce((n, i) => n + i.neuronRecords, 0);
  const results = imported.reduce((n, i) => n + i.simulationResults, 0);
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  const summary =
    `Imported ${plural(records, 'neuron record')}` +
    (results > 0 ? ` and explanations of ${plural(results, 'neuron')}` : '') +
    ` into ${imported.length === 1 ? `the new dataset "${imported[0].scan.name}"` : `${imported.length} new datasets`}.`;
  return { imported, summary };
}
