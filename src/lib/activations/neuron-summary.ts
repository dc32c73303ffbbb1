/**
 * What a list of many neurons shows of each (the Explorer): a few numbers and the peak tokens,
 * derived from the neuron's record alone, so they are the same for a scan and an import.
 *
 * - `maxActivation`: the largest activation anywhere in the record. A scan's top-activating
 *   excerpts hold the neuron's maximum over the whole corpus, so this is that maximum.
 * - `firesOn`: how often the neuron fires, as the share of the random sample's tokens whose
 *   activation is above 0 (for GELU, where the pre-activation is positive). The random sample is
 *   a uniform sample of the corpus's excerpts (50 of 64 tokens by default), so this estimates the
 *   share of all tokens; `sampledTokens` says how many tokens it was counted on. Low means sparse.
 * - `mean`: the record's mean activation over the whole corpus, when it has one.
 * - `peaks`: the first few of peakTokens(record), with `topExcerpts` to read their counts against.
 */
import { peakTokens, type PeakToken } from './peak-tokens.ts';
import type { NeuronRecord } from './records.ts';

/** Peak tokens kept per neuron in a summary. */
export const SUMMARY_PEAKS = 3;

export interface NeuronSummary {
  layer: number;
  neuron: number;
  /** Null when the record holds no activations at all. */
  maxActivation: number | null;
  mean: number | null;
  /** Share (0 to 1) of the random sample's tokens with an activation above 0; null without a random sample. */
  firesOn: number | null;
  /** Tokens of the random sample `firesOn` was counted on. */
  sampledTokens: number;
  /** Top-activating excerpts in the record (what the peak tokens' counts are out of). */
  topExcerpts: number;
  peaks: PeakToken[];
}

export function summarizeNeuronRecord(record: NeuronRecord): NeuronSummary {
  let max = -Infinity;
  const lists = [record.random_sample, ...(record.random_sample_by_quantile ?? []), record.most_positive_activation_records];
  for (const list of lists) {
    for (const { activations } of list) for (let i = 0; i < activations.length; i++) if (activations[i] > max) max = activations[i];
  }
  let sampledTokens = 0;
  let firing = 0;
  for (const { activations } of record.random_sample) {
    sampledTokens += activations.length;
    for (let i = 0; i < activations.length; i++) if (activations[i] > 0) firing++;
  }
  return {
    layer: record.neuron_id.layer_index,
    neuron: record.neuron_id.neuron_index,
    maxActivation: max === -Infinity ? null : max,
    mean: record.mean ?? null,
    firesOn: sampledTokens > 0 ? firing / sampledTokens : null,
    sampledTokens,
    topExcerpts: record.most_positive_activation_records.length,
    peaks: peakTokens(record).slice(0, SUMMARY_PEAKS),
  };
}
