import { describe, expect, it } from 'vitest';
import { peakTokens } from '../src/lib/activations/peak-tokens.ts';
import type { ActivationRecord, NeuronRecord } from '../src/lib/activations/records.ts';

const excerpt = (tokens: string[], activations: number[]): ActivationRecord => ({ tokens, activations });
const record = (top: ActivationRecord[]): NeuronRecord => ({
  neuron_id: { layer_index: 0, neuron_index: 0 },
  random_sample: [],
  random_sample_by_quantile: null,
  quantile_boundaries: null,
  mean: null,
  variance: null,
  skewness: null,
  kurtosis: null,
  most_positive_activation_records: top,
});

describe('peakTokens', () => {
  it('counts the token at each top excerpt’s first maximum, most frequent first', () => {
    const peaks = peakTokens(
      record([
        excerpt([' a', ' the', ' cat'], [0.1, 3, 1]),
        excerpt([' the', ' dog', ' the'], [2.5, 0, 2.5]), // tie: the first maximum counts
        excerpt([' 19', '99', ' the'], [4, 1, 0.5]),
        excerpt([' the', ' end'], [1.5, 0.2]),
        excerpt([], []),
      ]),
    );
    expect(peaks).toEqual([
      { token: ' the', count: 3, maxActivation: 3 },
      { token: ' 19', count: 1, maxActivation: 4 },
    ]);
  });

  it('is empty without top excerpts', () => {
    expect(peakTokens(record([]))).toEqual([]);
  });
});
