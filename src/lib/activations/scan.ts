/**
 * The neuron scan: runs every excerpt through an activation source (the model, provided
 * elsewhere), feeds the activations to ScanStatistics, reports progress, checkpoints, and stops
 * cleanly on an AbortSignal. A scan resumed from a checkpoint gives exactly the result of an
 * uninterrupted one: excerpts are added one at a time in a fixed order (`scanOrder`), and the
 * statistics' state (saved whole) is independent of batching.
 *
 * A shard (`shard: {index, count}`) scans every count-th group of SHARD_GROUP_SIZE excerpts of
 * that order; the states of all shards merge into the state of one scan (ScanStatistics.merge).
 *
 * While the statistics digest one batch, the source is already computing the next, so on a
 * backend that runs off the main thread (WebGPU, threaded WASM) the bookkeeping overlaps the model.
 * Records are built afterwards (scan-job.ts, sample-rows.ts).
 */
import { SCAN_DEFAULTS } from './scan-defaults.ts';
import { ScanStatistics, type ScanStatisticsConfig } from './scan-statistics.ts';
import { QUANTILE_SAMPLE_STREAM, samplePriority } from './seeded-random.ts';

/**
 * The model: for a batch of equally long token sequences, per layer the post-GELU activations
 * as [batch, seq, dMlp] row-major.
 */
export type ActivationSource = (batch: number[][], signal?: AbortSignal) => Promise<Map<number, Float32Array>>;

export interface ScanCheckpoint {
  /** Identifies the corpus, settings and shard; a checkpoint of another scan is refused. */
  fingerprint: string;
  excerptsDone: number;
  /** ScanStatistics.serialize() output. */
  state: ArrayBuffer[];
}

/** Shard `index` of `count` (0 ≤ index < count): see `shardExcerpts`. */
export interface ShardSpec {
  index: number;
  count: number;
}

/** Excerpts per shard group: consecutive excerpts of the scan order that go to the same shard. */
export const SHARD_GROUP_SIZE = 8;

export interface ScanCheckpointStore {
  save(checkpoint: ScanCheckpoint): Promise<void> | void;
  load(): Promise<ScanCheckpoint | null | undefined> | ScanCheckpoint | null | undefined;
}

export interface ScanProgress {
  excerptsDone: number;
  excerptsTotal: number;
  tokensDone: number;
  tokensTotal: number;
  /** Throughput of this run (excerpts restored from a checkpoint are not counted). */
  tokensPerSecond: number;
  /** Estimated seconds left; null until there is a rate. */
  etaSeconds: number | null;
}

export interface RunScanOptions extends Omit<ScanStatisticsConfig, 'layers' | 'dMlp'> {
  source: ActivationSource;
  /** Token ids of each excerpt (see corpus.ts); excerpt i is index i in the records. */
  excerpts: readonly (readonly number[])[];
  layers: number[];
  dMlp: number;
  /** Excerpts per source call (default 8); only equally long neighbours share a batch. */
  batchSize?: number;
  onProgress?: (progress: ScanProgress) => void;
  /** Aborting stops after the batch being accumulated, saves a checkpoint and throws ScanAbortedError. */
  signal?: AbortSignal;
  checkpoint?: ScanCheckpointStore;
  /** Save a checkpoint after at least this many new excerpts (default 512). */
  checkpointEvery?: number;
  /** …and at least this many seconds after the last one (default 0): bounds the time spent saving a large state. */
  checkpointMinSeconds?: number;
  /** Scan only this shard of the excerpts. */
  shard?: ShardSpec;
}

export interface ScanResult {
  stats: ScanStatistics;
  /** The excerpts this scan (or shard) covers, in scan order. */
  scanned: number[];
  /** Excerpts run through the source beyond those scanned (the shift of a shard: see runScan). */
  extraExcerptsRun: number;
  excerptsDone: number;
  tokensDone: number;
  /** Excerpts that came from a checkpoint rather than this run. */
  resumedFrom: number;
  seconds: number;
}

/** Bad scan input, a misbehaving source, or a checkpoint that does not fit. */
export class ScanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScanError';
  }
}

/** The scan (or building records) was aborted; named AbortError so generic abort handling recognises it. */
export class ScanAbortedError extends Error {
  constructor(
    readonly excerptsDone: number,
    readonly checkpointSaved: boolean,
    message = `scan aborted after ${excerptsDone} excerpts${checkpointSaved ? '; progress saved' : ''}`,
  ) {
    super(message);
    this.name = 'AbortError';
  }
}

export interface Batch {
  excerpts: number[];
  length: number;
}

/**
 * The order excerpts are scanned in: the longest excerpts first (nearly all of a corpus, so
 * batches stay full), each length in order of quantile-sample priority. Every statistic is the
 * same in any order, but in priority order a quantile bin's sample of smallest priorities fills
 * with its first arrivals and rarely changes again, where corpus order replaces a sample every
 * few excerpts; a partly done scan has also seen a uniform random part of the corpus rather than
 * its first documents. Depends only on the seed and the excerpt lengths, so a resumed scan
 * continues the same order whatever its batch size.
 */
export function scanOrder(excerpts: readonly (readonly number[])[], seed: number): number[] {
  const priority = excerpts.map((_, i) => samplePriority(seed, QUANTILE_SAMPLE_STREAM, i));
  return excerpts
    .map((_, i) => i)
    .sort((a, b) => excerpts[b].length - excerpts[a].length || priority[a] - priority[b] || a - b);
}

/**
 * The excerpts of shard `index` of `count`: every count-th group of SHARD_GROUP_SIZE consecutive
 * excerpts of `order`, starting with group `index`. So every shard gets the same mix of lengths and
 * a random part of the corpus, and the shards together hold every excerpt once.
 */
export function shardExcerpts(order: readonly number[], { index, count }: ShardSpec): number[] {
  if (!Number.isInteger(count) || count < 1 || !Number.isInteger(index) || index < 0 || index >= count) {
    throw new ScanError(`a shard is an index from 0 to count − 1 and a count of at least 1, not ${index}/${count}`);
  }
  return order.filter((_, i) => Math.floor(i / SHARD_GROUP_SIZE) % count === index);
}

/** The excerpts in the given order, split where the length changes or a batch is full. */
export function planBatches(indices: readonly number[], lengthOf: (index: number) => number, batchSize: number): Batch[] {
  const batches: Batch[] = [];
  for (const index of indices) {
    const length = lengthOf(index);
    const last = batches[batches.length - 1];
    if (last && last.length === length && last.excerpts.length < batchSize) last.excerpts.push(index);
    else batches.push({ excerpts: [index], length });
  }
  return batches;
}

function checkExcerpts(excerpts: readonly (readonly number[])[]): void {
  if (!Array.isArray(excerpts)) throw new ScanError('excerpts must be an array of token id arrays');
  excerpts.forEach((tokens, i) => {
    if (!Array.isArray(tokens) || tokens.length === 0) throw new ScanError(`excerpt ${i} is empty or not an array of token ids`);
    for (const id of tokens) {
      if (!Number.isInteger(id) || id < 0) throw new ScanError(`excerpt ${i} has an invalid token id ${String(id)}`);
    }
  });
}

/** FNV-1a over the settings and every token, so a checkpoint only resumes the same scan (and shards of different scans are not merged). */
export function scanFingerprint(settings: unknown, excerpts: readonly (readonly number[])[]): string {
  let a = 0x811c9dc5;
  let b = 0x01000193;
  const add = (value: number) => {
    a = Math.imul(a ^ (value & 0xffff), 0x01000193);
    a = Math.imul(a ^ (value >>> 16), 0x01000193);
    b = Math.imul(b ^ value, 0x5bd1e995) ^ (b >>> 15);
  };
  for (const ch of JSON.stringify(settings)) add(ch.charCodeAt(0));
  for (const tokens of excerpts) {
    add(0xfffffff ^ tokens.length);
    for (const id of tokens) add(id);
  }
  // v4: per-tracker state (scan-statistics.ts). v3 to v1 checkpoints came from older versions (one
  // accumulator with a mean-token table; v1 also scanned in corpus order, not scanOrder).
  return `v4:${excerpts.length}:${(a >>> 0).toString(16).padStart(8, '0')}${(b >>> 0).toString(16).padStart(8, '0')}`;
}

/** Calls the source for one batch of `seq`-token excerpts and checks what comes back. */
export async function fetchBatch(
  source: ActivationSource,
  batch: readonly (readonly number[])[],
  seq: number,
  layers: readonly number[],
  dMlp: number,
  signal: AbortSignal | undefined,
): Promise<Map<number, Float32Array>> {
  const activations = await source(
    batch.map((tokens) => [...tokens]),
    signal,
  );
  if (!(activations instanceof Map)) throw new ScanError('the activation source must return a Map of layer → Float32Array');
  const expected = batch.length * seq * dMlp;
  for (const layer of layers) {
    const data = activations.get(layer);
    if (!(data instanceof Float32Array)) throw new ScanError(`the activation source returned no Float32Array for layer ${layer}`);
    if (data.length !== expected) {
      throw new ScanError(`the activation source returned ${data.length} values for layer ${layer}; expected ${batch.length} × ${seq} × ${dMlp} = ${expected}`);
    }
  }
  return activations;
}

/** What a scan is before it runs: its empty statistics, the excerpts it covers in order, and what identifies its checkpoints. */
export interface ScanPlan {
  stats: ScanStatistics;
  /** Every excerpt, in scan order. */
  order: number[];
  /** The excerpts this scan (or shard) covers, in scan order. */
  scanned: number[];
  fingerprint: string;
}

export function planScan(options: Omit<ScanStatisticsConfig, 'excerptLength'> & { excerptLength?: number; excerpts: readonly (readonly number[])[]; shard?: ShardSpec }): ScanPlan {
  const { excerpts, shard, ...statsOptions } = options;
  checkExcerpts(excerpts);
  const config: ScanStatisticsConfig = {
    ...statsOptions,
    excerptLength: statsOptions.excerptLength ?? excerpts.reduce((m, e) => Math.max(m, e.length), 1),
  };
  const stats = new ScanStatistics(config);
  const order = scanOrder(excerpts, stats.config.seed);
  const scanned = shard ? shardExcerpts(order, shard) : order;
  return { stats, order, scanned, fingerprint: scanFingerprint({ config: stats.config, shard: shard ?? null }, excerpts) };
}

/** The statistics a saved checkpoint holds, once it is known to belong to the planned scan. */
export function restoreCheckpoint(saved: ScanCheckpoint, plan: Pick<ScanPlan, 'fingerprint'>): ScanStatistics {
  if (saved.fingerprint !== plan.fingerprint) {
    if (typeof saved.fingerprint === 'string' && /^v[123]:/.test(saved.fingerprint)) {
      throw new ScanError('the saved checkpoint comes from an older Neurolens, whose scan state it cannot continue; clear it to start over');
    }
    throw new ScanError('the saved checkpoint belongs to a different scan (corpus, settings or shard changed); clear it to start over');
  }
  const stats = ScanStatistics.deserialize(saved.state);
  if (stats.excerptCount !== saved.excerptsDone) throw new ScanError('the saved checkpoint is inconsistent');
  return stats;
}

/** Runs the scan (see the module comment); resumes from `checkpoint` when it holds this scan. */
export async function runScan(options: RunScanOptions): Promise<ScanResult> {
  const { source, excerpts, onProgress, signal, checkpoint, shard, batchSize = SCAN_DEFAULTS.batchSize, checkpointEvery = 512, checkpointMinSeconds = 0, ...statsOptions } =
    options;
  const plan = planScan({ ...statsOptions, excerpts, shard });
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new ScanError(`batchSize must be a positive integer, got ${batchSize}`);
  if (!(checkpointEvery >= 1)) throw new ScanError(`checkpointEvery must be at least 1, got ${checkpointEvery}`);
  if (typeof source !== 'function') throw new ScanError('source must be a function');
  const { order, scanned, fingerprint } = plan;
  let stats = plan.stats;

  let resumedFrom = 0;
  const saved = checkpoint ? await checkpoint.load() : undefined;
  if (saved) {
    stats = restoreCheckpoint(saved, plan);
    resumedFrom = saved.excerptsDone;
  }

  const layers = stats.config.layers;
  const { dMlp } = stats.config;
  const tokensTotal = scanned.reduce((sum, e) => sum + excerpts[e].length, 0);
  const batches = planBatches(scanned.slice(resumedFrom), (e) => excerpts[e].length, batchSize);
  const started = performance.now();
  let lastSaved = resumedFrom;
  let lastSavedAt = started;
  let tokensThisRun = 0;
  let extraExcerptsRun = 0;

  const save = async (): Promise<boolean> => {
    if (!checkpoint || stats.excerptCount === lastSaved) return false;
    await checkpoint.save({ fingerprint, excerptsDone: stats.excerptCount, state: stats.serialize() });
    lastSaved = stats.excerptCount;
    lastSavedAt = performance.now();
    return true;
  };
  const stop = async (): Promise<never> => {
    await save();
    throw new ScanAbortedError(stats.excerptCount, checkpoint !== undefined && lastSaved === stats.excerptCount);
  };
  const report = () => {
    if (!onProgress) return;
    const seconds = (performance.now() - started) / 1000;
    const tokensPerSecond = seconds > 0 ? tokensThisRun / seconds : 0;
    const tokensDone = stats.tokenTotal;
    onProgress({
      excerptsDone: stats.excerptCount,
      excerptsTotal: scanned.length,
      tokensDone,
      tokensTotal,
      tokensPerSecond,
      etaSeconds: tokensPerSecond > 0 ? (tokensTotal - tokensDone) / tokensPerSecond : null,
    });
  };

  report();
  if (signal?.aborted) await stop();
  // A shard that does not start with the scan's first excerpt takes its moments' shift from that
  // excerpt, as the whole scan does (see ScanStatistics.setShiftFrom).
  if (!stats.moments.hasShift && scanned.length > 0 && scanned[0] !== order[0]) {
    const first = excerpts[order[0]];
    const activations = await fetchBatch(source, [first], first.length, layers, dMlp, signal);
    stats.setShiftFrom(first.length, new Map(layers.map((layer) => [layer, { data: activations.get(layer)! }])));
    extraExcerptsRun++;
  }
  const fetchAt = (i: number) => {
    const batch = batches[i];
    const pending = fetchBatch(source, batch.excerpts.map((e) => excerpts[e]), batch.length, layers, dMlp, signal);
    // A prefetch may fail while the previous batch is still being digested (or be abandoned):
    // mark it handled now; awaiting it later still throws.
    pending.catch(() => undefined);
    return pending;
  };
  let next: Promise<Map<number, Float32Array>> | null = batches.length > 0 ? fetchAt(0) : null;
  for (let i = 0; i < batches.length; i++) {
    let activations: Map<number, Float32Array>;
    try {
      activations = await next!;
    } catch (error) {
      // The state is consistent up to the previous batch: keep it before giving up.
      if (signal?.aborted) await stop();
      await save().catch(() => undefined);
      throw error;
    }
    next = i + 1 < batches.length ? fetchAt(i + 1) : null;
    const batch = batches[i];
    const block = batch.length * dMlp;
    batch.excerpts.forEach((excerptIndex, b) => {
      stats.beginExcerpt(excerptIndex, excerpts[excerptIndex]);
      for (const layer of layers) stats.addLayer(layer, activations.get(layer)!, b * block);
      stats.endExcerpt();
    });
    tokensThisRun += batch.excerpts.length * batch.length;
    report();
    if (signal?.aborted) await stop();
    if (stats.excerptCount - lastSaved >= checkpointEvery && performance.now() - lastSavedAt >= 1000 * checkpointMinSeconds) await save();
  }
  await save();
  return {
    stats,
    scanned,
    extraExcerptsRun,
    excerptsDone: stats.excerptCount,
    tokensDone: stats.tokenTotal,
    resumedFrom,
    seconds: (performance.now() - started) / 1000,
  };
}
