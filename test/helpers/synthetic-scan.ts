/**
 * A deterministic stand-in model for the scan driver tests: each activation is a fixed function
 * of (layer, neuron, position, token, previous token), as a causal model's would be; plus an
 * in-memory checkpoint store and a corpus of token-id excerpts.
 */
import type { ActivationSource, ScanCheckpoint, ScanCheckpointStore } from '../../src/lib/activations/scan.ts';
import { createSeededRandom } from '../../src/lib/activations/seeded-random.ts';

/** The layers the stand-in model has (a scan may track some of them). */
export const SYNTHETIC_LAYERS = [0, 2];
const MODEL_LAYERS = [0, 1, 2];

export function syntheticActivation(layer: number, neuron: number, t: number, tokens: readonly number[]): number {
  let h = Math.imul(tokens[t] + 1, 0x9e3779b1) ^ Math.imul(t > 0 ? tokens[t - 1] + 7 : 3, 0x85ebca6b) ^ Math.imul(layer * 131 + neuron + 1, 0xc2b2ae35);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12;
  const u = (h >>> 0) / 2 ** 32;
  return Math.fround(u < 0.9 ? u * 0.3 - 0.1 : (u - 0.9) * 40);
}

export interface SourceLog {
  calls: number[][][];
}

/** The stand-in model with `dMlp` neurons per layer; it fails with "GPU device lost" at call `failAtCall`. */
export function makeSyntheticSource(options: { dMlp: number; log?: SourceLog; failAtCall?: number }): ActivationSource {
  const { dMlp, log, failAtCall } = options;
  let call = 0;
  return async (batch) => {
    if (failAtCall !== undefined && call === failAtCall) {
      call++;
      throw new Error('GPU device lost');
    }
    call++;
    log?.calls.push(batch.map((r) => [...r]));
    const seq = batch[0].length;
    if (batch.some((r) => r.length !== seq)) throw new Error('unequal lengths in one batch');
    const out = new Map<number, Float32Array>();
    for (const layer of MODEL_LAYERS) {
      const data = new Float32Array(batch.length * seq * dMlp);
      batch.forEach((tokens, b) => {
        for (let t = 0; t < seq; t++) for (let j = 0; j < dMlp; j++) data[(b * seq + t) * dMlp + j] = syntheticActivation(layer, j, t, tokens);
      });
      out.set(layer, data);
    }
    return out;
  };
}

/** `count` excerpts of 12 token ids, every ninth of 7. */
export function makeExcerpts(count: number, seed: number): number[][] {
  const random = createSeededRandom(seed);
  return Array.from({ length: count }, (_, i) => Array.from({ length: i % 9 === 8 ? 7 : 12 }, () => Math.floor(random() * 50)));
}

export class MemoryCheckpoints implements ScanCheckpointStore {
  saved: ScanCheckpoint | undefined;
  saves = 0;
  async save(checkpoint: ScanCheckpoint) {
    await new Promise((resolve) => setTimeout(resolve, 1)); // asynchronous, like IndexedDB
    this.saves++;
    this.saved = { ...checkpoint, state: checkpoint.state.map((b) => b.slice(0)) };
  }
  load() {
    return this.saved;
  }
}
