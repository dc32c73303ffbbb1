/**
 * A small helper for writing ONNX graphs by hand with onnx-proto.
 *
 * Initializers keep a *view* of the caller's typed array (no copy), and serialisation produces a
 * list of chunks in which the big raw tensors are those same views. So a 500 MB model can be
 * streamed to disk chunk by chunk without ever holding a second copy of its weights.
 * Raw tensor bytes are written in the host byte order, which ONNX requires to be little-endian:
 * every platform Node and browsers run on is little-endian.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

export type ElemType = 'float32' | 'float16' | 'int8' | 'uint8' | 'int32' | 'int64' | 'bool';

/** ONNX TensorProto.DataType codes. */
export const ONNX_DTYPE: Record<ElemType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
};

const BYTES_PER_ELEMENT: Record<ElemType, number> = {
  float32: 4,
  float16: 2,
  int8: 1,
  uint8: 1,
  int32: 4,
  int64: 8,
  bool: 1,
};

/** A dimension: a fixed size, or a symbolic name such as 'batch_size'. */
export type Dim = number | string;

export type AttrValue =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'ints'; value: number[] }
  | { kind: 'floats'; value: number[] }
  | { kind: 'string'; value: string }
  | { kind: 'tensor'; value: TensorData };

export const attr = {
  int: (value: number): AttrValue => ({ kind: 'int', value }),
  float: (value: number): AttrValue => ({ kind: 'float', value }),
  ints: (value: number[]): AttrValue => ({ kind: 'ints', value }),
  floats: (value: number[]): AttrValue => ({ kind: 'floats', value }),
  string: (value: string): AttrValue => ({ kind: 'string', value }),
  tensor: (value: TensorData): AttrValue => ({ kind: 'tensor', value }),
};

/** Tensor contents: element type, shape and the raw little-endian bytes (any typed-array view). */
export interface TensorData {
  elemType: ElemType;
  dims: number[];
  data: ArrayBufferView;
}

export class OnnxBuildError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OnnxBuildError';
  }
}

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

function checkTensor(name: string, t: TensorData): void {
  const count = t.dims.reduce((a, b) => a * b, 1);
  const expected = count * BYTES_PER_ELEMENT[t.elemType];
  if (t.data.byteLength !== expected) {
    throw new OnnxBuildError(
      `tensor "${name}" has ${t.data.byteLength} bytes but dims [${t.dims.join(', ')}] of ${t.elemType} need ${expected}`,
    );
  }
}

/** Builds the scalar/1-D tensors graphs need for shapes and constants. */
export const tensor = {
  float32: (values: number[], dims: number[] = [values.length]): TensorData => ({
    elemType: 'float32',
    dims,
    data: Float32Array.from(values),
  }),
  float16: (values: number[], dims: number[] = [values.length]): TensorData => ({
    elemType: 'float16',
    dims,
    data: float32ToFloat16(Float32Array.from(values)),
  }),
  int64: (values: number[], dims: number[] = [values.length]): TensorData => ({
    elemType: 'int64',
    dims,
    data: BigInt64Array.from(values.map((v) => BigInt(v))),
  }),
  int8: (values: number[], dims: number[] = [values.length]): TensorData => ({
    elemType: 'int8',
    dims,
    data: Int8Array.from(values),
  }),
};

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE 754 binary16 bits of one number, rounding to nearest even (what numpy's astype does). */
export function float16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half: value = m · 2^-24.
    if (e < -10) return sign;
    const full = mant | 0x800000;
    const shift = 14 - e;
    let half = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and overflows to infinity).
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** Converts float32 values to float16 bit patterns. */
export function float32ToFloat16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = float16Bits(values[i]);
  return out;
}

/** The number a float16 bit pattern stands for. */
export function float16ToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

interface NodeSpec {
  opType: string;
  inputs: string[];
  outputs: string[];
  name: string;
  domain: string;
  attrs: Record<string, AttrValue>;
}

interface ValueSpec {
  name: string;
  elemType: ElemType;
  dims: Dim[];
}

export interface ModelMeta {
  /** (domain, version) pairs; '' is the default ai.onnx domain. */
  opsetImports: { domain: string; version: number }[];
  irVersion?: number;
  producerName?: string;
  producerVersion?: string;
  docString?: string;
  metadata?: Record<string, string>;
}

/**
 * Collects nodes, initializers, inputs and outputs of one graph.
 * Node names follow the PyTorch exporter's convention: `${scope}/${OpType}` then `_1`, `_2`...
 * per scope and op type, and outputs `${nodeName}_output_${k}`.
 */
export class OnnxGraphBuilder {
  readonly nodes: NodeSpec[] = [];
  readonly initializers = new Map<string, TensorData>();
  readonly inputs: ValueSpec[] = [];
  readonly outputs: ValueSpec[] = [];
  private readonly opCounters = new Map<string, number>();
  private readonly tensorNames = new Set<string>();

  constructor(readonly name: string) {}

  addInput(name: string, elemType: ElemType, dims: Dim[]): string {
    this.claim(name);
    this.inputs.push({ name, elemType, dims });
    return name;
  }

  /** Declares a graph output; the tensor must be produced by some node. */
  addOutput(name: string, elemType: ElemType, dims: Dim[]): void {
    this.outputs.push({ name, elemType, dims });
  }

  addInitializer(name: string, t: TensorData): string {
    checkTensor(name, t);
    this.claim(name);
    this.initializers.set(name, t);
    return name;
  }

  /** A node with explicit output names. */
  addNode(
    opType: string,
    inputs: string[],
    outputs: string[],
    options: { name?: string; attrs?: Record<string, AttrValue>; domain?: string } = {},
  ): string[] {
    for (const o of outputs) this.claim(o);
    this.nodes.push({
      opType,
      inputs,
      outputs,
      name: options.name ?? outputs[0],
      domain: options.domain ?? '',
      attrs: options.attrs ?? {},
    });
    return outputs;
  }

  /** A node named in PyTorch-exporter style inside `scope`; returns its output names. */
  op(
    scope: string,
    opType: string,
    inputs: string[],
    attrs: Record<string, AttrValue> = {},
    options: { outputs?: number; domain?: string } = {},
  ): string[] {
    const key = `${scope}/${opType}`;
    const n = this.opCounters.get(key) ?? 0;
    this.opCounters.set(key, n + 1);
    const nodeName = n === 0 ? key : `${key}_${n}`;
    const outputs: string[] = [];
    for (let k = 0; k < (options.outputs ?? 1); k++) outputs.push(`${nodeName}_output_${k}`);
    return this.addNode(opType, inputs, outputs, { name: nodeName, attrs, domain: options.domain });
  }

  /** Same as op() for single-output nodes, returning the one output name. */
  op1(scope: string, opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string {
    return this.op(scope, opType, inputs, attrs)[0];
  }

  /** A Constant node holding `value`, named like the exporter's `${scope}/Constant`. */
  constantNode(scope: string, value: TensorData): string {
    return this.op1(scope, 'Constant', [], { value: attr.tensor(value) });
  }

  private claim(name: string): void {
    if (this.tensorNames.has(name)) throw new OnnxBuildError(`tensor name "${name}" is defined twice`);
    this.tensorNames.add(name);
  }
}

function valueInfo(v: ValueSpec): onnxProto.onnx.IValueInfoProto {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: ONNX_DTYPE[v.elemType],
        shape: { dim: v.dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function tensorProto(name: string, t: TensorData): onnxProto.onnx.ITensorProto {
  return { name, dims: t.dims, dataType: ONNX_DTYPE[t.elemType], rawData: bytesOf(t.data) };
}

function attributeProto(name: string, a: AttrValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.kind) {
    case 'int':
      return { name, type: T.INT, i: a.value };
    case 'float':
      return { name, type: T.FLOAT, f: a.value };
    case 'ints':
      return { name, type: T.INTS, ints: a.value };
    case 'floats':
      return { name, type: T.FLOATS, floats: a.value };
    case 'string':
      return { name, type: T.STRING, s: new TextEncoder().encode(a.value) };
    case 'tensor':
      return { name, type: T.TENSOR, t: tensorProto('', a.value) };
  }
}

function varint(n: number): Uint8Array {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Uint8Array.from(out);
}

/** Protobuf key byte(s) for a length-delimited field. */
function lengthDelimitedKey(fieldNumber: number): Uint8Array {
  return varint((fieldNumber << 3) | 2);
}

const MODEL_GRAPH_FIELD = 7;
const GRAPH_INITIALIZER_FIELD = 5;
const TENSOR_RAW_DATA_FIELD = 9;

function chunkLength(chunks: Uint8Array[]): number {
  let n = 0;
  for (const c of chunks) n += c.byteLength;
  return n;
}

/**
 * Serialises the graph as a ModelProto, as a list of chunks whose concatenation is the .onnx file.
 * Initializer raw data are appended as length-delimited fields after the rest of the graph, which
 * is valid protobuf (field order is free) and avoids copying the weights.
 */
export function serializeModel(graph: OnnxGraphBuilder, meta: ModelMeta): Uint8Array[] {
  const graphHead = onnx.GraphProto.encode({
    name: graph.name,
    node: graph.nodes.map((n) => ({
      name: n.name,
      opType: n.opType,
      domain: n.domain || undefined,
      input: n.inputs,
      output: n.outputs,
      attribute: Object.entries(n.attrs).map(([k, v]) => attributeProto(k, v)),
    })),
    input: graph.inputs.map(valueInfo),
    output: graph.outputs.map(valueInfo),
  }).finish();

  const graphChunks: Uint8Array[] = [graphHead];
  for (const [name, t] of graph.initializers) {
    const head = onnx.TensorProto.encode({ name, dims: t.dims, dataType: ONNX_DTYPE[t.elemType] }).finish();
    const raw = bytesOf(t.data);
    const rawKey = lengthDelimitedKey(TENSOR_RAW_DATA_FIELD);
    const rawLen = varint(raw.byteLength);
    const tensorLength = head.byteLength + rawKey.byteLength + rawLen.byteLength + raw.byteLength;
    graphChunks.push(lengthDelimitedKey(GRAPH_INITIALIZER_FIELD), varint(tensorLength), head, rawKey, rawLen, raw);
  }

  const modelHead = onnx.ModelProto.encode({
    irVersion: meta.irVersion ?? 8,
    producerName: meta.producerName ?? 'neurolens',
    producerVersion: meta.producerVersion ?? '',
    docString: meta.docString ?? '',
    opsetImport: meta.opsetImports.map((o) => ({ domain: o.domain, version: o.version })),
    metadataProps: Object.entries(meta.metadata ?? {}).map(([key, value]) => ({ key, value })),
  }).finish();

  return [modelHead, lengthDelimitedKey(MODEL_GRAPH_FIELD), varint(chunkLength(graphChunks)), ...graphChunks];
}

/** Joins serialised chunks into one buffer (fine for small models; stream big ones instead). */
export function concatChunks(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunkLength(chunks));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

export { chunkLength as serializedLength };
