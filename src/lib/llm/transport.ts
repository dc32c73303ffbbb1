/**
 * One chat completion over HTTP, sent by the official `openai` SDK: it builds the request, retries
 * connection failures, timeouts, 408, 409, 429 and 5xx with backoff (honouring `retry-after-ms` /
 * `retry-after`), and turns HTTP failures into typed errors. This file adapts it to the servers
 * Neurolens talks to and to our error types:
 *
 *  - Each HTTP attempt goes through `sendAttempt`, a `fetch` handed to the SDK, which
 *    - removes the SDK's `x-stainless-*` telemetry headers and its `User-Agent`, so the request
 *      carries only `Authorization`, `Content-Type` and `Accept` and passes the CORS preflight of
 *      local servers that allow nothing else (Ollama, llama.cpp, some vLLM set-ups). Removed in
 *      Node too: they tell a server nothing it needs, and Node tests then send exactly what the
 *      browser sends.
 *    - reads the whole body within the per-attempt deadline (the SDK's own timeout stops when the
 *      headers arrive, so a server that sends headers and stalls would hang the call forever);
 *    - rewrites error bodies of every server flavour into OpenAI's `{error: {message, code, type,
 *      param}}`, so the SDK's typed error carries the server's message whatever its shape;
 *    - marks 429 `insufficient_quota` as not retryable (`x-should-retry: false`): waiting does not
 *      add credit, unlike a rate limit;
 *    - drops a `Retry-After` longer than a minute (the SDK would wait it out however long), so the
 *      SDK's own backoff applies instead.
 *  - The answer body is read by `parseChatResponseBody`, which accepts the small differences
 *    between servers and reports a truncated or non-JSON answer as an `LlmResponseError`.
 *  - SDK errors become the `LlmError` subclasses the rest of the code and the UI rely on.
 */
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError } from 'openai';
import { linkSignals, raceAbort } from './abort.ts';
import { parseChatResponseBody } from './chat-response.ts';
import {
  LlmAuthError,
  LlmBadRequestError,
  LlmError,
  LlmNetworkError,
  LlmQuotaError,
  LlmRateLimitError,
  LlmServerError,
  LlmTimeoutError,
  abortErrorFrom,
  redactSecret,
  type LlmErrorDetails,
} from './errors.ts';
import type { ChatRequest, ChatResponse } from './types.ts';

export interface TransportOptions {
  /** Normalised base URL (no trailing slash), e.g. https://api.openai.com/v1. */
  baseUrl: string;
  apiKey: string | undefined;
  /** Per HTTP attempt, body included. */
  timeoutMs: number;
  /** Retries after the first attempt. */
  maxRetries: number;
  /** What sends each HTTP attempt; default the platform's fetch (a scripted endpoint brings its own). */
  fetch?: (input: string | URL | Request, init?: RequestInit) => Promise<Response>;
}

export interface Transport {
  /**
   * Sends `request` (retrying as the SDK does) and returns the checked answer. `onAttempt` is
   * called as each HTTP attempt starts (1 for the first). Rejects with an `LlmError`; when
   * `signal` aborts, at once with an `LlmAbortError`, even while the SDK waits to retry.
   */
  send(request: ChatRequest, signal: AbortSignal, onAttempt: (attempt: number) => void): Promise<ChatResponse>;
}

/** Longest server-requested wait we honour before retrying; longer ones get the SDK's backoff. */
const MAX_SERVER_WAIT_MS = 60_000;
const MAX_QUOTED_BODY_CHARS = 300;

export function createTransport(options: TransportOptions): Transport {
  const { baseUrl, apiKey, timeoutMs } = options;
  const endpoint = `${baseUrl}/chat/completions`;
  const sdk = new OpenAI({
    baseURL: baseUrl,
    // The SDK refuses to start without a key; local servers need none, so a placeholder is set
    // and the Authorization header it would make is removed (a null default header).
    apiKey: apiKey ?? 'no-key',
    defaultHeaders: apiKey ? undefined : { Authorization: null },
    // Passed explicitly so that nothing is picked up from OPENAI_ORG_ID / OPENAI_PROJECT_ID.
    organization: null,
    project: null,
    // The key is the user's own and stays in their page: that is the point of this app.
    dangerouslyAllowBrowser: true,
    maxRetries: options.maxRetries,
    timeout: timeoutMs,
  });

  return {
    async send(request, signal, onAttempt) {
      let attempts = 0;
      // A per-call view of the client (cheap: it shares the configuration), so attempts are
      // counted per call for usage and for "gave up after N attempts".
      const call = sdk.withOptions({
        fetch: (input, init) => {
          attempts++;
          onAttempt(attempts);
          return sendAttempt(input, init, timeoutMs, options.fetch);
        },
      });
      try {
        // Extra fields of OpenAI-compatible servers (vLLM's prompt_logprobs, echo, …) are sent as
        // they are. The raw response is read here, not by the SDK, to check it leniently.
        const pending = call.chat.completions.create(request as OpenAI.ChatCompletionCreateParamsNonStreaming, { signal });
        // The SDK sleeps between retries without watching the signal: don't wait for it.
        const response = await raceAbort(pending.asResponse(), signal);
        return parseChatResponseBody(await response.text(), response.status);
      } catch (err) {
        const error = toLlmError(err, signal, endpoint, apiKey, timeoutMs);
        error.attempts = attempts;
        if (attempts > 1 && error.name !== 'AbortError') error.message += ` (gave up after ${attempts} attempts)`;
        throw error;
      }
    },
  };
}

/** The `fetch` the SDK calls for each HTTP attempt (see the file comment). */
async function sendAttempt(
  input: string | URL | Request,
  init: RequestInit | undefined,
  timeoutMs: number,
  fetchImpl: TransportOptions['fetch'],
): Promise<Response> {
  const headers = new Headers(init?.headers);
  for (const name of [...headers.keys()]) {
    if (name.startsWith('x-stainless-') || name === 'user-agent') headers.delete(name);
  }
  const deadline = new AbortController();
  // A reason whose text says "timed out": the SDK classifies a failed attempt as a timeout by that.
  const timer = setTimeout(() => deadline.abort(new Error(`request timed out after ${timeoutMs} ms`)), timeoutMs);
  const linked = linkSignals(init?.signal ?? undefined, deadline.signal);
  try {
    // Resolved per call: browsers throw "Illegal invocation" on a detached fetch.
    const request = { ...init, headers, signal: linked.signal };
    const response = await (fetchImpl ? fetchImpl(input, request) : globalThis.fetch(input, request));
    const text = await response.text();
    return response.ok ? rebuildResponse(response, text) : normalizeErrorResponse(response, text);
  } finally {
    clearTimeout(timer);
    linked.dispose();
  }
}

/** The buffered answer as a fresh Response (the body is already decoded, so no length/encoding). */
function rebuildResponse(response: Response, body: string, headers = new Headers(response.headers)): Response {
  headers.delete('content-length');
  headers.delete('content-encoding');
  return new Response(body, { status: response.status, statusText: response.statusText, headers });
}

function normalizeErrorResponse(response: Response, bodyText: string): Response {
  const info = parseServerError(bodyText);
  const headers = new Headers(response.headers);
  headers.set('content-type', 'application/json');
  if (response.status === 429 && isQuotaExhausted(info)) headers.set('x-should-retry', 'false');
  if ((serverWaitMs(headers) ?? 0) > MAX_SERVER_WAIT_MS) {
    headers.delete('retry-after-ms');
    headers.delete('retry-after');
  }
  return rebuildResponse(response, JSON.stringify({ error: info }), headers);
}

function isQuotaExhausted(info: ServerErrorInfo): boolean {
  return info.code === 'insufficient_quota' || info.type === 'insufficient_quota';
}

/** The wait a server asked for, in ms, from `retry-after-ms` or `retry-after` (seconds or a date). */
function serverWaitMs(headers: Headers): number | undefined {
  const ms = Number(headers.get('retry-after-ms') ?? NaN);
  if (Number.isFinite(ms)) return ms;
  const after = headers.get('retry-after');
  if (after === null) return undefined;
  const seconds = Number(after);
  if (Number.isFinite(seconds)) return seconds * 1000;
  const date = Date.parse(after);
  return Number.isNaN(date) ? undefined : date - Date.now();
}

export interface ServerErrorInfo {
  message?: string;
  code?: string;
  type?: string;
  param?: string;
}

/**
 * Whatever error information an error body holds; never throws. Servers disagree on its shape:
 * OpenAI and llama.cpp send `{error: {message, type, code, param}}`, vLLM `{object: "error",
 * message, type, code}`, Ollama sometimes `{error: "text"}`, FastAPI-based proxies `{detail: …}`;
 * anything else (an HTML error page) is quoted, shortened, as plain text.
 */
export function parseServerError(bodyText: string): ServerErrorInfo {
  let body: unknown;
  try {
    body = JSON.parse(bodyText);
  } catch {
    const text = bodyText.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim();
    return text ? { message: shorten(text) } : {};
  }
  if (!isRecord(body)) return {};
  const source = isRecord(body.error) ? body.error : body;
  const info: ServerErrorInfo = {
    message: asText(source.message) ?? asText(body.error) ?? detailText(body.detail),
    code: asText(source.code),
    type: asText(source.type),
    param: asText(source.param),
  };
  if (info.message === undefined && info.code === undefined && info.type === undefined) {
    info.message = shorten(bodyText.trim());
  }
  return info;
}

/** Our typed error for whatever `send` failed with. `apiKey` is only used to scrub messages. */
function toLlmError(err: unknown, signal: AbortSignal, endpoint: string, apiKey: string | undefined, timeoutMs: number): LlmError {
  if (signal.aborted) return abortErrorFrom(signal.reason);
  if (err instanceof LlmError) return err;
  const where = redactedUrl(endpoint);
  if (err instanceof APIConnectionTimeoutError) return new LlmTimeoutError(`LLM request to ${where} timed out after ${timeoutMs} ms`, { cause: err });
  if (err instanceof APIConnectionError) {
    return new LlmNetworkError(redactSecret(`LLM request to ${where} failed: ${describeError(err.cause ?? err)}`, apiKey), { cause: err });
  }
  if (err instanceof APIError && err.status !== undefined) return errorFromStatus(err, apiKey);
  return new LlmError(redactSecret(`LLM request failed: ${describeError(err)}`, apiKey), { cause: err });
}

function errorFromStatus(err: APIError, apiKey: string | undefined): LlmError {
  const status = err.status as number;
  const info = (isRecord(err.error) ? err.error : {}) as ServerErrorInfo;
  const details: LlmErrorDetails = {
    status,
    code: info.code,
    type: info.type,
    param: info.param,
    retryable: status === 408 || status === 409 || status === 429 || status >= 500,
  };
  const serverSays = info.message ? `: ${info.message}` : '';
  const codeNote = info.code && !(info.message ?? '').includes(info.code) ? ` [${info.code}]` : '';
  // A 404 means a wrong model name or a wrong base URL (often a missing /v1); say so.
  const hint = status === 404 ? ' (check the model name, and the base URL: most servers expect it to end in /v1)' : '';
  const message = redactSecret(`LLM request failed with HTTP ${status}${serverSays}${codeNote}${hint}`, apiKey);

  if (status === 401 || status === 403) return new LlmAuthError(message, details);
  if (status === 429) return isQuotaExhausted(info) ? new LlmQuotaError(message, details) : new LlmRateLimitError(message, details);
  if (status === 400 || status === 422) return new LlmBadRequestError(message, details);
  if (status >= 500) return new LlmServerError(message, details);
  return new LlmError(message, details);
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

function detailText(detail: unknown): string | undefined {
  if (typeof detail === 'string') return detail;
  if (detail === undefined) return undefined;
  try {
    return shorten(JSON.stringify(detail));
  } catch {
    return undefined;
  }
}

function asText(value: unknown): string | undefined {
  if (typeof value === 'string' && value.trim() !== '') return value;
  if (typeof value === 'number') return String(value);
  return undefined;
}

function shorten(text: string): string {
  return text.length > MAX_QUOTED_BODY_CHARS ? `${text.slice(0, MAX_QUOTED_BODY_CHARS)}…` : text;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
