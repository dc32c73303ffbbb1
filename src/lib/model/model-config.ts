import type { Gpt2Config } from './gpt2-types.ts';

/** A config.json that is not a usable GPT-2-family configuration. */
export class ModelConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelConfigError';
  }
}

/**
 * Reads the shapes of a GPT-2-family model from a Hugging Face `config.json`.
 * Accepts GPT-2's own key names (n_layer, n_embd, ...) and the generic aliases some
 * exports use (num_hidden_layers, hidden_size, ...). Nothing is assumed about sizes.
 */
export function parseModelConfig(json: unknown, source = 'config.json'): Gpt2Config {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new ModelConfigError(`${source} is not a JSON object`);
  }
  const c = json as Record<string, unknown>;
  const pick = (names: string[], fallback?: number): number => {
    for (const n of names) {
      const v = c[n];
      if (typeof v === 'number' && Number.isFinite(v)) return v;
    }
    if (fallback !== undefined) return fallback;
    throw new ModelConfigError(`${source} has no ${names.join(' / ')} field`);
  };
  const modelType = typeof c.model_type === 'string' ? c.model_type : undefined;
  if (modelType !== undefined && modelType !== 'gpt2') {
    throw new ModelConfigError(
      `${source} describes a "${modelType}" model; Neurolens supports the GPT-2 family (model_type "gpt2")`,
    );
  }
  const dModel = pick(['n_embd', 'hidden_size']);
  const nLayer = pick(['n_layer', 'num_hidden_layers']);
  const nHead = pick(['n_head', 'num_attention_heads']);
  const dMlp = pick(['n_inner', 'intermediate_size'], 4 * dModel);
  const nCtx = pick(['n_positions', 'n_ctx', 'max_position_embeddings']);
  const vocabSize = pick(['vocab_size']);
  const layerNormEps = pick(['layer_norm_epsilon', 'layer_norm_eps'], 1e-5);
  for (const [k, v] of Object.entries({ dModel, nLayer, nHead, dMlp, nCtx, vocabSize })) {
    if (!Number.isInteger(v) || v <= 0) throw new ModelConfigError(`${source}: ${k} must be a positive integer, got ${v}`);
  }
  if (dModel % nHead !== 0) throw new ModelConfigError(`${source}: n_embd ${dModel} is not divisible by n_head ${nHead}`);
  return { nLayer, nHead, dModel, dMlp, nCtx, vocabSize, layerNormEps };
}
