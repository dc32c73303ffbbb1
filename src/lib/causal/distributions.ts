/**
 * Next-token distributions from logits and how far two of them are apart. Everything is float64
 * (the logits are float32) and deterministic; divergences are in nats.
 */

/** log softmax of one row of logits, in float64. */
export function logSoftmax(logits: ArrayLike<number>): Float64Array {
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(logits[i] - max);
  const shift = max + Math.log(sum);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = logits[i] - shift;
  return out;
}

/**
 * KL(P ‖ Q) = Σ p · (log p − log q) from log-probabilities. Never negative (rounding can make the
 * sum a hair below 0 for equal distributions; that is returned as 0).
 */
export function klDivergence(logP: Float64Array, logQ: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < logP.length; i++) {
    const p = Math.exp(logP[i]);
    if (p > 0) sum += p * (logP[i] - logQ[i]);
  }
  return Math.max(0, sum);
}

/**
 * Jensen–Shannon divergence ½·KL(P ‖ M) + ½·KL(Q ‖ M) with M = (P + Q)/2, from log-probabilities.
 * Symmetric, between 0 and ln 2.
 */
export function jsDivergence(logP: Float64Array, logQ: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < logP.length; i++) {
    const p = Math.exp(logP[i]);
    const q = Math.exp(logQ[i]);
    const m = 0.5 * (p + q);
    if (m === 0) continue;
    const logM = Math.log(m);
    if (p > 0) sum += p * (logP[i] - logM);
    if (q > 0) sum += q * (logQ[i] - logM);
  }
  return Math.min(Math.LN2, Math.max(0, 0.5 * sum));
}
