/**
 * The app as a user sees it, in headless Chromium, on the production build served by a static
 * server: the bundled model loads by itself, text is analysed in the worker, the backend is shown,
 * and bad input gets a visible message.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { browserAvailable, launchChromium, showView, startBuiltApp } from './helpers/browser.ts';
import { startFakeHub } from './helpers/fake-hub-server.ts';
import type { StaticServer } from './helpers/static-server.ts';

const run = browserAvailable() ? describe : describe.skip;

run('the Neurolens app', () => {
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    server = await startBuiltApp();
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(server.url);
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

  const TINY = join(import.meta.dirname, '../public/models/tiny-random');

  it('refuses dropped files that are not a model with a visible message, then loads real ones', async () => {
    await showView(page, 'Settings');
    await page.getByLabel('model source').selectOption('files');
    const bogus = { name: 'model.onnx', mimeType: 'application/octet-stream', buffer: Buffer.from('not a model at all\n'.repeat(20)) };
    const file = (name: string) => ({ name, mimeType: 'application/json', buffer: readFileSync(join(TINY, name)) });
    await page.getByLabel('choose model files').setInputFiles([file('config.json'), file('tokenizer.json'), bogus]);
    await page.getByRole('button', { name: 'Load' }).click();
    await expect.poll(() => page.getByRole('alert').first().innerText(), { timeout: 30_000 }).toMatch(/not an ONNX model/);
    // The previously loaded model is still there and usable.
    expect(await page.getByTestId('model-status').innerText()).toContain('toy-planted');

    const onnx = { name: 'model.onnx', mimeType: 'application/octet-stream', buffer: readFileSync(join(TINY, 'onnx/model.onnx')) };
    await page.getByLabel('choose model files').setInputFiles([file('config.json'), file('tokenizer.json'), file('tokenizer_config.json'), onnx]);
    await page.getByRole('button', { name: 'Load' }).click();
    await expect.poll(() => page.getByTestId('model-status').innerText(), { timeout: 60_000 }).toContain('2 layers × 128 neurons');
    expect(await page.getByTestId('model-status').innerText()).toContain('dropped files');
  });

  it('downloads from a hub (a local mirror) with MB progress; after a reload the app brings it back from the browser cache, hub gone', async () => {
    const hub = await startFakeHub({ repos: { 'test-org/tiny': TINY } });
    hub.throttle(256 * 1024);
    await page.getByLabel('model source').selectOption('hub');
    await page.getByLabel('hub repository id').fill('test-org/tiny');
    await page.getByText('Hub settings: mirror, revision, access token').click();
    await page.getByLabel('hub endpoint').fill(hub.url);
    await page.getByLabel('precision').selectOption('fp32');
    await page.getByRole('button', { name: 'Load' }).click();
    // MB done and MB total while the graph downloads.
    await expect.poll(() => page.getByTestId('download-progress').innerText().catch(() => ''), { timeout: 30_000 }).toMatch(/^onnx\/model\.onnx: \d+\.\d MB of 6\.6 MB$/);
    await expect.poll(() => page.getByTestId('model-status').innerText(), { timeout: 60_000 }).toContain('test-org/tiny');
    expect(await page.getByTestId('variant').innerText()).toBe('fp32 · exact');
    expect(hub.requests.filter((r) => r.method === 'GET').map((r) => r.url)).toContain('/test-org/tiny/resolve/main/onnx/model.onnx');
    await hub.close();

    // Next visit: the app reloads the model it had, from Cache Storage, with the hub unreachable.
    await page.reload();
    await expect.poll(() => page.getByTestId('model-status').innerText().catch(() => ''), { timeout: 120_000 }).toContain('test-org/tiny');
    await showView(page, 'Probe');
    await page.locator('#probe-text').fill('Offline again');
    await page.getByTestId('analyse').click();
    await expect.poll(() => page.getByTestId('token-strip').locator('button').count(), { timeout: 60_000 }).toBeGreaterThan(1);
    expect(pageErrors).toEqual([]);
  });

  it('offers the GPT-2 family with sizes; a download over 1 GB waits for confirmation, can be cancelled, and one a reload cut short is offered again without refetching its parts', async () => {
    const hub = await startFakeHub({ repos: { 'Xenova/gpt2-large': TINY } });
    const GB = 1.2e9;
    hub.virtual('Xenova/gpt2-large', 'onnx/model.onnx', GB);
    try {
      await showView(page, 'Settings');
      await page.getByLabel('model source').selectOption('family');
      const table = await page.locator('.family').innerText();
      expect(table).toMatch(/GPT-2 small[\s\S]*501 MB[\s\S]*251 MB[\s\S]*127 MB/);
      expect(table).toMatch(/GPT-2 XL[\s\S]*6\.23 GB/);
      // The exact variant of GPT-2 small is the default choice.
      expect(await page.getByLabel('GPT-2 small fp32').isChecked()).toBe(true);
      await page.getByLabel('GPT-2 large fp32').check();
      await page.getByText('Hub settings: mirror, revision, access token').click();
      await page.getByLabel('hub endpoint').fill(hub.url);
      const before = await page.getByTestId('model-status').innerText();

      await page.getByRole('button', { name: 'Load' }).click();
      const dialog = page.getByRole('alertdialog', { name: 'confirm a large download' });
      await expect.poll(() => dialog.innerText().catch(() => ''), { timeout: 30_000 }).toContain('Xenova/gpt2-large is a 1.2 GB download');
      await dialog.getByRole('button', { name: 'Cancel' }).click();
      expect(await dialog.count()).toBe(0);
      const graphGets = () => hub.requests.filter((r) => r.method === 'GET' && r.url.endsWith('onnx/model.onnx'));
      expect(graphGets()).toEqual([]);

      // Confirmed, then cancelled mid-download: the model in use stays.
      await page.getByRole('button', { name: 'Load' }).click();
      await dialog.getByRole('button', { name: 'Download 1.2 GB' }).click();
      await expect.poll(() => page.getByTestId('download-progress').innerText().catch(() => ''), { timeout: 30_000 }).toMatch(/^onnx\/model\.onnx: [1-9]\d*\.\d MB of 1200\.0 MB$/);
      await page.getByRole('button', { name: 'Cancel' }).click();
      await expect.poll(() => page.getByTestId('download-progress').count()).toBe(0);
      expect(await page.getByTestId('model-status').innerText()).toBe(before);

      // Interrupted by a reload after a few parts: offered again at start-up, parts kept.
      await page.getByRole('button', { name: 'Load' }).click();
      await dialog.getByRole('button', { name: 'Download 1.2 GB' }).click();
      await expect.poll(async () => Number((/: ([\d.]+) MB of/.exec(await page.getByTestId('download-progress').innerText().catch(() => '')) ?? [])[1] ?? 0), { timeout: 60_000 }).toBeGreaterThan(80);
      const fetchedBefore = graphGets().map((r) => r.range);
      await page.reload();
      const banner = page.getByText(/The download of Xenova\/gpt2-large stopped before it finished/);
      await banner.waitFor({ timeout: 60_000 });
      hub.requests.length = 0;
      await page.getByRole('button', { name: 'Resume download' }).click();
      await dialog.getByRole('button', { name: 'Download 1.2 GB' }).click();
      await expect.poll(() => graphGets().length, { timeout: 30_000 }).toBeGreaterThan(0);
      const resumedFrom = Number(/^bytes=(\d+)-/.exec(graphGets()[0].range ?? '')?.[1]);
      expect(resumedFrom).toBeGreaterThanOrEqual(2 * 32 * 1024 * 1024);
      // Parts finished before the reload are not fetched again; only the one cut short may be.
      const refetched = graphGets().map((r) => r.range).filter((r) => fetchedBefore.includes(r));
      expect(refetched.every((r) => r === fetchedBefore.at(-1))).toBe(true);
      await page.getByRole('button', { name: 'Cancel' }).click();
      await expect.poll(() => page.getByTestId('download-progress').count()).toBe(0);
      expect(pageErrors).toEqual([]);
    } finally {
      await hub.close();
    }
  });
});
