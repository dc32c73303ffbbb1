/**
 * When to retry a failed LLM request and how long to wait first. Mirrors what OpenAI's own SDK
 * does (exponential backoff 0.5 s → 8 s with jitter; honour `retry-after-ms` / `retry-after`
 * when the server sends a sane value) so we behave well against its rate limiter.
 */

export interface RetryPolicy {
  /** First backoff delay, before jitter. */
  baseDelayMs: number;
  /** Largest backoff delay we compute ourselves. */
  maxDelayMs: number;
  /** Largest server-requested delay we honour; longer requests fall back to our own backoff. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { baseDelayMs: 500, maxDelayMs: 8_000, maxRetryAfterMs: 60_000 };

/** HTTP statuses worth retrying: timeout, conflict/lock, rate limit, server errors. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 409 || status === 429 || status >= 500;
}

/**
 * The server-requested wait in ms from `retry-after-ms` (ms, OpenAI) or `retry-after`
 * (seconds, or an HTTP date), or undefined when absent or unreadable. In browsers these headers
 * are usually not exposed cross-origin, so this is often undefined there.
 */
export function parseRetryAfter(headers: { get(name: string): string | null }, now: number = Date.now()): number | undefined {
  const ms = headers.get('retry-after-ms');
  if (ms !== null && ms.trim() !== '') {
    const value = Number(ms);
    if (Number.isFinite(value) && value >= 0) return value;
  }
  const after = headers.get('retry-after');
  if (after === null || after.trim() === '') return undefined;
  const seconds = Number(after);
  if (Number.isFinite(seconds)) return seconds >= 0 ? seconds * 1000 : undefined;
  const date = Date.parse(after);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/**
 * Delay before retry number `retryIndex` (0 for the first retry). A server-requested delay is
 * used as is when within `maxRetryAfterMs`; otherwise exponential backoff with up to 25 %
 * downward jitter, so many clients that failed together don't come back together.
 */
export function retryDelayMs(
  retryIndex: number,
  serverRetryAfterMs: number | undefined,
  policy: RetryPolicy = DEFAULT_RETRY_POLICY,
  random: () => number = Math.random,
): number {
  if (serverRetryAfterMs !== undefined && serverRetryAfterMs >= 0 && serverRetryAfterMs <= policy.maxRetryAfterMs) {
    return serverRetryAfterMs;
  }
  const backoff = Math.min(policy.baseDelayMs * 2 ** retryIndex, policy.maxDelayMs);
  return backoff * (1 - 0.25 * random());
}
