import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getEventListeners, getMaxListeners } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { createChatClient, type ChatClientOptions } from '../src/lib/llm/client.ts';
import { DEFAULT_PRICING, defaultPricingFor, estimateCost, estimateRequestTokens, estimateTokens } from '../src/lib/llm/cost.ts';
import {
  LlmAbortError,
  LlmAuthError,
  LlmBadRequestError,
  LlmBudgetExceededError,
  LlmConfigError,
  LlmError,
  LlmNetworkError,
  LlmQuotaError,
  LlmRateLimitError,
  LlmResponseError,
  LlmServerError,
  LlmTimeoutError,
  isAbortError,
  isLogprobsUnsupported,
  isMaxTokensUnsupported,
} from '../src/lib/llm/errors.ts';
import { FileResponseCache, FileResponseCacheKeyError } from '../src/lib/llm/response-cache.node.ts';
import { MemoryResponseCache, canonicalJson, requestCacheKey } from '../src/lib/llm/response-cache.ts';
import { sha256Hex, sha256Pure } from '../src/lib/llm/sha256.ts';
import type { ChatRequest, ChatResponse } from '../src/lib/llm/types.ts';
import {
  logprobTokens,
  logprobsOf,
  reply,
  splitTokens,
  startFakeOpenAiServer,
  type FakeHandler,
  type FakeOpenAiServer,
  withDelay,
} from './helpers/fake-openai-server.ts';

const KEY = 'sk-test-SECRET-0123456789';

let servers: FakeOpenAiServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

async function serve(handler?: FakeHandler): Promise<FakeOpenAiServer> {
  const server = await startFakeOpenAiServer(handler);
  servers.push(server);
  return server;
}

function client(server: FakeOpenAiServer, options: Partial<ChatClientOptions> = {}) {
  return createChatClient({ baseUrl: server.baseUrl, ...options });
}

function chat(content = 'Say hi', extra: Partial<ChatRequest> = {}): ChatRequest {
  return { model: 'gpt-4o-mini', messages: [{ role: 'user', content }], max_tokens: 50, ...extra };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected the promise to reject');
}

describe('chat client against the fake server', () => {
  it('returns the completion and sends the request unchanged to /v1/chat/completions', async () => {
    const server = await serve(() => reply.completion('Hello there', { usage: { prompt_tokens: 12, completion_tokens: 3 } }));
    const request = chat('Say hi', { temperature: 0, logprobs: true, top_logprobs: 5, seed: 7 });
    const response = await client(server).complete(request);

    expect(response.choices[0].message.content).toBe('Hello there');
    expect(response.usage).toMatchObject({ prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 });
    expect(server.requests).toHaveLength(1);
    const [sent] = server.requests;
    expect(sent.method).toBe('POST');
    expect(sent.path).toBe('/v1/chat/completions');
    expect(sent.headers['content-type']).toContain('application/json');
    expect(sent.body).toEqual(request);
  });

  it("sends only the headers a strict CORS preflight allows: none of the SDK's x-stainless-* or its User-Agent", async () => {
    const server = await serve();
    await client(server, { apiKey: KEY, maxRetries: 2 }).complete(chat());
    const names = Object.keys(server.requests[0].headers);
    expect(names.filter((n) => n.startsWith('x-stainless-'))).toEqual([]);
    expect(server.requests[0].headers['user-agent'] ?? '').not.toMatch(/openai/i);
    expect(server.requests[0].headers.accept).toBe('application/json');
  });

  it("passes vLLM's extra fields (prompt_logprobs, echo) through, and hands back the answer's prompt_logprobs", async () => {
    const promptLogprobs: ChatResponse['prompt_logprobs'] = [null, { '464': { logprob: -1.25, rank: 1, decoded_token: ' The' } }, { '3797': { logprob: -0.5, rank: 2, decoded_token: ' cat' } }];
    const server = await serve(() => reply.completion('', { promptLogprobs }));
    const request = chat('The cat', { prompt_logprobs: 5, echo: true, add_generation_prompt: false, continue_final_message: true, max_tokens: 1 });
    const response = await client(server).complete(request);
    const sent = server.requests[0].body as unknown as Record<string, unknown>;
    expect(sent).toMatchObject({ prompt_logprobs: 5, echo: true, add_generation_prompt: false, continue_final_message: true });
    expect(response.prompt_logprobs).toEqual(promptLogprobs);
  });

  it('sends Authorization only when a key is given, and nowhere else', async () => {
    const server = await serve();
    await client(server, { apiKey: KEY }).complete(chat());
    await client(server).complete(chat());
    await client(server, { apiKey: '  ' }).complete(chat());

    expect(server.requests[0].headers.authorization).toBe(`Bearer ${KEY}`);
    expect(server.requests[1].headers).not.toHaveProperty('authorization');
    expect(server.requests[2].headers).not.toHaveProperty('authorization');
    expect(server.requests[0].rawBody).not.toContain(KEY);
    expect(server.requests[0].path).not.toContain(KEY);
  });

  it('redacts the key from error messages even when the server echoes it', async () => {
    const server = await serve(() => reply.error(401, `Incorrect API key provided: ${KEY}.`, { code: 'invalid_api_key' }));
    const err = await rejection(client(server, { apiKey: KEY }).complete(chat()));
    expect(err).toBeInstanceOf(LlmAuthError);
    const auth = err as LlmAuthError;
    expect(auth.status).toBe(401);
    expect(auth.message).toContain('401');
    expect(auth.message).toContain('Incorrect API key provided');
    expect(auth.message).not.toContain(KEY);
    expect(JSON.stringify({ ...auth, message: auth.message })).not.toContain(KEY);
    expect(server.requests).toHaveLength(1); // auth errors are not retried
  });

  it('honours Retry-After (seconds) on 429, then succeeds', async () => {
    const server = await serve((_, i) =>
      i === 0 ? reply.error(429, 'Rate limit reached for requests', { headers: { 'Retry-After': '1' } }) : reply.completion('ok'),
    );
    const c = client(server);
    const response = await c.complete(chat());
    expect(response.choices[0].message.content).toBe('ok');
    expect(server.requests).toHaveLength(2);
    const waited = server.requests[1].receivedAt - server.requests[0].receivedAt;
    expect(waited).toBeGreaterThanOrEqual(950);
    expect(waited).toBeLessThan(2500);
    expect(c.usage()).toMatchObject({ requests: 2, retries: 1 });
  });

  it('honours retry-after-ms over retry-after, and backs off without either', async () => {
    const server = await serve((_, i) => {
      if (i === 0) return reply.error(429, 'slow down', { headers: { 'retry-after-ms': '300', 'retry-after': '30' } });
      if (i === 1) return reply.error(429, 'slow down');
      return reply.completion('ok');
    });
    const c = client(server);
    await c.complete(chat());
    const firstGap = server.requests[1].receivedAt - server.requests[0].receivedAt;
    expect(firstGap).toBeGreaterThanOrEqual(280);
    expect(firstGap).toBeLessThan(2000);
    // Second retry without a server hint: the SDK's backoff, 0.5 s doubled once, minus up to 25 % jitter.
    const secondGap = server.requests[2].receivedAt - server.requests[1].receivedAt;
    expect(secondGap).toBeGreaterThanOrEqual(730);
    expect(secondGap).toBeLessThan(2500);
    expect(c.usage()).toMatchObject({ requests: 3, retries: 2 });
  });

  it('does not wait out an absurd Retry-After: it backs off as usual instead', async () => {
    const server = await serve((_, i) =>
      i === 0 ? reply.error(429, 'come back tomorrow', { headers: { 'retry-after': '86400' } }) : reply.completion('ok'),
    );
    const response = await client(server).complete(chat());
    expect(response.choices[0].message.content).toBe('ok');
    const gap = server.requests[1].receivedAt - server.requests[0].receivedAt;
    expect(gap).toBeGreaterThanOrEqual(350);
    expect(gap).toBeLessThan(2000);
  });

  it('retries a 500 and then succeeds', async () => {
    const server = await serve((_, i) => (i === 0 ? reply.error(500, 'The server had an error') : reply.completion('recovered')));
    const c = client(server);
    const response = await c.complete(chat());
    expect(response.choices[0].message.content).toBe('recovered');
    expect(c.usage()).toMatchObject({ requests: 2, retries: 1 });
  });

  it('gives up after maxRetries retryable failures with the last error', async () => {
    const server = await serve(() => reply.error(503, 'Service overloaded'));
    const err = await rejection(client(server, { maxRetries: 2 }).complete(chat()));
    expect(err).toBeInstanceOf(LlmServerError);
    expect((err as LlmError).message).toMatch(/503.*Service overloaded.*3 attempts/);
    expect((err as LlmError).attempts).toBe(3);
    expect(server.requests).toHaveLength(3);
  });

  it('does not retry a 400 and recognises unsupported logprobs / max_tokens', async () => {
    const server = await serve((body) =>
      body.logprobs
        ? reply.error(400, 'logprobs are not supported with reasoning models', { code: 'invalid_request_error' })
        : reply.error(400, "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.", {
            code: 'unsupported_parameter',
            param: 'max_tokens',
          }),
    );
    const c = client(server);
    const logprobsErr = await rejection(c.complete(chat('x', { model: 'o3-mini', logprobs: true, top_logprobs: 5 })));
    expect(logprobsErr).toBeInstanceOf(LlmBadRequestError);
    expect((logprobsErr as LlmError).status).toBe(400);
    expect((logprobsErr as LlmError).message).toContain('HTTP 400');
    expect((logprobsErr as LlmError).message).toContain('logprobs are not supported with reasoning models');
    expect(isLogprobsUnsupported(logprobsErr)).toBe(true);
    expect(isMaxTokensUnsupported(logprobsErr)).toBe(false);
    expect(server.requests).toHaveLength(1);

    const maxTokensErr = await rejection(c.complete(chat('x', { model: 'o3-mini' })));
    expect(isMaxTokensUnsupported(maxTokensErr)).toBe(true);
    expect(isLogprobsUnsupported(maxTokensErr)).toBe(false);
    expect((maxTokensErr as LlmError).param).toBe('max_tokens');
    expect(server.requests).toHaveLength(2);
  });

  it('does not retry 429 insufficient_quota and reports it as LlmQuotaError', async () => {
    const server = await serve(() =>
      reply.error(429, 'You exceeded your current quota, please check your plan and billing details.', {
        type: 'insufficient_quota',
        code: 'insufficient_quota',
      }),
    );
    const err = await rejection(client(server).complete(chat()));
    expect(err).toBeInstanceOf(LlmQuotaError);
    expect(err).not.toBeInstanceOf(LlmRateLimitError);
    expect((err as LlmError).retryable).toBe(false);
    expect((err as LlmError).message).toContain('exceeded your current quota');
    expect(server.requests).toHaveLength(1);
  });

  it('times out a hung request, retries it, then fails with LlmTimeoutError', async () => {
    const server = await serve(() => reply.hang());
    const started = performance.now();
    const err = await rejection(client(server, { timeoutMs: 150, maxRetries: 2 }).complete(chat()));
    const elapsed = performance.now() - started;
    expect(err).toBeInstanceOf(LlmTimeoutError);
    expect((err as LlmError).message).toContain('150 ms');
    expect(server.requests).toHaveLength(3);
    expect(elapsed).toBeGreaterThanOrEqual(3 * 150 - 20);
    expect(elapsed).toBeLessThan(3000);
    await server.waitForInFlight(0); // each timed-out attempt closed its connection
    expect(server.requests.every((r) => r.clientAborted)).toBe(true);
  });

  it('times out a body that never finishes after the headers arrived', async () => {
    const server = await serve((_, i) => (i === 0 ? reply.hang({ sendHeaders: true }) : reply.completion('second try')));
    const response = await client(server, { timeoutMs: 150 }).complete(chat());
    expect(response.choices[0].message.content).toBe('second try');
    expect(server.requests).toHaveLength(2);
  });

  it('reports truncated, non-JSON and choice-less 200 answers as LlmResponseError, without retrying', async () => {
    const server = await serve((body) => {
      const which = body.messages[0].content;
      if (which === 'truncated') return reply.truncated();
      if (which === 'html') return reply.raw(200, '<html><body>Bad gateway</body></html>');
      if (which === 'no-choices') return reply.raw(200, { id: 'x', object: 'chat.completion' });
      return reply.raw(200, { choices: [{ message: { content: 42 } }] });
    });
    const c = client(server);
    for (const [which, pattern] of [
      ['truncated', /HTTP 200.*truncated JSON/],
      ['html', /HTTP 200.*non-JSON.*Bad gateway/],
      ['no-choices', /"choices" is missing/],
      ['bad-content', /choices\[0\]\.message\.content is a number/],
    ] as const) {
      const err = await rejection(c.complete(chat(which)));
      expect(err, which).toBeInstanceOf(LlmResponseError);
      expect((err as LlmError).message, which).toMatch(pattern);
    }
    expect(server.requests).toHaveLength(4);
  });

  it('retries after the connection is reset, before or during the answer', async () => {
    const server = await serve((_, i) => {
      if (i === 0) return reply.destroy();
      if (i === 1) return reply.destroy({ afterPartialBody: true });
      return reply.completion('made it');
    });
    const c = client(server);
    const response = await c.complete(chat());
    expect(response.choices[0].message.content).toBe('made it');
    expect(c.usage()).toMatchObject({ requests: 3, retries: 2 });
  });

  it('retries when the server is gone, then fails with a clear LlmNetworkError', async () => {
    const server = await startFakeOpenAiServer();
    const baseUrl = server.baseUrl;
    await server.close();
    const c = createChatClient({ baseUrl, maxRetries: 2, apiKey: KEY });
    const err = await rejection(c.complete(chat()));
    expect(err).toBeInstanceOf(LlmNetworkError);
    expect((err as LlmError).message).toContain(baseUrl);
    expect((err as LlmError).message).toMatch(/ECONNREFUSED/);
    expect((err as LlmError).message).not.toContain(KEY);
    expect(c.usage()).toMatchObject({ requests: 3, retries: 2 });
  });

  it("cancels a job's queued and in-flight calls promptly and sends nothing more", async () => {
    const server = await serve(() => reply.hang());
    const c = client(server, { concurrency: 2 });
    const job = new AbortController();
    const jobCompleter = c.withSignal(job.signal);
    const calls = [1, 2, 3, 4].map((i) => jobCompleter.complete(chat(`call ${i}`)).then(() => 'resolved', (e: unknown) => e));
    await server.waitForInFlight(2);

    const started = performance.now();
    job.abort();
    const results = await Promise.all(calls);
    expect(performance.now() - started).toBeLessThan(200);
    for (const result of results) {
      expect(result).toBeInstanceOf(LlmAbortError);
      expect(isAbortError(result)).toBe(true);
      expect((result as Error).name).toBe('AbortError');
    }
    await server.waitForInFlight(0);
    await new Promise((r) => setTimeout(r, 150));
    expect(server.requests).toHaveLength(2); // the two queued calls were never sent
    expect(c.usage().retries).toBe(0);

    // The client itself stays usable for other jobs.
    server.setHandler(() => reply.completion('still works'));
    expect((await c.complete(chat())).choices[0].message.content).toBe('still works');
  });

  it('aborts a call during its retry wait without sending again; cancelAll stops everything', async () => {
    const server = await serve(() => reply.error(500, 'boom', { headers: { 'retry-after': '5' } }));
    const c = client(server);
    const controller = new AbortController();
    const call = rejection(c.complete(chat(), { signal: controller.signal }));
    await server.waitForRequests(1);
    await new Promise((r) => setTimeout(r, 50)); // now sleeping 5 s before the retry
    const abortedAt = performance.now();
    controller.abort('user pressed stop');
    const err = await call;
    expect(performance.now() - abortedAt).toBeLessThan(200);
    expect(err).toBeInstanceOf(LlmAbortError);
    expect((err as Error).message).toContain('user pressed stop');
    await new Promise((r) => setTimeout(r, 100));
    expect(server.requests).toHaveLength(1);

    server.setHandler(() => reply.hang());
    const pending = [rejection(c.complete(chat('a'))), rejection(c.complete(chat('b')))];
    await server.waitForInFlight(2);
    c.cancelAll('shutting down');
    for (const e of await Promise.all(pending)) {
      expect(e).toBeInstanceOf(LlmAbortError);
      expect((e as Error).message).toContain('shutting down');
    }
  });

  it('queues 200 calls on shared job signals without listener-leak warnings, and unhooks them all', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      // Node's default: a warning past 10 listeners on one AbortSignal.
      expect(getMaxListeners(new AbortController().signal)).toBe(10);
      const server = await serve(() => withDelay(reply.completion('ok'), 2));
      const clientJob = new AbortController();
      const job = new AbortController();
      const shared = new AbortController(); // one caller signal passed to every call
      const c = client(server, { concurrency: 4, signal: clientJob.signal });
      const completer = c.withSignal(job.signal);
      const calls = Array.from({ length: 200 }, (_, i) => completer.complete(chat(`q${i}`), { signal: shared.signal }));
      const settled = Promise.allSettled(calls);
      try {
        await server.waitForRequests(4);
        // While 196 calls wait, each shared signal carries one listener of this client, not 200.
        for (const s of [clientJob.signal, job.signal, shared.signal]) expect(getEventListeners(s, 'abort')).toHaveLength(1);
      } finally {
        await settled;
      }
      expect((await settled).every((r) => r.status === 'fulfilled')).toBe(true);
      expect(server.requests).toHaveLength(200);
      for (const s of [clientJob.signal, job.signal, shared.signal]) expect(getEventListeners(s, 'abort')).toHaveLength(0);
      await new Promise((r) => setTimeout(r, 20)); // warnings are emitted on a later tick
      expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('a failure that cancels its job stops the queued calls before any of them is sent', async () => {
    const server = await serve((_, i) => (i === 0 ? reply.error(400, 'bad request') : reply.completion('ok')));
    const c = client(server, { concurrency: 1 });
    const job = new AbortController();
    const completer = c.withSignal(job.signal);
    // Like the pipeline: a failed step cancels its job from its own rejection handler, a few
    // promise hops away from the client.
    const step = async (i: number) => {
      const response = await completer.complete(chat(`step ${i}`));
      return response.choices[0].message.content;
    };
    const guarded = (i: number) =>
      step(i).catch((err: unknown) => {
        job.abort(err);
        throw err;
      });
    const results = await Promise.all([0, 1, 2, 3].map((i) => rejection(guarded(i))));
    expect(results[0]).toBeInstanceOf(LlmBadRequestError);
    for (const r of results.slice(1)) expect(r).toBeInstanceOf(LlmAbortError);
    await new Promise((r) => setTimeout(r, 100));
    expect(server.requests).toHaveLength(1);
    expect(c.usage().requests).toBe(1);
  });

  it('rejects at once, sending nothing, when the signal is already aborted', async () => {
    const server = await serve();
    const err = await rejection(client(server).complete(chat(), { signal: AbortSignal.abort() }));
    expect(err).toBeInstanceOf(LlmAbortError);
    expect(server.requests).toHaveLength(0);
  });

  it('keeps at most `concurrency` requests in flight', async () => {
    const server = await serve(() => ({ ...reply.completion('ok'), delayMs: 60 }));
    const c = client(server, { concurrency: 3 });
    await Promise.all(Array.from({ length: 10 }, (_, i) => c.complete(chat(`q${i}`))));
    expect(server.requests).toHaveLength(10);
    expect(server.maxInFlight).toBe(3);
  });

  it('serves a repeated request from the cache: nothing sent, nothing spent', async () => {
    const server = await serve((_, i) => reply.completion(`answer ${i}`, { usage: { prompt_tokens: 100, completion_tokens: 20 } }));
    const cache = new MemoryResponseCache();
    const c = client(server, { cache });
    const first = await c.complete(chat('same'));
    const spent = c.usage();
    const second = await c.complete(chat('same'));

    expect(second).toEqual(first);
    expect(server.requests).toHaveLength(1);
    const after = c.usage();
    expect(after.cacheHits).toBe(1);
    expect(after.costUsd).toBe(spent.costUsd);
    expect(after.totalTokens).toBe(spent.totalTokens);
    expect(after.requests).toBe(1);

    // A different request, or noCache, goes to the server.
    expect((await c.complete(chat('different'))).choices[0].message.content).toBe('answer 1');
    expect((await c.complete(chat('same'), { noCache: true })).choices[0].message.content).toBe('answer 2');
    expect(server.requests).toHaveLength(3);
  });

  it('caches only successful, well-formed answers', async () => {
    const server = await serve((_, i) => (i === 0 ? reply.error(500, 'boom') : i === 1 ? reply.truncated() : reply.completion('good')));
    const cache = new MemoryResponseCache();
    const c = client(server, { cache, maxRetries: 0 });
    await expect(c.complete(chat())).rejects.toBeInstanceOf(LlmServerError);
    await expect(c.complete(chat())).rejects.toBeInstanceOf(LlmResponseError);
    expect(cache.size).toBe(0);
    await c.complete(chat());
    await c.complete(chat());
    expect(cache.size).toBe(1);
    expect(server.requests).toHaveLength(3);
  });

  it('stops before exceeding a token budget, without sending', async () => {
    const server = await serve(() => reply.completion('ok', { usage: { prompt_tokens: 60, completion_tokens: 40 } }));
    const request = chat('hello');
    const estimate = estimateRequestTokens(request).totalTokens;
    // Room for the first request's estimate, but not for the second after 100 real tokens are spent.
    const c = client(server, { budget: { maxTokens: 100 + estimate - 1 } });
    await c.complete(request);
    expect(c.usage().totalTokens).toBe(100);
    const err = await rejection(c.complete(request));
    expect(err).toBeInstanceOf(LlmBudgetExceededError);
    expect((err as LlmBudgetExceededError).limit).toMatchObject({ kind: 'tokens', spent: 100, thisRequest: estimate });
    expect((err as Error).message).toContain('nothing was sent');
    expect(server.requests).toHaveLength(1);
  });

  it('stops before exceeding a cost budget, counting requests in flight', async () => {
    const server = await serve(() => ({ ...reply.completion('ok', { usage: { prompt_tokens: 1000, completion_tokens: 1000 } }), delayMs: 50 }));
    const pricing = { inputPerMTok: 1000, outputPerMTok: 1000 }; // $0.001 per token keeps numbers readable
    const request = chat('x', { max_tokens: 1000 });
    const oneEstimate = estimateCost(estimateRequestTokens(request), pricing);
    const c = client(server, { pricing, budget: { maxCostUsd: oneEstimate * 2.5 }, concurrency: 4 });
    const results = await Promise.allSettled([1, 2, 3, 4].map(() => c.complete(request)));
    const sent = results.filter((r) => r.status === 'fulfilled').length;
    expect(sent).toBe(2); // the 3rd and 4th would have overshot together with the two in flight
    for (const r of results.filter((r) => r.status === 'rejected')) {
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(LlmBudgetExceededError);
    }
    expect(server.requests).toHaveLength(2);
  });

  it('refuses a cost budget for a model without known pricing', async () => {
    const server = await serve();
    const err = await rejection(client(server, { budget: { maxCostUsd: 1 } }).complete(chat('x', { model: 'llama3.1:8b' })));
    expect(err).toBeInstanceOf(LlmConfigError);
    expect((err as Error).message).toContain('llama3.1:8b');
    expect(server.requests).toHaveLength(0);
  });

  it('counts usage and cost from the server, or estimates them when it sends none', async () => {
    const server = await serve((body) =>
      body.messages[0].content === 'with usage'
        ? reply.completion('ok', { usage: { prompt_tokens: 1200, completion_tokens: 300 } })
        : reply.completion('one two three', { logprobs: logprobTokens('one two three') }),
    );
    const pricing = { inputPerMTok: 2, outputPerMTok: 8 };
    const deltas: { estimated: boolean; costUsd: number }[] = [];
    const c = client(server, { pricing, onUsage: (_, d) => deltas.push(d) });
    await c.complete(chat('with usage'));
    const noUsageRequest = chat('no usage');
    await c.complete(noUsageRequest);

    const estimatedPrompt = estimateRequestTokens(noUsageRequest).promptTokens;
    const u = c.usage();
    expect(u.promptTokens).toBe(1200 + estimatedPrompt);
    expect(u.completionTokens).toBe(300 + 3); // exact from the three logprob tokens
    expect(u.costUsd).toBeCloseTo((1200 * 2 + 300 * 8 + estimatedPrompt * 2 + 3 * 8) / 1e6, 12);
    expect(u.estimatedResponses).toBe(1);
    expect(deltas.map((d) => d.estimated)).toEqual([false, true]);
    expect(deltas[0].costUsd).toBeCloseTo((1200 * 2 + 300 * 8) / 1e6, 12);
  });

  it('prices known models by the longest matching prefix', async () => {
    const server = await serve(() => reply.completion('ok', { usage: { prompt_tokens: 1_000_000, completion_tokens: 0 } }));
    const c = client(server);
    await c.complete(chat('x', { model: 'gpt-4o-mini-2024-07-18' }));
    expect(c.usage().costUsd).toBeCloseTo(DEFAULT_PRICING['gpt-4o-mini'].inputPerMTok, 9);
    await c.complete(chat('x', { model: 'my-local-model' }));
    expect(c.usage().unpricedTokens).toBe(1_000_000);
  });

  it('reads error bodies of other server flavours and hints at a wrong base URL', async () => {
    const server = await serve((body) => {
      const which = body.messages[0].content;
      if (which === 'vllm') return reply.raw(400, { object: 'error', message: 'max_tokens is too large', type: 'BadRequestError', code: 400 });
      if (which === 'ollama') return reply.raw(404, { error: 'model "llama9" not found, try pulling it first' });
      return reply.raw(502, '<html><h1>502 Bad Gateway</h1></html>');
    });
    const c = client(server, { maxRetries: 0 });
    expect(((await rejection(c.complete(chat('vllm')))) as Error).message).toContain('max_tokens is too large');
    const ollama = (await rejection(c.complete(chat('ollama')))) as LlmError;
    expect(ollama.status).toBe(404);
    expect(ollama.message).toContain('model "llama9" not found');
    expect(((await rejection(c.complete(chat('proxy')))) as Error).message).toMatch(/HTTP 502.*502 Bad Gateway/);

    const wrongBase = createChatClient({ baseUrl: server.origin, maxRetries: 0 }); // forgot /v1
    const err = (await rejection(wrongBase.complete(chat()))) as LlmError;
    expect(err.status).toBe(404);
    expect(err.message).toContain('/v1');
  });

  it('rejects bad options and requests with clear errors', async () => {
    expect(() => createChatClient({ baseUrl: 'not a url' })).toThrow(LlmConfigError);
    expect(() => createChatClient({ baseUrl: 'ftp://example.com/v1' })).toThrow(/http/);
    expect(() => createChatClient({ baseUrl: 'http://127.0.0.1:1/v1', concurrency: 0 })).toThrow(/concurrency/);
    expect(() => createChatClient({ baseUrl: 'http://127.0.0.1:1/v1', maxRetries: 1.5 })).toThrow(/maxRetries/);
    expect(() => createChatClient({ baseUrl: 'http://127.0.0.1:1/v1', budget: { maxTokens: -1 } })).toThrow(/maxTokens/);
    const server = await serve();
    const c = client(server);
    await expect(c.complete({ model: '', messages: [{ role: 'user', content: 'x' }] })).rejects.toThrow(/model/);
    await expect(c.complete({ model: 'm', messages: [] })).rejects.toThrow(/messages/);
    await expect(c.complete({ model: 'm', messages: [{ role: 'robot', content: 'x' } as never] })).rejects.toThrow(/messages\[0\]/);
    expect(server.requests).toHaveLength(0);
  });
});

describe('response caches and keys', () => {
  it('keys requests by canonical JSON of base URL and body', async () => {
    const a = await requestCacheKey('http://h/v1', { model: 'm', messages: [{ role: 'user', content: 'x' }], temperature: 0 });
    const reordered = await requestCacheKey('http://h/v1/', { temperature: 0, messages: [{ content: 'x', role: 'user' }], model: 'm' });
    const otherServer = await requestCacheKey('http://other/v1', { model: 'm', messages: [{ role: 'user', content: 'x' }], temperature: 0 });
    const otherBody = await requestCacheKey('http://h/v1', { model: 'm', messages: [{ role: 'user', content: 'x' }], temperature: 1 });
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(reordered).toBe(a);
    expect(otherServer).not.toBe(a);
    expect(otherBody).not.toBe(a);
    expect(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: 2 }], c: undefined } })).toBe('{"a":{"d":[2,{"y":2,"z":1}]},"b":1}');
  });

  it('hashes like node:crypto, with and without Web Crypto', async () => {
    for (const text of ['', 'abc', 'é🙂 neurons', 'x'.repeat(55), 'y'.repeat(56), 'z'.repeat(1000)]) {
      const expected = createHash('sha256').update(text, 'utf8').digest('hex');
      expect(await sha256Hex(text)).toBe(expected);
      expect(Buffer.from(sha256Pure(new TextEncoder().encode(text))).toString('hex')).toBe(expected);
    }
  });

  it('stores entries as files, atomically, and treats corrupt ones as misses', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'neurolens-cache-'));
    try {
      const cache = new FileResponseCache(join(dir, 'nested'));
      const response: ChatResponse = {
        choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop', logprobs: null }],
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      };
      const key = 'a'.repeat(64);
      expect(await cache.get(key)).toBeUndefined();
      await cache.set(key, response);
      expect(await cache.get(key)).toEqual(response);
      expect(await readdir(join(dir, 'nested'))).toEqual([`${key}.json`]); // no temp files left

      await Promise.all(Array.from({ length: 8 }, () => cache.set(key, response)));
      expect(await readdir(join(dir, 'nested'))).toEqual([`${key}.json`]);

      await writeFile(join(dir, 'nested', `${key}.json`), '{"choices": [');
      expect(await cache.get(key)).toBeUndefined();
      await expect(cache.get('../escape')).rejects.toBeInstanceOf(FileResponseCacheKeyError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('works as the client cache across client instances', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'neurolens-cache-'));
    try {
      const server = await serve((_, i) => reply.completion(`answer ${i}`));
      const first = await client(server, { cache: new FileResponseCache(dir) }).complete(chat());
      const again = client(server, { cache: new FileResponseCache(dir) });
      expect(await again.complete(chat())).toEqual(first);
      expect(server.requests).toHaveLength(1);
      expect(again.usage().cacheHits).toBe(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('cost estimates', () => {
  it('estimates tokens at about four characters each', () => {
    expect(estimateTokens('')).toBe(0);
    expect(estimateTokens('abcd')).toBe(1);
    expect(estimateTokens('abcde')).toBe(2);
    const request: ChatRequest = { model: 'm', messages: [{ role: 'user', content: 'x'.repeat(400) }], max_tokens: 30, n: 2 };
    const estimate = estimateRequestTokens(request);
    expect(estimate.promptTokens).toBeGreaterThanOrEqual(100);
    expect(estimate.promptTokens).toBeLessThan(120);
    expect(estimate.completionTokens).toBe(60);
    expect(estimateRequestTokens({ ...request, max_completion_tokens: 10 }).completionTokens).toBe(20);
    expect(defaultPricingFor('gpt-4.1-nano-2025-04-14')).toEqual(DEFAULT_PRICING['gpt-4.1-nano']);
    expect(defaultPricingFor('gpt-4.1-2025-04-14')).toEqual(DEFAULT_PRICING['gpt-4.1']);
    expect(defaultPricingFor('claude')).toBeUndefined();
  });
});

describe('fake server logprob helpers', () => {
  it('splits like a chat model and builds top_logprobs with bytes', () => {
    expect(splitTokens('the\t7\nHello, world 123')).toEqual(['the', '\t', '7', '\n', 'Hello', ',', ' world', ' ', '123']);
    expect(splitTokens('héllo', 'chars')).toEqual(['h', 'é', 'l', 'l', 'o']);
    expect(() => splitTokens('abc', () => ['a', 'b'])).toThrow(/concatenate/);

    const alternatives = logprobsOf({ '7': 0.6, '8': 0.3, '6': 0.1 });
    const tokens = logprobTokens('x\t7', { alternatives: (t) => (t === '7' ? alternatives : undefined), topLogprobs: 2 });
    expect(tokens.map((t) => t.token).join('')).toBe('x\t7');
    const seven = tokens[2];
    expect(seven.logprob).toBeCloseTo(Math.log(0.6));
    expect(seven.top_logprobs.map((t) => t.token)).toEqual(['7', '8']);
    expect(seven.bytes).toEqual([0x37]);
    expect(tokens[0].top_logprobs).toEqual([{ token: 'x', logprob: 0, bytes: [0x78] }]);
    expect(logprobTokens('é', { bytes: false })[0].bytes).toBeNull();
    expect(logprobTokens('é')[0].bytes).toEqual([0xc3, 0xa9]);
  });

  it('serves logprobs that the client hands back intact', async () => {
    const content = logprobTokens('cat\t9', { alternatives: () => logprobsOf({ '9': 0.5, '10': 0.5 }) });
    const server = await serve(() => reply.completion('cat\t9', { logprobs: content }));
    const response = await client(server).complete(chat('x', { logprobs: true, top_logprobs: 2 }));
    expect(response.choices[0].logprobs?.content).toEqual(content);
  });
});
