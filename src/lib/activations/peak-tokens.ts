/**
 * An exact summary of a neuron's record: the tokens at which its top-activating excerpts peak.
 * Each top excerpt contributes the token at its (first) maximum activation; tokens are counted
 * over the excerpts, so "the" × 12 means twelve of the top excerpts peak at "the". Derived from
 * the record alone, so it is the same wherever the record came from (a scan, an import).
 */
import { peakIndex } from './excerpt-display.ts';
import type { NeuronRecord } from './records.ts';

export interface PeakToken {
  token: string;
  /** Top excerpts that peak at this token. */
  count: number;
  /** The largest of those peaks. */
  maxActivation: number;
}

/** Most frequent first; ties by the larger peak, then by the token's first appearance. */
export function peakTokens(record: NeuronRecord): PeakToken[] {
  const byToken = new Map<string, PeakToken>();
  for (const { tokens, activations } of record.most_positive_activation_records) {
    if (activations.length === 0) continue;
    const peak = peakIndex(activations);
    const token = tokens[peak];
    const entry = byToken.get(token);
    if (entry) {
      entry.count++;
      entry.maxActivation = Math.max(entry.maxActivation, activations[peak]);
    } else {
      byToken.set(token, { token, count: 1, maxActivation: activations[peak] });
    }
  }
  return [...byToken.values()].sort((a, b) => b.count - a.count || b.maxActivation - a.maxActivation);
}
