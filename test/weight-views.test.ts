/**
 * Weight-based views of a neuron (src/lib/model/model-weights.ts, weight-views.ts) against a
 * brute-force float64 computation from the very weights the generator wrote into each file
 * (rounded to float16 or quantised to int8 as that file stores them), on every exporter style the
 * project generates and on hand-built graphs with an untied, transposed or int8 LM head. On the
 * planted toy model the views must show the planted wiring.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureModels } from '../scripts/gen-models.ts';
import { quantizeSymmetricInt8 } from '../scripts/toy/gpt2-graph.ts';
import { plantedToyModel, tinyRandomModel } from '../scripts/toy/models.ts';
import { PLANTED_LAYOUT } from '../scripts/toy/planted-model.ts';
import type { Gpt2Config, Gpt2Weights } from '../src/lib/model/gpt2-types.ts';
import { ModelFormatError } from '../src/lib/model/model-errors.ts';
import { ModelWeights } from '../src/lib/model/model-weights.ts';
import { Gpt2Tokenizer } from '../src/lib/model/tokenizer.ts';
import {
  downstreamCosines,
  inputTokenScores,
  neuronWeightViews,
  outputTokenScores,
  upstreamCosines,
} from '../src/lib/model/weight-views.ts';
import { buildMiniGpt2, buildNoMlpModel, roundToHalf, type MiniGraphOptions, type MiniModel } from './helpers/mini-graphs.ts';

const MODELS = join(import.meta.dirname, '../public/models');

/** The float64 matrices a file holds, in logical orientation: W_in [d, m], W_out [m, d], W_E [V, d], W_U [d, V]. */
interface Dense {
  d: number;
  m: number;
  V: number;
  eps: number;
  wte: ArrayLike<number>;
  wU: (k: number, t: number) => number;
  lnf: ArrayLike<number>;
  blocks: { wIn: ArrayLike<number>; wOut: ArrayLike<number>; g2: ArrayLike<number>; b2: ArrayLike<number> }[];
}

/** Brute force, straight from the definitions (two-pass layer norm). */
function bruteForce(w: Dense, layer: number, n: number) {
  const { d, m, V } = w;
  const b = w.blocks[layer];
  const output = new Float64Array(V);
  const input = new Float64Array(V);
  for (let t = 0; t < V; t++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += b.wOut[n * d + k] * w.lnf[k] * w.wU(k, t);
    output[t] = s;
    let mean = 0;
    for (let k = 0; k < d; k++) mean += w.wte[t * d + k];
    mean /= d;
    let variance = 0;
    for (let k = 0; k < d; k++) variance += (w.wte[t * d + k] - mean) ** 2;
    variance /= d;
    let r = 0;
    for (let k = 0; k < d; k++) r += (((w.wte[t * d + k] - mean) / Math.sqrt(variance + w.eps)) * b.g2[k] + b.b2[k]) * b.wIn[k * m + n];
    input[t] = r;
  }
  const cosine = (x: number[], y: number[]) => {
    const dot = x.reduce((a, v, i) => a + v * y[i], 0);
    const nx = Math.sqrt(x.reduce((a, v) => a + v * v, 0));
    const ny = Math.sqrt(y.reduce((a, v) => a + v * v, 0));
    return nx > 0 && ny > 0 ? dot / (nx * ny) : 0;
  };
  const outRow = (l: number, j: number) => Array.from({ length: d }, (_, k) => w.blocks[l].wOut[j * d + k]);
  const inColumn = (l: number, j: number) => Array.from({ length: d }, (_, k) => w.blocks[l].wIn[k * m + j]);
  const downstream = layer + 1 < w.blocks.length ? Array.from({ length: m }, (_, j) => cosine(outRow(layer, n), inColumn(layer + 1, j))) : [];
  const upstream = layer > 0 ? Array.from({ length: m }, (_, j) => cosine(outRow(layer - 1, j), inColumn(layer, n))) : [];
  return { output, input, downstream, upstream };
}

/** A generated GPT-2's weights as one of its files stores them. */
function denseFromGpt2(config: Gpt2Config, weights: Gpt2Weights, storage: 'float32' | 'float16' | 'int8'): Dense {
  const round = (a: Float32Array): ArrayLike<number> => (storage === 'float16' ? roundToHalf(a) : a);
  const projection = (a: Float32Array): ArrayLike<number> => {
    if (storage !== 'int8') return round(a);
    const { q, scale } = quantizeSymmetricInt8(a);
    return Float64Array.from(q, (v) => v * scale);
  };
  const { dModel: d, dMlp: m, vocabSize: V } = config;
  const wte = round(weights.wte);
  return {
    d,
    m,
    V,
    // A float16 graph holds ε as a float16 constant.
    eps: storage === 'float16' ? roundToHalf(Float32Array.of(config.layerNormEps))[0] : config.layerNormEps,
    wte,
    wU: (k, t) => wte[t * d + k],
    lnf: round(weights.lnfGamma),
    blocks: weights.blocks.map((b) => ({ wIn: projection(b.fcW), wOut: projection(b.projW), g2: round(b.ln2Gamma), b2: round(b.ln2Beta) })),
  };
}

function denseFromMini(model: MiniModel): Dense {
  const { weights: w, options: o } = model;
  const exact = (lin: MiniModel['weights']['head']): ArrayLike<number> => (lin.q ? Float64Array.from(lin.q.wq, (v) => v * lin.q!.scale) : lin.w);
  const head = exact(w.head);
  return {
    d: o.d,
    m: o.dMlp,
    V: o.vocab,
    eps: o.float16 ? roundToHalf(Float32Array.of(1e-5))[0] : 1e-5,
    wte: w.wte,
    wU: (k, t) => head[k * o.vocab + t],
    lnf: w.lnf.g,
    blocks: w.blocks.map((b) => ({ wIn: exact(b.fc!), wOut: exact(b.proj!), g2: b.ln2.g, b2: b.ln2.b })),
  };
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, relative: number): void {
  expect(actual.length).toBe(expected.length);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  expect(worst).toBeLessThanOrEqual(relative * scale);
}

/** The list holds the k largest of `scores` (by `key`), in order, with their values. */
function expectTopOf(list: { value: number }[], scores: ArrayLike<number>, key: (v: number) => number, relative: number): void {
  const sorted = Array.from(scores).sort((a, b) => key(b) - key(a)).slice(0, list.length);
  const scale = Math.max(...Array.from(scores, Math.abs));
  list.forEach((entry, i) => expect(Math.abs(entry.value - sorted[i])).toBeLessThanOrEqual(relative * scale));
}

let tokenizer: Gpt2Tokenizer;
const generated = new Map<string, { config: Gpt2Config; weights: Gpt2Weights }>();

beforeAll(() => {
  ensureModels({ log: () => {} });
  const dir = join(MODELS, 'toy-planted');
  tokenizer = new Gpt2Tokenizer(JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')), JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')));
  generated.set('toy-planted', plantedToyModel());
  generated.set('tiny-random', tinyRandomModel());
}, 60_000);

const FILES = [
  { model: 'toy-planted', file: 'onnx/model.onnx', storage: 'float32' },
  { model: 'toy-planted', file: 'onnx/model_quantized.onnx', storage: 'int8' },
  { model: 'tiny-random', file: 'onnx/model.onnx', storage: 'float32' },
  { model: 'tiny-random', file: 'onnx/decoder_model.onnx', storage: 'float32' },
  { model: 'tiny-random', file: 'onnx/decoder_with_past_model.onnx', storage: 'float32' },
  { model: 'tiny-random', file: 'onnx/model_fp16.onnx', storage: 'float16' },
  { model: 'tiny-random', file: 'onnx/model_quantized.onnx', storage: 'int8' },
] as const;

describe('weight views equal a brute-force float64 computation', () => {
  it.each(FILES)('$model $file', ({ model, file, storage }) => {
    const { config, weights } = generated.get(model)!;
    const dense = denseFromGpt2(config, weights, storage);
    const read = ModelWeights.read(readFileSync(join(MODELS, model, file)), { dModel: config.dModel });
    expect([read.nLayer, read.dModel, read.dMlp, read.vocabSize]).toEqual([config.nLayer, config.dModel, config.dMlp, config.vocabSize]);
    const relative = 1e-9;
    for (const [layer, n] of [[0, 3], [1, 91 % config.dMlp]]) {
      const brute = bruteForce(dense, layer, n);
      const output = outputTokenScores(read, layer, n);
      const input = inputTokenScores(read, layer, n);
      expectClose(output, brute.output, relative);
      expectClose(input, brute.input, relative);
      expectClose(downstreamCosines(read, layer, n), brute.downstream, relative);
      expectClose(upstreamCosines(read, layer, n), brute.upstream, relative);
      const views = neuronWeightViews(read, { layer, neuron: n }, (id) => tokenizer.tokenText(id));
      expect(views.inputTokens).toHaveLength(10);
      expectTopOf(views.inputTokens, brute.input, (v) => v, relative);
      expectTopOf(views.outputTokens.promoted, brute.output, (v) => v, relative);
      expectTopOf(views.outputTokens.suppressed, brute.output, (v) => -v, relative);
      for (const t of [...views.inputTokens, ...views.outputTokens.promoted]) expect(t.token).toBe(tokenizer.tokenText(t.id));
      expect(views.related.downstream).toHaveLength(layer === 0 ? 10 : 0);
      expect(views.related.upstream).toHaveLength(layer === 1 ? 10 : 0);
      expectTopOf(views.related.downstream, brute.downstream, Math.abs, relative);
      expectTopOf(views.related.upstream, brute.upstream, Math.abs, relative);
      for (const r of views.related.downstream) expect(r).toMatchObject({ layer: layer + 1, value: brute.downstream[r.neuron] });
    }
  });

  const MINI: { label: string; options: Partial<MiniGraphOptions>; relative: number }[] = [
    { label: 'untied LM head, MatMul + Add', options: { projection: 'matmul' }, relative: 1e-9 },
    { label: 'Gemm with transB=1 (weights stored transposed)', options: { projection: 'gemm-transb' }, relative: 1e-9 },
    { label: 'Constant-node and Transpose-node weights', options: { projection: 'constant-transposed' }, relative: 1e-9 },
    { label: 'int8 everywhere, LM head included', options: { projection: 'int8' }, relative: 1e-9 },
    { label: 'float16 weights', options: { float16: true }, relative: 1e-9 },
    { label: 'If-merged decoder', options: { past: 'merged' }, relative: 1e-9 },
  ];
  it.each(MINI)('hand-built graph: $label', ({ options, relative }) => {
    const model = buildMiniGpt2({ nLayer: 3, d: 8, dMlp: 20, vocab: 13, ...options });
    const dense = denseFromMini(model);
    const read = ModelWeights.read(model.bytes);
    for (const [layer, n] of [[0, 5], [1, 19], [2, 0]]) {
      const brute = bruteForce(dense, layer, n);
      expectClose(outputTokenScores(read, layer, n), brute.output, relative);
      expectClose(inputTokenScores(read, layer, n), brute.input, relative);
      expectClose(downstreamCosines(read, layer, n), brute.downstream, relative);
      expectClose(upstreamCosines(read, layer, n), brute.upstream, relative);
    }
  });
});

describe('weight views of the planted toy model show its wiring', () => {
  it('input tokens: digits for 0:37, capitalised words for 0:150, " the" first for 0:203, closing quotes for 1:91', () => {
    const read = ModelWeights.read(readFileSync(join(MODELS, 'toy-planted/onnx/model.onnx')));
    const text = (id: number) => tokenizer.tokenText(id);
    const views = (layer: number, neuron: number) => neuronWeightViews(read, { layer, neuron }, text);
    expect(views(0, 37).inputTokens.every((t) => /^ ?[0-9]+$/.test(t.token))).toBe(true);
    expect(views(0, 150).inputTokens.every((t) => /^ ?[A-Z][a-z]/.test(t.token))).toBe(true);
    expect(views(0, 203).inputTokens[0].token).toBe(' the');
    expect(views(1, 91).inputTokens.every((t) => t.token.includes('"') && !t.token.startsWith(' '))).toBe(true);
    // Planted neurons write only noise dimensions and read only flags: no layer-0 neuron writes
    // anything 1:91 reads, so every upstream cosine is exactly 0.
    expect(views(1, 91).related.upstream.every((r) => r.value === 0)).toBe(true);
    // Output tokens: the direct effect through the noise dimensions the neuron writes.
    const { weights } = generated.get('toy-planted')!;
    const d = PLANTED_LAYOUT.dModel;
    const promoted = views(0, 37).outputTokens.promoted[0];
    let expected = 0;
    for (let k = PLANTED_LAYOUT.noiseDims[0]; k < PLANTED_LAYOUT.noiseDims[1]; k++) expected += weights.blocks[0].projW[37 * d + k] * weights.wte[promoted.id * d + k];
    expect(promoted.value).toBeCloseTo(expected, 12);
  });
});

describe('models whose weights cannot be read', () => {
  it('say so clearly', () => {
    expect(() => ModelWeights.read(buildNoMlpModel().bytes)).toThrow(/no GPT-2 MLP found/);
    const read = ModelWeights.read(buildMiniGpt2({ nLayer: 2, d: 8, dMlp: 20, vocab: 13 }).bytes);
    expect(() => neuronWeightViews(read, { layer: 2, neuron: 0 }, String)).toThrow(/layer 2 is out of range: this model has layers 0-1/);
    expect(() => neuronWeightViews(read, { layer: 0, neuron: 20 }, String)).toThrow(/neuron 0:20 is out of range/);
    expect(() => neuronWeightViews(read, { layer: 0, neuron: 1 }, String, { top: 0 })).toThrow(/top must be a positive whole number/);
    // Without an embedding there are no input tokens to read.
    expect(() => ModelWeights.read(buildMiniGpt2({ nLayer: 2, d: 8, dMlp: 20, vocab: 13, embedsInput: true }).bytes, { dModel: 8 })).toThrow(ModelFormatError);
  });
});
