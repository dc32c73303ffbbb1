/**
 * A plain, readable GPT-2 forward pass in TypeScript, used as ground truth for the
 * onnxruntime capture (and for tests). Hugging Face semantics:
 *   x = wte[token] + wpe[position]
 *   per block:  x = x + Attn(LN1(x));  x = x + Proj(GELU(FC(LN2(x))))
 *   logits = LNf(x) · wteᵀ   (tied unembedding)
 * with causal multi-head attention scaled by 1/√d_head and weights in Conv1D layout
 * (W is [in, out], y = x·W + b). Everything is computed in float64 so that the reference is
 * more accurate than any float32 runtime it is compared with. Slow but simple: typed arrays
 * and plain loops, no batching, no caching.
 */
import type { Gpt2BlockWeights, Gpt2Config, Gpt2Weights } from './gpt2-types.ts';

/** Bad arguments to the reference forward pass (shapes, token ids, layer numbers). */
export class ReferenceForwardError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReferenceForwardError';
  }
}

export type GeluKind = 'tanh' | 'sigmoid';

export interface ReferenceForwardOptions {
  /**
   * Layers whose post-GELU MLP activations to return, in this order (default: all layers).
   * Without `logits`, the pass stops after the last requested layer.
   */
  layers?: number[];
  /** Also compute the logits (default false). */
  logits?: boolean;
  /** Which GELU the MLPs use (default 'tanh', GPT-2's own; see `gelu` and `geluFast`). */
  gelu?: GeluKind;
  /**
   * Edits a layer's post-GELU activations ([seq, dMlp] row-major, float64) in place before its
   * down-projection, as the graph inputs of an editable model do; `mlpPost` then holds the edited ones.
   */
  editMlp?: (layer: number, activations: Float64Array) => void;
}

export interface ReferenceForwardResult {
  /** mlpPost[i] holds layer `layers[i]` (layer i by default): [seq, dMlp] row-major. */
  mlpPost: Float32Array[];
  /** [seq, vocabSize] row-major, when `logits` was requested. */
  logits?: Float32Array;
  /** The residual stream after the last block, before ln_f ([seq, dModel], float64), with `logits`. */
  finalResidual?: Float64Array;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/**
 * GELU, tanh approximation — what GPT-2 itself uses (Hugging Face "gelu_new"), so this is
 * the default of `referenceForward` and what an exported GPT-2 ONNX graph computes.
 */
export function gelu(x: number): number {
  return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
}

/**
 * GELU, sigmoid approximation x·σ(1.702x) — the "faster GELU approximation" that the
 * activations released with Bills et al. (2023) were computed with. Only for reproducing their
 * published numbers; it differs from `gelu` by up to about 0.02.
 */
export function geluFast(x: number): number {
  return x / (1 + Math.exp(-1.702 * x));
}

function checkLength(name: string, array: ArrayLike<number> | undefined, expected: number): void {
  if (!array || typeof array.length !== 'number') {
    throw new ReferenceForwardError(`weights: ${name} is missing`);
  }
  if (array.length !== expected) {
    throw new ReferenceForwardError(`weights: ${name} has ${array.length} values, expected ${expected}`);
  }
}

function checkInputs(config: Gpt2Config, weights: Gpt2Weights, tokenIds: number[], layers: number[]): void {
  const { nLayer, nHead, dModel: d, dMlp, nCtx, vocabSize } = config;
  for (const [name, v] of Object.entries({ nLayer, nHead, dModel: d, dMlp, nCtx, vocabSize })) {
    if (!Number.isInteger(v) || v <= 0) throw new ReferenceForwardError(`config.${name} must be a positive integer, got ${v}`);
  }
  if (d % nHead !== 0) throw new ReferenceForwardError(`config.dModel ${d} is not divisible by nHead ${nHead}`);
  if (!(config.layerNormEps >= 0)) throw new ReferenceForwardError(`config.layerNormEps must be ≥ 0, got ${config.layerNormEps}`);
  if (!weights || !Array.isArray(weights.blocks)) throw new ReferenceForwardError('weights.blocks must be an array');
  if (weights.blocks.length !== nLayer) {
    throw new ReferenceForwardError(`weights has ${weights.blocks.length} blocks but config.nLayer is ${nLayer}`);
  }
  checkLength('wte', weights.wte, vocabSize * d);
  checkLength('wpe', weights.wpe, nCtx * d);
  checkLength('lnfGamma', weights.lnfGamma, d);
  checkLength('lnfBeta', weights.lnfBeta, d);
  weights.blocks.forEach((b, l) => {
    const expected: Record<keyof Gpt2BlockWeights, number> = {
      ln1Gamma: d, ln1Beta: d, attnW: d * 3 * d, attnB: 3 * d, attnProjW: d * d, attnProjB: d,
      ln2Gamma: d, ln2Beta: d, fcW: d * dMlp, fcB: dMlp, projW: dMlp * d, projB: d,
    };
    for (const [name, n] of Object.entries(expected)) {
      checkLength(`blocks[${l}].${name}`, b?.[name as keyof Gpt2BlockWeights], n);
    }
  });
  if (!Array.isArray(tokenIds)) throw new ReferenceForwardError('tokenIds must be an array of token ids');
  if (tokenIds.length > nCtx) {
    throw new ReferenceForwardError(`${tokenIds.length} tokens exceed the model's context window of ${nCtx}`);
  }
  tokenIds.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new ReferenceForwardError(`tokenIds[${i}] = ${id} is not a token id of this model (0…${vocabSize - 1})`);
    }
  });
  for (const l of layers) {
    if (!Number.isInteger(l) || l < 0 || l >= nLayer) {
      throw new ReferenceForwardError(`layer ${l} does not exist: the model has layers 0…${nLayer - 1}`);
    }
  }
}

/** out[i, :] = LayerNorm(x[i, :]) for every row of x ([rows, d]). */
function layerNorm(x: Float64Array, rows: number, d: number, gamma: Float32Array, beta: Float32Array, eps: number): Float64Array {
  const out = new Float64Array(rows * d);
  for (let i = 0; i < rows; i++) {
    const row = i * d;
    let mean = 0;
    for (let k = 0; k < d; k++) mean += x[row + k];
    mean /= d;
    let variance = 0;
    for (let k = 0; k < d; k++) {
      const c = x[row + k] - mean;
      variance += c * c;
    }
    variance /= d; // biased variance, as torch.nn.LayerNorm
    const inv = 1 / Math.sqrt(variance + eps);
    for (let k = 0; k < d; k++) out[row + k] = (x[row + k] - mean) * inv * gamma[k] + beta[k];
  }
  return out;
}

/** Conv1D: x [rows, nIn] · W [nIn, nOut] + b [nOut]. */
function affine(x: Float64Array, rows: number, nIn: number, w: Float32Array, b: Float32Array, nOut: number): Float64Array {
  const out = new Float64Array(rows * nOut);
  for (let i = 0; i < rows; i++) {
    const o = i * nOut;
    for (let j = 0; j < nOut; j++) out[o + j] = b[j];
    for (let k = 0; k < nIn; k++) {
      const xk = x[i * nIn + k];
      if (xk === 0) continue;
      const wRow = k * nOut;
      for (let j = 0; j < nOut; j++) out[o + j] += xk * w[wRow + j];
    }
  }
  return out;
}

/** Causal multi-head self-attention on qkv [seq, 3d] (q | k | v column blocks); returns [seq, d]. */
function causalAttention(qkv: Float64Array, seq: number, d: number, nHead: number): Float64Array {
  const dHead = d / nHead;
  const scale = 1 / Math.sqrt(dHead);
  const out = new Float64Array(seq * d);
  const scores = new Float64Array(seq);
  for (let h = 0; h < nHead; h++) {
    const qOff = h * dHead;
    const kOff = d + h * dHead;
    const vOff = 2 * d + h * dHead;
    for (let i = 0; i < seq; i++) {
      // Position i attends to positions 0…i only.
      let max = -Infinity;
      for (let j = 0; j <= i; j++) {
        let dot = 0;
        for (let c = 0; c < dHead; c++) dot += qkv[i * 3 * d + qOff + c] * qkv[j * 3 * d + kOff + c];
        scores[j] = dot * scale;
        if (scores[j] > max) max = scores[j];
      }
      let sum = 0;
      for (let j = 0; j <= i; j++) {
        scores[j] = Math.exp(scores[j] - max);
        sum += scores[j];
      }
      for (let j = 0; j <= i; j++) {
        const p = scores[j] / sum;
        for (let c = 0; c < dHead; c++) out[i * d + h * dHead + c] += p * qkv[j * 3 * d + vOff + c];
      }
    }
  }
  return out;
}

/**
 * Runs GPT-2 on `tokenIds` and returns the post-GELU MLP activations of the requested layers
 * (and the logits if asked). Throws ReferenceForwardError on inconsistent shapes or bad ids.
 */
export function referenceForward(
  config: Gpt2Config,
  weights: Gpt2Weights,
  tokenIds: number[],
  options: ReferenceForwardOptions = {},
): ReferenceForwardResult {
  const layers = options.layers ?? Array.from({ length: config.nLayer }, (_, l) => l);
  if (!Array.isArray(layers)) throw new ReferenceForwardError('options.layers must be an array of layer numbers');
  const geluKind = options.gelu ?? 'tanh';
  if (geluKind !== 'tanh' && geluKind !== 'sigmoid') {
    throw new ReferenceForwardError(`options.gelu must be 'tanh' or 'sigmoid', got ${String(geluKind)}`);
  }
  checkInputs(config, weights, tokenIds, layers);
  const act = geluKind === 'tanh' ? gelu : geluFast;
  const { nHead, dModel: d, dMlp, vocabSize, layerNormEps: eps } = config;
  const seq = tokenIds.length;
  const wanted = new Map<number, Float32Array>();
  const lastLayer = options.logits ? config.nLayer - 1 : Math.max(-1, ...layers);

  // Residual stream [seq, d].
  let x: Float64Array = new Float64Array(seq * d);
  for (let i = 0; i < seq; i++) {
    for (let k = 0; k < d; k++) x[i * d + k] = weights.wte[tokenIds[i] * d + k] + weights.wpe[i * d + k];
  }

  for (let l = 0; l <= lastLayer; l++) {
    const b = weights.blocks[l];
    const qkv = affine(layerNorm(x, seq, d, b.ln1Gamma, b.ln1Beta, eps), seq, d, b.attnW, b.attnB, 3 * d);
    const attn = affine(causalAttention(qkv, seq, d, nHead), seq, d, b.attnProjW, b.attnProjB, d);
    for (let i = 0; i < x.length; i++) x[i] += attn[i];

    const hidden = affine(layerNorm(x, seq, d, b.ln2Gamma, b.ln2Beta, eps), seq, d, b.fcW, b.fcB, dMlp);
    for (let i = 0; i < hidden.length; i++) hidden[i] = act(hidden[i]);
    options.editMlp?.(l, hidden);
    if (layers.includes(l)) wanted.set(l, Float32Array.from(hidden));
    const mlpOut = affine(hidden, seq, dMlp, b.projW, b.projB, d);
    for (let i = 0; i < x.length; i++) x[i] += mlpOut[i];
  }

  const result: ReferenceForwardResult = { mlpPost: layers.map((l) => wanted.get(l) as Float32Array) };
  if (options.logits) {
    result.finalResidual = x;
    x = layerNorm(x, seq, d, weights.lnfGamma, weights.lnfBeta, eps);
    const logits = new Float32Array(seq * vocabSize);
    for (let t = 0; t < vocabSize; t++) {
      const row = t * d; // the unembedding of token t is its embedding row
      for (let i = 0; i < seq; i++) {
        let dot = 0;
        for (let k = 0; k < d; k++) dot += x[i * d + k] * weights.wte[row + k];
        logits[i * vocabSize + t] = dot;
      }
    }
    result.logits = logits;
  }
  return result;
}
