/**
 * Decoding/encoding of ONNX models and a read-only index over one graph
 * (who produces/consumes each tensor, constant shapes, element types, topological order).
 *
 * Decoding keeps weight bytes as views into the input buffer (protobufjs slices `bytes`
 * fields with subarray), so inspecting a large model does not duplicate its weights.
 */
import onnxProto, { type onnx as OnnxTypes } from 'onnx-proto';
import { ModelFormatError, NotOnnxError } from './model-errors.ts';

/** The generated ONNX message classes (ModelProto, GraphProto, NodeProto, ...). */
export const onnx = onnxProto.onnx;

export type ModelProto = OnnxTypes.ModelProto;
export type GraphProto = OnnxTypes.IGraphProto;
export type NodeProto = OnnxTypes.INodeProto;
export type TensorProto = OnnxTypes.ITensorProto;
export type ValueInfoProto = OnnxTypes.IValueInfoProto;
export type AttributeProto = OnnxTypes.IAttributeProto;

/** TensorProto.DataType values used by the model code. */
export const DataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  INT32: 6,
  INT64: 7,
  BOOL: 9,
  FLOAT16: 10,
} as const;

const DATA_TYPE_NAMES: Record<number, string> = {
  1: 'float32',
  2: 'uint8',
  3: 'int8',
  4: 'uint16',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  8: 'string',
  9: 'bool',
  10: 'float16',
  11: 'float64',
  12: 'uint32',
  13: 'uint64',
  16: 'bfloat16',
};

/** onnxruntime-style name of an ONNX element type ('float32', 'int64', ...). */
export function dataTypeName(dataType: number | null | undefined): string {
  if (dataType == null) return 'unknown';
  return DATA_TYPE_NAMES[dataType] ?? `type${dataType}`;
}

/**
 * Converts a protobuf int64 (a Long under Node, a plain number where `long` is unavailable,
 * e.g. in a browser bundle) to a JS number.
 */
export function int64ToNumber(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  if (value && typeof value === 'object') {
    const v = value as { toNumber?: () => number; low?: number; high?: number; unsigned?: boolean };
    if (typeof v.toNumber === 'function') return v.toNumber();
    if (typeof v.low === 'number' && typeof v.high === 'number') {
      const low = v.low >>> 0;
      return v.unsigned ? v.high * 2 ** 32 + low : (v.high | 0) * 2 ** 32 + low;
    }
  }
  if (typeof value === 'string') return Number(value);
  return NaN;
}

/** Highest ir_version we consider plausible; protects against random bytes that happen to decode. */
const MAX_PLAUSIBLE_IR_VERSION = 64;

/**
 * Decodes an ONNX model and checks that it really is one: random bytes or text can decode as
 * protobuf, so we require an ir_version, an opset import and a graph with at least one node.
 * @param sourceName shown in error messages, e.g. the file name.
 */
export function decodeModel(bytes: Uint8Array, sourceName = 'the data'): ModelProto {
  const notOnnx = (reason: string, cause?: unknown) =>
    new NotOnnxError(`${sourceName} is not an ONNX model (${reason}; the file may be truncated or of another type)`, { cause });
  if (!(bytes instanceof Uint8Array)) {
    throw new NotOnnxError(`${sourceName} is not an ONNX model (expected bytes, got ${typeof bytes})`);
  }
  if (bytes.length === 0) throw new NotOnnxError(`${sourceName} is not an ONNX model (it is empty)`);
  let model: ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw notOnnx(`it does not parse: ${err instanceof Error ? err.message : String(err)}`, err);
  }
  const irVersion = int64ToNumber(model.irVersion);
  if (!(irVersion >= 1 && irVersion <= MAX_PLAUSIBLE_IR_VERSION)) {
    throw notOnnx(irVersion ? `implausible ir_version ${irVersion}` : 'no ir_version');
  }
  if (!model.opsetImport || model.opsetImport.length === 0) throw notOnnx('it declares no operator set');
  const graph = model.graph;
  if (!graph || !graph.node || graph.node.length === 0) throw notOnnx('it has no graph nodes');
  if (graph.node.some((node) => !node.opType)) throw notOnnx('a graph node has no operator type');
  return model;
}

/** Serialises a model (copies the weight bytes once into the new buffer). */
export function encodeModel(model: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

// ---------------------------------------------------------------------------------------------
// Attributes

export function getAttribute(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute?.find((a) => a.name === name);
}

export function attrInt(node: NodeProto, name: string, fallback: number): number {
  const a = getAttribute(node, name);
  return a && a.i != null ? int64ToNumber(a.i) : fallback;
}

export function attrInts(node: NodeProto, name: string): number[] | undefined {
  const a = getAttribute(node, name);
  return a?.ints && a.ints.length > 0 ? a.ints.map(int64ToNumber) : undefined;
}

/** Subgraphs held by a node's attributes (If branches, Loop/Scan bodies). */
export function nodeSubgraphs(node: NodeProto): GraphProto[] {
  const out: GraphProto[] = [];
  for (const a of node.attribute ?? []) {
    if (a.g) out.push(a.g);
    for (const g of a.graphs ?? []) out.push(g);
  }
  return out;
}

/**
 * Names a subgraph reads from enclosing scopes: used as node inputs (at any depth) but not
 * defined inside it (by its inputs, initializers or node outputs).
 */
export function outerScopeNames(graph: GraphProto): Set<string> {
  const defined = new Set<string>();
  for (const i of graph.input ?? []) if (i.name) defined.add(i.name);
  for (const t of graph.initializer ?? []) if (t.name) defined.add(t.name);
  for (const t of graph.sparseInitializer ?? []) if (t.values?.name) defined.add(t.values.name);
  for (const n of graph.node ?? []) for (const o of n.output ?? []) if (o) defined.add(o);
  const used = new Set<string>();
  for (const n of graph.node ?? []) {
    for (const name of nodeInputNames(n)) if (!defined.has(name)) used.add(name);
  }
  for (const o of graph.output ?? []) if (o.name && !defined.has(o.name)) used.add(o.name);
  return used;
}

/** Every tensor a node needs: its non-empty inputs plus names its subgraphs take from outside. */
export function nodeInputNames(node: NodeProto): string[] {
  const names = (node.input ?? []).filter((n) => n !== '');
  for (const g of nodeSubgraphs(node)) for (const n of outerScopeNames(g)) names.push(n);
  return names;
}

// ---------------------------------------------------------------------------------------------
// Graph index

export interface Producer {
  node: NodeProto;
  outputIndex: number;
}

export interface GraphIndex {
  readonly graph: GraphProto;
  /** Node that writes each tensor. */
  readonly producers: ReadonlyMap<string, Producer>;
  /** Nodes that read each tensor (including reads from inside their subgraphs). */
  readonly consumers: ReadonlyMap<string, NodeProto[]>;
  readonly initializers: ReadonlyMap<string, TensorProto>;
  /** Values of Constant nodes, as tensors (value_float etc. converted to a TensorProto-like shape). */
  readonly constants: ReadonlyMap<string, TensorProto>;
  readonly graphInputs: ReadonlyMap<string, ValueInfoProto>;
  /** Declared types: value_info, inputs and outputs. */
  readonly valueInfo: ReadonlyMap<string, ValueInfoProto>;
  /** Nodes in topological order. */
  readonly order: readonly NodeProto[];
  readonly position: ReadonlyMap<NodeProto, number>;
}

export function indexGraph(graph: GraphProto): GraphIndex {
  const nodes = graph.node ?? [];
  const producers = new Map<string, Producer>();
  const consumers = new Map<string, NodeProto[]>();
  const initializers = new Map<string, TensorProto>();
  const constants = new Map<string, TensorProto>();
  const graphInputs = new Map<string, ValueInfoProto>();
  const valueInfo = new Map<string, ValueInfoProto>();

  for (const t of graph.initializer ?? []) if (t.name) initializers.set(t.name, t);
  for (const v of graph.valueInfo ?? []) if (v.name) valueInfo.set(v.name, v);
  for (const v of graph.output ?? []) if (v.name) valueInfo.set(v.name, v);
  for (const v of graph.input ?? []) {
    if (!v.name) continue;
    valueInfo.set(v.name, v);
    // Old exporters list initializers among the inputs; those are not real inputs.
    if (!initializers.has(v.name)) graphInputs.set(v.name, v);
  }

  const inputsOf = new Map<NodeProto, string[]>();
  for (const node of nodes) {
    (node.output ?? []).forEach((name, outputIndex) => {
      if (name) producers.set(name, { node, outputIndex });
    });
    const ins = nodeInputNames(node);
    inputsOf.set(node, ins);
    for (const name of new Set(ins)) {
      let list = consumers.get(name);
      if (!list) consumers.set(name, (list = []));
      list.push(node);
    }
    if (node.opType === 'Constant' && node.output?.[0]) {
      const value = constantNodeValue(node);
      if (value) constants.set(node.output[0], value);
    }
  }

  // Kahn's algorithm, taking ready nodes in file order so an already-sorted graph keeps its order.
  const pending = new Map<NodeProto, number>();
  for (const node of nodes) {
    let n = 0;
    for (const name of inputsOf.get(node)!) {
      const p = producers.get(name);
      if (p && p.node !== node) n++;
    }
    pending.set(node, n);
  }
  const order: NodeProto[] = [];
  const ready: NodeProto[] = nodes.filter((n) => pending.get(n) === 0);
  const fileIndex = new Map(nodes.map((n, i) => [n, i] as const));
  // Binary heap keyed by file index.
  const heap = new MinHeap<NodeProto>((a, b) => fileIndex.get(a)! - fileIndex.get(b)!);
  for (const n of ready) heap.push(n);
  while (heap.size > 0) {
    const node = heap.pop()!;
    order.push(node);
    for (const out of node.output ?? []) {
      if (!out) continue;
      for (const c of consumers.get(out) ?? []) {
        if (c === node) continue;
        const count = (pending.get(c) ?? 0) - countOccurrences(inputsOf.get(c)!, out, producers, node);
        pending.set(c, count);
        if (count === 0) heap.push(c);
      }
    }
  }
  if (order.length !== nodes.length) {
    throw new ModelFormatError(
      `the ONNX graph has a cycle or a node reads its own output (${nodes.length - order.length} nodes cannot be ordered)`,
    );
  }
  const position = new Map(order.map((n, i) => [n, i] as const));
  return { graph, producers, consumers, initializers, constants, graphInputs, valueInfo, order, position };
}

/** How many of `inputs` are `name` as produced by `producerNode` (a node may read a tensor twice). */
function countOccurrences(inputs: string[], name: string, producers: Map<string, Producer>, producerNode: NodeProto): number {
  if (producers.get(name)?.node !== producerNode) return 0;
  let n = 0;
  for (const i of inputs) if (i === name) n++;
  return n;
}

class MinHeap<T> {
  private items: T[] = [];
  constructor(private readonly less: (a: T, b: T) => number) {}
  get size(): number {
    return this.items.length;
  }
  push(item: T): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.less(a[i], a[parent]) >= 0) break;
      [a[i], a[parent]] = [a[parent], a[i]];
      i = parent;
    }
  }
  pop(): T | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l], a[m]) < 0) m = l;
        if (r < a.length && this.less(a[r], a[m]) < 0) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}

/** The value of a Constant node as a tensor description (only dims and data type are reliable). */
function constantNodeValue(node: NodeProto): TensorProto | undefined {
  for (const a of node.attribute ?? []) {
    switch (a.name) {
      case 'value':
        return a.t ?? undefined;
      case 'value_float':
        return { dims: [], dataType: DataType.FLOAT, floatData: [a.f ?? 0] };
      case 'value_floats':
        return { dims: [a.floats?.length ?? 0], dataType: DataType.FLOAT, floatData: a.floats ?? [] };
      case 'value_int':
        return { dims: [], dataType: DataType.INT64, int64Data: [a.i ?? 0] };
      case 'value_ints':
        return { dims: [a.ints?.length ?? 0], dataType: DataType.INT64, int64Data: a.ints ?? [] };
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Static facts about tensors

/** Ops whose first output has the first input's shape (or a permutation of it, for Transpose). */
const SHAPE_PRESERVING_WEIGHT_OPS = new Set(['Identity', 'Cast', 'CastLike', 'DequantizeLinear']);

/**
 * Shape of a tensor whose value is fixed in the file: an initializer, a Constant node, or one of
 * those passed through Identity/Cast/DequantizeLinear/Transpose. Returns undefined otherwise.
 * Only `dims` are read, so externally stored weights work too.
 */
export function constantShape(index: GraphIndex, name: string, depth = 0): number[] | undefined {
  if (depth > 16) return undefined;
  const tensor = index.initializers.get(name) ?? index.constants.get(name);
  if (tensor) return (tensor.dims ?? []).map(int64ToNumber);
  const p = index.producers.get(name);
  if (!p || p.outputIndex !== 0) return undefined;
  const { node } = p;
  const inner = () => constantShape(index, node.input?.[0] ?? '', depth + 1);
  if (SHAPE_PRESERVING_WEIGHT_OPS.has(node.opType ?? '')) return inner();
  if (node.opType === 'Transpose') {
    const dims = inner();
    if (!dims) return undefined;
    const perm = attrInts(node, 'perm') ?? dims.map((_, i) => dims.length - 1 - i);
    return perm.map((i) => dims[i]);
  }
  return undefined;
}

/**
 * Whether a tensor's value is fixed in the file: an initializer, a Constant node output, or the
 * result of an op whose inputs are all fixed (constant folding the exporter did not do).
 * Pass the same `memo` to repeated calls on one graph to keep the total work linear.
 */
export function isConstantTensor(index: GraphIndex, name: string, memo = new Map<string, boolean>()): boolean {
  // Iterative depth-first search: a data tensor's ancestry can be thousands of nodes deep.
  const stack = [name];
  const onStack = new Set(stack);
  while (stack.length > 0) {
    const current = stack[stack.length - 1];
    let result: boolean | undefined;
    if (memo.has(current)) {
      result = memo.get(current);
    } else if (current === '' || index.initializers.has(current) || index.constants.has(current)) {
      result = true;
    } else {
      const p = index.producers.get(current);
      const inputs = p ? nodeInputNames(p.node) : [];
      if (!p || inputs.length === 0 || NON_FOLDABLE_OPS.has(p.node.opType ?? '')) {
        result = false;
      } else {
        result = true;
        for (const input of inputs) {
          const known = memo.get(input);
          if (known === true) continue;
          if (known === false || onStack.has(input)) {
            result = false;
          } else {
            result = undefined;
            stack.push(input);
            onStack.add(input);
          }
          break;
        }
      }
    }
    if (result === undefined) continue;
    memo.set(current, result);
    stack.pop();
    onStack.delete(current);
  }
  return memo.get(name)!;
}

const NON_FOLDABLE_OPS = new Set(['RandomNormal', 'RandomUniform', 'RandomNormalLike', 'RandomUniformLike', 'Multinomial']);

/** Ops whose (first) output type is fixed regardless of the inputs. */
const FIXED_OUTPUT_TYPE: Record<string, number> = {
  Shape: DataType.INT64,
  Size: DataType.INT64,
  NonZero: DataType.INT64,
  ArgMax: DataType.INT64,
  ArgMin: DataType.INT64,
  Equal: DataType.BOOL,
  Less: DataType.BOOL,
  LessOrEqual: DataType.BOOL,
  Greater: DataType.BOOL,
  GreaterOrEqual: DataType.BOOL,
  Not: DataType.BOOL,
  And: DataType.BOOL,
  Or: DataType.BOOL,
  Xor: DataType.BOOL,
  IsNaN: DataType.BOOL,
  IsInf: DataType.BOOL,
  MatMulInteger: DataType.INT32,
  ConvInteger: DataType.INT32,
};

/**
 * Element type (TensorProto.DataType) of a tensor: from declared types when present, otherwise
 * inferred from the producing op (most ops keep their first input's type). Undefined if unknown.
 */
export function tensorElemType(index: GraphIndex, name: string): number | undefined {
  const memo = new Map<string, number | undefined>();
  // Iterative to survive long residual chains in deep models.
  const stack: string[] = [name];
  const onStack = new Set(stack);
  while (stack.length > 0) {
    const current = stack[stack.length - 1];
    if (!memo.has(current)) {
      const step = directElemType(index, current);
      if (!step.resolved && !memo.has(step.dependsOn) && !onStack.has(step.dependsOn)) {
        stack.push(step.dependsOn);
        onStack.add(step.dependsOn);
        continue;
      }
      // A dependency on a tensor still on the stack is a cycle: type unknown.
      memo.set(current, step.resolved ? step.type : memo.get(step.dependsOn));
    }
    stack.pop();
    onStack.delete(current);
  }
  return memo.get(name);
}

type ElemTypeStep = { resolved: true; type: number | undefined } | { resolved: false; dependsOn: string };

function directElemType(index: GraphIndex, name: string): ElemTypeStep {
  const declared = index.valueInfo.get(name)?.type?.tensorType?.elemType;
  if (declared) return { resolved: true, type: declared };
  const tensor = index.initializers.get(name) ?? index.constants.get(name);
  if (tensor) return { resolved: true, type: tensor.dataType ?? undefined };
  const p = index.producers.get(name);
  if (!p) return { resolved: true, type: undefined };
  const { node, outputIndex } = p;
  const op = node.opType ?? '';
  const input = (i: number): ElemTypeStep =>
    node.input?.[i] ? { resolved: false, dependsOn: node.input[i] } : { resolved: true, type: undefined };
  switch (op) {
    case 'Cast':
      return { resolved: true, type: attrInt(node, 'to', 0) || undefined };
    case 'CastLike':
      return input(1);
    case 'DynamicQuantizeLinear':
      return { resolved: true, type: outputIndex === 1 ? DataType.FLOAT : DataType.UINT8 };
    case 'QuantizeLinear':
      return node.input?.[2] ? input(2) : { resolved: true, type: DataType.UINT8 };
    case 'DequantizeLinear':
      return input(1);
    case 'Where':
      return input(1);
    case 'ConstantOfShape': {
      const v = getAttribute(node, 'value')?.t;
      return { resolved: true, type: v?.dataType ?? DataType.FLOAT };
    }
    case 'EyeLike':
    case 'RandomNormalLike':
    case 'RandomUniformLike': {
      const dt = attrInt(node, 'dtype', 0);
      return dt ? { resolved: true, type: dt } : input(0);
    }
  }
  if (op in FIXED_OUTPUT_TYPE) return { resolved: true, type: FIXED_OUTPUT_TYPE[op] };
  // TopK/MaxPool-style second outputs are indices.
  if (outputIndex > 0 && (op === 'TopK' || op === 'MaxPool')) return { resolved: true, type: DataType.INT64 };
  return input(0);
}

/** Dimensions declared for a value: numbers for fixed sizes, names for symbolic ones, '?' when unnamed. */
export function declaredDims(info: ValueInfoProto): (number | string)[] | undefined {
  const shape = info.type?.tensorType?.shape;
  if (!shape) return undefined;
  return (shape.dim ?? []).map((d) => {
    if (d.dimParam) return d.dimParam;
    // Decoded messages only own the fields present in the file; defaults live on the prototype.
    if (d.dimValue != null && Object.prototype.hasOwnProperty.call(d, 'dimValue')) return int64ToNumber(d.dimValue);
    return '?';
  });
}
