/**
 * Every neuron of every layer, captured through the real onnxruntime (native and WASM) on the
 * project's generated models, against the plain TypeScript reference forward pass on the same
 * weights.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { ActivationCapturer } from '../src/lib/model/capture.ts';
import { dirSource } from '../src/lib/model/dir-source.node.ts';
import { loadModel, type LoadedModel } from '../src/lib/model/load-model.ts';
import { loadNodeRuntime } from '../src/lib/model/ort-runtime.node.ts';
import type { OrtRuntime } from '../src/lib/model/ort-runtime.ts';
import { referenceForward } from '../src/lib/model/reference-forward.ts';
import type { Gpt2Config, Gpt2Weights } from '../src/lib/model/gpt2-types.ts';
import { ensureModels } from '../scripts/gen-models.ts';
import { plantedToyModel, tinyRandomModel } from '../scripts/toy/models.ts';
import { buildGpt2OnnxChunks } from '../scripts/toy/gpt2-graph.ts';
import { writeHubModelDir } from '../scripts/toy/hub-files.ts';
import { randomGpt2Weights } from '../scripts/toy/random-weights.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { HARD_TEXTS } from './texts.ts';

const MODELS_DIR = join(import.meta.dirname, '../public/models');

function maxAbsDiff(capturedRows: Float32Array[], reference: Float32Array): number {
  const d = capturedRows[0]?.length ?? 0;
  let max = 0;
  capturedRows.forEach((row, t) => {
    for (let n = 0; n < d; n++) max = Math.max(max, Math.abs(row[n] - reference[t * d + n]));
  });
  return max;
}

async function compareAll(model: LoadedModel, runtime: OrtRuntime, config: Gpt2Config, weights: Gpt2Weights) {
  const capturer = new ActivationCapturer(model, runtime);
  let worst = 0;
  try {
    for (const text of HARD_TEXTS) {
      const capture = await capturer.captureText(text);
      const ref = referenceForward(config, weights, capture.tokens.map((t) => t.id));
      expect(capture.layers.size).toBe(config.nLayer);
      for (const [layer, rows] of capture.layers) {
        expect(rows.length).toBe(capture.tokens.length);
        expect(rows[0].length).toBe(config.dMlp);
        worst = Math.max(worst, maxAbsDiff(rows, ref.mlpPost[layer]));
      }
    }
  } finally {
    await capturer.dispose();
  }
  return worst;
}

describe('capture matches the reference forward pass', () => {
  let tiny: { config: Gpt2Config; weights: Gpt2Weights };
  let planted: { config: Gpt2Config; weights: Gpt2Weights };
  let nodeRuntime: OrtRuntime;
  let wasmRuntime: OrtRuntime;

  beforeAll(async () => {
    ensureModels({ log: () => {} });
    tiny = tinyRandomModel();
    planted = plantedToyModel();
    nodeRuntime = await loadNodeRuntime('node');
    wasmRuntime = await loadNodeRuntime('wasm', 1);
  });

  for (const onnxPath of ['onnx/model.onnx', 'onnx/decoder_model.onnx', 'onnx/decoder_with_past_model.onnx']) {
    it(`tiny-random ${onnxPath}: every neuron within 1e-4 on onnxruntime-node and WASM`, async () => {
      const model = await loadModel(await dirSource(join(MODELS_DIR, 'tiny-random')), { onnxPath });
      const nodeDiff = await compareAll(model, nodeRuntime, tiny.config, tiny.weights);
      const wasmDiff = await compareAll(model, wasmRuntime, tiny.config, tiny.weights);
      console.log(`${onnxPath}: max |diff| node ${nodeDiff.toExponential(2)}, wasm ${wasmDiff.toExponential(2)}`);
      expect(nodeDiff).toBeLessThanOrEqual(1e-4);
      expect(wasmDiff).toBeLessThanOrEqual(1e-4);
    });
  }

  it('toy-planted (the app default): every neuron within 1e-4', async () => {
    const model = await loadModel(await dirSource(join(MODELS_DIR, 'toy-planted')));
    const diff = await compareAll(model, nodeRuntime, planted.config, planted.weights);
    expect(diff).toBeLessThanOrEqual(1e-4);
  });

  it('an unseen shape (3 layers, 8 heads, d_mlp = 3·d_model) is read from the files, not assumed', async () => {
    const config: Gpt2Config = { nLayer: 3, nHead: 8, dModel: 64, dMlp: 192, nCtx: 96, vocabSize: 50257, layerNormEps: 1e-5 };
    const weights = randomGpt2Weights(config, 7);
    const dir = mkdtempSync(join(tmpdir(), 'neurolens-shape-'));
    writeHubModelDir(dir, { config, onnx: { 'onnx/decoder_model.onnx': () => buildGpt2OnnxChunks(config, weights, { variant: 'matmul' }) } });
    const model = await loadModel(await dirSource(dir));
    expect(model.info).toMatchObject({ nLayer: 3, dModel: 64, dMlp: 192 });
    expect(model.onnxPath).toBe('onnx/decoder_model.onnx');
    const diff = await compareAll(model, wasmRuntime, config, weights);
    expect(diff).toBeLessThanOrEqual(1e-4);
  });

  it('reduced-precision exports stay close (fp16 within 2e-2, int8 within 0.25)', async () => {
    for (const [dtype, tolerance] of [['fp16', 2e-2], ['quantized', 0.25]] as const) {
      const model = await loadModel(await dirSource(join(MODELS_DIR, 'tiny-random')), { dtype });
      const diff = await compareAll(model, nodeRuntime, tiny.config, tiny.weights);
      console.log(`${dtype}: max |diff| ${diff.toExponential(2)}`);
      expect(diff).toBeLessThanOrEqual(tolerance);
      expect(diff).toBeGreaterThan(0); // it really ran the reduced-precision graph
    }
  });

  it('a pruned graph (one early layer, no logits) gives the same numbers, and logits match when asked', async () => {
    const model = await loadModel(await dirSource(join(MODELS_DIR, 'tiny-random')));
    const capturer = new ActivationCapturer(model, nodeRuntime);
    const ids = model.tokenizer.encode(HARD_TEXTS[0]).map((t) => t.id);
    const full = await capturer.runTokens([ids], { logits: true });
    const first = await capturer.runTokens([ids], { layers: [0] });
    expect([...first.layers.keys()]).toEqual([0]);
    expect(first.logits).toBeUndefined();
    // Same math; the optimiser may fuse the smaller graph differently, so allow float32 rounding.
    const a = first.layers.get(0)!;
    const b = full.layers.get(0)!;
    expect(a.length).toBe(b.length);
    a.forEach((v, i) => expect(Math.abs(v - b[i])).toBeLessThanOrEqual(1e-6));
    const ref = referenceForward(tiny.config, tiny.weights, ids, { logits: true });
    let worst = 0;
    full.logits!.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - ref.logits![i]))));
    expect(worst).toBeLessThanOrEqual(1e-4);
    await capturer.dispose();
  });

  it('a batch of unequal rows gives each row its own activations (padding is masked)', async () => {
    const model = await loadModel(await dirSource(join(MODELS_DIR, 'tiny-random')));
    const capturer = new ActivationCapturer(model, nodeRuntime);
    const rows = HARD_TEXTS.slice(0, 3).map((t) => model.tokenizer.encode(t).map((x) => x.id));
    const batch = await capturer.runTokens(rows);
    const d = tiny.config.dMlp;
    rows.forEach((ids, b) => {
      const ref = referenceForward(tiny.config, tiny.weights, ids);
      for (const layer of [0, 1]) {
        const all = batch.layers.get(layer)!;
        for (let t = 0; t < ids.length; t++) {
          for (let n = 0; n < d; n++) {
            expect(Math.abs(all[(b * batch.seq + t) * d + n] - ref.mlpPost[layer][t * d + n])).toBeLessThanOrEqual(1e-4);
          }
        }
      }
    });
    await capturer.dispose();
  });
});
