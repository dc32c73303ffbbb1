/**
 * The scan's storage in the browser (src/worker/opfs-storage.ts), in a real Chromium worker:
 * checkpoints in the origin private file system survive a write cut short (the previous one is
 * loaded), sampled rows read back as written, and the files of deleted scans are removed.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserAvailable, launchChromium, startBuiltHarness } from './helpers/browser.ts';
import type { StaticServer } from './helpers/static-server.ts';

const run = browserAvailable() ? describe : describe.skip;

run('scan storage in the origin private file system', () => {
  let server: StaticServer & { origin: string };
  let browser: Browser;

  beforeAll(async () => {
    server = await startBuiltHarness();
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('keeps checkpoints through a cut-short write, reads rows back, and removes orphans', async () => {
    const page = await browser.newPage();
    await page.goto(`${server.origin}/test/browser/opfs-harness.html`, { timeout: 120_000 });
    const outcome = (await page.evaluate(() => (window as unknown as { opfsOutcome: Promise<unknown> }).opfsOutcome)) as { result?: Record<string, unknown>; error?: string };
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
