/**
 * Moments of all per-token activations of every neuron: mean, variance, skewness and excess
 * kurtosis, from power sums Σd, Σd², Σd³, Σd⁴ of d = x − shift.
 *
 * The shift is the neuron's mean on one excerpt, the first of the scan order (rounded to
 * float32), which keeps the sums well conditioned. Per excerpt the sums are float32 (the moment
 * kernel's SIMD lanes, moment-kernel.ts) and they are added to float64 totals: about 1e-6
 * relative error in the statistics. Shards of one scan take their shift from the same excerpt
 * (see `setShift`), so their per-excerpt sums are the very numbers one scan adds, and merged
 * totals differ from one scan's only by the order of float64 additions.
 */
import { counter, restoreSection, StateFormatError, type LoadedSection, type StateSection } from './state-codec.ts';

export interface NeuronMoments {
  mean: number;
  variance: number;
  /** null when the variance is 0. */
  skewness: number | null;
  /** Excess kurtosis (normal = 0); null when the variance is 0. */
  kurtosis: number | null;
}

export class MomentTracker {
  static readonly SECTION = 'moments';
  readonly shift: Float64Array;
  /** `shift` as float32 (its values are float32 already), the moment kernel's input; derived. */
  readonly shift32: Float32Array;
  /** 4 per neuron: Σd, Σd², Σd³, Σd⁴. */
  readonly powerSums: Float64Array;
  /** Tokens added (each counted once, not once per neuron). */
  tokens = 0;
  /** Whether the shift is set (by the first excerpt, or by setShift). */
  hasShift = false;

  constructor(readonly neuronCount: number) {
    this.shift = new Float64Array(neuronCount);
    this.shift32 = new Float32Array(neuronCount);
    this.powerSums = new Float64Array(4 * neuronCount);
  }

  /** Sets the shifts of neurons base … base + dMlp − 1 to their means on one layer block ([seq, dMlp] from offset). */
  setShift(base: number, dMlp: number, data: Float32Array, offset: number, seq: number): void {
    for (let j = 0; j < dMlp; j++) {
      let total = 0;
      for (let t = 0, p = offset + j; t < seq; t++, p += dMlp) total += data[p];
      this.shift[base + j] = this.shift32[base + j] = Math.fround(total / seq);
    }
  }

  /**
   * Adds the kernel's per-excerpt sums (float32, `sums[k · dMlp + j]`) of one layer block. Σd⁴ is
   * non-finite when an activation is, or when float32 overflowed: the neuron's column is then read
   * again, to redo its sums in float64. Returns the first neuron j (within the layer) with a
   * non-finite activation, or −1; nothing of that neuron is added then.
   */
  addBlock(base: number, dMlp: number, sums: Float32Array, data: Float32Array, offset: number, seq: number): number {
    const powerSums = this.powerSums;
    for (let j = 0, q = 4 * base; j < dMlp; j++, q += 4) {
      const s4 = sums[3 * dMlp + j];
      if (s4 - s4 !== 0) {
        if (!this.addColumnExactly(base, j, dMlp, data, offset, seq)) return j;
        continue;
      }
      powerSums[q] += sums[j];
      powerSums[q + 1] += sums[dMlp + j];
      powerSums[q + 2] += sums[2 * dMlp + j];
      powerSums[q + 3] += s4;
    }
    return -1;
  }

  /** addBlock for neuron j of the layer in float64; false (adding nothing) on a non-finite activation. */
  private addColumnExactly(base: number, j: number, dMlp: number, data: Float32Array, offset: number, seq: number): boolean {
    const c = this.shift[base + j];
    let s1 = 0, s2 = 0, s3 = 0, s4 = 0;
    for (let t = 0, p = offset + j; t < seq; t++, p += dMlp) {
      const x = data[p];
      if (x - x !== 0) return false;
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
    return true;
  }

  endExcerpt(seq: number): void {
    this.tokens += seq;
    this.hasShift = true;
  }

  /**
   * Population moments of all activations seen; null before any token. Kurtosis is excess
   * kurtosis, m4/m2² − 3 (scipy's default): the released records do not say which they hold, and
   * their values fit either definition.
   */
  momentsOf(neuron: number): NeuronMoments | null {
    const count = this.tokens;
    if (count === 0) return null;
    const q = 4 * neuron;
    const m1 = this.powerSums[q] / count;
    const r2 = this.powerSums[q + 1] / count;
    const r3 = this.powerSums[q + 2] / count;
    const r4 = this.powerSums[q + 3] / count;
    // Raw moments of d = x − shift → central moments. Only +, −, ×, ÷ and √ (correctly rounded
    // everywhere), no `**`: JavaScript engines differ in the last bit of pow, and the browser's
    // records must equal the CLI's.
    const m1Squared = m1 * m1;
    const variance = Math.max(0, r2 - m1Squared);
    const m3 = r3 - 3 * m1 * r2 + 2 * m1Squared * m1;
    const m4 = r4 - 4 * m1 * r3 + 6 * m1Squared * r2 - 3 * m1Squared * m1Squared;
    const mean = this.shift[neuron] + m1;
    if (variance === 0) return { mean, variance, skewness: null, kurtosis: null };
    return { mean, variance, skewness: m3 / (variance * Math.sqrt(variance)), kurtosis: m4 / (variance * variance) - 3 };
  }

  /**
   * Adds another tracker's sums (of other excerpts). Both must use the same shifts, which shards of
   * one scan do; a tracker that has seen nothing takes the other's.
   */
  merge(other: MomentTracker): void {
    if (other.tokens === 0 && !other.hasShift) return;
    if (this.tokens === 0 && !this.hasShift) {
      this.shift.set(other.shift);
      this.shift32.set(other.shift32);
      this.hasShift = true;
    } else {
      for (let n = 0; n < this.neuronCount; n++) {
        if (this.shift[n] !== other.shift[n]) {
          throw new StateFormatError(`the moments of neuron index ${n} were taken around different shifts: the states are not shards of one scan`);
        }
      }
    }
    for (let i = 0; i < this.powerSums.length; i++) this.powerSums[i] += other.powerSums[i];
    this.tokens += other.tokens;
  }

  section(): StateSection {
    return { name: MomentTracker.SECTION, counters: { tokens: this.tokens, hasShift: this.hasShift }, arrays: this.arrays() };
  }

  restore(sections: Map<string, LoadedSection>): void {
    const counters = restoreSection(sections, MomentTracker.SECTION, this.arrays());
    this.tokens = counter(counters, 'tokens');
    if (typeof counters.hasShift !== 'boolean') throw new StateFormatError('not a valid scan statistics state: bad counter hasShift');
    this.hasShift = counters.hasShift;
    this.shift32.set(this.shift);
  }

  private arrays(): [string, Float64Array][] {
    return [
      ['shift', this.shift],
      ['powerSums', this.powerSums],
    ];
  }
}
