/**
 * Quantile samples of every neuron: the distribution of per-excerpt maxima, its quantile
 * boundaries, and a uniform sample of the excerpts in each quantile bin.
 *
 * - A histogram of per-excerpt maxima on fixed bins, equally spaced in asinh(x / unit) so they are
 *   fine near zero and relatively even for large values. The edges depend only on the
 *   configuration, so histograms of shards of one scan add up exactly.
 * - Per histogram bin, the `sampleSize` excerpts of smallest quantile-stream priority (see
 *   seeded-random.ts). A quantile bin is a union of histogram bins, and the smallest priorities of
 *   a union are among the smallest of its parts, so each quantile bin gets an exact uniform sample
 *   of the excerpts in it; and the samples of shards merge exactly the same way.
 * - The smallest and largest excerpt max, the first and last boundary.
 *
 * Approximation (documented): quantile boundaries are histogram bin edges, the edge whose
 * empirical CDF is closest to each quantile level, so the levels are approximate (within one
 * bin's mass) while every sampled excerpt lies exactly inside its reported bin. The released data
 * leaves the first and last boundary null; these are the smallest and largest excerpt max.
 *
 * Speed: maxima are buffered and binned PENDING_EXCERPTS excerpts at a time, neuron by neuron, so
 * a neuron's bin state is read once per buffer rather than once per excerpt (a cache miss each
 * time), in WebAssembly where available (histogram-kernel.ts). The order per neuron is still
 * excerpt order, so the result does not depend on when the buffer is binned.
 */
import { createHistogramKernel, type HistogramKernel } from './histogram-kernel.ts';
import { priorityBefore, QUANTILE_SAMPLE_STREAM, samplePriority } from './seeded-random.ts';
import { counter, restoreSection, StateFormatError, type LoadedSection, type StateArray, type StateSection } from './state-codec.ts';

export interface HistogramConfig {
  /** Number of bins, including one below `min` and one at or above `max` (≥ 3). */
  bins: number;
  min: number;
  max: number;
  /** Bins are equally spaced in asinh(x / unit): about `unit` wide near zero. */
  unit: number;
}

export const DEFAULT_HISTOGRAM: HistogramConfig = { bins: 64, min: -0.2, max: 100, unit: 0.01 };

export interface QuantileSample {
  /** One more than the number of bins: smallest excerpt max, interior edges, largest excerpt max. */
  boundaries: number[];
  /** Per bin, the sampled excerpt indices in priority (random) order. */
  bins: number[][];
}

/** Excerpts whose maxima are buffered before binning (see flush). */
const PENDING_EXCERPTS = 128;
/** Neurons binned per histogram-kernel call (its event buffer holds this many × PENDING_EXCERPTS). */
const PENDING_GROUP = 16;
/** Entries of the quantile-priority cache (a power of two). */
const PRIORITY_CACHE_SIZE = 1 << 14;
/** Marks a binsByBits entry whose floats fall in more than one bin. */
const SEVERAL_BINS = 0xffff;

/**
 * Edges of the histogram: edges[0] = −∞, edges[bins] = +∞, edges[1] = min, edges[bins−1] = max.
 * The interior edges are rounded to float32: JavaScript engines may differ in the last bit of
 * sinh and asinh, and a float32 rounding of values one float64 bit apart is the same but for
 * about one value in 2²⁸, so the browser and Node get the same edges (they are quantile
 * boundaries in the records).
 */
export function histogramEdges({ bins, min, max, unit }: HistogramConfig): Float64Array {
  const edges = new Float64Array(bins + 1);
  const a = Math.asinh(min / unit);
  const step = (Math.asinh(max / unit) - a) / (bins - 2);
  edges[0] = -Infinity;
  for (let j = 1; j < bins; j++) edges[j] = Math.fround(unit * Math.sinh(a + (j - 1) * step));
  edges[1] = min;
  edges[bins - 1] = max;
  edges[bins] = Infinity;
  for (let j = 1; j < bins; j++) {
    if (!(edges[j] > edges[j - 1])) throw new RangeError('histogram bins are too narrow to tell apart; use fewer bins or a wider range');
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

/**
 * Binning without transcendental functions or searches: entry i is the bin of every float32
 * whose top 16 bits (sign, exponent, 7 mantissa bits) are i, or SEVERAL_BINS for the few
 * entries an edge falls inside. Bins are monotone in x, so the two ends of an entry's range
 * decide. 128 KB, and the maxima of one neuron use few entries.
 */
function fillBinsByBits(table: Uint16Array, edges: Float64Array): void {
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
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

export class QuantileTracker {
  static readonly SECTION = 'quantiles';
  readonly bins: number;
  private readonly edges: Float64Array;
  /** Bins by float32 bits (see fillBinsByBits). */
  private readonly binByBits: Uint16Array;
  /**
   * 3 per (neuron, bin), together so one cache line serves the hot path: excerpts in the bin,
   * priority of the bin's lowest-ranked sample (the one a better excerpt replaces), and
   * samples held | that sample's slot << 8.
   */
  private readonly binState: Uint32Array;
  private readonly sampleSlots: Int32Array;
  readonly minExcerptMax: Float32Array;
  readonly maxExcerptMax: Float32Array;
  /** Excerpt maxima not yet binned ([PENDING_EXCERPTS][neuron]), with their excerpts and priorities. */
  private readonly pendingMax: Float32Array;
  private readonly pendingBits: Uint32Array;
  private readonly pendingExcerpt = new Int32Array(PENDING_EXCERPTS);
  private readonly pendingPriority: Uint32Array;
  /** Binning in WebAssembly, whose memory holds the bin table, binState and the buffered maxima; null where unavailable. */
  private readonly kernel: HistogramKernel | null;
  private pendingCount = 0;
  /** Excerpts counted (binned or buffered). */
  excerpts = 0;
  /** Recently used quantile-stream priorities by excerpt (see priorityOf); derived. */
  private readonly priorityCacheKey = new Int32Array(PRIORITY_CACHE_SIZE).fill(-1);
  private readonly priorityCacheValue = new Uint32Array(PRIORITY_CACHE_SIZE);

  constructor(
    readonly neuronCount: number,
    histogram: HistogramConfig,
    /** Interior quantile levels, increasing. */
    readonly levels: readonly number[],
    readonly sampleSize: number,
    readonly seed: number,
  ) {
    const N = neuronCount;
    const F = (this.bins = histogram.bins);
    this.edges = histogramEdges(histogram);
    this.kernel = createHistogramKernel(N, F, PENDING_EXCERPTS, PENDING_GROUP);
    const kernel = this.kernel;
    this.binByBits = kernel ? kernel.binByBits : new Uint16Array(1 << 16);
    fillBinsByBits(this.binByBits, this.edges);
    this.binState = kernel ? kernel.binState : new Uint32Array(N * F * 3);
    this.sampleSlots = new Int32Array(N * F * sampleSize);
    this.minExcerptMax = new Float32Array(N).fill(Infinity);
    this.maxExcerptMax = new Float32Array(N).fill(-Infinity);
    this.pendingMax = kernel ? kernel.pendingMax : new Float32Array(N * PENDING_EXCERPTS);
    this.pendingBits = new Uint32Array(this.pendingMax.buffer, this.pendingMax.byteOffset, this.pendingMax.length);
    this.pendingPriority = kernel ? kernel.pendingPriority : new Uint32Array(PENDING_EXCERPTS);
  }

  /** Bytes of state per neuron. */
  static bytesPerNeuron(bins: number, sampleSize: number): number {
    return bins * (12 + 4 * sampleSize) + 4 * PENDING_EXCERPTS + 8;
  }

  priorityOf(excerpt: number): number {
    return samplePriority(this.seed, QUANTILE_SAMPLE_STREAM, excerpt);
  }

  /** Buffers the maxima (`max[j]`) of neurons base … base + max.length − 1 for the excerpt being added. */
  addMaxima(base: number, max: Float32Array): void {
    this.pendingMax.set(max, this.pendingCount * this.neuronCount + base);
    const { minExcerptMax, maxExcerptMax } = this;
    for (let j = 0, n = base; j < max.length; j++, n++) {
      const m = max[j];
      if (m < minExcerptMax[n]) minExcerptMax[n] = m;
      if (m > maxExcerptMax[n]) maxExcerptMax[n] = m;
    }
  }

  /** Ends the excerpt whose maxima were added: it is counted with the others in the buffer. */
  endExcerpt(excerpt: number, priority: number): void {
    this.pendingExcerpt[this.pendingCount] = excerpt;
    this.pendingPriority[this.pendingCount] = priority;
    this.excerpts++;
    if (++this.pendingCount === PENDING_EXCERPTS) this.flush();
  }

  private binOf(x: number): number {
    f32Scratch[0] = x;
    const bin = this.binByBits[u32Scratch[0] >>> 16];
    return bin !== SEVERAL_BINS ? bin : binByEdges(this.edges, Math.fround(x));
  }

  /** Bins the buffered excerpt maxima, neuron group by neuron group. */
  flush(): void {
    const count = this.pendingCount;
    if (count === 0) return;
    if (this.kernel) {
      this.flushInKernel(this.kernel);
      return;
    }
    const N = this.neuronCount;
    const F = this.bins;
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
    if ((binState[3 * bin + 2] & 0xff) === this.sampleSize && priority > binState[3 * bin + 1]) return;
    this.sampleIntoBin(bin, this.pendingExcerpt[b], priority);
  }

  /**
   * flush with the counting done in WebAssembly (histogram-kernel.ts), group by group; its events,
   * in excerpt order per neuron, are the pairs that need sampling or a binary search.
   */
  private flushInKernel(kernel: HistogramKernel): void {
    const count = this.pendingCount;
    const N = this.neuronCount;
    const F = this.bins;
    const { edges, pendingMax, pendingExcerpt, pendingPriority } = this;
    const events = kernel.events;
    for (let from = 0; from < N; from += PENDING_GROUP) {
      const pairs = 2 * kernel.bin(from, Math.min(N, from + PENDING_GROUP), count, this.sampleSize);
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
    const S = this.sampleSize;
    const { binState, sampleSlots } = this;
    const state = 3 * bin;
    const slots = bin * S;
    const held = binState[state + 2] & 0xff;
    const worstSlot = binState[state + 2] >>> 8;
    if (held < S) {
      sampleSlots[slots + held] = excerpt;
      const worse = held === 0 || priorityBefore(binState[state + 1], sampleSlots[slots + worstSlot], priority, excerpt);
      if (worse) binState[state + 1] = priority;
      binState[state + 2] = (held + 1) | ((worse ? held : worstSlot) << 8);
      return;
    }
    if (priority > binState[state + 1]) return; // the common case once the bin is full
    if (!priorityBefore(priority, excerpt, binState[state + 1], sampleSlots[slots + worstSlot])) return;
    sampleSlots[slots + worstSlot] = excerpt;
    let worst = 0;
    let worstPriority = this.cachedPriority(sampleSlots[slots]);
    for (let s = 1; s < S; s++) {
      const p = this.cachedPriority(sampleSlots[slots + s]);
      if (priorityBefore(worstPriority, sampleSlots[slots + worst], p, sampleSlots[slots + s])) {
        worst = s;
        worstPriority = p;
      }
    }
    binState[state + 1] = worstPriority;
    binState[state + 2] = S | (worst << 8);
  }

  /** Quantile-stream priority of an excerpt, through a small direct-mapped cache (bins re-rank their samples often). */
  private cachedPriority(excerpt: number): number {
    const at = excerpt & (PRIORITY_CACHE_SIZE - 1);
    if (this.priorityCacheKey[at] === excerpt) return this.priorityCacheValue[at];
    const priority = this.priorityOf(excerpt);
    this.priorityCacheKey[at] = excerpt;
    this.priorityCacheValue[at] = priority;
    return priority;
  }

  /** The excerpts held by histogram bin `bin` (= n · bins + j). */
  private held(bin: number): number[] {
    const from = bin * this.sampleSize;
    return Array.from(this.sampleSlots.subarray(from, from + (this.binState[3 * bin + 2] & 0xff)));
  }

  /** Neuron n's quantile boundaries and samples; null before any excerpt. */
  sample(n: number): QuantileSample | null {
    if (this.excerpts === 0) return null;
    this.flush();
    const F = this.bins;
    const S = this.sampleSize;
    const inBin = (b: number) => this.binState[3 * (n * F + b)];
    const min = this.minExcerptMax[n];
    const max = this.maxExcerptMax[n];
    const lowBin = this.binOf(min);
    const highBin = this.binOf(max);
    // cdf[j] = fraction of excerpt maxima below edge j.
    const cdf = new Float64Array(F + 1);
    for (let j = 0; j < F; j++) cdf[j + 1] = cdf[j] + inBin(j) / this.excerpts;
    // Quantile bin i covers histogram bins [cut[i], cut[i+1]); interior cuts are edges strictly
    // inside (lowBin, highBin] so that they lie in (min, max]; with one occupied bin all cuts
    // collapse onto it and the last quantile bin holds every excerpt.
    const cuts = [0];
    let previous = lowBin;
    for (const level of this.levels) {
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
        for (const excerpt of this.held(n * F + b)) members.push({ excerpt, priority: this.cachedPriority(excerpt) });
      }
      members.sort((a, b) => (priorityBefore(a.priority, a.excerpt, b.priority, b.excerpt) ? -1 : 1));
      sampleBins.push(members.slice(0, S).map((m) => m.excerpt));
    }
    return { boundaries, bins: sampleBins };
  }

  /** Every excerpt held in any of neuron n's histogram-bin samples (a superset of its quantile samples, whatever the cuts). */
  heldExcerpts(n: number): number[] {
    this.flush();
    const F = this.bins;
    const all: number[] = [];
    for (let b = 0; b < F; b++) all.push(...this.held(n * F + b));
    return all;
  }

  /** Takes the other tracker's counts and samples (of other excerpts) in. Exact: see the module comment. */
  merge(other: QuantileTracker): void {
    this.flush();
    other.flush();
    const S = this.sampleSize;
    const { binState, sampleSlots } = this;
    for (let bin = 0; bin < this.neuronCount * this.bins; bin++) {
      const state = 3 * bin;
      binState[state] += other.binState[state];
      const union = [...this.held(bin), ...other.held(bin)]
        .map((excerpt) => ({ excerpt, priority: this.cachedPriority(excerpt) }))
        .sort((a, b) => (priorityBefore(a.priority, a.excerpt, b.priority, b.excerpt) ? -1 : 1))
        .slice(0, S);
      union.forEach((m, s) => (sampleSlots[bin * S + s] = m.excerpt));
      // The worst held sample is the last, at slot union.length − 1.
      binState[state + 1] = union.length > 0 ? union[union.length - 1].priority : 0;
      binState[state + 2] = union.length | (Math.max(0, union.length - 1) << 8);
    }
    for (let n = 0; n < this.neuronCount; n++) {
      this.minExcerptMax[n] = Math.min(this.minExcerptMax[n], other.minExcerptMax[n]);
      this.maxExcerptMax[n] = Math.max(this.maxExcerptMax[n], other.maxExcerptMax[n]);
    }
    this.excerpts += other.excerpts;
  }

  section(): StateSection {
    this.flush();
    return { name: QuantileTracker.SECTION, counters: { excerpts: this.excerpts }, arrays: this.arrays() };
  }

  restore(sections: Map<string, LoadedSection>): void {
    this.excerpts = counter(restoreSection(sections, QuantileTracker.SECTION, this.arrays()), 'excerpts');
    const S = this.sampleSize;
    for (let bin = 0; bin < this.neuronCount * this.bins; bin++) {
      const held = this.binState[3 * bin + 2] & 0xff;
      if (held > S || this.binState[3 * bin + 2] >>> 8 >= Math.max(1, held)) throw new StateFormatError('not a valid scan statistics state: bad quantile sample counts');
    }
  }

  private arrays(): [string, StateArray][] {
    return [
      ['binState', this.binState],
      ['sampleSlots', this.sampleSlots],
      ['minExcerptMax', this.minExcerptMax],
      ['maxExcerptMax', this.maxExcerptMax],
    ];
  }
}
