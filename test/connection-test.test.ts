import { afterEach, describe, expect, it } from 'vitest';
import { testConnection } from '../src/lib/explain/connection-test.ts';
import { logprobTokens, reply, startFakeOpenAiServer, type FakeHandler, type FakeOpenAiServer } from './helpers/fake-openai-server.ts';

let servers: FakeOpenAiServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});
async function serve(handler: FakeHandler) {
  const server = await startFakeOpenAiServer(handler);
  servers.push(server);
  return server;
}

describe('testConnection', () => {
  it('one tiny request: logprobs returned → logprob mode', async () => {
    const server = await serve(() => reply.completion('7', { logprobs: logprobTokens('7') }));
    const report = await testConnection({ baseUrl: server.baseUrl, model: 'm', apiKey: 'sk-x' });
    expect(report).toMatchObject({ ok: true, logprobs: true, mode: 'logprob' });
    expect(server.chatRequests).toHaveLength(1);
    expect(server.chatRequests[0].body).toMatchObject({ model: 'm', max_tokens: 1, logprobs: true });
    expect(server.chatRequests[0].headers.authorization).toBe('Bearer sk-x');
  });

  it('logprobs silently left out (LM Studio) or refused (reasoning models) → sampled mode', async () => {
    const silent = await serve(() => reply.completion('7'));
    expect(await testConnection({ baseUrl: silent.baseUrl, model: 'm' })).toMatchObject({ ok: true, logprobs: false, mode: 'sampled' });
    const refusing = await serve(() => reply.error(400, 'logprobs are not supported with reasoning models'));
    const report = await testConnection({ baseUrl: refusing.baseUrl, model: 'o3-mini' });
    expect(report).toMatchObject({ ok: true, logprobs: false, mode: 'sampled' });
    expect(report.ok && report.detail).toMatch(/not supported with reasoning models/);
    // The mode follows the simulator's rule: a declared reasoning model runs sampled either way.
    const withLogprobs = await serve(() => reply.completion('7', { logprobs: logprobTokens('7') }));
    expect(await testConnection({ baseUrl: withLogprobs.baseUrl, model: 'm' }, undefined, { reasoningModel: true })).toMatchObject({
      logprobs: true,
      mode: 'sampled',
    });
  });

  it('reports a failure in words, and sends nothing without a model', async () => {
    const server = await serve(() => reply.error(401, 'Incorrect API key provided'));
    expect(await testConnection({ baseUrl: server.baseUrl, model: 'm', apiKey: 'bad' })).toEqual({
      ok: false,
      error: expect.stringMatching(/HTTP 401.*Incorrect API key/),
    });
    expect(await testConnection({ baseUrl: server.baseUrl, model: ' ' })).toEqual({ ok: false, error: expect.stringMatching(/model/) });
    expect(await testConnection({ baseUrl: 'not a url', model: 'm' })).toEqual({ ok: false, error: expect.stringMatching(/not a valid URL/) });
    expect(server.chatRequests).toHaveLength(1);
  });
});
