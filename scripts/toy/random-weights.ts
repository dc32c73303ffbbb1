/**
 * Deterministic pseudo-random GPT-2 weights (no Math.random: the same seed gives the same bytes
 * on every machine and run).
 */
import type { Gpt2BlockWeights, Gpt2Config, Gpt2Weights } from '../../src/lib/model/gpt2-types.ts';

/** splitmix32: a tiny, well-mixed 32-bit generator; returns uniform floats in [0, 1). */
export function splitmix32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    return z / 4294967296;
  };
}

/** FNV-1a hash of a string, used to give every tensor its own random stream. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** A seeded stream of standard normal numbers (Box–Muller). */
export class NormalRng {
  private readonly uniform: () => number;
  private spare: number | null = null;

  constructor(seed: number, stream = '') {
    this.uniform = splitmix32((seed ^ hashString(stream)) >>> 0);
  }

  next(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    // 1 - u keeps the log argument in (0, 1].
    const r = Math.sqrt(-2 * Math.log(1 - this.uniform()));
    const theta = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** Fills `out` with mean + std · N(0, 1) and returns it. */
  fill(out: Float32Array, std: number, mean = 0): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.next();
    return out;
  }

  uniformFloat(): number {
    return this.uniform();
  }
}

/**
 * Random GPT-2 weights that keep activations in a useful range: projections are N(0, scale²/fan_in)
 * so every pre-activation is roughly unit-variance (GELU neurons see both signs without saturating),
 * embeddings are small like GPT-2's init, LayerNorm gains are 1 + small noise and biases small.
 * `scale` multiplies the standard deviation of every weight matrix and embedding.
 * Every tensor draws from its own stream (seed, tensor name), so tensors are independent of the
 * order they are generated in.
 */
export function randomGpt2Weights(config: Gpt2Config, seed: number, scale = 1): Gpt2Weights {
  const { dModel: d, dMlp, nCtx, vocabSize, nLayer } = config;
  const draw = (name: string, length: number, std: number, mean = 0): Float32Array =>
    new NormalRng(seed, name).fill(new Float32Array(length), std, mean);
  const gain = (name: string): Float32Array => draw(name, d, 0.05, 1);

  const blocks: Gpt2BlockWeights[] = [];
  for (let l = 0; l < nLayer; l++) {
    const p = `h.${l}.`;
    blocks.push({
      ln1Gamma: gain(p + 'ln_1.weight'),
      ln1Beta: draw(p + 'ln_1.bias', d, 0.02),
      attnW: draw(p + 'attn.c_attn.weight', d * 3 * d, scale / Math.sqrt(d)),
      attnB: draw(p + 'attn.c_attn.bias', 3 * d, 0.02),
      attnProjW: draw(p + 'attn.c_proj.weight', d * d, (0.5 * scale) / Math.sqrt(d)),
      attnProjB: draw(p + 'attn.c_proj.bias', d, 0.02),
      ln2Gamma: gain(p + 'ln_2.weight'),
      ln2Beta: draw(p + 'ln_2.bias', d, 0.02),
      fcW: draw(p + 'mlp.c_fc.weight', d * dMlp, scale / Math.sqrt(d)),
      fcB: draw(p + 'mlp.c_fc.bias', dMlp, 0.2),
      projW: draw(p + 'mlp.c_proj.weight', dMlp * d, (0.5 * scale) / Math.sqrt(dMlp)),
      projB: draw(p + 'mlp.c_proj.bias', d, 0.02),
    });
  }
  return {
    wte: draw('wte', vocabSize * d, 0.1 * scale),
    wpe: draw('wpe', nCtx * d, 0.02 * scale),
    blocks,
    lnfGamma: gain('ln_f.weight'),
    lnfBeta: draw('ln_f.bias', d, 0.02),
  };
}
