/**
 * Explanation scores of Bills et al. (2023): how well the simulator's expected activations
 * predict the neuron's true activations.
 *
 * - `ev_correlation_score`: Pearson correlation over all tokens of all records concatenated (not
 *   the mean of per-record correlations); the paper's headline score is this over top-activating
 *   and random records together.
 * - `rsquared_score`: `1 - mean((true - expected)^2) / mean(true^2)`.
 * - `absolute_dev_explained_score`: `1 - mean(|true - expected|) / mean(|true|)`.
 *
 * Where a score is undefined (a constant series, no tokens, a zero denominator) it is `null`,
 * never NaN or 0, so it serialises to JSON the way the paper's files hold NaN (as null).
 * A missing simulated value (`null`) drops that token from every score (pairwise deletion); the
 * fraction kept is reported as `coverage`. Treating it as 0 would bias the scores.
 *
 * Arithmetic is float64 with compensated sums and two-pass (centred) moments, which matches
 * numpy's `corrcoef` to ~1e-15 on realistic data.
 */
import type {
  ScoredExplanation,
  ScoredSequenceSimulation,
  ScoredSimulation,
  SequenceSimulation,
} from './explanation-types.ts';

export class ScoringError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScoringError';
  }
}

/** One record: true activations and the simulator's expected values for the same tokens. */
export interface ScoringPair {
  trueActivations: readonly number[];
  expected: readonly (number | null)[];
}

export interface ScoreSet {
  ev_correlation_score: number | null;
  rsquared_score: number | null;
  absolute_dev_explained_score: number | null;
}

export interface SimulationScores extends ScoreSet {
  /** Correlation of each record alone (null where undefined). */
  per_record_correlation: (number | null)[];
  /** Fraction of tokens with a simulated value (1 when there are no tokens: nothing is missing). */
  coverage: number;
}

/** Neumaier-compensated sum: keeps float64 sums of thousands of terms exact to ~1 ulp. */
function compensatedSum(values: ArrayLike<number>): number {
  let sum = 0;
  let compensation = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    const t = sum + v;
    compensation += Math.abs(sum) >= Math.abs(v) ? sum - t + v : v - t + sum;
    sum = t;
  }
  return sum + compensation;
}

/** Mean with a second correction pass, so the centred values below sum to ~0. */
function mean(values: ArrayLike<number>): number {
  const n = values.length;
  const first = compensatedSum(values) / n;
  const residuals = new Float64Array(n);
  for (let i = 0; i < n; i++) residuals[i] = values[i] - first;
  return first + compensatedSum(residuals) / n;
}

function isConstant(values: ArrayLike<number>): boolean {
  for (let i = 1; i < values.length; i++) if (values[i] !== values[0]) return false;
  return true;
}

function checkSeries(values: readonly number[], name: string): void {
  values.forEach((v, i) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new ScoringError(`${name}[${i}]: expected a finite number, got ${String(v)}`);
    }
  });
}

/**
 * Pearson correlation of two equally long series, or null when it is undefined: fewer than two
 * values, or either series constant (checked exactly, so rounding noise in a constant series
 * cannot produce a spurious value). Clipped to [-1, 1] like numpy.
 */
export function correlation(x: readonly number[], y: readonly number[]): number | null {
  if (x.length !== y.length) {
    throw new ScoringError(`correlation: series differ in length (${x.length} vs ${y.length})`);
  }
  checkSeries(x, 'x');
  checkSeries(y, 'y');
  const n = x.length;
  if (n < 2 || isConstant(x) || isConstant(y)) return null;
  const mx = mean(x);
  const my = mean(y);
  const dxx = new Float64Array(n);
  const dyy = new Float64Array(n);
  const dxy = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const dx = x[i] - mx;
    const dy = y[i] - my;
    dxx[i] = dx * dx;
    dyy[i] = dy * dy;
    dxy[i] = dx * dy;
  }
  const sxx = compensatedSum(dxx);
  const syy = compensatedSum(dyy);
  if (!(sxx > 0) || !(syy > 0)) return null;
  const r = compensatedSum(dxy) / (Math.sqrt(sxx) * Math.sqrt(syy));
  return Math.max(-1, Math.min(1, r));
}

/** `1 - mean((t - e)^2) / mean(t^2)`; null when there are no values or every true value is 0. */
export function rsquaredScore(trueValues: readonly number[], expected: readonly number[]): number | null {
  const n = trueValues.length;
  if (n === 0) return null;
  const squaredError = new Float64Array(n);
  const squaredTrue = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    squaredError[i] = (trueValues[i] - expected[i]) ** 2;
    squaredTrue[i] = trueValues[i] ** 2;
  }
  const denominator = compensatedSum(squaredTrue) / n;
  if (!(denominator > 0)) return null;
  return 1 - compensatedSum(squaredError) / n / denominator;
}

/** `1 - mean(|t - e|) / mean(|t|)`; null when there are no values or every true value is 0. */
export function absoluteDevExplainedScore(
  trueValues: readonly number[],
  expected: readonly number[],
): number | null {
  const n = trueValues.length;
  if (n === 0) return null;
  const absError = new Float64Array(n);
  const absTrue = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    absError[i] = Math.abs(trueValues[i] - expected[i]);
    absTrue[i] = Math.abs(trueValues[i]);
  }
  const denominator = compensatedSum(absTrue) / n;
  if (!(denominator > 0)) return null;
  return 1 - compensatedSum(absError) / n / denominator;
}

interface PresentValues {
  trueValues: number[];
  expected: number[];
  total: number;
}

/** Validates the pairs and keeps only the tokens that have a simulated value. */
function presentValues(pairs: readonly ScoringPair[]): PresentValues {
  const trueValues: number[] = [];
  const expected: number[] = [];
  let total = 0;
  pairs.forEach((pair, r) => {
    if (!Array.isArray(pair.trueActivations) || !Array.isArray(pair.expected)) {
      throw new ScoringError(`records[${r}]: trueActivations and expected must be arrays`);
    }
    if (pair.trueActivations.length !== pair.expected.length) {
      throw new ScoringError(
        `records[${r}]: ${pair.trueActivations.length} true activations but ${pair.expected.length} expected values`,
      );
    }
    pair.trueActivations.forEach((t, i) => {
      const e = pair.expected[i];
      if (typeof t !== 'number' || !Number.isFinite(t)) {
        throw new ScoringError(`records[${r}].trueActivations[${i}]: expected a finite number, got ${String(t)}`);
      }
      if (e !== null && (typeof e !== 'number' || !Number.isFinite(e))) {
        throw new ScoringError(`records[${r}].expected[${i}]: expected a finite number or null, got ${String(e)}`);
      }
      total++;
      if (e === null) return;
      trueValues.push(t);
      expected.push(e);
    });
  });
  return { trueValues, expected, total };
}

function scoresOf(trueValues: number[], expected: number[]): ScoreSet {
  return {
    ev_correlation_score: correlation(trueValues, expected),
    rsquared_score: rsquaredScore(trueValues, expected),
    absolute_dev_explained_score: absoluteDevExplainedScore(trueValues, expected),
  };
}

/** All scores over the concatenation of the records, plus each record's own correlation. */
export function scoreSimulation(pairs: readonly ScoringPair[]): SimulationScores {
  const all = presentValues(pairs);
  const per_record_correlation = pairs.map((pair) => {
    const one = presentValues([pair]);
    return correlation(one.trueValues, one.expected);
  });
  return {
    ...scoresOf(all.trueValues, all.expected),
    per_record_correlation,
    coverage: all.total === 0 ? 1 : all.trueValues.length / all.total,
  };
}

export interface TopAndRandomScores {
  top: SimulationScores;
  random: SimulationScores;
  /** Top and random together: the paper's headline score is `all.ev_correlation_score`. */
  all: SimulationScores;
}

/** Scores on top-activating records, on random records, and on both together. */
export function scoreTopAndRandom(
  top: readonly ScoringPair[],
  random: readonly ScoringPair[],
): TopAndRandomScores {
  return { top: scoreSimulation(top), random: scoreSimulation(random), all: scoreSimulation([...top, ...random]) };
}

/** Scores one simulated sequence against the true activations of the same tokens. */
export function scoreSequenceSimulation(
  simulation: SequenceSimulation,
  trueActivations: readonly number[],
): ScoredSequenceSimulation {
  if (simulation.expected_activations.length !== trueActivations.length) {
    throw new ScoringError(
      `simulation has ${simulation.expected_activations.length} expected activations but there are ${trueActivations.length} true activations`,
    );
  }
  if (simulation.tokens.length !== trueActivations.length) {
    throw new ScoringError(
      `simulation has ${simulation.tokens.length} tokens but there are ${trueActivations.length} true activations`,
    );
  }
  const scores = scoreSimulation([{ trueActivations, expected: simulation.expected_activations }]);
  return {
    dataclass_name: 'ScoredSequenceSimulation',
    simulation,
    true_activations: [...trueActivations],
    ev_correlation_score: scores.ev_correlation_score,
    rsquared_score: scores.rsquared_score,
    absolute_dev_explained_score: scores.absolute_dev_explained_score,
  };
}

/** The (true, expected) pairs stored in scored sequence simulations. */
export function scoringPairsOf(scored: readonly ScoredSequenceSimulation[]): ScoringPair[] {
  return scored.map((s) => ({ trueActivations: s.true_activations, expected: s.simulation.expected_activations }));
}

/**
 * Combines per-sequence results into a ScoredSimulation whose scores are computed over all
 * tokens of all sequences at once (not averaged).
 */
export function aggregateScoredSequenceSimulations(
  scored: readonly ScoredSequenceSimulation[],
): ScoredSimulation {
  const scores = scoreSimulation(scoringPairsOf(scored));
  return {
    dataclass_name: 'ScoredSimulation',
    scored_sequence_simulations: [...scored],
    ev_correlation_score: scores.ev_correlation_score,
    rsquared_score: scores.rsquared_score,
    absolute_dev_explained_score: scores.absolute_dev_explained_score,
  };
}

/** Scores simulations of several sequences; `trueActivations[i]` belongs to `simulations[i]`. */
export function scoreSimulations(
  simulations: readonly SequenceSimulation[],
  trueActivations: readonly (readonly number[])[],
): ScoredSimulation {
  if (simulations.length !== trueActivations.length) {
    throw new ScoringError(`${simulations.length} simulations but ${trueActivations.length} true activation lists`);
  }
  const scored = simulations.map((simulation, i) => {
    try {
      return scoreSequenceSimulation(simulation, trueActivations[i]);
    } catch (error) {
      throw error instanceof ScoringError ? new ScoringError(`sequence ${i}: ${error.message}`) : error;
    }
  });
  return aggregateScoredSequenceSimulations(scored);
}

/** A ScoredExplanation from an explanation and its simulations of the scored sequences. */
export function scoreExplanation(
  explanation: string,
  simulations: readonly SequenceSimulation[],
  trueActivations: readonly (readonly number[])[],
): ScoredExplanation {
  return {
    dataclass_name: 'ScoredExplanation',
    explanation,
    scored_simulation: scoreSimulations(simulations, trueActivations),
  };
}

/**
 * Recomputes every score of a stored ScoredSimulation from its `true_activations` and
 * `expected_activations`, keeping everything else (including unknown fields) as it was.
 */
export function rescoreScoredSimulation(stored: ScoredSimulation): ScoredSimulation {
  const sequences = stored.scored_sequence_simulations.map((s, i) => {
    let scores: SimulationScores;
    try {
      scores = scoreSimulation(scoringPairsOf([s]));
    } catch (error) {
      throw error instanceof ScoringError ? new ScoringError(`sequence ${i}: ${error.message}`) : error;
    }
    return {
      ...s,
      ev_correlation_score: scores.ev_correlation_score,
      rsquared_score: scores.rsquared_score,
      absolute_dev_explained_score: scores.absolute_dev_explained_score,
    };
  });
  const scores = scoreSimulation(scoringPairsOf(sequences));
  return {
    ...stored,
    scored_sequence_simulations: sequences,
    ev_correlation_score: scores.ev_correlation_score,
    rsquared_score: scores.rsquared_score,
    absolute_dev_explained_score: scores.absolute_dev_explained_score,
  };
}
