/**
 * Editable MLP activations (instrument.ts `edits`, neuron-edits.ts, the capturer's `edits`):
 * an edit that changes nothing gives the plain model's logits and activations bit for bit, in every
 * exporter style and runtime; real edits (zero, scale, per-token values) match an independent
 * forward pass with the same edit; bad edits are refused with clear messages.
 */
import * as ortNode from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureModels } from '../scripts/gen-models.ts';
import { ActivationCapturer, type BatchActivations } from '../src/lib/model/capture.ts';
import { dirSource } from '../src/lib/model/dir-source.node.ts';
import { mlpEditInputNames, mlpHookName } from '../src/lib/model/gpt2-types.ts';
import { instrumentModel, type TensorSpec } from '../src/lib/model/instrument.ts';
import { loadModel } from '../src/lib/model/load-model.ts';
import { ModelFormatError } from '../src/lib/model/model-errors.ts';
import { checkNeuronEdits, layerEditTensors, type NeuronEdit } from '../src/lib/model/neuron-edits.ts';
import { loadNodeRuntime } from '../src/lib/model/ort-runtime.node.ts';
import { OutOfRangeError } from '../src/lib/model/text-errors.ts';
import { buildMiniGpt2, halfArrayToFloat32, referenceForward, roundToHalf, type MiniGraphOptions } from './helpers/mini-graphs.ts';

ortWeb.env.wasm.numThreads = 1;
type Ort = typeof ortNode;
const RUNTIMES: { name: string; ort: Ort }[] = [
  { name: 'onnxruntime-node', ort: ortNode },
  { name: 'onnxruntime-web (wasm)', ort: ortWeb as unknown as Ort },
];

const SIZE = { nLayer: 3, d: 8, dMlp: 20, vocab: 13 } as const;
const IDS = [
  [1, 5, 7, 2],
  [3, 3, 12, 0],
];
const BATCH = IDS.length;
const SEQ = IDS[0].length;

const STYLES: { label: string; options: Partial<MiniGraphOptions>; tolerance: number }[] = [
  { label: 'MatMul + Add', options: { projection: 'matmul' }, tolerance: 1e-4 },
  { label: 'Conv1D as Reshape → Gemm → Reshape', options: { projection: 'conv1d-gemm' }, tolerance: 1e-4 },
  { label: 'Gemm with transB=1', options: { projection: 'gemm-transb' }, tolerance: 1e-4 },
  { label: 'int8 DynamicQuantizeLinear → MatMulInteger', options: { projection: 'int8' }, tolerance: 1e-4 },
  { label: 'Constant-node and transposed weights', options: { projection: 'constant-transposed' }, tolerance: 1e-4 },
  { label: 'FastGelu op', options: { gelu: 'fastgelu' }, tolerance: 1e-4 },
  { label: 'float16', options: { float16: true }, tolerance: 5e-3 },
  { label: 'float16 Conv1D Gemm', options: { float16: true, projection: 'conv1d-gemm' }, tolerance: 5e-3 },
  { label: 'decoder with past', options: { past: 'inputs' }, tolerance: 1e-4 },
  { label: 'If-merged decoder', options: { past: 'merged' }, tolerance: 1e-4 },
];

/** Edits tried on every style: zero one neuron, scale another, set a third per token. */
const PER_TOKEN = Float32Array.from({ length: BATCH * SEQ }, (_, i) => (i % 3 === 1 ? NaN : 0.25 * i - 1));
const EDITS: NeuronEdit[] = [
  { layer: 0, neuron: 4, value: 0 },
  { layer: 1, neuron: 7, scale: -2.5 },
  { layer: 2, neuron: 11, value: PER_TOKEN },
  { layer: 2, neuron: 12, scale: 3, value: 1.5 },
];

/** Applies EDITS to [batch·seq, dMlp] activations like the graph does (float16 graphs round the set values). */
function applyEdits(edits: readonly NeuronEdit[], float16: boolean) {
  return (layer: number, h: Float32Array | Float64Array) => {
    const rows = h.length / SIZE.dMlp;
    for (const e of edits.filter((x) => x.layer === layer)) {
      for (let r = 0; r < rows; r++) {
        const k = r * SIZE.dMlp + e.neuron;
        const v = e.value === undefined ? NaN : typeof e.value === 'number' ? e.value : e.value[r];
        if (!Number.isNaN(v)) h[k] = float16 ? roundToHalf(Float32Array.of(v))[0] : v;
        else if (e.scale !== undefined) h[k] *= e.scale;
      }
    }
  };
}

function feeds(ort: Ort, inputs: TensorSpec[], edits: readonly NeuronEdit[], dMlp = SIZE.dMlp): Record<string, ortNode.Tensor> {
  const out: Record<string, ortNode.Tensor> = {};
  const shape = { nLayer: SIZE.nLayer, dMlp, batch: BATCH, seq: SEQ };
  for (const spec of inputs) {
    const edit = /^blocks\.(\d+)\.mlp\.hook_post\.edit_(scale|mask|value)$/.exec(spec.name);
    if (spec.name === 'input_ids') out[spec.name] = new ort.Tensor('int64', BigInt64Array.from(IDS.flat(), BigInt), [BATCH, SEQ]);
    else if (edit) {
      const t = layerEditTensors(edits, Number(edit[1]), shape)[edit[2] as 'scale' | 'mask' | 'value'];
      out[spec.name] = edit[2] === 'mask' ? new ort.Tensor('bool', t.data as Uint8Array, t.dims) : new ort.Tensor('float32', t.data as Float32Array, t.dims);
    } else if (spec.dims.length === 4) {
      const empty = spec.dtype === 'float16' ? new Uint16Array(0) : new Float32Array(0);
      out[spec.name] = new ort.Tensor(spec.dtype as 'float32', empty, [BATCH, Number(spec.dims[1]), 0, Number(spec.dims[3])]);
    } else throw new Error(`unexpected input ${spec.name}`);
  }
  return out;
}

async function run(ort: Ort, bytes: Uint8Array, inputs: TensorSpec[], edits: readonly NeuronEdit[] = []) {
  const session = await ort.InferenceSession.create(bytes);
  try {
    return await session.run(feeds(ort, inputs, edits));
  } finally {
    await session.release();
  }
}

function toFloat32(t: ortNode.Tensor): Float32Array {
  return t.type === 'float16' ? halfArrayToFloat32(t.data as Uint16Array) : (t.data as Float32Array);
}

function bytesOf(t: ortNode.Tensor): Uint8Array {
  const d = t.data as Float32Array;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('editable graphs', () => {
  it('add three inputs per editable layer, and only the layers asked for', () => {
    const m = buildMiniGpt2({ ...SIZE });
    const all = instrumentModel(m.bytes, { logits: true, edits: true });
    const editInputs = all.inputs.filter((i) => i.name.includes('.edit_'));
    expect(editInputs).toEqual(
      [0, 1, 2].flatMap((l) => {
        const n = mlpEditInputNames(l);
        return [
          { name: n.scale, dtype: 'float32', dims: ['?', '?', SIZE.dMlp] },
          { name: n.mask, dtype: 'bool', dims: ['?', '?', SIZE.dMlp] },
          { name: n.value, dtype: 'float32', dims: ['?', '?', SIZE.dMlp] },
        ];
      }),
    );
    expect(instrumentModel(m.bytes, { logits: true, edits: [1] }).inputs.map((i) => i.name).filter((n) => n.includes('.edit_'))).toEqual(
      Object.values(mlpEditInputNames(1)),
    );
    // Edits of layers after the last requested output are pruned with their inputs.
    const early = instrumentModel(m.bytes, { layers: [0], edits: true });
    expect(early.inputs.map((i) => i.name)).toEqual(['input_ids', ...Object.values(mlpEditInputNames(0))]);
    expect(() => instrumentModel(m.bytes, { edits: [3] })).toThrow(/layer 3 does not exist/);
  });

  it('refuses to add edit inputs twice', () => {
    const once = instrumentModel(buildMiniGpt2({ ...SIZE }).bytes, { logits: true, edits: true });
    expect(() => instrumentModel(once.bytes, { logits: true, edits: true, dModel: SIZE.d })).toThrow(ModelFormatError);
    expect(() => instrumentModel(once.bytes, { logits: true, edits: true, dModel: SIZE.d })).toThrow(/already has a tensor named "blocks\.0\.mlp\.hook_post\.edit_scale"/);
  });

  describe.each(RUNTIMES)('in $name', ({ ort }) => {
    it.each(STYLES)('an edit that changes nothing is bit-identical to the plain model: $label', async ({ options }) => {
      const m = buildMiniGpt2({ ...SIZE, ...options });
      const plain = instrumentModel(m.bytes, { logits: true });
      const editable = instrumentModel(m.bytes, { logits: true, edits: true });
      const a = await run(ort, plain.bytes, plain.inputs);
      // No edit, scale 1 given explicitly, and a per-token value that is NaN (unset) everywhere.
      const unchanged: NeuronEdit[][] = [[], [{ layer: 1, neuron: 3, scale: 1 }, { layer: 2, neuron: 0, value: new Float32Array(BATCH * SEQ).fill(NaN) }]];
      for (const edits of unchanged) {
        const b = await run(ort, editable.bytes, editable.inputs, edits);
        for (const name of plain.outputs) expect(bytesOf(b[name]), name).toEqual(bytesOf(a[name]));
      }
    });
  });

  it.each(STYLES)('zeroing, scaling and per-token values match the reference forward pass: $label', async ({ options, tolerance }) => {
    const m = buildMiniGpt2({ ...SIZE, ...options });
    const editable = instrumentModel(m.bytes, { logits: true, edits: true });
    const out = await run(ortNode, editable.bytes, editable.inputs, EDITS);
    const float16 = options.float16 === true;
    const ref = referenceForward(m, IDS, undefined, applyEdits(EDITS, float16));
    const plainRef = referenceForward(m, IDS);
    for (let l = 0; l < SIZE.nLayer; l++) expect(maxAbsDiff(toFloat32(out[mlpHookName(l)]), ref.hooks[l])).toBeLessThan(tolerance);
    const logitError = maxAbsDiff(toFloat32(out.logits), ref.logits);
    expect(logitError).toBeLessThan(tolerance * 10);
    // The edit matters: the edited and unedited logits differ far beyond the error.
    expect(maxAbsDiff(ref.logits, plainRef.logits)).toBeGreaterThan(Math.max(0.1, 20 * logitError));
    // Set values come out exactly (as float32, or float16 in a float16 graph).
    const hook2 = toFloat32(out[mlpHookName(2)]);
    for (let r = 0; r < BATCH * SEQ; r++) {
      expect(hook2[r * SIZE.dMlp + 12]).toBe(1.5);
      if (!Number.isNaN(PER_TOKEN[r])) expect(hook2[r * SIZE.dMlp + 11]).toBe(float16 ? roundToHalf(PER_TOKEN.subarray(r, r + 1))[0] : PER_TOKEN[r]);
    }
  });

  it('edits a replaced GELU too', async () => {
    const m = buildMiniGpt2({ ...SIZE });
    const inst = instrumentModel(m.bytes, { layers: [1], gelu: 'sigmoid', edits: true });
    const plain = instrumentModel(m.bytes, { layers: [1], gelu: 'sigmoid' });
    const edited = toFloat32((await run(ortNode, inst.bytes, inst.inputs, [{ layer: 1, neuron: 2, value: 7 }]))[mlpHookName(1)]);
    const original = toFloat32((await run(ortNode, plain.bytes, plain.inputs))[mlpHookName(1)]);
    for (let i = 0; i < edited.length; i++) expect(edited[i]).toBe(i % SIZE.dMlp === 2 ? 7 : original[i]);
  });
});

describe('neuron edit tensors', () => {
  const shape = { nLayer: 2, dMlp: 4, batch: 2, seq: 3 };

  it('are [1, 1, dMlp] for whole-text edits and [batch, seq, dMlp] for per-token values', () => {
    const t = layerEditTensors([{ layer: 1, neuron: 2, scale: 0.5 }, { layer: 1, neuron: 0, value: -1 }, { layer: 0, neuron: 1, value: 9 }], 1, shape);
    expect(t.scale).toEqual({ data: Float32Array.of(1, 1, 0.5, 1), dims: [1, 1, 4] });
    expect(t.mask).toEqual({ data: Uint8Array.of(1, 0, 0, 0), dims: [1, 1, 4] });
    expect(t.value).toEqual({ data: Float32Array.of(-1, 0, 0, 0), dims: [1, 1, 4] });
    const perToken = layerEditTensors([{ layer: 0, neuron: 3, value: [1, NaN, 3, 4, 5, NaN] }], 0, shape);
    expect(perToken.mask.dims).toEqual([2, 3, 4]);
    expect(Array.from(perToken.mask.data.filter((_, i) => i % 4 === 3))).toEqual([1, 0, 1, 1, 1, 0]);
    expect(Array.from(perToken.value.data.filter((_, i) => i % 4 === 3))).toEqual([1, 0, 3, 4, 5, 0]);
    const none = layerEditTensors([], 0, shape);
    expect(Array.from(none.scale.data)).toEqual([1, 1, 1, 1]);
    expect(Array.from(none.mask.data)).toEqual([0, 0, 0, 0]);
  });

  it('refuses neurons outside the model, repeated neurons, bad numbers and wrong lengths', () => {
    const bad: [NeuronEdit[], RegExp][] = [
      [[{ layer: 2, neuron: 0 }], /layer 2 is out of range: this model has layers 0-1/],
      [[{ layer: 0, neuron: 4 }], /neuron 0:4 is out of range: each layer has neurons 0-3/],
      [[{ layer: 0, neuron: -1 }], /neuron 0:-1 is out of range/],
      [[{ layer: 0, neuron: 1, scale: 2 }, { layer: 0, neuron: 1, value: 0 }], /neuron 0:1 is edited twice/],
      [[{ layer: 0, neuron: 1, scale: Infinity }], /scale must be a finite number/],
      [[{ layer: 0, neuron: 1, value: NaN }], /value must be a finite number/],
      [[{ layer: 0, neuron: 1, value: [1, 2] }], /2 values for 2 × 3 = 6 tokens/],
      [[{ layer: 0, neuron: 1, value: [1, 2, 3, 4, 5, Infinity] }], /value\[5\] must be a finite number/],
    ];
    for (const [edits, message] of bad) expect(() => checkNeuronEdits(edits, shape)).toThrow(message);
    expect(() => checkNeuronEdits([{ layer: 0, neuron: 4 }], shape)).toThrow(OutOfRangeError);
    expect(() => checkNeuronEdits([{ layer: 1, neuron: 3, scale: -2, value: [1, NaN, 3, 4, 5, 6] }], shape)).not.toThrow();
  });
});

describe('the capturer with edits, on the generated models', () => {
  ensureModels({ log: () => {} });
  const MODELS = join(import.meta.dirname, '../public/models');
  const FILES = [
    ['toy-planted', 'onnx/model.onnx'],
    ['toy-planted', 'onnx/model_quantized.onnx'],
    ['tiny-random', 'onnx/model.onnx'],
    ['tiny-random', 'onnx/decoder_model.onnx'],
    ['tiny-random', 'onnx/model_quantized.onnx'],
    ['tiny-random', 'onnx/model_fp16.onnx'],
    ['tiny-random', 'onnx/decoder_with_past_model.onnx'],
  ] as const;
  const capturers: ActivationCapturer[] = [];
  afterAll(async () => {
    for (const c of capturers) await c.dispose();
  });
  const rows = [
    [464, 3797, 3332, 319, 262, 2603, 13],
    [1, 2, 366, 40, 1101, 257, 13],
  ];
  /** Values whose bits differ (Object.is: also tells 0 from −0 and compares NaNs by value). */
  const differing = (a: Float32Array, b: Float32Array) => {
    expect(b.length).toBe(a.length);
    let n = 0;
    for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) n++;
    return n;
  };
  const same = (a: BatchActivations, b: BatchActivations) => {
    expect(differing(a.logits!, b.logits!)).toBe(0);
    for (const [layer, data] of a.layers) expect(differing(data, b.layers.get(layer)!)).toBe(0);
  };

  it.each(FILES.flatMap(([name, file]) => (['node', 'wasm'] as const).map((backend) => ({ name, file, backend }))))(
    'scale 1 is bit-identical to no edit: $name $file ($backend)',
    async ({ name, file, backend }) => {
      const model = await loadModel(await dirSource(join(MODELS, name)), { onnxPath: file });
      const capturer = new ActivationCapturer(model, await loadNodeRuntime(backend, 1));
      capturers.push(capturer);
      const plain = await capturer.runTokens(rows, { logits: true });
      const none = await capturer.runTokens(rows, { logits: true, edits: [] });
      const scaleOne = await capturer.runTokens(rows, { logits: true, edits: [{ layer: 0, neuron: 1, scale: 1 }, { layer: 1, neuron: 5, scale: 1 }] });
      same(plain, none);
      same(plain, scaleOne);
      // A real edit does change the outputs.
      const edited = await capturer.runTokens(rows, { logits: true, edits: [{ layer: 0, neuron: 1, scale: 30 }] });
      expect(differing(plain.logits!, edited.logits!)).toBeGreaterThan(0);
      expect(edited.layers.get(0)![1]).toBeCloseTo(plain.layers.get(0)![1] * 30, 3);
      await capturer.dispose();
    },
    60_000,
  );

  it('refuses an edit the requested outputs cannot see', async () => {
    const model = await loadModel(await dirSource(join(MODELS, 'tiny-random')));
    const capturer = new ActivationCapturer(model, await loadNodeRuntime('node'));
    capturers.push(capturer);
    await expect(capturer.runTokens(rows, { layers: [0], edits: [{ layer: 1, neuron: 0, value: 0 }] })).rejects.toThrow(
      /an edit of neuron 1:0 cannot change the outputs asked for \(layers up to 0\)/,
    );
    await expect(capturer.runTokens(rows, { logits: true, edits: [{ layer: 0, neuron: 500, value: 0 }] })).rejects.toThrow(OutOfRangeError);
    // Editing the last requested layer itself is allowed: its activations come out edited.
    const out = await capturer.runTokens(rows, { layers: [0], edits: [{ layer: 0, neuron: 9, value: 2 }] });
    expect(out.layers.get(0)![9]).toBe(2);
  });
});
