import { describe, expect, it } from 'vitest';
import type { Gpt2BlockWeights, Gpt2Config, Gpt2Weights } from '../src/lib/model/gpt2-types.ts';
import { gelu, geluFast, referenceForward, ReferenceForwardError } from '../src/lib/model/reference-forward.ts';

const f32 = (xs: number[]) => Float32Array.from(xs);

/** GELU tanh approximation, written out independently of the module under test. */
const geluByHand = (x: number) => 0.5 * x * (1 + Math.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3)));

/** Deterministic PRNG (mulberry32) for random weights. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomModel(config: Gpt2Config, seed: number, zeroPositions = false): Gpt2Weights {
  const rand = rng(seed);
  const r = (n: number, scale = 0.5, offset = 0) => Float32Array.from({ length: n }, () => offset + (rand() * 2 - 1) * scale);
  const { dModel: d, dMlp, nLayer, vocabSize, nCtx } = config;
  return {
    wte: r(vocabSize * d, 1),
    wpe: zeroPositions ? new Float32Array(nCtx * d) : r(nCtx * d, 1),
    lnfGamma: r(d, 0.2, 1),
    lnfBeta: r(d, 0.1),
    blocks: Array.from({ length: nLayer }, (): Gpt2BlockWeights => ({
      ln1Gamma: r(d, 0.2, 1), ln1Beta: r(d, 0.1),
      attnW: r(d * 3 * d), attnB: r(3 * d, 0.1),
      attnProjW: r(d * d), attnProjB: r(d, 0.1),
      ln2Gamma: r(d, 0.2, 1), ln2Beta: r(d, 0.1),
      fcW: r(d * dMlp), fcB: r(dMlp, 0.1),
      projW: r(dMlp * d), projB: r(d, 0.1),
    })),
  };
}

const smallConfig: Gpt2Config = { nLayer: 3, nHead: 2, dModel: 8, dMlp: 16, nCtx: 16, vocabSize: 20, layerNormEps: 1e-5 };

function rows(a: Float32Array, width: number, from: number, to: number): number[] {
  return Array.from(a.subarray(from * width, to * width));
}

describe('gelu and geluFast', () => {
  it('take the textbook values', () => {
    // Values of 0.5x(1+tanh(√(2/π)(x+0.044715x³))) and x/(1+e^(−1.702x)) from a calculator.
    expect(gelu(0)).toBe(0);
    expect(gelu(1)).toBeCloseTo(0.8411919906082768, 14);
    expect(gelu(-1)).toBeCloseTo(-0.15880800939172324, 14);
    expect(gelu(2)).toBeCloseTo(1.954597694087775, 14);
    expect(geluFast(0)).toBe(0);
    expect(geluFast(1)).toBeCloseTo(0.8457957659328212, 14);
    expect(geluFast(-1)).toBeCloseTo(-0.1542042340671787, 14);
    expect(geluFast(-3)).toBeCloseTo(-0.01807130970778597, 14);
    expect(gelu(50)).toBe(50);
    expect(geluFast(-50)).toBeCloseTo(0, 30);
  });

  it('differ by at most about 0.02, largest near x = -2.3', () => {
    let maxDiff = 0;
    let argMax = 0;
    for (let x = -10; x <= 10; x += 0.001) {
      const diff = Math.abs(gelu(x) - geluFast(x));
      if (diff > maxDiff) [maxDiff, argMax] = [diff, x];
    }
    expect(maxDiff).toBeGreaterThan(0.019);
    expect(maxDiff).toBeLessThan(0.022);
    expect(argMax).toBeCloseTo(-2.29, 1);
  });
});

describe('referenceForward on hand-worked models', () => {
  it('computes a 1-layer, d_model-2 model step by step', () => {
    const eps = 1e-5;
    const config: Gpt2Config = { nLayer: 1, nHead: 1, dModel: 2, dMlp: 3, nCtx: 4, vocabSize: 3, layerNormEps: eps };
    const weights: Gpt2Weights = {
      wte: f32([1, 0, /**/ 0, 1, /**/ 2, -1]),
      wpe: f32([0, 0, /**/ 0.5, 0, /**/ 0, 0, /**/ 0, 0]),
      lnfGamma: f32([1, 1]),
      lnfBeta: f32([0, 0]),
      blocks: [{
        ln1Gamma: f32([1, 1]), ln1Beta: f32([0, 0]),
        // Columns q0 q1 | k0 k1 | v0 v1:  W_q = 0.5·I, W_k = I, W_v swaps the two dimensions.
        attnW: f32([0.5, 0, 1, 0, 0, 1, /**/ 0, 0.5, 0, 1, 1, 0]),
        attnB: f32([0, 0, 0, 0, 0.1, 0]),
        attnProjW: f32([1, 0.5, /**/ 0, 1]), // y = [a0, 0.5·a0 + a1]
        attnProjB: f32([0, 0]),
        ln2Gamma: f32([1, 1]), ln2Beta: f32([0.1, 0]),
        fcW: f32([1, 0, 1, /**/ 0, 1, 1]), // z = [n0, n1, n0 + n1 + 0.5]
        fcB: f32([0, 0, 0.5]),
        projW: f32([1, 0, /**/ 0, 1, /**/ 0, 0]), // the third neuron does not write back
        projB: f32([0, 0]),
      }],
    };

    // LayerNorm of [a, b] (γ = 1, β = 0): centred values ±(a−b)/2, variance ((a−b)/2)².
    const ln = (a: number, b: number): [number, number] => {
      const half = (a - b) / 2;
      const s = half / Math.sqrt(half * half + eps);
      return [s, -s];
    };
    // Tokens [0, 1]: x0 = wte0 + wpe0, x1 = wte1 + wpe1.
    const x0 = [1, 0];
    const x1 = [0.5, 1];
    const c0 = 0.5 / Math.sqrt(0.25 + eps); // ln1(x0) = [c0, −c0]
    const c1 = 0.25 / Math.sqrt(0.0625 + eps); // ln1(x1) = [−c1, c1]
    expect(ln(1, 0)).toEqual([c0, -c0]);
    // q = 0.5u, k = u, v = swap(u) + [0.1, 0]
    const v0 = [-c0 + 0.1, c0];
    const v1 = [c1 + 0.1, -c1];
    // Position 0 sees only itself. Position 1: scores q1·k0/√2 and q1·k1/√2 (≈ −0.71 and 0.71).
    const s0 = (0.5 * (-c1 * c0 - c1 * c0)) / Math.SQRT2;
    const s1 = (0.5 * (c1 * c1 + c1 * c1)) / Math.SQRT2;
    const p0 = Math.exp(s0) / (Math.exp(s0) + Math.exp(s1));
    const p1 = 1 - p0;
    const a0 = v0;
    const a1 = [p0 * v0[0] + p1 * v1[0], p0 * v0[1] + p1 * v1[1]];
    const h0 = [x0[0] + a0[0], x0[1] + 0.5 * a0[0] + a0[1]];
    const h1 = [x1[0] + a1[0], x1[1] + 0.5 * a1[0] + a1[1]];
    const mlp = (h: number[]) => {
      const [n0, n1] = ln(h[0], h[1]);
      return [n0 + 0.1, n1, n0 + 0.1 + n1 + 0.5].map(geluByHand);
    };
    const m0 = mlp(h0);
    const m1 = mlp(h1);
    const out0 = [h0[0] + m0[0], h0[1] + m0[1]];
    const out1 = [h1[0] + m1[0], h1[1] + m1[1]];
    const logitsOf = (out: number[]) => {
      const [y0, y1] = ln(out[0], out[1]);
      return [y0 * 1 + y1 * 0, y0 * 0 + y1 * 1, y0 * 2 + y1 * -1];
    };

    const result = referenceForward(config, weights, [0, 1], { logits: true });
    expect(result.mlpPost).toHaveLength(1);
    expect(result.mlpPost[0]).toHaveLength(6);
    const expectedPost = [...m0, ...m1];
    const expectedLogits = [...logitsOf(out0), ...logitsOf(out1)];
    result.mlpPost[0].forEach((v, i) => expect(v).toBeCloseTo(expectedPost[i], 6));
    result.logits!.forEach((v, i) => expect(v).toBeCloseTo(expectedLogits[i], 5));
    // Sanity: the worked numbers are not degenerate.
    expect(p0).toBeGreaterThan(0.01);
    expect(p0).toBeLessThan(0.5);
  });

  it('splits attention into heads of d_head columns, each with its own softmax and 1/√d_head scale', () => {
    const eps = 1e-5;
    const config: Gpt2Config = { nLayer: 1, nHead: 2, dModel: 4, dMlp: 2, nCtx: 2, vocabSize: 2, layerNormEps: eps };
    const I4 = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
    const Wq = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 3, 0, 0, 0, 0, 3]; // head 0 ×1, head 1 ×3
    // attnW is [4, 12]: row r holds Wq[r] | Wk[r] | Wv[r].
    const attnW: number[] = [];
    for (let r = 0; r < 4; r++) attnW.push(...Wq.slice(4 * r, 4 * r + 4), ...I4.slice(4 * r, 4 * r + 4), ...I4.slice(4 * r, 4 * r + 4));
    const weights: Gpt2Weights = {
      // Both embeddings have mean 0 and variance 1, so ln1(x) = x/√(1+ε).
      wte: f32([1, -1, 1, -1, /**/ 1.4, -1.4, 0.2, -0.2]),
      wpe: new Float32Array(8),
      lnfGamma: f32([1, 1, 1, 1]),
      lnfBeta: f32([0, 0, 0, 0]),
      blocks: [{
        ln1Gamma: f32([1, 1, 1, 1]), ln1Beta: f32([0, 0, 0, 0]),
        attnW: f32(attnW), attnB: new Float32Array(12),
        attnProjW: f32(I4), attnProjB: new Float32Array(4),
        ln2Gamma: f32([1, 1, 1, 1]), ln2Beta: f32([0, 0, 0, 0]),
        fcW: f32([1, 0, /**/ 0, 0, /**/ 0, 1, /**/ 0, 0]), // neuron 0 reads dim 0, neuron 1 dim 2
        fcB: f32([0, 0]),
        projW: new Float32Array(8), projB: new Float32Array(4),
      }],
    };
    const x0 = [1, -1, 1, -1];
    const x1 = [1.4, -1.4, 0.2, -0.2];
    const k = 1 / Math.sqrt(1 + eps);
    const u0 = x0.map((v) => v * k);
    const u1 = x1.map((v) => v * k);
    // Position 1, head 0 (dims 0–1, q = u): scores u1·u0/√2 = 2.8k²/√2 and u1·u1/√2 = 3.92k²/√2.
    // Head 1 (dims 2–3, q = 3u): 3·0.4k²/√2 and 3·0.08k²/√2.
    const mix = (sa: number, sb: number, dims: number[]) => {
      const pa = Math.exp(sa) / (Math.exp(sa) + Math.exp(sb));
      return dims.map((c) => pa * u0[c] + (1 - pa) * u1[c]);
    };
    const head0 = mix((2.8 * k * k) / Math.SQRT2, (3.92 * k * k) / Math.SQRT2, [0, 1]);
    const head1 = mix((3 * 0.4 * k * k) / Math.SQRT2, (3 * 0.08 * k * k) / Math.SQRT2, [2, 3]);
    const h1 = [x1[0] + head0[0], x1[1] + head0[1], x1[2] + head1[0], x1[3] + head1[1]];
    const h0 = x0.map((v, i) => v + u0[i]); // position 0 attends only to itself: output v0 = u0
    const layerNorm4 = (h: number[]) => {
      const mean = (h[0] + h[1] + h[2] + h[3]) / 4;
      const variance = h.reduce((s, v) => s + (v - mean) ** 2, 0) / 4;
      return h.map((v) => (v - mean) / Math.sqrt(variance + eps));
    };
    const n0 = layerNorm4(h0);
    const n1 = layerNorm4(h1);
    const expected = [geluByHand(n0[0]), geluByHand(n0[2]), geluByHand(n1[0]), geluByHand(n1[2])];

    const { mlpPost } = referenceForward(config, weights, [0, 1]);
    Array.from(mlpPost[0]).forEach((v, i) => expect(v).toBeCloseTo(expected[i], 6));
  });
});

describe('referenceForward properties', () => {
  const weights = randomModel(smallConfig, 1);
  const ids = [3, 7, 1, 19, 0, 4, 4, 12, 9, 2];
  const full = referenceForward(smallConfig, weights, ids, { logits: true });
  const width = smallConfig.dMlp;

  it('returns one [seq, dMlp] array per layer and [seq, vocab] logits', () => {
    expect(full.mlpPost).toHaveLength(3);
    for (const a of full.mlpPost) {
      expect(a).toBeInstanceOf(Float32Array);
      expect(a).toHaveLength(ids.length * width);
      expect(a.every(Number.isFinite)).toBe(true);
    }
    expect(full.logits).toHaveLength(ids.length * smallConfig.vocabSize);
    expect(referenceForward(smallConfig, weights, ids).logits).toBeUndefined();
  });

  it('is causal: changing token k leaves positions before k untouched and changes k onwards', () => {
    const k = 6;
    const changed = ids.slice();
    changed[k] = 15;
    const other = referenceForward(smallConfig, weights, changed, { logits: true });
    for (let l = 0; l < smallConfig.nLayer; l++) {
      expect(rows(other.mlpPost[l], width, 0, k)).toEqual(rows(full.mlpPost[l], width, 0, k));
      expect(rows(other.mlpPost[l], width, k, k + 1)).not.toEqual(rows(full.mlpPost[l], width, k, k + 1));
    }
    // A later position only sees token k through attention, from layer 0's attention onwards.
    expect(rows(other.mlpPost[0], width, k + 1, ids.length)).not.toEqual(rows(full.mlpPost[0], width, k + 1, ids.length));
    const v = smallConfig.vocabSize;
    expect(rows(other.logits!, v, 0, k)).toEqual(rows(full.logits!, v, 0, k));
  });

  it('gives a prefix the same activations as the same positions of the longer text', () => {
    const prefix = referenceForward(smallConfig, weights, ids.slice(0, 4));
    for (let l = 0; l < smallConfig.nLayer; l++) {
      expect(Array.from(prefix.mlpPost[l])).toEqual(rows(full.mlpPost[l], width, 0, 4));
    }
  });

  it('without position embeddings, ignores the order of the context and repeats itself on repeated tokens', () => {
    const noPos = randomModel(smallConfig, 2, true);
    const a = referenceForward(smallConfig, noPos, [5, 9, 13, 2, 8]);
    const b = referenceForward(smallConfig, noPos, [13, 2, 9, 5, 8]); // same set before the last token
    // Layer 0's attention at the last position sums over the set {0…4}, whatever its order.
    // (From layer 1 on, earlier positions carry their own, now different, prefixes.)
    const lastA = rows(a.mlpPost[0], width, 4, 5);
    const lastB = rows(b.mlpPost[0], width, 4, 5);
    lastA.forEach((v, i) => expect(v).toBeCloseTo(lastB[i], 5));
    expect(rows(a.mlpPost[0], width, 0, 1)).not.toEqual(rows(b.mlpPost[0], width, 0, 1));
    const c = referenceForward(smallConfig, noPos, [7, 7, 7, 7]);
    for (let l = 0; l < smallConfig.nLayer; l++) {
      for (let p = 1; p < 4; p++) {
        rows(c.mlpPost[l], width, p, p + 1).forEach((v, i) => expect(v).toBeCloseTo(c.mlpPost[l][i], 5));
      }
    }
    // With position embeddings the order matters again.
    const withPos = randomModel(smallConfig, 2, false);
    const pa = referenceForward(smallConfig, withPos, [5, 9, 13, 2, 8]);
    const pb = referenceForward(smallConfig, withPos, [13, 2, 9, 5, 8]);
    const diff = rows(pa.mlpPost[0], width, 4, 5).map((v, i) => Math.abs(v - pb.mlpPost[0][4 * width + i]));
    expect(Math.max(...diff)).toBeGreaterThan(1e-3);
  });

  it('unembeds with the token embeddings (tied weights)', () => {
    const t = 11; // not among the input ids
    expect(ids).not.toContain(t);
    const edited: Gpt2Weights = { ...weights, wte: weights.wte.slice() };
    for (let c = 0; c < smallConfig.dModel; c++) edited.wte[t * smallConfig.dModel + c] += 0.25;
    const out = referenceForward(smallConfig, edited, ids, { logits: true });
    for (let l = 0; l < smallConfig.nLayer; l++) expect(out.mlpPost[l]).toEqual(full.mlpPost[l]);
    const v = smallConfig.vocabSize;
    for (let i = 0; i < ids.length; i++) {
      for (let u = 0; u < v; u++) {
        const before = full.logits![i * v + u];
        const after = out.logits![i * v + u];
        if (u === t) expect(after).not.toBe(before);
        else expect(after).toBe(before);
      }
    }
  });

  it('returns only the requested layers, in the requested order', () => {
    const some = referenceForward(smallConfig, weights, ids, { layers: [2, 0] });
    expect(some.mlpPost).toHaveLength(2);
    expect(some.mlpPost[0]).toEqual(full.mlpPost[2]);
    expect(some.mlpPost[1]).toEqual(full.mlpPost[0]);
    expect(some.logits).toBeUndefined();
    const withLogits = referenceForward(smallConfig, weights, ids, { layers: [0], logits: true });
    expect(withLogits.mlpPost).toEqual([full.mlpPost[0]]);
    expect(withLogits.logits).toEqual(full.logits);
    expect(referenceForward(smallConfig, weights, ids, { layers: [] }).mlpPost).toEqual([]);
  });

  it("with gelu 'sigmoid' differs from 'tanh' by the small GELU approximation gap", () => {
    const sig = referenceForward(smallConfig, weights, ids, { gelu: 'sigmoid' });
    // Layer 0's pre-activations are identical in both runs, so its activations differ exactly
    // by |gelu(z) − geluFast(z)| ≤ 0.0207.
    const diff0 = Array.from(sig.mlpPost[0], (v, i) => Math.abs(v - full.mlpPost[0][i]));
    expect(Math.max(...diff0)).toBeGreaterThan(1e-4);
    expect(Math.max(...diff0)).toBeLessThan(0.021);
    // Later layers inherit the change through the residual stream but stay close.
    const diff2 = Array.from(sig.mlpPost[2], (v, i) => Math.abs(v - full.mlpPost[2][i]));
    expect(Math.max(...diff2)).toBeGreaterThan(1e-4);
    expect(Math.max(...diff2)).toBeLessThan(0.5);
  });

  it('handles an empty sequence', () => {
    const empty = referenceForward(smallConfig, weights, [], { logits: true });
    expect(empty.mlpPost.map((a) => a.length)).toEqual([0, 0, 0]);
    expect(empty.logits).toHaveLength(0);
  });
});

describe('referenceForward rejects bad input', () => {
  const weights = randomModel(smallConfig, 3);
  const bad = (fn: () => unknown, pattern: RegExp) => {
    expect(fn).toThrow(ReferenceForwardError);
    expect(fn).toThrow(pattern);
  };

  it('rejects bad token ids, too-long inputs and unknown layers', () => {
    bad(() => referenceForward(smallConfig, weights, [1, 20]), /tokenIds\[1\] = 20/);
    bad(() => referenceForward(smallConfig, weights, [-1]), /tokenIds\[0\]/);
    bad(() => referenceForward(smallConfig, weights, [1.5]), /tokenIds\[0\]/);
    bad(() => referenceForward(smallConfig, weights, new Array(17).fill(0)), /context window of 16/);
    bad(() => referenceForward(smallConfig, weights, [1], { layers: [3] }), /layer 3/);
    bad(() => referenceForward(smallConfig, weights, [1], { gelu: 'erf' as 'tanh' }), /gelu/);
  });

  it('rejects weights that do not match the config', () => {
    bad(() => referenceForward({ ...smallConfig, nLayer: 4 }, weights, [1]), /3 blocks/);
    bad(() => referenceForward({ ...smallConfig, nHead: 3 }, weights, [1]), /divisible/);
    bad(() => referenceForward({ ...smallConfig, vocabSize: 21 }, weights, [1]), /wte/);
    const shortFc = { ...weights, blocks: weights.blocks.map((b, l) => (l === 1 ? { ...b, fcW: new Float32Array(5) } : b)) };
    bad(() => referenceForward(smallConfig, shortFc, [1]), /blocks\[1\]\.fcW has 5 values, expected 128/);
    const missing = { ...weights, lnfBeta: undefined as unknown as Float32Array };
    bad(() => referenceForward(smallConfig, missing, [1]), /lnfBeta is missing/);
  });
});
