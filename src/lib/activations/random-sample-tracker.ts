/**
 * The random sample of excerpts shared by all neurons (as in the paper's released records): the
 * `size` excerpts of smallest random-stream priority (see seeded-random.ts), a uniform sample that
 * does not depend on the order excerpts arrive in, and that merges exactly: the sample of a union
 * is the smallest priorities among the parts' samples.
 */
import { priorityBefore, RANDOM_SAMPLE_STREAM, samplePriority } from './seeded-random.ts';
import { counter, restoreSection, type LoadedSection, type StateSection } from './state-codec.ts';

export class RandomSampleTracker {
  static readonly SECTION = 'randomSample';
  /** The sampled excerpts, sorted by priority. */
  private readonly sample: Int32Array;
  private count = 0;

  constructor(
    readonly size: number,
    readonly seed: number,
  ) {
    this.sample = new Int32Array(size);
  }

  priorityOf(excerpt: number): number {
    return samplePriority(this.seed, RANDOM_SAMPLE_STREAM, excerpt);
  }

  offer(excerpt: number, priority = this.priorityOf(excerpt)): void {
    const R = this.size;
    if (R === 0) return;
    const sample = this.sample;
    let i = this.count;
    if (i === R) {
      const last = sample[R - 1];
      if (!priorityBefore(priority, excerpt, this.priorityOf(last), last)) return;
      i = R - 1;
    } else {
      this.count++;
    }
    // Insertion into the list kept sorted by priority.
    while (i > 0 && priorityBefore(priority, excerpt, this.priorityOf(sample[i - 1]), sample[i - 1])) {
      sample[i] = sample[i - 1];
      i--;
    }
    sample[i] = excerpt;
  }

  /** The sample, in priority (random) order. */
  excerpts(): number[] {
    return Array.from(this.sample.subarray(0, this.count));
  }

  /** Takes the other tracker's sample (of other excerpts) in. */
  merge(other: RandomSampleTracker): void {
    for (const excerpt of other.excerpts()) this.offer(excerpt);
  }

  section(): StateSection {
    return { name: RandomSampleTracker.SECTION, counters: { count: this.count }, arrays: [['sample', this.sample]] };
  }

  restore(sections: Map<string, LoadedSection>): void {
    this.count = counter(restoreSection(sections, RandomSampleTracker.SECTION, [['sample', this.sample]]), 'count', this.size);
  }
}
