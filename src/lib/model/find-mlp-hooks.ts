/**
 * Finds the post-GELU MLP activation of every GPT-2 block in an ONNX graph by structure alone
 * (node and tensor names differ between exporters, so they are never used).
 *
 * A block's MLP is: up-projection [d_model, d_mlp] → pointwise GELU → down-projection
 * [d_mlp, d_model]. We look for the down-projection (MatMul, Gemm, MatMulInteger, MatMulNBits)
 * and take the tensor it reads, looking through reshapes, casts and dynamic quantisation.
 *
 * The pre-activation (the GELU's input: the up-projection's output including its bias) is found
 * by walking forward from the up-projection while each tensor has a single reader on the way to
 * the activation: bias adds, dequantisation scales, casts and reshapes read it once, whereas any
 * decomposed GELU reads its input at least twice (x · Φ(x)), and a fused GELU op ends the walk.
 */
import { mlpHookName } from './gpt2-types.ts';
import { ModelFormatError, NoMlpFoundError } from './model-errors.ts';
import {
  DataType,
  attrInt,
  constantShape,
  dataTypeName,
  indexGraph,
  isConstantTensor,
  tensorElemType,
  type GraphIndex,
  type GraphProto,
  type NodeProto,
} from './onnx-graph.ts';

export type HookDtype = 'float32' | 'float16';

export interface MlpHook {
  /** Block index, 0 = closest to the embedding. */
  layer: number;
  /** Stable TransformerLens-style name, `blocks.{layer}.mlp.hook_post`. */
  hookName: string;
  /** Name of the activation tensor inside this particular graph. */
  tensorName: string;
  dMlp: number;
  dModel: number;
  dtype: HookDtype;
  downProjection: { nodeName: string; opType: string };
  /** The GELU's input, when the structure between the projections shows where it is. */
  pre?: PreActivation;
}

/** Where the MLP pre-activation (up-projection output incl. bias, i.e. the GELU's input) lives. */
export interface PreActivation {
  /** Stable TransformerLens-style name, `blocks.{layer}.mlp.hook_pre`. */
  hookName: string;
  /** Name of the tensor inside this particular graph. */
  tensorName: string;
  /**
   * A bias a fused GELU op (FastGelu, BiasGelu) adds internally: the pre-activation is then
   * tensorName + bias, a tensor the graph does not hold.
   */
  bias?: string;
  dtype: HookDtype;
}

/** TransformerLens name of layer's MLP pre-activation (the GELU's input). */
export function mlpPreHookName(layer: number): string {
  return `blocks.${layer}.mlp.hook_pre`;
}

export interface FindMlpHooksOptions {
  /** Residual width; read from the token embedding when omitted. */
  dModel?: number;
}

export interface TokenEmbedding {
  dModel: number;
  vocabSize: number;
  /** Graph input holding the token ids. */
  idsInput: string;
  weight: string;
}

/** A matrix multiplication by a weight fixed in the file, seen as x[..., k] · W[k, n]. */
export interface Projection {
  node: NodeProto;
  dataInput: string;
  k: number;
  n: number;
}

/** Ops between the activation and the down-projection that do not change its values' meaning. */
const LOOK_THROUGH_OPS = new Set([
  'Reshape',
  'Flatten',
  'Squeeze',
  'Unsqueeze',
  'Cast',
  'Identity',
  'DynamicQuantizeLinear',
  'QuantizeLinear',
  'DequantizeLinear',
]);

/** Pointwise ops a GELU (decomposed or fused) and a projection's bias/scales are built from. */
const POINTWISE_OPS = new Set([
  'Add',
  'Sub',
  'Mul',
  'Div',
  'Pow',
  'Tanh',
  'Erf',
  'Sqrt',
  'Sigmoid',
  'Relu',
  'Neg',
  'Exp',
  'Softplus',
  'Gelu',
  'FastGelu',
  'BiasGelu',
  'QuickGelu',
]);

/** Ops whose only data input is input 0 (the rest are shapes, axes or quantisation params). */
const DATA_INPUT_ZERO_OPS = LOOK_THROUGH_OPS;

/** How many tensors the GELU walk may visit before giving up (a decomposed GELU has ~10). */
const GELU_WALK_LIMIT = 64;

/** One block's MLP as found in the graph: its hook and the projection nodes around it. */
export interface LocatedMlp {
  hook: MlpHook;
  /** The down-projection ([d_mlp, d_model]), reading the activation. */
  down: Projection;
  /** The up-projection ([d_model, d_mlp]); absent when only d_model identified the MLP (see findMlpHooks). */
  up?: Projection;
}

export function findMlpHooks(graph: GraphProto | GraphIndex, options: FindMlpHooksOptions = {}): MlpHook[] {
  return locateMlps(graph, options).map((m) => m.hook);
}

/** findMlpHooks with the projection nodes of every MLP, for reading their weights. */
export function locateMlps(graph: GraphProto | GraphIndex, options: FindMlpHooksOptions = {}): LocatedMlp[] {
  const index = isGraphIndex(graph) ? graph : indexGraph(graph);
  if (options.dModel !== undefined && !(Number.isInteger(options.dModel) && options.dModel > 0)) {
    throw new RangeError(`dModel must be a positive integer, got ${options.dModel}`);
  }
  const embedding = findTokenEmbedding(index);
  const dModel = options.dModel ?? embedding?.dModel;

  const constMemo = new Map<string, boolean>();
  const projections: Projection[] = [];
  for (const node of index.order) {
    const p = asProjection(index, node, constMemo);
    if (p) projections.push(p);
  }

  interface Candidate {
    projection: Projection;
    activation: string;
    confirmed: boolean;
    up?: Projection;
    pre?: Omit<PreActivation, 'hookName'>;
  }
  const candidates: Candidate[] = [];
  for (const projection of projections) {
    if (dModel !== undefined && projection.n !== dModel) continue;
    const activation = activationBehind(index, projection.dataInput);
    const behind = upProjectionBehind(index, activation, constMemo);
    const up = behind?.projection;
    // The up-projection must be the transpose-shaped partner: [d_model, d_mlp] vs [d_mlp, d_model].
    const confirmed = up !== undefined && up.k === projection.n && up.n === projection.k;
    const pre = confirmed ? preActivationBetween(index, behind!, activation, constMemo) : undefined;
    candidates.push({ projection, activation, confirmed, ...(confirmed ? { up } : {}), ...(pre ? { pre } : {}) });
  }

  let chosen = candidates.filter((c) => c.confirmed);
  if (chosen.length === 0 && dModel !== undefined) {
    // The GELU may use ops we do not walk through; with d_model known, a [d_mlp, d_model]
    // weight that is neither square nor vocabulary-sized is still unambiguous in GPT-2.
    chosen = candidates.filter((c) => c.projection.k !== dModel && c.projection.k !== embedding?.vocabSize);
  }
  if (chosen.length === 0) throw noMlpError(index, projections, dModel, embedding);

  const seen = new Set<string>();
  chosen = chosen.filter((c) => !seen.has(c.activation) && seen.add(c.activation));
  chosen.sort((a, b) => index.position.get(a.projection.node)! - index.position.get(b.projection.node)!);

  return chosen.map(({ projection, activation, up, pre }, layer) => ({
    hook: {
      layer,
      hookName: mlpHookName(layer),
      tensorName: activation,
      dMlp: projection.k,
      dModel: projection.n,
      dtype: hookDtype(index, activation),
      downProjection: { nodeName: projection.node.name ?? '', opType: projection.node.opType ?? '' },
      ...(pre ? { pre: { hookName: mlpPreHookName(layer), ...pre } } : {}),
    },
    down: projection,
    ...(up ? { up } : {}),
  }));
}

/**
 * The token embedding: a Gather from a fixed [vocab, d_model] matrix indexed by a graph input.
 * Prefers the input called `input_ids` (a public input name, stable across exporters) and
 * otherwise the largest table, since position tables are gathered the same way.
 */
export function findTokenEmbedding(index: GraphIndex): TokenEmbedding | undefined {
  const found: TokenEmbedding[] = [];
  for (const node of index.order) {
    if (node.opType !== 'Gather' || !node.input?.[0] || !node.input[1]) continue;
    const shape = constantShape(index, node.input[0]);
    if (!shape || shape.length !== 2) continue;
    let ids = node.input[1];
    for (let p = index.producers.get(ids); p && LOOK_THROUGH_OPS.has(p.node.opType ?? ''); p = index.producers.get(ids)) {
      ids = p.node.input?.[0] ?? '';
    }
    if (!index.graphInputs.has(ids)) continue;
    found.push({ vocabSize: shape[0], dModel: shape[1], idsInput: ids, weight: node.input[0] });
  }
  if (found.length === 0) return undefined;
  return found.find((e) => e.idsInput === 'input_ids') ?? found.reduce((a, b) => (b.vocabSize > a.vocabSize ? b : a));
}

function isGraphIndex(g: GraphProto | GraphIndex): g is GraphIndex {
  return (g as GraphIndex).producers instanceof Map;
}

/** The node as a projection by a fixed weight, or undefined. */
export function asProjection(index: GraphIndex, node: NodeProto, constMemo: Map<string, boolean>): Projection | undefined {
  const inputs = node.input ?? [];
  const data = inputs[0];
  if (!data) return undefined;
  switch (node.opType) {
    case 'MatMul':
    case 'MatMulInteger': {
      const w = inputs[1] ? constantShape(index, inputs[1]) : undefined;
      if (!w || w.length !== 2 || isConstantTensor(index, data, constMemo)) return undefined;
      return { node, dataInput: data, k: w[0], n: w[1] };
    }
    case 'Gemm': {
      const w = inputs[1] ? constantShape(index, inputs[1]) : undefined;
      if (!w || w.length !== 2 || attrInt(node, 'transA', 0) !== 0) return undefined;
      const [k, n] = attrInt(node, 'transB', 0) ? [w[1], w[0]] : [w[0], w[1]];
      return { node, dataInput: data, k, n };
    }
    case 'MatMulNBits': {
      // Block-quantised weight: the logical shape is in attributes, the stored one is packed.
      const k = attrInt(node, 'K', 0);
      const n = attrInt(node, 'N', 0);
      return k > 0 && n > 0 ? { node, dataInput: data, k, n } : undefined;
    }
  }
  return undefined;
}

/** Walks back from a projection's data input to the float activation it was made from. */
export function activationBehind(index: GraphIndex, name: string): string {
  let current = name;
  for (let steps = 0; steps < 32; steps++) {
    const p = index.producers.get(current);
    if (!p || p.outputIndex !== 0 || !LOOK_THROUGH_OPS.has(p.node.opType ?? '')) break;
    const next = p.node.input?.[0];
    if (!next) break;
    current = next;
  }
  return current;
}

/** The up-projection behind an activation and the tensors on the way (its `region`). */
interface UpProjectionWalk {
  projection: Projection;
  /** Every non-constant tensor the walk from the activation passed, the activation included. */
  region: Set<string>;
}

/**
 * The projection the activation is a pointwise function of (through bias adds, dequantisation
 * scales and the GELU), or undefined if it depends on anything else (layer norms, attention...).
 */
function upProjectionBehind(index: GraphIndex, activation: string, constMemo: Map<string, boolean>): UpProjectionWalk | undefined {
  const visited = new Set<string>();
  const region = new Set<string>();
  const stack = [activation];
  let source: Projection | undefined;
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (visited.has(name)) continue;
    visited.add(name);
    if (visited.size > GELU_WALK_LIMIT) return undefined;
    if (isConstantTensor(index, name, constMemo)) continue;
    region.add(name);
    const p = index.producers.get(name);
    if (!p) return undefined; // a graph input
    const { node, outputIndex } = p;
    const op = node.opType ?? '';
    const projection = asProjection(index, node, constMemo);
    if (projection) {
      if (source && source.node !== node) return undefined;
      source = projection;
      continue;
    }
    // Scale/zero-point outputs of dynamic quantisation are per-tensor numbers, not data.
    if (op === 'DynamicQuantizeLinear' && outputIndex > 0) continue;
    if (DATA_INPUT_ZERO_OPS.has(op)) {
      if (node.input?.[0]) stack.push(node.input[0]);
    } else if (POINTWISE_OPS.has(op)) {
      for (const i of node.input ?? []) if (i) stack.push(i);
    } else {
      return undefined;
    }
  }
  return source ? { projection: source, region } : undefined;
}

/** Ops after the up-projection that keep its values' meaning when read once (bias, scales, layout). */
const PRE_ACTIVATION_STEP_OPS = new Set(['Add', 'Sub', 'Mul', 'Div', 'Cast', 'Identity', 'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze']);

/** Fused GELU ops whose optional second input is a bias added before the GELU. */
const FUSED_GELU_WITH_BIAS = new Set(['FastGelu', 'BiasGelu']);

/**
 * The GELU's input: walking forward from the up-projection's output while the tensor has exactly
 * one reader inside the MLP (see the module comment). Undefined when the walk reaches the
 * activation itself (no GELU found) or the tensor is not float.
 */
function preActivationBetween(
  index: GraphIndex,
  walk: UpProjectionWalk,
  activation: string,
  constMemo: Map<string, boolean>,
): Omit<PreActivation, 'hookName'> | undefined {
  let current = walk.projection.node.output?.[0];
  let bias: string | undefined;
  for (let steps = 0; current && steps < GELU_WALK_LIMIT; steps++) {
    if (current === activation) return undefined;
    const readers = (index.consumers.get(current) ?? []).filter((n) => (n.output ?? []).some((o) => walk.region.has(o)));
    if (readers.length !== 1) break;
    const reader = readers[0];
    const op = reader.opType ?? '';
    const inputs = reader.input ?? [];
    if (FUSED_GELU_WITH_BIAS.has(op)) {
      const other = inputs[0] === current ? inputs[1] : inputs[0];
      if (other && isConstantTensor(index, other, constMemo)) bias = other;
      break;
    }
    if (!PRE_ACTIVATION_STEP_OPS.has(op)) break;
    // Layout ops read their data from input 0 only; the others are shapes or axes.
    if (DATA_INPUT_ZERO_OPS.has(op) && inputs[0] !== current) break;
    if (reader.output?.[0] === activation) break;
    current = reader.output?.[0];
  }
  if (!current || current === activation) return undefined;
  const type = tensorElemType(index, current);
  if (type !== DataType.FLOAT && type !== DataType.FLOAT16) return undefined;
  return { tensorName: current, ...(bias ? { bias } : {}), dtype: type === DataType.FLOAT ? 'float32' : 'float16' };
}

function hookDtype(index: GraphIndex, activation: string): HookDtype {
  const t = tensorElemType(index, activation);
  if (t === DataType.FLOAT) return 'float32';
  if (t === DataType.FLOAT16) return 'float16';
  throw new ModelFormatError(
    `the MLP activation "${activation}" has element type ${dataTypeName(t)}; only float32 and float16 activations are supported`,
  );
}

function noMlpError(
  index: GraphIndex,
  projections: Projection[],
  dModel: number | undefined,
  embedding: TokenEmbedding | undefined,
): NoMlpFoundError {
  const shapes = [...new Set(projections.map((p) => `[${p.k}, ${p.n}]`))];
  const seen =
    shapes.length === 0
      ? 'the graph has no MatMul/Gemm with a weight stored in the file'
      : `weights seen: ${shapes.slice(0, 8).join(', ')}${shapes.length > 8 ? `, … (${shapes.length} shapes)` : ''}`;
  const width =
    dModel === undefined
      ? 'd_model unknown: no token embedding Gather found'
      : `d_model = ${dModel}${embedding && dModel === embedding.dModel ? ' from the token embedding' : ''}`;
  const merged = index.order.some((n) => n.opType === 'If')
    ? '; the graph body is inside an If node (merged decoder): use inspectModel/instrumentModel, which specialise it first'
    : '';
  return new NoMlpFoundError(
    `no GPT-2 MLP found: no MatMul/Gemm with a [d_mlp, d_model] weight reading a GELU of a [d_model, d_mlp] projection (${width}; ${seen})${merged}`,
  );
}
