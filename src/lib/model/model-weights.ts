/**
 * Reads a GPT-2 export's weights by graph structure, never by name: per block the MLP's
 * up-projection W_in [d_model, d_mlp] and down-projection W_out [d_mlp, d_model] (the nodes that
 * find-mlp-hooks.ts identifies) and the layer norm in front of the up-projection (ln_2); the token
 * embedding W_E [vocab, d_model] (the Gather indexed by the ids input), the LM head W_U as the
 * projection [d_model, vocab] behind the logits (in GPT-2 the transpose of W_E, tied), and the
 * layer norm in front of it (ln_f).
 *
 * Matrices are views that decode the file's bytes on demand (float32, float16, int8/uint8 with
 * their dequantisation scale and zero point), one row or column at a time into float64, so even
 * GPT-2's 50257 × 768 embedding is never copied. A transposed weight (Transpose node, Gemm transB)
 * is the same bytes read the other way.
 */
import { activationBehind, findTokenEmbedding, locateMlps, type LocatedMlp, type Projection } from './find-mlp-hooks.ts';
import { halfValue } from './float16.ts';
import { analyseModelGraph, headProjection, type ModelInfo } from './instrument.ts';
import { modelGraph, type LoadedModel } from './load-model.ts';
import { ModelFormatError } from './model-errors.ts';
import {
  DataType,
  attrInt,
  attrInts,
  dataTypeName,
  getAttribute,
  int64ToNumber,
  isConstantTensor,
  onnx,
  type GraphIndex,
  type NodeProto,
  type TensorProto,
} from './onnx-graph.ts';

/**
 * A 2-D weight in its logical orientation, read as float64. Lines that are contiguous in the file
 * (rows when `rowMajor`, else columns) are the fast ones to read.
 */
export interface WeightMatrix {
  readonly rows: number;
  readonly cols: number;
  readonly rowMajor: boolean;
  /** Element (i, j). */
  get(i: number, j: number): number;
  /** Row i into out[0..cols). */
  readRow(i: number, out: Float64Array): void;
  /** Column j into out[0..rows). */
  readColumn(j: number, out: Float64Array): void;
}

export interface LayerNormWeights {
  gamma: Float64Array;
  beta: Float64Array;
  epsilon: number;
}

export interface MlpWeights {
  layer: number;
  /** Up-projection, [d_model, d_mlp]: the pre-activation is x · W_in + b_in. */
  wIn: WeightMatrix;
  /** Down-projection, [d_mlp, d_model]. */
  wOut: WeightMatrix;
  /** The layer norm the up-projection reads (GPT-2's ln_2). */
  ln2: LayerNormWeights;
}

export interface ReadWeightsOptions {
  /** Residual width from the config, to find the MLPs like the capture does. */
  dModel?: number;
  /** Used when a decomposed layer norm hides its epsilon (default 1e-5, GPT-2's). */
  layerNormEps?: number;
  /** External-data files of the model, by the path the graph refers to. */
  externalData?: readonly { path: string; data: Uint8Array }[];
  sourceName?: string;
}

export class ModelWeights {
  readonly nLayer: number;
  readonly dModel: number;
  readonly dMlp: number;
  readonly vocabSize: number;
  private readonly mlps: LocatedMlp[];
  private readonly reader: TensorReader;
  private readonly mlpCache = new Map<number, MlpWeights>();
  private embeddingView?: WeightMatrix;
  private unembeddingView?: WeightMatrix;
  private finalNorm?: LayerNormWeights;

  private constructor(
    private readonly index: GraphIndex,
    readonly info: ModelInfo,
    private readonly options: ReadWeightsOptions,
  ) {
    this.mlps = locateMlps(index, { dModel: options.dModel ?? info.dModel });
    this.reader = new TensorReader(index, options.externalData ?? []);
    this.nLayer = info.nLayer;
    this.dModel = info.dModel;
    this.dMlp = info.dMlp;
    const embedding = findTokenEmbedding(index);
    if (!embedding) throw new ModelFormatError('no token embedding found: no Gather from a [vocab, d_model] weight indexed by the token ids');
    this.vocabSize = embedding.vocabSize;
  }

  /** Decodes the model (weights stay in `bytes`, which must not change while this is in use). */
  static read(bytes: Uint8Array, options: ReadWeightsOptions = {}): ModelWeights {
    const { index, info } = analyseModelGraph(bytes, { dModel: options.dModel, sourceName: options.sourceName });
    return new ModelWeights(index, info, options);
  }

  /**
   * The weights of a loaded model (its graph read again from the source if it was let go of).
   * The views keep the graph's bytes alive while this object is.
   */
  static async of(model: LoadedModel): Promise<ModelWeights> {
    const { onnxBytes, externalData } = await modelGraph(model);
    return ModelWeights.read(onnxBytes, {
      dModel: model.config.dModel,
      layerNormEps: model.config.layerNormEps,
      externalData,
      sourceName: `${model.label}/${model.onnxPath}`,
    });
  }

  /** Block `layer`'s MLP weights and its ln_2. */
  mlp(layer: number): MlpWeights {
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.nLayer) {
      throw new RangeError(`layer ${layer} is out of range: this model has layers 0-${this.nLayer - 1}`);
    }
    let cached = this.mlpCache.get(layer);
    if (!cached) {
      const located = this.mlps[layer];
      if (!located.up) {
        throw new ModelFormatError(`layer ${layer}'s MLP was found by its width alone; its up-projection is not identified, so its weights cannot be read`);
      }
      const what = `layer ${layer}'s MLP`;
      cached = {
        layer,
        wIn: this.projectionWeight(located.up, `${what} up-projection`),
        wOut: this.projectionWeight(located.down, `${what} down-projection`),
        ln2: this.layerNormBefore(located.up.dataInput, `${what} layer norm (ln_2)`),
      };
      this.mlpCache.set(layer, cached);
    }
    return cached;
  }

  /** W_E, [vocab, d_model]. */
  embedding(): WeightMatrix {
    if (!this.embeddingView) {
      const embedding = findTokenEmbedding(this.index)!;
      const gather = (this.index.consumers.get(embedding.weight) ?? []).find((n) => n.opType === 'Gather' && n.input?.[0] === embedding.weight)!;
      let view = this.reader.matrix(embedding.weight, 'the token embedding');
      const type = this.reader.elemType(embedding.weight);
      if (type === DataType.INT8 || type === DataType.UINT8) {
        // Gathered from a quantised table and dequantised after the Gather (per tensor).
        const dq = (this.index.consumers.get(gather.output?.[0] ?? '') ?? []).find((n) => n.opType === 'DequantizeLinear');
        if (!dq) throw new ModelFormatError('the token embedding is stored as integers with no DequantizeLinear after its Gather');
        view = dequantized(view, this.reader.vector(dq.input![1], 'embedding scale'), dq.input?.[2] ? this.reader.vector(dq.input[2], 'embedding zero point') : undefined, 'rows');
      }
      this.embeddingView = view;
    }
    return this.embeddingView;
  }

  /** W_U, [d_model, vocab]: logits = ln_f(x) · W_U (tied to W_E in GPT-2). */
  unembedding(): WeightMatrix {
    if (!this.unembeddingView) {
      const head = this.lmHead();
      const w = this.projectionWeight(head, 'the LM head');
      if (w.rows !== this.dModel || w.cols !== this.vocabSize) {
        throw new ModelFormatError(`the LM head weight is [${w.rows}, ${w.cols}], expected [${this.dModel}, ${this.vocabSize}]`);
      }
      this.unembeddingView = w;
    }
    return this.unembeddingView;
  }

  /** The final layer norm (ln_f), which the LM head reads. */
  finalLayerNorm(): LayerNormWeights {
    if (!this.finalNorm) this.finalNorm = this.layerNormBefore(this.lmHead().dataInput, 'the final layer norm (ln_f)');
    return this.finalNorm;
  }

  private lmHead(): Projection {
    const output = this.info.logitsOutput;
    const found = output ? headProjection(this.index, output) : undefined;
    if (!found) throw new ModelFormatError('no LM head found: no output of this model looks like next-token logits');
    const { node } = found;
    const data = node.input?.[0];
    if (!data || isConstantTensor(this.index, data)) throw new ModelFormatError('the LM head does not read the residual stream');
    const shape = found.shape;
    const transB = node.opType === 'Gemm' && attrInt(node, 'transB', 0) === 1;
    return { node, dataInput: data, k: transB ? shape[1] : shape[0], n: transB ? shape[0] : shape[1] };
  }

  /** The logical [k, n] weight of a projection node, dequantised where it is integer. */
  private projectionWeight(projection: Projection, what: string): WeightMatrix {
    const { node } = projection;
    const weight = node.input?.[1] ?? '';
    switch (node.opType) {
      case 'MatMul':
        return this.reader.matrix(weight, what);
      case 'Gemm': {
        const stored = this.reader.matrix(weight, what);
        const w = attrInt(node, 'transB', 0) ? transposed(stored) : stored;
        const alpha = getAttribute(node, 'alpha')?.f ?? 1;
        return alpha === 1 ? w : scaled(w, alpha);
      }
      case 'MatMulInteger': {
        const stored = this.reader.matrix(weight, what);
        const zeroPoint = node.input?.[3] ? this.reader.vector(node.input[3], `${what} zero point`) : undefined;
        return dequantized(stored, integerProjectionScale(this.index, this.reader, node, what), zeroPoint, 'columns');
      }
      default:
        throw new ModelFormatError(`${what} is a ${node.opType} node, whose weights cannot be read (supported: MatMul, Gemm, MatMulInteger)`);
    }
  }

  /** The layer norm whose output `input` is (looking through reshapes, casts and quantisation). */
  private layerNormBefore(input: string, what: string): LayerNormWeights {
    const normed = activationBehind(this.index, input);
    const producer = this.index.producers.get(normed);
    const node = producer?.node;
    const d = this.dModel;
    const vec = (name: string | undefined, label: string, fallback: number): Float64Array => {
      if (!name) return new Float64Array(d).fill(fallback);
      const v = this.reader.vector(name, `${what} ${label}`);
      return v.length === 1 ? new Float64Array(d).fill(v[0]) : v;
    };
    if (node && (node.opType === 'LayerNormalization' || node.opType === 'SkipLayerNormalization') && producer!.outputIndex === 0) {
      const skip = node.opType === 'SkipLayerNormalization';
      const epsilon = getAttribute(node, 'epsilon')?.f ?? 1e-5;
      return { gamma: vec(node.input?.[skip ? 2 : 1], 'gain', 1), beta: vec(node.input?.[skip ? 3 : 2], 'bias', 0), epsilon };
    }
    const decomposed = this.decomposedLayerNorm(normed);
    if (!decomposed) throw new ModelFormatError(`cannot find ${what}: the tensor it should produce is not a layer norm's output`);
    return {
      gamma: vec(decomposed.gamma, 'gain', 1),
      beta: vec(decomposed.beta, 'bias', 0),
      epsilon: decomposed.epsilon ?? this.options.layerNormEps ?? 1e-5,
    };
  }

  /**
   * A layer norm written out as ops: [Add(·, β)] of Mul(·, γ) of the normalised input, which is
   * built from ReduceMean, Sub, Sqrt (of the variance plus ε) and Div or Mul.
   */
  private decomposedLayerNorm(output: string): { gamma?: string; beta?: string; epsilon?: number } | undefined {
    const index = this.index;
    const isVector = (name: string) => isConstantTensor(index, name) && this.reader.size(name) === this.dModel;
    const constantSide = (node: NodeProto): { constant: string; other: string } | undefined => {
      const [a, b] = node.input ?? [];
      if (a && b && isVector(b) && !isConstantTensor(index, a)) return { constant: b, other: a };
      if (a && b && isVector(a) && !isConstantTensor(index, b)) return { constant: a, other: b };
      return undefined;
    };
    let node = index.producers.get(output)?.node;
    let beta: string | undefined;
    if (node?.opType === 'Add') {
      const side = constantSide(node);
      if (!side) return undefined;
      beta = side.constant;
      node = index.producers.get(side.other)?.node;
    }
    if (node?.opType !== 'Mul') return undefined;
    const side = constantSide(node);
    if (!side) return undefined;
    // The normalised input: Div(centred, std) or Mul(centred, 1/std), with a ReduceMean behind.
    const normalised = index.producers.get(side.other)?.node;
    if (!normalised || (normalised.opType !== 'Div' && normalised.opType !== 'Mul')) return undefined;
    let epsilon: number | undefined;
    let sawMean = false;
    const stack = [...(normalised.input ?? [])];
    const seen = new Set<string>();
    while (stack.length > 0 && seen.size < 32) {
      const name = stack.pop()!;
      if (!name || seen.has(name)) continue;
      seen.add(name);
      const p = index.producers.get(name)?.node;
      if (!p) continue;
      if (p.opType === 'ReduceMean') sawMean = true;
      if (p.opType === 'Add' && epsilon === undefined) {
        const scalar = (p.input ?? []).find((i) => isConstantTensor(index, i) && this.reader.size(i) === 1);
        const sqrt = (index.consumers.get(p.output?.[0] ?? '') ?? []).some((c) => c.opType === 'Sqrt');
        if (scalar && sqrt) epsilon = this.reader.vector(scalar, 'layer norm epsilon')[0];
      }
      if (['Sub', 'Sqrt', 'Add', 'Pow', 'Mul', 'Div', 'Reciprocal', 'ReduceMean', 'Cast'].includes(p.opType ?? '')) {
        for (const i of p.input ?? []) if (!isConstantTensor(index, i)) stack.push(i);
      }
    }
    if (!sawMean) return undefined;
    return { gamma: side.constant, ...(beta ? { beta } : {}), ...(epsilon !== undefined ? { epsilon } : {}) };
  }
}

/**
 * The dequantisation scale of a MatMulInteger's weight: the constant factors of the Mul chain
 * that follows it (quantize_dynamic writes Cast → Mul(·, x_scale · w_scale)), one number or one
 * per output column.
 */
function integerProjectionScale(index: GraphIndex, reader: TensorReader, node: NodeProto, what: string): Float64Array {
  let scale: Float64Array | undefined;
  const multiply = (v: Float64Array) => {
    if (!scale) scale = Float64Array.from(v);
    else if (v.length === 1) scale = scale.map((s) => s * v[0]);
    else if (scale.length === 1) scale = v.map((s) => s * scale![0]);
    else scale = scale.map((s, i) => s * v[i]);
  };
  const constantFactors = (name: string, depth: number): boolean => {
    if (isConstantTensor(index, name)) {
      multiply(reader.vector(name, `${what} scale`));
      return true;
    }
    const p = index.producers.get(name)?.node;
    if (depth < 3 && p?.opType === 'Mul') {
      let found = false;
      for (const i of p.input ?? []) if (i) found = constantFactors(i, depth + 1) || found;
      return found;
    }
    return false;
  };
  let current = node.output?.[0] ?? '';
  for (let steps = 0; steps < 8; steps++) {
    const readers = index.consumers.get(current) ?? [];
    if (readers.length !== 1) break;
    const next = readers[0];
    if (next.opType === 'Cast') {
      current = next.output?.[0] ?? '';
      continue;
    }
    if (next.opType !== 'Mul') break;
    const other = (next.input ?? []).find((i) => i !== current);
    if (other) constantFactors(other, 0);
    current = next.output?.[0] ?? '';
  }
  if (!scale) throw new ModelFormatError(`${what}: no dequantisation scale found after its MatMulInteger`);
  return scale;
}

// ---------------------------------------------------------------------------------------------
// Matrix views

function transposed(m: WeightMatrix): WeightMatrix {
  return {
    rows: m.cols,
    cols: m.rows,
    rowMajor: !m.rowMajor,
    get: (i, j) => m.get(j, i),
    readRow: (i, out) => m.readColumn(i, out),
    readColumn: (j, out) => m.readRow(j, out),
  };
}

function scaled(m: WeightMatrix, factor: number): WeightMatrix {
  return {
    rows: m.rows,
    cols: m.cols,
    rowMajor: m.rowMajor,
    get: (i, j) => m.get(i, j) * factor,
    readRow: (i, out) => {
      m.readRow(i, out);
      for (let j = 0; j < m.cols; j++) out[j] *= factor;
    },
    readColumn: (j, out) => {
      m.readColumn(j, out);
      for (let i = 0; i < m.rows; i++) out[i] *= factor;
    },
  };
}

/**
 * (q − zero point) · scale, with the scale and zero point one number or one per row / column
 * (`axis`, the axis they vary along when they are vectors).
 */
function dequantized(m: WeightMatrix, scale: Float64Array, zeroPoint: Float64Array | undefined, axis: 'rows' | 'columns'): WeightMatrix {
  const along = axis === 'rows' ? m.rows : m.cols;
  for (const [name, v] of [['scale', scale], ['zero point', zeroPoint]] as const) {
    if (v && v.length !== 1 && v.length !== along) throw new ModelFormatError(`a quantisation ${name} has ${v.length} values for ${along} ${axis}`);
  }
  const pick = (v: Float64Array | undefined, i: number, j: number) => (!v ? 0 : v.length === 1 ? v[0] : v[axis === 'rows' ? i : j]);
  return {
    rows: m.rows,
    cols: m.cols,
    rowMajor: m.rowMajor,
    get: (i, j) => (m.get(i, j) - pick(zeroPoint, i, j)) * pick(scale, i, j),
    readRow: (i, out) => {
      m.readRow(i, out);
      for (let j = 0; j < m.cols; j++) out[j] = (out[j] - pick(zeroPoint, i, j)) * pick(scale, i, j);
    },
    readColumn: (j, out) => {
      m.readColumn(j, out);
      for (let i = 0; i < m.rows; i++) out[i] = (out[i] - pick(zeroPoint, i, j)) * pick(scale, i, j);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Reading tensors

/** Flat element access to one stored tensor. */
interface StoredElements {
  count: number;
  dims: number[];
  get(k: number): number;
}

/** Reads constant tensors of one graph: initializers and Constant nodes, through Identity/Cast/Transpose/DequantizeLinear. */
class TensorReader {
  constructor(
    private readonly index: GraphIndex,
    private readonly externalData: readonly { path: string; data: Uint8Array }[],
  ) {}

  /** The stored tensor behind `name` if it is one directly (no ops in between). */
  private tensorOf(name: string): TensorProto | undefined {
    return this.index.initializers.get(name) ?? this.index.constants.get(name);
  }

  /** Element type of a constant tensor, looking through Identity and Transpose. */
  elemType(name: string): number | undefined {
    for (let depth = 0; depth < 16; depth++) {
      const t = this.tensorOf(name);
      if (t) return t.dataType ?? undefined;
      const p = this.index.producers.get(name)?.node;
      if (!p || !['Identity', 'Transpose'].includes(p.opType ?? '')) return undefined;
      name = p.input?.[0] ?? '';
    }
    return undefined;
  }

  /** Number of elements of a constant tensor, or undefined when it is not one this reader follows. */
  size(name: string): number | undefined {
    try {
      return this.elements(name, name).count;
    } catch {
      return undefined;
    }
  }

  /** A constant tensor as float64 values (small tensors: gains, biases, scales). */
  vector(name: string, what: string): Float64Array {
    const e = this.elements(name, what);
    const out = new Float64Array(e.count);
    for (let k = 0; k < e.count; k++) out[k] = e.get(k);
    return out;
  }

  /** A constant 2-D tensor as a matrix view. */
  matrix(name: string, what: string, depth = 0): WeightMatrix {
    if (depth > 16) throw new ModelFormatError(`${what}: the weight is built by too many ops to follow`);
    const tensor = this.tensorOf(name);
    if (tensor) {
      const e = storedElements(tensor, this.externalData, what);
      if (e.dims.length !== 2) throw new ModelFormatError(`${what}: expected a 2-D weight, got dims [${e.dims.join(', ')}]`);
      return rowMajorMatrix(e);
    }
    const p = this.index.producers.get(name);
    const node = p?.node;
    if (!node || p!.outputIndex !== 0) throw new ModelFormatError(`${what}: "${name}" is not a weight stored in the file`);
    const inner = () => this.matrix(node.input?.[0] ?? '', what, depth + 1);
    switch (node.opType) {
      case 'Identity':
        return inner();
      case 'Cast':
        // Casts between float types (e.g. float16 weights cast to float32) keep the values.
        return inner();
      case 'Transpose': {
        const perm = attrInts(node, 'perm');
        if (perm && !(perm[0] === 1 && perm[1] === 0)) throw new ModelFormatError(`${what}: unexpected transpose ${perm.join(',')}`);
        return transposed(inner());
      }
      case 'DequantizeLinear': {
        const q = inner();
        const scale = this.vector(node.input?.[1] ?? '', `${what} scale`);
        const zero = node.input?.[2] ? this.vector(node.input[2], `${what} zero point`) : undefined;
        const axis = attrInt(node, 'axis', 1);
        return dequantized(q, scale, zero, axis === 0 || axis === -2 ? 'rows' : 'columns');
      }
      default:
        throw new ModelFormatError(`${what}: the weight comes out of a ${node.opType} node, which this reader does not follow`);
    }
  }

  private elements(name: string, what: string, depth = 0): StoredElements {
    if (depth > 16) throw new ModelFormatError(`${what}: too many ops to follow`);
    const tensor = this.tensorOf(name);
    if (tensor) return storedElements(tensor, this.externalData, what);
    const node = this.index.producers.get(name)?.node;
    if (node && (node.opType === 'Identity' || node.opType === 'Cast')) return this.elements(node.input?.[0] ?? '', what, depth + 1);
    throw new ModelFormatError(`${what}: "${name}" is not a constant stored in the file`);
  }
}

function rowMajorMatrix(e: StoredElements): WeightMatrix {
  const [rows, cols] = e.dims;
  return {
    rows,
    cols,
    rowMajor: true,
    get: (i, j) => e.get(i * cols + j),
    readRow: (i, out) => {
      const base = i * cols;
      for (let j = 0; j < cols; j++) out[j] = e.get(base + j);
    },
    readColumn: (j, out) => {
      for (let i = 0; i < rows; i++) out[i] = e.get(i * cols + j);
    },
  };
}

/** Bytes of a tensor stored outside the model file (external data). */
function externalBytes(tensor: TensorProto, files: readonly { path: string; data: Uint8Array }[], what: string): Uint8Array {
  const entry = (key: string) => tensor.externalData?.find((e) => e.key === key)?.value;
  const location = entry('location');
  const file = files.find((f) => f.path === location);
  if (!file) throw new ModelFormatError(`${what}: its weights are in ${location ?? 'an external file'}, which was not supplied`);
  const offset = Number(entry('offset') ?? 0);
  const length = entry('length') !== undefined ? Number(entry('length')) : file.data.byteLength - offset;
  if (!(offset >= 0 && offset + length <= file.data.byteLength)) throw new ModelFormatError(`${what}: its bytes lie outside ${location}`);
  return file.data.subarray(offset, offset + length);
}

/** Element access to a TensorProto's values (raw bytes, typed fields or external data). */
function storedElements(tensor: TensorProto, files: readonly { path: string; data: Uint8Array }[], what: string): StoredElements {
  const dims = (tensor.dims ?? []).map(int64ToNumber);
  const count = dims.reduce((a, b) => a * b, 1);
  const type = tensor.dataType ?? 0;
  const external = tensor.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL;
  const raw = external ? externalBytes(tensor, files, what) : tensor.rawData && tensor.rawData.length > 0 ? tensor.rawData : undefined;
  const width: Record<number, number> = { [DataType.FLOAT]: 4, [DataType.FLOAT16]: 2, [DataType.INT8]: 1, [DataType.UINT8]: 1, [DataType.INT32]: 4, [DataType.INT64]: 8, 11: 8 };
  if (!(type in width)) throw new ModelFormatError(`${what}: weights of type ${dataTypeName(type)} are not supported`);
  if (raw) {
    if (raw.byteLength < count * width[type]) throw new ModelFormatError(`${what}: ${raw.byteLength} bytes for ${count} ${dataTypeName(type)} values`);
    if (type === DataType.FLOAT && raw.byteOffset % 4 === 0) {
      const values = new Float32Array(raw.buffer, raw.byteOffset, count);
      return { count, dims, get: (k) => values[k] };
    }
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const get: Record<number, (k: number) => number> = {
      [DataType.FLOAT]: (k) => view.getFloat32(4 * k, true),
      [DataType.FLOAT16]: (k) => halfValue(view.getUint16(2 * k, true)),
      [DataType.INT8]: (k) => view.getInt8(k),
      [DataType.UINT8]: (k) => view.getUint8(k),
      [DataType.INT32]: (k) => view.getInt32(4 * k, true),
      [DataType.INT64]: (k) => Number(view.getBigInt64(8 * k, true)),
      11: (k) => view.getFloat64(8 * k, true),
    };
    return { count, dims, get: get[type] };
  }
  // Typed fields: float in floatData; float16, int8, uint8 and int32 in int32Data; int64 in int64Data.
  const field: ArrayLike<unknown> =
    type === DataType.FLOAT ? (tensor.floatData ?? []) : type === DataType.INT64 ? (tensor.int64Data ?? []) : type === 11 ? (tensor.doubleData ?? []) : (tensor.int32Data ?? []);
  if (field.length < count) throw new ModelFormatError(`${what}: ${field.length} stored values for ${count}`);
  if (type === DataType.FLOAT16) return { count, dims, get: (k) => halfValue(field[k] as number) };
  if (type === DataType.INT64) return { count, dims, get: (k) => int64ToNumber(field[k]) };
  return { count, dims, get: (k) => field[k] as number };
}
