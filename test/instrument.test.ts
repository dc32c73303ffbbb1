/**
 * Structural ONNX instrumentation: hand-built GPT-2-like graphs in several exporter styles are
 * instrumented, run in onnxruntime-node and onnxruntime-web (WASM), and the exposed MLP
 * activations are compared with a plain-JS forward pass over the same weights.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ortNode from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import { afterAll, describe, expect, it } from 'vitest';
import { findMlpHooks } from '../src/lib/model/find-mlp-hooks.ts';
import { mlpHookName } from '../src/lib/model/gpt2-types.ts';
import { inspectModel, instrumentModel, type InstrumentedModel, type TensorSpec } from '../src/lib/model/instrument.ts';
import { LayerOutOfRangeError, NoMlpFoundError, NotOnnxError } from '../src/lib/model/model-errors.ts';
import { decodeModel, encodeModel, indexGraph, int64ToNumber, onnx } from '../src/lib/model/onnx-graph.ts';
import {
  buildDeepChainModel,
  buildMiniGpt2,
  buildNoMlpModel,
  halfArrayToFloat32,
  referenceForward,
  rng,
  type MiniGraphOptions,
  type MiniModel,
} from './helpers/mini-graphs.ts';

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

const modelCache = new Map<string, MiniModel>();
function mini(options: Partial<MiniGraphOptions> = {}): MiniModel {
  const key = JSON.stringify(options);
  let m = modelCache.get(key);
  if (!m) modelCache.set(key, (m = buildMiniGpt2({ ...SIZE, ...options })));
  return m;
}

/** Inputs for a run: token ids (or embeddings), and zero-length past tensors where still needed. */
function feedsFor(ort: Ort, inputs: TensorSpec[], embeds?: Float32Array): Record<string, ortNode.Tensor> {
  const feeds: Record<string, ortNode.Tensor> = {};
  const batch = IDS.length;
  const seq = IDS[0].length;
  for (const spec of inputs) {
    if (spec.name === 'input_ids') {
      feeds[spec.name] = new ort.Tensor('int64', BigInt64Array.from(IDS.flat(), BigInt), [batch, seq]);
    } else if (spec.name === 'inputs_embeds') {
      feeds[spec.name] = new ort.Tensor('float32', embeds!, [batch, seq, SIZE.d]);
    } else if (spec.dims.length === 4) {
      const [, heads, , size] = spec.dims;
      const empty = spec.dtype === 'float16' ? new Uint16Array(0) : new Float32Array(0);
      feeds[spec.name] = new ort.Tensor(spec.dtype as 'float32', empty, [batch, Number(heads), 0, Number(size)]);
    } else {
      throw new Error(`unexpected input ${spec.name}`);
    }
  }
  return feeds;
}

function toFloat32(t: ortNode.Tensor): Float32Array {
  if (t.type === 'float16') {
    return t.data instanceof Uint16Array ? halfArrayToFloat32(t.data) : Float32Array.from(t.data as ArrayLike<number>);
  }
  expect(t.type).toBe('float32');
  return t.data as Float32Array;
}

async function runModel(ort: Ort, bytes: Uint8Array, inputs: TensorSpec[], embeds?: Float32Array) {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const results = await session.run(feedsFor(ort, inputs, embeds));
    return { results, outputNames: [...session.outputNames] };
  } finally {
    await session.release();
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function initializerShapes(bytes: Uint8Array): string[] {
  return (decodeModel(bytes).graph!.initializer ?? []).map((t) => (t.dims ?? []).map(int64ToNumber).join('x'));
}

const embedsFor = (m: MiniModel) =>
  m.options.embedsInput ? Float32Array.from({ length: IDS.length * IDS[0].length * SIZE.d }, (_, i) => Math.sin(i)) : undefined;

// ---------------------------------------------------------------------------------------------

describe('decodeModel', () => {
  it('rejects bytes that are not an ONNX model with NotOnnxError', () => {
    const next = rng(7);
    const random = Uint8Array.from({ length: 4096 }, () => Math.floor(next() * 256));
    const text = new TextEncoder().encode('This is a README, not a model.\nIt has a few lines of text.\n'.repeat(20));
    const json = new TextEncoder().encode(JSON.stringify({ model_type: 'gpt2', n_layer: 12, n_embd: 768 }));
    for (const [name, bytes] of [
      ['random.bin', random],
      ['README.md', text],
      ['config.json', json],
      ['empty.onnx', new Uint8Array(0)],
    ] as const) {
      expect(() => decodeModel(bytes, name)).toThrow(NotOnnxError);
      expect(() => decodeModel(bytes, name)).toThrow(new RegExp(`^${name.replace('.', '\\.')} is not an ONNX model \\(.+\\)`));
      expect(() => inspectModel(bytes)).toThrow(NotOnnxError);
      expect(() => instrumentModel(bytes)).toThrow(NotOnnxError);
    }
  });

  it('rejects a truncated model file', () => {
    const { bytes } = mini();
    for (const keep of [0.97, 0.6, 0.1]) {
      const cut = bytes.subarray(0, Math.floor(bytes.length * keep));
      expect(() => decodeModel(cut, 'model.onnx')).toThrow(NotOnnxError);
      expect(() => instrumentModel(cut, { sourceName: 'model.onnx' })).toThrow(/model\.onnx is not an ONNX model/);
    }
    expect(() => decodeModel(bytes.subarray(0, 12))).toThrow(/truncated/);
  });

  it('keeps weights as views of the input bytes and round-trips through encodeModel', () => {
    const { bytes } = mini();
    const model = decodeModel(bytes);
    const big = model.graph!.initializer!.find((t) => (t.rawData?.length ?? 0) > 100)!;
    expect(big.rawData!.buffer).toBe(bytes.buffer);
    const again = decodeModel(encodeModel(model));
    expect(again.graph!.node!.length).toBe(model.graph!.node!.length);
    expect(Array.from(again.graph!.initializer!.find((t) => t.name === big.name)!.rawData!)).toEqual(Array.from(big.rawData!));
  });

  it('indexes producers, consumers and a topological order even for shuffled nodes', () => {
    const model = decodeModel(mini().bytes);
    const nodes = model.graph!.node!;
    const shuffled = { ...model.graph!, node: [...nodes].reverse() };
    const index = indexGraph(shuffled);
    expect(index.order.length).toBe(nodes.length);
    const seen = new Set<string>([...index.initializers.keys(), ...index.graphInputs.keys()]);
    for (const node of index.order) {
      for (const i of node.input ?? []) if (i) expect(seen.has(i)).toBe(true);
      for (const o of node.output ?? []) seen.add(o);
    }
    const gather = nodes.find((n) => n.opType === 'Gather' && n.input![1] === 'input_ids')!;
    expect(index.producers.get(gather.output![0])?.node).toBe(gather);
    expect(index.consumers.get('input_ids')).toContain(gather);
  });
});

// ---------------------------------------------------------------------------------------------

const STYLES: { label: string; options: Partial<MiniGraphOptions>; opType: string; dtype: 'float32' | 'float16'; tolerance: number }[] = [
  { label: 'MatMul + Add', options: { projection: 'matmul' }, opType: 'MatMul', dtype: 'float32', tolerance: 1e-4 },
  { label: 'Conv1D as Reshape → Gemm → Reshape', options: { projection: 'conv1d-gemm' }, opType: 'Gemm', dtype: 'float32', tolerance: 1e-4 },
  { label: 'Gemm with transB=1', options: { projection: 'gemm-transb' }, opType: 'Gemm', dtype: 'float32', tolerance: 1e-4 },
  { label: 'int8 DynamicQuantizeLinear → MatMulInteger', options: { projection: 'int8' }, opType: 'MatMulInteger', dtype: 'float32', tolerance: 1e-4 },
  { label: 'Constant-node and transposed weights, Cast before c_proj', options: { projection: 'constant-transposed' }, opType: 'MatMul', dtype: 'float32', tolerance: 1e-4 },
  { label: 'FastGelu op', options: { gelu: 'fastgelu' }, opType: 'MatMul', dtype: 'float32', tolerance: 1e-4 },
  { label: 'float16 with Cast nodes', options: { float16: true }, opType: 'MatMul', dtype: 'float16', tolerance: 5e-3 },
  { label: 'float16 Conv1D Gemm', options: { float16: true, projection: 'conv1d-gemm' }, opType: 'Gemm', dtype: 'float16', tolerance: 5e-3 },
  { label: 'decoder with past', options: { past: 'inputs' }, opType: 'MatMul', dtype: 'float32', tolerance: 1e-4 },
  { label: 'If-merged decoder', options: { past: 'merged' }, opType: 'MatMul', dtype: 'float32', tolerance: 1e-4 },
  { label: 'If-merged decoder with a branch name clash', options: { past: 'merged', branchNameClash: true }, opType: 'MatMul', dtype: 'float32', tolerance: 1e-4 },
  { label: 'square MLP (d_mlp = d_model) next to square attention projections', options: { dMlp: SIZE.d }, opType: 'MatMul', dtype: 'float32', tolerance: 1e-4 },
  { label: 'inputs_embeds (no embedding to read d_model from)', options: { embedsInput: true }, opType: 'MatMul', dtype: 'float32', tolerance: 1e-4 },
];

describe('findMlpHooks / inspectModel', () => {
  it.each(STYLES)('finds every block of: $label', ({ options, opType, dtype }) => {
    const m = mini(options);
    const info = inspectModel(m.bytes);
    const dMlp = options.dMlp ?? SIZE.dMlp;
    expect(info.nLayer).toBe(SIZE.nLayer);
    expect(info.dModel).toBe(SIZE.d);
    expect(info.dMlp).toBe(dMlp);
    if (!options.embedsInput) expect(info.vocabSize).toBe(SIZE.vocab);
    expect(info.logitsOutput).toBe('logits');
    expect(info.hooks.map((h) => h.layer)).toEqual([0, 1, 2]);
    expect(info.hooks.map((h) => h.hookName)).toEqual([0, 1, 2].map(mlpHookName));
    for (const h of info.hooks) {
      expect(h).toMatchObject({ dMlp, dModel: SIZE.d, dtype, downProjection: { opType } });
    }
    expect(info.variant).toEqual({
      merged: options.past === 'merged',
      hasPast: options.past === 'inputs' || options.past === 'merged',
      quantized: options.projection === 'int8',
      float16: options.float16 === true,
    });
  });

  it('orders layers by position in the graph, and the activation is the GELU output', () => {
    const model = decodeModel(mini({ gelu: 'decomposed' }).bytes);
    const index = indexGraph(model.graph!);
    const hooks = findMlpHooks(index);
    const positions = hooks.map((h) => index.order.findIndex((n) => n.name === h.downProjection.nodeName));
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
    for (const h of hooks) {
      // The decomposed GELU ends in Mul(0.5·x, 1 + tanh(...)).
      const producer = index.producers.get(h.tensorName)!.node;
      expect(producer.opType).toBe('Mul');
      const tanhBranch = index.producers.get(producer.input![1])!.node;
      expect(tanhBranch.opType).toBe('Add');
      expect(index.producers.get(tanhBranch.input![0])!.node.opType).toBe('Tanh');
    }
  });

  it('works without d_model (no embedding) from the MLP structure alone, and rejects a wrong d_model', () => {
    const graph = decodeModel(mini({ embedsInput: true }).bytes).graph!;
    expect(findMlpHooks(graph).map((h) => h.dMlp)).toEqual([20, 20, 20]);
    expect(findMlpHooks(graph, { dModel: SIZE.d })).toHaveLength(3);
    expect(() => findMlpHooks(graph, { dModel: 9 })).toThrow(NoMlpFoundError);
    expect(() => findMlpHooks(graph, { dModel: 9 })).toThrow(/d_model = 9/);
  });

  it('falls back on d_model when the GELU contains ops the structural walk does not know', async () => {
    // Where/IsNaN are outside the pointwise ops walked from the activation to the up-projection.
    const m = mini({ nanGuard: true });
    const inst = instrumentModel(m.bytes, { layers: [1] });
    expect(inst.info.nLayer).toBe(3);
    const { results } = await runModel(ortNode, inst.bytes, inst.inputs);
    expect(maxAbsDiff(toFloat32(results[mlpHookName(1)]), referenceForward(m, IDS).hooks[1])).toBeLessThan(1e-4);

    // Without an embedding there is no d_model to fall back on unless the caller gives it.
    const graph = decodeModel(mini({ nanGuard: true, embedsInput: true }).bytes).graph!;
    expect(() => findMlpHooks(graph)).toThrow(/d_model unknown/);
    expect(findMlpHooks(graph, { dModel: SIZE.d }).map((h) => h.dMlp)).toEqual([20, 20, 20]);
  });

  it('handles very deep graphs without recursion limits', async () => {
    const bytes = buildDeepChainModel(30_000);
    const inst = instrumentModel(bytes);
    expect(inst.hooks).toMatchObject([{ layer: 0, dModel: 4, dMlp: 6, dtype: 'float32' }]);
    // The chain, the up-projection, the Tanh and the hook's Identity; the down-projection is pruned.
    expect(inst.nodeCount.after).toBe(30_000 + 3);
  });

  it('throws NoMlpFoundError for a graph without MLPs', () => {
    const { bytes } = buildNoMlpModel();
    expect(() => inspectModel(bytes)).toThrow(NoMlpFoundError);
    expect(() => inspectModel(bytes)).toThrow(/no GPT-2 MLP found: no MatMul\/Gemm with a \[d_mlp, d_model\] weight/);
    expect(() => instrumentModel(bytes)).toThrow(NoMlpFoundError);
  });

  it('points to specialisation when asked to search a merged graph directly', () => {
    const graph = decodeModel(mini({ past: 'merged' }).bytes).graph!;
    expect(() => findMlpHooks(graph)).toThrow(/inside an If node/);
  });

  it('reports inputs with symbolic dims, past inputs and the merged-decoder specialisation', () => {
    const past = inspectModel(mini({ past: 'inputs' }).bytes);
    expect(past.inputs[0]).toEqual({ name: 'input_ids', dtype: 'int64', dims: ['batch_size', 'sequence_length'] });
    expect(past.inputs[1]).toEqual({ name: 'past_key_values.0.key', dtype: 'float32', dims: ['batch_size', 1, 'past_sequence_length', 8] });
    expect(past.outputs.map((o) => o.name)).toContain('present.2.value');

    const merged = inspectModel(mini({ past: 'merged' }).bytes);
    expect(merged.inputs.map((i) => i.name)).toContain('use_cache_branch');
    expect(merged.specialisations).toHaveLength(1);
    expect(merged.specialisations[0]).toMatchObject({
      condition: 'use_cache_branch',
      assumedValue: false,
      keptBranch: 'else_branch',
      renamedTensors: 0,
    });
    expect(merged.specialisations[0].inlinedNodes).toBeGreaterThan(50);
    expect(inspectModel(mini({ past: 'merged', branchNameClash: true }).bytes).specialisations[0].renamedTensors).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------

describe.each(RUNTIMES)('instrumented models run in $name', ({ ort }) => {
  it.each(STYLES)('hooks equal an independent forward pass: $label', async ({ options, tolerance, dtype }) => {
    const m = mini(options);
    const inst = instrumentModel(m.bytes);
    expect(inst.outputs).toEqual([0, 1, 2].map(mlpHookName));
    const { results, outputNames } = await runModel(ort, inst.bytes, inst.inputs, embedsFor(m));
    expect(outputNames).toEqual(inst.outputs);
    const ref = referenceForward(m, IDS, embedsFor(m));
    for (const hook of inst.hooks) {
      const t = results[hook.hookName];
      expect(t.type).toBe(dtype);
      expect(t.dims).toEqual([IDS.length, IDS[0].length, hook.dMlp]);
      expect(maxAbsDiff(toFloat32(t), ref.hooks[hook.layer])).toBeLessThan(tolerance);
    }
  });

  it('returns logits only when asked, equal to the reference', async () => {
    const m = mini();
    const ref = referenceForward(m, IDS);
    const withLogits = instrumentModel(m.bytes, { layers: [1], logits: true });
    expect(withLogits.outputs).toEqual([mlpHookName(1), 'logits']);
    const run = await runModel(ort, withLogits.bytes, withLogits.inputs);
    expect(run.outputNames).toEqual([mlpHookName(1), 'logits']);
    expect(maxAbsDiff(toFloat32(run.results.logits), ref.logits)).toBeLessThan(1e-4);
    expect(maxAbsDiff(toFloat32(run.results[mlpHookName(1)]), ref.hooks[1])).toBeLessThan(1e-4);

    const logitsOnly = instrumentModel(m.bytes, { layers: [], logits: true });
    expect((await runModel(ort, logitsOnly.bytes, logitsOnly.inputs)).outputNames).toEqual(['logits']);

    const without = instrumentModel(m.bytes, { layers: [1] });
    expect((await runModel(ort, without.bytes, without.inputs)).outputNames).toEqual([mlpHookName(1)]);
  });
});

// ---------------------------------------------------------------------------------------------

describe('pruning', () => {
  const d = SIZE.d;
  const { dMlp, vocab } = SIZE;
  const count = (shapes: string[], shape: string) => shapes.filter((s) => s === shape).length;

  it('computes nothing after the last requested MLP activation', async () => {
    const m = mini();
    const all = instrumentModel(m.bytes);
    const first = instrumentModel(m.bytes, { layers: [0] });
    const second = instrumentModel(m.bytes, { layers: [1] });
    expect(first.nodeCount.after).toBeLessThan(second.nodeCount.after);
    expect(second.nodeCount.after).toBeLessThan(all.nodeCount.after);
    expect(all.nodeCount.after).toBeLessThan(instrumentModel(m.bytes, { logits: true }).nodeCount.after);

    // Layer 0's activation needs only layer 0's up-projection: no down-projection, no LM head.
    const s0 = initializerShapes(first.bytes);
    expect(count(s0, `${d}x${dMlp}`)).toBe(1);
    expect(count(s0, `${dMlp}x${d}`)).toBe(0);
    expect(count(s0, `${d}x${vocab}`)).toBe(0);
    const s1 = initializerShapes(second.bytes);
    expect(count(s1, `${d}x${dMlp}`)).toBe(2);
    expect(count(s1, `${dMlp}x${d}`)).toBe(1);
    expect(first.bytes.length).toBeLessThan(second.bytes.length);

    // The pruned model still computes the same values.
    const ref = referenceForward(m, IDS);
    const { results } = await runModel(ortNode, first.bytes, first.inputs);
    expect(Object.keys(results)).toEqual([mlpHookName(0)]);
    expect(maxAbsDiff(toFloat32(results[mlpHookName(0)]), ref.hooks[0])).toBeLessThan(1e-4);
  });

  it('keeps only the past inputs the kept layers read, and drops present outputs', async () => {
    const m = mini({ past: 'inputs' });
    const inst = instrumentModel(m.bytes, { layers: [0] });
    expect(inst.inputs.map((i) => i.name)).toEqual(['input_ids', 'past_key_values.0.key', 'past_key_values.0.value']);
    expect(inst.inputs[2]).toEqual({ name: 'past_key_values.0.value', dtype: 'float32', dims: ['batch_size', 1, 'past_sequence_length', 8] });
    expect(inst.outputs).toEqual([mlpHookName(0)]);
    const { results } = await runModel(ortNode, inst.bytes, inst.inputs);
    expect(maxAbsDiff(toFloat32(results[mlpHookName(0)]), referenceForward(m, IDS).hooks[0])).toBeLessThan(1e-4);
  });

  it('specialises a merged decoder: no If, no use_cache_branch, no past inputs', async () => {
    const m = mini({ past: 'merged' });
    const inst = instrumentModel(m.bytes, { layers: [2], logits: true });
    const graph = decodeModel(inst.bytes).graph!;
    expect(graph.node!.some((n) => n.opType === 'If')).toBe(false);
    expect(inst.inputs.map((i) => i.name)).toEqual(['input_ids']);
    expect(inst.info.variant.merged).toBe(true);
    expect(inst.nodeCount.after).toBeLessThan(inst.nodeCount.before / 2);

    // The original merged model, run on its no-cache branch, agrees with the specialised one.
    const original = await ortNode.InferenceSession.create(m.bytes);
    const feeds: Record<string, ortNode.Tensor> = {
      ...feedsFor(ortNode, inspectModel(m.bytes).inputs.filter((i) => i.name !== 'use_cache_branch')),
      use_cache_branch: new ortNode.Tensor('bool', [false], [1]),
    };
    const originalLogits = toFloat32((await original.run(feeds)).logits);
    await original.release();
    const { results } = await runModel(ortNode, inst.bytes, inst.inputs);
    expect(maxAbsDiff(toFloat32(results.logits), originalLogits)).toBeLessThan(1e-5);
    expect(maxAbsDiff(toFloat32(results[mlpHookName(2)]), referenceForward(m, IDS).hooks[2])).toBeLessThan(1e-4);
  });

  it('can instrument an already instrumented model again', async () => {
    const m = mini({ projection: 'conv1d-gemm' });
    const once = instrumentModel(m.bytes, { layers: [0, 2], logits: true });
    const twice = instrumentModel(once.bytes, { layers: [0, 2], logits: true });
    expect(twice.outputs).toEqual(once.outputs);
    expect(twice.hooks.map((h) => h.tensorName)).toEqual(once.hooks.map((h) => h.tensorName));
    expect(twice.nodeCount.after).toBe(once.nodeCount.after);
    const { results } = await runModel(ortNode, twice.bytes, twice.inputs);
    expect(maxAbsDiff(toFloat32(results[mlpHookName(2)]), referenceForward(m, IDS).hooks[2])).toBeLessThan(1e-4);
  });
});

describe('layer selection', () => {
  it('rejects layers outside the model with the valid range in the message', () => {
    const { bytes } = mini();
    for (const layer of [3, -1, 1.5]) {
      expect(() => instrumentModel(bytes, { layers: [0, layer] })).toThrow(LayerOutOfRangeError);
      expect(() => instrumentModel(bytes, { layers: [layer] })).toThrow(RangeError);
    }
    expect(() => instrumentModel(bytes, { layers: [3] })).toThrow('layer 3 does not exist: the model has 3 layers (valid layers: 0..2)');
    expect(() => instrumentModel(bytes, { layers: [] })).toThrow(/nothing to compute/);
  });

  it('returns the requested hooks sorted and deduplicated', () => {
    const inst: InstrumentedModel = instrumentModel(mini().bytes, { layers: [2, 0, 2] });
    expect(inst.hooks.map((h) => h.layer)).toEqual([0, 2]);
    expect(inst.outputs).toEqual([mlpHookName(0), mlpHookName(2)]);
  });
});

// ---------------------------------------------------------------------------------------------

describe('externally stored weights', () => {
  const dir = mkdtempSync(join(tmpdir(), 'neurolens-instrument-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('needs only the dims of external initializers and keeps their references', async () => {
    const m = mini();
    const model = decodeModel(m.bytes);
    // Move every weight matrix to weights.bin, as exporters do for models over 2 GB.
    const chunks: Uint8Array[] = [];
    let offset = 0;
    for (const t of model.graph!.initializer!) {
      if ((t.dims?.length ?? 0) !== 2) continue;
      const raw = t.rawData!;
      chunks.push(raw);
      t.externalData = [
        { key: 'location', value: 'weights.bin' },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(raw.length) },
      ];
      t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
      t.rawData = new Uint8Array(0);
      offset += raw.length;
    }
    const data = new Uint8Array(offset);
    chunks.reduce((at, c) => (data.set(c, at), at + c.length), 0);
    writeFileSync(join(dir, 'weights.bin'), data);
    const bytes = encodeModel(model);

    const info = inspectModel(bytes);
    expect(info.externalDataFiles).toEqual(['weights.bin']);
    expect([info.nLayer, info.dModel, info.dMlp, info.vocabSize]).toEqual([3, 8, 20, 13]);

    const inst = instrumentModel(bytes, { layers: [1] });
    expect(inst.externalDataFiles).toEqual(['weights.bin']);
    const kept = decodeModel(inst.bytes).graph!.initializer!.filter((t) => t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL);
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.length).toBeLessThan(model.graph!.initializer!.filter((t) => t.dataLocation === 1).length);
    writeFileSync(join(dir, 'pruned.onnx'), inst.bytes);
    const session = await ortNode.InferenceSession.create(join(dir, 'pruned.onnx'));
    const results = await session.run(feedsFor(ortNode, inst.inputs));
    await session.release();
    expect(maxAbsDiff(toFloat32(results[mlpHookName(1)]), referenceForward(m, IDS).hooks[1])).toBeLessThan(1e-4);
  });
});

// ---------------------------------------------------------------------------------------------

const TINY_DIR = join(import.meta.dirname, '..', 'public', 'models', 'tiny-random');
const tinyFiles = existsSync(join(TINY_DIR, 'onnx')) ? readdirSync(join(TINY_DIR, 'onnx')).filter((f) => f.endsWith('.onnx')) : [];

// Generated by scripts/gen-models.ts (`npm test` runs it first via pretest).
describe.skipIf(tinyFiles.length === 0)('generated tiny-random GPT-2 exports', () => {
  const config = tinyFiles.length ? JSON.parse(readFileSync(join(TINY_DIR, 'config.json'), 'utf8')) : {};
  const dMlp: number = config.n_inner ?? 4 * config.n_embd;

  it.each(tinyFiles)('%s: every layer comes back with shape [batch, seq, d_mlp]', async (file) => {
    const bytes = readFileSync(join(TINY_DIR, 'onnx', file));
    const inst = instrumentModel(bytes);
    expect(inst.info.nLayer).toBe(config.n_layer);
    expect(inst.info.dModel).toBe(config.n_embd);
    expect(inst.info.dMlp).toBe(dMlp);
    expect(inst.info.vocabSize).toBe(config.vocab_size);
    const seq = 5;
    const feeds: Record<string, ortNode.Tensor> = {};
    for (const spec of inst.inputs) {
      if (spec.dims.length === 4) {
        const empty = spec.dtype === 'float16' ? new Uint16Array(0) : new Float32Array(0);
        feeds[spec.name] = new ortNode.Tensor(spec.dtype as 'float32', empty, [1, Number(spec.dims[1]), 0, Number(spec.dims[3])]);
      } else {
        expect(spec.dtype).toBe('int64');
        const values = spec.name === 'position_ids' ? [0, 1, 2, 3, 4] : spec.name === 'attention_mask' ? [1, 1, 1, 1, 1] : [464, 3290, 318, 257, 1332];
        feeds[spec.name] = new ortNode.Tensor('int64', BigInt64Array.from(values, BigInt), [1, seq]);
      }
    }
    const session = await ortNode.InferenceSession.create(inst.bytes);
    const results = await session.run(feeds);
    await session.release();
    expect(Object.keys(results)).toEqual(inst.outputs);
    for (const hook of inst.hooks) {
      const t = results[hook.hookName];
      expect(t.dims).toEqual([1, seq, dMlp]);
      expect(t.type).toBe(hook.dtype);
      const values = toFloat32(t);
      expect(values.every(Number.isFinite)).toBe(true);
      // A GELU output: bounded below by about -0.17 and not all zero.
      expect(Math.min(...values)).toBeGreaterThan(-0.2);
      expect(values.some((v) => v !== 0)).toBe(true);
    }
  });
});
