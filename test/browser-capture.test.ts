/**
 * The real core in a real Chromium: WASM capture against the TypeScript reference, and the
 * WebGPU path against WASM, on the project's generated models served from 127.0.0.1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { referenceForward } from '../src/lib/model/reference-forward.ts';
import { plantedToyModel, tinyRandomModel } from '../scripts/toy/models.ts';
import { browserAvailable, launchChromium, startBuiltHarness } from './helpers/browser.ts';
import type { StaticServer } from './helpers/static-server.ts';
import { HARD_TEXTS } from './texts.ts';

type HarnessResult = { backend: string; ids: number[]; layers: { layer: number; rows: number[][] }[] }[];

const run = browserAvailable() ? describe : describe.skip;

run('capture in headless Chromium', () => {
  let server: StaticServer & { origin: string };
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    server = await startBuiltHarness();
    browser = await launchChromium();
    page = await browser.newPage();
    page.on('pageerror', (err) => console.error('page error:', err.message));
    await page.goto(`${server.origin}/test/browser/harness.html`);
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready', null, { timeout: 120_000 });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  const capture = (model: string, backend: 'wasm' | 'webgpu', texts: string[]) =>
    page.evaluate(
      ([m, b, t]) => (window as unknown as { neurolensHarness: { capture(...a: unknown[]): Promise<unknown> } }).neurolensHarness.capture(m, b, t),
      [model, backend, texts] as const,
    ) as Promise<HarnessResult>;

  it('the page is cross-origin isolated (WASM threads available)', async () => {
    expect(await page.evaluate(() => globalThis.crossOriginIsolated)).toBe(true);
  });

  it('WASM in the browser matches the reference on every neuron (≤ 1e-4)', async () => {
    for (const [name, generated] of [['tiny-random', tinyRandomModel()], ['toy-planted', plantedToyModel()]] as const) {
      const results = await capture(name, 'wasm', HARD_TEXTS);
      let worst = 0;
      results.forEach((r) => {
        expect(r.backend).toBe('wasm');
        const ref = referenceForward(generated.config, generated.weights, r.ids);
        for (const { layer, rows } of r.layers) {
          rows.forEach((row, t) => row.forEach((v, n) => (worst = Math.max(worst, Math.abs(v - ref.mlpPost[layer][t * generated.config.dMlp + n])))));
        }
      });
      console.log(`browser wasm ${name}: max |diff| vs reference ${worst.toExponential(2)}`);
      expect(worst).toBeLessThanOrEqual(1e-4);
    }
  });

  it('WebGPU matches WASM within 1e-3', async () => {
    const hasGpu = await page.evaluate(() => (window as unknown as { neurolensHarness: { hasWebGpu(): Promise<boolean> } }).neurolensHarness.hasWebGpu());
    if (!hasGpu && !process.env.NEUROLENS_REQUIRE_BROWSER) {
      console.warn('no WebGPU adapter in this Chromium: WebGPU comparison skipped');
      return;
    }
    expect(hasGpu).toBe(true);
    for (const name of ['tiny-random', 'toy-planted']) {
      const wasm = await capture(name, 'wasm', HARD_TEXTS);
      const gpu = await capture(name, 'webgpu', HARD_TEXTS);
      let worst = 0;
      gpu.forEach((r, i) => {
        expect(r.backend).toBe('webgpu');
        expect(r.ids).toEqual(wasm[i].ids);
        r.layers.forEach(({ rows }, li) =>
          rows.forEach((row, t) => row.forEach((v, n) => (worst = Math.max(worst, Math.abs(v - wasm[i].layers[li].rows[t][n]))))),
        );
      });
      console.log(`browser webgpu vs wasm ${name}: max |diff| ${worst.toExponential(2)}`);
      expect(worst).toBeLessThanOrEqual(1e-3);
    }
  });
});
