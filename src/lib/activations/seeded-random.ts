/**
 * Deterministic pseudo-randomness for the neuron scan.
 *
 * The scan samples excerpts by *priority*: every excerpt gets a pseudo-random 32-bit priority that
 * depends only on (seed, stream, excerpt index), and a sample of size k is the k excerpts with the
 * smallest priorities. That is a uniform sample without replacement (bottom-k / priority
 * sampling), it does not depend on the order or batching in which excerpts arrive, and samples of
 * disjoint sets merge exactly — which is what makes checkpoints and quantile bins simple.
 */

/** Streams keep the random sample and the quantile samples independent of each other. */
export const RANDOM_SAMPLE_STREAM = 1;
export const QUANTILE_SAMPLE_STREAM = 2;

/** murmur3's 32-bit finaliser: a bijection on uint32 with full avalanche. */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The priority (uint32) of item `index` in `stream` for `seed`. */
export function samplePriority(seed: number, stream: number, index: number): number {
  const keyed = mix32((seed >>> 0) ^ Math.imul(stream, 0x9e3779b9));
  return mix32(keyed ^ mix32(index >>> 0) ^ Math.imul((index / 0x100000000) >>> 0, 0x7feb352d));
}

/**
 * True when (priorityA, indexA) comes before (priorityB, indexB): smaller priority first, and the
 * smaller index on the (rare) equal priorities, so the order is total and deterministic.
 */
export function priorityBefore(priorityA: number, indexA: number, priorityB: number, indexB: number): boolean {
  return priorityA < priorityB || (priorityA === priorityB && indexA < indexB);
}

/** A small seeded PRNG (mulberry32) returning floats in [0, 1). */
export function createSeededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
