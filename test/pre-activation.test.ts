/**
 * The MLP pre-activation hook (`blocks.{L}.mlp.hook_pre`, the GELU's input) and the capture
 * option that recomputes post-activations from it with either GELU: checked against the
 * TypeScript reference forward pass on tiny-random, and for consistency (post = GELU(pre)) on
 * hand-built graphs in several exporter styles run by the real onnxruntime.
 */
import { join } from 'node:path';
import * as ortNode from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { ActivationCapturer } from '../src/lib/model/capture.ts';
import { dirSource } from '../src/lib/model/dir-source.node.ts';
import { findMlpHooks, mlpPreHookName } from '../src/lib/model/find-mlp-hooks.ts';
import { mlpHookName } from '../src/lib/model/gpt2-types.ts';
import { inspectModel, instrumentModel, type TensorSpec } from '../src/lib/model/instrument.ts';
import { loadModel, type LoadedModel } from '../src/lib/model/load-model.ts';
import { ModelFormatError } from '../src/lib/model/model-errors.ts';
import { decodeModel, encodeModel, indexGraph } from '../src/lib/model/onnx-graph.ts';
import { loadNodeRuntime } from '../src/lib/model/ort-runtime.node.ts';
import type { OrtRuntime } from '../src/lib/model/ort-runtime.ts';
import { gelu, geluFast, referenceForward } from '../src/lib/model/reference-forward.ts';
import type { Gpt2Config, Gpt2Weights } from '../src/lib/model/gpt2-types.ts';
import { ensureModels } from '../scripts/gen-models.ts';
import { tinyRandomModel } from '../scripts/toy/models.ts';
import { buildMiniGpt2, halfArrayToFloat32, type MiniGraphOptions } from './helpers/mini-graphs.ts';
import { HARD_TEXTS } from './texts.ts';

const MODELS_DIR = join(import.meta.dirname, '../public/models');

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('capture with gelu: tanh | sigmoid against the reference forward pass (tiny-random)', () => {
  let tiny: { config: Gpt2Config; weights: Gpt2Weights };
  let model: LoadedModel;
  let nodeRuntime: OrtRuntime;

  beforeAll(async () => {
    ensureModels({ only: ['tiny-random'], log: () => {} });
    tiny = tinyRandomModel();
    model = await loadModel(await dirSource(join(MODELS_DIR, 'tiny-random')));
    nodeRuntime = await loadNodeRuntime('node');
  });

  for (const variant of ['tanh', 'sigmoid'] as const) {
    it(`every neuron of every layer within 1e-4 with gelu: '${variant}' (onnxruntime-node and WASM)`, async () => {
      const wasmRuntime = await loadNodeRuntime('wasm', 1);
      for (const runtime of [nodeRuntime, wasmRuntime]) {
        const capturer = new ActivationCapturer(model, runtime);
        let worst = 0;
        try {
          for (const text of HARD_TEXTS) {
            const capture = await capturer.captureText(text, { gelu: variant });
            const ref = referenceForward(tiny.config, tiny.weights, capture.tokens.map((t) => t.id), { gelu: variant });
            expect(capture.layers.size).toBe(tiny.config.nLayer);
            for (const [layer, rows] of capture.layers) {
              const d = tiny.config.dMlp;
              rows.forEach((row, t) => {
                worst = Math.max(worst, maxAbsDiff(row, ref.mlpPost[layer].subarray(t * d, (t + 1) * d)));
              });
            }
          }
        } finally {
          await capturer.dispose();
        }
        console.log(`gelu ${variant} on ${runtime === nodeRuntime ? 'node' : 'wasm'}: max |diff| ${worst.toExponential(2)}`);
        expect(worst).toBeLessThanOrEqual(1e-4);
      }
    });
  }

  it('the default is the graph’s own (tanh) GELU; sigmoid replaces it in every layer, not only where it is read', async () => {
    const capturer = new ActivationCapturer(model, nodeRuntime);
    try {
      const ids = model.tokenizer.encodeIds('The quick brown fox jumps over the lazy dog, again and again.');
      const batch = [ids, ids.slice(0, 7)];
      const byModel = await capturer.runTokens(batch, { pre: true });
      const byTanh = await capturer.runTokens(batch, { gelu: 'tanh' });
      const bySigmoid = await capturer.runTokens(batch, { gelu: 'sigmoid', pre: true });
      expect(byTanh.pre).toBeUndefined();
      let tanhVsSigmoid = 0;
      for (let layer = 0; layer < tiny.config.nLayer; layer++) {
        const pre = byModel.pre!.get(layer)!;
        expect(maxAbsDiff(byModel.layers.get(layer)!, Float32Array.from(pre, gelu))).toBeLessThan(1e-5);
        expect(maxAbsDiff(byModel.layers.get(layer)!, byTanh.layers.get(layer)!)).toBeLessThan(1e-5);
        expect(maxAbsDiff(bySigmoid.layers.get(layer)!, Float32Array.from(bySigmoid.pre!.get(layer)!, geluFast))).toBeLessThan(1e-5);
        tanhVsSigmoid = Math.max(tanhVsSigmoid, maxAbsDiff(byTanh.layers.get(layer)!, bySigmoid.layers.get(layer)!));
        // The pre-activation really is the GELU's input: it goes negative where the output cannot.
        expect(Math.min(...pre)).toBeLessThan(-0.5);
      }
      expect(tanhVsSigmoid).toBeGreaterThan(1e-3);
      // Layer 0's input does not depend on any GELU; layer 1's depends on layer 0's.
      expect(maxAbsDiff(bySigmoid.pre!.get(0)!, byModel.pre!.get(0)!)).toBeLessThan(1e-5);
      expect(maxAbsDiff(bySigmoid.pre!.get(1)!, byModel.pre!.get(1)!)).toBeGreaterThan(1e-4);
      await expect(capturer.runTokens(batch, { gelu: 'erf' as never })).rejects.toThrow(/gelu must be one of model, tanh, sigmoid/);
    } finally {
      await capturer.dispose();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Structure: hand-built graphs in exporter styles.

const SIZE = { nLayer: 3, d: 8, dMlp: 20, vocab: 13 } as const;
const IDS = [
  [1, 5, 7, 2],
  [3, 3, 12, 0],
];

function feedsFor(inputs: TensorSpec[]): Record<string, ortNode.Tensor> {
  const feeds: Record<string, ortNode.Tensor> = {};
  const [batch, seq] = [IDS.length, IDS[0].length];
  for (const spec of inputs) {
    if (spec.name === 'input_ids') feeds[spec.name] = new ortNode.Tensor('int64', BigInt64Array.from(IDS.flat(), BigInt), [batch, seq]);
    else if (spec.dims.length === 4) {
      const [, heads, , size] = spec.dims;
      const empty = spec.dtype === 'float16' ? new Uint16Array(0) : new Float32Array(0);
      feeds[spec.name] = new ortNode.Tensor(spec.dtype as 'float32', empty, [batch, Number(heads), 0, Number(size)]);
    } else throw new Error(`unexpected input ${spec.name}`);
  }
  return feeds;
}

function toFloat32(t: ortNode.Tensor): Float32Array {
  return t.type === 'float16' ? halfArrayToFloat32(t.data as Uint16Array) : (t.data as Float32Array);
}

async function runInstrumented(bytes: Uint8Array, options: Parameters<typeof instrumentModel>[1]) {
  const inst = instrumentModel(bytes, options);
  const session = await ortNode.InferenceSession.create(inst.bytes);
  try {
    const results = await session.run(feedsFor(inst.inputs));
    return { inst, results, outputNames: [...session.outputNames] };
  } finally {
    await session.release();
  }
}

/** FastGelu(x + b) written as one com.microsoft FastGelu(x, b) node, as ORT's fusions produce. */
function withBiasFusedIntoFastGelu(bytes: Uint8Array): Uint8Array {
  const model = decodeModel(bytes);
  const index = indexGraph(model.graph!);
  let fused = 0;
  for (const node of model.graph!.node ?? []) {
    if (node.opType !== 'FastGelu') continue;
    const add = index.producers.get(node.input![0])!.node;
    expect(add.opType).toBe('Add');
    node.input = [add.input![0], add.input![1]];
    fused++;
  }
  expect(fused).toBe(SIZE.nLayer);
  return encodeModel(model);
}

const STYLES: { label: string; options: Partial<MiniGraphOptions>; tolerance: number; fuseBias?: boolean }[] = [
  { label: 'MatMul + Add', options: { projection: 'matmul' }, tolerance: 1e-5 },
  { label: 'Conv1D as Reshape → Gemm → Reshape', options: { projection: 'conv1d-gemm' }, tolerance: 1e-5 },
  { label: 'Gemm with transB=1', options: { projection: 'gemm-transb' }, tolerance: 1e-5 },
  { label: 'int8 DynamicQuantizeLinear → MatMulInteger → Cast → Mul → Add', options: { projection: 'int8' }, tolerance: 1e-5 },
  { label: 'Constant-node and transposed weights', options: { projection: 'constant-transposed' }, tolerance: 1e-5 },
  { label: 'FastGelu op', options: { gelu: 'fastgelu' }, tolerance: 1e-4 },
  { label: 'FastGelu op with the bias fused in', options: { gelu: 'fastgelu' }, tolerance: 1e-4, fuseBias: true },
  { label: 'float16', options: { float16: true }, tolerance: 5e-3 },
  { label: 'If-merged decoder', options: { past: 'merged' }, tolerance: 1e-5 },
];

describe('hook_pre on hand-built graphs (onnxruntime-node)', () => {
  it.each(STYLES)('post = GELU(pre) for every neuron: $label', async ({ options, tolerance, fuseBias }) => {
    let bytes = buildMiniGpt2({ ...SIZE, ...options }).bytes;
    if (fuseBias) bytes = withBiasFusedIntoFastGelu(bytes);
    const info = inspectModel(bytes);
    for (const hook of info.hooks) {
      expect(hook.pre?.hookName).toBe(mlpPreHookName(hook.layer));
      expect(hook.pre?.tensorName).not.toBe(hook.tensorName);
      expect(hook.pre?.dtype).toBe(options.float16 ? 'float16' : 'float32');
      expect(hook.pre?.bias !== undefined).toBe(fuseBias === true);
    }
    const { inst, results, outputNames } = await runInstrumented(bytes, { pre: true });
    const posts = [0, 1, 2].map(mlpHookName);
    const pres = [0, 1, 2].map(mlpPreHookName);
    expect(inst.outputs).toEqual([...posts, ...pres]);
    expect(outputNames.sort()).toEqual([...posts, ...pres].sort());
    for (let layer = 0; layer < SIZE.nLayer; layer++) {
      const pre = toFloat32(results[pres[layer]]);
      const post = toFloat32(results[posts[layer]]);
      expect(pre.length).toBe(IDS.length * IDS[0].length * SIZE.dMlp);
      expect(maxAbsDiff(post, Float32Array.from(pre, gelu))).toBeLessThanOrEqual(tolerance);
      expect(maxAbsDiff(post, pre)).toBeGreaterThan(0.05);
    }
  });

  it.each(STYLES)('gelu: sigmoid replaces the GELU: post = x·σ(1.702x) of pre, no trace of the old GELU: $label', async ({ options, tolerance, fuseBias }) => {
    let bytes = buildMiniGpt2({ ...SIZE, ...options }).bytes;
    if (fuseBias) bytes = withBiasFusedIntoFastGelu(bytes);
    const inst = instrumentModel(bytes, { pre: true, gelu: 'sigmoid' });
    const ops = new Set((decodeModel(inst.bytes).graph!.node ?? []).map((n) => n.opType));
    for (const old of ['Tanh', 'FastGelu']) expect(ops.has(old)).toBe(false);
    const { results } = await runInstrumented(bytes, { pre: true, gelu: 'sigmoid' });
    for (let layer = 0; layer < SIZE.nLayer; layer++) {
      const pre = toFloat32(results[mlpPreHookName(layer)]);
      const post = toFloat32(results[mlpHookName(layer)]);
      expect(maxAbsDiff(post, Float32Array.from(pre, geluFast))).toBeLessThanOrEqual(tolerance);
    }
  });

  it('by default nothing changes: no hook_pre outputs; with post: false only hook_pre', async () => {
    const { bytes } = buildMiniGpt2({ ...SIZE });
    expect(instrumentModel(bytes, { layers: [1] }).outputs).toEqual([mlpHookName(1)]);
    const { inst, results } = await runInstrumented(bytes, { layers: [0, 2], pre: true, post: false });
    expect(inst.outputs).toEqual([mlpPreHookName(0), mlpPreHookName(2)]);
    expect(Object.keys(results).sort()).toEqual([mlpPreHookName(0), mlpPreHookName(2)]);
    expect(() => instrumentModel(bytes, { pre: false, post: false })).toThrow(/nothing to compute/);
  });

  it('re-instrumenting an instrumented model keeps both hooks', async () => {
    const { bytes } = buildMiniGpt2({ ...SIZE, projection: 'int8' });
    const once = instrumentModel(bytes, { pre: true });
    const first = await runInstrumented(bytes, { pre: true });
    const second = await runInstrumented(once.bytes, { pre: true, layers: [1] });
    expect(maxAbsDiff(toFloat32(second.results[mlpPreHookName(1)]), toFloat32(first.results[mlpPreHookName(1)]))).toBe(0);
  });

  it('refuses clearly when the GELU’s input cannot be located', async () => {
    // Where(IsNaN(h), 0, h) between the projections: the post hook is still found (by shape),
    // but nothing shows which tensor the GELU reads.
    const { bytes } = buildMiniGpt2({ ...SIZE, nanGuard: true });
    const graph = decodeModel(bytes).graph!;
    expect(findMlpHooks(graph).every((h) => h.pre === undefined)).toBe(true);
    expect(() => instrumentModel(bytes, { pre: true })).toThrow(ModelFormatError);
    expect(() => instrumentModel(bytes, { pre: true })).toThrow(/cannot expose layer 0's MLP pre-activation/);
    expect(instrumentModel(bytes).outputs).toEqual([0, 1, 2].map(mlpHookName));
  });
});
