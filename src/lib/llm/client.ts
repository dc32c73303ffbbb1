/**
 * The chat-completions client: plain `fetch` against any OpenAI-compatible server, usable in
 * browsers, Web Workers and Node 20. It adds what long explain/score jobs need: bounded
 * concurrency, retries with backoff, per-request timeouts, cancellation (per call, per job,
 * or everything), a response cache, a spending budget checked before sending, and usage/cost
 * accounting.
 *
 * The API key is only ever put in the `Authorization` header: it is not logged, not part of
 * cache keys, and scrubbed from error messages.
 */
import { AbortFanout, linkSignals, raceAbort, sleepUnlessAborted } from './abort.ts';
import { parseChatResponseBody, normalizeChatResponse } from './chat-response.ts';
import type { Budget, Pricing } from './cost.ts';
import { LlmAbortError, LlmConfigError, LlmError, LlmNetworkError, LlmTimeoutError, isAbortError, redactSecret } from './errors.ts';
import { errorFromHttpStatus } from './http-error.ts';
import { normalizeBaseUrl, requestCacheKey, type ResponseCache } from './response-cache.ts';
import { DEFAULT_RETRY_POLICY, parseRetryAfter, retryDelayMs, type RetryPolicy } from './retry-policy.ts';
import { Semaphore } from './semaphore.ts';
import type { ChatCompleter, ChatRequest, ChatResponse } from './types.ts';
import { UsageMeter, type UsageDelta, type UsageTotals } from './usage-meter.ts';

export type { UsageDelta, UsageTotals } from './usage-meter.ts';

export interface ChatClientOptions {
  /** Server root including the API version, e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer …` when given; local servers usually need none. */
  apiKey?: string;
  /** Per HTTP attempt, headers and body included. Default 120 s. */
  timeoutMs?: number;
  /** Retries after the first attempt for retryable failures. Default 4. */
  maxRetries?: number;
  /** Most requests in flight at once. Default 4. */
  concurrency?: number;
  cache?: ResponseCache;
  budget?: Budget;
  /** Prices for every model of this client; default: DEFAULT_PRICING by model-name prefix. */
  pricing?: Pricing;
  /** Called after every answer (network or cache) with the new totals and what that answer added. */
  onUsage?: (totals: UsageTotals, delta: UsageDelta & { cached: boolean }) => void;
  /** Called before each retry wait, e.g. to show "rate limited, retrying in 2 s". */
  onRetry?: (info: { retry: number; delayMs: number; error: LlmError }) => void;
  /** Backoff tuning; defaults mirror OpenAI's SDK (0.5 s doubling to 8 s, Retry-After up to 60 s). */
  retry?: Partial<RetryPolicy>;
  /** Job-level cancellation: aborting it cancels every call of this client, queued or in flight. */
  signal?: AbortSignal;
  fetch?: typeof fetch;
  /** Waits between retries; must reject when `signal` aborts (a non-conforming one is raced against it). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export interface CompleteOptions {
  signal?: AbortSignal;
  /** Neither read nor write the cache for this call (e.g. to draw a fresh sample). */
  noCache?: boolean;
}

export interface ChatClient extends ChatCompleter {
  readonly baseUrl: string;
  complete(request: ChatRequest, options?: CompleteOptions): Promise<ChatResponse>;
  /** Totals so far: tokens, estimated cost, requests sent, cache hits, retries. */
  usage(): UsageTotals;
  /** Cancels every queued and in-flight call of this client; later calls run normally. */
  cancelAll(reason?: string): void;
  /** A completer whose every call is also cancelled by `signal`: hand one to each job. */
  withSignal(signal: AbortSignal): ChatCompleter;
}

const DEFAULT_TIMEOUT_MS = 120_000;
const DEFAULT_MAX_RETRIES = 4;
const DEFAULT_CONCURRENCY = 4;
const MESSAGE_ROLES = new Set(['system', 'user', 'assistant']);

export function createChatClient(options: ChatClientOptions): ChatClient {
  const baseUrl = checkBaseUrl(options.baseUrl);
  const endpoint = `${baseUrl}/chat/completions`;
  const timeoutMs = checkNumber('timeoutMs', options.timeoutMs ?? DEFAULT_TIMEOUT_MS, { min: 1 });
  const maxRetries = checkNumber('maxRetries', options.maxRetries ?? DEFAULT_MAX_RETRIES, { min: 0, integer: true });
  const concurrency = checkNumber('concurrency', options.concurrency ?? DEFAULT_CONCURRENCY, { min: 1, integer: true });
  const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY, ...options.retry };
  const apiKey = options.apiKey?.trim() || undefined;
  // Resolved per call and called unbound-safe: browsers throw "Illegal invocation" on a detached fetch.
  const fetchImpl: typeof fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const sleep = options.sleep ?? sleepUnlessAborted;
  const meter = new UsageMeter(options.budget, options.pricing);
  const slots = new Semaphore(concurrency);
  // Every call gets its own controller, fanned out from the shared signals (the job's, the
  // client's, cancelAll's) with one listener each, not one per queued call.
  const fanout = new AbortFanout();
  let cancelAllController = new AbortController();

  async function complete(request: ChatRequest, callOptions: CompleteOptions = {}, extraSignals: AbortSignal[] = []): Promise<ChatResponse> {
    checkRequest(request);
    const callController = new AbortController();
    const detach = fanout.link(callController, [callOptions.signal, options.signal, cancelAllController.signal, ...extraSignals]);
    const signal = callController.signal;
    let releaseSlot: (() => void) | undefined;
    let reservation: ReturnType<UsageMeter['reserve']> | undefined;
    let failed = false;
    try {
      throwIfAborted(signal);
      const useCache = options.cache !== undefined && !callOptions.noCache;
      const cacheKey = useCache ? await requestCacheKey(baseUrl, request) : undefined;
      if (options.cache && cacheKey) {
        const cached = await readCache(options.cache, cacheKey);
        throwIfAborted(signal);
        if (cached) {
          meter.countCacheHit();
          notifyUsage({ promptTokens: 0, completionTokens: 0, costUsd: 0, model: request.model, estimated: false, cached: true });
          return cached;
        }
      }

      releaseSlot = await slots.acquire(signal).catch((err: unknown) => {
        throw toAbortError(err, signal);
      });
      throwIfAborted(signal);
      reservation = meter.reserve(request);

      const response = await sendWithRetries(request, signal);
      const delta = reservation.settle(response);
      if (options.cache && cacheKey) await options.cache.set(cacheKey, response).catch(() => undefined);
      notifyUsage({ ...delta, cached: false });
      return response;
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      reservation?.release();
      detach();
      if (releaseSlot) {
        // A failure often makes the caller cancel its job, from a rejection handler a few promise
        // hops away. Handing the slot on at once would let the next queued call of that job start
        // its request first (sent, then aborted); one macrotask later the job's cancellation has
        // landed and has taken its queued calls out of the line.
        if (failed) setTimeout(releaseSlot, 0);
        else releaseSlot();
      }
    }
  }

  async function sendWithRetries(request: ChatRequest, signal: AbortSignal): Promise<ChatResponse> {
    const body = JSON.stringify(request);
    for (let attempt = 1; ; attempt++) {
      try {
        return await sendOnce(body, signal);
      } catch (caught) {
        const error = caught instanceof LlmError ? caught : new LlmError(`LLM request failed: ${describeError(caught)}`, { cause: caught });
        error.attempts = attempt;
        if (error instanceof LlmAbortError || !error.retryable || attempt > maxRetries) {
          if (attempt > 1 && !(error instanceof LlmAbortError)) error.message += ` (gave up after ${attempt} attempts)`;
          throw error;
        }
        const delayMs = retryDelayMs(attempt - 1, error.retryAfterMs, policy);
        meter.countRetry();
        try {
          options.onRetry?.({ retry: attempt, delayMs, error });
        } catch {
          // A faulty progress callback must not break the job.
        }
        await raceAbort(sleep(delayMs, signal), signal).catch((err: unknown) => {
          throw toAbortError(err, signal);
        });
      }
    }
  }

  async function sendOnce(body: string, callSignal: AbortSignal): Promise<ChatResponse> {
    throwIfAborted(callSignal);
    const timeout = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      timeout.abort(new LlmTimeoutError(`LLM request timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const fetchSignal = linkSignals(callSignal, timeout.signal);

    const fail = (err: unknown): never => {
      if (callSignal.aborted) throw toAbortError(callSignal.reason, callSignal);
      if (timedOut) throw new LlmTimeoutError(`LLM request to ${redactedUrl(endpoint)} timed out after ${timeoutMs} ms`);
      throw new LlmNetworkError(redactSecret(`LLM request to ${redactedUrl(endpoint)} failed: ${describeError(err)}`, apiKey), {
        cause: err,
      });
    };

    try {
      meter.countRequest();
      const headers: Record<string, string> = { 'Content-Type': 'application/json' };
      if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
      const response = await fetchImpl(endpoint, { method: 'POST', headers, body, signal: fetchSignal.signal }).catch(fail);
      // The timeout also covers reading the body: a server may send headers and then stall.
      const text = await response.text().catch(fail);
      if (!response.ok) {
        throw errorFromHttpStatus(response.status, response.statusText, text, parseRetryAfter(response.headers), apiKey);
      }
      return parseChatResponseBody(text, response.status);
    } finally {
      clearTimeout(timer);
      fetchSignal.dispose();
    }
  }

  function notifyUsage(delta: UsageDelta & { cached: boolean }): void {
    try {
      options.onUsage?.(meter.snapshot(), delta);
    } catch {
      // A faulty progress callback must not lose an answer that was already paid for.
    }
  }

  return {
    baseUrl,
    complete: (request, callOptions) => complete(request, callOptions),
    usage: () => meter.snapshot(),
    cancelAll(reason) {
      const previous = cancelAllController;
      cancelAllController = new AbortController();
      previous.abort(new LlmAbortError(reason ? `LLM request cancelled: ${reason}` : 'LLM request cancelled (cancelAll)'));
    },
    withSignal(signal) {
      return { complete: (request, callOptions) => complete(request, callOptions, [signal]) };
    },
  };
}

/** Reads a cache entry, treating a failing or malformed entry as a miss (the network still works). */
async function readCache(cache: ResponseCache, key: string): Promise<ChatResponse | undefined> {
  try {
    const entry = await cache.get(key);
    return entry === undefined ? undefined : normalizeChatResponse(entry);
  } catch {
    return undefined;
  }
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw toAbortError(signal.reason, signal);
}

/** Our abort error for a cancellation, whatever shape the abort reason had. */
function toAbortError(err: unknown, signal: AbortSignal): LlmError {
  if (!signal.aborted && !isAbortError(err)) return err instanceof LlmError ? err : new LlmError(describeError(err), { cause: err });
  const reason = signal.aborted ? signal.reason : err;
  if (reason instanceof LlmAbortError) return new LlmAbortError(reason.message, { cause: reason });
  const why = typeof reason === 'string' ? reason : reason instanceof Error && reason.name !== 'AbortError' ? reason.message : '';
  return new LlmAbortError(why ? `LLM request cancelled: ${why}` : 'LLM request cancelled', { cause: reason });
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // Node's fetch says only "fetch failed" and keeps the reason (ECONNREFUSED, socket hang up…) in `cause`.
  const cause = err.cause;
  if (cause instanceof Error || (typeof cause === 'object' && cause !== null)) {
    const { code, message } = cause as { code?: unknown; message?: unknown };
    const detail = [typeof code === 'string' ? code : '', typeof message === 'string' ? message : ''].filter(Boolean).join(' ');
    if (detail) return `${err.message} (${detail})`;
  }
  if (err.message === 'Failed to fetch' || err.message.startsWith('NetworkError')) {
    return `${err.message} (server unreachable, or the browser blocked it: CORS)`;
  }
  return err.message;
}

/** The URL without query string or credentials, for messages. */
function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.origin}${parsed.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}

function checkBaseUrl(raw: unknown): string {
  if (typeof raw !== 'string' || raw.trim() === '') throw new LlmConfigError('baseUrl is required, e.g. https://api.openai.com/v1');
  let parsed: URL;
  try {
    parsed = new URL(raw.trim());
  } catch {
    throw new LlmConfigError(`baseUrl ${JSON.stringify(raw)} is not a valid URL (expected e.g. https://api.openai.com/v1)`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new LlmConfigError(`baseUrl must be http(s), got ${parsed.protocol}`);
  }
  return normalizeBaseUrl(raw);
}

function checkNumber(name: string, value: unknown, rule: { min: number; integer?: boolean }): number {
  const ok = typeof value === 'number' && Number.isFinite(value) && value >= rule.min && (!rule.integer || Number.isInteger(value));
  if (!ok) throw new LlmConfigError(`${name} must be ${rule.integer ? 'an integer' : 'a number'} >= ${rule.min}, got ${String(value)}`);
  return value as number;
}

function checkRequest(request: ChatRequest): void {
  if (typeof request !== 'object' || request === null) throw new LlmConfigError('request must be an object');
  if (typeof request.model !== 'string' || request.model.trim() === '') throw new LlmConfigError('request.model must be a non-empty string');
  if (!Array.isArray(request.messages) || request.messages.length === 0) {
    throw new LlmConfigError('request.messages must be a non-empty array');
  }
  request.messages.forEach((message, i) => {
    if (typeof message !== 'object' || message === null || !MESSAGE_ROLES.has(message.role) || typeof message.content !== 'string') {
      throw new LlmConfigError(`request.messages[${i}] must be {role: 'system'|'user'|'assistant', content: string}`);
    }
  });
}
