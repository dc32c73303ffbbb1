/**
 * The chat-completions client, usable in browsers, Web Workers and Node 20. HTTP, retries with
 * backoff and per-attempt timeouts are the official `openai` SDK's (see `transport.ts`); on top of
 * it this adds what long explain/score jobs need: bounded concurrency that a cancelled job leaves
 * at once, cancellation (per call, per job, or everything), a response cache, a spending budget
 * checked before sending, and usage/cost accounting.
 *
 * The API key is only ever put in the `Authorization` header: it is not logged, not part of
 * cache keys, and scrubbed from error messages.
 */
import { AbortFanout } from './abort.ts';
import { normalizeChatResponse } from './chat-response.ts';
import type { Budget, Pricing } from './cost.ts';
import { LlmAbortError, LlmConfigError, LlmError, abortErrorFrom, isAbortError } from './errors.ts';
import { normalizeBaseUrl, requestCacheKey, type ResponseCache } from './response-cache.ts';
import { Semaphore } from './semaphore.ts';
import { createTransport } from './transport.ts';
import { isScriptedEndpoint, scriptedLlmFetch, SCRIPTED_ENDPOINT } from '../explain/scripted-llm.ts';
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
  /**
   * Retries after the first attempt for retryable failures (connection errors, timeouts, 408,
   * 409, 429 except an exhausted quota, 5xx), with the SDK's backoff. Default 4.
   */
  maxRetries?: number;
  /** Most requests in flight at once. Default 4. */
  concurrency?: number;
  cache?: ResponseCache;
  budget?: Budget;
  /** Prices for every model of this client; default: DEFAULT_PRICING by model-name prefix. */
  pricing?: Pricing;
  /** Called after every answer (network or cache) with the new totals and what that answer added. */
  onUsage?: (totals: UsageTotals, delta: UsageDelta & { cached: boolean }) => void;
  /** Job-level cancellation: aborting it cancels every call of this client, queued or in flight. */
  signal?: AbortSignal;
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
  const timeoutMs = checkNumber('timeoutMs', options.timeoutMs ?? DEFAULT_TIMEOUT_MS, { min: 1 });
  const maxRetries = checkNumber('maxRetries', options.maxRetries ?? DEFAULT_MAX_RETRIES, { min: 0, integer: true });
  const concurrency = checkNumber('concurrency', options.concurrency ?? DEFAULT_CONCURRENCY, { min: 1, integer: true });
  const apiKey = options.apiKey?.trim() || undefined;
  // A scripted endpoint (the built-in scripted LLM) answers in the page: no network.
  const transport = createTransport({ baseUrl, apiKey, timeoutMs, maxRetries, fetch: scriptedLlmFetch(baseUrl) });
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

      const response = await transport.send(request, signal, (attempt) => {
        meter.countRequest();
        if (attempt > 1) meter.countRetry();
      });
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
  if (signal.aborted) throw abortErrorFrom(signal.reason);
}

/** Our abort error for a cancellation, whatever shape the abort reason had. */
function toAbortError(err: unknown, signal: AbortSignal): LlmError {
  if (signal.aborted || isAbortError(err)) return abortErrorFrom(signal.aborted ? signal.reason : err);
  return err instanceof LlmError ? err : new LlmError(String(err), { cause: err });
}

function checkBaseUrl(raw: unknown): string {
  if (typeof raw !== 'string' || raw.trim() === '') throw new LlmConfigError('baseUrl is required, e.g. https://api.openai.com/v1');
  let parsed: URL;
  try {
    parsed = new URL(raw.trim());
  } catch {
    throw new LlmConfigError(`baseUrl ${JSON.stringify(raw)} is not a valid URL (expected e.g. https://api.openai.com/v1)`);
  }
  if (isScriptedEndpoint(raw)) {
    if (!scriptedLlmFetch(raw)) throw new LlmConfigError(`there is no scripted endpoint ${JSON.stringify(raw.trim())}: the built-in one is ${SCRIPTED_ENDPOINT}`);
    return normalizeBaseUrl(raw);
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
