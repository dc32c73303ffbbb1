/**
 * Writes a GPT-2 forward pass (Hugging Face GPT2LMHeadModel semantics) as an ONNX graph, in the
 * shapes different real exporters produce, so that downstream code can be tested against each:
 *
 * - 'optimum' (default): decomposed LayerNorm, Conv1D as Reshape → Gemm → Reshape (target shape
 *   computed with Shape/Gather/Unsqueeze/Concat), positions computed in the graph with Range,
 *   scalars as Constant nodes. Inputs input_ids, attention_mask.
 * - 'matmul': LayerNormalization op, Conv1D as MatMul + Add, explicit position_ids input,
 *   constants as initializers.
 * - 'int8': 'optimum' with every attention/MLP projection dynamically quantised like
 *   onnxruntime's quantize_dynamic (DynamicQuantizeLinear → MatMulInteger → Cast → Mul → Add),
 *   weights per-tensor symmetric int8. The Reshape of each Conv1D sits between the GELU output
 *   and the DynamicQuantizeLinear of c_proj.
 * - 'fp16': 'optimum' with every float tensor (weights, activations, logits) in float16.
 * - 'past': 'matmul' plus past_key_values.{i}.key/value inputs and present.{i}.key/value outputs,
 *   like a decoder-with-past export; attention_mask covers past + current positions.
 *
 * GELU is always decomposed (Pow/Mul/Add/Tanh), as exporters leave GPT-2's tanh approximation.
 * Masking uses Where(allowed, scores, finite minimum) rather than an additive mask, so a row whose
 * keys are all masked (left padding) gives a uniform softmax instead of NaN; on every position that
 * has at least one visible key this is exactly Hugging Face's result.
 * Tensor names imitate Hugging Face optimum exports, but consumers must not rely on them.
 */
import type { Gpt2BlockWeights, Gpt2Config, Gpt2Weights } from '../../src/lib/model/gpt2-types.ts';
import {
  attr,
  concatChunks,
  float32ToFloat16,
  OnnxGraphBuilder,
  serializeModel,
  tensor,
  type ElemType,
  type TensorData,
} from './onnx-builder.ts';

export type Gpt2GraphVariant = 'optimum' | 'matmul' | 'int8' | 'fp16' | 'past';

export const GPT2_GRAPH_VARIANTS: readonly Gpt2GraphVariant[] = ['optimum', 'matmul', 'int8', 'fp16', 'past'];

export interface Gpt2GraphOptions {
  variant?: Gpt2GraphVariant;
  /** Free text stored in the model's doc_string. */
  description?: string;
}

export class Gpt2GraphError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Gpt2GraphError';
  }
}

export const OPSET_VERSION = 17;

/** Name of the post-GELU MLP activation tensor of `layer` in every variant this module writes. */
export function mlpActivationTensorName(layer: number): string {
  return `/transformer/h.${layer}/mlp/act/Mul_3_output_0`;
}

/** How a variant writes each building block. */
interface Style {
  layerNorm: 'decomposed' | 'op';
  linear: 'gemm' | 'matmul' | 'int8';
  float: 'float32' | 'float16';
  positions: 'range' | 'input';
  past: boolean;
  constants: 'nodes' | 'initializers';
}

const STYLES: Record<Gpt2GraphVariant, Style> = {
  optimum: { layerNorm: 'decomposed', linear: 'gemm', float: 'float32', positions: 'range', past: false, constants: 'nodes' },
  matmul: { layerNorm: 'op', linear: 'matmul', float: 'float32', positions: 'input', past: false, constants: 'initializers' },
  int8: { layerNorm: 'decomposed', linear: 'int8', float: 'float32', positions: 'range', past: false, constants: 'nodes' },
  fp16: { layerNorm: 'decomposed', linear: 'gemm', float: 'float16', positions: 'range', past: false, constants: 'nodes' },
  past: { layerNorm: 'op', linear: 'matmul', float: 'float32', positions: 'input', past: true, constants: 'initializers' },
};

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** Per-tensor symmetric int8 quantisation (zero point 0), as quantize_dynamic does for weights. */
export function quantizeSymmetricInt8(values: Float32Array): { q: Int8Array; scale: number } {
  let maxAbs = 0;
  for (let i = 0; i < values.length; i++) maxAbs = Math.max(maxAbs, Math.abs(values[i]));
  // An all-zero weight would give scale 0 and a division by zero; any scale represents it exactly.
  const scale = maxAbs > 0 ? Math.fround(maxAbs / 127) : 1;
  const q = new Int8Array(values.length);
  for (let i = 0; i < values.length; i++) q[i] = Math.max(-127, Math.min(127, Math.round(values[i] / scale)));
  return { q, scale };
}

function checkWeights(config: Gpt2Config, weights: Gpt2Weights): void {
  const { nLayer, nHead, dModel: d, dMlp, nCtx, vocabSize } = config;
  for (const [k, v] of Object.entries({ nLayer, nHead, dModel: d, dMlp, nCtx, vocabSize })) {
    if (!Number.isInteger(v) || v <= 0) throw new Gpt2GraphError(`config.${k} must be a positive integer, got ${v}`);
  }
  if (d % nHead !== 0) throw new Gpt2GraphError(`dModel ${d} is not divisible by nHead ${nHead}`);
  if (!(config.layerNormEps > 0)) throw new Gpt2GraphError(`layerNormEps must be positive, got ${config.layerNormEps}`);
  const expect = (name: string, arr: Float32Array | undefined, length: number): void => {
    if (!(arr instanceof Float32Array)) throw new Gpt2GraphError(`weight ${name} is missing or not a Float32Array`);
    if (arr.length !== length) throw new Gpt2GraphError(`weight ${name} has ${arr.length} values, expected ${length}`);
  };
  expect('wte', weights.wte, vocabSize * d);
  expect('wpe', weights.wpe, nCtx * d);
  expect('lnfGamma', weights.lnfGamma, d);
  expect('lnfBeta', weights.lnfBeta, d);
  if (!Array.isArray(weights.blocks) || weights.blocks.length !== nLayer) {
    throw new Gpt2GraphError(`expected ${nLayer} blocks of weights, got ${weights.blocks?.length}`);
  }
  const sizes: Record<keyof Gpt2BlockWeights, number> = {
    ln1Gamma: d, ln1Beta: d, attnW: d * 3 * d, attnB: 3 * d, attnProjW: d * d, attnProjB: d,
    ln2Gamma: d, ln2Beta: d, fcW: d * dMlp, fcB: dMlp, projW: dMlp * d, projB: d,
  };
  weights.blocks.forEach((b, l) => {
    for (const [k, n] of Object.entries(sizes)) expect(`blocks[${l}].${k}`, b[k as keyof Gpt2BlockWeights], n);
  });
}

/** Writes one GPT-2 graph; one instance per build. */
class Gpt2GraphWriter {
  readonly g = new OnnxGraphBuilder('main_graph');
  private readonly st: Style;
  private readonly ft: ElemType;
  private readonly dHead: number;

  constructor(
    private readonly config: Gpt2Config,
    private readonly weights: Gpt2Weights,
    variant: Gpt2GraphVariant,
  ) {
    this.st = STYLES[variant];
    this.ft = this.st.float;
    this.dHead = config.dModel / config.nHead;
  }

  // ---- constants and weights -------------------------------------------------------------

  private floatTensor(values: Float32Array, dims: number[]): TensorData {
    return this.ft === 'float16'
      ? { elemType: 'float16', dims, data: float32ToFloat16(values) }
      : { elemType: 'float32', dims, data: values };
  }

  private weight(name: string, values: Float32Array, dims: number[]): string {
    return this.g.addInitializer(name, this.floatTensor(values, dims));
  }

  private constCount = 0;

  /** A small constant: a Constant node (PyTorch exporter style) or an initializer. */
  private constant(scope: string, t: TensorData): string {
    if (this.st.constants === 'nodes') return this.g.constantNode(scope, t);
    return this.g.addInitializer(`onnx::Constant_${this.constCount++}`, t);
  }

  private floatScalar(scope: string, value: number): string {
    return this.constant(scope, this.floatTensor(Float32Array.of(value), []));
  }

  private int64s(scope: string, values: number[], dims: number[] = [values.length]): string {
    return this.constant(scope, tensor.int64(values, dims));
  }

  // ---- building blocks --------------------------------------------------------------------

  private layerNorm(scope: string, x: string, gammaName: string, gamma: Float32Array, betaName: string, beta: Float32Array): string {
    const d = this.config.dModel;
    const g = this.weight(gammaName, gamma, [d]);
    const b = this.weight(betaName, beta, [d]);
    const eps = this.config.layerNormEps;
    if (this.st.layerNorm === 'op') {
      return this.g.op1(scope, 'LayerNormalization', [x, g, b], { axis: attr.int(-1), epsilon: attr.float(eps) });
    }
    const op = (type: string, inputs: string[], attrs = {}): string => this.g.op1(scope, type, inputs, attrs);
    const mean = op('ReduceMean', [x], { axes: attr.ints([-1]), keepdims: attr.int(1) });
    const centred = op('Sub', [x, mean]);
    const sq = op('Pow', [centred, this.floatScalar(scope, 2)]);
    const variance = op('ReduceMean', [sq], { axes: attr.ints([-1]), keepdims: attr.int(1) });
    const std = op('Sqrt', [op('Add', [variance, this.floatScalar(scope, eps)])]);
    const normed = op('Div', [centred, std]);
    return op('Add', [op('Mul', [normed, g]), b]);
  }

  /** Hugging Face Conv1D: y = x · W + b with W [nIn, nOut], x [batch, seq, nIn]. */
  private conv1d(scope: string, x: string, prefix: string, w: Float32Array, b: Float32Array, nIn: number, nOut: number): string {
    const op = (type: string, inputs: string[], attrs = {}): string => this.g.op1(scope, type, inputs, attrs);
    if (this.st.linear === 'matmul') {
      const W = this.weight(`${prefix}.weight`, w, [nIn, nOut]);
      const B = this.weight(`${prefix}.bias`, b, [nOut]);
      return op('Add', [op('MatMul', [x, W]), B]);
    }
    // HF Conv1D: x.view(-1, nIn) → addmm → view(*x.shape[:-1], nOut); the exporter computes the
    // output shape from the input's runtime shape.
    const shape = op('Shape', [x]);
    const batch = op('Gather', [shape, this.int64s(scope, [0], [])], { axis: attr.int(0) });
    const seq = op('Gather', [shape, this.int64s(scope, [1], [])], { axis: attr.int(0) });
    const outShape = op('Concat', [
      op('Unsqueeze', [batch, this.int64s(scope, [0])]),
      op('Unsqueeze', [seq, this.int64s(scope, [0])]),
      this.int64s(scope, [nOut]),
    ], { axis: attr.int(0) });
    const flat = op('Reshape', [x, this.int64s(scope, [-1, nIn])]);
    const B = this.weight(`${prefix}.bias`, b, [nOut]);
    let y: string;
    if (this.st.linear === 'gemm') {
      const W = this.weight(`${prefix}.weight`, w, [nIn, nOut]);
      y = op('Gemm', [flat, W, B], { alpha: attr.float(1), beta: attr.float(1) });
    } else {
      const { q, scale } = quantizeSymmetricInt8(w);
      const Wq = this.g.addInitializer(`${prefix}.weight_quantized`, { elemType: 'int8', dims: [nIn, nOut], data: q });
      const Ws = this.g.addInitializer(`${prefix}.weight_scale`, tensor.float32([scale], []));
      const Wz = this.g.addInitializer(`${prefix}.weight_zero_point`, tensor.int8([0], []));
      const [xq, xs, xz] = this.g.op(scope, 'DynamicQuantizeLinear', [flat], {}, { outputs: 3 });
      const acc = op('MatMulInteger', [xq, Wq, xz, Wz]);
      const accF = op('Cast', [acc], { to: attr.int(1) });
      const scales = op('Mul', [xs, Ws]);
      y = op('Add', [op('Mul', [accF, scales]), B]);
    }
    return op('Reshape', [y, outShape]);
  }

  /** GPT-2's tanh GELU, decomposed in the order PyTorch exports NewGELUActivation. */
  private gelu(scope: string, x: string): string {
    const op = (type: string, inputs: string[]): string => this.g.op1(scope, type, inputs);
    const half = op('Mul', [x, this.floatScalar(scope, 0.5)]);
    const cube = op('Pow', [x, this.floatScalar(scope, 3)]);
    const inner = op('Add', [x, op('Mul', [cube, this.floatScalar(scope, 0.044715)])]);
    const t = op('Tanh', [op('Mul', [inner, this.floatScalar(scope, SQRT_2_OVER_PI)])]);
    const out = op('Mul', [half, op('Add', [t, this.floatScalar(scope, 1)])]);
    if (out !== `${scope}/Mul_3_output_0`) throw new Gpt2GraphError(`internal: GELU output named ${out}`);
    return out;
  }

  // ---- the model ---------------------------------------------------------------------------

  build(): OnnxGraphBuilder {
    const { config, weights, g, st } = this;
    const { nLayer, nHead, dModel: d, dMlp, vocabSize } = config;
    const T = '/transformer';

    const inputIds = g.addInput('input_ids', 'int64', ['batch_size', 'sequence_length']);
    const maskDims = st.past ? ['batch_size', 'past_sequence_length + sequence_length'] : ['batch_size', 'sequence_length'];
    const attentionMask = g.addInput('attention_mask', 'int64', maskDims);
    const positionIdsInput = st.positions === 'input'
      ? g.addInput('position_ids', 'int64', ['batch_size', 'sequence_length'])
      : null;
    const pastInputs: { key: string; value: string }[] = [];
    if (st.past) {
      for (let l = 0; l < nLayer; l++) {
        const dims = ['batch_size', nHead, 'past_sequence_length', this.dHead];
        pastInputs.push({
          key: g.addInput(`past_key_values.${l}.key`, this.ft, dims),
          value: g.addInput(`past_key_values.${l}.value`, this.ft, dims),
        });
      }
    }

    // Sequence length, past length and key length as int64 scalars.
    const op = (scope: string, type: string, inputs: string[], attrs = {}): string => g.op1(scope, type, inputs, attrs);
    const seqLen = op(T, 'Gather', [op(T, 'Shape', [inputIds]), this.int64s(T, [1], [])], { axis: attr.int(0) });
    const zero = this.int64s(T, [0], []);
    const one = this.int64s(T, [1], []);
    const pastLen = st.past
      ? op(T, 'Gather', [op(T, 'Shape', [pastInputs[0].key]), this.int64s(T, [2], [])], { axis: attr.int(0) })
      : zero;
    const totalLen = st.past ? op(T, 'Add', [pastLen, seqLen]) : seqLen;

    // Embeddings.
    const wte = this.weight('transformer.wte.weight', weights.wte, [vocabSize, d]);
    const wpe = this.weight('transformer.wpe.weight', weights.wpe, [config.nCtx, d]);
    const tok = g.op1(`${T}/wte`, 'Gather', [wte, inputIds]);
    const positionIds = positionIdsInput
      ?? op(T, 'Unsqueeze', [op(T, 'Range', [zero, seqLen, one]), this.int64s(T, [0])]);
    const pos = g.op1(`${T}/wpe`, 'Gather', [wpe, positionIds]);
    let h = op(T, 'Add', [tok, pos]);

    // allowed[b, 0, i, j]: query i (absolute position past + i) may see key j.
    const queryPos = op(T, 'Range', [pastLen, totalLen, one]);
    const keyPos = op(T, 'Range', [zero, totalLen, one]);
    const causal = op(T, 'LessOrEqual', [
      op(T, 'Unsqueeze', [keyPos, this.int64s(T, [0])]),
      op(T, 'Unsqueeze', [queryPos, this.int64s(T, [1])]),
    ]);
    const padding = op(T, 'Unsqueeze', [op(T, 'Cast', [attentionMask], { to: attr.int(9) }), this.int64s(T, [1, 2])]);
    const allowed = op(T, 'And', [causal, padding]);
    // The most negative finite value: exp(min - max) is exactly 0 in either precision.
    const maskValue = this.floatScalar(T, this.ft === 'float16' ? -65504 : -3.4028234663852886e38);

    for (let l = 0; l < nLayer; l++) {
      const bw = weights.blocks[l];
      const S = `${T}/h.${l}`;
      const P = `transformer.h.${l}`;
      const A = `${S}/attn`;
      const ln1 = this.layerNorm(`${S}/ln_1`, h, `${P}.ln_1.weight`, bw.ln1Gamma, `${P}.ln_1.bias`, bw.ln1Beta);
      const qkv = this.conv1d(`${A}/c_attn`, ln1, `${P}.attn.c_attn`, bw.attnW, bw.attnB, d, 3 * d);
      const [q, k, v] = g.op(A, 'Split', [qkv, this.int64s(A, [d, d, d])], { axis: attr.int(2) }, { outputs: 3 });
      const headShape = this.int64s(A, [0, 0, nHead, this.dHead]);
      const heads = (x: string, perm: number[]): string =>
        op(A, 'Transpose', [op(A, 'Reshape', [x, headShape])], { perm: attr.ints(perm) });
      const qh = heads(q, [0, 2, 1, 3]);
      let kT: string;
      let vh: string;
      if (st.past) {
        const kh = heads(k, [0, 2, 1, 3]);
        vh = heads(v, [0, 2, 1, 3]);
        const presentKey = g.addNode('Concat', [pastInputs[l].key, kh], [`present.${l}.key`], {
          name: `${A}/Concat_present_key`, attrs: { axis: attr.int(2) },
        })[0];
        const presentValue = g.addNode('Concat', [pastInputs[l].value, vh], [`present.${l}.value`], {
          name: `${A}/Concat_present_value`, attrs: { axis: attr.int(2) },
        })[0];
        const presentDims = ['batch_size', nHead, 'past_sequence_length + sequence_length', this.dHead];
        g.addOutput(presentKey, this.ft, presentDims);
        g.addOutput(presentValue, this.ft, presentDims);
        kT = op(A, 'Transpose', [presentKey], { perm: attr.ints([0, 1, 3, 2]) });
        vh = presentValue;
      } else {
        kT = heads(k, [0, 2, 3, 1]);
        vh = heads(v, [0, 2, 1, 3]);
      }
      const scores = op(A, 'Div', [op(A, 'MatMul', [qh, kT]), this.floatScalar(A, Math.sqrt(this.dHead))]);
      const probs = op(A, 'Softmax', [op(A, 'Where', [allowed, scores, maskValue])], { axis: attr.int(-1) });
      const context = op(A, 'Transpose', [op(A, 'MatMul', [probs, vh])], { perm: attr.ints([0, 2, 1, 3]) });
      const merged = op(A, 'Reshape', [context, this.int64s(A, [0, 0, d])]);
      const attnOut = this.conv1d(`${A}/c_proj`, merged, `${P}.attn.c_proj`, bw.attnProjW, bw.attnProjB, d, d);
      h = op(S, 'Add', [attnOut, h]);

      const M = `${S}/mlp`;
      const ln2 = this.layerNorm(`${S}/ln_2`, h, `${P}.ln_2.weight`, bw.ln2Gamma, `${P}.ln_2.bias`, bw.ln2Beta);
      const fc = this.conv1d(`${M}/c_fc`, ln2, `${P}.mlp.c_fc`, bw.fcW, bw.fcB, d, dMlp);
      const act = this.gelu(`${M}/act`, fc);
      const proj = this.conv1d(`${M}/c_proj`, act, `${P}.mlp.c_proj`, bw.projW, bw.projB, dMlp, d);
      h = op(S, 'Add', [h, proj]);
    }

    const lnf = this.layerNorm(`${T}/ln_f`, h, 'transformer.ln_f.weight', weights.lnfGamma, 'transformer.ln_f.bias', weights.lnfBeta);
    // Tied LM head: logits = ln_f(x) · wteᵀ. onnxruntime folds the constant Transpose at load time.
    const wteT = g.op1('/lm_head', 'Transpose', [wte], { perm: attr.ints([1, 0]) });
    const logitsRaw = g.op1('/lm_head', 'MatMul', [lnf, wteT]);
    g.addNode('Identity', [logitsRaw], ['logits'], { name: '/lm_head/Identity' });
    g.addOutput('logits', this.ft, ['batch_size', 'sequence_length', vocabSize]);
    // Present outputs were declared per layer; onnxruntime wants logits first like HF exports.
    g.outputs.unshift(g.outputs.pop()!);
    return g;
  }
}

/** Serialises a GPT-2 ONNX model as chunks (weights are referenced, not copied): for streaming. */
export function buildGpt2OnnxChunks(config: Gpt2Config, weights: Gpt2Weights, options: Gpt2GraphOptions = {}): Uint8Array[] {
  const variant = options.variant ?? 'optimum';
  if (!STYLES[variant]) {
    throw new Gpt2GraphError(`unknown GPT-2 graph variant "${variant}" (expected one of ${GPT2_GRAPH_VARIANTS.join(', ')})`);
  }
  checkWeights(config, weights);
  const graph = new Gpt2GraphWriter(config, weights, variant).build();
  return serializeModel(graph, {
    opsetImports: [{ domain: '', version: OPSET_VERSION }],
    irVersion: 8,
    producerName: 'neurolens-gen-models',
    producerVersion: '1',
    docString: options.description ?? `GPT-2 (${config.nLayer} layers, d_model ${config.dModel}), '${variant}' graph`,
    metadata: { neurolens_variant: variant },
  });
}

/** A GPT-2 forward graph as the bytes of an .onnx file. */
export function buildGpt2Onnx(config: Gpt2Config, weights: Gpt2Weights, options: Gpt2GraphOptions = {}): Uint8Array {
  return concatChunks(buildGpt2OnnxChunks(config, weights, options));
}
