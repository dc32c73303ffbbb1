/**
 * The one-file scan bundle (`<name>.neurolens.json.gz`) that moves a whole scan between machines:
 * gzip-compressed JSON Lines. Line 1 is the header; every further line is one item.
 *
 *   {"format":"neurolens-scan-bundle","version":1,"generator":"neurolens","created_at":"…",
 *    "scan":{name, model, corpus, layers, topK, seed, excerptCount, status, progress, …},
 *    "counts":{"neuron_record":N, "simulation_results":M, "explanation":E, "explanation_scores":S, "mean_tokens":T}}
 *   {"type":"neuron_record","value":<NeuronRecord, the paper's JSON>}
 *   {"type":"simulation_results","value":<NeuronSimulationResults, the paper's JSON>}
 *   {"type":"explanation","value":{layer, neuron, explanation, order, source?, createdAt}}
 *   {"type":"explanation_scores","value":{layer, neuron, explanation, scores}}
 *   {"type":"mean_tokens","value":{layer, neuron, tokens:[{tokenId, token?, meanActivation, count}]}}
 *
 * `mean_tokens` items (the scan's former mean-token tables) are no longer written (their count is
 * 0); those of older bundles are still checked when read, and then left out of the import.
 *
 * One item per line keeps both directions streaming (no single string holds the whole scan), and
 * the paper-format items are exactly what the paper's tools read. Numbers are written so that
 * they parse back to the same doubles (-0 included), so a bundle round trip is lossless. The
 * header's counts let a reader tell a bundle cut short at a line boundary from a complete one.
 *
 * Reading refuses, with a BundleError, anything that is not a bundle, a damaged gzip stream, and a
 * version newer than BUNDLE_VERSION; a malformed item is a FormatError naming its line and path.
 */
import type { NeuronRecord } from '../activations/records.ts';
import type { NeuronSimulationResults } from '../explain/explanation-types.ts';
import {
  FormatError,
  serializeNeuronRecord,
  serializeNeuronSimulationResults,
  validateNeuronRecord,
  validateNeuronSimulationResults,
} from '../explain/formats.ts';
import type { ExplanationScores } from '../explain/pipeline.ts';
import { scanFromInit } from './scan-meta.ts';
import { BundleError } from './store-errors.ts';
import type { NeuronKey, ScanInit, ScanMeta, StoredExplanation } from './store-types.ts';

export const BUNDLE_FORMAT = 'neurolens-scan-bundle';
export const BUNDLE_VERSION = 1;
export const BUNDLE_EXTENSION = '.neurolens.json.gz';

/**
 * The scan's metadata as a bundle carries it: no id (the importing store gives a new one), no
 * byte count, and no inputs (the corpus stays on the machine that ran the scan).
 */
export type BundleScan = Omit<ScanMeta, 'id' | 'bytes' | 'inputs'>;

export const BUNDLE_ITEM_TYPES = ['neuron_record', 'simulation_results', 'explanation', 'explanation_scores', 'mean_tokens'] as const;
export type BundleItemType = (typeof BUNDLE_ITEM_TYPES)[number];

export interface BundleHeader {
  format: typeof BUNDLE_FORMAT;
  version: number;
  generator: string;
  created_at: string;
  scan: BundleScan;
  counts: Record<BundleItemType, number>;
}

export type ExplanationScoresItem = NeuronKey & { explanation: string; scores: ExplanationScores };

/** A mean-token table, as bundles written before the table was dropped hold them (read, not imported). */
export type MeanTokensItem = NeuronKey & { tokens: { tokenId: number; token?: string; meanActivation: number; count: number }[] };

export type BundleItem =
  | { type: 'neuron_record'; value: NeuronRecord }
  | { type: 'simulation_results'; value: NeuronSimulationResults }
  | { type: 'explanation'; value: StoredExplanation }
  | { type: 'explanation_scores'; value: ExplanationScoresItem }
  | { type: 'mean_tokens'; value: MeanTokensItem };

export type BundleSource = Blob | ArrayBuffer | Uint8Array;

// ---------------------------------------------------------------------------------------------
// Writing

/** JSON of plain data, refusing non-finite numbers (JSON.stringify would write null). */
function plainJson(value: unknown, what: string): string {
  return JSON.stringify(value, (key, v) => {
    if (typeof v === 'number' && !Number.isFinite(v)) throw new BundleError(`cannot write ${what}: ${key || 'a value'} is ${v}`);
    return v;
  });
}

/** Paper documents are written as stored: no dataclass_name is added where the source had none. */
const AS_GIVEN = { addDataclassNames: false } as const;

/** One line of the bundle (without the newline). */
export function bundleItemLine(item: BundleItem): string {
  switch (item.type) {
    case 'neuron_record':
      return `{"type":"neuron_record","value":${serializeNeuronRecord(item.value, AS_GIVEN)}}`;
    case 'simulation_results':
      return `{"type":"simulation_results","value":${serializeNeuronSimulationResults(item.value, AS_GIVEN)}}`;
    default:
      return plainJson({ type: item.type, value: item.value }, `a ${item.type} item`);
  }
}

/** The header of a bundle of `scan` with the given item counts. */
export function bundleHeader(scan: ScanMeta, counts: Record<BundleItemType, number>): BundleHeader {
  const { id: _id, bytes: _bytes, inputs: _inputs, ...rest } = scan;
  return { format: BUNDLE_FORMAT, version: BUNDLE_VERSION, generator: 'neurolens', created_at: new Date().toISOString(), scan: rest, counts };
}

/**
 * The gzip-compressed bundle as a byte stream. `items` is pulled as the stream is read, so a
 * caller can produce it from the store batch by batch.
 */
export function writeBundle(header: BundleHeader, items: AsyncIterable<BundleItem> | Iterable<BundleItem>): ReadableStream<Uint8Array> {
  const iterator =
    Symbol.asyncIterator in items ? (items as AsyncIterable<BundleItem>)[Symbol.asyncIterator]() : (items as Iterable<BundleItem>)[Symbol.iterator]();
  let headerSent = false;
  const lines = new ReadableStream<string>({
    async pull(controller) {
      if (!headerSent) {
        headerSent = true;
        controller.enqueue(`${plainJson(header, 'the bundle header')}\n`);
        return;
      }
      const next = await iterator.next();
      if (next.done) controller.close();
      else controller.enqueue(`${bundleItemLine(next.value)}\n`);
    },
    async cancel() {
      await iterator.return?.();
    },
  });
  return lines.pipeThrough(new TextEncoderStream()).pipeThrough(new CompressionStream('gzip'));
}

/** All of a stream's bytes as a Blob (e.g. to offer as a download). */
export async function streamToBlob(stream: ReadableStream<Uint8Array>, type = 'application/gzip'): Promise<Blob> {
  const blob = await new Response(stream as ReadableStream<Uint8Array<ArrayBuffer>>).blob();
  return type ? new Blob([blob], { type }) : blob;
}

// ---------------------------------------------------------------------------------------------
// Reading

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks line 1 and returns it typed. */
export function parseBundleHeader(line: string): BundleHeader {
  let header: unknown;
  try {
    header = JSON.parse(line);
  } catch {
    throw new BundleError('not a Neurolens scan bundle: the first line is not a JSON header');
  }
  if (!isObject(header) || header.format !== BUNDLE_FORMAT) {
    throw new BundleError(`not a Neurolens scan bundle: the header has no "format": "${BUNDLE_FORMAT}"`);
  }
  const version = header.version;
  if (!Number.isInteger(version) || (version as number) < 1) {
    throw new BundleError(`damaged bundle header: "version" must be a positive integer, got ${JSON.stringify(version)}`);
  }
  if ((version as number) > BUNDLE_VERSION) {
    throw new BundleError(
      `this bundle has format version ${version}, newer than this Neurolens reads (version ${BUNDLE_VERSION}); update Neurolens to import it`,
    );
  }
  if (!isObject(header.counts) || !BUNDLE_ITEM_TYPES.every((t) => isCount((header.counts as Record<string, unknown>)[t]))) {
    throw new BundleError(`damaged bundle header: "counts" must give a count for each of ${BUNDLE_ITEM_TYPES.join(', ')}`);
  }
  if (!isObject(header.scan)) throw new BundleError('damaged bundle header: "scan" must be an object');
  scanFromInit(header.scan as unknown as ScanInit, 'bundle', 0, (message) => {
    throw new BundleError(`damaged bundle header: ${message}`);
  });
  return header as unknown as BundleHeader;
}

function checkNeuronKeyAt(value: Record<string, unknown>, path: string): void {
  if (!isCount(value.layer)) throw new FormatError(`expected a non-negative integer, got ${JSON.stringify(value.layer)}`, `${path}.layer`);
  if (!isCount(value.neuron)) throw new FormatError(`expected a non-negative integer, got ${JSON.stringify(value.neuron)}`, `${path}.neuron`);
}

function checkString(value: unknown, path: string): void {
  if (typeof value !== 'string') throw new FormatError(`expected a string, got ${JSON.stringify(value)}`, path);
}

/** Validates one item (already parsed) and returns it typed; errors are FormatErrors with a path. */
export function validateBundleItem(parsed: unknown): BundleItem {
  if (!isObject(parsed)) throw new FormatError('expected a JSON object with "type" and "value"');
  const type = parsed.type;
  if (!BUNDLE_ITEM_TYPES.includes(type as BundleItemType)) {
    throw new FormatError(`unknown bundle item type ${JSON.stringify(type)} (expected one of ${BUNDLE_ITEM_TYPES.join(', ')})`, 'type');
  }
  const value = parsed.value;
  const path = 'value';
  switch (type as BundleItemType) {
    case 'neuron_record':
      return { type: 'neuron_record', value: validateNeuronRecord(value, path) };
    case 'simulation_results':
      return { type: 'simulation_results', value: validateNeuronSimulationResults(value, path) };
    case 'explanation': {
      if (!isObject(value)) throw new FormatError('expected a JSON object', path);
      checkNeuronKeyAt(value, path);
      checkString(value.explanation, `${path}.explanation`);
      if (!isCount(value.order)) throw new FormatError(`expected a non-negative integer, got ${JSON.stringify(value.order)}`, `${path}.order`);
      if (value.source !== undefined) checkString(value.source, `${path}.source`);
      if (!Number.isFinite(value.createdAt)) throw new FormatError('expected a time in milliseconds', `${path}.createdAt`);
      if (value.score !== undefined && value.score !== null && !Number.isFinite(value.score)) {
        throw new FormatError(`expected a number or null, got ${JSON.stringify(value.score)}`, `${path}.score`);
      }
      return { type: 'explanation', value: value as unknown as StoredExplanation };
    }
    case 'explanation_scores': {
      if (!isObject(value)) throw new FormatError('expected a JSON object', path);
      checkNeuronKeyAt(value, path);
      checkString(value.explanation, `${path}.explanation`);
      if (!isObject(value.scores) || value.scores.explanation !== value.explanation) {
        throw new FormatError('expected the scores object of this explanation', `${path}.scores`);
      }
      return { type: 'explanation_scores', value: value as unknown as ExplanationScoresItem };
    }
    case 'mean_tokens': {
      if (!isObject(value)) throw new FormatError('expected a JSON object', path);
      checkNeuronKeyAt(value, path);
      if (!Array.isArray(value.tokens)) throw new FormatError('expected an array', `${path}.tokens`);
      value.tokens.forEach((t: unknown, i: number) => {
        const ok =
          isObject(t) &&
          isCount(t.tokenId) &&
          typeof t.meanActivation === 'number' &&
          Number.isFinite(t.meanActivation) &&
          isCount(t.count) &&
          (t.token === undefined || typeof t.token === 'string');
        if (!ok) throw new FormatError('expected {tokenId, token?, meanActivation, count}', `${path}.tokens[${i}]`);
      });
      return { type: 'mean_tokens', value: value as unknown as MeanTokensItem };
    }
  }
}

async function toBlob(source: BundleSource): Promise<Blob> {
  if (source instanceof Blob) return source;
  if (source instanceof ArrayBuffer || source instanceof Uint8Array) return new Blob([source as BlobPart]);
  throw new BundleError('a bundle must be given as a File, Blob, ArrayBuffer or Uint8Array');
}

/** The bundle's text lines, decompressing gzip (or reading plain JSON Lines, e.g. a gunzipped bundle). */
async function* bundleLines(source: BundleSource): AsyncGenerator<string> {
  const blob = await toBlob(source);
  if (blob.size === 0) throw new BundleError('the bundle file is empty');
  const head = new Uint8Array(await blob.slice(0, 2).arrayBuffer());
  const gzipped = head[0] === 0x1f && head[1] === 0x8b;
  if (!gzipped && head[0] !== 0x7b /* { */) {
    throw new BundleError(`not a Neurolens scan bundle: expected a gzip file (${BUNDLE_EXTENSION}), whose first bytes are 1f 8b`);
  }
  let bytes: ReadableStream<Uint8Array> = blob.stream();
  if (gzipped) bytes = bytes.pipeThrough(new DecompressionStream('gzip') as unknown as TransformStream<Uint8Array, Uint8Array>);
  const reader = bytes.pipeThrough(new TextDecoderStream('utf-8', { fatal: true }) as unknown as TransformStream<Uint8Array, string>).getReader();
  let buffer = '';
  try {
    for (;;) {
      let chunk: ReadableStreamReadResult<string>;
      try {
        chunk = await reader.read();
      } catch (error) {
        const why = error instanceof Error ? error.message : String(error);
        throw new BundleError(
          gzipped
            ? `the bundle is damaged: its gzip data cannot be decompressed (${why})`
            : `the bundle is damaged: it is not UTF-8 text (${why})`,
          { cause: error },
        );
      }
      if (chunk.done) break;
      buffer += chunk.value;
      let newline = buffer.indexOf('\n');
      while (newline >= 0) {
        yield buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        newline = buffer.indexOf('\n');
      }
    }
  } finally {
    reader.releaseLock();
  }
  if (buffer !== '') yield buffer;
}

/**
 * Reads a bundle: yields the header first, then every item, validated. Checks at the end that
 * the items match the header's counts.
 */
export async function* readBundle(source: BundleSource): AsyncGenerator<{ header: BundleHeader } | { item: BundleItem; line: number }> {
  let header: BundleHeader | undefined;
  const seen: Record<BundleItemType, number> = { neuron_record: 0, simulation_results: 0, explanation: 0, explanation_scores: 0, mean_tokens: 0 };
  let line = 0;
  for await (const text of bundleLines(source)) {
    line++;
    if (header === undefined) {
      header = parseBundleHeader(text);
      yield { header };
      continue;
    }
    if (text.trim() === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new FormatError(`not valid JSON (${error instanceof Error ? error.message : String(error)})`, '', line);
    }
    let item: BundleItem;
    try {
      item = validateBundleItem(parsed);
    } catch (error) {
      if (error instanceof FormatError) throw new FormatError(error.detail, error.path, line);
      throw error;
    }
    seen[item.type]++;
    yield { item, line };
  }
  if (header === undefined) throw new BundleError('not a Neurolens scan bundle: it holds no header');
  for (const type of BUNDLE_ITEM_TYPES) {
    if (seen[type] !== header.counts[type]) {
      throw new BundleError(
        `the bundle is incomplete or damaged: its header lists ${header.counts[type]} ${type} items but it holds ${seen[type]}`,
      );
    }
  }
}

/** The whole bundle in memory: the header and the items by type (for tests and small scans). */
export async function decodeBundle(source: BundleSource): Promise<{ header: BundleHeader; items: BundleItem[] }> {
  let header: BundleHeader | undefined;
  const items: BundleItem[] = [];
  for await (const entry of readBundle(source)) {
    if ('header' in entry) header = entry.header;
    else items.push(entry.item);
  }
  return { header: header!, items };
}
