/**
 * Ablating the toy model's planted neurons (src/lib/causal/ablation.ts on the bundled
 * toy-planted model, onnxruntime-node), checked against the planted wiring
 * (scripts/toy/planted-model.ts) and the float64 reference forward pass:
 *
 * - 1:91 (closing quotes) is in the last block, so zeroing it can only take a_t · W_out[91] out of
 *   the final residual stream: the logits must be exactly LN_f(x_t − a_t · W_out[91]) · W_Eᵀ.
 * - 0:203 (" the") writes only noise dimensions; the after-" the" neuron 1:222 reads the " the"
 *   flag moved by attention, not 0:203's output, so it must keep firing where it did.
 * - Nothing before the edited neuron, and no other neuron of its layer, may change at all.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureModels } from '../scripts/gen-models.ts';
import { plantedToyModel } from '../scripts/toy/models.ts';
import type { PlantedModel } from '../scripts/toy/planted-model.ts';
import { ablateText } from '../src/lib/causal/ablation.ts';
import { ActivationCapturer } from '../src/lib/model/capture.ts';
import { dirSource } from '../src/lib/model/dir-source.node.ts';
import { loadModel } from '../src/lib/model/load-model.ts';
import { loadNodeRuntime } from '../src/lib/model/ort-runtime.node.ts';
import { referenceForward } from '../src/lib/model/reference-forward.ts';
import { TextTooLongError } from '../src/lib/model/text-errors.ts';

const TEXT = 'In 1999 the "cats" left. She said, "the dog," and the old house in Boston had 42 windows."';

let toy: PlantedModel;
let capturer: ActivationCapturer;

beforeAll(async () => {
  ensureModels({ log: () => {}, only: ['toy-planted'] });
  toy = plantedToyModel();
  capturer = new ActivationCapturer(await loadModel(await dirSource(join(import.meta.dirname, '../public/models/toy-planted'))), await loadNodeRuntime('node'));
}, 60_000);

afterAll(async () => {
  await capturer?.dispose();
});

const planted = (id: string) => toy.planted.find((p) => p.id === id)!;

/** LayerNorm of one row in float64. */
function layerNorm(x: Float64Array, gamma: Float32Array, beta: Float32Array, eps: number): Float64Array {
  const d = x.length;
  const mean = x.reduce((a, b) => a + b, 0) / d;
  const variance = x.reduce((a, b) => a + (b - mean) ** 2, 0) / d;
  return x.map((v, k) => ((v - mean) / Math.sqrt(variance + eps)) * gamma[k] + beta[k]);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('ablating planted neurons', () => {
  it('zeroing 1:91 removes exactly a_t · W_out[91] from the final residual stream, nothing else', async () => {
    const p = planted('closing-quote');
    const tokens = capturer.tokenize(TEXT);
    const ids = tokens.map((t) => t.id);
    const texts = tokens.map((t) => t.text);
    const original = await capturer.runTokens([ids], { logits: true, edits: [] });
    const ablated = await capturer.runTokens([ids], { logits: true, edits: [{ layer: p.layer, neuron: p.neuron, value: 0 }] });
    const { dMlp, dModel: d, vocabSize: V, layerNormEps } = toy.config;

    // Layer 0 is untouched bit for bit; in layer 1 only neuron 91 changes, to exactly 0.
    expect(ablated.layers.get(0)).toEqual(original.layers.get(0));
    const before = original.layers.get(1)!;
    const after = ablated.layers.get(1)!;
    for (let i = 0; i < after.length; i++) expect(after[i]).toBe(i % dMlp === p.neuron ? 0 : before[i]);

    // The planted neuron fires on closing quotes only (so there is something to remove there).
    tokens.forEach((_, t) => {
      const a = before[t * dMlp + p.neuron];
      if (p.matches(texts, t)) expect(a).toBeGreaterThan(3);
      else expect(Math.abs(a)).toBeLessThan(0.05);
    });
    expect(texts.filter((_, t) => p.matches(texts, t)).length).toBeGreaterThanOrEqual(3);

    // Prediction from the wiring: logits_t = LN_f(x_t − a_t · W_out[91]) · W_Eᵀ, in float64.
    const ref = referenceForward(toy.config, toy.weights, ids, { logits: true });
    const projW = toy.weights.blocks[p.layer].projW;
    const refActivations = ref.mlpPost[p.layer];
    let largestChange = 0;
    let worst = 0;
    for (let t = 0; t < ids.length; t++) {
      const x = ref.finalResidual!.slice(t * d, (t + 1) * d);
      const a = refActivations[t * dMlp + p.neuron];
      const edited = layerNorm(x.map((v, k) => v - a * projW[p.neuron * d + k]), toy.weights.lnfGamma, toy.weights.lnfBeta, layerNormEps);
      for (let v = 0; v < V; v++) {
        let logit = 0;
        for (let k = 0; k < d; k++) logit += edited[k] * toy.weights.wte[v * d + k];
        const predictedChange = logit - ref.logits![t * V + v];
        const observedChange = ablated.logits![t * V + v] - original.logits![t * V + v];
        largestChange = Math.max(largestChange, Math.abs(predictedChange));
        worst = Math.max(worst, Math.abs(observedChange - predictedChange));
      }
    }
    expect(largestChange).toBeGreaterThan(0.1);
    expect(worst).toBeLessThan(1e-4);
  });

  it('zeroing 0:203 (" the") changes what reads it, but not the after-" the" neuron, which reads attention', async () => {
    const the = planted('the');
    const afterThe = planted('after-the');
    const tokens = capturer.tokenize(TEXT);
    const ids = tokens.map((t) => t.id);
    const texts = tokens.map((t) => t.text);
    const { dMlp } = toy.config;
    const original = await capturer.runTokens([ids], { logits: true, edits: [] });
    const ablated = await capturer.runTokens([ids], { logits: true, edits: [{ layer: 0, neuron: the.neuron, value: 0 }] });
    const zero = (layer: number, h: Float64Array) => {
      if (layer === 0) for (let t = 0; t < ids.length; t++) h[t * dMlp + the.neuron] = 0;
    };
    const ref = referenceForward(toy.config, toy.weights, ids, { logits: true, editMlp: zero });
    const plainRef = referenceForward(toy.config, toy.weights, ids, { logits: true });

    // Layer 0: only 203 changes. Layer 1 and the logits: as the reference computes them with the same edit.
    const before0 = original.layers.get(0)!;
    const after0 = ablated.layers.get(0)!;
    for (let i = 0; i < after0.length; i++) expect(after0[i]).toBe(i % dMlp === the.neuron ? 0 : before0[i]);
    expect(maxAbsDiff(ablated.layers.get(1)!, ref.mlpPost[1])).toBeLessThan(1e-5);
    expect(maxAbsDiff(ablated.logits!, ref.logits!)).toBeLessThan(1e-4);
    expect(maxAbsDiff(ref.mlpPost[1], plainRef.mlpPost[1])).toBeGreaterThan(1e-3);

    // The after-" the" neuron still fires right after each " the", within 1%, and nowhere else.
    tokens.forEach((_, t) => {
      const was = original.layers.get(1)![t * dMlp + afterThe.neuron];
      const now = ablated.layers.get(1)![t * dMlp + afterThe.neuron];
      if (afterThe.matches(texts, t)) {
        expect(was).toBeGreaterThan(3);
        expect(Math.abs(now - was) / was).toBeLessThan(0.01);
      } else expect(Math.abs(now)).toBeLessThan(0.05);
    });
  });

  it('reports where the neuron matters: the largest KL is where it fires', async () => {
    const p = planted('closing-quote');
    const result = await ablateText(capturer, TEXT, [{ layer: p.layer, neuron: p.neuron, value: 0 }]);
    const texts = result.tokens.map((t) => t.text);
    const firing = texts.map((_, t) => p.matches(texts, t));
    expect(result.positions).toHaveLength(texts.length);
    const top = result.summary.top.slice(0, firing.filter(Boolean).length);
    for (const entry of top) {
      expect(firing[entry.position], `${entry.position} ${entry.token}`).toBe(true);
      expect(entry.token).toBe(texts[entry.position]);
    }
    const quietest = Math.min(...result.positions.filter((_, t) => firing[t]).map((x) => x.kl));
    const loudestElsewhere = Math.max(...result.positions.filter((_, t) => !firing[t]).map((x) => x.kl));
    expect(quietest).toBeGreaterThan(100 * loudestElsewhere);
    expect(result.summary.maxKl).toBe(Math.max(...result.positions.map((x) => x.kl)));
    expect(result.summary.meanKl).toBeCloseTo(result.positions.reduce((a, x) => a + x.kl, 0) / texts.length, 15);
    // The neuron's trace: its real activations and the edited ones (all 0).
    expect(result.neurons).toHaveLength(1);
    expect(result.neurons[0].edited.every((v) => v === 0)).toBe(true);
    expect(result.neurons[0].original.filter((v) => v > 3).length).toBe(firing.filter(Boolean).length);

    // Per position: top tokens sorted, probabilities in [0, 1], gains rise and losses fall.
    for (const pos of result.positions) {
      expect(pos.original).toHaveLength(10);
      for (const list of [pos.original, pos.edited]) {
        for (let i = 1; i < list.length; i++) expect(list[i].p).toBeLessThanOrEqual(list[i - 1].p);
      }
      for (const g of pos.gained) expect(g.after).toBeGreaterThan(g.before);
      for (const l of pos.lost) expect(l.after).toBeLessThan(l.before);
      for (let i = 1; i < pos.gained.length; i++) expect(pos.gained[i].after - pos.gained[i].before).toBeLessThanOrEqual(pos.gained[i - 1].after - pos.gained[i - 1].before);
      expect(pos.kl).toBeGreaterThanOrEqual(0);
    }
  });

  it('scale 1 changes nothing at all; scale K multiplies; the same call gives the same result', async () => {
    const p = planted('digits');
    const one = await ablateText(capturer, TEXT, [{ layer: p.layer, neuron: p.neuron, scale: 1 }]);
    for (const pos of one.positions) {
      expect(pos.kl).toBe(0);
      expect(pos.edited).toEqual(pos.original);
      expect(pos.gained).toEqual([]);
      expect(pos.lost).toEqual([]);
    }
    expect(one.neurons[0].edited).toEqual(one.neurons[0].original);
    const steered = await ablateText(capturer, TEXT, [{ layer: p.layer, neuron: p.neuron, scale: -3 }], { top: 3, summaryPositions: 2 });
    steered.neurons[0].edited.forEach((v, t) => expect(v).toBe(Math.fround(-3 * steered.neurons[0].original[t])));
    expect(steered.positions[0].original).toHaveLength(3);
    expect(steered.summary.top).toHaveLength(2);
    expect(await ablateText(capturer, TEXT, [{ layer: p.layer, neuron: p.neuron, scale: -3 }], { top: 3, summaryPositions: 2 })).toEqual(steered);
  });

  it('refuses bad requests with clear errors', async () => {
    await expect(ablateText(capturer, TEXT, [])).rejects.toThrow(/at least one neuron/);
    await expect(ablateText(capturer, TEXT, [{ layer: 2, neuron: 0, value: 0 }])).rejects.toThrow(/layer 2 is out of range/);
    await expect(ablateText(capturer, TEXT, [{ layer: 0, neuron: 256, value: 0 }])).rejects.toThrow(/neuron 0:256 is out of range/);
    await expect(ablateText(capturer, 'two tokens', [{ layer: 0, neuron: 1, value: [1, 2, 3] }])).rejects.toThrow(/3 values for 1 × 2 = 2 tokens/);
    await expect(ablateText(capturer, '', [{ layer: 0, neuron: 1, value: 0 }])).rejects.toThrow(/the text is empty/);
    await expect(ablateText(capturer, ' the'.repeat(1025), [{ layer: 0, neuron: 1, value: 0 }])).rejects.toThrow(TextTooLongError);
    await expect(ablateText(capturer, TEXT, [{ layer: 0, neuron: 1, value: 0 }], { top: 0 })).rejects.toThrow(/top must be a positive whole number/);
  });
});
