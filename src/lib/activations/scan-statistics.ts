/**
 * Streaming per-neuron statistics over a corpus of excerpts, in bounded memory (sized by the
 * number of neurons and the configuration, never by the corpus), as four trackers that each own
 * their arrays and their section of the saved state, and merge another's state exactly:
 * - moments (moment-tracker.ts): mean, variance, skewness, excess kurtosis;
 * - top-K (top-k-tracker.ts): each neuron's most-activating excerpts, with their activations;
 * - quantile samples (quantile-tracker.ts): boundaries of the per-excerpt max and samples per bin;
 * - the random sample (random-sample-tracker.ts), shared by all neurons as in the released data.
 *
 * This class feeds them: per excerpt and layer block, the moment kernel (moment-kernel.ts) reads
 * every activation once, for the power sums, each neuron's max, and the columns of the neurons
 * reaching their top-K; the trackers then take what they need from it. Neuron index n =
 * layerSlot · dMlp + j, where layerSlot is the layer's position in `config.layers`.
 *
 * Only the top-K activations are kept. Records also need the activations of the random and
 * quantile-sample excerpts; the scan job gets those in one more pass over just those excerpts
 * (sample-rows.ts), since keeping them for every neuron during the scan would cost
 * (random + quantile samples) × 64 × 2 bytes per neuron, about 0.5 GB for GPT-2 small.
 *
 * The results do not depend on how excerpts are batched (each piece of state belongs to one
 * neuron and sees its excerpts in order), and a state merged from shards holds the same samples,
 * top excerpts and histogram as one scan, and moments that differ only by float64 rounding.
 */
import type { ActivationRecord, NeuronId, NeuronRecord } from './records.ts';
import { createMomentKernel, type MomentKernel } from './moment-kernel.ts';
import { MomentTracker, type NeuronMoments } from './moment-tracker.ts';
import { DEFAULT_HISTOGRAM, histogramEdges, QuantileTracker, type HistogramConfig, type QuantileSample } from './quantile-tracker.ts';
import { RandomSampleTracker } from './random-sample-tracker.ts';
import { SCAN_DEFAULTS } from './scan-defaults.ts';
import { QUANTILE_SAMPLE_STREAM, RANDOM_SAMPLE_STREAM, samplePriority } from './seeded-random.ts';
import { decodeState, encodeState, StateFormatError, type StateSection } from './state-codec.ts';
import { roundToPrecision, TopKTracker, type RowPrecision, type TopExcerpt } from './top-k-tracker.ts';

export type { HistogramConfig, NeuronMoments, QuantileSample, RowPrecision, TopExcerpt };
export { DEFAULT_HISTOGRAM };

export interface ScanStatisticsConfig {
  /** Layer indices, in slot order. */
  layers: number[];
  dMlp: number;
  /** Longest excerpt, in tokens. */
  excerptLength?: number;
  topK?: number;
  randomSampleSize?: number;
  /** Interior quantile levels of the per-excerpt max distribution. */
  quantiles?: readonly number[];
  /** Excerpts sampled per quantile bin. 0 turns quantile tracking off. */
  quantileSampleSize?: number;
  histogram?: HistogramConfig;
  /** Precision of stored activations; records round every activation to it (default float16). */
  rowPrecision?: RowPrecision;
  seed?: number;
}

export interface ResolvedScanStatisticsConfig {
  layers: number[];
  dMlp: number;
  excerptLength: number;
  topK: number;
  randomSampleSize: number;
  quantiles: number[];
  quantileSampleSize: number;
  histogram: HistogramConfig;
  rowPrecision: RowPrecision;
  seed: number;
}

/** Wrong use of the statistics, data that does not fit them, or a state that cannot be read. */
export class ScanStatisticsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScanStatisticsError';
  }
}

const FORMAT = 'neurolens.scan-statistics';
const FORMAT_VERSION = 1;
/** States of earlier versions, which cannot be continued. */
const OLDER_FORMATS: Record<string, string> = {
  'neurolens.neuron-stats@1': 'this scan state was saved by an older Neurolens (one accumulator with a mean-token table) and cannot be continued; clear it to start over',
  'neurolens.neuron-stats@2': 'this scan state was saved by an older Neurolens (one accumulator with a mean-token table) and cannot be continued; clear it to start over',
};
/** Token ids above this are treated as a bug. */
const MAX_TOKEN_ID = 1 << 22;

function resolveConfig(config: ScanStatisticsConfig): ResolvedScanStatisticsConfig {
  const resolved: ResolvedScanStatisticsConfig = {
    layers: [...config.layers],
    dMlp: config.dMlp,
    excerptLength: config.excerptLength ?? SCAN_DEFAULTS.excerptLength,
    topK: config.topK ?? SCAN_DEFAULTS.topK,
    randomSampleSize: config.randomSampleSize ?? SCAN_DEFAULTS.randomSampleSize,
    quantiles: [...(config.quantiles ?? SCAN_DEFAULTS.quantiles)],
    quantileSampleSize: config.quantileSampleSize ?? SCAN_DEFAULTS.quantileSampleSize,
    histogram: { ...(config.histogram ?? DEFAULT_HISTOGRAM) },
    rowPrecision: config.rowPrecision ?? 'float16',
    seed: config.seed ?? SCAN_DEFAULTS.seed,
  };
  const { layers, histogram } = resolved;
  const isCount = (v: number, lo: number, hi: number) => Number.isInteger(v) && v >= lo && v <= hi;
  const fail = (message: string): never => {
    throw new ScanStatisticsError(`invalid scan statistics config: ${message}`);
  };
  if (!Array.isArray(layers) || layers.length === 0 || !layers.every((l) => isCount(l, 0, 1e6))) fail('layers must be a non-empty list of layer indices');
  if (new Set(layers).size !== layers.length) fail('layers contains a duplicate');
  if (!isCount(resolved.dMlp, 1, 1 << 20)) fail(`dMlp must be a positive integer, got ${resolved.dMlp}`);
  if (!isCount(resolved.excerptLength, 1, 65535)) fail(`excerptLength must be a positive integer, got ${resolved.excerptLength}`);
  if (!isCount(resolved.topK, 1, 65535)) fail(`topK must be an integer from 1 to 65535, got ${resolved.topK}`);
  if (!isCount(resolved.randomSampleSize, 0, 1 << 20)) fail(`randomSampleSize must be a non-negative integer, got ${resolved.randomSampleSize}`);
  if (!isCount(resolved.quantileSampleSize, 0, 255)) fail(`quantileSampleSize must be an integer from 0 to 255, got ${resolved.quantileSampleSize}`);
  if (resolved.rowPrecision !== 'float16' && resolved.rowPrecision !== 'float32') fail('rowPrecision must be "float16" or "float32"');
  if (!Number.isInteger(resolved.seed)) fail(`seed must be an integer, got ${resolved.seed}`);
  const q = resolved.quantiles;
  if (!q.every((v, i) => v > 0 && v < 1 && (i === 0 || v > q[i - 1]))) fail('quantiles must be increasing levels strictly between 0 and 1');
  if (!isCount(histogram.bins, 3, 4096)) fail(`histogram.bins must be an integer from 3 to 4096, got ${histogram.bins}`);
  if (!(Number.isFinite(histogram.min) && Number.isFinite(histogram.max) && histogram.min < histogram.max)) fail('histogram needs finite min < max');
  if (!(histogram.unit > 0 && Number.isFinite(histogram.unit))) fail('histogram.unit must be a positive number');
  try {
    histogramEdges(histogram);
  } catch (err) {
    fail((err as Error).message);
  }
  return resolved;
}

export class ScanStatistics {
  readonly config: ResolvedScanStatisticsConfig;
  /** layers × dMlp. */
  readonly neuronCount: number;
  readonly moments: MomentTracker;
  readonly topK: TopKTracker;
  readonly randomSample: RandomSampleTracker;
  /** null when quantile tracking is off (quantileSampleSize 0). */
  readonly quantiles: QuantileTracker | null;
  private readonly slotOfLayer: Map<number, number>;
  /** Per-excerpt power sums, max and top-K entrants of one layer block. */
  private readonly kernel: MomentKernel;
  /** −∞ per neuron: the kernel's threshold while the heaps are not full (every neuron enters). */
  private readonly noThreshold: Float32Array;
  private excerptsSeen = 0;

  // The excerpt being added (only valid between beginExcerpt and endExcerpt).
  private current = -1;
  private currentLength = 0;
  private readonly layerDone: Uint8Array;

  constructor(config: ScanStatisticsConfig) {
    this.config = resolveConfig(config);
    const { layers, dMlp, excerptLength: L, topK: K, quantileSampleSize: S, histogram, rowPrecision } = this.config;
    const N = (this.neuronCount = layers.length * dMlp);
    const bytes = N * (8 * 5 + TopKTracker.bytesPerNeuron(K, L, rowPrecision) + (S > 0 ? QuantileTracker.bytesPerNeuron(histogram.bins, S) : 0));
    if (bytes > 2 ** 31) throw new ScanStatisticsError(`this configuration needs ${(bytes / 2 ** 30).toFixed(1)} GiB of state; lower topK, quantileSampleSize or histogram.bins`);
    this.slotOfLayer = new Map(layers.map((layer, slot) => [layer, slot]));
    this.kernel = createMomentKernel(dMlp, L, 'wasm-simd', rowPrecision === 'float16');
    this.noThreshold = new Float32Array(N).fill(-Infinity);
    this.layerDone = new Uint8Array(layers.length);
    this.moments = new MomentTracker(N);
    this.topK = new TopKTracker(N, K, L, rowPrecision, this.kernel, dMlp);
    this.randomSample = new RandomSampleTracker(this.config.randomSampleSize, this.config.seed);
    this.quantiles = S > 0 ? new QuantileTracker(N, histogram, this.config.quantiles, S, this.config.seed) : null;
  }

  /** Excerpts fully observed so far. */
  get excerptCount(): number {
    return this.excerptsSeen;
  }

  /** Tokens fully observed so far (each counted once, not once per neuron). */
  get tokenTotal(): number {
    return this.moments.tokens;
  }

  /** Neuron index of (layer, neuron within layer). */
  neuronIndex(layer: number, neuron: number): number {
    const slot = this.slotOfLayer.get(layer);
    if (slot === undefined) throw new ScanStatisticsError(`layer ${layer} is not tracked (tracked: ${this.config.layers.join(', ')})`);
    if (!Number.isInteger(neuron) || neuron < 0 || neuron >= this.config.dMlp) {
      throw new ScanStatisticsError(`neuron ${neuron} is out of range for dMlp ${this.config.dMlp}`);
    }
    return slot * this.config.dMlp + neuron;
  }

  neuronId(neuron: number): NeuronId {
    this.checkNeuron(neuron);
    const { layers, dMlp } = this.config;
    return { dataclass_name: 'NeuronId', layer_index: layers[Math.floor(neuron / dMlp)], neuron_index: neuron % dMlp };
  }

  private checkNeuron(neuron: number): void {
    if (!Number.isInteger(neuron) || neuron < 0 || neuron >= this.neuronCount) {
      throw new ScanStatisticsError(`neuron index ${neuron} is out of range (0 to ${this.neuronCount - 1})`);
    }
  }

  // ---- observing -------------------------------------------------------------------------

  /** Starts an excerpt; then call `addLayer` once per tracked layer and `endExcerpt`. */
  beginExcerpt(excerptIndex: number, tokenIds: ArrayLike<number>): void {
    if (this.current >= 0) throw new ScanStatisticsError(`excerpt ${this.current} was begun but not ended`);
    if (!Number.isInteger(excerptIndex) || excerptIndex < 0 || excerptIndex > 0x7fffffff) {
      throw new ScanStatisticsError(`excerpt index must be a non-negative 31-bit integer, got ${excerptIndex}`);
    }
    const length = tokenIds.length;
    if (length < 1 || length > this.config.excerptLength) {
      throw new ScanStatisticsError(`excerpt ${excerptIndex} has ${length} tokens; expected 1 to ${this.config.excerptLength}`);
    }
    for (let t = 0; t < length; t++) {
      const id = tokenIds[t];
      if (!Number.isInteger(id) || id < 0 || id > MAX_TOKEN_ID) throw new ScanStatisticsError(`excerpt ${excerptIndex} has an invalid token id ${id} at position ${t}`);
    }
    this.current = excerptIndex;
    this.currentLength = length;
    this.layerDone.fill(0);
  }

  /**
   * Adds one layer's activations for the current excerpt without copying:
   * `data[offset + t·dMlp + j]` is neuron j at token t, for t < the excerpt's length.
   */
  addLayer(layer: number, data: Float32Array, offset = 0): void {
    if (this.current < 0) throw new ScanStatisticsError('addLayer called outside beginExcerpt/endExcerpt');
    const slot = this.layerSlot(layer);
    if (this.layerDone[slot]) throw new ScanStatisticsError(`layer ${layer} was already added for excerpt ${this.current}`);
    this.checkBlock(layer, data, offset, this.currentLength);
    this.accumulateLayer(slot, data, offset);
    this.layerDone[slot] = 1;
  }

  private layerSlot(layer: number): number {
    const slot = this.slotOfLayer.get(layer);
    if (slot === undefined) throw new ScanStatisticsError(`layer ${layer} is not tracked (tracked: ${this.config.layers.join(', ')})`);
    return slot;
  }

  private checkBlock(layer: number, data: Float32Array, offset: number, seq: number): void {
    const { dMlp } = this.config;
    if (!Number.isInteger(offset) || offset < 0 || offset + seq * dMlp > data.length) {
      throw new ScanStatisticsError(`layer ${layer} activations for excerpt ${this.current}: need ${seq} × ${dMlp} values from offset ${offset}, array has ${data.length}`);
    }
  }

  /**
   * The hot path: the kernel reads the block once for every neuron's power sums and max, and
   * copies out the columns of the neurons whose max reaches their heap root (all of them until the
   * heaps are full); the moments, the quantile buffer and the top-K heaps then take their parts.
   */
  private accumulateLayer(slot: number, data: Float32Array, offset: number): void {
    const { dMlp, layers } = this.config;
    const base = slot * dMlp;
    const seq = this.currentLength;
    const { moments, topK, kernel } = this;
    if (!moments.hasShift) moments.setShift(base, dMlp, data, offset, seq);
    const block = kernel.run(data, offset, seq, moments.shift32, base, topK.full ? topK.heapRoot : this.noThreshold);
    const nonFinite = moments.addBlock(base, dMlp, kernel.sums, block.data, block.offset, seq);
    if (nonFinite >= 0) throw new ScanStatisticsError(`non-finite activation in excerpt ${this.current}, layer ${layers[slot]}, neuron ${nonFinite}`);
    this.quantiles?.addMaxima(base, kernel.max);
    topK.offer(base, this.current, seq);
  }

  /** Finishes the current excerpt; every tracked layer must have been added. */
  endExcerpt(): void {
    if (this.current < 0) throw new ScanStatisticsError('endExcerpt called without beginExcerpt');
    const missing = this.config.layers.filter((_, slot) => !this.layerDone[slot]);
    if (missing.length > 0) throw new ScanStatisticsError(`excerpt ${this.current} is missing layers ${missing.join(', ')}`);
    const { seed } = this.config;
    this.randomSample.offer(this.current, samplePriority(seed, RANDOM_SAMPLE_STREAM, this.current));
    this.quantiles?.endExcerpt(this.current, samplePriority(seed, QUANTILE_SAMPLE_STREAM, this.current));
    this.topK.endExcerpt();
    this.moments.endExcerpt(this.currentLength);
    this.excerptsSeen++;
    this.current = -1;
  }

  /** Abandons a begun excerpt. Only valid before any layer was added (state is otherwise changed). */
  cancelExcerpt(): void {
    if (this.layerDone.some((done) => done)) throw new ScanStatisticsError('cannot cancel an excerpt after layers were added');
    this.current = -1;
  }

  /** beginExcerpt + addLayer for each entry (`data[offset + t·dMlp + j]`) + endExcerpt. */
  addExcerpt(excerptIndex: number, tokenIds: ArrayLike<number>, layers: Map<number, { data: Float32Array; offset?: number }>): void {
    this.beginExcerpt(excerptIndex, tokenIds);
    for (const [layer, { data, offset }] of layers) this.addLayer(layer, data, offset ?? 0);
    this.endExcerpt();
  }

  /**
   * Sets the moments' shifts from an excerpt without adding it, before the first excerpt: shards
   * of one scan take them from its first excerpt in scan order, as the whole scan does, so their
   * moments merge exactly (see moment-tracker.ts). `layers` holds every tracked layer's
   * [seq, dMlp] block, seq = the excerpt's length.
   */
  setShiftFrom(seq: number, layers: Map<number, { data: Float32Array; offset?: number }>): void {
    if (this.excerptsSeen > 0 || this.current >= 0) throw new ScanStatisticsError('the shift can only be set before the first excerpt');
    const { dMlp } = this.config;
    for (const layer of this.config.layers) {
      const block = layers.get(layer);
      if (!block) throw new ScanStatisticsError(`setting the shift needs layer ${layer}`);
      this.checkBlock(layer, block.data, block.offset ?? 0, seq);
      this.moments.setShift(this.layerSlot(layer) * dMlp, dMlp, block.data, block.offset ?? 0, seq);
    }
    this.moments.hasShift = true;
  }

  // ---- results ---------------------------------------------------------------------------

  /** Population moments of all activations seen (excess kurtosis); null before any token. */
  momentsOf(neuron: number): NeuronMoments | null {
    this.checkNeuron(neuron);
    return this.moments.momentsOf(neuron);
  }

  /** Top-K excerpts by max activation, largest first (ties: smaller excerpt index first). */
  topExcerpts(neuron: number): TopExcerpt[] {
    this.checkNeuron(neuron);
    return this.topK.top(neuron);
  }

  /** The shared random sample, in priority (random) order. */
  randomSampleExcerpts(): number[] {
    return this.randomSample.excerpts();
  }

  /** Quantile boundaries and samples of a neuron; null when quantile tracking is off or nothing was seen. */
  quantileSample(neuron: number): QuantileSample | null {
    this.checkNeuron(neuron);
    return this.quantiles?.sample(neuron) ?? null;
  }

  /**
   * Excerpts whose activations for `neuron` must be computed again to build its record: the
   * random sample and the quantile samples, less the top-K excerpts whose activations are stored.
   */
  excerptsToRerun(neuron: number): number[] {
    const stored = new Set(this.topExcerpts(neuron).map((t) => t.excerptIndex));
    const needed = new Set(this.randomSampleExcerpts());
    for (const bin of this.quantileSample(neuron)?.bins ?? []) for (const e of bin) needed.add(e);
    return [...needed].filter((e) => !stored.has(e)).sort((a, b) => a - b);
  }

  /**
   * Every sampled excerpt a merge with other shards could put in the neuron's record: the random
   * sample and all excerpts held per histogram bin (whatever the merged quantile cuts), top-K
   * excerpts included (a merge may push them out of the top K).
   */
  excerptsForMerge(neuron: number): number[] {
    this.checkNeuron(neuron);
    const needed = new Set(this.randomSampleExcerpts());
    for (const e of this.quantiles?.heldExcerpts(neuron) ?? []) needed.add(e);
    return [...needed].sort((a, b) => a - b);
  }

  /**
   * The neuron's record in the paper's format. `tokensOf(e)` gives excerpt e's token strings;
   * `activationsOf(e)` gives this neuron's activations on excerpt e for every excerpt listed by
   * `excerptsToRerun` (others come from the stored top-K rows). All activations are rounded to
   * `rowPrecision`, so an excerpt shows the same values in every list it appears in; with
   * `supplied: 'rounded'`, activationsOf promises arrays already rounded (sampled rows), taken as
   * they are.
   */
  buildRecord(
    neuron: number,
    tokensOf: (excerpt: number) => readonly string[],
    activationsOf: (excerpt: number) => ArrayLike<number> | undefined,
    supplied: 'raw' | 'rounded' = 'raw',
  ): NeuronRecord {
    if (this.current >= 0) throw new ScanStatisticsError('cannot build records while an excerpt is being added');
    this.checkNeuron(neuron);
    const precision = this.config.rowPrecision;
    const stored = this.topK.storedRows(neuron, (e) => tokensOf(e).length);
    const record = (excerpt: number): ActivationRecord => {
      // The excerpt's own array, shared by every record that shows it (records are not edited in
      // place): the store recognises an excerpt it has seen by its array, without hashing its strings.
      const tokens = tokensOf(excerpt) as string[];
      let activations = stored.get(excerpt);
      if (!activations) {
        const values = activationsOf(excerpt);
        if (!values) throw new ScanStatisticsError(`activations of excerpt ${excerpt} for neuron ${neuron} were not supplied`);
        activations = supplied === 'rounded' && Array.isArray(values) ? values : Array.from(values, (v) => roundToPrecision(v, precision));
      }
      if (activations.length !== tokens.length) {
        throw new ScanStatisticsError(`excerpt ${excerpt}: ${tokens.length} tokens but ${activations.length} activations`);
      }
      return { dataclass_name: 'ActivationRecord', tokens, activations };
    };
    const moments = this.momentsOf(neuron);
    const quantiles = this.quantileSample(neuron);
    const maxOf = (values: number[]) => {
      let max = -Infinity;
      for (const v of values) if (v > max) max = v;
      return max;
    };
    const byMax = (records: ActivationRecord[]) =>
      records
        .map((r, i) => ({ r, i, max: maxOf(r.activations) }))
        .sort((a, b) => a.max - b.max || a.i - b.i)
        .map((x) => x.r);
    return {
      dataclass_name: 'NeuronRecord',
      neuron_id: this.neuronId(neuron),
      random_sample: this.randomSampleExcerpts().map(record),
      random_sample_by_quantile: quantiles ? quantiles.bins.map((bin) => byMax(bin.map(record))) : null,
      quantile_boundaries: quantiles ? quantiles.boundaries : null,
      mean: moments?.mean ?? null,
      variance: moments?.variance ?? null,
      skewness: moments?.skewness ?? null,
      kurtosis: moments?.kurtosis ?? null,
      most_positive_activation_records: this.topExcerpts(neuron).map((t) => record(t.excerptIndex)),
    };
  }

  // ---- merging and saved state ------------------------------------------------------------

  /**
   * Takes another state of the same configuration, over other excerpts (a shard of the same
   * scan), in: every tracker merges exactly (see the module comment).
   */
  merge(other: ScanStatistics): void {
    if (this.current >= 0 || other.current >= 0) throw new ScanStatisticsError('cannot merge while an excerpt is being added');
    if (JSON.stringify(this.config) !== JSON.stringify(other.config)) throw new ScanStatisticsError('cannot merge statistics of different configurations');
    try {
      this.moments.merge(other.moments);
    } catch (err) {
      throw new ScanStatisticsError((err as Error).message);
    }
    this.topK.merge(other.topK);
    this.randomSample.merge(other.randomSample);
    if (this.quantiles && other.quantiles) this.quantiles.merge(other.quantiles);
    this.excerptsSeen += other.excerptsSeen;
  }

  private sections(): StateSection[] {
    return [this.moments.section(), this.topK.section(), this.randomSample.section(), ...(this.quantiles ? [this.quantiles.section()] : [])];
  }

  /**
   * The whole state as binary parts (see state-codec.ts): one section per tracker. Only between
   * excerpts. The parts are copies, so the statistics can keep running.
   */
  serialize(): ArrayBuffer[] {
    if (this.current >= 0) throw new ScanStatisticsError('cannot serialize while an excerpt is being added');
    return encodeState(FORMAT, FORMAT_VERSION, { config: this.config, excerptsSeen: this.excerptsSeen }, this.sections());
  }

  static deserialize(parts: readonly ArrayBuffer[]): ScanStatistics {
    try {
      const { header, sections } = decodeState(parts, FORMAT, FORMAT_VERSION, OLDER_FORMATS);
      if (typeof header.config !== 'object' || header.config === null) throw new StateFormatError('not a valid scan statistics state: no config');
      const stats = new ScanStatistics(header.config as ScanStatisticsConfig);
      const expected = stats.sections().map((s) => s.name);
      if (sections.size !== expected.length || !expected.every((name) => sections.has(name))) {
        throw new StateFormatError(`not a valid scan statistics state: sections ${[...sections.keys()].join(', ')}, expected ${expected.join(', ')}`);
      }
      stats.moments.restore(sections);
      stats.topK.restore(sections);
      stats.randomSample.restore(sections);
      stats.quantiles?.restore(sections);
      const seen = header.excerptsSeen;
      const counts = [stats.topK.excerpts, ...(stats.quantiles ? [stats.quantiles.excerpts] : [])];
      if (typeof seen !== 'number' || !counts.every((c) => c === seen)) throw new StateFormatError('not a valid scan statistics state: the trackers disagree on the excerpt count');
      stats.excerptsSeen = seen;
      return stats;
    } catch (err) {
      if (err instanceof StateFormatError || err instanceof ScanStatisticsError) throw new ScanStatisticsError(err.message);
      throw err;
    }
  }
}
