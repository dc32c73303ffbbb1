/**
 * `npm start`'s dev server still serves a working app (every other browser test runs the
 * production build): the bundled model loads in the worker and analyses text.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { ViteDevServer } from 'vite';
import { ensureModels } from '../scripts/gen-models.ts';
import { browserAvailable, launchChromium, startDevServer } from './helpers/browser.ts';

const run = browserAvailable() ? describe : describe.skip;

run('the app on the dev server', () => {
  let server: ViteDevServer;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    ensureModels({ log: () => {} });
    const dev = await startDevServer();
    server = dev.server;
    browser = await launchChromium();
    page = await browser.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(dev.url);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('loads the bundled model with WASM threads and analyses text', async () => {
    await page.getByTestId('model-status').waitFor({ timeout: 120_000 });
    expect(await page.getByTestId('model-status').innerText()).toMatch(/toy-planted[\s\S]*2 layers × 256 neurons[\s\S]*2 threads/);
    await page.locator('#probe-text').fill('In 1999 the "cats" left.');
    await page.getByTestId('analyse').click();
    await expect.poll(async () => (await page.getByTestId('token-strip').locator('button').allInnerTexts()).join(''), { timeout: 60_000 }).toBe(
      'In 1999 the "cats" left.',
    );
    expect(pageErrors).toEqual([]);
  });
});
