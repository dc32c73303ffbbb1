/**
 * Streaming per-neuron statistics over a corpus of excerpts, in bounded memory: everything here
 * is sized by the number of neurons and the configuration, never by the corpus.
 *
 * Per neuron (neuron index n = layerSlot · dMlp + j, layerSlot = position in `config.layers`):
 * - top-K excerpts by max activation: a min-heap of (max, excerpt index), ties broken towards the
 *   smaller excerpt index, with the excerpt's activations stored when it enters the heap (so the
 *   top records need no second pass). Most excerpts fail one comparison against the heap root.
 * - moments of all per-token activations: power sums of (x − shift), per excerpt in float32 (the
 *   moment kernel's SIMD lanes) and over the corpus in float64, where the shift is the neuron's
 *   mean on the first excerpt (keeps cancellation small); about 1e-6 relative error. Kurtosis is
 *   *excess* kurtosis (normal = 0); see `momentsOf`.
 * - a histogram of per-excerpt maxima on fixed bins, equally spaced in asinh(x / unit) so they are
 *   fine near zero and relatively even for large values, from which quantile boundaries are read.
 * - per histogram bin, the `quantileSampleSize` excerpts of smallest quantile-stream priority
 *   (see seeded-random.ts). A quantile bin is a union of histogram bins, and the smallest
 *   priorities of a union are among the smallest of its parts, so each quantile bin gets an exact
 *   uniform sample of the excerpts in it.
 * - approximate tokens with the highest mean activation (see `topMeanTokens`): candidates are
 *   nominated in batches, after excerpts 1, 4, 16, 64, …, from the tokens at which the neuron's
 *   top-K excerpts peak (see `nominateCandidates`); each mean is exact over the occurrences since
 *   its token's nomination, up to a settled sample of 1,024 or more.
 * Shared by all neurons (as in the paper's released data): a uniform random sample of excerpts,
 * the `randomSampleSize` excerpts of smallest random-stream priority.
 *
 * Only the top-K activations are stored. Records also need the activations of the random and
 * quantile-sample excerpts; those are recomputed by re-running the model on the excerpts
 * `excerptsToRerun` lists (scan.ts does this), because storing them for every neuron would cost
 * (random + quantile samples) × 64 × 4 bytes per neuron — about 0.9 GB for GPT-2 small.
 *
 * Approximation (documented): quantile boundaries are histogram bin edges, the edge whose
 * empirical CDF is closest to each quantile level, so the levels are approximate (within one
 * bin's mass) while every sampled excerpt lies exactly inside its reported bin. The first and last
 * boundary are the smallest and largest per-excerpt max (the released data leaves them null).
 * Default levels 0.5, 0.9, 0.99, 0.999: inferred from the released GPT-2 XL records, whose
 * random sample has 48% and 92% of its excerpt maxima below the first two boundaries.
 *
 * Memory per neuron (defaults K=20, L=64, float16 rows, 64 bins, 5 samples, 10 token candidates):
 * top-K rows 2,560 B + heap 204 B + histogram state 768 B + quantile samples 1,280 B + moments
 * 44 B + token candidates 280 B (with their bucket entries) + peak tokens 80 B + buffered maxima
 * 512 B ≈ 5.7 KB: 210 MB for GPT-2 small (36,864 neurons), plus per-token tables of 4 bytes per
 * vocabulary entry (and per layer for the candidate runs: 3.1 MB for GPT-2 small) and about 2 MB
 * of per-layer scratch.
 *
 * Speed: adding an excerpt reads each activation once, in the moment kernel (moment-kernel.ts,
 * WebAssembly SIMD), which also copies out the columns of the neurons reaching their top-K;
 * after that, a neuron costs a comparison unless its excerpt max enters its top-K, or the excerpt
 * holds one of its candidate tokens (see accumulateLayer); the candidate set only changes at the
 * nominations, off the hot path. Excerpt maxima are binned in batches
 * of PENDING_EXCERPTS, in WebAssembly where available (histogram-kernel.ts). The state a neuron's
 * top-K entry or candidate token touches is laid out to take few cache lines (after a forward
 * pass of the model, little of it is still cached). The results do not depend on how the work is
 * ordered (each piece of state belongs to one neuron and sees its excerpts in order), and are
 * bit-for-bit those of the straightforward per-neuron loop.
 */
import type { ActivationRecord, NeuronId, NeuronRecord } from './records.ts';
import { float16ToFloat32, halfBits } from '../model/float16.ts';
import { createHistogramKernel, type HistogramKernel } from './histogram-kernel.ts';
import { createMomentKernel, type MomentKernel } from './moment-kernel.ts';
import { priorityBefore, QUANTILE_SAMPLE_STREAM, RANDOM_SAMPLE_STREAM, samplePriority } from './seeded-random.ts';

export interface HistogramConfig {
  /** Number of bins, including one below `min` and one at or above `max` (≥ 3). */
  bins: number;
  min: number;
  max: number;
  /** Bins are equally spaced in asinh(x / unit): about `unit` wide near zero. */
  unit: number;
}

export interface NeuronStatsConfig {
  /** Layer indices, in slot order. */
  layers: number[];
  dMlp: number;
  /** Longest excerpt, in tokens (default 64). */
  excerptLength?: number;
  topK?: number;
  randomSampleSize?: number;
  /** Interior quantile levels of the per-excerpt max distribution (default 0.5, 0.9, 0.99, 0.999). */
  quantiles?: number[];
  /** Excerpts sampled per quantile bin (default 5; the paper used 20). 0 turns quantile tracking off. */
  quantileSampleSize?: number;
  histogram?: HistogramConfig;
  /** Candidate tokens tracked per neuron for `topMeanTokens` (default 10; 0 turns it off). */
  topTokenCandidates?: number;
  /** Precision of stored activations; records round every activation to it (default float16). */
  rowPrecision?: 'float16' | 'float32';
  seed?: number;
}

export type ResolvedNeuronStatsConfig = Required<NeuronStatsConfig>;

export const DEFAULT_HISTOGRAM: HistogramConfig = { bins: 64, min: -0.2, max: 100, unit: 0.01 };

export interface NeuronMoments {
  mean: number;
  variance: number;
  /** null when the variance is 0. */
  skewness: number | null;
  /** Excess kurtosis (normal = 0); null when the variance is 0. */
  kurtosis: number | null;
}

export interface TopExcerpt {
  excerptIndex: number;
  maxActivation: number;
}

export interface QuantileSample {
  /** One more than the number of bins: smallest excerpt max, interior edges, largest excerpt max. */
  boundaries: number[];
  /** Per bin, the sampled excerpt indices in priority (random) order. */
  bins: number[][];
}

export interface MeanToken {
  tokenId: number;
  meanActivation: number;
  /** Occurrences the mean is taken over. */
  count: number;
}

/** Wrong use of the accumulator or data that does not fit it. */
export class NeuronStatsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NeuronStatsError';
  }
}

type StateArray = Float64Array | Float32Array | Int32Array | Uint32Array | Uint16Array | Uint8Array;

const FORMAT = 'neurolens.neuron-stats';
/** 2: candidates nominated in batches (rowPeakToken added, candidateFloor gone). */
const FORMAT_VERSION = 2;
/** Token ids above this are treated as a bug rather than grown into a huge table. */
const MAX_TOKEN_ID = 1 << 22;
/** Excerpts whose maxima are buffered before binning (see flushPending). */
const PENDING_EXCERPTS = 128;
/** Neurons binned per histogram-kernel call (its event buffer holds this many × PENDING_EXCERPTS). */
const PENDING_GROUP = 16;
/** Entries of the quantile-priority cache (a power of two). */
const PRIORITY_CACHE_SIZE = 1 << 14;
/** Occurrences after which a candidate token's mean is settled (see nominateCandidates): its standard error is then σ/32 or less. */
const SETTLED_OCCURRENCES = 1024;

function resolveConfig(config: NeuronStatsConfig): ResolvedNeuronStatsConfig {
  const resolved: ResolvedNeuronStatsConfig = {
    layers: [...config.layers],
    dMlp: config.dMlp,
    excerptLength: config.excerptLength ?? 64,
    topK: config.topK ?? 20,
    randomSampleSize: config.randomSampleSize ?? 50,
    quantiles: [...(config.quantiles ?? [0.5, 0.9, 0.99, 0.999])],
    quantileSampleSize: config.quantileSampleSize ?? 5,
    histogram: { ...(config.histogram ?? DEFAULT_HISTOGRAM) },
    topTokenCandidates: config.topTokenCandidates ?? 10,
    rowPrecision: config.rowPrecision ?? 'float16',
    seed: config.seed ?? 0,
  };
  const { layers, histogram } = resolved;
  const isCount = (v: number, lo: number, hi: number) => Number.isInteger(v) && v >= lo && v <= hi;
  const fail = (message: string): never => {
    throw new NeuronStatsError(`invalid neuron statistics config: ${message}`);
  };
  if (layers.length === 0 || !layers.every((l) => isCount(l, 0, 1e6))) fail('layers must be a non-empty list of layer indices');
  if (new Set(layers).size !== layers.length) fail('layers contains a duplicate');
  if (!isCount(resolved.dMlp, 1, 1 << 20)) fail(`dMlp must be a positive integer, got ${resolved.dMlp}`);
  if (!isCount(resolved.excerptLength, 1, 65535)) fail(`excerptLength must be a positive integer, got ${resolved.excerptLength}`);
  if (!isCount(resolved.topK, 1, 65535)) fail(`topK must be an integer from 1 to 65535, got ${resolved.topK}`);
  if (!isCount(resolved.randomSampleSize, 0, 1 << 20)) fail(`randomSampleSize must be a non-negative integer, got ${resolved.randomSampleSize}`);
  if (!isCount(resolved.quantileSampleSize, 0, 255)) fail(`quantileSampleSize must be an integer from 0 to 255, got ${resolved.quantileSampleSize}`);
  if (!isCount(resolved.topTokenCandidates, 0, 1024)) fail(`topTokenCandidates must be an integer from 0 to 1024, got ${resolved.topTokenCandidates}`);
  if (resolved.rowPrecision !== 'float16' && resolved.rowPrecision !== 'float32') fail('rowPrecision must be "float16" or "float32"');
  if (!Number.isInteger(resolved.seed)) fail(`seed must be an integer, got ${resolved.seed}`);
  const q = resolved.quantiles;
  if (!q.every((v, i) => v > 0 && v < 1 && (i === 0 || v > q[i - 1]))) fail('quantiles must be increasing levels strictly between 0 and 1');
  if (!isCount(histogram.bins, 3, 4096)) fail(`histogram.bins must be an integer from 3 to 4096, got ${histogram.bins}`);
  if (!(Number.isFinite(histogram.min) && Number.isFinite(histogram.max) && histogram.min < histogram.max)) fail('histogram needs finite min < max');
  if (!(histogram.unit > 0 && Number.isFinite(histogram.unit))) fail('histogram.unit must be a positive number');
  return resolved;
}

/** Edges of the histogram: edges[0] = −∞, edges[bins] = +∞, edges[1] = min, edges[bins−1] = max. */
function histogramEdges({ bins, min, max, unit }: HistogramConfig): Float64Array {
  const edges = new Float64Array(bins + 1);
  const a = Math.asinh(min / unit);
  const step = (Math.asinh(max / unit) - a) / (bins - 2);
  edges[0] = -Infinity;
  for (let j = 1; j < bins; j++) edges[j] = unit * Math.sinh(a + (j - 1) * step);
  edges[1] = min;
  edges[bins - 1] = max;
  edges[bins] = Infinity;
  for (let j = 1; j < bins; j++) {
    if (!(edges[j] > edges[j - 1])) throw new NeuronStatsError('histogram bins are too narrow to tell apart; use fewer bins or a wider range');
  }
  return edges;
}

/** The bin of x: the j with edges[j] ≤ x < edges[j + 1] (binary search). */
function binByEdges(edges: Float64Array, x: number): number {
  let lo = 0;
  let hi = edges.length - 2;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (x >= edges[mid]) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Marks a binsByBits entry whose floats fall in more than one bin. */
const SEVERAL_BINS = 0xffff;

/**
 * Binning without transcendental functions or searches: entry i is the bin of every float32
 * whose top 16 bits (sign, exponent, 7 mantissa bits) are i, or SEVERAL_BINS for the few
 * entries an edge falls inside. Bins are monotone in x, so the two ends of an entry's range
 * decide. 128 KB, and the maxima of one neuron use few entries.
 */
function binsByBits(edges: Float64Array): Uint16Array {
  const table = new Uint16Array(1 << 16);
  const float = new Float32Array(2);
  const bits = new Uint32Array(float.buffer);
  for (let i = 0; i < table.length; i++) {
    bits[0] = i << 16;
    bits[1] = (i << 16) | 0xffff;
    const [a, b] = float;
    if (!Number.isFinite(a) || !Number.isFinite(b)) {
      table[i] = SEVERAL_BINS; // infinities and NaNs: never binned (the scan refuses them)
      continue;
    }
    const first = binByEdges(edges, a);
    table[i] = first === binByEdges(edges, b) ? first : SEVERAL_BINS;
  }
  return table;
}

// float32 → IEEE half bits, round to nearest even (Node 20 has no Float16Array).
const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);
function float16Bits(value: number): number {
  f32Scratch[0] = value;
  return halfBits(u32Scratch[0]);
}

/** Working arrays of nominateCandidates, reused for every neuron. */
interface NominationScratch {
  /** Candidate sums by slot (see candidateSums), updated in place. */
  sums: Float64Array;
  mark: Int32Array;
  nomineeOf: Int32Array;
  keptSlot: Int32Array;
  keptMean: Float64Array;
  nomineeToken: Int32Array;
  nomineeValue: Float32Array;
  nomineeExcerpt: Int32Array;
  newToken: Int32Array;
  newSum: Float64Array;
  newBase: Int32Array;
  newSettled: Int32Array;
}

/** 1, 4, 16, 64, …: when the token candidates are renewed (see nominateCandidates). */
function isPowerOfFour(count: number): boolean {
  return count > 0 && (count & (count - 1)) === 0 && (Math.clz32(count) & 1) === 1;
}

function roundToFloat16(value: number): number {
  return float16ToFloat32(Uint16Array.of(float16Bits(value)))[0];
}

export class NeuronStatsAccumulator {
  readonly config: ResolvedNeuronStatsConfig;
  /** layers × dMlp. */
  readonly neuronCount: number;
  private readonly slotOfLayer: Map<number, number>;
  private readonly edges: Float64Array;
  /** Bins by float32 bits (see binsByBits). */
  private readonly binByBits: Uint16Array;

  private excerptsSeen = 0;
  private tokensSeen = 0;
  private randomCount = 0;

  // Persistent state (serialised): see `stateArrays`.
  private readonly shift: Float64Array;
  /** `shift` as float32 (its values are float32 already), the moment kernel's input; derived. */
  private readonly shift32: Float32Array;
  /** 4 per neuron: Σd, Σd², Σd³, Σd⁴ with d = x − shift. */
  private readonly powerSums: Float64Array;
  private readonly minExcerptMax: Float32Array;
  private readonly heapValue: Float32Array;
  /** heapValue at each neuron's root (the K-th best max), contiguous for the hot loop; derived, not serialised. */
  private readonly heapRoot: Float32Array;
  private readonly heapExcerpt: Int32Array;
  private readonly heapSlot: Uint16Array;
  private readonly rows: Uint16Array | Float32Array;
  /**
   * 3 per (neuron, bin), together so one cache line serves the hot path: excerpts in the bin,
   * priority of the bin's lowest-ranked sample (the one a better excerpt replaces), and
   * samples held | that sample's slot << 8.
   */
  private readonly binState: Uint32Array;
  private readonly quantileSlots: Int32Array;
  /** Excerpt maxima not yet binned ([PENDING_EXCERPTS][neuron]), with their excerpts and priorities. */
  private readonly pendingMax: Float32Array;
  /** pendingMax's bits. */
  private readonly pendingBits: Uint32Array;
  private readonly pendingExcerpt = new Int32Array(PENDING_EXCERPTS);
  private readonly pendingPriority: Uint32Array;
  /** Binning in WebAssembly (histogram-kernel.ts), whose memory holds the bin table, binState and the buffered maxima; null where unavailable or with quantile tracking off. */
  private readonly histogramKernel: HistogramKernel | null;
  private pendingCount = 0;
  /** Recently used quantile-stream priorities by excerpt (see quantilePriority); derived. */
  private readonly priorityCacheKey = new Int32Array(PRIORITY_CACHE_SIZE).fill(-1);
  private readonly priorityCacheValue = new Uint32Array(PRIORITY_CACHE_SIZE);
  /**
   * Token candidates, C slots per neuron (slot k = n·C + c): the token (−1 for none) and the
   * token's global count when it was nominated (its mean covers the later occurrences). The set
   * changes only in `nominateCandidates`.
   */
  private readonly candidateToken: Int32Array;
  private readonly candidateBase: Int32Array;
  /** Per slot, 0 while the candidate's occurrences are still added, else the fixed count of a settled candidate (see nominateCandidates). */
  private readonly candidateSettled: Int32Array;
  /**
   * The candidates' sums of activations in bucket order: per layer, sorted by token and then
   * neuron, so an excerpt's occurrences of a token add to one contiguous run (see
   * addCandidateOccurrences). `bucketNeuron` is each entry's neuron within its layer, `slotBucket`
   * each slot's entry (−1 for an empty slot), and `bucketStart[layerSlot · (bucketTokens + 1) + t]`
   * the first entry of token t (tokens ≥ bucketTokens have none). Only the sums are state; the
   * order is rebuilt from the slots (rebuildBuckets).
   */
  private readonly bucketSum: Float64Array;
  private readonly bucketNeuron: Int32Array;
  private readonly slotBucket: Int32Array;
  private bucketStart = new Int32Array(0);
  private bucketTokens = 0;
  /** Token at the (first) peak of each stored top-K row, indexed like the rows (n·K + row slot): the nominees. */
  private readonly rowPeakToken: Int32Array;

  private tokenCount: Int32Array;
  private readonly randomSample: Int32Array;

  // Per-excerpt working state (not serialised; only valid between beginExcerpt and endExcerpt).
  private current = -1;
  private currentLength = 0;
  private currentRandomPriority = 0;
  private currentQuantilePriority = 0;
  private readonly currentTokens: Int32Array;
  private readonly layerDone: Uint8Array;
  private tokenHead: Int32Array;
  /** The distinct tokens of the current excerpt, in order of first occurrence. */
  private readonly distinctTokens: Int32Array;
  private distinctCount = 0;
  /** Occurrences of each token in the current excerpt (0 for absent tokens: cleared at the end). */
  private tokenOccurrences: Uint16Array;
  private readonly nextPosition: Int32Array;
  /** Per-excerpt power sums and max of one layer block (see moment-kernel.ts). */
  private readonly kernel: MomentKernel;
  /** The kernel's `columns` as float32 bits, and its `halfColumns` as pairs (32-bit words). */
  private readonly columnBits: Uint32Array;
  private readonly halfColumnPairs: Uint32Array;
  /** −∞ per neuron: the kernel's threshold while the heaps are not full (every neuron enters). */
  private readonly noThreshold: Float32Array;
  /** Neurons (within the layer) entering their top-K in the current layer block, and their column in the kernel's `columns`. */
  private readonly entering: Int32Array;
  private readonly enteringColumn: Int32Array;
  /** Sink of touchHeaps. */
  private touched = 0;
  /** `rows` as raw bits (itself for float16, a Uint32Array view for float32). */
  private readonly rowUnits: Uint16Array | Uint32Array;
  /** Float16 rows as pairs of values (32-bit words) when L is even, else null. */
  private readonly rowPairs: Uint32Array | null;

  constructor(config: NeuronStatsConfig) {
    this.config = resolveConfig(config);
    const { layers, dMlp, excerptLength: L, topK: K, quantileSampleSize: S, topTokenCandidates: C } = this.config;
    const N = (this.neuronCount = layers.length * dMlp);
    const F = this.quantileTracking ? this.config.histogram.bins : 0;
    this.slotOfLayer = new Map(layers.map((layer, slot) => [layer, slot]));
    this.edges = histogramEdges(this.config.histogram);
    this.histogramKernel = F > 0 ? createHistogramKernel(N, F, PENDING_EXCERPTS, PENDING_GROUP) : null;
    const kernel = this.histogramKernel;
    this.binByBits = kernel ? kernel.binByBits : new Uint16Array(1 << 16);
    this.binByBits.set(binsByBits(this.edges));

    const rowBytes = this.config.rowPrecision === 'float16' ? 2 : 4;
    const bytes = N * (8 * 5 + 8 + K * (10 + L * rowBytes) + (F > 0 ? F * (12 + 4 * S) + 4 * PENDING_EXCERPTS : 0) + (C > 0 ? C * 28 + K * 4 : 0));
    if (bytes > 2 ** 31) throw new NeuronStatsError(`this configuration needs ${(bytes / 2 ** 30).toFixed(1)} GiB of state; lower topK, quantileSampleSize or histogram.bins`);
    this.shift = new Float64Array(N);
    this.shift32 = new Float32Array(N);
    this.powerSums = new Float64Array(4 * N);
    this.minExcerptMax = new Float32Array(N).fill(Infinity);
    this.heapValue = new Float32Array(N * K);
    this.heapRoot = new Float32Array(N);
    this.heapExcerpt = new Int32Array(N * K);
    this.heapSlot = new Uint16Array(N * K);
    this.rows = this.config.rowPrecision === 'float16' ? new Uint16Array(N * K * L) : new Float32Array(N * K * L);
    this.binState = kernel ? kernel.binState : new Uint32Array(N * F * 3);
    this.quantileSlots = new Int32Array(N * F * S);
    this.pendingMax = kernel ? kernel.pendingMax : new Float32Array(F > 0 ? N * PENDING_EXCERPTS : 0);
    this.pendingBits = new Uint32Array(this.pendingMax.buffer, this.pendingMax.byteOffset, this.pendingMax.length);
    this.pendingPriority = kernel ? kernel.pendingPriority : new Uint32Array(PENDING_EXCERPTS);
    this.candidateToken = new Int32Array(N * C).fill(-1);
    this.candidateBase = new Int32Array(N * C);
    this.candidateSettled = new Int32Array(N * C);
    this.bucketSum = new Float64Array(N * C);
    this.bucketNeuron = new Int32Array(N * C);
    this.slotBucket = new Int32Array(N * C).fill(-1);
    this.rowPeakToken = new Int32Array(C > 0 ? N * K : 0).fill(-1);

    this.tokenCount = new Int32Array(C > 0 ? 1024 : 0);
    this.randomSample = new Int32Array(this.config.randomSampleSize);

    this.currentTokens = new Int32Array(L);
    this.layerDone = new Uint8Array(layers.length);
    this.tokenHead = new Int32Array(this.tokenCount.length);
    this.distinctTokens = new Int32Array(L);
    this.tokenOccurrences = new Uint16Array(this.tokenCount.length);
    this.nextPosition = new Int32Array(L);
    this.kernel = createMomentKernel(dMlp, L, 'wasm-simd', this.config.rowPrecision === 'float16');
    this.entering = new Int32Array(dMlp);
    this.enteringColumn = new Int32Array(dMlp);
    const { columns, halfColumns } = this.kernel;
    this.columnBits = new Uint32Array(columns.buffer, columns.byteOffset, columns.length);
    this.halfColumnPairs = new Uint32Array(halfColumns.buffer, halfColumns.byteOffset, halfColumns.length >> 1);
    this.noThreshold = new Float32Array(N).fill(-Infinity);
    const halfRows = this.rows instanceof Uint16Array;
    this.rowUnits = halfRows ? (this.rows as Uint16Array) : new Uint32Array(this.rows.buffer);
    this.rowPairs = halfRows && L % 2 === 0 ? new Uint32Array(this.rows.buffer) : null;
  }

  private get quantileTracking(): boolean {
    return this.config.quantileSampleSize > 0;
  }

  /** Excerpts fully observed so far. */
  get excerptCount(): number {
    return this.excerptsSeen;
  }

  /** Tokens fully observed so far (each counted once, not once per neuron). */
  get tokenTotal(): number {
    return this.tokensSeen;
  }

  /** Neuron index of (layer, neuron within layer). */
  neuronIndex(layer: number, neuron: number): number {
    const slot = this.slotOfLayer.get(layer);
    if (slot === undefined) throw new NeuronStatsError(`layer ${layer} is not tracked (tracked: ${this.config.layers.join(', ')})`);
    if (!Number.isInteger(neuron) || neuron < 0 || neuron >= this.config.dMlp) {
      throw new NeuronStatsError(`neuron ${neuron} is out of range for dMlp ${this.config.dMlp}`);
    }
    return slot * this.config.dMlp + neuron;
  }

  neuronId(neuron: number): NeuronId {
    this.checkNeuron(neuron);
    const { layers, dMlp } = this.config;
    return { dataclass_name: 'NeuronId', layer_index: layers[Math.floor(neuron / dMlp)], neuron_index: neuron % dMlp };
  }

  // ---- observing -------------------------------------------------------------------------

  /** Starts an excerpt; then call `addLayer` once per tracked layer and `endExcerpt`. */
  beginExcerpt(excerptIndex: number, tokenIds: ArrayLike<number>): void {
    if (this.current >= 0) throw new NeuronStatsError(`excerpt ${this.current} was begun but not ended`);
    if (!Number.isInteger(excerptIndex) || excerptIndex < 0 || excerptIndex > 0x7fffffff) {
      throw new NeuronStatsError(`excerpt index must be a non-negative 31-bit integer, got ${excerptIndex}`);
    }
    const length = tokenIds.length;
    if (length < 1 || length > this.config.excerptLength) {
      throw new NeuronStatsError(`excerpt ${excerptIndex} has ${length} tokens; expected 1 to ${this.config.excerptLength}`);
    }
    for (let t = 0; t < length; t++) {
      const id = tokenIds[t];
      if (!Number.isInteger(id) || id < 0 || id > MAX_TOKEN_ID) throw new NeuronStatsError(`excerpt ${excerptIndex} has an invalid token id ${id} at position ${t}`);
      this.currentTokens[t] = id;
    }
    this.current = excerptIndex;
    this.currentLength = length;
    this.currentRandomPriority = samplePriority(this.config.seed, RANDOM_SAMPLE_STREAM, excerptIndex);
    this.currentQuantilePriority = samplePriority(this.config.seed, QUANTILE_SAMPLE_STREAM, excerptIndex);
    this.layerDone.fill(0);
    if (this.config.topTokenCandidates > 0) this.indexTokenPositions();
  }

  /** Links each token's positions in the current excerpt (newest first) for the candidate sums. */
  private indexTokenPositions(): void {
    let maxId = 0;
    for (let t = 0; t < this.currentLength; t++) maxId = Math.max(maxId, this.currentTokens[t]);
    if (maxId >= this.tokenCount.length) this.growTokenTables(maxId + 1);
    this.distinctCount = 0;
    for (let t = 0; t < this.currentLength; t++) {
      const id = this.currentTokens[t];
      if (this.tokenOccurrences[id] === 0) this.distinctTokens[this.distinctCount++] = id;
      this.nextPosition[t] = this.tokenOccurrences[id] === 0 ? -1 : this.tokenHead[id];
      this.tokenHead[id] = t;
      this.tokenOccurrences[id]++;
    }
  }

  private clearTokenPositions(): void {
    for (let t = 0; t < this.currentLength; t++) {
      const id = this.currentTokens[t];
      this.tokenOccurrences[id] = 0;
    }
  }

  private growTokenTables(minLength: number): void {
    const oldLength = this.tokenCount.length;
    let length = Math.max(1024, oldLength);
    while (length < minLength) length *= 2;
    const grow = <T extends Int32Array | Uint16Array>(old: T, next: T): T => {
      next.set(old);
      return next;
    };
    this.tokenCount = grow(this.tokenCount, new Int32Array(length));
    this.tokenHead = grow(this.tokenHead, new Int32Array(length));
    this.tokenOccurrences = grow(this.tokenOccurrences, new Uint16Array(length));
  }

  /**
   * Adds one layer's activations for the current excerpt without copying:
   * `data[offset + t·dMlp + j]` is neuron j at token t, for t < the excerpt's length.
   */
  addLayer(layer: number, data: Float32Array, offset = 0): void {
    if (this.current < 0) throw new NeuronStatsError('addLayer called outside beginExcerpt/endExcerpt');
    const slot = this.slotOfLayer.get(layer);
    if (slot === undefined) throw new NeuronStatsError(`layer ${layer} is not tracked (tracked: ${this.config.layers.join(', ')})`);
    if (this.layerDone[slot]) throw new NeuronStatsError(`layer ${layer} was already added for excerpt ${this.current}`);
    const { dMlp } = this.config;
    const seq = this.currentLength;
    if (!Number.isInteger(offset) || offset < 0 || offset + seq * dMlp > data.length) {
      throw new NeuronStatsError(
        `layer ${layer} activations for excerpt ${this.current}: need ${seq} × ${dMlp} values from offset ${offset}, array has ${data.length}`,
      );
    }
    this.accumulateLayer(slot, data, offset);
    this.layerDone[slot] = 1;
  }

  /**
   * The hot path. The kernel reads the block once, token by token, for every neuron's power sums
   * and max, and copies out the columns of the neurons whose max reaches their heap root (all of
   * them until the heaps are full). The occurrences of candidate tokens come next (one contiguous
   * run of entries per token of the excerpt). Of the neurons the kernel listed, those entering
   * their top-K (the tie rule decides equal maxima) then have their heaps updated, and their
   * column and the token at its peak stored with the heap entry.
   * Each piece of state belongs to one neuron, so this order gives the same result as finishing
   * one neuron after another.
   */
  private accumulateLayer(slot: number, data: Float32Array, offset: number): void {
    const { dMlp, topK: K, quantileSampleSize: S, topTokenCandidates: C } = this.config;
    const excerpt = this.current;
    const base = slot * dMlp;
    if (this.excerptsSeen === 0) this.initialiseShift(base, data, offset);
    const heapFull = this.excerptsSeen >= K;
    const kernel = this.kernel;
    const block = kernel.run(data, offset, this.currentLength, this.shift32, base, heapFull ? this.heapRoot : this.noThreshold);
    this.addPowerSums(base, block.data, block.offset);
    const excerptMax = kernel.max;
    if (S > 0) this.pendingMax.set(excerptMax, this.pendingCount * this.neuronCount + base);
    if (C > 0) this.addCandidateOccurrences(slot, block.data, block.offset);
    const { minExcerptMax, heapRoot, heapExcerpt, entering, enteringColumn } = this;
    for (let j = 0, n = base; j < dMlp; j++, n++) {
      const max = excerptMax[j];
      if (max < minExcerptMax[n]) minExcerptMax[n] = max;
    }
    // The kernel listed the neurons with max ≥ heap root; equal maxima enter for an earlier excerpt only.
    const { reached, reachedCount } = kernel;
    let entries = 0;
    for (let i = 0; i < reachedCount; i++) {
      const j = reached[i];
      const n = base + j;
      if (!heapFull || excerptMax[j] > heapRoot[n] || excerpt < heapExcerpt[n * K]) {
        entering[entries] = j;
        enteringColumn[entries++] = i;
      }
    }
    if (entries === 0) return;
    if (heapFull) this.touchHeaps(base, entries);
    const { columns } = kernel;
    const { currentTokens } = this;
    const seq = this.currentLength;
    for (let i = 0; i < entries; i++) {
      const j = entering[i];
      const column = enteringColumn[i] * seq;
      const max = excerptMax[j];
      let peakToken = -1;
      if (C > 0) {
        let peak = 0;
        while (columns[column + peak] !== max) peak++;
        peakToken = currentTokens[peak];
      }
      if (heapFull) this.heapReplaceRoot(base + j, max, excerpt, column, peakToken);
      else this.heapPush(base + j, max, excerpt, column, this.excerptsSeen, peakToken);
    }
  }

  /**
   * Reads a word of each cache line the heap updates of the entering neurons will touch, in a loop
   * of independent loads, so their (mostly uncached) lines are fetched together rather than one
   * update after another. The sum only keeps the loads from being optimised away.
   */
  private touchHeaps(base: number, entries: number): void {
    const { topK: K, excerptLength: L, topTokenCandidates: C } = this.config;
    const { entering, heapValue, heapExcerpt, heapSlot, rowUnits, rowPeakToken } = this;
    let sink = 0;
    for (let i = 0; i < entries; i++) {
      const n = base + entering[i];
      const h = n * K;
      sink += heapValue[h + K - 1] + heapExcerpt[h + K - 1] + heapSlot[h + K - 1];
      const row = (h + heapSlot[h]) * L;
      sink += rowUnits[row] + rowUnits[row + L - 1];
      if (C > 0) sink += rowPeakToken[h + heapSlot[h]];
    }
    this.touched = sink;
  }

  /**
   * Each neuron's shift is its mean on the first excerpt (rounded to float32, the kernel's
   * precision), which keeps the power sums well conditioned.
   */
  private initialiseShift(base: number, data: Float32Array, offset: number): void {
    const { dMlp } = this.config;
    for (let j = 0; j < dMlp; j++) {
      let total = 0;
      for (let t = 0, p = offset + j; t < this.currentLength; t++, p += dMlp) total += data[p];
      this.shift[base + j] = this.shift32[base + j] = Math.fround(total / this.currentLength);
    }
  }

  /**
   * Adds the kernel's per-excerpt sums (float32) to the running power sums (float64). Σd⁴ is
   * non-finite when an activation is, or when float32 overflowed: the neuron's column is then
   * read again, to refuse the non-finite activation or redo its sums in float64.
   */
  private addPowerSums(base: number, data: Float32Array, offset: number): void {
    const { dMlp } = this.config;
    const { sums } = this.kernel;
    const powerSums = this.powerSums;
    for (let j = 0, q = 4 * base; j < dMlp; j++, q += 4) {
      const s4 = sums[3 * dMlp + j];
      if (s4 - s4 !== 0) {
        this.addPowerSumsExactly(base, j, data, offset);
        continue;
      }
      powerSums[q] += sums[j];
      powerSums[q + 1] += sums[dMlp + j];
      powerSums[q + 2] += sums[2 * dMlp + j];
      powerSums[q + 3] += s4;
    }
  }

  /** addPowerSums for neuron j of the layer in float64, refusing a non-finite activation. */
  private addPowerSumsExactly(base: number, j: number, data: Float32Array, offset: number): void {
    const { dMlp } = this.config;
    const c = this.shift[base + j];
    let s1 = 0, s2 = 0, s3 = 0, s4 = 0;
    for (let t = 0, p = offset + j; t < this.currentLength; t++, p += dMlp) {
      const x = data[p];
      if (x - x !== 0) this.throwNonFinite(base, j);
      const d = x - c;
      const d2 = d * d;
      s1 += d;
      s2 += d2;
      s3 += d2 * d;
      s4 += d2 * d2;
    }
    const q = 4 * (base + j);
    this.powerSums[q] += s1;
    this.powerSums[q + 1] += s2;
    this.powerSums[q + 2] += s3;
    this.powerSums[q + 3] += s4;
  }

  /** Names the excerpt, layer and neuron (j within the layer) of a non-finite activation. */
  private throwNonFinite(base: number, j: number): never {
    const { dMlp, layers } = this.config;
    throw new NeuronStatsError(`non-finite activation in excerpt ${this.current}, layer ${layers[base / dMlp]}, neuron ${j}`);
  }

  /**
   * Stores the kernel column starting at `from` as the neuron's row for heap slot `heapSlot`
   * (rounded to float16, or the float32 bits), and the token at its peak (−1: not tracked).
   */
  private storeRow(n: number, heapSlot: number, from: number, peakToken: number): void {
    const { excerptLength: L, topK: K } = this.config;
    const to = (n * K + heapSlot) * L;
    if (peakToken >= 0) this.rowPeakToken[n * K + heapSlot] = peakToken;
    const length = this.currentLength;
    const { rowUnits, rowPairs } = this;
    if (this.rows instanceof Uint16Array) {
      const halves = this.kernel.halfColumns;
      if (rowPairs !== null && (from & 1) === 0) {
        // Two float16 values per word (L is even, so rows start on word boundaries).
        const halfPairs = this.halfColumnPairs;
        const pairs = length >> 1;
        for (let w = 0, a = to >> 1, b = from >> 1; w < pairs; w++) rowPairs[a + w] = halfPairs[b + w];
        if (length & 1) rowUnits[to + length - 1] = halves[from + length - 1];
      } else {
        for (let t = 0; t < length; t++) rowUnits[to + t] = halves[from + t];
      }
    } else {
      const { columnBits } = this;
      for (let t = 0; t < length; t++) rowUnits[to + t] = columnBits[from + t];
    }
  }

  /** a is a worse top-K entry than b: smaller max, or equal max and later excerpt. */
  private worse(a: number, b: number): boolean {
    const va = this.heapValue[a];
    const vb = this.heapValue[b];
    return va < vb || (va === vb && this.heapExcerpt[a] > this.heapExcerpt[b]);
  }

  private swap(a: number, b: number): void {
    const { heapValue, heapExcerpt, heapSlot } = this;
    const v = heapValue[a];
    heapValue[a] = heapValue[b];
    heapValue[b] = v;
    const e = heapExcerpt[a];
    heapExcerpt[a] = heapExcerpt[b];
    heapExcerpt[b] = e;
    const s = heapSlot[a];
    heapSlot[a] = heapSlot[b];
    heapSlot[b] = s;
  }

  /** Adds (value, excerpt) with the kernel column at `row` to the neuron's heap of `size` < K entries. */
  private heapPush(n: number, value: number, excerpt: number, row: number, size: number, peakToken: number): void {
    const h = n * this.config.topK;
    this.heapValue[h + size] = value;
    this.heapExcerpt[h + size] = excerpt;
    this.heapSlot[h + size] = size;
    this.storeRow(n, size, row, peakToken);
    let i = size;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.worse(h + i, h + parent)) break;
      this.swap(h + i, h + parent);
      i = parent;
    }
    this.heapRoot[n] = this.heapValue[h];
  }

  /** Replaces the root (the worst of K entries) by (value, excerpt) with the kernel column at `row`. */
  private heapReplaceRoot(n: number, value: number, excerpt: number, row: number, peakToken: number): void {
    const K = this.config.topK;
    const h = n * K;
    this.heapValue[h] = value;
    this.heapExcerpt[h] = excerpt;
    this.storeRow(n, this.heapSlot[h], row, peakToken);
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= K) break;
      const right = left + 1;
      const child = right < K && this.worse(h + right, h + left) ? right : left;
      if (!this.worse(h + child, h + i)) break;
      this.swap(h + i, h + child);
      i = child;
    }
    this.heapRoot[n] = this.heapValue[h];
  }

  private binOf(x: number): number {
    f32Scratch[0] = x;
    const bin = this.binByBits[u32Scratch[0] >>> 16];
    return bin !== SEVERAL_BINS ? bin : binByEdges(this.edges, Math.fround(x));
  }


  /**
   * Bins the buffered excerpt maxima, neuron by neuron: a neuron's bin state is then read once
   * per PENDING_EXCERPTS excerpts instead of once per excerpt (a cache miss each time otherwise).
   * The order per neuron is still excerpt order, so when this runs does not change the result.
   */
  private flushPending(): void {
    const count = this.pendingCount;
    if (count === 0) return;
    if (this.histogramKernel) {
      this.flushPendingInKernel(this.histogramKernel);
      return;
    }
    const N = this.neuronCount;
    const F = this.config.histogram.bins;
    const { edges, binByBits, pendingMax, pendingBits } = this;
    // A group of neurons (a cache line of each pending row) at a time, their excerpts in order:
    // walking one neuron down all rows would hit one cache set with every row (the rows are a
    // multiple of 4 KB apart), while the group's bin state still fits in the L1 cache.
    for (let from = 0; from < N; from += PENDING_GROUP) {
      const to = Math.min(N, from + PENDING_GROUP);
      for (let b = 0; b < count; b++) {
        const row = b * N;
        for (let n = from; n < to; n++) {
          let j = binByBits[pendingBits[row + n] >>> 16];
          if (j === SEVERAL_BINS) j = binByEdges(edges, pendingMax[row + n]);
          this.countInBin(n * F + j, b);
        }
      }
    }
    this.pendingCount = 0;
  }

  /** Counts buffered excerpt b in `bin`, and offers it to the bin's sample unless it cannot belong there. */
  private countInBin(bin: number, b: number): void {
    const { binState } = this;
    const priority = this.pendingPriority[b];
    binState[3 * bin]++;
    // Most excerpts are not among a full bin's smallest priorities.
    if ((binState[3 * bin + 2] & 0xff) === this.config.quantileSampleSize && priority > binState[3 * bin + 1]) return;
    this.sampleIntoBin(bin, this.pendingExcerpt[b], priority);
  }

  /**
   * flushPending with the counting done in WebAssembly (histogram-kernel.ts), group by group; its
   * events, in excerpt order per neuron, are the pairs that need sampling or a binary search.
   */
  private flushPendingInKernel(kernel: HistogramKernel): void {
    const count = this.pendingCount;
    const N = this.neuronCount;
    const F = this.config.histogram.bins;
    const S = this.config.quantileSampleSize;
    const { edges, pendingMax, pendingExcerpt, pendingPriority } = this;
    const events = kernel.events;
    for (let from = 0; from < N; from += PENDING_GROUP) {
      const pairs = 2 * kernel.bin(from, Math.min(N, from + PENDING_GROUP), count, S);
      for (let i = 0; i < pairs; i += 2) {
        const code = events[i];
        const b = events[i + 1];
        if (code >= 0) {
          this.sampleIntoBin(code, pendingExcerpt[b], pendingPriority[b]); // already counted
        } else {
          const n = -1 - code;
          this.countInBin(n * F + binByEdges(edges, pendingMax[b * N + n]), b);
        }
      }
    }
    this.pendingCount = 0;
  }

  /** Offers an excerpt (already counted in the bin) to the bin's sample of smallest priorities. */
  private sampleIntoBin(bin: number, excerpt: number, priority: number): void {
    const S = this.config.quantileSampleSize;
    const { binState, quantileSlots } = this;
    const state = 3 * bin;
    const slots = bin * S;
    const held = binState[state + 2] & 0xff;
    const worstSlot = binState[state + 2] >>> 8;
    if (held < S) {
      quantileSlots[slots + held] = excerpt;
      const worse = held === 0 || priorityBefore(binState[state + 1], quantileSlots[slots + worstSlot], priority, excerpt);
      if (worse) binState[state + 1] = priority;
      binState[state + 2] = (held + 1) | ((worse ? held : worstSlot) << 8);
      return;
    }
    if (priority > binState[state + 1]) return; // the common case once the bin is full
    if (!priorityBefore(priority, excerpt, binState[state + 1], quantileSlots[slots + worstSlot])) return;
    quantileSlots[slots + worstSlot] = excerpt;
    let worst = 0;
    let worstPriority = this.quantilePriority(quantileSlots[slots]);
    for (let s = 1; s < S; s++) {
      const p = this.quantilePriority(quantileSlots[slots + s]);
      if (priorityBefore(worstPriority, quantileSlots[slots + worst], p, quantileSlots[slots + s])) {
        worst = s;
        worstPriority = p;
      }
    }
    binState[state + 1] = worstPriority;
    binState[state + 2] = S | (worst << 8);
  }

  /** Quantile-stream priority of an excerpt, through a small direct-mapped cache (bins re-rank their samples often). */
  private quantilePriority(excerpt: number): number {
    const at = excerpt & (PRIORITY_CACHE_SIZE - 1);
    if (this.priorityCacheKey[at] === excerpt) return this.priorityCacheValue[at];
    const priority = samplePriority(this.config.seed, QUANTILE_SAMPLE_STREAM, excerpt);
    this.priorityCacheKey[at] = excerpt;
    this.priorityCacheValue[at] = priority;
    return priority;
  }

  /**
   * Mean-activation candidates: every occurrence of a candidate token in the layer block is added
   * to its candidate's sum. A token's candidates are one contiguous run of bucket entries, sorted
   * by neuron, so this is a sequential walk (the activations it reads lie in one row of the block).
   */
  private addCandidateOccurrences(slot: number, data: Float32Array, offset: number): void {
    const { dMlp } = this.config;
    const { bucketStart, bucketSum, bucketNeuron, distinctTokens, tokenHead, nextPosition } = this;
    const tokens = this.bucketTokens;
    const at = slot * (tokens + 1);
    for (let i = 0; i < this.distinctCount; i++) {
      const token = distinctTokens[i];
      if (token >= tokens) continue; // counted after the last nomination: no candidates
      const from = bucketStart[at + token];
      const to = bucketStart[at + token + 1];
      if (from === to) continue;
      for (let t = tokenHead[token]; t >= 0; t = nextPosition[t]) {
        const row = offset + t * dMlp;
        for (let e = from; e < to; e++) bucketSum[e] += data[row + bucketNeuron[e]];
      }
    }
  }

  /** The candidates' sums by slot (0 for an empty slot). */
  private candidateSums(): Float64Array {
    const { slotBucket, bucketSum } = this;
    const sums = new Float64Array(slotBucket.length);
    for (let k = 0; k < sums.length; k++) if (slotBucket[k] >= 0) sums[k] = bucketSum[slotBucket[k]];
    return sums;
  }

  /** Occurrences candidate slot k's mean covers: fixed once settled, else those since its nomination. */
  private candidateCount(k: number): number {
    const settled = this.candidateSettled[k];
    return settled > 0 ? settled : this.tokenCount[this.candidateToken[k]] - this.candidateBase[k];
  }

  /**
   * Renews every neuron's candidate set; runs after excerpts 1, 4, 16, 64, … (powers of four), so
   * a scan of n excerpts nominates about log₄ n times (each a pass over all neurons). The
   * nominees are the tokens at the peaks of the neuron's current top-K excerpts, best first. Established candidates (with at least one
   * occurrence since their nomination) keep their sums; the best of them by mean, at least
   * ⌈C/2⌉ where there are that many, keep their slots, and the nominees not already candidates
   * take the rest. So a token with a high mean over many occurrences is not displaced by a peak
   * seen once, and new tokens keep coming in. A candidate with SETTLED_OCCURRENCES or more is
   * settled: its mean stops changing and its occurrences are no longer added. The scan runs
   * in a seeded random order within each excerpt length (scanOrder), so a settled mean is that of
   * a random sample of the token's occurrences, not of the corpus's first ones. Nothing here happens per excerpt: the hot path only adds occurrences
   * (addCandidateOccurrences) and notes each top-K entry's peak token.
   */
  private nominateCandidates(): void {
    const { topK: K, topTokenCandidates: C } = this.config;
    const tokens = this.tokenCount.length;
    const scratch: NominationScratch = {
      sums: this.candidateSums(),
      mark: new Int32Array(tokens).fill(-1),
      nomineeOf: new Int32Array(tokens),
      keptSlot: new Int32Array(C),
      keptMean: new Float64Array(C),
      nomineeToken: new Int32Array(K),
      nomineeValue: new Float32Array(K),
      nomineeExcerpt: new Int32Array(K),
      newToken: new Int32Array(C),
      newSum: new Float64Array(C),
      newBase: new Int32Array(C),
      newSettled: new Int32Array(C),
    };
    // One call per neuron, all sharing the working arrays.
    for (let n = 0; n < this.neuronCount; n++) this.nominateFor(n, scratch);
    this.rebuildBuckets(scratch.sums);
  }

  /** nominateCandidates for neuron n. */
  private nominateFor(n: number, scratch: NominationScratch): void {
    const { topK: K, topTokenCandidates: C } = this.config;
    const { candidateToken, candidateBase, candidateSettled, tokenCount, heapValue, heapExcerpt, heapSlot, rowPeakToken } = this;
    const { sums, mark, nomineeOf, keptSlot, keptMean, nomineeToken, nomineeValue, nomineeExcerpt, newToken, newSum, newBase, newSettled } = scratch;
    const size = Math.min(this.excerptsSeen, K);
    const guaranteed = Math.ceil(C / 2);
    // mark: per token, the neuron whose candidate (2n) or nominee (2n + 1) it was last; nomineeOf: the nominee's index.
    const stamp = 2 * n;
    let established = 0;
    for (let k = n * C; k < (n + 1) * C; k++) {
      const token = candidateToken[k];
      if (token < 0) continue;
      const count = this.candidateCount(k);
      if (count <= 0) continue;
      const mean = sums[k] / count;
      // Insertion by mean, highest first (ties: smaller token first).
      let i = established++;
      while (i > 0 && (keptMean[i - 1] < mean || (keptMean[i - 1] === mean && candidateToken[keptSlot[i - 1]] > token))) {
        keptMean[i] = keptMean[i - 1];
        keptSlot[i] = keptSlot[i - 1];
        i--;
      }
      keptMean[i] = mean;
      keptSlot[i] = k;
      mark[token] = stamp;
    }
    // The distinct peak tokens that are not established, each with its best heap entry.
    const h = n * K;
    let nominees = 0;
    for (let i = h; i < h + size; i++) {
      const token = rowPeakToken[h + heapSlot[i]];
      const value = heapValue[i];
      const excerpt = heapExcerpt[i];
      if (mark[token] === stamp) continue;
      if (mark[token] === stamp + 1) {
        const q = nomineeOf[token];
        if (value > nomineeValue[q] || (value === nomineeValue[q] && excerpt < nomineeExcerpt[q])) {
          nomineeValue[q] = value;
          nomineeExcerpt[q] = excerpt;
        }
        continue;
      }
      mark[token] = stamp + 1;
      nomineeOf[token] = nominees;
      nomineeToken[nominees] = token;
      nomineeValue[nominees] = value;
      nomineeExcerpt[nominees++] = excerpt;
    }
    const chosen = Math.min(nominees, C - Math.min(established, guaranteed));
    if (chosen < nominees) {
      // Best first: largest max, then earliest excerpt (insertion sort; there are at most K).
      for (let i = 1; i < nominees; i++) {
        const token = nomineeToken[i];
        const value = nomineeValue[i];
        const excerpt = nomineeExcerpt[i];
        let j = i;
        while (j > 0 && (nomineeValue[j - 1] < value || (nomineeValue[j - 1] === value && nomineeExcerpt[j - 1] > excerpt))) {
          nomineeToken[j] = nomineeToken[j - 1];
          nomineeValue[j] = nomineeValue[j - 1];
          nomineeExcerpt[j] = nomineeExcerpt[j - 1];
          j--;
        }
        nomineeToken[j] = token;
        nomineeValue[j] = value;
        nomineeExcerpt[j] = excerpt;
      }
    }
    const kept = Math.min(established, C - chosen);
    let c = 0;
    for (; c < kept; c++) {
      const k = keptSlot[c];
      const count = this.candidateCount(k);
      newToken[c] = candidateToken[k];
      newSum[c] = sums[k];
      newBase[c] = candidateBase[k];
      newSettled[c] = count >= SETTLED_OCCURRENCES ? count : 0;
    }
    for (let q = 0; q < chosen; q++, c++) {
      const token = nomineeToken[q];
      newToken[c] = token;
      newSum[c] = 0;
      newBase[c] = tokenCount[token];
      newSettled[c] = 0;
    }
    for (; c < C; c++) {
      newToken[c] = -1;
      newSum[c] = 0;
      newBase[c] = 0;
      newSettled[c] = 0;
    }
    for (let c = 0, k = n * C; c < C; c++, k++) {
      candidateToken[k] = newToken[c];
      candidateBase[k] = newBase[c];
      candidateSettled[k] = newSettled[c];
      sums[k] = newSum[c];
    }
  }

  /**
   * Lays the candidates out in bucket order (see bucketSum), with `sums` their sums by slot: per
   * layer, the live candidates' runs by token, then the settled candidates (in no run).
   */
  private rebuildBuckets(sums: Float64Array): void {
    const { layers, dMlp, topTokenCandidates: C } = this.config;
    const { candidateToken, candidateSettled, bucketNeuron, bucketSum, slotBucket } = this;
    const tokens = this.tokenCount.length;
    if (this.bucketStart.length !== layers.length * (tokens + 1)) this.bucketStart = new Int32Array(layers.length * (tokens + 1));
    this.bucketTokens = tokens;
    const starts = this.bucketStart;
    starts.fill(0);
    const cursor = new Int32Array(tokens + 1);
    const perLayer = dMlp * C;
    for (let slot = 0; slot < layers.length; slot++) {
      const at = slot * (tokens + 1);
      const first = slot * perLayer;
      for (let k = first; k < first + perLayer; k++) {
        if (candidateToken[k] >= 0 && candidateSettled[k] === 0) starts[at + candidateToken[k] + 1]++;
      }
      starts[at] = first;
      for (let t = 0; t < tokens; t++) starts[at + t + 1] += starts[at + t];
      cursor.set(starts.subarray(at, at + tokens + 1));
      // Slots in order, so each token's run is sorted by neuron; cursor[tokens] places the settled ones.
      for (let k = first; k < first + perLayer; k++) {
        const token = candidateToken[k];
        if (token < 0) {
          slotBucket[k] = -1;
          continue;
        }
        const e = candidateSettled[k] === 0 ? cursor[token]++ : cursor[tokens]++;
        bucketNeuron[e] = Math.floor(k / C) - slot * dMlp;
        bucketSum[e] = sums[k];
        slotBucket[k] = e;
      }
    }
  }

  /** Finishes the current excerpt; every tracked layer must have been added. */
  endExcerpt(): void {
    if (this.current < 0) throw new NeuronStatsError('endExcerpt called without beginExcerpt');
    const missing = this.config.layers.filter((_, slot) => !this.layerDone[slot]);
    if (missing.length > 0) throw new NeuronStatsError(`excerpt ${this.current} is missing layers ${missing.join(', ')}`);
    if (this.config.topTokenCandidates > 0) {
      for (let t = 0; t < this.currentLength; t++) this.tokenCount[this.currentTokens[t]]++;
      this.clearTokenPositions();
    }
    this.addToRandomSample(this.current, this.currentRandomPriority);
    if (this.quantileTracking) {
      this.pendingExcerpt[this.pendingCount] = this.current;
      this.pendingPriority[this.pendingCount] = this.currentQuantilePriority;
      if (++this.pendingCount === PENDING_EXCERPTS) this.flushPending();
    }
    this.excerptsSeen++;
    this.tokensSeen += this.currentLength;
    this.current = -1;
    if (this.config.topTokenCandidates > 0 && isPowerOfFour(this.excerptsSeen)) this.nominateCandidates();
  }

  /** Abandons a begun excerpt. Only valid before any layer was added (state is otherwise changed). */
  cancelExcerpt(): void {
    if (this.layerDone.some((done) => done)) throw new NeuronStatsError('cannot cancel an excerpt after layers were added');
    if (this.current >= 0 && this.config.topTokenCandidates > 0) this.clearTokenPositions();
    this.current = -1;
  }

  /** beginExcerpt + addLayer for each entry (`data[offset + t·dMlp + j]`) + endExcerpt. */
  addExcerpt(excerptIndex: number, tokenIds: ArrayLike<number>, layers: Map<number, { data: Float32Array; offset?: number }>): void {
    this.beginExcerpt(excerptIndex, tokenIds);
    for (const [layer, { data, offset }] of layers) this.addLayer(layer, data, offset ?? 0);
    this.endExcerpt();
  }

  private addToRandomSample(excerpt: number, priority: number): void {
    const R = this.config.randomSampleSize;
    if (R === 0) return;
    const sample = this.randomSample;
    let i = this.randomCount;
    if (i === R) {
      const last = sample[R - 1];
      if (!priorityBefore(priority, excerpt, this.randomPriority(last), last)) return;
      i = R - 1;
    } else {
      this.randomCount++;
    }
    // Insertion into the list kept sorted by priority.
    while (i > 0 && priorityBefore(priority, excerpt, this.randomPriority(sample[i - 1]), sample[i - 1])) {
      sample[i] = sample[i - 1];
      i--;
    }
    sample[i] = excerpt;
  }

  private randomPriority(excerpt: number): number {
    return samplePriority(this.config.seed, RANDOM_SAMPLE_STREAM, excerpt);
  }

  // ---- results ---------------------------------------------------------------------------

  private checkNeuron(neuron: number): void {
    if (!Number.isInteger(neuron) || neuron < 0 || neuron >= this.neuronCount) {
      throw new NeuronStatsError(`neuron index ${neuron} is out of range (0 to ${this.neuronCount - 1})`);
    }
  }

  /**
   * Population moments of all activations seen; null before any token. Kurtosis is excess
   * kurtosis, m4/m2² − 3 (scipy's default): the released records do not say which they hold, and
   * their values fit either definition.
   */
  momentsOf(neuron: number): NeuronMoments | null {
    this.checkNeuron(neuron);
    const count = this.tokensSeen;
    if (count === 0) return null;
    const q = 4 * neuron;
    const m1 = this.powerSums[q] / count;
    const r2 = this.powerSums[q + 1] / count;
    const r3 = this.powerSums[q + 2] / count;
    const r4 = this.powerSums[q + 3] / count;
    // Raw moments of d = x − shift → central moments.
    const variance = Math.max(0, r2 - m1 * m1);
    const m3 = r3 - 3 * m1 * r2 + 2 * m1 ** 3;
    const m4 = r4 - 4 * m1 * r3 + 6 * m1 * m1 * r2 - 3 * m1 ** 4;
    const mean = this.shift[neuron] + m1;
    if (variance === 0) return { mean, variance, skewness: null, kurtosis: null };
    return { mean, variance, skewness: m3 / variance ** 1.5, kurtosis: m4 / (variance * variance) - 3 };
  }

  /** Top-K excerpts by max activation, largest first (ties: smaller excerpt index first). */
  topExcerpts(neuron: number): TopExcerpt[] {
    return this.sortedHeap(neuron).map((i) => ({ excerptIndex: this.heapExcerpt[i], maxActivation: this.heapValue[i] }));
  }

  private sortedHeap(neuron: number): number[] {
    this.checkNeuron(neuron);
    const h = neuron * this.config.topK;
    const size = Math.min(this.config.topK, this.excerptsSeen);
    const entries = Array.from({ length: size }, (_, i) => h + i);
    return entries.sort((a, b) => (this.worse(a, b) ? 1 : this.worse(b, a) ? -1 : 0));
  }

  /** The shared random sample, in priority (random) order. */
  randomSampleExcerpts(): number[] {
    return Array.from(this.randomSample.subarray(0, this.randomCount));
  }

  /** Quantile boundaries and samples of a neuron; null when quantile tracking is off or nothing was seen. */
  quantileSample(neuron: number): QuantileSample | null {
    this.checkNeuron(neuron);
    if (!this.quantileTracking || this.excerptsSeen === 0) return null;
    this.flushPending();
    const { bins: F } = this.config.histogram;
    const S = this.config.quantileSampleSize;
    const inBin = (b: number) => this.binState[3 * (neuron * F + b)];
    const min = this.minExcerptMax[neuron];
    const max = this.heapValue[this.sortedHeap(neuron)[0]];
    const lowBin = this.binOf(min);
    const highBin = this.binOf(max);
    // cdf[j] = fraction of excerpt maxima below edge j.
    const cdf = new Float64Array(F + 1);
    for (let j = 0; j < F; j++) cdf[j + 1] = cdf[j] + inBin(j) / this.excerptsSeen;
    // Quantile bin i covers histogram bins [cut[i], cut[i+1]); interior cuts are edges strictly
    // inside (lowBin, highBin] so that they lie in (min, max]; with one occupied bin all cuts
    // collapse onto it and the last quantile bin holds every excerpt.
    const cuts = [0];
    let previous = lowBin;
    for (const level of this.config.quantiles) {
      let best = previous;
      for (let j = Math.max(previous, lowBin + 1); j <= highBin; j++) {
        if (best <= lowBin || Math.abs(cdf[j] - level) < Math.abs(cdf[best] - level)) best = j;
      }
      cuts.push(best);
      previous = best;
    }
    cuts.push(F);
    const boundaries = [min, ...cuts.slice(1, -1).map((j) => (j <= lowBin ? min : this.edges[j])), max];
    const sampleBins: number[][] = [];
    for (let i = 0; i + 1 < cuts.length; i++) {
      const members: { excerpt: number; priority: number }[] = [];
      for (let b = cuts[i]; b < cuts[i + 1]; b++) {
        const bin = neuron * F + b;
        for (let s = 0; s < (this.binState[3 * bin + 2] & 0xff); s++) {
          const excerpt = this.quantileSlots[bin * S + s];
          members.push({ excerpt, priority: this.quantilePriority(excerpt) });
        }
      }
      members.sort((a, b) => (priorityBefore(a.priority, a.excerpt, b.priority, b.excerpt) ? -1 : 1));
      sampleBins.push(members.slice(0, S).map((m) => m.excerpt));
    }
    return { boundaries, bins: sampleBins };
  }

  /**
   * Approximate tokens with the highest mean activation, highest first. Only tokens at which one
   * of the neuron's top-K excerpts peaked at a nomination are considered (see
   * `nominateCandidates`); each mean is exact over `count` occurrences, those since the token's
   * nomination. Rare tokens rank high on few occurrences: filter by `count` where that matters.
   */
  topMeanTokens(neuron: number): MeanToken[] {
    this.checkNeuron(neuron);
    const C = this.config.topTokenCandidates;
    const result: MeanToken[] = [];
    for (let k = neuron * C; k < (neuron + 1) * C; k++) {
      const tokenId = this.candidateToken[k];
      if (tokenId < 0) continue;
      const count = this.candidateCount(k);
      if (count > 0) result.push({ tokenId, meanActivation: this.bucketSum[this.slotBucket[k]] / count, count });
    }
    return result.sort((a, b) => b.meanActivation - a.meanActivation || a.tokenId - b.tokenId);
  }

  /**
   * Excerpts whose activations for `neuron` must be recomputed to build its record: the random
   * sample and the quantile samples, less the top-K excerpts whose activations are stored.
   */
  excerptsToRerun(neuron: number): number[] {
    const stored = new Set(this.topExcerpts(neuron).map((t) => t.excerptIndex));
    const needed = new Set(this.randomSampleExcerpts());
    for (const bin of this.quantileSample(neuron)?.bins ?? []) for (const e of bin) needed.add(e);
    return [...needed].filter((e) => !stored.has(e)).sort((a, b) => a - b);
  }

  private roundActivation(value: number): number {
    return this.config.rowPrecision === 'float16' ? roundToFloat16(value) : Math.fround(value);
  }

  /**
   * The neuron's record in the paper's format. `tokensOf(e)` gives excerpt e's token strings;
   * `activationsOf(e)` gives this neuron's activations on excerpt e for every excerpt listed by
   * `excerptsToRerun` (others come from the stored top-K rows). All activations are rounded to
   * `rowPrecision`, so an excerpt shows the same values in every list it appears in.
   */
  buildRecord(
    neuron: number,
    tokensOf: (excerpt: number) => readonly string[],
    activationsOf: (excerpt: number) => ArrayLike<number> | undefined,
  ): NeuronRecord {
    if (this.current >= 0) throw new NeuronStatsError('cannot build records while an excerpt is being added');
    const { topK: K, excerptLength: L } = this.config;
    const storedRow = new Map<number, number>();
    for (const i of this.sortedHeap(neuron)) storedRow.set(this.heapExcerpt[i], (neuron * K + this.heapSlot[i]) * L);
    const record = (excerpt: number): ActivationRecord => {
      const tokens = [...tokensOf(excerpt)];
      let activations: number[];
      const at = storedRow.get(excerpt);
      if (at !== undefined) {
        const raw = this.rows.subarray(at, at + tokens.length);
        activations = Array.from(raw instanceof Uint16Array ? float16ToFloat32(raw) : raw);
      } else {
        const values = activationsOf(excerpt);
        if (!values) throw new NeuronStatsError(`activations of excerpt ${excerpt} for neuron ${neuron} were not supplied`);
        activations = Array.from(values, (v) => this.roundActivation(v));
      }
      if (activations.length !== tokens.length) {
        throw new NeuronStatsError(`excerpt ${excerpt}: ${tokens.length} tokens but ${activations.length} activations`);
      }
      return { dataclass_name: 'ActivationRecord', tokens, activations };
    };
    const moments = this.momentsOf(neuron);
    const quantiles = this.quantileSample(neuron);
    const byMax = (records: ActivationRecord[]) =>
      records
        .map((r, i) => ({ r, i, max: Math.max(...r.activations) }))
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

  // ---- checkpoints -----------------------------------------------------------------------

  /** The serialised state, in checkpoint order; `candidateSum` is a copy (by slot) of the bucket-ordered sums. */
  private stateArrays(candidateSum = this.candidateSums()): [string, StateArray][] {
    return [
      ['shift', this.shift],
      ['powerSums', this.powerSums],
      ['minExcerptMax', this.minExcerptMax],
      ['heapValue', this.heapValue],
      ['heapExcerpt', this.heapExcerpt],
      ['heapSlot', this.heapSlot],
      ['rows', this.rows],
      ['rowPeakToken', this.rowPeakToken],
      ['binState', this.binState],
      ['quantileSlots', this.quantileSlots],
      ['candidateToken', this.candidateToken],
      ['candidateSum', candidateSum],
      ['candidateBase', this.candidateBase],
      ['candidateSettled', this.candidateSettled],
      ['tokenCount', this.tokenCount],
      ['randomSample', this.randomSample],
    ];
  }

  /**
   * The whole state as binary parts: a UTF-8 JSON header, then one buffer per state array.
   * Only between excerpts. The parts are copies, so the accumulator can keep running.
   */
  serialize(): ArrayBuffer[] {
    if (this.current >= 0) throw new NeuronStatsError('cannot serialize while an excerpt is being added');
    this.flushPending();
    const arrays = this.stateArrays();
    const header = {
      format: FORMAT,
      version: FORMAT_VERSION,
      config: this.config,
      excerptsSeen: this.excerptsSeen,
      tokensSeen: this.tokensSeen,
      randomCount: this.randomCount,
      arrays: arrays.map(([name, array]) => ({ name, length: array.length })),
    };
    const headerBytes = new TextEncoder().encode(JSON.stringify(header));
    return [headerBytes.buffer.slice(0, headerBytes.byteLength), ...arrays.map(([, array]) => array.slice().buffer as ArrayBuffer)];
  }

  /** Caches kept beside the serialised state, recomputed from it after loading a checkpoint. */
  private rebuildDerivedState(candidateSum: Float64Array): void {
    const K = this.config.topK;
    for (let n = 0; n < this.neuronCount; n++) this.heapRoot[n] = this.heapValue[n * K];
    this.shift32.set(this.shift);
    const tokens = this.tokenCount.length;
    const counted = (token: number) => token >= -1 && token < tokens;
    if (!this.candidateToken.every(counted) || !this.rowPeakToken.every(counted)) {
      throw new NeuronStatsError('not a valid neuron statistics checkpoint: a candidate or peak token was never counted');
    }
    if (!this.candidateSettled.every((count, k) => count >= 0 && (count === 0 || this.candidateToken[k] >= 0))) {
      throw new NeuronStatsError('not a valid neuron statistics checkpoint: bad settled candidate counts');
    }
    if (this.config.topTokenCandidates > 0 && this.excerptsSeen > 0) this.rebuildBuckets(candidateSum);
  }

  static deserialize(parts: readonly ArrayBuffer[]): NeuronStatsAccumulator {
    const bad = (why: string): never => {
      throw new NeuronStatsError(`not a valid neuron statistics checkpoint: ${why}`);
    };
    if (!Array.isArray(parts) || parts.length === 0 || !(parts[0] instanceof ArrayBuffer)) bad('expected a list of ArrayBuffers');
    let header: {
      format?: unknown;
      version?: unknown;
      config?: NeuronStatsConfig;
      excerptsSeen?: unknown;
      tokensSeen?: unknown;
      randomCount?: unknown;
      arrays?: { name: string; length: number }[];
    } = {};
    try {
      header = JSON.parse(new TextDecoder().decode(parts[0]));
    } catch {
      bad('unreadable header');
    }
    if (header.format !== FORMAT) bad('wrong format');
    if (header.version !== FORMAT_VERSION) bad(`unsupported version ${String(header.version)}`);
    if (!header.config || !Array.isArray(header.arrays)) bad('header lacks config or arrays');
    const accumulator = new NeuronStatsAccumulator(header.config as NeuronStatsConfig);
    const { excerptsSeen, tokensSeen, randomCount } = header;
    const count = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0;
    if (!count(excerptsSeen) || !count(tokensSeen) || !count(randomCount) || (randomCount as number) > accumulator.config.randomSampleSize) {
      bad('bad counters');
    }
    const candidateSum = new Float64Array(accumulator.candidateToken.length);
    const expected = accumulator.stateArrays(candidateSum);
    const listed = header.arrays as { name: string; length: number }[];
    if (listed.length !== expected.length || parts.length !== expected.length + 1) bad('wrong number of arrays');
    for (let i = 0; i < expected.length; i++) {
      const [name, target] = expected[i];
      const { name: listedName, length } = listed[i];
      const buffer = parts[i + 1];
      if (listedName !== name || !(buffer instanceof ArrayBuffer)) bad(`array ${i} should be ${name}`);
      const Kind = target.constructor as { new (b: ArrayBuffer): StateArray; BYTES_PER_ELEMENT: number };
      if (buffer.byteLength !== length * Kind.BYTES_PER_ELEMENT) bad(`${name} has ${buffer.byteLength} bytes, expected ${length * Kind.BYTES_PER_ELEMENT}`);
      const source = new Kind(buffer);
      if (name === 'tokenCount') {
        if (length > 0) accumulator.growTokenTables(length);
        accumulator.tokenCount.set(source);
      } else {
        if (length !== target.length) bad(`${name} has ${length} values, expected ${target.length}`);
        target.set(source);
      }
    }
    accumulator.excerptsSeen = excerptsSeen as number;
    accumulator.tokensSeen = tokensSeen as number;
    accumulator.randomCount = randomCount as number;
    accumulator.rebuildDerivedState(candidateSum);
    return accumulator;
  }
}
