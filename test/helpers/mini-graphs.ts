/**
 * Hand-built, tiny GPT-2-like ONNX graphs in the styles different exporters produce, plus an
 * independent plain-JS forward pass over the same weights to check what onnxruntime computes.
 *
 * Tensor and node names are meaningless counters (`v12`, `n7`) on purpose: the code under test
 * must find the MLPs by structure, not by name.
 */
import onnxProto, { type onnx as O } from 'onnx-proto';

const { onnx } = onnxProto;
type INode = O.INodeProto;
type ITensor = O.ITensorProto;
type IGraph = O.IGraphProto;
type IAttr = O.IAttributeProto;
type IValueInfo = O.IValueInfoProto;

/** How projections (x · W + b) are written. */
export type ProjectionStyle =
  /** MatMul + Add (Xenova / optimum fp32). */
  | 'matmul'
  /** HF Conv1D: Reshape → Gemm(x, W[k, n], b) → Reshape. */
  | 'conv1d-gemm'
  /** Reshape → Gemm with transB=1 and W stored [n, k] → Reshape. */
  | 'gemm-transb'
  /** Dynamic int8: Reshape → DynamicQuantizeLinear → MatMulInteger → Cast → Mul(scales) → Add → Reshape. */
  | 'int8'
  /** Weights from Constant nodes or Transpose of a [n, k] initializer; a no-op Cast before the MLP down-projection. */
  | 'constant-transposed';

export type GeluStyle = 'decomposed' | 'fastgelu';

export interface MiniGraphOptions {
  nLayer: number;
  d: number;
  dMlp: number;
  vocab: number;
  nCtx?: number;
  projection?: ProjectionStyle;
  gelu?: GeluStyle;
  /** Weights and activations in float16 (softmax in float32 between Cast nodes, logits cast to float32). */
  float16?: boolean;
  /** 'inputs': past_key_values inputs and present outputs; 'merged': optimum-style If on use_cache_branch. */
  past?: 'none' | 'inputs' | 'merged';
  /** Blocks without MLPs (attention only). */
  noMlp?: boolean;
  /** Feed `inputs_embeds` [batch, seq, d] instead of token ids (no embedding Gather). */
  embedsInput?: boolean;
  /** A NaN guard, Where(IsNaN(h), 0, h), between the up-projection and the GELU. */
  nanGuard?: boolean;
  /** Merged only: the no-cache branch defines a tensor name that the outer graph also defines. */
  branchNameClash?: boolean;
  seed?: number;
}

export interface Linear {
  k: number;
  n: number;
  /** [k, n] row-major, already rounded to what the file stores (float16 / int8·scale). */
  w: Float32Array;
  b?: Float32Array;
  /** Present in int8 graphs: symmetric per-tensor quantised weight. */
  q?: { wq: Int8Array; scale: number };
}

export interface BlockWeights {
  ln1: { g: Float32Array; b: Float32Array };
  attn: Linear;
  attnOut: Linear;
  ln2: { g: Float32Array; b: Float32Array };
  fc?: Linear;
  proj?: Linear;
}

export interface MiniWeights {
  wte: Float32Array; // [vocab, d]
  wpe: Float32Array; // [nCtx, d]
  blocks: BlockWeights[];
  lnf: { g: Float32Array; b: Float32Array };
  head: Linear; // [d, vocab], no bias
}

export interface MiniModel {
  bytes: Uint8Array;
  model: O.ModelProto;
  weights: MiniWeights;
  options: Required<Omit<MiniGraphOptions, 'seed'>>;
}

const AttrType = { FLOAT: 1, INT: 2, TENSOR: 4, GRAPH: 5, INTS: 7 } as const;
const DT = { FLOAT: 1, UINT8: 2, INT8: 3, INT64: 7, BOOL: 9, FLOAT16: 10 } as const;
const LN_EPS = 1e-5;

// ---------------------------------------------------------------------------------------------
// Numbers

/** Deterministic PRNG (mulberry32) so every run builds the same weights. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 → IEEE half bits, round to nearest even (normal range and subnormals). */
export function toHalfBits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  const mant = x & 0x7fffff;
  if (((x >>> 23) & 0xff) === 0xff) return sign | 0x7c00 | (mant ? 1 : 0);
  if (exp >= 0x1f) return sign | 0x7c00;
  if (exp <= 0) {
    if (exp < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - exp;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (exp << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

export function fromHalfBits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

export function roundToHalf(a: Float32Array): Float32Array {
  return a.map((v) => fromHalfBits(toHalfBits(v)));
}

export function halfArrayToFloat32(a: Uint16Array): Float32Array {
  return Float32Array.from(a, fromHalfBits);
}

function randomArray(next: () => number, n: number, scale: number, offset = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = offset + (next() * 2 - 1) * scale;
  return a;
}

function makeLinear(next: () => number, k: number, n: number, opts: { bias: boolean; float16: boolean; int8: boolean }): Linear {
  let w = randomArray(next, k * n, 1 / Math.sqrt(k));
  let b = opts.bias ? randomArray(next, n, 0.1) : undefined;
  if (opts.int8) {
    const maxAbs = w.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const scale = Math.fround(maxAbs / 127);
    const wq = Int8Array.from(w, (v) => Math.max(-127, Math.min(127, Math.round(v / scale))));
    w = Float32Array.from(wq, (v) => Math.fround(v * scale));
    return { k, n, w, b, q: { wq, scale } };
  }
  if (opts.float16) {
    w = roundToHalf(w);
    if (b) b = roundToHalf(b);
  }
  return { k, n, w, b };
}

export function makeWeights(o: Required<Omit<MiniGraphOptions, 'seed'>>, seed: number): MiniWeights {
  const next = rng(seed);
  const int8 = o.projection === 'int8';
  const lin = (k: number, n: number, bias = true) => makeLinear(next, k, n, { bias, float16: o.float16, int8 });
  const ln = () => {
    const g = randomArray(next, o.d, 0.2, 1);
    const b = randomArray(next, o.d, 0.1);
    return o.float16 ? { g: roundToHalf(g), b: roundToHalf(b) } : { g, b };
  };
  const table = (rows: number) => {
    const t = randomArray(next, rows * o.d, 1);
    return o.float16 ? roundToHalf(t) : t;
  };
  const wte = table(o.vocab);
  const wpe = table(o.nCtx);
  const blocks: BlockWeights[] = [];
  for (let l = 0; l < o.nLayer; l++) {
    blocks.push({
      ln1: ln(),
      attn: lin(o.d, 3 * o.d),
      attnOut: lin(o.d, o.d),
      ln2: ln(),
      ...(o.noMlp ? {} : { fc: lin(o.d, o.dMlp), proj: lin(o.dMlp, o.d) }),
    });
  }
  return { wte, wpe, blocks, lnf: ln(), head: lin(o.d, o.vocab, false) };
}

// ---------------------------------------------------------------------------------------------
// Graph building

/** Hands out graph-wide unique, meaningless names. */
class Names {
  private n = 0;
  tensor(): string {
    return `v${this.n++}`;
  }
  node(): string {
    return `n${this.n++}`;
  }
}

function tensorProto(name: string, dims: number[], dataType: number, data: ArrayBufferView): ITensor {
  const raw = new Uint8Array(data.byteLength);
  raw.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return { name, dims, dataType, rawData: raw };
}

function attrInt(name: string, i: number): IAttr {
  return { name, type: AttrType.INT, i };
}
function attrInts(name: string, ints: number[]): IAttr {
  return { name, type: AttrType.INTS, ints };
}
function attrGraph(name: string, g: IGraph): IAttr {
  return { name, type: AttrType.GRAPH, g };
}

/** One graph scope (main graph or an If branch) being built. */
class Scope {
  readonly nodes: INode[] = [];
  readonly initializers: ITensor[] = [];
  constructor(
    readonly names: Names,
    /** Where weights go: the main graph shares them with branches, like optimum's merged export. */
    readonly weights: ITensor[] = [],
  ) {}

  op(opType: string, inputs: string[], attrs: IAttr[] = [], nOut = 1, domain = ''): string[] {
    const outputs = Array.from({ length: nOut }, () => this.names.tensor());
    this.nodes.push({ name: this.names.node(), opType, input: inputs, output: outputs, attribute: attrs, domain });
    return outputs;
  }
  op1(opType: string, inputs: string[], attrs: IAttr[] = [], domain = ''): string {
    return this.op(opType, inputs, attrs, 1, domain)[0];
  }

  /** A weight: float32 or float16 data stored as an initializer. */
  weight(dims: number[], data: Float32Array, float16: boolean): string {
    const name = this.names.tensor();
    this.weights.push(
      float16
        ? tensorProto(name, dims, DT.FLOAT16, Uint16Array.from(data, toHalfBits))
        : tensorProto(name, dims, DT.FLOAT, data),
    );
    return name;
  }
  int8(dims: number[], data: Int8Array): string {
    const name = this.names.tensor();
    this.weights.push(tensorProto(name, dims, DT.INT8, data));
    return name;
  }
  /** A small local constant (scalars, shapes): kept in this scope's initializers. */
  scalar(value: number, float16 = false): string {
    const name = this.names.tensor();
    this.initializers.push(
      float16
        ? tensorProto(name, [], DT.FLOAT16, Uint16Array.of(toHalfBits(value)))
        : tensorProto(name, [], DT.FLOAT, Float32Array.of(value)),
    );
    return name;
  }
  int64(values: number[], dims: number[] = [values.length]): string {
    const name = this.names.tensor();
    this.initializers.push(tensorProto(name, dims, DT.INT64, BigInt64Array.from(values, (v) => BigInt(v))));
    return name;
  }
  /** A Constant node holding a float weight (some exporters emit weights this way). */
  constantNode(dims: number[], data: Float32Array, float16: boolean): string {
    const value = float16
      ? tensorProto('', dims, DT.FLOAT16, Uint16Array.from(data, toHalfBits))
      : tensorProto('', dims, DT.FLOAT, data);
    return this.op1('Constant', [], [{ name: 'value', type: AttrType.TENSOR, t: value }]);
  }
}

function transposeMatrix(w: Float32Array, k: number, n: number): Float32Array {
  const t = new Float32Array(k * n);
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) t[j * k + i] = w[i * n + j];
  return t;
}

interface BuildContext {
  s: Scope;
  o: Required<Omit<MiniGraphOptions, 'seed'>>;
}

/** Reshape [..., n] back from a 2-D [rows, n] result, using the original tensor's leading dims. */
function reshapeBack(s: Scope, y2: string, like: string, n: number): string {
  const shape = s.op1('Shape', [like]);
  const lead = s.op1('Slice', [shape, s.int64([0]), s.int64([-1])]);
  const target = s.op1('Concat', [lead, s.int64([n])], [attrInt('axis', 0)]);
  return s.op1('Reshape', [y2, target]);
}

/** x · W + b in the configured exporter style. `role` picks the variant details per projection. */
function linear(c: BuildContext, x: string, lin: Linear, role: 'attn' | 'attnOut' | 'fc' | 'proj' | 'head'): string {
  const { s, o } = c;
  const f16 = o.float16;
  const bias = () => s.weight([lin.n], lin.b!, f16);
  switch (o.projection) {
    case 'matmul': {
      const y = s.op1('MatMul', [x, s.weight([lin.k, lin.n], lin.w, f16)]);
      return lin.b ? s.op1('Add', [y, bias()]) : y;
    }
    case 'constant-transposed': {
      let w: string;
      if (role === 'attn' || role === 'fc') w = s.constantNode([lin.k, lin.n], lin.w, f16);
      else w = s.op1('Transpose', [s.weight([lin.n, lin.k], transposeMatrix(lin.w, lin.k, lin.n), f16)], [attrInts('perm', [1, 0])]);
      // An exporter-inserted no-op Cast between the activation and the down-projection.
      const input = role === 'proj' ? s.op1('Cast', [x], [attrInt('to', f16 ? DT.FLOAT16 : DT.FLOAT)]) : x;
      const y = s.op1('MatMul', [input, w]);
      return lin.b ? s.op1('Add', [y, s.constantNode([lin.n], lin.b, f16)]) : y;
    }
    case 'conv1d-gemm':
    case 'gemm-transb': {
      const x2 = s.op1('Reshape', [x, s.int64([-1, lin.k])]);
      const transB = o.projection === 'gemm-transb';
      const w = transB
        ? s.weight([lin.n, lin.k], transposeMatrix(lin.w, lin.k, lin.n), f16)
        : s.weight([lin.k, lin.n], lin.w, f16);
      const inputs = lin.b ? [x2, w, bias()] : [x2, w];
      const y2 = s.op1('Gemm', inputs, transB ? [attrInt('transB', 1)] : []);
      return reshapeBack(s, y2, x, lin.n);
    }
    case 'int8': {
      const x2 = s.op1('Reshape', [x, s.int64([-1, lin.k])]);
      const [xq, xScale, xZero] = s.op('DynamicQuantizeLinear', [x2], [], 3);
      const acc = s.op1('MatMulInteger', [xq, s.int8([lin.k, lin.n], lin.q!.wq), xZero]);
      const accF = s.op1('Cast', [acc], [attrInt('to', DT.FLOAT)]);
      const scale = s.op1('Mul', [xScale, s.scalar(lin.q!.scale)]);
      let y2 = s.op1('Mul', [accF, scale]);
      if (lin.b) y2 = s.op1('Add', [y2, bias()]);
      return reshapeBack(s, y2, x, lin.n);
    }
  }
}

function layerNorm(c: BuildContext, x: string, p: { g: Float32Array; b: Float32Array }): string {
  const { s, o } = c;
  const f16 = o.float16;
  const mean = s.op1('ReduceMean', [x], [attrInts('axes', [-1])]);
  const centred = s.op1('Sub', [x, mean]);
  const variance = s.op1('ReduceMean', [s.op1('Pow', [centred, s.scalar(2, f16)])], [attrInts('axes', [-1])]);
  const std = s.op1('Sqrt', [s.op1('Add', [variance, s.scalar(LN_EPS, f16)])]);
  const normed = s.op1('Div', [centred, std]);
  return s.op1('Add', [s.op1('Mul', [normed, s.weight([o.d], p.g, f16)]), s.weight([o.d], p.b, f16)]);
}

function gelu(c: BuildContext, h: string): string {
  const { s, o } = c;
  if (o.gelu === 'fastgelu') return s.op1('FastGelu', [h], [], 'com.microsoft');
  const f16 = o.float16;
  // 0.5·h·(1 + tanh(√(2/π)·(h + 0.044715·h³)))
  const cube = s.op1('Pow', [h, s.scalar(3, f16)]);
  const inner = s.op1('Add', [h, s.op1('Mul', [cube, s.scalar(0.044715, f16)])]);
  const t = s.op1('Tanh', [s.op1('Mul', [inner, s.scalar(Math.sqrt(2 / Math.PI), f16)])]);
  const half = s.op1('Mul', [h, s.scalar(0.5, f16)]);
  return s.op1('Mul', [half, s.op1('Add', [t, s.scalar(1, f16)])]);
}

interface BodyResult {
  logits: string;
  presents: string[]; // key, value per layer
}

/** The decoder body. With `withPast`, attention concatenates past_key_values.{l}.* first. */
function buildBody(c: BuildContext, w: MiniWeights, withPast: boolean, source: string): BodyResult {
  const { s, o } = c;
  const f16 = o.float16;
  let x = o.embedsInput ? source : s.op1('Gather', [s.weight([o.vocab, o.d], w.wte, f16), source]);
  // Positions past_len .. past_len + seq - 1.
  const seqLen = s.op1('Gather', [s.op1('Shape', [source]), s.int64([1], [])], [attrInt('axis', 0)]);
  const start = withPast
    ? s.op1('Gather', [s.op1('Shape', ['past_key_values.0.key']), s.int64([2], [])], [attrInt('axis', 0)])
    : s.int64([0], []);
  const positions = s.op1('Range', [start, s.op1('Add', [start, seqLen]), s.int64([1], [])]);
  x = s.op1('Add', [x, s.op1('Gather', [s.weight([o.nCtx, o.d], w.wpe, f16), positions])]);

  const presents: string[] = [];
  const scale = s.scalar(1 / Math.sqrt(o.d), f16);
  w.blocks.forEach((bw, l) => {
    const h = layerNorm(c, x, bw.ln1);
    const qkv = linear(c, h, bw.attn, 'attn');
    const [q, k, v] = s.op('Split', [qkv, s.int64([o.d, o.d, o.d])], [attrInt('axis', -1)], 3);
    let k4 = s.op1('Unsqueeze', [k, s.int64([1])]);
    let v4 = s.op1('Unsqueeze', [v, s.int64([1])]);
    if (withPast) {
      k4 = s.op1('Concat', [`past_key_values.${l}.key`, k4], [attrInt('axis', 2)]);
      v4 = s.op1('Concat', [`past_key_values.${l}.value`, v4], [attrInt('axis', 2)]);
    }
    presents.push(k4, v4);
    const kAll = s.op1('Squeeze', [k4, s.int64([1])]);
    const vAll = s.op1('Squeeze', [v4, s.int64([1])]);
    const scores = s.op1('Mul', [s.op1('MatMul', [q, s.op1('Transpose', [kAll], [attrInts('perm', [0, 2, 1])])]), scale]);
    // float16 exports upcast the softmax to float32 between Cast nodes.
    const probs = f16
      ? s.op1('Cast', [s.op1('Softmax', [s.op1('Cast', [scores], [attrInt('to', DT.FLOAT)])], [attrInt('axis', -1)])], [attrInt('to', DT.FLOAT16)])
      : s.op1('Softmax', [scores], [attrInt('axis', -1)]);
    const attended = s.op1('MatMul', [probs, vAll]);
    x = s.op1('Add', [x, linear(c, attended, bw.attnOut, 'attnOut')]);
    if (bw.fc && bw.proj) {
      const h2 = layerNorm(c, x, bw.ln2);
      let up = linear(c, h2, bw.fc, 'fc');
      if (o.nanGuard) up = s.op1('Where', [s.op1('IsNaN', [up]), s.scalar(0, f16), up]);
      const act = gelu(c, up);
      x = s.op1('Add', [x, linear(c, act, bw.proj, 'proj')]);
    }
  });
  const xf = layerNorm(c, x, w.lnf);
  let logits = linear(c, xf, w.head, 'head');
  if (f16) logits = s.op1('Cast', [logits], [attrInt('to', DT.FLOAT)]);
  return { logits, presents };
}

function valueInfo(name: string, elemType: number, dims: (number | string)[]): IValueInfo {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** Builds a tiny GPT-2-like model in the requested exporter style. */
export function buildMiniGpt2(options: MiniGraphOptions): MiniModel {
  const o: Required<Omit<MiniGraphOptions, 'seed'>> = {
    nCtx: 32,
    projection: 'matmul',
    gelu: 'decomposed',
    float16: false,
    past: 'none',
    noMlp: false,
    embedsInput: false,
    nanGuard: false,
    branchNameClash: false,
    ...options,
  };
  if (o.float16 && o.projection === 'int8') throw new Error('int8 graphs are float32');
  const weights = makeWeights(o, options.seed ?? 1);
  const names = new Names();
  const main = new Scope(names);
  const actType = o.float16 ? DT.FLOAT16 : DT.FLOAT;

  const inputs: IValueInfo[] = [];
  const source = o.embedsInput ? 'inputs_embeds' : 'input_ids';
  inputs.push(
    o.embedsInput
      ? valueInfo(source, actType, ['batch_size', 'sequence_length', o.d])
      : valueInfo(source, DT.INT64, ['batch_size', 'sequence_length']),
  );
  const pastNames = (l: number) => [`past_key_values.${l}.key`, `past_key_values.${l}.value`];
  const presentNames = (l: number) => [`present.${l}.key`, `present.${l}.value`];
  if (o.past !== 'none') {
    for (let l = 0; l < o.nLayer; l++) {
      for (const n of pastNames(l)) inputs.push(valueInfo(n, actType, ['batch_size', 1, 'past_sequence_length', o.d]));
    }
  }
  const outputs: IValueInfo[] = [valueInfo('logits', DT.FLOAT, ['batch_size', 'sequence_length', o.vocab])];
  if (o.past !== 'none') {
    for (let l = 0; l < o.nLayer; l++) {
      for (const n of presentNames(l)) outputs.push(valueInfo(n, actType, ['batch_size', 1, 'total_sequence_length', o.d]));
    }
  }
  const outputNames = outputs.map((v) => v.name!);

  if (o.past === 'merged') {
    inputs.push(valueInfo('use_cache_branch', DT.BOOL, [1]));
    const branch = (withPast: boolean): IGraph => {
      const b = new Scope(names, main.weights);
      const r = buildBody({ s: b, o }, weights, withPast, source);
      const results = [r.logits, ...r.presents];
      const branchOutputs = results.map((name, i) => {
        const id = b.op1('Identity', [name]);
        return { name: id, type: { tensorType: { elemType: outputs[i].type!.tensorType!.elemType } } };
      });
      if (!withPast && o.branchNameClash) {
        // Reuse an outer-scope name for a branch-local tensor: inlining must rename it.
        const last = b.nodes[b.nodes.length - 1];
        const clash = 'clash_name';
        b.nodes.forEach((n) => (n.input = n.input!.map((x) => (x === last.output![0] ? clash : x))));
        branchOutputs[branchOutputs.length - 1].name = clash;
        last.output = [clash];
      }
      return { name: withPast ? 'with_past' : 'without_past', node: b.nodes, initializer: b.initializers, output: branchOutputs };
    };
    if (o.branchNameClash) main.nodes.push({ name: 'clash', opType: 'Constant', output: ['clash_name'], attribute: [{ name: 'value_float', type: AttrType.FLOAT, f: 1 }] });
    main.nodes.push({
      name: main.names.node(),
      opType: 'If',
      input: ['use_cache_branch'],
      output: outputNames,
      attribute: [attrGraph('then_branch', branch(true)), attrGraph('else_branch', branch(false))],
    });
  } else {
    const r = buildBody({ s: main, o }, weights, o.past === 'inputs', source);
    [r.logits, ...(o.past === 'inputs' ? r.presents : [])].forEach((name, i) => {
      main.nodes.push({ name: names.node(), opType: 'Identity', input: [name], output: [outputNames[i]] });
    });
  }

  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'neurolens-mini-graphs',
    opsetImport: [
      { domain: '', version: 17 },
      { domain: 'com.microsoft', version: 1 },
    ],
    graph: {
      name: 'mini_gpt2',
      node: main.nodes,
      initializer: [...main.weights, ...main.initializers],
      input: inputs,
      output: outputs,
    },
  });
  const bytes = onnx.ModelProto.encode(model).finish();
  return { bytes, model: onnx.ModelProto.decode(bytes), weights, options: o };
}

/** A model that is valid ONNX but has no GPT-2 MLP (attention-only blocks). */
export function buildNoMlpModel(): MiniModel {
  return buildMiniGpt2({ nLayer: 2, d: 8, dMlp: 20, vocab: 13, noMlp: true });
}

// ---------------------------------------------------------------------------------------------
// Reference forward pass (plain JS)

export interface ReferenceResult {
  /** Per layer: [batch, seq, dMlp] row-major post-GELU activations. */
  hooks: Float32Array[];
  /** [batch, seq, vocab] */
  logits: Float32Array;
}

/** ONNX DynamicQuantizeLinear followed by MatMulInteger and the dequantising Mul, for [rows, k]·[k, n]. */
function quantisedMatmul(x: Float32Array, rows: number, lin: Linear): Float32Array {
  let min = 0;
  let max = 0;
  for (const v of x) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const scale = Math.fround((max - min) / 255);
  const zero = scale === 0 ? 0 : Math.max(0, Math.min(255, roundHalfEven(Math.fround(0 - Math.fround(min / scale)))));
  const xq = Uint8Array.from(x, (v) => (scale === 0 ? zero : Math.max(0, Math.min(255, roundHalfEven(Math.fround(v / scale)) + zero))));
  const combined = Math.fround(scale * lin.q!.scale);
  const y = new Float32Array(rows * lin.n);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < lin.n; j++) {
      let acc = 0;
      for (let i = 0; i < lin.k; i++) acc += (xq[r * lin.k + i] - zero) * lin.q!.wq[i * lin.n + j];
      y[r * lin.n + j] = Math.fround(acc) * combined;
    }
  }
  return y;
}

function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function applyLinear(x: Float32Array, rows: number, lin: Linear): Float32Array {
  let y: Float32Array;
  if (lin.q) {
    y = quantisedMatmul(x, rows, lin);
  } else {
    y = new Float32Array(rows * lin.n);
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < lin.k; i++) {
        const xv = x[r * lin.k + i];
        for (let j = 0; j < lin.n; j++) y[r * lin.n + j] += xv * lin.w[i * lin.n + j];
      }
    }
  }
  if (lin.b) for (let r = 0; r < rows; r++) for (let j = 0; j < lin.n; j++) y[r * lin.n + j] += lin.b[j];
  return y;
}

function applyLayerNorm(x: Float32Array, rows: number, d: number, p: { g: Float32Array; b: Float32Array }): Float32Array {
  const y = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x[r * d + i];
    mean /= d;
    let variance = 0;
    for (let i = 0; i < d; i++) variance += (x[r * d + i] - mean) ** 2;
    variance /= d;
    const std = Math.sqrt(variance + LN_EPS);
    for (let i = 0; i < d; i++) y[r * d + i] = ((x[r * d + i] - mean) / std) * p.g[i] + p.b[i];
  }
  return y;
}

function geluTanh(v: number): number {
  return 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
}

/**
 * Forward pass of the mini model on a batch of equal-length token rows (no past), returning
 * every layer's post-GELU activation and the logits. For `embedsInput` models pass `embeds`.
 */
export function referenceForward(
  m: MiniModel,
  ids: number[][],
  embeds?: Float32Array,
  /** Edits a layer's post-GELU activations ([batch·seq, dMlp]) in place before its down-projection. */
  editMlp?: (layer: number, activations: Float32Array) => void,
): ReferenceResult {
  const { weights: w, options: o } = m;
  const batch = ids.length;
  const seq = ids[0].length;
  const rows = batch * seq;
  const d = o.d;
  let x = new Float32Array(rows * d);
  for (let bIdx = 0; bIdx < batch; bIdx++) {
    for (let t = 0; t < seq; t++) {
      const r = bIdx * seq + t;
      for (let i = 0; i < d; i++) {
        const e = embeds ? embeds[r * d + i] : w.wte[ids[bIdx][t] * d + i];
        x[r * d + i] = e + w.wpe[t * d + i];
      }
    }
  }
  const hooks: Float32Array[] = [];
  for (const bw of w.blocks) {
    const qkv = applyLinear(applyLayerNorm(x, rows, d, bw.ln1), rows, bw.attn);
    const attended = new Float32Array(rows * d);
    for (let bIdx = 0; bIdx < batch; bIdx++) {
      for (let t = 0; t < seq; t++) {
        const qRow = (bIdx * seq + t) * 3 * d;
        const scores = new Float64Array(seq);
        for (let u = 0; u < seq; u++) {
          const kRow = (bIdx * seq + u) * 3 * d + d;
          let s = 0;
          for (let i = 0; i < d; i++) s += qkv[qRow + i] * qkv[kRow + i];
          scores[u] = s / Math.sqrt(d);
        }
        const top = Math.max(...scores);
        let total = 0;
        for (let u = 0; u < seq; u++) total += (scores[u] = Math.exp(scores[u] - top));
        for (let u = 0; u < seq; u++) {
          const vRow = (bIdx * seq + u) * 3 * d + 2 * d;
          for (let i = 0; i < d; i++) attended[(bIdx * seq + t) * d + i] += (scores[u] / total) * qkv[vRow + i];
        }
      }
    }
    const attnOut = applyLinear(attended, rows, bw.attnOut);
    x = x.map((v, i) => v + attnOut[i]);
    if (bw.fc && bw.proj) {
      const h = applyLinear(applyLayerNorm(x, rows, d, bw.ln2), rows, bw.fc).map(geluTanh);
      editMlp?.(hooks.length, h);
      hooks.push(h);
      const m2 = applyLinear(h, rows, bw.proj);
      x = x.map((v, i) => v + m2[i]);
    }
  }
  const logits = applyLinear(applyLayerNorm(x, rows, d, w.lnf), rows, w.head);
  return { hooks, logits };
}

/**
 * A minimal MLP behind a chain of `depth` Add nodes: checks that graph walks are iterative
 * (a recursive walk overflows the stack on chains this long).
 */
export function buildDeepChainModel(depth: number, d = 4, dMlp = 6): Uint8Array {
  const names = new Names();
  const s = new Scope(names);
  let x = 'x';
  const one = s.scalar(1);
  for (let i = 0; i < depth; i++) x = s.op1('Add', [x, one]);
  const next = rng(3);
  const h = s.op1('MatMul', [x, s.weight([d, dMlp], randomArray(next, d * dMlp, 0.5), false)]);
  const y = s.op1('MatMul', [s.op1('Tanh', [h]), s.weight([dMlp, d], randomArray(next, d * dMlp, 0.5), false)]);
  s.nodes.push({ name: names.node(), opType: 'Identity', input: [y], output: ['y'] });
  return onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'deep',
      node: s.nodes,
      initializer: [...s.weights, ...s.initializers],
      input: [valueInfo('x', DT.FLOAT, ['batch_size', d])],
      output: [valueInfo('y', DT.FLOAT, ['batch_size', d])],
    },
  }).finish();
}
