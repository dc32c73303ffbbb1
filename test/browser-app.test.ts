/**
 * The app as a user sees it, in headless Chromium: the bundled model loads by itself, text is
 * analysed in the worker, the backend is shown, and bad input gets a visible message.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import type { ViteDevServer } from 'vite';
import { ensureModels } from '../scripts/gen-models.ts';
import { browserAvailable, launchChromium, startDevServer } from './helpers/browser.ts';

const run = browserAvailable() ? describe : describe.skip;

run('the Neurolens app', () => {
  let server: ViteDevServer;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    ensureModels({ log: () => {} });
    const dev = await startDevServer();
    server = dev.server;
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(dev.url);
    await page.getByTestId('model-status').waitFor({ timeout: 120_000 });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('loads the bundled toy model offline and says which backend runs it', async () => {
    const status = await page.getByTestId('model-status').innerText();
    expect(status).toContain('toy-planted');
    expect(status).toContain('2 layers × 256 neurons');
    expect(['WebGPU', 'WASM (CPU)']).toContain(await page.getByTestId('backend').innerText());
  });

  it('analyses text and colours the tokens by the planted digit neuron', async () => {
    await page.locator('#probe-text').fill('In 1999 there were 3 "cats" & <b>dogs</b>.');
    await page.getByTestId('analyse').click();
    const strip = page.getByTestId('token-strip');
    await strip.waitFor();
    const tokens = await strip.locator('button').allInnerTexts();
    expect(tokens.join('')).toBe('In 1999 there were 3 "cats" & <b>dogs</b>.');
    // Markup in the text is shown as text, never interpreted.
    expect(await strip.locator('b').count()).toBe(0);
    await page.getByRole('button', { name: /0:37 digits/ }).click();
    const shade = async (i: number) => strip.locator('button').nth(i).evaluate((el) => getComputedStyle(el).backgroundColor);
    expect(await shade(1)).toMatch(/rgba?\(255, 136, 0(, 1)?\)/); // " 1999" is the most active token
    expect(await shade(0)).toMatch(/rgba\(255, 136, 0, 0\)|transparent/); // "In" is not a digit
    mkdirSync('test-results', { recursive: true });
    await page.screenshot({ path: 'test-results/app-capture.png', fullPage: true });
  });

  it('shows a clear message for empty text and offers windows for over-long text', async () => {
    await page.locator('#probe-text').fill('');
    await page.getByTestId('analyse').click();
    await expect.poll(() => page.getByRole('alert').innerText()).toContain('the text is empty');

    await page.locator('#probe-text').fill('word '.repeat(1100).trim());
    await page.getByTestId('analyse').click();
    await expect.poll(() => page.getByRole('alert').innerText(), { timeout: 30_000 }).toContain('longer than this model');
    await page.getByRole('button', { name: 'Analyse in windows' }).click();
    await expect.poll(() => page.getByTestId('token-strip').locator('button').count(), { timeout: 60_000 }).toBe(1100);
    expect(pageErrors).toEqual([]);
  });
});
