/**
 * Hub downloads in a real Chromium, against a loopback hub: files come in parts and are kept in
 * Cache Storage, so a cancelled download continues where it stopped and a finished one is never
 * fetched again; a branch's files are revalidated by ETag, a commit's are not; the access token
 * goes to the hub only; and a repository with a single variant loads it, saying so.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { browserAvailable, launchChromium, startBuiltHarness } from './helpers/browser.ts';
import { startFakeHub, type FakeHub } from './helpers/fake-hub-server.ts';
import type { StaticServer } from './helpers/static-server.ts';

const TINY = join(import.meta.dirname, '../public/models/tiny-random');
const PART = 1024 * 1024;
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

type ReadResult =
  | { ok: true; found: boolean; length: number; sha256: string | null; progress: [number, number | null][] }
  | { ok: false; name: string; message: string; progress: [number, number | null][] };

const run = browserAvailable() ? describe : describe.skip;

run('hub downloads in headless Chromium', () => {
  let server: StaticServer & { origin: string };
  let hub: FakeHub;
  let privateHub: FakeHub;
  let browser: Browser;
  let page: Page;
  const model = readFileSync(join(TINY, 'onnx/model.onnx'));

  const call = <T>(method: string, ...args: unknown[]) =>
    page.evaluate(([m, a]) => (window as unknown as { neurolensHub: Record<string, (...x: unknown[]) => Promise<unknown>> }).neurolensHub[m as string](...(a as unknown[])), [
      method,
      args,
    ] as const) as Promise<T>;

  let quantizedOnlyDir: string;

  beforeAll(async () => {
    const quantizedOnly = mkdtempSync(join(tmpdir(), 'neurolens-quantized-only-'));
    quantizedOnlyDir = quantizedOnly;
    mkdirSync(join(quantizedOnly, 'onnx'));
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'onnx/model_quantized.onnx']) copyFileSync(join(TINY, f), join(quantizedOnly, f));
    hub = await startFakeHub({ repos: { 'test-org/tiny': TINY, 'test-org/quantized-only': quantizedOnly } });
    privateHub = await startFakeHub({ repos: { 'test-org/private': TINY }, token: 'hf_test_token_123' });
    server = await startBuiltHarness();
    browser = await launchChromium();
    page = await browser.newPage();
    page.on('pageerror', (err) => console.error('page error:', err.message));
    await page.goto(`${server.origin}/test/browser/hub-harness.html`);
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready', null, { timeout: 120_000 });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await hub?.close();
    await privateHub?.close();
  });

  beforeEach(async () => {
    await call('clear');
    hub.requests.length = 0;
    hub.throttle(undefined);
  });

  const opts = (extra: Record<string, unknown> = {}) => ({ endpoint: hub.url, partBytes: PART, ...extra });
  const gets = () => hub.requests.filter((r) => r.method === 'GET' && r.url.endsWith('/onnx/model.onnx'));
  /** Requests for files (not the tree listing). */
  const fileRequests = (h: FakeHub = hub) => h.requests.filter((r) => r.url.includes('/resolve/'));

  it('downloads a large file in parts with progress up to its full size', async () => {
    const result = await call<ReadResult>('read', 'test-org/tiny', 'onnx/model.onnx', opts());
    expect(result.ok && result.sha256).toBe(sha256(model));
    const parts = Math.ceil(model.length / PART);
    expect(gets().map((r) => r.range)).toEqual(Array.from({ length: parts }, (_, i) => `bytes=${i * PART}-${Math.min(model.length, (i + 1) * PART) - 1}`));
    const last = result.progress.at(-1)!;
    expect(last).toEqual([model.length, model.length]);
    expect(result.progress.every(([, total]) => total === model.length)).toBe(true);
  });

  it('a cancelled download continues where it stopped: parts already cached are not fetched again', async () => {
    hub.throttle(64 * 1024);
    const first = await call<ReadResult>('read', 'test-org/tiny', 'onnx/model.onnx', opts(), 0.45);
    expect(first.ok).toBe(false);
    expect(first.ok ? '' : first.name).toBe('AbortError');
    const fetchedBefore = gets().map((r) => r.range);
    expect(fetchedBefore.length).toBeGreaterThan(1);
    hub.throttle(undefined);
    hub.requests.length = 0;
    const second = await call<ReadResult>('read', 'test-org/tiny', 'onnx/model.onnx', opts());
    expect(second.ok && second.sha256).toBe(sha256(model));
    const fetchedAfter = gets().map((r) => r.range);
    // Every part finished before the cancel comes from the cache; the rest (with the one that was
    // cut short) from the hub.
    const finished = fetchedBefore.slice(0, -1);
    expect(fetchedAfter.filter((r) => finished.includes(r))).toEqual([]);
    expect(fetchedAfter.length + finished.length).toBe(Math.ceil(model.length / PART));
  });

  it('a finished file of a branch is revalidated by ETag (304: nothing downloaded); a new commit is fetched afresh', async () => {
    await call('read', 'test-org/tiny', 'onnx/model.onnx', opts());
    hub.requests.length = 0;
    const again = await call<ReadResult>('read', 'test-org/tiny', 'onnx/model.onnx', opts());
    expect(again.ok && again.sha256).toBe(sha256(model));
    expect(fileRequests().map((r) => r.method)).toEqual(['HEAD']);
    expect(fileRequests()[0].ifNoneMatch).toMatch(/^"[0-9a-f]+"$/);

    const changed = new Uint8Array(model);
    changed[100] ^= 0xff;
    hub.override('test-org/tiny', 'onnx/model.onnx', changed);
    try {
      const fresh = await call<ReadResult>('read', 'test-org/tiny', 'onnx/model.onnx', opts());
      expect(fresh.ok && fresh.sha256).toBe(sha256(changed));
    } finally {
      hub.override('test-org/tiny', 'onnx/model.onnx', model);
    }
  });

  it("a commit's files are never revalidated, and a cached file loads with the hub gone", async () => {
    const commit = 'a'.repeat(40);
    await call('read', 'test-org/tiny', 'config.json', opts({ revision: commit }));
    hub.requests.length = 0;
    const again = await call<ReadResult>('read', 'test-org/tiny', 'config.json', opts({ revision: commit }));
    expect(again.ok && again.found).toBe(true);
    expect(fileRequests()).toEqual([]);

    // A branch's file with the hub gone: the cached copy serves; a file never fetched cannot.
    const shortLived = await startFakeHub({ repos: { 'test-org/tiny': TINY } });
    const gone = { endpoint: shortLived.url, partBytes: PART };
    await call('read', 'test-org/tiny', 'tokenizer_config.json', gone);
    await shortLived.close();
    const cachedOffline = await call<ReadResult>('read', 'test-org/tiny', 'tokenizer_config.json', gone);
    expect(cachedOffline.ok && cachedOffline.found).toBe(true);
    const uncached = await call<ReadResult>('read', 'test-org/tiny', 'config.json', gone);
    expect(uncached.ok ? '' : uncached.message).toMatch(/could not reach the hub for config\.json .*offline\?/);
  });

  it('sends the access token to the hub and refuses clearly without it', async () => {
    const withToken = await call<ReadResult>('read', 'test-org/private', 'config.json', { endpoint: privateHub.url, token: 'hf_test_token_123' });
    expect(withToken.ok && withToken.found).toBe(true);
    expect(privateHub.requests.every((r) => r.authorization === 'Bearer hf_test_token_123')).toBe(true);
    const without = await call<ReadResult>('read', 'test-org/private', 'tokenizer.json', { endpoint: privateHub.url });
    expect(without.ok ? '' : without.message).toMatch(/test-org\/private: the hub refused tokenizer\.json \(HTTP 401\); a private or gated repository needs an access token/);
  });

  it('a repository with a single variant loads it and says which, for any precision asked', async () => {
    const auto = await call<{ ok: boolean; onnxPath: string; dtype: string; notice: string | null }>('load', 'test-org/quantized-only', 'auto', opts());
    expect(auto).toMatchObject({ ok: true, onnxPath: 'onnx/model_quantized.onnx', dtype: 'quantized', notice: null });
    const asked = await call<{ ok: boolean; onnxPath: string; notice: string | null }>('load', 'test-org/quantized-only', 'fp32', opts());
    expect(asked.ok && asked.onnxPath).toBe('onnx/model_quantized.onnx');
    expect(asked.notice).toMatch(/has no fp32 variant, only int8 \(onnx\/model_quantized\.onnx\): using it \(99\.9% of activations within 0\.13 of exact/);
    // The variants came from the hub's tree listing: only the chosen graph was asked for.
    expect(fileRequests().filter((r) => r.url.endsWith('.onnx')).every((r) => r.url.endsWith('onnx/model_quantized.onnx'))).toBe(true);
    // …and no file it does not have (no 404s in the user's console).
    const present = new Set(['config.json', 'tokenizer.json', 'tokenizer_config.json', 'onnx/model_quantized.onnx']);
    expect(fileRequests().filter((r) => !present.has(r.url.replace(/^.*\/resolve\/main\//, '')))).toEqual([]);
    // A repository with several variants: the one asked for, or the exact one by default.
    const tinyAuto = await call<{ onnxPath: string; dtype: string }>('load', 'test-org/tiny', 'auto', opts());
    expect(tinyAuto).toMatchObject({ onnxPath: 'onnx/model.onnx', dtype: 'fp32' });
    const tinyFp16 = await call<{ onnxPath: string; dtype: string }>('load', 'test-org/tiny', 'fp16', opts());
    expect(tinyFp16).toMatchObject({ onnxPath: 'onnx/model_fp16.onnx', dtype: 'fp16' });

    // A mirror without the listing API: the candidates are looked at with HEAD instead.
    const plain = await startFakeHub({ repos: { 'test-org/quantized-only': quantizedOnlyDir }, treeApi: false });
    try {
      const viaHead = await call<{ ok: boolean; onnxPath: string; notice: string | null }>('load', 'test-org/quantized-only', 'fp16', { endpoint: plain.url, partBytes: PART });
      expect(viaHead).toMatchObject({ ok: true, onnxPath: 'onnx/model_quantized.onnx' });
      expect(viaHead.notice).toMatch(/has no fp16 variant, only int8/);
      expect(fileRequests(plain).some((r) => r.method === 'HEAD' && r.url.endsWith('onnx/model_fp16.onnx'))).toBe(true);
      expect(new Set(fileRequests(plain).filter((r) => r.method === 'GET' && r.url.endsWith('.onnx')).map((r) => r.url))).toEqual(
        new Set(['/test-org/quantized-only/resolve/main/onnx/model_quantized.onnx']),
      );
    } finally {
      await plain.close();
    }
  });
});
