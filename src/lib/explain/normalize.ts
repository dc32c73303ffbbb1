/**
 * Activation normalisation used in the explanation and simulation prompts of Bills et al. (2023):
 * raw activations are mapped to integers 0..10 relative to the largest activation shown, and
 * negative activations are treated as "resting" (0), which suits GELU/ReLU neurons.
 */
import type { ActivationRecord } from '../activations/records.ts';

/** The top of the normalised scale. */
export const MAX_NORMALIZED_ACTIVATION = 10;

/**
 * Below this fraction of non-zero normalised activations the explanation prompt repeats the
 * non-zero (token, activation) pairs, so sparse neurons' firing tokens are not lost among zeros.
 */
export const REPEAT_NON_ZERO_THRESHOLD = 0.2;

export class NormalizeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NormalizeError';
  }
}

function checkFinite(value: number, where: string): void {
  if (!Number.isFinite(value)) throw new NormalizeError(`${where}: expected a finite number, got ${value}`);
}

/**
 * Largest activation over all tokens of all records, negatives counted as 0.
 * Returns 0 for no records or no tokens (nothing to normalise against).
 */
export function maxActivation(records: readonly Pick<ActivationRecord, 'activations'>[]): number {
  let max = 0;
  records.forEach((record, r) => {
    record.activations.forEach((a, t) => {
      checkFinite(a, `records[${r}].activations[${t}]`);
      if (a > max) max = a;
    });
  });
  return max;
}

/**
 * Integers `min(10, floor(10 * max(0, a) / max))`; all zeros when `max <= 0`.
 * The expression is evaluated in the same order as the reference (multiply, then divide) so that
 * boundary cases round identically.
 */
export function normalizeActivations(activations: readonly number[], max: number): number[] {
  checkFinite(max, 'max activation');
  if (max <= 0) return activations.map(() => 0);
  return activations.map((a, t) => {
    checkFinite(a, `activations[${t}]`);
    const scaled = Math.floor((MAX_NORMALIZED_ACTIVATION * Math.max(0, a)) / max);
    return Math.min(MAX_NORMALIZED_ACTIVATION, scaled);
  });
}

/** Normalises every record against one shared maximum (the maximum over all of them by default). */
export function normalizeRecords(
  records: readonly Pick<ActivationRecord, 'activations'>[],
  max: number = maxActivation(records),
): number[][] {
  return records.map((record) => normalizeActivations(record.activations, max));
}

/** Fraction of normalised values that are non-zero over all records (0 when there are none). */
export function nonZeroProportion(normalized: readonly (readonly number[])[]): number {
  let total = 0;
  let nonZero = 0;
  for (const record of normalized) {
    total += record.length;
    for (const v of record) if (v !== 0) nonZero++;
  }
  return total === 0 ? 0 : nonZero / total;
}

/**
 * Whether the explanation prompt should repeat the non-zero pairs: fewer than 20% of the
 * normalised activations are non-zero. False when there are no tokens at all (nothing to repeat).
 */
export function shouldRepeatNonZero(normalized: readonly (readonly number[])[]): boolean {
  const total = normalized.reduce((n, record) => n + record.length, 0);
  return total > 0 && nonZeroProportion(normalized) < REPEAT_NON_ZERO_THRESHOLD;
}

export interface TokenActivationPair {
  token: string;
  activation: number;
}

/**
 * Per record, the (token, normalised activation) pairs whose activation is non-zero, in order.
 * Records with no non-zero activation give an empty list (kept, so indices still line up).
 */
export function nonZeroPairs(
  records: readonly Pick<ActivationRecord, 'tokens'>[],
  normalized: readonly (readonly number[])[],
): TokenActivationPair[][] {
  if (records.length !== normalized.length) {
    throw new NormalizeError(`expected ${records.length} normalised records, got ${normalized.length}`);
  }
  return records.map((record, r) => {
    const values = normalized[r];
    if (values.length !== record.tokens.length) {
      throw new NormalizeError(
        `records[${r}]: expected ${record.tokens.length} normalised activations, got ${values.length}`,
      );
    }
    const pairs: TokenActivationPair[] = [];
    values.forEach((activation, t) => {
      if (activation !== 0) pairs.push({ token: record.tokens[t], activation });
    });
    return pairs;
  });
}
