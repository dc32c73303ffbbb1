/**
 * A scriptable fake of an OpenAI-compatible server, for tests: a real HTTP server on
 * 127.0.0.1 (random port) that speaks `POST /v1/chat/completions` (and `GET /v1/models`).
 *
 * Usage:
 *
 *   const server = await startFakeOpenAiServer((body, i) =>
 *     i === 0 ? reply.error(429, 'Slow down', { headers: { 'Retry-After': '1' } }) : reply.completion('Hello'));
 *   const client = createChatClient({ baseUrl: server.baseUrl });   // http://127.0.0.1:PORT/v1
 *   ...
 *   expect(server.requests[1].body.model).toBe('gpt-4o-mini');       // everything sent is recorded
 *   await server.close();
 *
 * The handler gets the parsed request body, the 0-based index of the chat request, and the
 * recorded request (headers etc.), and returns (or resolves to) a `FakeReply`, built with:
 *
 *   reply.completion(content, { logprobs, usage, finishReason, model, choices, promptLogprobs, extra, headers })
 *       a normal chat completion; `usage` is omitted from the answer unless given; `choices`
 *       (one entry per choice) replaces `content` for n > 1; `logprobs` is `logprobs.content`
 *       of the single choice (build it with `logprobTokens`).
 *   reply.error(status, message, { type, code, param, headers })
 *       OpenAI's error shape `{error: {message, type, code, param}}` with that status.
 *   reply.raw(status, body, headers)   any status and body (string sent as is, objects as JSON).
 *   reply.hang({ sendHeaders })        never answers (optionally after sending 200 headers), until
 *                                      the client gives up or the server closes.
 *   reply.truncated({ body, keepFraction })  a 200 whose JSON is cut short (Content-Length matches
 *                                      the cut body, so the client reads it fully and fails to parse).
 *   reply.destroy({ afterPartialBody }) resets the connection without an answer (or mid-body).
 * Every reply takes an optional `delayMs` (wait before answering) via `withDelay(reply, ms)` or
 * the `delayMs` field.
 *
 * `logprobTokens(text, options)` splits a completion into tokens the way a chat model might
 * (GPT-style pre-tokenisation by default; configurable) and builds `logprobs.content` entries with
 * `bytes` and `top_logprobs`; `logprobsOf({token: probability})` converts probabilities.
 *
 * The server also counts requests in flight (`inFlight`, `maxInFlight`), records when each
 * request arrived and whether the client disconnected before an answer (`clientAborted`), answers
 * CORS preflights (so browser tests can use it; `strictCors` refuses any header but `authorization`
 * and `content-type`, like Ollama) and returns OpenAI-shaped 404/405/400 errors for
 * other paths, methods and non-JSON bodies.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ChatRequest, ChatResponse, ChatUsage, TokenLogprob, TopLogprob } from '../../src/lib/llm/types.ts';

export interface CompletionChoiceSpec {
  content: string | null;
  logprobs?: TokenLogprob[] | null;
  finishReason?: string;
}

interface ReplyCommon {
  /** Wait this long before answering (skipped if the client disconnects meanwhile). */
  delayMs?: number;
  /** Extra response headers. */
  headers?: Record<string, string>;
}

export interface CompletionReply extends ReplyCommon {
  kind: 'completion';
  content?: string | null;
  logprobs?: TokenLogprob[] | null;
  finishReason?: string;
  /** One entry per choice (for n > 1); replaces content/logprobs/finishReason. */
  choices?: CompletionChoiceSpec[];
  /** Sent only when given (real servers usually send it; tests of the no-usage path omit it). */
  usage?: ChatUsage;
  /** Default: the request's model. */
  model?: string;
  /** vLLM's `prompt_logprobs`. */
  promptLogprobs?: ChatResponse['prompt_logprobs'];
  /** Merged into the top level of the body. */
  extra?: Record<string, unknown>;
}

export interface RawReply extends ReplyCommon {
  kind: 'raw';
  status: number;
  body?: string | object;
}

export interface HangReply extends ReplyCommon {
  kind: 'hang';
  /** Send `200` headers (and no body) before hanging, to exercise body-read timeouts. */
  sendHeaders?: boolean;
}

export interface TruncatedReply extends ReplyCommon {
  kind: 'truncated';
  /** The JSON to cut; default a normal completion "ok" for the request. */
  body?: string | object;
  /** Fraction of the body kept, default 0.5. */
  keepFraction?: number;
}

export interface DestroyReply extends ReplyCommon {
  kind: 'destroy';
  /** Send 200 headers announcing a longer body and part of it, then reset. Default: reset at once. */
  afterPartialBody?: boolean;
}

export type FakeReply = CompletionReply | RawReply | HangReply | TruncatedReply | DestroyReply;

export interface RecordedRequest {
  /** 0-based position among all recorded requests (preflights are not recorded). */
  index: number;
  method: string;
  /** Path including query string, e.g. `/v1/chat/completions`. */
  path: string;
  /** Lower-cased header names. */
  headers: Record<string, string>;
  rawBody: string;
  /** The parsed JSON body, or undefined when it was not JSON. */
  body: ChatRequest | undefined;
  /** `performance.now()` when the request arrived. */
  receivedAt: number;
  /** `performance.now()` when the exchange ended (answered or connection closed). */
  closedAt?: number;
  /** True when the connection closed before a complete answer was sent (client gave up, or destroy/hang). */
  clientAborted: boolean;
  /** Set when the handler threw; the server then answered 500. */
  handlerError?: string;
}

export type FakeHandler = (body: ChatRequest, index: number, request: RecordedRequest) => FakeReply | Promise<FakeReply>;

export interface FakeServerOptions {
  handler?: FakeHandler;
  /** Model ids listed by `GET /v1/models`. Default ['fake-model']. */
  models?: string[];
  /**
   * Preflights always allow only `authorization` and `content-type` (browsers enforce that). When
   * strict, a preflight asking for any other header is also refused with 403, as Ollama, llama.cpp
   * and some vLLM set-ups do.
   */
  strictCors?: boolean;
}

/** A CORS preflight as the server saw it. */
export interface RecordedPreflight {
  path: string;
  /** `Access-Control-Request-Headers`, lower-cased and split. */
  requestedHeaders: string[];
  /** True when refused (strict mode, a header outside the allowed ones). */
  refused: boolean;
}

const CORS_ALLOWED_HEADERS = ['authorization', 'content-type'];

export interface FakeOpenAiServer {
  /** `http://127.0.0.1:PORT/v1`, what a client takes as its base URL. */
  readonly baseUrl: string;
  /** `http://127.0.0.1:PORT`. */
  readonly origin: string;
  readonly port: number;
  /** Every non-preflight request, in arrival order. */
  readonly requests: RecordedRequest[];
  /** Only the chat-completion requests (what the handler saw), in arrival order. */
  readonly chatRequests: RecordedRequest[];
  /** Requests being handled right now. */
  readonly inFlight: number;
  /** Most requests handled at once since start (or `reset`). */
  readonly maxInFlight: number;
  /** CORS preflights answered. */
  readonly preflights: number;
  /** Every CORS preflight, in arrival order. */
  readonly preflightRequests: RecordedPreflight[];
  setHandler(handler: FakeHandler): void;
  /** Forgets recorded requests and counters (the handler's index restarts at 0). */
  reset(): void;
  /** Resolves once `count` chat requests have arrived; rejects after `timeoutMs`. */
  waitForRequests(count: number, timeoutMs?: number): Promise<void>;
  /** Resolves once exactly `count` requests are in flight; rejects after `timeoutMs`. */
  waitForInFlight(count: number, timeoutMs?: number): Promise<void>;
  /** Stops the server, dropping hung connections. */
  close(): Promise<void>;
}

export const reply = {
  completion(content: string | null, options: Omit<CompletionReply, 'kind' | 'content'> = {}): CompletionReply {
    return { kind: 'completion', content, ...options };
  },
  error(
    status: number,
    message: string,
    options: { type?: string; code?: string | null; param?: string | null } & ReplyCommon = {},
  ): RawReply {
    const { type, code, param, ...common } = options;
    return {
      kind: 'raw',
      status,
      body: { error: { message, type: type ?? defaultErrorType(status), code: code ?? null, param: param ?? null } },
      ...common,
    };
  },
  raw(status: number, body?: string | object, headers?: Record<string, string>): RawReply {
    return { kind: 'raw', status, body, headers };
  },
  hang(options: Omit<HangReply, 'kind'> = {}): HangReply {
    return { kind: 'hang', ...options };
  },
  truncated(options: Omit<TruncatedReply, 'kind'> = {}): TruncatedReply {
    return { kind: 'truncated', ...options };
  },
  destroy(options: Omit<DestroyReply, 'kind'> = {}): DestroyReply {
    return { kind: 'destroy', ...options };
  },
};

/** The same reply, answered after `delayMs`. */
export function withDelay<R extends FakeReply>(r: R, delayMs: number): R {
  return { ...r, delayMs };
}

export async function startFakeOpenAiServer(handlerOrOptions?: FakeHandler | FakeServerOptions): Promise<FakeOpenAiServer> {
  const options: FakeServerOptions = typeof handlerOrOptions === 'function' ? { handler: handlerOrOptions } : (handlerOrOptions ?? {});
  let handler: FakeHandler = options.handler ?? (() => reply.completion('ok'));
  const models = options.models ?? ['fake-model'];
  const requests: RecordedRequest[] = [];
  const chatRequests: RecordedRequest[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let preflights = 0;
  const preflightRequests: RecordedPreflight[] = [];
  let generation = 0; // bumps on reset, so late-closing old requests don't skew fresh counters
  const openResponses = new Set<ServerResponse>();

  const server = createServer((req, res) => {
    if (req.method === 'OPTIONS') {
      preflights++;
      const requestedHeaders = String(req.headers['access-control-request-headers'] ?? '')
        .split(',')
        .map((h) => h.trim().toLowerCase())
        .filter(Boolean);
      const refused = options.strictCors === true && requestedHeaders.some((h) => !CORS_ALLOWED_HEADERS.includes(h));
      preflightRequests.push({ path: req.url ?? '', requestedHeaders, refused });
      if (refused) {
        res.writeHead(403, { 'Content-Type': 'text/plain' });
        res.end('CORS: header not allowed');
        return;
      }
      res.writeHead(204, {
        'Access-Control-Allow-Origin': '*',
        'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
        'Access-Control-Allow-Headers': CORS_ALLOWED_HEADERS.join(', '),
        'Access-Control-Max-Age': '600',
      });
      res.end();
      return;
    }
    void handle(req, res);
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const myGeneration = generation;
    const record: RecordedRequest = {
      index: requests.length,
      method: req.method ?? '',
      path: req.url ?? '',
      headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : (v ?? '')])),
      rawBody: '',
      body: undefined,
      receivedAt: performance.now(),
      clientAborted: false,
    };
    requests.push(record);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    openResponses.add(res);
    res.on('close', () => {
      openResponses.delete(res);
      record.closedAt = performance.now();
      if (!res.writableFinished) record.clientAborted = true;
      if (myGeneration === generation) inFlight--;
    });

    record.rawBody = await readBody(req).catch(() => '');
    try {
      record.body = JSON.parse(record.rawBody) as ChatRequest;
    } catch {
      record.body = undefined;
    }
    if (res.destroyed) return;

    const path = (req.url ?? '').split('?')[0].replace(/\/+$/, '');
    if (path === '/v1/models' && req.method === 'GET') {
      return sendJson(res, 200, { object: 'list', data: models.map((id) => ({ id, object: 'model', owned_by: 'fake' })) });
    }
    if (path !== '/v1/chat/completions') {
      return sendJson(res, 404, errorBody(`Invalid URL (${req.method} ${req.url})`, 'invalid_request_error', null));
    }
    if (req.method !== 'POST') {
      return sendJson(res, 405, errorBody(`Method ${req.method} not allowed`, 'invalid_request_error', null));
    }
    if (record.body === undefined || typeof record.body !== 'object' || record.body === null) {
      return sendJson(res, 400, errorBody('We could not parse the JSON body of your request.', 'invalid_request_error', null));
    }

    const chatIndex = chatRequests.length;
    chatRequests.push(record);
    let spec: FakeReply;
    try {
      spec = await handler(record.body, chatIndex, record);
    } catch (err) {
      record.handlerError = err instanceof Error ? err.message : String(err);
      return sendJson(res, 500, errorBody(`fake server handler threw: ${record.handlerError}`, 'server_error', null));
    }
    if (spec.delayMs) await waitOrClose(res, spec.delayMs);
    if (res.destroyed) return;
    answer(res, spec, record.body);
  }

  const state: FakeOpenAiServer = {
    baseUrl: '',
    origin: '',
    port: 0,
    requests,
    chatRequests,
    get inFlight() {
      return inFlight;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    get preflights() {
      return preflights;
    },
    preflightRequests,
    setHandler(next) {
      handler = next;
    },
    reset() {
      generation++;
      requests.length = 0;
      chatRequests.length = 0;
      inFlight = 0;
      maxInFlight = 0;
      preflights = 0;
      preflightRequests.length = 0;
    },
    waitForRequests(count, timeoutMs = 5000) {
      return waitUntil(() => chatRequests.length >= count, timeoutMs, () => `${count} requests (got ${chatRequests.length})`);
    },
    waitForInFlight(count, timeoutMs = 5000) {
      return waitUntil(() => inFlight === count, timeoutMs, () => `${count} requests in flight (have ${inFlight})`);
    },
    close() {
      for (const res of openResponses) res.destroy();
      server.closeAllConnections();
      return new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    },
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return Object.assign(state, { port, origin: `http://127.0.0.1:${port}`, baseUrl: `http://127.0.0.1:${port}/v1` });
}

function answer(res: ServerResponse, spec: FakeReply, request: ChatRequest): void {
  const headers = { 'Access-Control-Allow-Origin': '*', ...spec.headers };
  switch (spec.kind) {
    case 'completion':
      sendJson(res, 200, completionBody(spec, request), headers);
      return;
    case 'raw': {
      const text = spec.body === undefined ? '' : typeof spec.body === 'string' ? spec.body : JSON.stringify(spec.body);
      const type = typeof spec.body === 'object' ? 'application/json' : 'text/plain; charset=utf-8';
      res.writeHead(spec.status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(text), ...headers });
      res.end(text);
      return;
    }
    case 'hang':
      if (spec.sendHeaders) {
        res.writeHead(200, { 'Content-Type': 'application/json', ...headers });
        res.flushHeaders();
      }
      return; // The response stays open until the client or `close()` ends it.
    case 'truncated': {
      const full =
        spec.body === undefined
          ? JSON.stringify(completionBody(reply.completion('ok'), request))
          : typeof spec.body === 'string'
            ? spec.body
            : JSON.stringify(spec.body);
      const cut = full.slice(0, Math.floor(full.length * (spec.keepFraction ?? 0.5)));
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(cut), ...headers });
      res.end(cut);
      return;
    }
    case 'destroy':
      if (spec.afterPartialBody) {
        const full = JSON.stringify(completionBody(reply.completion('ok'), request));
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(full), ...headers });
        res.write(full.slice(0, 10), () => res.destroy());
      } else {
        res.destroy();
      }
      return;
  }
}

function completionBody(spec: CompletionReply, request: ChatRequest): ChatResponse {
  const choiceSpecs: CompletionChoiceSpec[] = spec.choices ?? [
    { content: spec.content ?? null, logprobs: spec.logprobs, finishReason: spec.finishReason },
  ];
  const body: ChatResponse & Record<string, unknown> = {
    id: `chatcmpl-fake-${Math.random().toString(36).slice(2, 10)}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: spec.model ?? request.model,
    choices: choiceSpecs.map((c, index) => ({
      index,
      message: { role: 'assistant', content: c.content, refusal: null },
      logprobs: c.logprobs ? { content: c.logprobs } : null,
      finish_reason: c.finishReason ?? 'stop',
    })),
    ...spec.extra,
  };
  if (spec.usage) body.usage = spec.usage;
  if (spec.promptLogprobs !== undefined) body.prompt_logprobs = spec.promptLogprobs;
  return body;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    'Access-Control-Allow-Origin': '*',
    ...headers,
  });
  res.end(text);
}

function errorBody(message: string, type: string, code: string | null) {
  return { error: { message, type, code, param: null } };
}

function defaultErrorType(status: number): string {
  if (status === 429) return 'requests';
  if (status === 401 || status === 403) return 'invalid_request_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function waitOrClose(res: ServerResponse, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      res.off('close', done);
      resolve();
    }
    res.on('close', done);
  });
}

async function waitUntil(condition: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`fake server: timed out after ${timeoutMs} ms waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

// ---------------------------------------------------------------------------------------------
// Logprobs

/** How `logprobTokens` splits text into tokens. */
export type TokenSplit = 'gpt' | 'chars' | 'whitespace' | RegExp | ((text: string) => string[]);

export interface LogprobTokenOptions {
  /**
   * 'gpt' (default): GPT-style pre-tokenisation (words with their leading space, numbers of up to
   * 3 digits, punctuation runs, whitespace runs); 'chars': one token per character; 'whitespace':
   * words with their leading whitespace; a global RegExp whose matches are the tokens; or a function.
   * The tokens must concatenate back to the text.
   */
  split?: TokenSplit;
  /** Alternatives at a position as token → logprob (see `logprobsOf`); may include the chosen token. */
  alternatives?: (token: string, index: number) => Record<string, number> | undefined;
  /** Logprob of the chosen token when `alternatives` doesn't give one. Default 0 (certain). */
  logprob?: number | ((token: string, index: number) => number);
  /** Keep at most this many `top_logprobs` per position, highest first (like the API's top_logprobs). Default 20. */
  topLogprobs?: number;
  /** true (default): UTF-8 `bytes` on every entry; false: `bytes: null`, as some servers send. */
  bytes?: boolean;
}

const GPT_SPLIT = /'(?:s|t|re|ve|m|ll|d)| ?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
const WHITESPACE_SPLIT = /\s*\S+|\s+/gu;

/** Splits `text` into tokens; throws when the tokens would not reproduce the text. */
export function splitTokens(text: string, split: TokenSplit = 'gpt'): string[] {
  let tokens: string[];
  if (typeof split === 'function') tokens = split(text);
  else if (split === 'chars') tokens = Array.from(text);
  else {
    const pattern = split === 'gpt' ? GPT_SPLIT : split === 'whitespace' ? WHITESPACE_SPLIT : split;
    if (!pattern.global) throw new Error('splitTokens: a RegExp splitter needs the g flag');
    tokens = Array.from(text.matchAll(pattern), (m) => m[0]).filter((t) => t.length > 0);
  }
  if (tokens.join('') !== text) throw new Error(`splitTokens: tokens do not concatenate back to the text ${JSON.stringify(text)}`);
  return tokens;
}

/**
 * `logprobs.content` for a completion `text`: one entry per token with its logprob, UTF-8
 * `bytes` and `top_logprobs` (the alternatives plus the chosen token, highest first, capped).
 */
export function logprobTokens(text: string, options: LogprobTokenOptions = {}): TokenLogprob[] {
  const cap = options.topLogprobs ?? 20;
  const withBytes = options.bytes ?? true;
  const entry = (token: string, logprob: number): TopLogprob => ({
    token,
    logprob,
    bytes: withBytes ? Array.from(new TextEncoder().encode(token)) : null,
  });
  return splitTokens(text, options.split).map((token, i) => {
    const alternatives = options.alternatives?.(token, i) ?? {};
    const fallback = typeof options.logprob === 'function' ? options.logprob(token, i) : (options.logprob ?? 0);
    const chosen = alternatives[token] ?? fallback;
    const ranked = Object.entries({ ...alternatives, [token]: chosen })
      .sort((a, b) => b[1] - a[1])
      .slice(0, Math.max(0, cap))
      .map(([t, lp]) => entry(t, lp));
    return { ...entry(token, chosen), top_logprobs: ranked };
  });
}

/** Converts token → probability into token → logprob (probability 0 is left out). */
export function logprobsOf(probabilities: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [token, p] of Object.entries(probabilities)) if (p > 0) out[token] = Math.log(p);
  return out;
}
