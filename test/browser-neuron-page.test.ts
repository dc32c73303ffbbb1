/**
 * The neuron page in headless Chromium on the production build, after a real scan of the bundled
 * corpus with the toy model, with the loopback OpenAI-protocol server as the LLM. Wherever scores
 * appear they come from the scripted LLM handed the planted rules (test/fixtures/planted-llm.ts),
 * or from scripted failures of it.
 *
 * Checked: the page opened from the Datasets view and from an address; heatmaps centred on the
 * peak at the planted tokens; statistics, histogram, weight views; explain → simulate → score with
 * mode, coverage and the ablation score beside the correlation; plain reasons for undefined
 * scores; sampled mode said out loud; re-run and delete; a server that ignores `n`; the test-my-text
 * box; the hand-off to the probe; PNG and SVG downloads; screenshots at three sizes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { browserAvailable, launchChromium, scanBundledCorpus, showNeuron, showView, startBuiltApp } from './helpers/browser.ts';
import type { StaticServer } from './helpers/static-server.ts';
import { reply, startFakeOpenAiServer, type FakeHandler, type FakeOpenAiServer } from './helpers/fake-openai-server.ts';
import { allZeroSimulationLlm, plantedNeuronLlm } from './fixtures/planted-llm.ts';
import { plantedNeurons } from '../scripts/toy/planted-model.ts';

const run = browserAvailable() ? describe : describe.skip;
const planted = plantedNeurons();
const rule = (id: string) => planted.find((p) => p.id === id)!;
const isExplainer = (body: { messages: { content: string }[] }) => body.messages[0]?.content.includes('interpret single neurons');

run('the neuron page', () => {
  let app: StaticServer;
  let browser: Browser;
  let page: Page;
  const servers: FakeOpenAiServer[] = [];
  const pageErrors: string[] = [];

  const llmServer = async (handler: FakeHandler) => {
    const server = await startFakeOpenAiServer(handler);
    servers.push(server);
    return server;
  };

  beforeAll(async () => {
    app = await startBuiltApp();
    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
    page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(app.url);
    await page.getByTestId('model-status').waitFor({ timeout: 120_000 });
    await scanBundledCorpus(page, 96);
  }, 360_000);

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await Promise.all(servers.map((s) => s.close()));
  });

  async function useEndpoint(server: FakeOpenAiServer) {
    await page.getByLabel('llm endpoint').fill(server.baseUrl);
    await page.getByLabel('llm model').fill('fake-model');
    await page.getByLabel('api key').fill('sk-neuron-page');
  }

  async function openNeuron(neuron: string) {
    await showNeuron(page, neuron);
    await expect.poll(() => page.getByTestId('record-stats').innerText().catch(() => ''), { timeout: 30_000 }).toMatch(/max \d/);
  }

  /** The cells of an explanation's row, by column name. */
  async function row(explanation: string) {
    const cells = await page.getByTestId('explanations').locator('tr.explanation', { hasText: explanation }).locator('td').allInnerTexts();
    const [text, correlation, ablation, top, random, simulator, coverage] = cells;
    return { text, correlation, ablation, top, random, simulator, coverage };
  }

  const jobIdle = () => expect.poll(() => page.getByTestId('job-status').innerText(), { timeout: 120_000 }).toMatch(/^Done|^Stopped|^$/);

  it('opens from the Datasets view on a planted neuron: 0:37’s heatmaps centre on peaks at digits', async () => {
    await showView(page, 'Datasets');
    await page.getByRole('button', { name: 'Browse' }).first().click();
    await expect.poll(() => new URL(page.url()).searchParams.get('neuron')).toBe('0:37');
    await expect.poll(() => page.getByRole('heading', { level: 1 }).innerText()).toBe('Neuron 0:37');
    await expect.poll(() => page.getByTestId('record-stats').innerText(), { timeout: 30_000 }).toMatch(/max 4\.0\d\d/);

    const top = page.getByTestId('excerpts-top');
    const peaks = await top.locator('.tok.peak').allInnerTexts();
    expect(peaks.length).toBe(20);
    for (const p of peaks) expect(p).toMatch(/^\s?\d+$/);
    // Each row is the excerpt's window around its peak, the rest left out with a visible ellipsis.
    expect(await top.locator('.ellipsis').count()).toBeGreaterThan(10);
    const labels = await top.locator('.label').allInnerTexts();
    expect(labels.every((l) => /^max 4\.\d\d$/.test(l))).toBe(true);
    // The peak sits in the middle of its window (12 tokens either side, unless an end is nearer).
    const windows = await top.locator('[role="listbox"]').evaluateAll((rows) =>
      rows.map((r) => {
        const options = [...r.querySelectorAll('[role="option"]')];
        return { peak: options.findIndex((o) => o.classList.contains('peak')), count: options.length, cut: r.querySelectorAll('.ellipsis').length };
      }),
    );
    for (const w of windows.filter((w) => w.cut === 2)) expect(w).toMatchObject({ peak: 12, count: 25 });

    // Statistics, the peak-token summary, the histogram and how often it fires.
    for (const chip of await page.getByTestId('peak-tokens').locator('.chip').allInnerTexts()) expect(chip).toMatch(/^"\s?\d+" × \d+$/);
    expect(await page.getByTestId('firing').innerText()).toMatch(/^Fires \(above 0\.40, 10% of its max\) on [\d.]+% of the [\d,]+ tokens in the 50 random excerpts/);
    expect(await page.getByTestId('histogram').locator('rect').count()).toBeGreaterThan(1);
    expect(await page.getByTestId('histogram').getAttribute('aria-label')).toBe('Neuron 0:37: max activation per random excerpt');

    // Weight views: the tokens it reads are digits; its downstream neighbours open their page.
    await expect.poll(() => page.getByTestId('weights-input-tokens').locator('li').count(), { timeout: 30_000 }).toBe(10);
    const reads = await page.getByTestId('weights-input-tokens').locator('.tok').allInnerTexts();
    expect(reads.filter((t) => /^\s?\d+$/.test(t)).length).toBeGreaterThanOrEqual(8);
    expect(await page.getByTestId('weights-promoted').locator('li').count()).toBe(10);
    expect(await page.getByTestId('weights-suppressed').locator('li').count()).toBe(10);
    const first = page.getByTestId('weights-downstream').getByRole('button').first();
    const target = (await first.innerText()).split(' ')[0];
    await first.click();
    await expect.poll(() => new URL(page.url()).searchParams.get('neuron')).toBe(target);
    await page.goBack();
    await expect.poll(() => new URL(page.url()).searchParams.get('neuron')).toBe('0:37');
  });

  it('opens from the probe: a token\'s neuron, and "Open its page"', async () => {
    await showView(page, 'Probe');
    await page.locator('#probe-text').fill('In 1961 the jury met.');
    // The token " 1961": its most active neurons per layer; the planted digit neuron is among them.
    const token = page.getByTestId('token-strip').first().getByRole('button', { name: /^" 1961":/ });
    await token.waitFor({ timeout: 60_000 });
    await token.click();
    await page.getByTestId('token-neurons').getByRole('button', { name: /^0:37 / }).click();
    await expect.poll(() => new URL(page.url()).searchParams.get('view')).toBe('neuron');
    expect(new URL(page.url()).searchParams.get('neuron')).toBe('0:37');
    await expect.poll(() => page.getByTestId('record-stats').innerText(), { timeout: 30_000 }).toMatch(/max 4\.0\d\d/);

    await page.goBack();
    await expect.poll(() => new URL(page.url()).searchParams.get('view')).toBe('probe');
    await showNeuron(page, '0:150');
    await page.getByRole('button', { name: 'Open its page' }).click();
    await expect.poll(() => page.getByRole('heading', { level: 1 }).innerText()).toBe('Neuron 0:150');
    await expect.poll(() => page.getByTestId('record-stats').innerText(), { timeout: 30_000 }).toMatch(/max \d/);
  });

  it('opens from an address in another tab: 0:150’s peaks are capitalised words', async () => {
    const dataset = new URL(page.url()).searchParams.get('dataset')!;
    const other = await page.context().newPage();
    try {
      await other.goto(`${app.url}?view=neuron&dataset=${encodeURIComponent(dataset)}&neuron=0:150`);
      await expect.poll(() => other.getByTestId('record-stats').innerText().catch(() => ''), { timeout: 120_000 }).toMatch(/max \d/);
      expect(await other.getByRole('heading', { level: 1 }).innerText()).toBe('Neuron 0:150');
      const peaks = await other.getByTestId('excerpts-top').locator('.tok.peak').allInnerTexts();
      expect(peaks.length).toBeGreaterThan(5);
      for (const p of peaks) expect(p).toMatch(/^\s?[A-Z]/);
    } finally {
      await other.close();
    }
  });

  it('explains and scores with the scripted LLM: scores, mode, coverage, the ablation score beside the correlation; the planted rule beats a wrong one', async () => {
    const llm = await llmServer(plantedNeuronLlm({ planted }));
    await openNeuron('0:37');
    await useEndpoint(llm);
    expect(await page.locator('#explain-cost').innerText()).toMatch(/^Before it runs: about 11 requests, [\d,]+ tokens/);
    await page.getByTestId('explain').click();
    // Progress while it runs, in a live region.
    expect(await page.getByTestId('job-status').getAttribute('aria-live')).toBe('polite');
    await expect.poll(() => page.getByTestId('job-status').innerText(), { timeout: 30_000 }).toMatch(/step \d+ of \d+|^Done/);
    await jobIdle();
    const headers = await page.getByTestId('explanations').locator('thead th').allInnerTexts();
    expect(headers.slice(0, 3)).toEqual(['explanation', 'correlation', 'ablation']);
    const right = await row(rule('digits').description);
    expect(Number(right.correlation)).toBeGreaterThan(0.9);
    expect(Number(right.ablation)).toBeGreaterThan(0.5);
    expect(Number(right.top)).toBeGreaterThan(0.9);
    expect(right.simulator).toBe('logprob');
    expect(right.coverage).toBe('100%');
    expect(llm.chatRequests.length).toBe(11);
    expect(await page.getByTestId('job-status').innerText()).toMatch(/^Done: 11 requests sent \(0 answered from the cache\)/);

    // Real and simulated activations side by side, per scored excerpt.
    const compared = page.getByTestId('simulation-comparison');
    expect(await compared.locator('li').count()).toBe(20);
    expect(await compared.locator('.label').allInnerTexts()).toContain('simulated r 1.00');

    // A wrong rule, written in by hand, simulated and scored: worse on both scores.
    await page.getByLabel('your explanation').fill(rule('capitalised').description);
    expect(await page.locator('#simulate-cost').innerText()).toMatch(/^about 10 requests/);
    await page.getByTestId('simulate-own').click();
    await expect.poll(() => page.getByTestId('explanations').locator('tr.explanation').count(), { timeout: 120_000 }).toBe(2);
    await jobIdle();
    const wrong = await row(rule('capitalised').description);
    expect(Number(wrong.ablation)).toBeLessThan(Number(right.ablation));
    expect(wrong.correlation === 'none' || Number(wrong.correlation) < 0.5).toBe(true);
  });

  it('an all-zero simulation: a plain reason, not "undefined"; a plain run recalls it, Re-run replaces it, Delete removes it', async () => {
    const the = rule('the');
    const planted_ = plantedNeuronLlm({ planted });
    // Every simulation says 0 everywhere.
    const llm = await llmServer(allZeroSimulationLlm);
    await openNeuron('0:203');
    await useEndpoint(llm);
    // Not what this test is about, and it takes a while: no ablation score here.
    await page.getByLabel('with the ablation score').uncheck();
    await page.getByLabel('your explanation').fill(the.description);
    await page.getByTestId('simulate-own').click();
    await expect.poll(() => page.getByTestId('explanations').locator('tr.explanation').count(), { timeout: 120_000 }).toBe(1);
    await jobIdle();
    const table = page.getByTestId('explanations');
    expect((await row(the.description)).correlation).toBe('none');
    const reasons = await table.locator('tr.reasons').innerText();
    expect(reasons).toMatch(/Correlation: the simulation is 0\.00 on every token, and a constant has no correlation/);
    expect(await table.innerText()).not.toMatch(/undefined|NaN/);

    // The endpoint is fixed; a plain run recalls the saved steps (nothing is sent) and keeps the bad result ...
    llm.setHandler(planted_);
    const sent = llm.chatRequests.length;
    await page.getByTestId('simulate-own').click();
    await jobIdle();
    expect(llm.chatRequests.length).toBe(sent);
    expect((await row(the.description)).correlation).toBe('none');
    // ... and Re-run asks afresh, past the saved steps and the cached answers.
    await table.locator('tr.explanation', { hasText: the.description }).getByTestId('rerun').click();
    await expect.poll(async () => Number((await row(the.description)).correlation), { timeout: 120_000 }).toBeGreaterThan(0.9);
    expect(llm.chatRequests.length).toBeGreaterThan(sent);
    // The correlation needs no reason any more (the ablation score, not asked for, still says why it is missing).
    expect(await table.locator('tr.reasons').innerText()).not.toMatch(/Correlation:/);
    expect(await table.locator('tr.reasons').innerText()).toMatch(/Ablation score: not computed yet/);

    // Delete asks first, then removes it with its scores.
    await table.locator('tr.explanation').getByTestId('delete').click();
    await page.getByRole('alertdialog', { name: `confirm deleting ${the.description}` }).getByRole('button', { name: 'Delete' }).click();
    await expect.poll(() => page.getByTestId('explanations').count()).toBe(0);
    await page.reload();
    await expect.poll(() => page.getByTestId('record-stats').innerText().catch(() => ''), { timeout: 120_000 }).toMatch(/max \d/);
    await expect.poll(() => page.getByText('No explanations of this neuron yet.').count()).toBe(1);
    await expect.poll(() => page.getByTestId('header-model').innerText(), { timeout: 120_000 }).toMatch(/toy-planted/);
  });

  it('garbage simulator answers without logprobs: sampled mode said out loud, and "no values" as the reason', async () => {
    const planted_ = plantedNeuronLlm({ planted });
    const llm = await llmServer((body, i, r) => (isExplainer(body) ? planted_(body, i, r) : reply.completion('Sorry, I am not sure what you mean.')));
    await openNeuron('1:91');
    await useEndpoint(llm);
    await page.getByTestId('explain').click();
    await expect.poll(() => page.getByTestId('explanations').locator('tr.explanation').count(), { timeout: 120_000 }).toBe(1);
    await jobIdle();
    const r = await row(rule('closing-quote').description);
    expect(r.correlation).toBe('none');
    expect(r.simulator).toBe('sampled');
    expect(r.coverage).toBe('0%');
    expect(await page.getByTestId('explanations').locator('tr.reasons').innerText()).toMatch(/Correlation: the simulator returned no values: check the endpoint's answers/);
    expect(await page.getByTestId('job-notice').allInnerTexts()).toContainEqual(expect.stringMatching(/^The endpoint gave no logprobs \(or refused them\), so the simulator ran in sampled mode/));
  });

  it('a server that ignores n still gives 2 explanations', async () => {
    const rightAnswer = plantedNeuronLlm({ planted });
    const otherAnswer = plantedNeuronLlm({ planted, answerFor: () => rule('the') });
    let explainerCalls = 0;
    const llm = await llmServer((body, i, r) => {
      if (!isExplainer(body)) return rightAnswer(body, i, r);
      // One choice whatever n asks for.
      return (explainerCalls++ === 0 ? rightAnswer : otherAnswer)({ ...body, n: 1 }, i, r);
    });
    await openNeuron('1:222');
    await useEndpoint(llm);
    await page.getByLabel('with the ablation score').uncheck();
    await page.getByLabel('explanations', { exact: true }).fill('2');
    await page.getByTestId('explain').click();
    await expect.poll(() => page.getByTestId('explanations').locator('tr.explanation').count(), { timeout: 120_000 }).toBe(2);
    await jobIdle();
    const explainerRequests = llm.chatRequests.filter((q) => isExplainer(q.body!));
    expect(explainerRequests.map((q) => q.body!.n)).toEqual([2, undefined]);
    expect(await page.getByTestId('explanations').locator('tr.explanation td.text').allInnerTexts()).toEqual([
      expect.stringContaining(rule('after-the').description),
      expect.stringContaining(rule('the').description),
    ]);
    expect(await page.locator('.error[role="alert"]').count()).toBe(0);
    await page.getByLabel('explanations', { exact: true }).fill('1');
  });

  it('test it on my text: live activations as typed, simulated values and their correlation', async () => {
    const llm = await llmServer(plantedNeuronLlm({ planted }));
    await openNeuron('0:37');
    await useEndpoint(llm);
    await page.getByLabel('your text', { exact: true }).fill('Room 12 is on floor 3.');
    await expect.poll(() => page.getByTestId('test-status').innerText(), { timeout: 60_000 }).toMatch(/^Live activations of 0:37 on \d+ tokens/);
    const rows = page.getByTestId('test-rows');
    const live = await rows.locator('li').first().locator('[role="option"]').evaluateAll((options) => options.map((o) => o.getAttribute('aria-label')));
    expect(live.find((l) => l?.startsWith('" 12"'))).toMatch(/^" 12" [34]\.\d\d$/);
    expect(live.find((l) => l?.startsWith('" is"'))).toMatch(/^" is" -?0\.\d\d$/);
    await page.getByLabel('explanation to simulate').selectOption(rule('digits').description);
    await page.getByTestId('test-simulate').click();
    await expect.poll(() => page.getByTestId('test-correlation').innerText().catch(() => ''), { timeout: 60_000 }).toMatch(/^0\.9\d\d$|^1\.000$/);
    expect(await rows.locator('li').count()).toBe(2);
    expect(await rows.locator('.label').nth(1).innerText()).toBe('simulated');
    // A new text drops the old simulation at once.
    await page.getByLabel('your text', { exact: true }).fill('Room 12 is on floor 4.');
    expect(await page.getByTestId('test-correlation').count()).toBe(0);
    await expect.poll(() => rows.locator('li').count(), { timeout: 60_000 }).toBe(1);
  });

  it('hands the neuron to the probe for live ablation', async () => {
    await openNeuron('0:37');
    await page.getByTestId('ablate-zero').click();
    await expect.poll(() => new URL(page.url()).searchParams.get('view')).toBe('probe');
    expect(new URL(page.url()).searchParams.get('neuron')).toBe('0:37');
    await showView(page, 'Neuron');
  });

  it('downloads a heatmap and the histogram as valid PNG and SVG files', async () => {
    await openNeuron('0:37');
    const files: { name: string; bytes: Buffer }[] = [];
    for (const name of [
      'Download the heatmap of top-activating excerpts as PNG',
      'Download the heatmap of top-activating excerpts as SVG',
      'Download the activation histogram as PNG',
      'Download the activation histogram as SVG',
    ]) {
      const download = page.waitForEvent('download');
      await page.getByRole('button', { name }).click();
      const file = await download;
      files.push({ name: file.suggestedFilename(), bytes: readFileSync((await file.path())!) });
    }
    expect(files.map((f) => f.name)).toEqual(['neuron-0-37-top.png', 'neuron-0-37-top.svg', 'neuron-0-37-histogram.png', 'neuron-0-37-histogram.svg']);
    for (const png of [files[0], files[2]]) {
      expect([...png.bytes.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      // Twice the figure's size: a heatmap is 860 px wide, the histogram 480.
      expect(png.bytes.readUInt32BE(16)).toBe(png.name.includes('histogram') ? 960 : 1720);
    }
    for (const svg of [files[1], files[3]]) {
      const parsed = await page.evaluate((text) => {
        const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
        return { error: doc.querySelector('parsererror')?.textContent ?? null, root: doc.documentElement.nodeName, title: doc.querySelector('title')?.textContent, texts: doc.querySelectorAll('text').length };
      }, svg.bytes.toString('utf8'));
      expect(parsed.error).toBeNull();
      expect(parsed.root).toBe('svg');
      expect(parsed.title).toMatch(/^Neuron 0:37/);
      expect(parsed.texts).toBeGreaterThan(6);
    }
    expect(files[1].bytes.toString('utf8')).toContain('Top-activating excerpts');
  });

  it('lays out at 1400×900, 1024×768 at 150% zoom and on a 420 px phone without sideways overflow (screenshots)', async () => {
    mkdirSync('test-results', { recursive: true });
    await openNeuron('0:37');
    const cdp = await page.context().newCDPSession(page);
    for (const [name, width, height, scale] of [
      ['desktop-1400x900', 1400, 900, 1],
      ['zoom-150-1024x768', 683, 512, 1.5],
      ['phone-420', 420, 860, 2],
    ] as const) {
      // Loaded at that size, as a visitor with that screen would see it first.
      await cdp.send('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: scale, mobile: width < 600 });
      await page.reload();
      await expect.poll(() => page.getByTestId('record-stats').innerText().catch(() => ''), { timeout: 120_000 }).toMatch(/max \d/);
      await expect.poll(() => page.getByTestId('weights-input-tokens').count(), { timeout: 120_000 }).toBe(1);
      await page.evaluate(() => window.scrollTo(0, 0));
      const wide = await page.evaluate(() => {
        const width = document.documentElement.clientWidth;
        return {
          overflow: document.documentElement.scrollWidth - width,
          // What sticks out, to say so when it fails.
          elements: [...document.querySelectorAll('main *')].filter((e) => e.getBoundingClientRect().right > width + 0.5 && !e.closest('.scroll')).map((e) => `${e.tagName}.${e.className}`).slice(0, 5),
        };
      });
      expect(wide, name).toEqual({ overflow: 0, elements: [] });
      // The first screen at the device's pixel ratio ...
      const shot = await cdp.send('Page.captureScreenshot', { format: 'png' });
      writeFileSync(`test-results/neuron-page-${name}.png`, Buffer.from(shot.data, 'base64'));
      // ... and the whole page at the same width.
      await cdp.send('Emulation.clearDeviceMetricsOverride');
      await page.setViewportSize({ width, height });
      await page.screenshot({ path: `test-results/neuron-page-${name}-full.png`, fullPage: true });
    }
    await page.setViewportSize({ width: 1400, height: 900 });
    expect(pageErrors).toEqual([]);
  });
});
