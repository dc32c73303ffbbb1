/**
 * The live probe in headless Chromium on the production build: typing runs the model without
 * blocking the page, the colours are the activations `neurolens capture` gives for the same text,
 * the address holds the view, neuron and text (Back works, and a shared link opens the same view
 * in a fresh browser), probes are kept and shown again without the model, and editing a neuron
 * gives the predictions `neurolens ablate` gives.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { browserAvailable, launchChromium, showView, startBuiltApp } from './helpers/browser.ts';
import type { StaticServer } from './helpers/static-server.ts';

const BIN = join(import.meta.dirname, '../bin/neurolens.mjs');
const exec = promisify(execFile);
const cli = async (args: string[]) => JSON.parse((await exec(process.execPath, [BIN, ...args], { maxBuffer: 1 << 26 })).stdout);
const run = browserAvailable() ? describe : describe.skip;

run('the live probe', () => {
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    server = await startBuiltApp();
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    // Long tasks on the page's main thread, from the first moment.
    await page.addInitScript(() => {
      const seen: number[] = [];
      (window as unknown as { longTasks: number[] }).longTasks = seen;
      new PerformanceObserver((list) => list.getEntries().forEach((e) => seen.push(e.duration))).observe({ type: 'longtask', buffered: true });
    });
    await page.goto(server.url);
    await page.getByTestId('model-status').waitFor({ timeout: 120_000 });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  const stripValues = (strip = page.getByTestId('token-strip').first()) =>
    strip.locator('[data-token]').evaluateAll((els) => els.map((e) => [e.getAttribute('aria-label') ?? '', Number(e.getAttribute('data-value'))] as const));

  it('recolours as you type, without blocking the page, with the activations the CLI gives', async () => {
    const typed = 'In 1999 the "cats" left';
    const text = 'In 1999 the "cats" 🦊 left';
    await page.locator('#probe-text').fill('');
    await page.evaluate(() => ((window as unknown as { longTasks: number[] }).longTasks.length = 0));
    await page.locator('#probe-text').pressSequentially(typed, { delay: 40 });
    await expect.poll(() => page.getByTestId('probe-status').innerText(), { timeout: 60_000 }).toMatch(/^\d+ tokens/);
    const longTasks = await page.evaluate(() => (window as unknown as { longTasks: number[] }).longTasks);
    console.log(`long tasks while typing ${typed.length} characters: ${JSON.stringify(longTasks.map(Math.round))}`);
    expect(Math.max(0, ...longTasks)).toBeLessThan(200);
    // The emoji is put in apart: headless Chromium here has no emoji font, and looking for one
    // blocks the page for a second whatever the app does.
    await page.locator('#probe-text').fill(text);
    await expect.poll(async () => (await stripValues()).length, { timeout: 60_000 }).toBe(10);

    // The planted digit neuron colours the strip; its values are the CLI's for the same text.
    const shown = await stripValues();
    const expected = await cli(['capture', '--model', 'toy-planted', '--text', text, '--neurons', '0:37', '--json']);
    expect(shown.map(([label]) => label.split(':')[0])).toEqual(expected.tokens.map((t: { text: string }) => JSON.stringify(t.text)));
    const diffs = shown.map(([, v], i) => Math.abs(v - expected.activations['0:37'][i]));
    expect(Math.max(...diffs)).toBeLessThan(1e-4);
    // The fox is split over three tokens: drawn once, with three marked parts.
    expect(await page.getByTestId('token-strip').first().locator('.group').count()).toBe(1);
    expect(await page.getByTestId('token-strip').first().locator('.group [data-token]').count()).toBe(3);
    expect(pageErrors).toEqual([]);
  });

  it('moves along the tokens with the arrow keys and lists the focused token’s neurons per layer', async () => {
    const first = page.getByTestId('token-strip').first().locator('[data-token="0"]');
    await first.focus();
    await page.keyboard.press('ArrowRight');
    await expect.poll(() => page.evaluate(() => document.activeElement?.getAttribute('data-token'))).toBe('1');
    await expect.poll(() => page.locator('.readout').innerText()).toMatch(/^Token 2 of \d+, " 1999": activation 4\.00/);
    await page.keyboard.press('Enter');
    await expect.poll(() => page.getByTestId('token-neurons').innerText()).toMatch(/Token 2: " 1999"[\s\S]*layer 0[\s\S]*0:37[\s\S]*layer 1/);
  });

  it('keeps the view, neuron and text in the address: Back returns, and a shared link opens the same view elsewhere', async () => {
    await page.getByRole('button', { name: /1:91 closing-quote/ }).click();
    await expect.poll(() => page.url()).toMatch(/neuron=1%3A91/);
    const shared = page.url();
    expect(new URL(shared).searchParams.get('text')).toBe('In 1999 the "cats" 🦊 left');
    expect(shared).not.toMatch(/key|token=/i);
    await showView(page, 'Datasets');
    await page.goBack();
    await expect.poll(() => new URL(page.url()).searchParams.get('view')).toBe('probe');
    await page.locator('#probe-text').waitFor();

    const elsewhere = await browser.newContext({ viewport: { width: 1024, height: 800 } });
    try {
      const other = await elsewhere.newPage();
      await other.goto(shared);
      await expect.poll(() => other.locator('#probe-text').inputValue(), { timeout: 120_000 }).toBe('In 1999 the "cats" 🦊 left');
      await expect.poll(() => other.locator('#strip-heading').innerText(), { timeout: 120_000 }).toMatch(/^Neuron 1:91/);
      await expect
        .poll(async () => (await stripValues(other.getByTestId('token-strip').first())).length, { timeout: 120_000 })
        .toBeGreaterThan(5)
        .catch(async (err) => {
          await other.screenshot({ path: 'test-results/probe-shared-failure.png', fullPage: true });
          console.log(await other.locator('main').innerText());
          throw err;
        });
      expect(await stripValues(other.getByTestId('token-strip').first())).toEqual(await stripValues());
    } finally {
      await elsewhere.close();
    }
  }, 300_000);

  it('keeps probes in this browser and shows one again after a reload without running the model', async () => {
    await expect.poll(async () => {
      await page.getByText(/Probe history \(\d+\)/).click();
      return page.getByTestId('probe-history').innerText().catch(() => '');
    }, { timeout: 30_000 }).toContain('In 1999 the "cats" 🦊 left');
    await page.reload();
    await page.getByTestId('model-status').waitFor({ timeout: 120_000 });
    await page.locator('#probe-text').fill('something else entirely');
    await page.getByText(/Probe history \(\d+\)/).click();
    const entries = page.getByTestId('probe-history').getByRole('button', { name: 'In 1999 the "cats" 🦊 left', exact: true });
    expect(await entries.count()).toBe(1); // probed several times, kept once
    await entries.click();
    await expect.poll(() => page.getByTestId('probe-status').innerText()).toMatch(/from history/);
    expect(await page.locator('#probe-text').inputValue()).toBe('In 1999 the "cats" 🦊 left');
  });

  it('edits a neuron live: the KL after each token is what `neurolens ablate` gives', async () => {
    const text = 'She said "the 3 cats" left. "Yes," he said.';
    await page.locator('#probe-text').fill(text);
    await page.getByRole('button', { name: /1:91 closing-quote/ }).click();
    await page.getByRole('button', { name: 'Edit this neuron' }).click();
    const panel = page.getByTestId('ablation-panel');
    await expect.poll(() => panel.getByTestId('ablation-summary').innerText().catch(() => ''), { timeout: 60_000 }).toMatch(/after/);
    const shown = await stripValues(panel.getByTestId('token-strip'));
    const expected = await cli(['ablate', '--model', 'toy-planted', '--text', text, '--neurons', '1:91', '--scale', '0', '--json']);
    expect(shown).toHaveLength(expected.positions.length);
    shown.forEach(([, kl], i) => expect(Math.abs(kl - expected.positions[i].kl)).toBeLessThanOrEqual(1e-6 + 1e-3 * expected.positions[i].kl));
    // Where the edit matters most is where the neuron fires: after a closing quote.
    expect(await panel.getByTestId('ablation-summary').locator('li').first().innerText()).toMatch(/^after "\\?"/);
    expect(pageErrors).toEqual([]);
  });
});
