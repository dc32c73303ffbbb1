/**
 * Activation data in the JSON format released with "Language models can explain neurons in
 * language models" (Bills et al. 2023). Field names are the paper's (snake_case) so records
 * read and write losslessly; every object carries its `dataclass_name`.
 */
export interface ActivationRecord {
  dataclass_name?: 'ActivationRecord';
  /** Display strings of the tokens, e.g. " fox". */
  tokens: string[];
  /** Raw (un-normalised) activations, one per token. */
  activations: number[];
}

export interface NeuronId {
  dataclass_name?: 'NeuronId';
  layer_index: number;
  neuron_index: number;
}

export interface NeuronRecord {
  dataclass_name?: 'NeuronRecord';
  neuron_id: NeuronId;
  /** Uniformly random excerpts. */
  random_sample: ActivationRecord[];
  /** One list of excerpts per activation quantile (null when not computed). */
  random_sample_by_quantile: ActivationRecord[][] | null;
  /**
   * Boundaries of those quantiles, one more than the number of quantiles. The released data
   * writes the open ends as null.
   */
  quantile_boundaries: (number | null)[] | null;
  mean: number | null;
  variance: number | null;
  skewness: number | null;
  kurtosis: number | null;
  /** Excerpts with the largest max activation, largest first. */
  most_positive_activation_records: ActivationRecord[];
}
