/**
 * The shipped artefact: `npm run build`'s dist/ on a host like GitHub Pages (a sub-path, no
 * COOP/COEP headers), in headless Chromium. The service worker isolates the page (WASM threads),
 * the page keeps to its Content-Security-Policy, makes no request off this machine and logs no
 * error; after one visit the app works with the server gone: reload, probe, stored data,
 * import/export. The API key used for an explanation leaves no trace in URLs, logs, exports or
 * caches.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { serializeJsonl } from '../src/lib/explain/formats.ts';
import { plantedNeurons } from '../scripts/toy/planted-model.ts';
import { capturePlantedRecords } from './fixtures/planted-records.ts';
import { plantedNeuronLlm } from './fixtures/planted-llm.ts';
import { APP_DIST } from './helpers/app-build.ts';
import { browserAvailable, launchChromium, showNeuron, showView, startBuiltApp } from './helpers/browser.ts';
import { startFakeOpenAiServer, type FakeOpenAiServer } from './helpers/fake-openai-server.ts';
import { startStaticServer, type StaticServer } from './helpers/static-server.ts';

const KEY = 'sk-ship-test-5d81c0e2';
const run = browserAvailable() ? describe : describe.skip;

run('the production build on a static host', () => {
  let server: StaticServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let llm: FakeOpenAiServer;
  let recordsJsonl: string;
  const consoleLines: { type: string; text: string }[] = [];
  const pageErrors: string[] = [];
  const requests: string[] = [];
  const failed: string[] = [];

  beforeAll(async () => {
    const capture = await capturePlantedRecords({ excerptCount: 60 });
    recordsJsonl = serializeJsonl([...capture.records.values()], 'NeuronRecord');
    llm = await startFakeOpenAiServer(plantedNeuronLlm({ planted: plantedNeurons() }));
    // GitHub Pages: the app under /<repo>/, and no way to send COOP/COEP.
    server = await startBuiltApp({ isolationHeaders: false, basePath: '/neurolens/' });
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    await page.addInitScript(() => {
      const seen: string[] = [];
      (window as unknown as { cspViolations: string[] }).cspViolations = seen;
      document.addEventListener('securitypolicyviolation', (e) => seen.push(`${e.violatedDirective} ${e.blockedURI}`));
    });
    page.on('console', (m) => consoleLines.push({ type: m.type(), text: m.text() }));
    page.on('pageerror', (e) => pageErrors.push(e.message));
    context.on('request', (r) => requests.push(r.url()));
    context.on('requestfailed', (r) => failed.push(`${r.url()} ${r.failure()?.errorText}`));
    context.on('response', (r) => r.status() >= 400 && failed.push(`${r.url()} HTTP ${r.status()}`));
    await page.goto(server.url);
    await page.getByTestId('model-status').waitFor({ timeout: 120_000 });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await llm?.close();
  });

  it('isolates the page through its service worker, so WASM runs on several threads', async () => {
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
    expect(await page.evaluate(() => navigator.serviceWorker.controller?.scriptURL)).toBe(`${server.url}service-worker.js`);
    const status = await page.getByTestId('model-status').innerText();
    expect(status).toContain('toy-planted');
    expect(status).toMatch(/WASM \(CPU\)[\s\S]* · 2 threads/);
    expect(await page.getByTestId('offline-note').count()).toBe(0);
  });

  it('keeps to its Content-Security-Policy, loads every file it asks for, and logs no error', async () => {
    await page.locator('#probe-text').fill('In 1999 the "cats" left.');
    await page.getByTestId('analyse').click();
    await expect.poll(() => page.getByTestId('token-strip').locator('button').count(), { timeout: 60_000 }).toBeGreaterThan(3);
    expect(await page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations)).toEqual([]);
    const csp = await page.locator('meta[http-equiv="Content-Security-Policy"]').getAttribute('content');
    expect(csp).toContain("script-src 'self' 'wasm-unsafe-eval'");
    expect(csp).toContain("object-src 'none'");
    expect(readFileSync(join(APP_DIST, 'index.html'), 'utf8')).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(failed).toEqual([]);
    expect(consoleLines.filter((l) => l.type === 'error')).toEqual([]);
    expect(pageErrors).toEqual([]);
  });

  it('makes no request off this machine', () => {
    expect(requests.length).toBeGreaterThan(5);
    expect(requests.filter((u) => !/^(http:\/\/127\.0\.0\.1:\d+\/|blob:|data:)/.test(u))).toEqual([]);
  });

  it('explains an imported neuron; the API key goes only to the endpoint and is nowhere in URLs, logs, exports or caches', async () => {
    await showView(page, 'Datasets');
    await page.getByLabel('import files').setInputFiles({ name: 'planted.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from(recordsJsonl) });
    await expect.poll(() => page.getByTestId('scan-list').innerText().catch(() => ''), { timeout: 30_000 }).toMatch(/^planted$/m);
    await page.getByTestId('scan-list').getByRole('button', { name: 'Browse' }).first().click();
    await showNeuron(page, '0:37');
    await expect.poll(() => page.getByTestId('record-stats').innerText().catch(() => ''), { timeout: 30_000 }).toMatch(/max/);
    await page.getByLabel('llm endpoint').fill(llm.baseUrl);
    await page.getByLabel('llm model').fill('fake-model');
    await page.getByLabel('api key').fill(KEY);
    await page.getByTestId('explain').click();
    await expect.poll(() => page.getByTestId('explanations').innerText().catch(() => ''), { timeout: 60_000 }).toMatch(/digits/);
    expect(llm.chatRequests.length).toBeGreaterThan(0);
    for (const r of llm.chatRequests) expect(r.headers.authorization).toBe(`Bearer ${KEY}`);

    // URLs and logs.
    expect(requests.filter((u) => u.includes(KEY))).toEqual([]);
    expect(consoleLines.filter((l) => l.text.includes(KEY))).toEqual([]);
    // Exports: the records file and the bundle the app downloads.
    const exported: string[] = [];
    await showView(page, 'Datasets');
    for (const name of ['Export records', 'Export bundle']) {
      const download = page.waitForEvent('download');
      await page.getByTestId('scan-list').getByRole('button', { name }).first().click();
      const file = readFileSync((await (await download).path())!);
      exported.push(name === 'Export bundle' ? gunzipSync(file).toString('utf8') : file.toString('utf8'));
    }
    expect(exported[0]).toContain('"neuron_id"');
    expect(exported[1]).toContain('digits');
    for (const text of exported) expect(text).not.toContain(KEY);
    // Browser storage and caches: Cache Storage URLs and bodies, every IndexedDB key and value, localStorage.
    const stored = await page.evaluate(async () => {
      const out: string[] = [];
      for (const name of await caches.keys()) {
        const cache = await caches.open(name);
        for (const request of await cache.keys()) {
          out.push(request.url);
          const response = await cache.match(request);
          const type = response?.headers.get('content-type') ?? '';
          if (type.includes('json') || type.includes('text')) out.push(await response!.text());
        }
      }
      for (const info of await indexedDB.databases()) {
        const db = await new Promise<IDBDatabase>((resolve, reject) => {
          const r = indexedDB.open(info.name!);
          r.onsuccess = () => resolve(r.result);
          r.onerror = () => reject(r.error);
        });
        for (const storeName of Array.from(db.objectStoreNames)) {
          const all = await new Promise<[unknown[], unknown[]]>((resolve, reject) => {
            const tx = db.transaction(storeName);
            const keys = tx.objectStore(storeName).getAllKeys();
            const values = tx.objectStore(storeName).getAll();
            tx.oncomplete = () => resolve([keys.result, values.result]);
            tx.onerror = () => reject(tx.error);
          });
          out.push(JSON.stringify(all, (_, v) => (ArrayBuffer.isView(v) ? `[${v.byteLength} bytes]` : v)));
        }
        db.close();
      }
      out.push(JSON.stringify({ ...localStorage }), JSON.stringify({ ...sessionStorage }));
      return out;
    });
    expect(stored.join('\n').length).toBeGreaterThan(1000);
    expect(stored.filter((s) => s.includes(KEY))).toEqual([]);
    // And the built files themselves (the key is typed in at run time; nothing may bake one in).
    const builtFiles = (dir: string): string[] =>
      readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? builtFiles(join(dir, f)) : [join(dir, f)]));
    for (const f of builtFiles(APP_DIST).filter((f) => /\.(js|mjs|html|json|webmanifest)$/.test(f))) {
      expect(readFileSync(f, 'utf8').includes(KEY)).toBe(false);
    }
  });

  it('works offline after one visit: reload, probe, stored records and explanations, import and export', async () => {
    await server.close();
    const t0 = Date.now();
    await page.reload();
    await expect.poll(() => page.getByTestId('header-model').innerText().catch(() => ''), { timeout: 120_000 }).toMatch(/toy-planted · WASM/);
    console.log(`offline reload to model ready: ${Date.now() - t0} ms`);
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
    await showView(page, 'Probe');
    await page.locator('#probe-text').fill('Offline 2024 "test".');
    await page.getByTestId('analyse').click();
    await expect.poll(async () => (await page.getByTestId('token-strip').locator('button').allInnerTexts()).join(''), { timeout: 60_000 }).toBe('Offline 2024 "test".');

    // Stored data: the imported records and their explanation.
    await showView(page, 'Datasets');
    await page.getByTestId('scan-list').getByRole('button', { name: 'Browse' }).first().click();
    await showNeuron(page, '0:37');
    await expect.poll(() => page.getByTestId('explanations').innerText().catch(() => ''), { timeout: 30_000 }).toMatch(/digits/);
    // Import and export.
    await showView(page, 'Datasets');
    await page.getByLabel('import files').setInputFiles({ name: 'again.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from(recordsJsonl) });
    await expect.poll(() => page.getByTestId('scan-list').innerText().catch(() => ''), { timeout: 30_000 }).toMatch(/^again$/m);
    const download = page.waitForEvent('download');
    await page.getByTestId('scan-list').getByRole('button', { name: 'Export records' }).first().click();
    expect(readFileSync((await (await download).path())!, 'utf8')).toContain('"neuron_id"');
    expect(pageErrors).toEqual([]);
  });
});
