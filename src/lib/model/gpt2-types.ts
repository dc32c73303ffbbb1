/**
 * Shapes of a GPT-2-family model, independent of any file format.
 * Weight layouts follow Hugging Face's Conv1D convention: a projection weight is [in, out]
 * and y = x · W + b.
 */
export interface Gpt2Config {
  nLayer: number;
  nHead: number;
  dModel: number;
  /** Width of the MLP hidden layer (n_inner; 4·d_model when the config leaves it null). */
  dMlp: number;
  /** Context window (n_positions). */
  nCtx: number;
  vocabSize: number;
  layerNormEps: number;
}

export interface Gpt2BlockWeights {
  ln1Gamma: Float32Array; // [d]
  ln1Beta: Float32Array; // [d]
  attnW: Float32Array; // [d, 3d]  (q | k | v)
  attnB: Float32Array; // [3d]
  attnProjW: Float32Array; // [d, d]
  attnProjB: Float32Array; // [d]
  ln2Gamma: Float32Array; // [d]
  ln2Beta: Float32Array; // [d]
  fcW: Float32Array; // [d, dMlp]
  fcB: Float32Array; // [dMlp]
  projW: Float32Array; // [dMlp, d]
  projB: Float32Array; // [d]
}

export interface Gpt2Weights {
  wte: Float32Array; // [vocab, d]
  wpe: Float32Array; // [nCtx, d]
  blocks: Gpt2BlockWeights[];
  lnfGamma: Float32Array; // [d]
  lnfBeta: Float32Array; // [d]
}

/** TransformerLens-style stable name of the post-GELU MLP activation of block `layer`. */
export function mlpHookName(layer: number): string {
  return `blocks.${layer}.mlp.hook_post`;
}

/** Parses a hook name back to its layer, or returns null. */
export function parseMlpHookName(name: string): number | null {
  const m = /^blocks\.(\d+)\.mlp\.hook_post$/.exec(name);
  return m ? Number(m[1]) : null;
}

/**
 * Names of the graph inputs that edit block `layer`'s post-GELU activations before its
 * down-projection, in a model instrumented with `edits` (see instrument.ts): the activation
 * becomes Where(mask, value, activation · scale). Each is [batch or 1, seq or 1, d_mlp];
 * scale and value are float32, mask is bool.
 */
export function mlpEditInputNames(layer: number): { scale: string; mask: string; value: string } {
  const base = `blocks.${layer}.mlp.hook_post`;
  return { scale: `${base}.edit_scale`, mask: `${base}.edit_mask`, value: `${base}.edit_value` };
}

/** Parses an edit input name back to its layer and role, or returns null. */
export function parseMlpEditInputName(name: string): { layer: number; role: 'scale' | 'mask' | 'value' } | null {
  const m = /^blocks\.(\d+)\.mlp\.hook_post\.edit_(scale|mask|value)$/.exec(name);
  return m ? { layer: Number(m[1]), role: m[2] as 'scale' | 'mask' | 'value' } : null;
}
