/**
 * A GPT-2-small-sized dataset for the Explorer's performance test, made quickly: NeuronRecords of
 * 12 × 3,072 = 36,864 neurons (small ones: a few short excerpts, from a shared pool, so the import
 * and the store stay small) and paper-format simulation results (explanations with scores) for some
 * of them, as the JSON Lines files the app imports. Values are multiples of 1/64, exact in float16.
 */
import { createSeededRandom } from '../../src/lib/activations/seeded-random.ts';

export interface GeneratedDataset {
  records: string;
  results: string;
  neurons: number;
  explained: number;
}

const WORDS = ['digits', 'quotes', 'capital letters', 'the word "the"', 'commas', 'closing brackets', 'years', 'names of cities', 'plural nouns', 'negation'];

export function generatedDataset(options: { layers?: number; dMlp?: number; explained?: number; seed?: number } = {}): GeneratedDataset {
  const { layers = 12, dMlp = 3072, explained = 3000, seed = 1 } = options;
  const random = createSeededRandom(seed);
  const value = (scale: number) => Math.round((random() * scale - scale / 8) * 64) / 64;
  const pool = Array.from({ length: 64 }, (_, e) => Array.from({ length: 8 }, (_, t) => ` w${(e * 7 + t * 3) % 97}`));
  const excerpt = (tokens: string[], scale: number) => ({ tokens, activations: tokens.map(() => value(scale)) });
  const lines: string[] = [];
  for (let layer = 0; layer < layers; layer++) {
    for (let neuron = 0; neuron < dMlp; neuron++) {
      const scale = 1 + random() * 12;
      const record = {
        neuron_id: { layer_index: layer, neuron_index: neuron },
        random_sample: [excerpt(pool[0], scale), excerpt(pool[1], scale)],
        random_sample_by_quantile: null,
        quantile_boundaries: null,
        mean: Math.round(random() * 64) / 256,
        variance: null,
        skewness: null,
        kurtosis: null,
        most_positive_activation_records: [excerpt(pool[2 + Math.floor(random() * 62)], scale * 2), excerpt(pool[2 + Math.floor(random() * 62)], scale)],
      };
      lines.push(JSON.stringify(record));
    }
  }
  const results: string[] = [];
  const every = Math.max(1, Math.floor((layers * dMlp) / explained));
  for (let i = 0; i < explained; i++) {
    const index = i * every;
    const layer = Math.floor(index / dMlp);
    const neuron = index % dMlp;
    const score = Math.round((random() * 1.4 - 0.4) * 1000) / 1000;
    const explanation = `${WORDS[i % WORDS.length]} (neuron ${layer}:${neuron})`;
    results.push(
      JSON.stringify({
        neuron_id: { layer_index: layer, neuron_index: neuron },
        scored_explanations: [
          {
            explanation,
            scored_simulation: {
              scored_sequence_simulations: [
                {
                  simulation: { tokens: ['a', 'b'], expected_activations: [0, 1], activation_scale: 'simulated_normalized_activations', distribution_values: [[0], [10]], distribution_probabilities: [[1], [1]] },
                  true_activations: [0, 1],
                  ev_correlation_score: score,
                  rsquared_score: null,
                  absolute_dev_explained_score: null,
                },
              ],
              ev_correlation_score: score,
              rsquared_score: null,
              absolute_dev_explained_score: null,
            },
          },
        ],
      }),
    );
  }
  return { records: `${lines.join('\n')}\n`, results: `${results.join('\n')}\n`, neurons: layers * dMlp, explained };
}
