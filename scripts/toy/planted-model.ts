/**
 * A toy GPT-2 whose weights are wired by hand so that a few MLP neurons respond to known things:
 * ground truth for testing neuron explanations.
 *
 * Mechanism. The 64-dimensional residual stream is split into named parts:
 * - dims 0–23: position code, six frequencies ω_f as (sin ω_f·p, cos ω_f·p, −sin, −cos);
 * - dims 24–27: a position-0 marker, (Z, −Z, 0, 0) at position 0 and (0, 0, Z, −Z) elsewhere;
 * - dims 28–32: feature flags (digits, capitalised, closing quote, " the", previous token " the");
 * - dims 33–63: per-token random noise.
 * Every wte row and every wpe row sums to zero and has a fixed squared norm (50 and 14), so the
 * embedding sum has mean 0 and variance exactly 1 and the first LayerNorm is (almost exactly) the
 * identity: flags reach the MLPs with a known size. A planted neuron's c_fc column reads only its
 * flag (weight 3.5 on a flag of 2) with bias −3, so it gives GELU(≈4) ≈ 4 when the flag is set and
 * GELU(−3) ≈ −0.004 otherwise. MLP outputs only write into the noise dims, so flags and positions
 * pass unchanged to layer 1.
 * Neuron "after-the" uses a previous-token head (layer 0, head 1): its query and key read only
 * the position code, with q_i·k_j/√d_head = A·Σ_f cos(ω_f·(i−1−j)), which peaks at j = i−1 and is
 * at least A·1.65 lower at every other key up to distance 1023. Its value reads the " the" flag and
 * c_proj writes it into the "previous token is ' the'" flag; at position 0 (which can only see
 * itself) the position-0 marker switches the neuron off.
 * Everything else (the other heads, layer 1 attention) is zero, and the unplanted neurons are random.
 */
import type { Gpt2BlockWeights, Gpt2Config, Gpt2Weights } from '../../src/lib/model/gpt2-types.ts';
import { PLANTED_NEURON_RULES, PLANTED_TOKEN_TESTS } from '../../src/lib/model/planted-neurons.ts';
import { NormalRng } from './random-weights.ts';

/** One planted neuron and its ground-truth rule. */
export interface PlantedNeuron {
  layer: number;
  neuron: number;
  /** Short stable id, e.g. "digits". */
  id: string;
  /** One-line human explanation of what the neuron responds to. */
  description: string;
  /** Ground truth: does the neuron fire on token `index` of this sequence of decoded token texts? */
  matches(tokenTexts: string[], index: number): boolean;
}

/** The JSON-serialisable part of a PlantedNeuron (what planted.json holds). */
export interface PlantedNeuronInfo {
  layer: number;
  neuron: number;
  id: string;
  description: string;
  /** The exact rule, in words. */
  rule: string;
}

export interface PlantedModel {
  config: Gpt2Config;
  weights: Gpt2Weights;
  planted: PlantedNeuron[];
}

export class PlantedModelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PlantedModelError';
  }
}

export const PLANTED_SEED = 20230509;

/** Where things live in the planted model's residual stream (see the module comment). */
export const PLANTED_LAYOUT = {
  dModel: 64,
  frequencies: [0.0348, 1.1731, 1.7949, 0.8073, 0.0564, 0.0055],
  positionDims: 0, // 4 per frequency
  position0Dims: 24,
  flagDims: { digits: 28, capitalised: 29, closingQuote: 30, the: 31, afterThe: 32 },
  noiseDims: [33, 64] as const,
  flagValue: 2,
  positionMarker: 1,
  /** Squared norm of every wte row; 64 − this is the squared norm of every wpe row. */
  tokenNorm2: 50,
  attentionStrength: 9,
  prevTokenHead: 1,
  readWeight: 3.5,
  readBias: -3,
};

type FlagName = keyof typeof PLANTED_LAYOUT.flagDims;

interface PlantedSpec extends PlantedNeuronInfo {
  flag: FlagName;
  matches(tokenTexts: string[], index: number): boolean;
}

/** The residual-stream flag each planted neuron reads (the rules themselves: src/lib/model/planted-neurons.ts). */
const FLAG_OF: Record<string, FlagName> = {
  digits: 'digits',
  capitalised: 'capitalised',
  the: 'the',
  'closing-quote': 'closingQuote',
  'after-the': 'afterThe',
};

const PLANTED_SPECS: PlantedSpec[] = PLANTED_NEURON_RULES.map((rule) => ({ ...rule, flag: FLAG_OF[rule.id] }));

/** The planted neurons of plantedGpt2, without weights (cheap). */
export function plantedNeurons(): PlantedNeuron[] {
  return PLANTED_SPECS.map(({ layer, neuron, id, description, matches }) => ({ layer, neuron, id, description, matches }));
}

/** JSON-serialisable description of the planted neurons, written as planted.json. */
export function plantedNeuronInfos(): PlantedNeuronInfo[] {
  return PLANTED_SPECS.map(({ layer, neuron, id, description, rule }) => ({ layer, neuron, id, description, rule }));
}

/** Smallest drop of Σ_f cos(ω_f·Δ) below its peak over 1 ≤ |Δ| ≤ maxDistance. */
export function previousTokenMargin(frequencies: number[], maxDistance: number): number {
  let min = Infinity;
  for (let delta = 1; delta <= maxDistance; delta++) {
    let s = 0;
    for (const w of frequencies) s += Math.cos(w * delta);
    min = Math.min(min, frequencies.length - s);
  }
  return min;
}

/**
 * Builds the planted toy model for a vocabulary given as the decoded text of every token id.
 * Deterministic: the same vocabulary gives the same weights.
 */
export function plantedGpt2(vocab: string[]): PlantedModel {
  if (!Array.isArray(vocab) || vocab.length < 2 || vocab.some((t) => typeof t !== 'string')) {
    throw new PlantedModelError('plantedGpt2 needs the vocabulary as an array of token strings (one per id)');
  }
  const L = PLANTED_LAYOUT;
  const d = L.dModel;
  const config: Gpt2Config = { nLayer: 2, nHead: 4, dModel: d, dMlp: 256, nCtx: 1024, vocabSize: vocab.length, layerNormEps: 1e-5 };
  const dHead = d / config.nHead;
  const [noiseStart, noiseEnd] = L.noiseDims;
  const nNoise = noiseEnd - noiseStart;

  const margin = previousTokenMargin(L.frequencies, config.nCtx - 1);
  if (margin * L.attentionStrength < 12) {
    throw new PlantedModelError(`previous-token head too weak: margin ${margin.toFixed(3)} × strength ${L.attentionStrength}`);
  }

  // Token embeddings: flags plus zero-sum noise scaled so every row has squared norm tokenNorm2.
  const wte = new Float32Array(config.vocabSize * d);
  const tokenRng = new NormalRng(PLANTED_SEED, 'wte');
  const z = new Float64Array(nNoise);
  const tokenFlags: Array<[FlagName, (t: string) => boolean]> = [
    ['digits', PLANTED_TOKEN_TESTS.digits], ['capitalised', PLANTED_TOKEN_TESTS.capitalised],
    ['closingQuote', PLANTED_TOKEN_TESTS.closingQuote], ['the', PLANTED_TOKEN_TESTS.the],
  ];
  for (let t = 0; t < config.vocabSize; t++) {
    const row = t * d;
    let flagSum = 0;
    let flagSq = 0;
    for (const [name, test] of tokenFlags) {
      if (!test(vocab[t])) continue;
      wte[row + L.flagDims[name]] = L.flagValue;
      flagSum += L.flagValue;
      flagSq += L.flagValue * L.flagValue;
    }
    let mean = 0;
    for (let k = 0; k < nNoise; k++) mean += (z[k] = tokenRng.next()) / nNoise;
    let zSq = 0;
    for (let k = 0; k < nNoise; k++) zSq += (z[k] -= mean) ** 2;
    const offset = -flagSum / nNoise;
    const alpha = Math.sqrt((L.tokenNorm2 - flagSq - nNoise * offset * offset) / zSq);
    for (let k = 0; k < nNoise; k++) wte[row + noiseStart + k] = alpha * z[k] + offset;
  }

  // Position embeddings: the sinusoid code and the position-0 marker; zero sum, squared norm 14.
  const wpe = new Float32Array(config.nCtx * d);
  for (let p = 0; p < config.nCtx; p++) {
    const row = p * d;
    L.frequencies.forEach((w, f) => {
      const s = Math.sin(w * p);
      const c = Math.cos(w * p);
      wpe.set([s, c, -s, -c], row + L.positionDims + 4 * f);
    });
    const m = L.positionMarker;
    wpe.set(p === 0 ? [m, -m, 0, 0] : [0, 0, m, -m], row + L.position0Dims);
  }

  const blocks: Gpt2BlockWeights[] = [];
  for (let l = 0; l < config.nLayer; l++) {
    const rng = new NormalRng(PLANTED_SEED, `h.${l}`);
    const b: Gpt2BlockWeights = {
      ln1Gamma: new Float32Array(d).fill(1),
      ln1Beta: new Float32Array(d),
      attnW: new Float32Array(d * 3 * d),
      attnB: new Float32Array(3 * d),
      attnProjW: new Float32Array(d * d),
      attnProjB: new Float32Array(d),
      ln2Gamma: new Float32Array(d).fill(1),
      ln2Beta: new Float32Array(d),
      fcW: new Float32Array(d * config.dMlp),
      fcB: new Float32Array(config.dMlp),
      projW: new Float32Array(config.dMlp * d),
      projB: new Float32Array(d),
    };
    // Unplanted neurons: random reads of the whole residual; every neuron writes only noise dims.
    const plantedHere = PLANTED_SPECS.filter((s) => s.layer === l);
    for (let n = 0; n < config.dMlp; n++) {
      const spec = plantedHere.find((s) => s.neuron === n);
      if (spec) {
        b.fcW[L.flagDims[spec.flag] * config.dMlp + n] = L.readWeight;
        b.fcB[n] = L.readBias;
        if (spec.flag === 'afterThe') {
          // Position 0 only sees itself, so its "previous token" flag is its own " the" flag: veto it.
          b.fcW[L.position0Dims * config.dMlp + n] = -(L.readWeight * L.flagValue + 3) / L.positionMarker;
        }
      } else {
        for (let i = 0; i < d; i++) b.fcW[i * config.dMlp + n] = 0.125 * rng.next();
        b.fcB[n] = 0.2 * rng.next();
      }
      for (let i = noiseStart; i < noiseEnd; i++) b.projW[n * d + i] = 0.02 * rng.next();
    }
    if (l === 0) {
      // Previous-token head: q_i = c·(cos ω(i−1), sin ω(i−1)), k_j = c·(cos ωj, sin ωj) per frequency.
      const c = Math.sqrt(L.attentionStrength * Math.sqrt(dHead));
      const h0 = L.prevTokenHead * dHead;
      const setW = (row: number, col: number, v: number): void => {
        b.attnW[row * 3 * d + col] = v;
      };
      L.frequencies.forEach((w, f) => {
        const sinDim = L.positionDims + 4 * f;
        const cosDim = sinDim + 1;
        const qc = h0 + 2 * f; // q columns 0..d-1
        const kc = d + h0 + 2 * f; // k columns d..2d-1
        setW(cosDim, kc, c);
        setW(sinDim, kc + 1, c);
        setW(cosDim, qc, c * Math.cos(w));
        setW(sinDim, qc, c * Math.sin(w));
        setW(sinDim, qc + 1, c * Math.cos(w));
        setW(cosDim, qc + 1, -c * Math.sin(w));
      });
      const vc = 2 * d + h0; // first value column of the head
      setW(L.flagDims.the, vc, 1);
      b.attnProjW[h0 * d + L.flagDims.afterThe] = 1;
    }
    blocks.push(b);
  }

  const weights: Gpt2Weights = {
    wte,
    wpe,
    blocks,
    lnfGamma: new Float32Array(d).fill(1),
    lnfBeta: new Float32Array(d),
  };
  return { config, weights, planted: plantedNeurons() };
}
