/**
 * Next-token distributions from logits and how far two of them are apart. Everything is float64
 * (the logits are float32) and deterministic; divergences are in nats. Each distribution is built
 * with one exp per token; the divergences then need no exp or log for most tokens, which matters
 * with a 50,257-token vocabulary at every position of every excerpt.
 */

export interface Distribution {
  /** Probabilities. */
  p: Float64Array;
  /** Their logarithms (the logits less log Σ exp(logits)). */
  logP: Float64Array;
}

/** softmax of one row of logits, with its logarithm. */
export function nextTokenDistribution(logits: ArrayLike<number>): Distribution {
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
  const p = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += p[i] = Math.exp(logits[i] - max);
  const logSum = Math.log(sum);
  const logP = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    p[i] /= sum;
    logP[i] = logits[i] - max - logSum;
  }
  return { p, logP };
}

/**
 * KL(P ‖ Q) = Σ p · (log p − log q). Never negative (rounding can make the sum a hair below 0 for
 * equal distributions; that is returned as 0).
 */
export function klDivergence(P: Distribution, Q: Distribution): number {
  let sum = 0;
  for (let i = 0; i < P.p.length; i++) if (P.p[i] > 0) sum += P.p[i] * (P.logP[i] - Q.logP[i]);
  return Math.max(0, sum);
}

/**
 * Jensen–Shannon divergence ½·KL(P ‖ M) + ½·KL(Q ‖ M), M = (P + Q)/2: symmetric, between 0 and ln 2.
 * Written per token as ½ · m · f(r) with m = (p + q)/2, r = (p − q)/(p + q) and
 * f(r) = (1 + r)·ln(1 + r) + (1 − r)·ln(1 − r) = Σₖ r²ᵏ / (k(2k − 1)); the series (to r¹⁰, relative
 * error below 2·10⁻¹⁵ for |r| < 0.05) replaces the logarithms where the two barely differ.
 */
export function jsDivergence(P: Distribution, Q: Distribution): number {
  let sum = 0;
  for (let i = 0; i < P.p.length; i++) {
    const p = P.p[i];
    const q = Q.p[i];
    const s = p + q;
    if (s === 0) continue;
    const r = (p - q) / s;
    let f: number;
    if (Math.abs(r) < 0.05) {
      const r2 = r * r;
      f = r2 * (1 + r2 * (1 / 6 + r2 * (1 / 15 + r2 * (1 / 28 + r2 / 45))));
    } else if (r === 1 || r === -1) {
      f = 2 * Math.LN2;
    } else {
      f = (1 + r) * Math.log1p(r) + (1 - r) * Math.log1p(-r);
    }
    sum += 0.5 * s * f;
  }
  return Math.min(Math.LN2, Math.max(0, 0.5 * sum));
}
