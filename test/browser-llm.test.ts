/**
 * The LLM side in a real headless Chromium: the page (a harness page built like the app, served
 * cross-origin isolated) runs the real chat client and logprob simulator against the loopback
 * fake OpenAI server on another origin, through a real CORS preflight. Checks that the simulation
 * works, that the API key is sent only to the configured endpoint, and that the page keeps no copy
 * of it in its storage.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { SequenceSimulation } from '../src/lib/explain/explanation-types.ts';
import type { UsageTotals } from '../src/lib/llm/usage-meter.ts';
import { plantedNeurons } from '../scripts/toy/planted-model.ts';
import { plantedNeuronLlm } from './fixtures/planted-llm.ts';
import { browserAvailable, launchChromium, startBuiltHarness } from './helpers/browser.ts';
import type { StaticServer } from './helpers/static-server.ts';
import { startFakeOpenAiServer, type FakeOpenAiServer } from './helpers/fake-openai-server.ts';

const KEY = 'sk-browser-test-7f3a9c';

interface SimulateResult {
  simulation: SequenceSimulation;
  usage: UsageTotals;
  storage: { local: [string, string][]; session: [string, string][]; cookie: string };
}
type CallResult = { ok: true } | { ok: false; name: string; message: string };
interface Harness {
  simulate(args: { baseUrl: string; apiKey?: string; model: string; explanation: string; tokens: string[] }): Promise<SimulateResult>;
  tryComplete(args: { baseUrl: string; apiKey?: string }): Promise<CallResult>;
  rawPost(args: { url: string; headers: Record<string, string> }): Promise<{ ok: true; status: number } | { ok: false; name: string; message: string }>;
}

const run = browserAvailable() ? describe : describe.skip;

run('LLM client and simulator in headless Chromium', () => {
  let dev: StaticServer & { origin: string };
  let browser: Browser;
  let page: Page;
  let llm: FakeOpenAiServer;
  /** Refuses any preflight asking for a header other than authorization and content-type (like Ollama). */
  let strict: FakeOpenAiServer;
  /** A server that answers but sends no CORS headers, as many self-hosted servers do by default. */
  let noCors: Server;
  let noCorsUrl: string;
  let noCorsRequests: string[];
  /** Every request the page made, with its Authorization header if any. */
  const pageRequests: { url: string; method: string; authorization: string | undefined }[] = [];

  beforeAll(async () => {
    llm = await startFakeOpenAiServer(plantedNeuronLlm({ planted: plantedNeurons() }));
    strict = await startFakeOpenAiServer({ handler: plantedNeuronLlm({ planted: plantedNeurons() }), strictCors: true });
    noCorsRequests = [];
    noCors = createServer((req, res) => {
      noCorsRequests.push(`${req.method} ${req.url}`);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }] }));
    });
    await new Promise<void>((resolve) => noCors.listen(0, '127.0.0.1', resolve));
    noCorsUrl = `http://127.0.0.1:${(noCors.address() as AddressInfo).port}/v1`;

    dev = await startBuiltHarness();
    browser = await launchChromium();
    page = await browser.newPage();
    page.on('pageerror', (err) => console.error('page error:', err.message));
    page.on('request', (request) => {
      void request.allHeaders().then((headers) =>
        pageRequests.push({ url: request.url(), method: request.method(), authorization: headers.authorization }),
      );
    });
    await page.goto(`${dev.origin}/test/browser/llm-harness.html`);
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready', null, { timeout: 120_000 });
  });

  afterAll(async () => {
    await browser?.close();
    await dev?.close();
    await llm?.close();
    await strict?.close();
    await new Promise<void>((resolve) => (noCors ? noCors.close(() => resolve()) : resolve()));
  });

  const harness = <K extends keyof Harness>(method: K, args: Parameters<Harness[K]>[0]) =>
    page.evaluate(
      ([m, a]) => (window as unknown as { neurolensLlmHarness: Record<string, (x: unknown) => Promise<unknown>> }).neurolensLlmHarness[m](a),
      [method, args] as const,
    ) as ReturnType<Harness[K]>;

  it('simulates a neuron from its explanation in the browser, across origins with a CORS preflight', async () => {
    const tokens = ['The', ' cat', ' sat', ' on', ' the', ' mat', ' by', ' the', ' door', '.'];
    const result = await harness('simulate', {
      baseUrl: llm.baseUrl,
      apiKey: KEY,
      model: 'fake-model',
      explanation: 'the word " the"',
      tokens,
    });
    const sim = result.simulation;
    expect(sim.tokens).toEqual(tokens);
    expect(sim.simulation_mode).toBe('logprob');
    expect(sim.coverage).toBe(1);
    // The fake puts 90% of the mass on 10 at " the" and 94% on 0 elsewhere ("The" is not " the").
    sim.expected_activations.forEach((v, i) => {
      if (tokens[i] === ' the') expect(v!).toBeGreaterThan(9);
      else expect(v!).toBeLessThan(1);
    });
    expect(result.usage.requests).toBe(1);
    expect(llm.chatRequests).toHaveLength(1);
    expect(llm.preflights).toBeGreaterThanOrEqual(1); // Authorization + JSON need a preflight

    // The key reached the configured endpoint, in the Authorization header...
    expect(llm.chatRequests[0].headers.authorization).toBe(`Bearer ${KEY}`);
    expect(llm.chatRequests[0].rawBody).not.toContain(KEY);
    // ...and no other request of the page carried it (page, scripts and modules from the static server).
    await expect.poll(() => pageRequests.filter((r) => r.url.startsWith(llm.origin) && r.method === 'POST').length).toBe(1);
    const withKey = pageRequests.filter((r) => r.authorization !== undefined);
    expect(withKey.map((r) => [r.method, r.url])).toEqual([['POST', `${llm.baseUrl}/chat/completions`]]);
    expect(withKey[0].authorization).toBe(`Bearer ${KEY}`);
    expect(pageRequests.filter((r) => r.url.startsWith(dev.origin)).length).toBeGreaterThan(1);

    // The harness never stores the key: none of the page's storage holds it.
    const everything = JSON.stringify(result.storage);
    expect(everything).not.toContain(KEY);
    expect(JSON.stringify(await page.evaluate(() => (window as unknown as { neurolensLlmHarness: { storage(): unknown } }).neurolensLlmHarness.storage()))).not.toContain(KEY);
  });

  it('simulates against a server whose CORS preflight refuses every header but authorization and content-type', async () => {
    // The server really refuses anything else, e.g. the SDK's x-stainless-* headers.
    const refused = await harness('rawPost', {
      url: `${strict.baseUrl}/chat/completions`,
      headers: { 'content-type': 'application/json', 'x-stainless-os': 'Linux' },
    });
    expect(refused.ok).toBe(false);
    expect(strict.preflightRequests.at(-1)).toMatchObject({ refused: true });
    expect(strict.chatRequests).toHaveLength(0);

    const tokens = ['In', ' the', ' end', ' the', ' cat', ' won'];
    const result = await harness('simulate', { baseUrl: strict.baseUrl, apiKey: KEY, model: 'fake-model', explanation: 'the word " the"', tokens });
    expect(result.simulation.simulation_mode).toBe('logprob');
    expect(result.simulation.coverage).toBe(1);
    result.simulation.expected_activations.forEach((v, i) => (tokens[i] === ' the' ? expect(v!).toBeGreaterThan(9) : expect(v!).toBeLessThan(1)));
    expect(strict.chatRequests).toHaveLength(1);
    expect(strict.chatRequests[0].headers.authorization).toBe(`Bearer ${KEY}`);
    expect(Object.keys(strict.chatRequests[0].headers).filter((h) => h.startsWith('x-stainless'))).toEqual([]);
    const clientPreflights = strict.preflightRequests.filter((p) => p.path === '/v1/chat/completions' && !p.refused);
    expect(clientPreflights.length).toBeGreaterThanOrEqual(1);
    for (const p of clientPreflights) expect(p.requestedHeaders.sort()).toEqual(['authorization', 'content-type']);
  });

  it('reports a server without CORS headers as a network error that names CORS, without the key', async () => {
    const result = await harness('tryComplete', { baseUrl: noCorsUrl, apiKey: KEY });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.name).toBe('LlmNetworkError');
    expect(result.message).toMatch(/CORS/);
    expect(result.message).not.toContain(KEY);
    // The browser stopped at the preflight: the request itself (and the key) never went out.
    expect(noCorsRequests).toEqual(['OPTIONS /v1/chat/completions']);
  });
});
