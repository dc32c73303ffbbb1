/**
 * A NeuronRecord in the form it is stored in. The record's excerpts (ActivationRecords) are split
 * into what they share with other records and what is the neuron's own:
 * - the token strings go to an ExcerptTable (each excerpt once per scan); the record keeps the
 *   excerpt's index (`excerpts`, one entry per ActivationRecord);
 * - the activations are packed into one array, one row per distinct (excerpt, values) pair, so an
 *   excerpt the record lists twice with the same values (say, in the top-K and in a quantile
 *   sample) is stored once (`rows` then says which row each ActivationRecord uses);
 * - float16 rows are entropy-coded when that is smaller (float16-coding.ts);
 * - everything else of the record is kept as it is (the "skeleton": the record with each excerpt
 *   list replaced by its length), including unknown fields; an ActivationRecord's own fields
 *   other than `tokens` and `activations` are kept too (`excerptFields`, for the rare ones that
 *   are not just the usual `dataclass_name`).
 *
 * ActivationRecords are numbered in a fixed order: random_sample, random_sample_by_quantile (bin by
 * bin), most_positive_activation_records. expand(compact(r)) deep-equals r whenever the encoding
 * keeps the values (always for `lossless`).
 */
import { summarizeNeuronRecord, type NeuronSummary } from '../activations/neuron-summary.ts';
import type { ActivationRecord, NeuronRecord } from '../activations/records.ts';
import { FormatError } from '../explain/formats.ts';
import {
  type ActivationEncoding,
  type EncodingChoice,
  encodingOf,
  losslessEncoding,
  packValues,
  type PackedArray,
  resolveEncoding,
  StoreCodecError,
  unpackValues,
} from './compact-activations.ts';
import { ExcerptTable, type IndexArray, narrowIndices } from './excerpt-table.ts';
import { decodeFloat16Stream, encodeFloat16Stream } from './float16-coding.ts';
import type { NeuronRecordRow } from './store-types.ts';

export type NeuronRecordSkeleton = Omit<
  NeuronRecord,
  'random_sample' | 'random_sample_by_quantile' | 'most_positive_activation_records'
> & {
  random_sample: number;
  random_sample_by_quantile: number[] | null;
  most_positive_activation_records: number;
};

/** Stored activations: packed values, or float16 values coded by float16-coding.ts (Uint8Array). */
export type StoredActivations = PackedArray | Uint8Array;

export interface CompactNeuronRecord {
  layer: number;
  neuron: number;
  encoding: ActivationEncoding;
  skeleton: NeuronRecordSkeleton;
  /** The excerpt (table index) of each ActivationRecord, in packing order. */
  excerpts: IndexArray;
  /** The activation row of each ActivationRecord; absent when ActivationRecord i uses row i. */
  rows?: IndexArray;
  /** Whether ActivationRecords have `dataclass_name: "ActivationRecord"` (unless `excerptFields` says otherwise). */
  named: boolean;
  /** ActivationRecords whose fields besides tokens and activations are not what `named` says: [position, fields]. */
  excerptFields?: [number, Record<string, unknown>][];
  /** Each distinct row's values, rows in order of first use; a row is as long as its excerpt. */
  activations: StoredActivations;
}

/** Every ActivationRecord of a record, in packing order, with its path in the record. */
function excerptsInOrder(record: NeuronRecord): { path: string; excerpt: ActivationRecord }[] {
  const lists = [
    { path: 'random_sample', list: record.random_sample },
    ...(record.random_sample_by_quantile ?? []).map((list, q) => ({ path: `random_sample_by_quantile[${q}]`, list })),
    { path: 'most_positive_activation_records', list: record.most_positive_activation_records },
  ];
  return lists.flatMap(({ path, list }) => list.map((excerpt, i) => ({ path: `${path}[${i}]`, excerpt })));
}

const NAMED_FIELDS = { dataclass_name: 'ActivationRecord' };

/** An ActivationRecord's fields other than tokens and activations. */
function otherFields(excerpt: ActivationRecord): Record<string, unknown> {
  const { tokens: _t, activations: _a, ...rest } = excerpt;
  return rest;
}

function isDefault(fields: Record<string, unknown>, named: boolean): boolean {
  const keys = Object.keys(fields);
  if (!named) return keys.length === 0;
  return keys.length === 1 && fields.dataclass_name === NAMED_FIELDS.dataclass_name;
}

/** True when packed[a, a+n) and packed[b, b+n) hold the same bits. */
function sameRow(packed: PackedArray, a: number, b: number, n: number): boolean {
  for (let i = 0; i < n; i++) {
    const x = packed[a + i];
    const y = packed[b + i];
    if (x !== y || (x === 0 && !Object.is(x, y))) return false;
  }
  return true;
}

/**
 * One row of values per distinct (excerpt, values) pair, rows in order of first use: `packed`
 * holds every ActivationRecord's values in turn (`lengths`), `excerpts` their excerpts. Gives each
 * ActivationRecord's row, the rows' values, and whether any row serves two ActivationRecords.
 */
function distinctRows(packed: PackedArray, excerpts: readonly number[], lengths: readonly number[]) {
  const rowOf = new Array<number>(lengths.length);
  const rowStarts: number[] = [];
  const rowLengths: number[] = [];
  const rowsOfExcerpt = new Map<number, number[]>();
  let at = 0;
  lengths.forEach((n, i) => {
    const start = at;
    at += n;
    const rows = rowsOfExcerpt.get(excerpts[i]) ?? [];
    const same = rows.find((row) => sameRow(packed, rowStarts[row], start, n));
    if (same !== undefined) {
      rowOf[i] = same;
      return;
    }
    rowOf[i] = rowStarts.length;
    rowStarts.push(start);
    rowLengths.push(n);
    rowsOfExcerpt.set(excerpts[i], [...rows, rowOf[i]]);
  });
  const shared = rowStarts.length < lengths.length;
  if (!shared) return { rowOf, values: packed, shared };
  const values = new (packed.constructor as new (n: number) => PackedArray)(rowLengths.reduce((a, b) => a + b, 0));
  let to = 0;
  rowStarts.forEach((start, row) => {
    values.set(packed.subarray(start, start + rowLengths[row]), to);
    to += rowLengths[row];
  });
  return { rowOf, values, shared };
}

/**
 * Every ActivationRecord's values in turn, in one Float64Array (boxed numbers would cost a copy of
 * each value and the collector's time); a plain array when some value is not a number, so that
 * packing names it.
 */
function allValues(items: readonly { excerpt: ActivationRecord }[]): ArrayLike<number> {
  let total = 0;
  for (const { excerpt } of items) total += excerpt.activations.length;
  const out = new Float64Array(total);
  let at = 0;
  for (const { excerpt } of items) {
    for (const v of excerpt.activations) {
      if (typeof v !== 'number') return items.flatMap(({ excerpt }) => excerpt.activations);
      out[at++] = v;
    }
  }
  return out;
}

/**
 * The stored form of a (validated) record; its excerpts' tokens go to `table`. `lossless` keeps
 * every number exactly; float16 or float32 round (see compact-activations.ts for the error bound).
 */
export function compactNeuronRecord(record: NeuronRecord, table: ExcerptTable, choice: EncodingChoice = 'lossless'): CompactNeuronRecord {
  const layer = record.neuron_id.layer_index;
  const neuron = record.neuron_id.neuron_index;
  const items = excerptsInOrder(record);
  const all = allValues(items);
  const encoding = choice === 'lossless' ? losslessEncoding(all) : resolveEncoding(all, choice);
  let packed: PackedArray;
  try {
    packed = packValues(all, encoding);
  } catch (error) {
    // Name the value's place in the record: pack excerpt by excerpt until one fails.
    for (const { path, excerpt } of items) packValues(excerpt.activations, encoding, `neuron ${layer}:${neuron} ${path}.activations`);
    throw error;
  }

  const excerpts = items.map(({ excerpt }) => table.intern(excerpt.tokens));
  const { rowOf, values, shared } = distinctRows(packed, excerpts, items.map(({ excerpt }) => excerpt.activations.length));
  let stored: StoredActivations = values;
  if (values instanceof Uint16Array) {
    const coded = encodeFloat16Stream(values);
    if (coded.byteLength < values.byteLength) stored = coded; // else (few or spread-out values) raw is smaller
  }

  const named = items.filter(({ excerpt }) => 'dataclass_name' in excerpt).length * 2 >= items.length && items.length > 0;
  const excerptFields: [number, Record<string, unknown>][] = [];
  items.forEach(({ excerpt }, i) => {
    const fields = otherFields(excerpt);
    if (!isDefault(fields, named)) excerptFields.push([i, fields]);
  });

  const { random_sample, random_sample_by_quantile, most_positive_activation_records, ...rest } = record;
  const skeleton: NeuronRecordSkeleton = {
    ...rest,
    random_sample: random_sample.length,
    random_sample_by_quantile: random_sample_by_quantile === null ? null : random_sample_by_quantile.map((bin) => bin.length),
    most_positive_activation_records: most_positive_activation_records.length,
  };
  // Keep the record's own key order (the skeleton's spread moved the lists to the end).
  const ordered = Object.fromEntries(Object.keys(record).map((key) => [key, skeleton[key as keyof NeuronRecordSkeleton]])) as NeuronRecordSkeleton;
  const compact: CompactNeuronRecord = { layer, neuron, encoding, skeleton: ordered, excerpts: narrowIndices(excerpts), named, activations: stored };
  if (shared) compact.rows = narrowIndices(rowOf);
  if (excerptFields.length > 0) compact.excerptFields = excerptFields;
  return compact;
}

/** A record's row in a scan: its excerpts renumbered from the table's indices to the scan's (`scanIndex`). */
export function recordRow(scanId: string, record: CompactNeuronRecord, scanIndex: Uint32Array): NeuronRecordRow {
  return { ...record, scanId, excerpts: narrowIndices(Array.from(record.excerpts, (e) => scanIndex[e])) };
}

/** The encoding of stored activations, from their array type. */
export function storedEncoding(activations: StoredActivations): ActivationEncoding {
  return activations instanceof Uint8Array ? 'float16' : encodingOf(activations);
}

/**
 * The record back from its stored form; `tokensOf` gives an excerpt's token strings by index.
 * Throws StoreCodecError if the stored form is inconsistent.
 */
export function expandNeuronRecord(compact: CompactNeuronRecord, tokensOf: (excerpt: number) => readonly string[]): NeuronRecord {
  const where = `stored record ${compact.layer}:${compact.neuron}`;
  if (storedEncoding(compact.activations) !== compact.encoding) {
    throw new StoreCodecError(`${where} says ${compact.encoding} but holds ${storedEncoding(compact.activations)}`);
  }
  const values: PackedArray = compact.activations instanceof Uint8Array ? decodeFloat16Stream(compact.activations) : compact.activations;
  const { skeleton, excerpts, rows } = compact;
  const bins = skeleton.random_sample_by_quantile;
  const count = skeleton.random_sample + (bins ?? []).reduce((n, b) => n + b, 0) + skeleton.most_positive_activation_records;
  if (excerpts.length !== count || (rows !== undefined && rows.length !== count)) {
    throw new StoreCodecError(`${where} is inconsistent (${excerpts.length} excerpts for ${count} places)`);
  }
  const fields = new Map(compact.excerptFields ?? []);
  const rowStarts: number[] = [];
  const rowLengths: number[] = [];
  let at = 0;
  const excerptAt = (i: number): ActivationRecord => {
    const tokens = [...tokensOf(excerpts[i])];
    const row = rows === undefined ? i : rows[i];
    if (row === rowStarts.length) {
      rowStarts.push(at);
      rowLengths.push(tokens.length);
      at += tokens.length;
    } else if (row > rowStarts.length || rowLengths[row] !== tokens.length) {
      throw new StoreCodecError(`${where} is inconsistent (ActivationRecord ${i} refers to row ${row} of ${rowStarts.length})`);
    }
    const start = rowStarts[row];
    if (start + tokens.length > values.length) {
      throw new StoreCodecError(`${where} is inconsistent (activation counts exceed the stored values)`);
    }
    const own = fields.get(i) ?? (compact.named ? NAMED_FIELDS : {});
    return { ...own, tokens, activations: unpackValues(values, start, start + tokens.length) } as ActivationRecord;
  };
  let next = 0;
  const list = (n: number) => Array.from({ length: n }, () => excerptAt(next++));
  const randomSample = list(skeleton.random_sample);
  const byQuantile = bins === null ? null : bins.map((n) => list(n));
  const mostPositive = list(skeleton.most_positive_activation_records);
  if (at !== values.length) throw new StoreCodecError(`${where} is inconsistent (${values.length - at} unused values)`);
  return {
    ...skeleton,
    random_sample: randomSample,
    random_sample_by_quantile: byQuantile,
    most_positive_activation_records: mostPositive,
  } as NeuronRecord;
}

/**
 * Records in their stored form, with the excerpts they refer to (by index in `excerpts`), and
 * each record's summary (taken from the record before it was compacted; stored beside it).
 */
export interface CompactRecords {
  excerpts: ExcerptTable;
  records: CompactNeuronRecord[];
  /** summaries[i] is the summary of records[i]. */
  summaries: NeuronSummary[];
}

/** Compacts validated records against one excerpt table; refuses two records of one neuron. */
export function compactRecords(records: readonly NeuronRecord[], encoding: EncodingChoice = 'lossless'): CompactRecords {
  const excerpts = new ExcerptTable();
  const seen = new Set<string>();
  const compact = records.map((record, i) => {
    const c = compactNeuronRecord(record, excerpts, encoding);
    const key = `${c.layer}:${c.neuron}`;
    if (seen.has(key)) throw new FormatError(`a second record of neuron ${c.layer}:${c.neuron}`, `[${i}].neuron_id`);
    seen.add(key);
    return c;
  });
  return { excerpts, records: compact, summaries: records.map(summarizeNeuronRecord) };
}
