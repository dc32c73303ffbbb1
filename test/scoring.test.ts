import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  aggregateScoredSequenceSimulations,
  correlation,
  rescoreScoredSimulation,
  scoreExplanation,
  scoreSequenceSimulation,
  scoreSimulation,
  scoreTopAndRandom,
  ScoringError,
  type ScoringPair,
} from '../src/lib/explain/scoring.ts';
import { expectedValueFromTopLogprobs, valueDistributionFromTopLogprobs } from '../src/lib/explain/expected-value.ts';
import {
  maxActivation,
  nonZeroPairs,
  normalizeActivations,
  normalizeRecords,
  shouldRepeatNonZero,
} from '../src/lib/explain/normalize.ts';
import {
  applyLinearCalibration,
  calibratedScores,
  calibrateSequenceSimulation,
  CalibrationError,
  fitLinearCalibration,
} from '../src/lib/explain/calibration.ts';
import { balancedAccuracy, BinaryScoringError } from '../src/lib/explain/binary-scoring.ts';
import type { SequenceSimulation } from '../src/lib/explain/explanation-types.ts';

interface FixtureCase {
  records: { activations: number[]; expected: number[] }[];
  ev_correlation_score: number | null;
  rsquared_score: number | null;
  absolute_dev_explained_score: number | null;
  per_record_correlation: (number | null)[];
  max_activation: number;
  normalized: number[][];
}
interface Fixture {
  scoring: FixtureCase[];
  expected_values: { top_logprobs: Record<string, number>; expected_value: number | null }[];
}

const fixture = JSON.parse(
  readFileSync(new URL('./fixtures/scoring-public-cases.json', import.meta.url), 'utf8'),
) as Fixture;

const TOLERANCE = 1e-9;

/** Both null, or both numbers within the fixture's tolerance. */
function expectClose(actual: number | null | undefined, expected: number | null, label: string): void {
  if (expected === null) {
    expect(actual, label).toBeNull();
    return;
  }
  expect(actual, label).not.toBeNull();
  expect(Math.abs((actual as number) - expected), `${label}: ${actual} vs ${expected}`).toBeLessThanOrEqual(TOLERANCE);
}

const pairsOf = (c: FixtureCase): ScoringPair[] =>
  c.records.map((r) => ({ trueActivations: r.activations, expected: r.expected }));

function simulationOf(expected: (number | null)[]): SequenceSimulation {
  return {
    dataclass_name: 'SequenceSimulation',
    tokens: expected.map((_, i) => ` t${i}`),
    expected_activations: expected,
    activation_scale: 'simulated_normalized_activations',
    distribution_values: [],
    distribution_probabilities: [],
  };
}

describe('numpy parity on the public fixture', () => {
  it('has cases to check', () => {
    expect(fixture.scoring.length).toBeGreaterThan(0);
    expect(fixture.expected_values.length).toBeGreaterThan(0);
  });

  fixture.scoring.forEach((c, k) => {
    it(`scoring case ${k}: scores, per-record correlation, max and normalisation`, () => {
      const scores = scoreSimulation(pairsOf(c));
      expectClose(scores.ev_correlation_score, c.ev_correlation_score, 'ev_correlation_score');
      expectClose(scores.rsquared_score, c.rsquared_score, 'rsquared_score');
      expectClose(scores.absolute_dev_explained_score, c.absolute_dev_explained_score, 'absolute_dev_explained_score');
      expect(scores.per_record_correlation).toHaveLength(c.per_record_correlation.length);
      c.per_record_correlation.forEach((r, i) => expectClose(scores.per_record_correlation[i], r, `record ${i}`));
      expect(scores.coverage).toBe(1);
      expectClose(maxActivation(c.records), c.max_activation, 'max_activation');
      expect(normalizeRecords(c.records)).toEqual(c.normalized);
      expect(normalizeRecords(c.records, c.max_activation)).toEqual(c.normalized);
    });

    it(`scoring case ${k}: builders and the top/random split agree with numpy`, () => {
      const simulations = c.records.map((r) => simulationOf(r.expected));
      const explained = scoreExplanation(
        'test explanation',
        simulations,
        c.records.map((r) => r.activations),
      );
      expect(explained.dataclass_name).toBe('ScoredExplanation');
      const sim = explained.scored_simulation;
      expect(sim.dataclass_name).toBe('ScoredSimulation');
      expectClose(sim.ev_correlation_score, c.ev_correlation_score, 'aggregate ev');
      expectClose(sim.rsquared_score, c.rsquared_score, 'aggregate rsquared');
      expectClose(sim.absolute_dev_explained_score, c.absolute_dev_explained_score, 'aggregate absdev');
      sim.scored_sequence_simulations.forEach((s, i) => {
        expect(s.dataclass_name).toBe('ScoredSequenceSimulation');
        expect(s.true_activations).toEqual(c.records[i].activations);
        expectClose(s.ev_correlation_score, c.per_record_correlation[i], `sequence ${i}`);
      });
      // The combined score is over all tokens at once, whatever the split between top and random.
      const split = Math.ceil(c.records.length / 2);
      const both = scoreTopAndRandom(pairsOf(c).slice(0, split), pairsOf(c).slice(split));
      expectClose(both.all.ev_correlation_score, c.ev_correlation_score, 'top+random ev');
      expectClose(both.all.rsquared_score, c.rsquared_score, 'top+random rsquared');
      if (split === 1) expectClose(both.top.ev_correlation_score, c.per_record_correlation[0], 'top-only ev');
      if (c.records.length - split === 1) {
        expectClose(both.random.ev_correlation_score, c.per_record_correlation[split], 'random-only ev');
      }
    });

    it(`scoring case ${k}: rescoring a stored simulation restores the numpy scores`, () => {
      const scored = aggregateScoredSequenceSimulations(
        c.records.map((r) => scoreSequenceSimulation(simulationOf(r.expected), r.activations)),
      );
      const tampered = {
        ...scored,
        ev_correlation_score: 0.123,
        rsquared_score: null,
        extra_field: 'kept',
        scored_sequence_simulations: scored.scored_sequence_simulations.map((s) => ({ ...s, ev_correlation_score: -0.5 })),
      };
      const rescored = rescoreScoredSimulation(tampered);
      expectClose(rescored.ev_correlation_score, c.ev_correlation_score, 'ev');
      expectClose(rescored.rsquared_score, c.rsquared_score, 'rsquared');
      expect((rescored as typeof tampered).extra_field).toBe('kept');
      rescored.scored_sequence_simulations.forEach((s, i) =>
        expectClose(s.ev_correlation_score, c.per_record_correlation[i], `sequence ${i}`),
      );
    });
  });

  fixture.expected_values.forEach((c, k) => {
    it(`expected value case ${k}`, () => {
      expectClose(expectedValueFromTopLogprobs(c.top_logprobs), c.expected_value, 'expected_value');
    });
  });
});

describe('correlation', () => {
  it('matches a hand-computed value', () => {
    // x = [1,2,3], y = [1,2,4]: Sxy = 3, Sxx = 2, Syy = 42/9, r = 3 / sqrt(2 * 42/9) = 9 / sqrt(84).
    expect(correlation([1, 2, 3], [1, 2, 4])).toBeCloseTo(9 / Math.sqrt(84), 14);
  });

  it('is ±1 under positive/negative linear maps and clipped to [-1, 1]', () => {
    const x = [0.3, -1.7, 2.2, 0.05, 9.1, -3.3];
    expect(correlation(x, x.map((v) => 3 * v + 7))).toBeCloseTo(1, 14);
    expect(correlation(x, x.map((v) => -0.2 * v + 1))).toBeCloseTo(-1, 14);
    expect(Math.abs(correlation(x, x) as number)).toBeLessThanOrEqual(1);
  });

  it('is null (never NaN or 0) when undefined', () => {
    expect(correlation([], [])).toBeNull();
    expect(correlation([5], [3])).toBeNull();
    expect(correlation([2, 2, 2, 2], [1, 2, 3, 4])).toBeNull();
    expect(correlation([1, 2, 3, 4], [0, 0, 0, 0])).toBeNull();
    // A constant series whose float mean is not exactly the value must still be null.
    expect(correlation([0.1, 0.1, 0.1], [1, 2, 3])).toBeNull();
  });

  it('stays accurate on activations with a large common offset (two-pass moments)', () => {
    const noise = [0.12, -0.4, 0.33, 0.9, -0.71, 0.05, 0.6, -0.2];
    const y = [1, 0, 2, 5, -1, 0.5, 3, 0];
    const reference = correlation(noise, y) as number;
    const shifted = correlation(
      noise.map((v) => v + 1e8),
      y,
    ) as number;
    expect(Math.abs(shifted - reference)).toBeLessThan(1e-7);
  });

  it('rejects mismatched lengths and non-finite values', () => {
    expect(() => correlation([1, 2], [1])).toThrow(ScoringError);
    expect(() => correlation([1, Number.NaN], [1, 2])).toThrow(/x\[1\]: expected a finite number/);
    expect(() => correlation([1, 2], [1, Infinity])).toThrow(/y\[1\]/);
  });
});

describe('scoreSimulation edge cases', () => {
  it('gives null scores and coverage 1 for no records or empty records', () => {
    for (const pairs of [[], [{ trueActivations: [], expected: [] }]]) {
      const s = scoreSimulation(pairs);
      expect(s.ev_correlation_score).toBeNull();
      expect(s.rsquared_score).toBeNull();
      expect(s.absolute_dev_explained_score).toBeNull();
      expect(s.coverage).toBe(1);
    }
  });

  it('excludes missing simulated values pairwise and reports coverage', () => {
    // Present pairs: (1,1), (2,2), (3,4); the 100 has no simulated value and must not count.
    const s = scoreSimulation([
      { trueActivations: [1, 2], expected: [1, 2] },
      { trueActivations: [3, 100], expected: [4, null] },
    ]);
    expect(s.coverage).toBe(0.75);
    expect(s.ev_correlation_score).toBeCloseTo(9 / Math.sqrt(84), 14);
    // 1 - mean(0, 0, 1) / mean(1, 4, 9) and 1 - mean(0, 0, 1) / mean(1, 2, 3).
    expect(s.rsquared_score).toBeCloseTo(13 / 14, 14);
    expect(s.absolute_dev_explained_score).toBeCloseTo(5 / 6, 14);
    expect(s.per_record_correlation[0]).toBeCloseTo(1, 14);
    expect(s.per_record_correlation[1]).toBeNull(); // one present value: undefined
    // Substituting 0 for the missing value would give a very different (wrong) score.
    const asZero = scoreSimulation([{ trueActivations: [1, 2, 3, 100], expected: [1, 2, 4, 0] }]);
    expect(Math.abs((asZero.ev_correlation_score as number) - (s.ev_correlation_score as number))).toBeGreaterThan(0.5);
  });

  it('gives coverage 0 and null scores when every simulated value is missing', () => {
    const s = scoreSimulation([{ trueActivations: [1, 2, 3], expected: [null, null, null] }]);
    expect(s.coverage).toBe(0);
    expect(s.ev_correlation_score).toBeNull();
    expect(s.rsquared_score).toBeNull();
  });

  it('gives null error-based scores when every true activation is 0', () => {
    const s = scoreSimulation([{ trueActivations: [0, 0, 0], expected: [1, 2, 3] }]);
    expect(s.ev_correlation_score).toBeNull();
    expect(s.rsquared_score).toBeNull();
    expect(s.absolute_dev_explained_score).toBeNull();
  });

  it('rejects malformed pairs with a clear message', () => {
    expect(() => scoreSimulation([{ trueActivations: [1, 2], expected: [1] }])).toThrow(
      'records[0]: 2 true activations but 1 expected values',
    );
    expect(() => scoreSimulation([{ trueActivations: [1, Number.NaN], expected: [1, 2] }])).toThrow(
      /records\[0\]\.trueActivations\[1\]: expected a finite number, got NaN/,
    );
    expect(() => scoreSimulation([{ trueActivations: [1, 2], expected: [1, Infinity] }])).toThrow(
      /records\[0\]\.expected\[1\]/,
    );
    expect(() => scoreSequenceSimulation(simulationOf([1, 2]), [1, 2, 3])).toThrow(ScoringError);
  });
});

describe('normalisation', () => {
  it('counts negatives as 0 and floors to integers 0..10', () => {
    expect(maxActivation([{ activations: [-5, -1] }, { activations: [-0.1] }])).toBe(0);
    expect(maxActivation([{ activations: [-5, 2] }, { activations: [4, 1] }])).toBe(4);
    expect(normalizeActivations([-3, 0, 0.39, 0.4, 1.99, 2, 4, 5], 4)).toEqual([0, 0, 0, 1, 4, 5, 10, 10]);
    expect(normalizeActivations([1, 2, 3], 0)).toEqual([0, 0, 0]);
    expect(normalizeActivations([1, 2, 3], -1)).toEqual([0, 0, 0]);
    expect(() => normalizeActivations([Number.NaN], 1)).toThrow(/activations\[0\]/);
  });

  it('repeats non-zero pairs only below 20% non-zero', () => {
    expect(shouldRepeatNonZero([[1, 0, 0, 0, 0]])).toBe(false); // exactly 20%
    expect(shouldRepeatNonZero([[1, 0, 0], [0, 0, 0]])).toBe(true); // 1 in 6
    expect(shouldRepeatNonZero([[3, 4], [0, 0, 0, 0, 0, 0, 0, 0]])).toBe(false); // 2 in 10
    expect(shouldRepeatNonZero([[], []])).toBe(false);
    const records = [
      { tokens: ['a', 'b', 'c'], activations: [0, 5, 0] },
      { tokens: ['d', 'e'], activations: [0, 0] },
    ];
    expect(nonZeroPairs(records, normalizeRecords(records))).toEqual([[{ token: 'b', activation: 10 }], []]);
    expect(() => nonZeroPairs(records, [[0, 1, 0]])).toThrow(/expected 2 normalised records/);
  });
});

describe('expected value from top log-probabilities', () => {
  it('keeps only "0".."10" exactly and renormalises', () => {
    const top = { '2': Math.log(0.2), '4': Math.log(0.2), ' 3': Math.log(0.5), '10.': -0.1, unknown: -0.2 };
    expect(expectedValueFromTopLogprobs(top)).toBeCloseTo(3, 14);
    const dist = valueDistributionFromTopLogprobs(top);
    expect(dist?.values).toEqual([2, 4]);
    expect(dist?.probabilities[0]).toBeCloseTo(0.5, 14);
    expect(expectedValueFromTopLogprobs({ '10': 0 })).toBe(10);
    expect(expectedValueFromTopLogprobs({ ' 3': -1, '11': -1, '-1': -1 })).toBeNull();
    expect(expectedValueFromTopLogprobs({})).toBeNull();
  });
});

describe('linear calibration', () => {
  it('fits least squares and applies it, leaving nulls alone', () => {
    // x = [0,1,2,3], y = [1,3,2,5]: Sxy = 5.5, Sxx = 5, slope 1.1, intercept 2.75 - 1.1 * 1.5 = 1.1.
    const fit = fitLinearCalibration([{ trueActivations: [1, 3, 2, 5], expected: [0, 1, 2, 3] }]);
    expect(fit.slope).toBeCloseTo(1.1, 14);
    expect(fit.intercept).toBeCloseTo(1.1, 14);
    expect(fit.count).toBe(4);
    const applied = applyLinearCalibration(fit, [10, null]);
    expect(applied[0]).toBeCloseTo(12.1, 12);
    expect(applied[1]).toBeNull();
  });

  it('makes error-based scores meaningful while correlation is unchanged', () => {
    const trueActs = [0, 0.5, 1.5, 2.5, 0.1];
    const simulated = trueActs.map((a) => 4 * a); // right shape, wrong scale
    const pairs = [{ trueActivations: trueActs, expected: simulated }];
    const raw = scoreSimulation(pairs);
    const { calibration, scores } = calibratedScores(pairs, pairs);
    expect(calibration.slope).toBeCloseTo(0.25, 12);
    expect(raw.rsquared_score as number).toBeLessThan(0);
    expect(scores.rsquared_score).toBeCloseTo(1, 12);
    expect(scores.absolute_dev_explained_score).toBeCloseTo(1, 12);
    expect(scores.ev_correlation_score).toBeCloseTo(raw.ev_correlation_score as number, 12);
  });

  it('handles degenerate calibration sets', () => {
    const flat = fitLinearCalibration([{ trueActivations: [1, 2, 6], expected: [3, 3, 3] }]);
    expect(flat.slope).toBe(0);
    expect(flat.intercept).toBeCloseTo(3, 14);
    expect(() => fitLinearCalibration([])).toThrow(CalibrationError);
    expect(() => fitLinearCalibration([{ trueActivations: [1], expected: [null] }])).toThrow(/no tokens/);
    expect(() => fitLinearCalibration([{ trueActivations: [1, 2], expected: [1] }])).toThrow(CalibrationError);
  });

  it('calibrates a SequenceSimulation into neuron units, keeping the original', () => {
    const sim: SequenceSimulation = {
      tokens: ['a', 'b'],
      expected_activations: [2, null],
      activation_scale: 'simulated_normalized_activations',
      distribution_values: [[0, 10], [1]],
      distribution_probabilities: [[0.5, 0.5], [1]],
    };
    const out = calibrateSequenceSimulation({ slope: 0.5, intercept: -1, count: 2 }, sim);
    expect(out.activation_scale).toBe('neuron_activations');
    expect(out.expected_activations).toEqual([0, null]);
    expect(out.distribution_values).toEqual([[-1, 4], [-0.5]]);
    expect(out.distribution_probabilities).toEqual(sim.distribution_probabilities);
    expect(out.uncalibrated_simulation).toBe(sim);
    expect(sim.expected_activations).toEqual([2, null]); // input untouched
  });
});

describe('balanced accuracy', () => {
  it('is the mean of TPR and TNR', () => {
    // TPR 2/3, TNR 1/1.
    expect(balancedAccuracy([true, true, true, false], [true, false, true, false])).toBeCloseTo(5 / 6, 14);
    // Always answering the majority class scores 0.5 however unbalanced the labels are.
    const labels = [true, false, false, false, false, false, false, false, false, false];
    expect(balancedAccuracy(labels, labels.map(() => false))).toBe(0.5);
    expect(balancedAccuracy(labels, labels)).toBe(1);
    expect(balancedAccuracy(labels, labels.map((l) => !l))).toBe(0);
  });

  it('is null when a class is absent and rejects bad input', () => {
    expect(balancedAccuracy([true, true], [true, false])).toBeNull();
    expect(balancedAccuracy([], [])).toBeNull();
    expect(() => balancedAccuracy([true], [true, false])).toThrow(BinaryScoringError);
  });
});
