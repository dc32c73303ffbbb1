/**
 * The scan's storage in the browser (src/worker/opfs-storage.ts), in a real Chromium worker:
 * checkpoints in the origin private file system survive a write cut short (the previous one is
 * loaded), sampled rows read back as written, and the files of deleted scans are removed.
 */
import type { Browser } from 'playwright-core';
import type { ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserAvailable, launchChromium, startDevServer } from './helpers/browser.ts';

const run = browserAvailable() ? describe : describe.skip;

run('scan storage in the origin private file system', () => {
  let server: ViteDevServer;
  let browser: Browser;
  let url: string;

  beforeAll(async () => {
    const dev = await startDevServer();
    server = dev.server;
    url = dev.url;
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('keeps checkpoints through a cut-short write, reads rows back, and removes orphans', async () => {
    const page = await browser.newPage();
    await page.goto(`${url}/test/browser/harness.html`, { timeout: 120_000 });
    // A string, so that vitest does not rewrite the worker URL meant for the page.
    const outcome = (await page.evaluate(`new Promise((resolve) => {
      const worker = new Worker('/test/browser/opfs-worker.ts', { type: 'module' });
      worker.onmessage = (event) => resolve(event.data);
      worker.onerror = (event) => resolve({ error: event.message });
    })`)) as { result?: Record<string, unknown>; error?: string };
    expect(outcome.error).toBeUndefined();
    const r = outcome.result!;
    expect(r.empty).toBeNull();
    expect(r.afterFirst).toEqual(r.first);
    expect(r.afterSecond).toEqual(r.second);
    expect(r.filesWithCheckpoints).toEqual(['scan-a.checkpoint-a', 'scan-a.checkpoint-b']);
    expect(r.cut).toBe(true);
    expect(r.afterCrash).toEqual(r.first); // the newer file was cut short: the older one stands
    expect(r.afterThird).toMatchObject({ excerptsDone: 192 });
    expect(r.read).toEqual([0, 1, 2, 3, 0, 0]);
    expect(r.beyond).toEqual([9, 0, 0, 0]);
    expect(r.beforePrune).toEqual(['scan-a.checkpoint-a', 'scan-a.checkpoint-b', 'scan-a.rows', 'scan-b.rows']);
    expect(r.afterPrune).toEqual(['scan-a.checkpoint-a', 'scan-a.checkpoint-b', 'scan-a.rows']);
    expect(r.afterClear).toEqual([]);
  });
});
