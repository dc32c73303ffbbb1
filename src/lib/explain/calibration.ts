/**
 * Optional linear calibration of simulated activations (Bills et al. 2023).
 *
 * The simulator predicts on an arbitrary 0..10 scale, so error-based scores (`rsquared_score`,
 * `absolute_dev_explained_score`) computed on raw simulated values mostly measure the scale
 * mismatch. The paper's calibrated scores first map simulated values to the neuron's own units
 * with a least-squares line `true ≈ slope * simulated + intercept`, fitted on a *calibration* set
 * of records (disjoint from the scored ones, to avoid rewarding overfitting), and then score the
 * mapped values on the scored set.
 *
 * Correlation is unchanged by a line with positive slope, so the headline `ev_correlation_score`
 * does not need calibration; with a negative slope its sign flips, and with slope 0 (no
 * relationship on the calibration set) it becomes undefined (null).
 *
 * Tokens without a simulated value (null) are left out of the fit and stay null when applied.
 */
import type { SequenceSimulation } from './explanation-types.ts';
import { scoreSimulation, type ScoringPair, type SimulationScores } from './scoring.ts';

export class CalibrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CalibrationError';
  }
}

export interface LinearCalibration {
  slope: number;
  intercept: number;
  /** Number of (simulated, true) points the line was fitted on. */
  count: number;
}

function sumOf(values: readonly number[]): number {
  // Neumaier compensation: calibration sets hold thousands of tokens.
  let sum = 0;
  let c = 0;
  for (const v of values) {
    const t = sum + v;
    c += Math.abs(sum) >= Math.abs(v) ? sum - t + v : v - t + sum;
    sum = t;
  }
  return sum + c;
}

/**
 * Least-squares line from simulated to true activations over all tokens of the calibration
 * records. When the simulated values are constant the slope is 0 and the intercept the mean true
 * activation (the minimum-norm solution, as numpy/sklearn give).
 */
export function fitLinearCalibration(pairs: readonly ScoringPair[]): LinearCalibration {
  const xs: number[] = [];
  const ys: number[] = [];
  pairs.forEach((pair, r) => {
    if (pair.trueActivations.length !== pair.expected.length) {
      throw new CalibrationError(
        `calibration records[${r}]: ${pair.trueActivations.length} true activations but ${pair.expected.length} expected values`,
      );
    }
    pair.expected.forEach((x, i) => {
      const y = pair.trueActivations[i];
      if (!Number.isFinite(y)) {
        throw new CalibrationError(`calibration records[${r}].trueActivations[${i}]: expected a finite number, got ${y}`);
      }
      if (x === null) return;
      if (!Number.isFinite(x)) {
        throw new CalibrationError(`calibration records[${r}].expected[${i}]: expected a finite number or null, got ${x}`);
      }
      xs.push(x);
      ys.push(y);
    });
  });
  const n = xs.length;
  if (n === 0) throw new CalibrationError('calibration set has no tokens with a simulated value');
  const meanX = sumOf(xs) / n;
  const meanY = sumOf(ys) / n;
  const sxx = sumOf(xs.map((x) => (x - meanX) ** 2));
  const sxy = sumOf(xs.map((x, i) => (x - meanX) * (ys[i] - meanY)));
  const constantX = xs.every((x) => x === xs[0]);
  const slope = constantX || !(sxx > 0) ? 0 : sxy / sxx;
  return { slope, intercept: meanY - slope * meanX, count: n };
}

/** Maps simulated values to the neuron's units; nulls stay null. */
export function applyLinearCalibration(
  calibration: LinearCalibration,
  values: readonly (number | null)[],
): (number | null)[] {
  return values.map((v) => (v === null ? null : calibration.slope * v + calibration.intercept));
}

/** A simulation after calibration, keeping the original as the paper's files do. */
export type CalibratedSequenceSimulation = SequenceSimulation & {
  uncalibrated_simulation: SequenceSimulation;
};

/**
 * Calibrates a SequenceSimulation: expected values and distribution values move to the neuron's
 * units (`activation_scale: "neuron_activations"`); probabilities are unchanged.
 */
export function calibrateSequenceSimulation(
  calibration: LinearCalibration,
  simulation: SequenceSimulation,
): CalibratedSequenceSimulation {
  return {
    ...simulation,
    expected_activations: applyLinearCalibration(calibration, simulation.expected_activations),
    activation_scale: 'neuron_activations',
    distribution_values: simulation.distribution_values.map(
      (values) => applyLinearCalibration(calibration, values) as number[],
    ),
    distribution_probabilities: simulation.distribution_probabilities.map((p) => [...p]),
    uncalibrated_simulation: simulation,
  };
}

export interface CalibratedScores {
  calibration: LinearCalibration;
  scores: SimulationScores;
}

/** Fits the line on `calibrationSet`, applies it to `scoredSet` and scores the result. */
export function calibratedScores(
  calibrationSet: readonly ScoringPair[],
  scoredSet: readonly ScoringPair[],
): CalibratedScores {
  const calibration = fitLinearCalibration(calibrationSet);
  const scores = scoreSimulation(
    scoredSet.map((pair) => ({
      trueActivations: pair.trueActivations,
      expected: applyLinearCalibration(calibration, pair.expected),
    })),
  );
  return { calibration, scores };
}
