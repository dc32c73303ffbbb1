/**
 * A neuron record's statistics as its page shows them: the moments the scan stored, the largest
 * activation of its top excerpts, and how often it fires in the record's random sample (the one
 * unbiased sample of tokens a record holds). "Fires" means above a tenth of its max, so that the
 * small positive values GELU gives almost everywhere do not count; the share above 0 is given too.
 */
import type { NeuronRecord } from './records.ts';

/** A token fires when its activation is above this fraction of the neuron's max. */
export const FIRING_FRACTION = 0.1;

export interface RecordStatistics {
  mean: number | null;
  variance: number | null;
  skewness: number | null;
  kurtosis: number | null;
  /** Largest activation in the top excerpts (null when there are none). */
  max: number | null;
  sample: {
    excerpts: number;
    tokens: number;
    /** The activation above which a token counts as firing (null without a max). */
    threshold: number | null;
    /** Tokens above the threshold. */
    firing: number;
    /** Tokens above 0. */
    positive: number;
  };
}

export function recordStatistics(record: NeuronRecord): RecordStatistics {
  let max: number | null = null;
  for (const r of record.most_positive_activation_records) for (const a of r.activations) if (max === null || a > max) max = a;
  const threshold = max !== null && max > 0 ? FIRING_FRACTION * max : null;
  let tokens = 0;
  let firing = 0;
  let positive = 0;
  for (const r of record.random_sample) {
    for (const a of r.activations) {
      tokens++;
      if (a > 0) positive++;
      if (threshold !== null && a > threshold) firing++;
    }
  }
  return {
    mean: record.mean,
    variance: record.variance,
    skewness: record.skewness,
    kurtosis: record.kurtosis,
    max,
    sample: { excerpts: record.random_sample.length, tokens, threshold, firing, positive },
  };
}
