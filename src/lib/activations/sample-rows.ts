/**
 * Records need each neuron's activations on its sampled excerpts (the random sample and its
 * quantile samples), which the statistics do not keep during the scan (scan-statistics.ts). They
 * are computed in one pass that runs each needed excerpt once, for all neurons at once, and
 * written to a RowSpill (storage, not the heap: about 70 rows of 64 values per neuron, 330 MB
 * for GPT-2 small in float16); records are then built a chunk of neurons at a time, reading back
 * just that chunk's rows.
 *
 * Layout (SampleRowPlan): the needed excerpts in ascending order; for each, its readers (the
 * neurons that need it) in ascending order. Row r of the spill is reader r, excerpts one after
 * another, so an excerpt's rows are written with one write, and the rows of a chunk of neurons
 * are one contiguous run per excerpt. Each row holds `excerptLength` values, float16 bits or
 * float32 as the statistics' rowPrecision, the excerpt's own length of them used.
 */
import { halfBits, halvesToNumbers } from '../model/float16.ts';
import type { NeuronRecord } from './records.ts';
import { MemoryRowSpill, type RowSpill } from './row-spill.ts';
import type { ScanStatistics } from './scan-statistics.ts';
import { ScanAbortedError, ScanError, fetchBatch, planBatches, type ActivationSource } from './scan.ts';

/** Which sampled excerpts a plan covers: those records need, or all a merge with other shards could need. */
export type SampleRowPurpose = 'records' | 'merge';

/** First index in sorted[from, to) whose value is ≥ x. */
function lowerBound(sorted: Int32Array, from: number, to: number, x: number): number {
  let lo = from;
  let hi = to;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class SampleRowPlan {
  /** Values per row (the longest excerpt). */
  readonly rowLength: number;
  readonly bytesPerValue: 2 | 4;
  /** The needed excerpts, ascending. */
  readonly excerpts: Int32Array;
  /** Readers of excerpts[p]: readers[readerStart[p] … readerStart[p + 1]), ascending; the index is the row. */
  readonly readerStart: Int32Array;
  readonly readers: Int32Array;

  private constructor(rowLength: number, bytesPerValue: 2 | 4, excerpts: Int32Array, readerStart: Int32Array, readers: Int32Array) {
    this.rowLength = rowLength;
    this.bytesPerValue = bytesPerValue;
    this.excerpts = excerpts;
    this.readerStart = readerStart;
    this.readers = readers;
  }

  /**
   * The plan for the given neurons (default all) of `stats`: for records, each neuron's
   * `excerptsToRerun`; for a merge, its `excerptsForMerge`. Depends only on the statistics, so a
   * shard's plan can be rebuilt from its saved state.
   */
  static build(stats: ScanStatistics, purpose: SampleRowPurpose, neurons?: readonly number[]): SampleRowPlan {
    const list = neurons ?? Array.from({ length: stats.neuronCount }, (_, n) => n);
    const sortedNeurons = [...new Set(list)].sort((a, b) => a - b);
    const needs = sortedNeurons.map((n) => (purpose === 'records' ? stats.excerptsToRerun(n) : stats.excerptsForMerge(n)));
    const excerpts = Int32Array.from(new Set(needs.flat())).sort();
    const position = new Map<number, number>();
    excerpts.forEach((e, p) => position.set(e, p));
    const readerStart = new Int32Array(excerpts.length + 1);
    for (const need of needs) for (const e of need) readerStart[position.get(e)! + 1]++;
    for (let p = 0; p < excerpts.length; p++) readerStart[p + 1] += readerStart[p];
    const fill = readerStart.slice(0, excerpts.length);
    const readers = new Int32Array(readerStart[excerpts.length]);
    // Neurons in ascending order, so each excerpt's readers come out sorted.
    sortedNeurons.forEach((n, i) => {
      for (const e of needs[i]) readers[fill[position.get(e)!]++] = n;
    });
    return new SampleRowPlan(stats.config.excerptLength, stats.config.rowPrecision === 'float16' ? 2 : 4, excerpts, readerStart, readers);
  }

  get rowBytes(): number {
    return this.rowLength * this.bytesPerValue;
  }

  get rowCount(): number {
    return this.readers.length;
  }

  /** Position of excerpt e in `excerpts`, or −1. */
  positionOf(e: number): number {
    const p = lowerBound(this.excerpts, 0, this.excerpts.length, e);
    return p < this.excerpts.length && this.excerpts[p] === e ? p : -1;
  }

  /** The spill row of neuron n's activations on excerpt e, or −1 when the plan has none. */
  rowOf(n: number, e: number): number {
    const p = this.positionOf(e);
    if (p < 0) return -1;
    const to = this.readerStart[p + 1];
    const r = lowerBound(this.readers, this.readerStart[p], to, n);
    return r < to && this.readers[r] === n ? r : -1;
  }
}

export interface CollectRowsOptions {
  stats: ScanStatistics;
  plan: SampleRowPlan;
  source: ActivationSource;
  /** Token ids of excerpt e (the excerpts the scan ran on). */
  tokenIds: (excerpt: number) => readonly number[];
  spill: RowSpill;
  batchSize: number;
  signal?: AbortSignal;
  onProgress?: (excerptsDone: number, excerptsTotal: number) => void;
}

/**
 * The one extra pass: runs every excerpt of the plan once (equally long excerpts batched
 * together) and writes its readers' rows to the spill. Returns the number of excerpts run.
 */
export async function collectSampleRows(options: CollectRowsOptions): Promise<number> {
  const { stats, plan, source, tokenIds, spill, batchSize, signal, onProgress } = options;
  const { layers, dMlp } = stats.config;
  const L = plan.rowLength;
  const half = plan.bytesPerValue === 2;
  const lengths = new Map<number, number>();
  for (const e of plan.excerpts) lengths.set(e, tokenIds(e).length);
  const order = [...plan.excerpts].sort((a, b) => lengths.get(a)! - lengths.get(b)! || a - b);
  const excerptsTotal = order.length;
  let done = 0;
  onProgress?.(done, excerptsTotal);
  for (const batch of planBatches(order, (e) => lengths.get(e)!, batchSize)) {
    if (signal?.aborted) throw new ScanAbortedError(stats.excerptCount, false, 'collecting the sampled excerpts was aborted');
    const activations = await fetchBatch(source, batch.excerpts.map(tokenIds), batch.length, layers, dMlp, signal);
    const bits = new Map([...activations].map(([layer, data]) => [layer, new Uint32Array(data.buffer, data.byteOffset, data.length)]));
    for (let b = 0; b < batch.excerpts.length; b++) {
      const p = plan.positionOf(batch.excerpts[b]);
      const first = plan.readerStart[p];
      const count = plan.readerStart[p + 1] - first;
      const seq = batch.length;
      const region = half ? new Uint16Array(count * L) : new Float32Array(count * L);
      for (let r = 0; r < count; r++) {
        const n = plan.readers[first + r];
        const layer = layers[Math.floor(n / dMlp)];
        const from = b * seq * dMlp + (n % dMlp);
        const to = r * L;
        if (half) {
          const source32 = bits.get(layer)!;
          for (let t = 0; t < seq; t++) region[to + t] = halfBits(source32[from + t * dMlp]);
        } else {
          const data = activations.get(layer)!;
          for (let t = 0; t < seq; t++) region[to + t] = data[from + t * dMlp];
        }
      }
      await spill.write(new Uint8Array(region.buffer), first * plan.rowBytes);
    }
    done += batch.excerpts.length;
    onProgress?.(done, excerptsTotal);
  }
  return excerptsTotal;
}

/** Where sampled rows come from: one scan's spill, or the spills of the shards of a merged one. */
export interface RowSource {
  plan: SampleRowPlan;
  spill: RowSpill;
}

/** Bytes of rows read at a time when building records (see SampleRows.chunkNeurons). */
const CHUNK_BYTES = 32 << 20;
/**
 * Records handed over at most at a time: a record of GPT-2 scale is about 100 KB of JavaScript
 * objects (token strings and numbers of some 75 excerpts), far more than its rows.
 */
const MAX_RECORDS_PER_CHUNK = 512;
/** SampleRows.offsets entry of an excerpt none of whose loaded rows were read. */
const NOT_LOADED = -0x80000000;

/** The sampled rows of a range of neurons, read back from one or more spills. */
export class SampleRows {
  private from = 0;
  private to = 0;
  /** Per source and excerpt position: what to add to a spill row to get its row in `chunk` (NOT_LOADED when none was read). */
  private offsets: Int32Array[] = [];
  private chunk = new Uint8Array(0);
  /** `chunk` as float16 bits and as float32 (rows start on multiples of 4 bytes, or 2 for float16 rows). */
  private halves = new Uint16Array(0);
  private floats = new Float32Array(0);

  constructor(
    private readonly sources: readonly RowSource[],
    /** Bytes of rows to read at a time. */
    private readonly chunkBytes = CHUNK_BYTES,
  ) {
    const lengths = new Set(sources.map((s) => `${s.plan.rowLength}:${s.plan.bytesPerValue}`));
    if (lengths.size > 1) throw new ScanError('the sampled rows to merge have different layouts');
  }

  /** Neurons per chunk so that a chunk's rows take about `chunkBytes` (on average over the neurons). */
  chunkNeurons(neuronCount: number): number {
    const bytes = this.sources.reduce((sum, s) => sum + s.plan.rowCount * s.plan.rowBytes, 0);
    if (bytes === 0) return neuronCount;
    return Math.max(1, Math.min(neuronCount, Math.floor((this.chunkBytes * neuronCount) / bytes)));
  }

  /** Reads the rows of neurons from … to − 1 (replacing the previous range). */
  async load(from: number, to: number): Promise<void> {
    const runs: { source: number; p: number; a: number; b: number }[] = [];
    let rows = 0;
    this.sources.forEach(({ plan }, s) => {
      for (let p = 0; p < plan.excerpts.length; p++) {
        const start = plan.readerStart[p];
        const end = plan.readerStart[p + 1];
        const a = lowerBound(plan.readers, start, end, from);
        const b = lowerBound(plan.readers, a, end, to);
        if (a < b) {
          runs.push({ source: s, p, a, b });
          rows += b - a;
        }
      }
    });
    const rowBytes = this.sources[0]?.plan.rowBytes ?? 0;
    if (this.chunk.length < rows * rowBytes) {
      this.chunk = new Uint8Array(rows * rowBytes);
      this.halves = new Uint16Array(this.chunk.buffer);
      this.floats = new Float32Array(this.chunk.buffer, 0, this.chunk.length >> 2);
    }
    this.offsets = this.sources.map(({ plan }) => new Int32Array(plan.excerpts.length).fill(NOT_LOADED));
    let at = 0;
    for (const { source, p, a, b } of runs) {
      await this.sources[source].spill.read(this.chunk.subarray(at * rowBytes, (at + b - a) * rowBytes), a * rowBytes);
      this.offsets[source][p] = at - a;
      at += b - a;
    }
    this.from = from;
    this.to = to;
  }

  /** Neuron n's activations on excerpt e (its first `length` values), from the loaded range; undefined when no source has them. */
  activationsOf(n: number, e: number, length: number): number[] | undefined {
    if (n < this.from || n >= this.to) throw new ScanError(`the rows of neuron index ${n} are not loaded`);
    for (let s = 0; s < this.sources.length; s++) {
      const { plan } = this.sources[s];
      const p = plan.positionOf(e);
      if (p < 0 || this.offsets[s][p] === NOT_LOADED) continue;
      const r = plan.rowOf(n, e);
      if (r < 0) continue;
      const at = (this.offsets[s][p] + r) * plan.rowLength;
      return plan.bytesPerValue === 2 ? halvesToNumbers(this.halves, at, length) : Array.from(this.floats.subarray(at, at + length));
    }
    return undefined;
  }
}

export interface BuildRecordsOptions {
  stats: ScanStatistics;
  rows: SampleRows;
  /** Display strings of excerpt e's tokens. */
  tokensOf: (excerpt: number) => readonly string[];
  /** Neuron indices (default all), built in ascending order. */
  neurons?: readonly number[];
  /** Receives the records a chunk at a time, in neuron order. */
  saveRecords: (records: NeuronRecord[]) => Promise<void> | void;
  signal?: AbortSignal;
  onProgress?: (recordsDone: number, recordsTotal: number) => void;
}

/** Builds the records chunk by chunk (bounded memory: one chunk of rows and at most MAX_RECORDS_PER_CHUNK records at a time). */
export async function buildRecordsInChunks(options: BuildRecordsOptions): Promise<number> {
  const { stats, rows, tokensOf, saveRecords, signal, onProgress } = options;
  const neurons = options.neurons ? [...new Set(options.neurons)].sort((a, b) => a - b) : Array.from({ length: stats.neuronCount }, (_, n) => n);
  const chunk = Math.min(MAX_RECORDS_PER_CHUNK, rows.chunkNeurons(stats.neuronCount));
  let done = 0;
  onProgress?.(done, neurons.length);
  for (let i = 0; i < neurons.length; ) {
    if (signal?.aborted) throw new ScanAbortedError(stats.excerptCount, false, 'building neuron records was aborted');
    const first = neurons[i];
    let end = i;
    while (end < neurons.length && neurons[end] < first + chunk) end++;
    await rows.load(first, neurons[end - 1] + 1);
    const records = neurons.slice(i, end).map((n) => stats.buildRecord(n, tokensOf, (e) => rows.activationsOf(n, e, tokensOf(e).length), 'rounded'));
    await saveRecords(records);
    done += end - i;
    i = end;
    onProgress?.(done, neurons.length);
  }
  return done;
}

export interface NeuronRecordsOptions {
  stats: ScanStatistics;
  source: ActivationSource;
  /** Token ids of each excerpt the scan ran on. */
  excerpts: readonly (readonly number[])[];
  tokensOf: (excerpt: number) => readonly string[];
  neurons: { layer: number; neuron: number }[];
  batchSize?: number;
  signal?: AbortSignal;
  /** Where the rows go meanwhile (default memory). */
  spill?: RowSpill;
}

/**
 * The records of the given neurons, in their order: one pass over the excerpts they need
 * (collectSampleRows), then buildRecordsInChunks. For a few neurons, or tests; the scan job
 * does the same for all neurons with a spill in storage.
 */
export async function buildNeuronRecords(options: NeuronRecordsOptions): Promise<NeuronRecord[]> {
  const { stats, source, excerpts, tokensOf, batchSize = 8, signal } = options;
  if (stats.excerptCount > excerpts.length) throw new ScanError(`the statistics cover ${stats.excerptCount} excerpts but only ${excerpts.length} were given`);
  const indices = options.neurons.map(({ layer, neuron }) => stats.neuronIndex(layer, neuron));
  const plan = SampleRowPlan.build(stats, 'records', indices);
  const spill = options.spill ?? new MemoryRowSpill();
  try {
    await collectSampleRows({ stats, plan, source, tokenIds: (e) => excerpts[e], spill, batchSize, signal });
    const byNeuron = new Map<number, NeuronRecord>();
    const rows = new SampleRows([{ plan, spill }]);
    await buildRecordsInChunks({
      stats,
      rows,
      tokensOf,
      neurons: indices,
      signal,
      saveRecords: (records) => {
        for (const record of records) byNeuron.set(stats.neuronIndex(record.neuron_id.layer_index, record.neuron_id.neuron_index), record);
      },
    });
    return indices.map((n) => byNeuron.get(n)!);
  } finally {
    await spill.close(true);
  }
}
