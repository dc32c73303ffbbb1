/**
 * Scanning a corpus in the app (headless Chromium, production build): progress, pause, a reload
 * mid-scan that the app resumes by itself, and the resumed result equal to an uninterrupted scan;
 * then browsing a planted neuron's record.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { browserAvailable, exportRecordsFromList, launchChromium, showNeuron, showView, startBuiltApp } from './helpers/browser.ts';
import type { StaticServer } from './helpers/static-server.ts';
import { startFakeOpenAiServer } from './helpers/fake-openai-server.ts';
import { plantedNeuronLlm } from './fixtures/planted-llm.ts';
import { plantedNeurons } from '../scripts/toy/planted-model.ts';

const run = browserAvailable() ? describe : describe.skip;
const ROOT = join(import.meta.dirname, '..');

run('scanning in the app', () => {
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  let url: string;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    execFileSync(join(ROOT, 'node_modules/.bin/tsx'), [join(ROOT, 'scripts/gen-models.ts')], { stdio: 'ignore' });
    execFileSync(join(ROOT, 'node_modules/.bin/tsx'), [join(ROOT, 'scripts/prepare-corpus.ts')], { stdio: 'ignore' });
    server = await startBuiltApp();
    url = server.url;
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(url);
    await page.getByTestId('model-status').waitFor({ timeout: 120_000 });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  async function startScan(maxExcerpts: number) {
    await showView(page, 'Datasets');
    await page.getByLabel('max excerpts').fill(String(maxExcerpts));
    await page.getByTestId('scan-start').click();
  }

  it('runs an uninterrupted scan with progress and lists it', async () => {
    await startScan(96);
    await page.getByTestId('scan-progress').waitFor({ timeout: 60_000 });
    await expect.poll(() => page.getByTestId('scan-list').innerText(), { timeout: 180_000 }).toMatch(/done/);
    expect(await page.getByTestId('scan-list').innerText()).toMatch(/96/);
  });

  it('a scan paused, then reloaded mid-way and resumed, equals the uninterrupted one', async () => {
    await startScan(96);
    await expect.poll(async () => {
      const text = (await page.getByTestId('scan-progress').innerText().catch(() => '')) || '';
      const m = /(\d+) \/ 96 excerpts/.exec(text);
      return m ? Number(m[1]) : 0;
    }, { timeout: 120_000, interval: 50 }).toBeGreaterThan(8);
    await page.getByTestId('scan-pause').click();
    await expect.poll(() => page.getByTestId('scan-list').innerText(), { timeout: 60_000 }).toMatch(/paused/);

    // Resume, then reload the page in the middle: the checkpoint survives the reload.
    await page.getByTestId('scan-resume').click();
    await page.waitForTimeout(500);
    await page.reload();
    // The app resumes the interrupted scan by itself once its model is loaded.
    await expect.poll(() => page.getByTestId('scan-list').innerText(), { timeout: 60_000 }).toMatch(/running \d+%|paused \d+%/);
    await expect.poll(() => page.getByTestId('scan-list').innerText(), { timeout: 180_000 }).not.toMatch(/running|paused/);
    expect(await page.getByTestId('scan-list').innerText()).not.toMatch(/failed/);

    // Newest first: the resumed scan finished last.
    const resumed = await exportRecordsFromList(page, 0);
    const uninterrupted = await exportRecordsFromList(page, 1);
    expect(uninterrupted.split('\n').filter(Boolean).length).toBe(2 * 256);
    expect(resumed).toBe(uninterrupted);
  });

  it('browses a planted neuron: its top excerpts hold the digits it was wired for', async () => {
    await showView(page, 'Datasets');
    await page.getByRole('button', { name: 'Browse' }).first().click();
    await page.getByTestId('neuron-browser').waitFor();
    await showNeuron(page, '0:37');
    await expect.poll(() => page.getByTestId('record-stats').innerText(), { timeout: 30_000 }).toMatch(/max 4\.0/);
    // Every top excerpt peaks at a number.
    const peaks = await page.getByTestId('record-excerpts').locator('.tok.peak').allInnerTexts();
    expect(peaks.length).toBe(20);
    for (const peak of peaks) expect(peak).toMatch(/^\s?\d+$/);

    // Re-running the record through the loaded model: the tanh GELU (the model's own) reproduces
    // the stored float16 activations; the sigmoid approximation the paper's data used does not.
    await page.getByTestId('compare').click();
    const rows = page.getByTestId('comparison').locator('tbody tr');
    await expect.poll(() => rows.count(), { timeout: 120_000 }).toBe(2);
    const [tanh, sigmoid] = await Promise.all([rows.nth(0).locator('td').allInnerTexts(), rows.nth(1).locator('td').allInnerTexts()]);
    expect(Number(tanh[2])).toBeLessThan(0.005);
    expect(Number(sigmoid[2])).toBeGreaterThan(0.01);
  });

  it('explains and scores the browsed neuron with an OpenAI-compatible endpoint, keeping results', async () => {
    const llm = await startFakeOpenAiServer(plantedNeuronLlm({ planted: plantedNeurons() }));
    try {
      await page.getByLabel('llm endpoint').fill(`${llm.baseUrl}`);
      await page.getByLabel('llm model').fill('fake-model');
      await page.getByLabel('api key').fill('sk-test-key');
      await page.getByTestId('explain').click();
      await expect.poll(() => page.getByTestId('explanations').innerText().catch(() => ''), { timeout: 60_000 }).toMatch(/digits/);
      const row = await page.getByTestId('explanations').locator('tr.explanation').first().locator('td').allInnerTexts();
      expect(Number(row[1])).toBeGreaterThan(0.9);
      expect(llm.chatRequests.length).toBeGreaterThan(5);
      for (const r of llm.chatRequests) expect(r.headers.authorization).toBe('Bearer sk-test-key');
      // Not remembered unless asked.
      expect(await page.evaluate(() => JSON.stringify(localStorage))).not.toContain('sk-test-key');

      // A second run is recalled from the job's saved steps: nothing more is sent.
      const sent = llm.chatRequests.length;
      await page.getByTestId('explain').click();
      await expect.poll(() => page.getByTestId('job-status').innerText(), { timeout: 30_000 }).toMatch(/^Done: 0 requests sent/);
      expect(llm.chatRequests.length).toBe(sent);
      mkdirSync('test-results', { recursive: true });
      await page.screenshot({ path: 'test-results/app-scan.png', fullPage: true });
      expect(pageErrors).toEqual([]);
    } finally {
      await llm.close();
    }
  });
});
