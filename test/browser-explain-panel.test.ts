/**
 * The app's LLM settings and explain panel in headless Chromium, against loopback OpenAI-protocol
 * servers whose CORS preflight refuses every header but `authorization` and `content-type` (as
 * Ollama, llama.cpp and some vLLM set-ups do): presets, "Test connection" (logprob mode on a server
 * with logprobs, sampled mode on one that refuses them), a full explain-and-score run, and a
 * neuron switched while its explanation is on the way, whose late answer must not show under the
 * neuron now selected.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { browserAvailable, launchChromium, scanBundledCorpus, showNeuron as pickNeuron, showView, startBuiltApp } from './helpers/browser.ts';
import type { StaticServer } from './helpers/static-server.ts';
import { logprobTokens, reply, startFakeOpenAiServer, type FakeHandler, type FakeOpenAiServer } from './helpers/fake-openai-server.ts';
import { plantedNeuronLlm } from './fixtures/planted-llm.ts';
import { plantedNeurons } from '../scripts/toy/planted-model.ts';

const run = browserAvailable() ? describe : describe.skip;
const ROOT = join(import.meta.dirname, '..');
const KEY = 'sk-panel-test-41c0';

/** Answers the connection probe ("Reply with the single digit 7.") with or without logprobs. */
const probeAnswer =
  (withLogprobs: boolean): FakeHandler =>
  (body) =>
    withLogprobs || !body.logprobs
      ? reply.completion('7', { logprobs: body.logprobs ? logprobTokens('7') : undefined })
      : reply.error(400, 'logprobs are not supported with reasoning models', { code: 'invalid_request_error' });

run('LLM settings and explain panel in the app', () => {
  let app: StaticServer;
  let browser: Browser;
  let page: Page;
  const servers: FakeOpenAiServer[] = [];
  const pageErrors: string[] = [];

  const strictServer = async (handler: FakeHandler) => {
    const server = await startFakeOpenAiServer({ handler, strictCors: true });
    servers.push(server);
    return server;
  };

  beforeAll(async () => {
    execFileSync(join(ROOT, 'node_modules/.bin/tsx'), [join(ROOT, 'scripts/gen-models.ts')], { stdio: 'ignore' });
    execFileSync(join(ROOT, 'node_modules/.bin/tsx'), [join(ROOT, 'scripts/prepare-corpus.ts')], { stdio: 'ignore' });
    app = await startBuiltApp();
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(app.url);
    await page.getByTestId('model-status').waitFor({ timeout: 120_000 });
    // A small scan to browse: records for every neuron of the toy model.
    await scanBundledCorpus(page, 48, 180_000);
    await page.getByRole('button', { name: 'Browse' }).first().click();
    await page.getByTestId('neuron-browser').waitFor();
    await showNeuron(0, 37);
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await Promise.all(servers.map((s) => s.close()));
  });

  async function showNeuron(layer: number, neuron: number) {
    await pickNeuron(page, `${layer}:${neuron}`);
    await page.waitForFunction((name) => document.querySelector('h1')?.textContent === name, `Neuron ${layer}:${neuron}`);
    await page.getByTestId('record-stats').waitFor();
    await page.getByTestId('explain').waitFor();
  }

  async function useEndpoint(server: FakeOpenAiServer, model: string) {
    await page.getByLabel('llm endpoint').fill(server.baseUrl);
    await page.getByLabel('llm model').fill(model);
    await page.getByLabel('api key').fill(KEY);
  }

  const connectionResult = () => page.getByTestId('connection-result');

  it('presets fill endpoint and model, and moving to another server clears the key', async () => {
    await page.getByLabel('api key').fill(KEY);
    const presets = page.getByRole('group', { name: 'llm presets' });
    for (const [label, endpoint, model] of [
      ['Ollama', 'http://localhost:11434/v1', 'llama3.1:8b'],
      ['vLLM', 'http://localhost:8000/v1', ''],
      ['LM Studio', 'http://localhost:1234/v1', ''],
      ['OpenAI', 'https://api.openai.com/v1', 'gpt-4o-mini'],
    ]) {
      await presets.getByRole('button', { name: label }).click();
      expect(await page.getByLabel('llm endpoint').inputValue()).toBe(endpoint);
      expect(await page.getByLabel('llm model').inputValue()).toBe(model);
      expect(await presets.getByRole('button', { name: label }).getAttribute('aria-pressed')).toBe('true');
    }
    expect(await page.getByLabel('api key').inputValue()).toBe('');
  });

  it('"Test connection" reports logprob mode on a server with logprobs, sampled mode on one that refuses them', async () => {
    expect(await connectionResult().getAttribute('aria-live')).toBe('polite');

    const withLogprobs = await strictServer(probeAnswer(true));
    await useEndpoint(withLogprobs, 'fake-model');
    await page.getByTestId('test-connection').click();
    await expect.poll(() => connectionResult().innerText(), { timeout: 30_000 }).toMatch(/^Connected/);
    expect(await connectionResult().innerText()).toMatch(/returns logprobs: simulations run in logprob mode/);
    expect(withLogprobs.chatRequests).toHaveLength(1);
    expect(withLogprobs.chatRequests[0].body).toMatchObject({ model: 'fake-model', logprobs: true, max_tokens: 1 });
    expect(withLogprobs.chatRequests[0].headers.authorization).toBe(`Bearer ${KEY}`);

    const refusing = await strictServer(probeAnswer(false));
    await useEndpoint(refusing, 'reasoning-model');
    expect(await connectionResult().innerText()).toBe(''); // the old report went with the old settings
    await page.getByTestId('test-connection').click();
    await expect.poll(() => connectionResult().innerText(), { timeout: 30_000 }).toMatch(/^Connected/);
    expect(await connectionResult().innerText()).toMatch(/returns no logprobs: simulations run in sampled JSON mode/);

    // A server that is not there.
    await page.getByLabel('llm endpoint').fill('http://127.0.0.1:9/v1');
    await page.getByTestId('test-connection').click();
    await expect.poll(() => connectionResult().innerText(), { timeout: 30_000 }).toMatch(/^Could not use this endpoint: .*Failed to fetch/);

    for (const server of [withLogprobs, refusing]) {
      expect(server.preflightRequests.every((p) => !p.refused)).toBe(true);
      expect(server.preflightRequests.length).toBeGreaterThanOrEqual(1);
    }
  });

  it('explains and scores the neuron through the app against the strict server', async () => {
    const llm = await strictServer(plantedNeuronLlm({ planted: plantedNeurons() }));
    await useEndpoint(llm, 'fake-model');
    await page.getByTestId('explain').click();
    await expect.poll(() => page.getByTestId('explanations').innerText().catch(() => ''), { timeout: 60_000 }).toMatch(/digits/);
    const row = await page.getByTestId('explanations').locator('tr.explanation').first().locator('td').allInnerTexts();
    expect(Number(row[1])).toBeGreaterThan(0.9);
    expect(llm.chatRequests.length).toBeGreaterThan(5);
    for (const r of llm.chatRequests) expect(r.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(llm.preflightRequests.every((p) => !p.refused)).toBe(true);
  });

  it("a neuron switched while its explanation is on the way: the late answer never shows under the new neuron", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const planted = plantedNeuronLlm({ planted: plantedNeurons() });
    // The explainer's answer waits until the test lets it go; everything after it is immediate.
    const slow = await strictServer(async (body, i, request) => {
      if (i === 0) await gate;
      return planted(body, i, request);
    });
    await useEndpoint(slow, 'slow-model'); // another model: neither job store nor cache has answers
    await page.getByTestId('explain').click();
    await slow.waitForRequests(1, 30_000);

    await showNeuron(0, 150);
    release();
    // Long enough for the whole job to finish, had it gone on.
    await page.waitForTimeout(1500);
    expect(await page.getByTestId('explanations').count()).toBe(0);
    expect(await page.getByTestId('neuron-browser').getByRole('alert').count()).toBe(0);
    expect(await page.getByTestId('explain').isEnabled()).toBe(true);
    expect(await page.getByTestId('neuron-browser').innerText()).not.toMatch(/digits|stopped/);
    // Switching stopped the job: its request was dropped and nothing more was sent.
    expect(slow.chatRequests).toHaveLength(1);
    expect(slow.chatRequests[0].clientAborted).toBe(true);

    // Back on 0:37, its earlier result (from the previous test) is there, and only that.
    await showNeuron(0, 37);
    await expect.poll(() => page.getByTestId('explanations').innerText().catch(() => ''), { timeout: 30_000 }).toMatch(/digits/);
    expect(await page.getByTestId('explanations').locator('tr.explanation').count()).toBe(1);
    expect(pageErrors).toEqual([]);
  });
});
