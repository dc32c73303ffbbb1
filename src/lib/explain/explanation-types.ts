/**
 * Explanation and simulation results in the JSON format released with Bills et al. (2023).
 * Field names are the paper's so files round-trip losslessly; `dataclass_name` is kept.
 * Neurolens adds two optional fields to a SequenceSimulation, `simulation_mode` and `coverage`,
 * and one to a ScoredSimulation, `ablation_score`.
 * The paper's Python reader rejects unknown fields, so writers offer a paper-fields-only mode
 * (see formats.ts) for files meant for it.
 */
import type { NeuronId } from '../activations/records.ts';

export type ActivationScale = 'neuron_activations' | 'simulated_normalized_activations';

/** How a simulation was obtained from the LLM. */
export type SimulationMode = 'logprob' | 'sampled' | 'prompt-logprob';

export interface SequenceSimulation {
  dataclass_name?: 'SequenceSimulation';
  tokens: string[];
  /** Expected value of the simulated (0-10) activation per token; null where it could not be read. */
  expected_activations: (number | null)[];
  activation_scale: ActivationScale;
  /** Per token: the values that had probability mass (e.g. [0, 1, ..., 10]). */
  distribution_values: number[][];
  /** Per token: probabilities matching distribution_values. */
  distribution_probabilities: number[][];
  /** Neurolens extension: which simulator produced this. */
  simulation_mode?: SimulationMode;
  /** Neurolens extension: fraction of tokens with a value read from the LLM (1 = all). */
  coverage?: number;
}

export interface ScoredSequenceSimulation {
  dataclass_name?: 'ScoredSequenceSimulation';
  simulation: SequenceSimulation;
  true_activations: number[];
  ev_correlation_score: number | null;
  rsquared_score?: number | null;
  absolute_dev_explained_score?: number | null;
}

export interface ScoredSimulation {
  dataclass_name?: 'ScoredSimulation';
  scored_sequence_simulations: ScoredSequenceSimulation[];
  ev_correlation_score: number | null;
  rsquared_score?: number | null;
  absolute_dev_explained_score?: number | null;
  /** Neurolens extension: the ablation score on the same records (ablation-score.ts), when computed. */
  ablation_score?: number | null;
}

export interface ScoredExplanation {
  dataclass_name?: 'ScoredExplanation';
  explanation: string;
  scored_simulation: ScoredSimulation;
}

export interface NeuronSimulationResults {
  dataclass_name?: 'NeuronSimulationResults';
  neuron_id: NeuronId;
  scored_explanations: ScoredExplanation[];
}
