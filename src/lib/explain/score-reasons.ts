/**
 * Why a score is undefined, in plain words. The scorers return null where a score has no value
 * (scoring.ts, ablation-score.ts); a user shown "undefined" learns nothing, so the page shows one
 * of these reasons instead, worked out from the same simulations and activations.
 */
import type { AblationScore } from './ablation-score.ts';
import { formatActivation } from '../activations/excerpt-display.ts';
import type { ScoringPair } from './scoring.ts';

const isConstant = (values: readonly number[]) => values.every((v) => v === values[0]);

/**
 * Why the correlation of these pairs (concatenated) is undefined, or null when it is defined:
 * nothing was scored, the simulator gave no values, too few, the simulation is constant, or the
 * neuron's activations are.
 */
export function correlationUndefinedReason(pairs: readonly ScoringPair[]): string | null {
  const real: number[] = [];
  const simulated: number[] = [];
  let total = 0;
  for (const pair of pairs) {
    pair.trueActivations.forEach((t, i) => {
      total++;
      const e = pair.expected[i];
      if (e === null || e === undefined) return;
      real.push(t);
      simulated.push(e);
    });
  }
  if (total === 0) return 'no excerpts were scored';
  if (simulated.length === 0) return "the simulator returned no values: check the endpoint's answers (none could be read as a number from 0 to 10)";
  if (simulated.length < 2) return `the simulator gave a value for only 1 of ${total} tokens: too few to correlate; check the endpoint's answers`;
  if (isConstant(simulated) && isConstant(real)) {
    return `neither the neuron (${formatActivation(real[0])} on every scored token) nor the simulation (${formatActivation(simulated[0])} throughout) varies on these excerpts, so there is no correlation to compute: they hold nothing the neuron responds to`;
  }
  if (isConstant(simulated)) {
    return `the simulation is ${formatActivation(simulated[0])} on every token, and a constant has no correlation: the explanation predicted ${simulated[0] === 0 ? 'nothing' : 'the same value everywhere'} on these excerpts${simulated[0] === 0 ? ' (or the endpoint answered 0 throughout)' : ''}`;
  }
  if (isConstant(real)) {
    return `the neuron's activation is ${formatActivation(real[0])} on every scored token, and a constant has no correlation: these excerpts never make it vary`;
  }
  return null;
}

/** A note on partial coverage (some tokens without a simulated value), or null. */
export function coverageNote(coverage: number | undefined): string | null {
  if (coverage === undefined || coverage >= 1) return null;
  if (coverage <= 0) return null; // correlationUndefinedReason says it
  return `the simulator gave values for ${(100 * coverage).toFixed(0)}% of the tokens; the scores leave the rest out`;
}

/** Why an ablation score is missing or undefined, or null when it has a value. */
export function ablationUndefinedReason(ablation: AblationScore | null | undefined): string | null {
  if (ablation === undefined) return 'not computed yet: it runs the model this dataset was scanned with; with that model loaded, press “Ablation score”';
  if (ablation === null) return "could not be computed: the record has no mean activation, or the simulation gave no values to calibrate with";
  if (ablation.score !== null) return null;
  const skipped = ablation.excerpts.filter((e) => e.skipped);
  if (skipped.length === ablation.excerpts.length && skipped.length > 0) return `every excerpt was skipped: ${skipped[0].skipped}`;
  return "replacing the neuron by its mean changes none of the model's predictions on these excerpts, so there is no effect for the explanation to recover";
}
