/**
 * A paper-format NeuronRecord for one neuron, built from excerpts already captured in memory
 * (token display strings plus that neuron's activation on each token). For single-neuron use in
 * the app and for tests; the corpus-wide streaming scan that builds records for every neuron in
 * bounded memory lives in `activations/` and does not go through this.
 *
 * - most_positive_activation_records: the `topK` excerpts with the largest max activation, largest
 *   first (ties: the earlier excerpt first).
 * - random_sample: `randomSampleSize` excerpts drawn uniformly without replacement (bottom-k by a
 *   seeded priority per excerpt index, as the scan draws its sample), in draw order. It is drawn
 *   from all excerpts, so it may overlap the top records, as in the released data; the same seed
 *   and excerpt count give the same excerpts for every neuron.
 * - mean / variance / skewness / kurtosis: population moments over every token of every excerpt,
 *   with kurtosis as *excess* kurtosis (normal = 0; scipy's default, and what the scan reports).
 *   The released records do not say which kurtosis they hold and their values (e.g. 195.6) cannot
 *   tell the two apart. Skewness and kurtosis are null for a constant neuron.
 * - random_sample_by_quantile and quantile_boundaries: null (not computed here).
 */
import type { ActivationRecord, NeuronId, NeuronRecord } from '../activations/records.ts';
import { priorityBefore, RANDOM_SAMPLE_STREAM, samplePriority } from '../activations/seeded-random.ts';

export class RecordsFromCaptureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecordsFromCaptureError';
  }
}

/** One captured excerpt, seen from one neuron. */
export interface CapturedExcerpt {
  /** Display strings of the excerpt's tokens, e.g. " fox". */
  tokens: readonly string[];
  /** The neuron's activation on each token (a Float32Array column slice works). */
  activations: ArrayLike<number>;
}

export interface RecordsFromCaptureOptions {
  /** Top-activating excerpts kept (default 20: enough for 5 explaining + 5 scoring + calibration). */
  topK?: number;
  /** Random excerpts kept (default 20). */
  randomSampleSize?: number;
  /** Seed of the random sample (default 0). */
  seed?: number;
}

export const DEFAULT_RECORD_TOP_K = 20;
export const DEFAULT_RECORD_RANDOM_SAMPLE = 20;

interface Moments {
  mean: number | null;
  variance: number | null;
  skewness: number | null;
  kurtosis: number | null;
}

function checkCount(name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new RecordsFromCaptureError(`${name} must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

function checkExcerpts(excerpts: readonly CapturedExcerpt[]): void {
  if (!Array.isArray(excerpts) || excerpts.length === 0) {
    throw new RecordsFromCaptureError('need at least one captured excerpt to build a neuron record');
  }
  excerpts.forEach((excerpt, e) => {
    const where = `excerpts[${e}]`;
    if (!excerpt || !Array.isArray(excerpt.tokens) || excerpt.activations === null || typeof excerpt.activations !== 'object') {
      throw new RecordsFromCaptureError(`${where}: expected {tokens: string[], activations: number[]}`);
    }
    const { tokens, activations } = excerpt;
    if (tokens.length === 0) throw new RecordsFromCaptureError(`${where}: has no tokens`);
    if (tokens.length !== activations.length) {
      throw new RecordsFromCaptureError(`${where}: ${tokens.length} tokens but ${activations.length} activations`);
    }
    for (let t = 0; t < tokens.length; t++) {
      if (typeof tokens[t] !== 'string') throw new RecordsFromCaptureError(`${where}.tokens[${t}]: expected a string`);
      const a = activations[t];
      if (typeof a !== 'number' || !Number.isFinite(a)) {
        throw new RecordsFromCaptureError(`${where}.activations[${t}]: expected a finite number, got ${String(a)}`);
      }
    }
  });
}

function toRecord(excerpt: CapturedExcerpt): ActivationRecord {
  return { dataclass_name: 'ActivationRecord', tokens: [...excerpt.tokens], activations: Array.from(excerpt.activations) };
}

function maxOf(values: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) if (values[i] > max) max = values[i];
  return max;
}

/** Population moments of every token's activation (two passes in float64, for accuracy). */
export function activationMoments(excerpts: readonly CapturedExcerpt[]): Moments {
  let count = 0;
  let sum = 0;
  for (const { activations } of excerpts) {
    for (let i = 0; i < activations.length; i++) sum += activations[i];
    count += activations.length;
  }
  if (count === 0) return { mean: null, variance: null, skewness: null, kurtosis: null };
  const mean = sum / count;
  let m2 = 0;
  let m3 = 0;
  let m4 = 0;
  for (const { activations } of excerpts) {
    for (let i = 0; i < activations.length; i++) {
      const d = activations[i] - mean;
      const d2 = d * d;
      m2 += d2;
      m3 += d2 * d;
      m4 += d2 * d2;
    }
  }
  const variance = m2 / count;
  if (!(variance > 0)) return { mean, variance: 0, skewness: null, kurtosis: null };
  return {
    mean,
    variance,
    skewness: m3 / count / variance ** 1.5,
    kurtosis: m4 / count / (variance * variance) - 3,
  };
}

/** Indexes of the `k` excerpts with the largest max activation, largest first, ties by index. */
export function topExcerptIndexes(excerpts: readonly CapturedExcerpt[], k: number): number[] {
  const maxima = excerpts.map((e) => maxOf(e.activations));
  return maxima
    .map((_, i) => i)
    .sort((a, b) => maxima[b] - maxima[a] || a - b)
    .slice(0, k);
}

/** Indexes of a uniform sample of `k` of `count` excerpts (without replacement), in draw order. */
export function randomExcerptIndexes(count: number, k: number, seed: number): number[] {
  const priorities = Array.from({ length: count }, (_, i) => samplePriority(seed, RANDOM_SAMPLE_STREAM, i));
  return priorities
    .map((_, i) => i)
    .sort((a, b) => (priorityBefore(priorities[a], a, priorities[b], b) ? -1 : 1))
    .slice(0, k);
}

/** The NeuronRecord of `neuronId` from its captured excerpts (see the file comment). */
export function neuronRecordFromExcerpts(
  neuronId: NeuronId,
  excerpts: readonly CapturedExcerpt[],
  options: RecordsFromCaptureOptions = {},
): NeuronRecord {
  if (!neuronId || !Number.isInteger(neuronId.layer_index) || !Number.isInteger(neuronId.neuron_index)) {
    throw new RecordsFromCaptureError('neuronId needs integer layer_index and neuron_index');
  }
  const topK = checkCount('topK', options.topK ?? DEFAULT_RECORD_TOP_K, 1);
  const randomSampleSize = checkCount('randomSampleSize', options.randomSampleSize ?? DEFAULT_RECORD_RANDOM_SAMPLE, 0);
  const seed = checkCount('seed', options.seed ?? 0, 0);
  checkExcerpts(excerpts);
  const moments = activationMoments(excerpts);
  return {
    dataclass_name: 'NeuronRecord',
    neuron_id: { dataclass_name: 'NeuronId', layer_index: neuronId.layer_index, neuron_index: neuronId.neuron_index },
    random_sample: randomExcerptIndexes(excerpts.length, randomSampleSize, seed).map((i) => toRecord(excerpts[i])),
    random_sample_by_quantile: null,
    quantile_boundaries: null,
    mean: moments.mean,
    variance: moments.variance,
    skewness: moments.skewness,
    kurtosis: moments.kurtosis,
    most_positive_activation_records: topExcerptIndexes(excerpts, topK).map((i) => toRecord(excerpts[i])),
  };
}
