/**
 * Expected simulated activation of one token from the simulator's top log-probabilities, as in
 * Bills et al. (2023): only the tokens "0".."10" count; their probabilities are renormalised to
 * sum to 1 and the mean value is returned. Anything else the LLM might have produced (" 3",
 * "10.", "unknown") is ignored rather than guessed at.
 */

const VALID_VALUE_TOKENS: ReadonlyMap<string, number> = new Map(
  Array.from({ length: 11 }, (_, i) => [String(i), i] as const),
);

export interface ValueDistribution {
  /** Distribution values (integers 0..10) in the order first seen. */
  values: number[];
  /** Renormalised probabilities matching `values`. */
  probabilities: number[];
}

/**
 * Distribution over 0..10 implied by the top log-probabilities, or null when none of the tokens
 * is exactly "0".."10". Non-finite log-probabilities (e.g. -Infinity = probability 0) are allowed;
 * NaN is ignored.
 */
export function valueDistributionFromTopLogprobs(
  topLogprobs: Readonly<Record<string, number>>,
): ValueDistribution | null {
  const values: number[] = [];
  const weights: number[] = [];
  for (const [token, logprob] of Object.entries(topLogprobs)) {
    const value = VALID_VALUE_TOKENS.get(token);
    if (value === undefined || typeof logprob !== 'number' || Number.isNaN(logprob)) continue;
    values.push(value);
    weights.push(Math.exp(logprob));
  }
  let total = 0;
  for (const w of weights) total += w;
  // No usable token, or all of them with zero probability: nothing to take a mean of.
  if (values.length === 0 || !(total > 0) || !Number.isFinite(total)) return null;
  return { values, probabilities: weights.map((w) => w / total) };
}

/** Mean simulated value (0..10) from top log-probabilities; null when no "0".."10" token is present. */
export function expectedValueFromTopLogprobs(topLogprobs: Readonly<Record<string, number>>): number | null {
  const distribution = valueDistributionFromTopLogprobs(topLogprobs);
  if (distribution === null) return null;
  let mean = 0;
  distribution.values.forEach((v, i) => {
    mean += v * distribution.probabilities[i];
  });
  return mean;
}
