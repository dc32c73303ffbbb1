/**
 * The generated GPT-2 ONNX models, run in the real onnxruntime-node: every graph variant of the tiny
 * random model agrees with the others and with an independent float64 forward pass written here,
 * padding and key/value caches behave, and the planted neurons of the toy model fire exactly where
 * their ground-truth rules say.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encode } from 'gpt-3-encoder';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureModels, GenModelsError, modelDescription } from '../scripts/gen-models.ts';
import { buildGpt2Onnx, Gpt2GraphError, mlpActivationTensorName } from '../scripts/toy/gpt2-graph.ts';
import { gpt2TokenTexts } from '../scripts/toy/gpt2-vocab.ts';
import { MODEL_SPECS, TINY_RANDOM_CONFIG, tinyRandomModel } from '../scripts/toy/models.ts';
import { float16ToNumber } from '../scripts/toy/onnx-builder.ts';
import { plantedGpt2, PlantedModelError, plantedNeurons } from '../scripts/toy/planted-model.ts';
import type { Gpt2Config, Gpt2Weights } from '../src/lib/model/gpt2-types.ts';

const { onnx } = onnxProto;

let root: string;
let tinyDir: string;
let plantedDir: string;
const log: string[] = [];

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'neurolens-toy-models-'));
  const results = ensureModels({ publicDir: root, only: ['toy-planted', 'tiny-random'], log: (l) => log.push(l) });
  expect(results.map((r) => r.status)).toEqual(['generated', 'generated']);
  tinyDir = join(root, 'tiny-random');
  plantedDir = join(root, 'toy-planted');
});

afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

// ---- helpers -------------------------------------------------------------------------------

type Feeds = Record<string, ort.Tensor>;

function int64Tensor(rows: number[][]): ort.Tensor {
  const flat = rows.flat().map((v) => BigInt(v));
  return new ort.Tensor('int64', BigInt64Array.from(flat), [rows.length, rows[0].length]);
}

/** Tensor data as plain numbers (float16 comes back from onnxruntime as raw uint16 bits). */
function numbers(t: ort.Tensor): Float64Array {
  const data = t.data as ArrayLike<number>;
  const out = new Float64Array(data.length);
  const half = t.type === 'float16' && data instanceof Uint16Array;
  for (let i = 0; i < data.length; i++) out[i] = half ? float16ToNumber(data[i]) : Number(data[i]);
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

const sessions = new Map<string, Promise<ort.InferenceSession>>();
function session(path: string): Promise<ort.InferenceSession> {
  if (!sessions.has(path)) sessions.set(path, ort.InferenceSession.create(path));
  return sessions.get(path)!;
}

/** Feeds for a batch of token rows with the given mask; adds position_ids / empty past if the model wants them. */
function feedsFor(s: ort.InferenceSession, ids: number[][], mask: number[][], positions?: number[][]): Feeds {
  const feeds: Feeds = { input_ids: int64Tensor(ids), attention_mask: int64Tensor(mask) };
  if (s.inputNames.includes('position_ids')) {
    feeds.position_ids = int64Tensor(positions ?? ids.map((row) => row.map((_, i) => i)));
  }
  const dHead = TINY_RANDOM_CONFIG.dModel / TINY_RANDOM_CONFIG.nHead;
  for (const name of s.inputNames.filter((n) => n.startsWith('past_key_values.'))) {
    feeds[name] = new ort.Tensor('float32', new Float32Array(0), [ids.length, TINY_RANDOM_CONFIG.nHead, 0, dHead]);
  }
  return feeds;
}

async function logitsOf(file: string, ids: number[][], mask?: number[][], positions?: number[][]): Promise<ort.Tensor> {
  const s = await session(join(tinyDir, 'onnx', file));
  const out = await s.run(feedsFor(s, ids, mask ?? ids.map((r) => r.map(() => 1)), positions));
  return out.logits;
}

const SENTENCE = 'He said "The 3 cats sat on the mat in 1999."';
const IDS = encode('The quick brown fox jumps over the lazy dog, twice: 1, 2!');

// ---- an independent float64 GPT-2, written plainly for this test ---------------------------

function referenceLogits(c: Gpt2Config, w: Gpt2Weights, ids: number[]): { logits: Float64Array; acts: Float64Array[] } {
  const d = c.dModel;
  const n = ids.length;
  const dh = d / c.nHead;
  const x = new Float64Array(n * d);
  for (let t = 0; t < n; t++) for (let i = 0; i < d; i++) x[t * d + i] = w.wte[ids[t] * d + i] + w.wpe[t * d + i];
  const layerNorm = (src: Float64Array, g: Float32Array, b: Float32Array): Float64Array => {
    const out = new Float64Array(src.length);
    for (let t = 0; t < n; t++) {
      let mean = 0;
      for (let i = 0; i < d; i++) mean += src[t * d + i] / d;
      let v = 0;
      for (let i = 0; i < d; i++) v += (src[t * d + i] - mean) ** 2 / d;
      for (let i = 0; i < d; i++) out[t * d + i] = ((src[t * d + i] - mean) / Math.sqrt(v + c.layerNormEps)) * g[i] + b[i];
    }
    return out;
  };
  const linear = (src: Float64Array, W: Float32Array, B: Float32Array, nIn: number, nOut: number): Float64Array => {
    const out = new Float64Array(n * nOut);
    for (let t = 0; t < n; t++) {
      for (let o = 0; o < nOut; o++) {
        let s = B[o];
        for (let i = 0; i < nIn; i++) s += src[t * nIn + i] * W[i * nOut + o];
        out[t * nOut + o] = s;
      }
    }
    return out;
  };
  const acts: Float64Array[] = [];
  for (const b of w.blocks) {
    const qkv = linear(layerNorm(x, b.ln1Gamma, b.ln1Beta), b.attnW, b.attnB, d, 3 * d);
    const ctx = new Float64Array(n * d);
    for (let h = 0; h < c.nHead; h++) {
      for (let i = 0; i < n; i++) {
        const scores: number[] = [];
        for (let j = 0; j <= i; j++) {
          let s = 0;
          for (let e = 0; e < dh; e++) s += qkv[i * 3 * d + h * dh + e] * qkv[j * 3 * d + d + h * dh + e];
          scores.push(s / Math.sqrt(dh));
        }
        const max = Math.max(...scores);
        const p = scores.map((s) => Math.exp(s - max));
        const z = p.reduce((a, v) => a + v, 0);
        for (let e = 0; e < dh; e++) {
          let s = 0;
          for (let j = 0; j <= i; j++) s += (p[j] / z) * qkv[j * 3 * d + 2 * d + h * dh + e];
          ctx[i * d + h * dh + e] = s;
        }
      }
    }
    const attn = linear(ctx, b.attnProjW, b.attnProjB, d, d);
    for (let k = 0; k < x.length; k++) x[k] += attn[k];
    const pre = linear(layerNorm(x, b.ln2Gamma, b.ln2Beta), b.fcW, b.fcB, d, c.dMlp);
    const act = pre.map((v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))));
    acts.push(act);
    const proj = linear(act, b.projW, b.projB, c.dMlp, d);
    for (let k = 0; k < x.length; k++) x[k] += proj[k];
  }
  const lnf = layerNorm(x, w.lnfGamma, w.lnfBeta);
  const logits = new Float64Array(n * c.vocabSize);
  for (let t = 0; t < n; t++) {
    for (let v = 0; v < c.vocabSize; v++) {
      let s = 0;
      for (let i = 0; i < d; i++) s += lnf[t * d + i] * w.wte[v * d + i];
      logits[t * c.vocabSize + v] = s;
    }
  }
  return { logits, acts };
}

/** Model bytes with the post-GELU activations of every layer added as graph outputs. */
function withActivationOutputs(bytes: Uint8Array, nLayer: number): Uint8Array {
  const m = onnx.ModelProto.decode(bytes);
  const graph = m.graph;
  if (!graph) throw new Error('model has no graph');
  const extra = Array.from({ length: nLayer }, (_, l) => onnx.ValueInfoProto.create({ name: mlpActivationTensorName(l) }));
  graph.output = [...(graph.output ?? []), ...extra];
  return onnx.ModelProto.encode(m).finish();
}

// ---- the tiny random model -----------------------------------------------------------------

describe('tiny-random model variants', () => {
  const variantFiles = ['model.onnx', 'decoder_model.onnx', 'model_quantized.onnx', 'model_fp16.onnx', 'decoder_with_past_model.onnx'];

  it('writes a Hugging Face hub-style directory', () => {
    const config = JSON.parse(readFileSync(join(tinyDir, 'config.json'), 'utf8'));
    expect(config).toMatchObject({
      model_type: 'gpt2', n_layer: 2, n_head: 4, n_embd: 32, n_inner: null, n_positions: 128,
      vocab_size: 50257, activation_function: 'gelu_new', eos_token_id: 50256,
    });
    const tok = JSON.parse(readFileSync(join(tinyDir, 'tokenizer.json'), 'utf8'));
    expect(tok.model.type).toBe('BPE');
    expect(Object.keys(tok.model.vocab)).toHaveLength(50257);
    expect(tok.model.vocab['Ġthe']).toBe(262);
    expect(tok.model.merges[0]).toBe('Ġ t');
    expect(tok.model.merges).toHaveLength(50000);
    expect(tok.added_tokens).toEqual([expect.objectContaining({ id: 50256, content: '<|endoftext|>', special: true })]);
    expect(tok.pre_tokenizer).toMatchObject({ type: 'ByteLevel', add_prefix_space: false, use_regex: true });
    const tc = JSON.parse(readFileSync(join(tinyDir, 'tokenizer_config.json'), 'utf8'));
    expect(tc).toMatchObject({ model_max_length: 128, eos_token: '<|endoftext|>', tokenizer_class: 'GPT2Tokenizer' });
    for (const f of variantFiles) expect(statSync(join(tinyDir, 'onnx', f)).size).toBeGreaterThan(1e6);
  });

  it('every variant returns logits [batch, sequence, vocab] of the right type', async () => {
    for (const f of variantFiles) {
      const logits = await logitsOf(f, [IDS, IDS]);
      expect(logits.dims, f).toEqual([2, IDS.length, 50257]);
      expect(logits.type, f).toBe(f === 'model_fp16.onnx' ? 'float16' : 'float32');
      expect(numbers(logits).every(Number.isFinite), f).toBe(true);
    }
  });

  it('optimum logits and activations match an independent float64 forward pass', async () => {
    const { config, weights } = tinyRandomModel();
    const ref = referenceLogits(config, weights, IDS);
    const bytes = withActivationOutputs(readFileSync(join(tinyDir, 'onnx', 'model.onnx')), config.nLayer);
    const s = await ort.InferenceSession.create(bytes);
    const out = await s.run(feedsFor(s, [IDS], [IDS.map(() => 1)]));
    const logitDiff = maxAbsDiff(numbers(out.logits), ref.logits);
    console.log(`tiny optimum vs float64 reference: max |Δlogit| = ${logitDiff.toExponential(2)} (max |logit| ${maxAbs(ref.logits).toFixed(2)})`);
    expect(logitDiff).toBeLessThanOrEqual(1e-4);
    for (let l = 0; l < config.nLayer; l++) {
      const act = numbers(out[mlpActivationTensorName(l)]);
      expect(maxAbsDiff(act, ref.acts[l])).toBeLessThanOrEqual(1e-4);
      // Random weights should give neurons of both signs, neither dead nor saturated.
      const positive = act.filter((v) => v > 0).length / act.length;
      expect(positive).toBeGreaterThan(0.2);
      expect(positive).toBeLessThan(0.8);
      expect(maxAbs(act)).toBeLessThan(10);
    }
  });

  it('matmul, past (empty), int8 and fp16 variants agree with optimum', async () => {
    const base = numbers(await logitsOf('model.onnx', [IDS]));
    const scale = maxAbs(base);
    const matmul = numbers(await logitsOf('decoder_model.onnx', [IDS]));
    const past = numbers(await logitsOf('decoder_with_past_model.onnx', [IDS]));
    const int8 = numbers(await logitsOf('model_quantized.onnx', [IDS]));
    const fp16 = numbers(await logitsOf('model_fp16.onnx', [IDS]));
    const diffs = {
      matmul: maxAbsDiff(matmul, base),
      pastVsMatmul: maxAbsDiff(past, matmul),
      int8: maxAbsDiff(int8, base),
      fp16: maxAbsDiff(fp16, base),
    };
    console.log(`variant max |Δlogit| vs optimum (max |logit| ${scale.toFixed(2)}): ${JSON.stringify(diffs)}`);
    expect(diffs.matmul).toBeLessThanOrEqual(1e-5);
    expect(diffs.pastVsMatmul).toBe(0);
    expect(diffs.int8).toBeLessThanOrEqual(0.1 * scale);
    expect(diffs.fp16).toBeLessThanOrEqual(0.02 * scale);
    // Quantisation must still leave the model the same model: same top token almost everywhere.
    const vocab = TINY_RANDOM_CONFIG.vocabSize;
    const argmax = (a: Float64Array, t: number): number => {
      let best = 0;
      for (let v = 1; v < vocab; v++) if (a[t * vocab + v] > a[t * vocab + best]) best = v;
      return best;
    };
    let sameTop = 0;
    for (let t = 0; t < IDS.length; t++) sameTop += argmax(int8, t) === argmax(base, t) ? 1 : 0;
    expect(sameTop).toBeGreaterThanOrEqual(IDS.length - 2);
  });

  it('right padding through attention_mask leaves the real positions unchanged', async () => {
    const short = IDS.slice(0, 6);
    const padded = [...short, ...IDS.slice(0, IDS.length - short.length).map(() => 50256)];
    const mask = padded.map((_, i) => (i < short.length ? 1 : 0));
    const vocab = TINY_RANDOM_CONFIG.vocabSize;
    for (const f of ['model.onnx', 'decoder_model.onnx', 'model_quantized.onnx', 'model_fp16.onnx']) {
      const alone = numbers(await logitsOf(f, [short]));
      const batch = numbers(await logitsOf(f, [IDS, padded], [IDS.map(() => 1), mask]));
      const fullAlone = numbers(await logitsOf(f, [IDS]));
      const row1 = batch.subarray(IDS.length * vocab, (IDS.length + short.length) * vocab);
      // Dynamic quantisation picks its scale from the whole batch, so int8 only agrees loosely.
      const tol = f === 'model_quantized.onnx' ? 0.1 * maxAbs(alone) : f === 'model_fp16.onnx' ? 2e-2 : 1e-5;
      expect(maxAbsDiff(row1, alone), f).toBeLessThanOrEqual(tol);
      if (f !== 'model_quantized.onnx') {
        expect(maxAbsDiff(batch.subarray(0, IDS.length * vocab), fullAlone), f).toBeLessThanOrEqual(tol);
      }
      expect(batch.every(Number.isFinite), f).toBe(true);
    }
  });

  it('left padding with explicit position_ids gives the same logits and no NaN (matmul variant)', async () => {
    const short = IDS.slice(0, 5);
    const pad = IDS.length - short.length;
    const padded = [...new Array<number>(pad).fill(50256), ...short];
    const mask = padded.map((_, i) => (i < pad ? 0 : 1));
    const positions = padded.map((_, i) => Math.max(0, i - pad));
    const vocab = TINY_RANDOM_CONFIG.vocabSize;
    const alone = numbers(await logitsOf('decoder_model.onnx', [short]));
    const batch = numbers(await logitsOf('decoder_model.onnx', [padded], [mask], [positions]));
    expect(batch.every(Number.isFinite)).toBe(true);
    expect(maxAbsDiff(batch.subarray(pad * vocab), alone)).toBeLessThanOrEqual(1e-5);
  });

  it('the past variant continues from its own present key/values', async () => {
    const s = await session(join(tinyDir, 'onnx', 'decoder_with_past_model.onnx'));
    const split = 7;
    const first = await s.run(feedsFor(s, [IDS.slice(0, split)], [IDS.slice(0, split).map(() => 1)]));
    const rest = IDS.slice(split);
    const feeds: Feeds = {
      input_ids: int64Tensor([rest]),
      attention_mask: int64Tensor([IDS.map(() => 1)]),
      position_ids: int64Tensor([rest.map((_, i) => split + i)]),
    };
    for (let l = 0; l < TINY_RANDOM_CONFIG.nLayer; l++) {
      feeds[`past_key_values.${l}.key`] = first[`present.${l}.key`];
      feeds[`past_key_values.${l}.value`] = first[`present.${l}.value`];
    }
    const second = await s.run(feeds);
    expect(second['present.0.key'].dims).toEqual([1, 4, IDS.length, 8]);
    const full = numbers(await logitsOf('decoder_model.onnx', [IDS]));
    const vocab = TINY_RANDOM_CONFIG.vocabSize;
    expect(maxAbsDiff(numbers(second.logits), full.subarray(split * vocab))).toBeLessThanOrEqual(1e-5);
  });

  it('generation is deterministic', () => {
    const a = tinyRandomModel();
    const b = tinyRandomModel();
    const ba = buildGpt2Onnx(a.config, a.weights, { variant: 'int8' });
    const bb = buildGpt2Onnx(b.config, b.weights, { variant: 'int8' });
    expect(Buffer.from(ba).equals(Buffer.from(bb))).toBe(true);
    const spec = MODEL_SPECS.find((s) => s.name === 'tiny-random')!;
    const onDisk = readFileSync(join(tinyDir, 'onnx', 'model.onnx'));
    expect(Buffer.from(buildGpt2Onnx(a.config, a.weights, { description: modelDescription(spec) })).equals(onDisk)).toBe(true);
  });
});

// ---- the toy model with planted neurons ----------------------------------------------------

describe('toy-planted model', () => {
  const texts = gpt2TokenTexts();

  /** Per planted neuron: lowest activation where its rule matches, highest (in |·|) elsewhere. */
  async function plantedStats(file: string, ids: number[]) {
    const bytes = withActivationOutputs(readFileSync(join(plantedDir, 'onnx', file)), 2);
    const s = await ort.InferenceSession.create(bytes);
    const out = await s.run({ input_ids: int64Tensor([ids]), attention_mask: int64Tensor([ids.map(() => 1)]) });
    const tokenTexts = ids.map((id) => texts[id]);
    return plantedNeurons().map((p) => {
      const act = out[mlpActivationTensorName(p.layer)].data as Float32Array;
      let onMin = Infinity;
      let offMaxAbs = 0;
      let nOn = 0;
      const values: number[] = [];
      for (let i = 0; i < ids.length; i++) {
        const v = act[i * 256 + p.neuron];
        values.push(v);
        if (p.matches(tokenTexts, i)) {
          nOn++;
          onMin = Math.min(onMin, v);
        } else {
          offMaxAbs = Math.max(offMaxAbs, Math.abs(v));
        }
      }
      return { id: p.id, nOn, onMin, offMaxAbs, values };
    });
  }

  it('writes planted.json describing the planted neurons', () => {
    const planted = JSON.parse(readFileSync(join(plantedDir, 'planted.json'), 'utf8'));
    expect(planted.neurons.map((n: { id: string }) => n.id)).toEqual(plantedNeurons().map((p) => p.id));
    for (const n of planted.neurons) {
      expect(n).toEqual({ layer: expect.any(Number), neuron: expect.any(Number), id: expect.any(String), description: expect.any(String), rule: expect.any(String) });
    }
    expect(JSON.parse(readFileSync(join(plantedDir, 'config.json'), 'utf8'))).toMatchObject({ n_layer: 2, n_embd: 64, n_inner: null, n_positions: 1024 });
  });

  it('the rules pick the expected tokens of the example sentence', () => {
    const ids = encode(SENTENCE);
    const tokenTexts = ids.map((id) => texts[id]);
    expect(tokenTexts).toEqual(['He', ' said', ' "', 'The', ' 3', ' cats', ' sat', ' on', ' the', ' mat', ' in', ' 1999', '."']);
    const fired = Object.fromEntries(plantedNeurons().map((p) => [p.id, tokenTexts.filter((_, i) => p.matches(tokenTexts, i))]));
    expect(fired).toEqual({
      digits: [' 3', ' 1999'],
      capitalised: ['He', 'The'],
      the: [' the'],
      'closing-quote': ['."'],
      'after-the': [' mat'],
    });
  });

  it('each planted neuron is high exactly where its rule matches (sentence)', async () => {
    for (const file of ['model.onnx', 'model_quantized.onnx']) {
      const stats = await plantedStats(file, encode(SENTENCE));
      for (const s of stats) {
        console.log(`${file} ${s.id}: on-rule min ${s.onMin.toFixed(3)} (${s.nOn}), off-rule max |a| ${s.offMaxAbs.toFixed(4)}; ${s.values.map((v) => v.toFixed(2)).join(' ')}`);
        expect(s.nOn, s.id).toBeGreaterThan(0);
        expect(s.onMin, `${file} ${s.id}`).toBeGreaterThan(2);
        expect(s.offMaxAbs, `${file} ${s.id}`).toBeLessThanOrEqual(0.1);
      }
    }
  });

  it('planted neurons stay exact over a full 1024-token context of mixed tokens', async () => {
    // Seeded mix of rule-triggering tokens and random ids, with " the" at position 0.
    let state = 12345;
    const rand = (): number => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 4294967296);
    const pool = encode(' the "Hello," she said. "The 42 dogs of the North" 7 the 1999 the').filter((_, i, a) => a.indexOf(_) === i);
    const ids = [262];
    while (ids.length < 1024) ids.push(rand() < 0.6 ? pool[Math.floor(rand() * pool.length)] : Math.floor(rand() * 50257));
    const stats = await plantedStats('model.onnx', ids);
    for (const s of stats) {
      console.log(`1024 tokens ${s.id}: ${s.nOn} matches, on-rule min ${s.onMin.toFixed(3)}, off-rule max |a| ${s.offMaxAbs.toFixed(4)}`);
      expect(s.nOn, s.id).toBeGreaterThan(10);
      expect(s.onMin, s.id).toBeGreaterThan(2);
      expect(s.offMaxAbs, s.id).toBeLessThanOrEqual(0.1);
    }
  });

  it('the planted model matches the float64 reference too', async () => {
    const { config, weights } = plantedGpt2(texts);
    const ids = encode(SENTENCE);
    const ref = referenceLogits(config, weights, ids);
    const stats = await plantedStats('model.onnx', ids);
    for (const [k, p] of plantedNeurons().entries()) {
      const refValues = ids.map((_, i) => ref.acts[p.layer][i * config.dMlp + p.neuron]);
      expect(maxAbsDiff(stats[k].values, refValues), p.id).toBeLessThanOrEqual(1e-4);
    }
  });
});

// ---- generator behaviour and errors ---------------------------------------------------------

describe('gen-models', () => {
  it('is idempotent and regenerates a model whose files were damaged', () => {
    const lines: string[] = [];
    const again = ensureModels({ publicDir: root, only: ['tiny-random', 'toy-planted'], log: (l) => lines.push(l) });
    expect(again.map((r) => r.status)).toEqual(['up to date', 'up to date']);
    expect(lines).toHaveLength(2);
    unlinkSync(join(tinyDir, 'onnx', 'model_fp16.onnx'));
    const fixed = ensureModels({ publicDir: root, only: ['tiny-random'], log: () => {} });
    expect(fixed[0].status).toBe('generated');
    expect(statSync(join(tinyDir, 'onnx', 'model_fp16.onnx')).size).toBeGreaterThan(1e6);
  });

  it('rejects bad input with clear errors', () => {
    const { config, weights } = tinyRandomModel();
    expect(() => ensureModels({ publicDir: root, only: ['nope'] })).toThrow(GenModelsError);
    expect(() => buildGpt2Onnx(config, weights, { variant: 'bogus' as never })).toThrow(/unknown GPT-2 graph variant "bogus"/);
    expect(() => buildGpt2Onnx({ ...config, nHead: 5 }, weights)).toThrow(Gpt2GraphError);
    const short = { ...weights, blocks: weights.blocks.map((b) => ({ ...b, fcB: b.fcB.subarray(1) })) };
    expect(() => buildGpt2Onnx(config, short)).toThrow(/blocks\[0\]\.fcB has 127 values, expected 128/);
    expect(() => plantedGpt2([])).toThrow(PlantedModelError);
  });
});
