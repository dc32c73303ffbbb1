/**
 * An explanation's headline score, as the lists of many neurons show it: the correlation of its
 * simulation with the real activations on all scored excerpts (the paper's `all` score). It comes
 * from Neurolens' scores (ExplanationScores) where there are some, else from the paper-format
 * simulation (ScoredExplanation, e.g. imported results); both are the same correlation. The store
 * keeps it on the explanation's own row (`score`), so a list needs no score or simulation rows.
 */
import type { ScoredExplanation } from '../explain/explanation-types.ts';
import type { ExplanationScores } from '../explain/pipeline.ts';

const finiteOrNull = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null);

export function scoreOfScores(scores: ExplanationScores): number | null {
  return finiteOrNull(scores?.all?.ev_correlation_score);
}

export function scoreOfSimulation(scored: ScoredExplanation): number | null {
  return finiteOrNull(scored?.scored_simulation?.ev_correlation_score);
}
