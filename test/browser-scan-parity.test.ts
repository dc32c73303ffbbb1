/**
 * The same scan in the app (headless Chromium, the real model worker, WASM) and in the CLI
 * (`neurolens scan --backend wasm`): the same model, corpus and seed give byte-identical
 * NeuronRecords. On the toy model and on a model of 2,048 neurons (more than four chunks of 512).
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserAvailable, exportRecordsFromList, launchChromium, showView, startBuiltApp } from './helpers/browser.ts';
import type { StaticServer } from './helpers/static-server.ts';

const run = browserAvailable() ? describe : describe.skip;
const ROOT = join(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin/neurolens.mjs');
const execFileAsync = promisify(execFile);

/** The CLI's scan of the default corpus; resolves to its output folder. */
async function cliScan(out: string, model: string, maxExcerpts: number): Promise<string> {
  await execFileAsync(process.execPath, [BIN, 'scan', '--model', model, '--corpus', 'default', '--max-excerpts', String(maxExcerpts), '--backend', 'wasm', '--out', out], {
    timeout: 300_000,
    maxBuffer: 1 << 26,
  });
  return out;
}

run('the same scan in the browser and the CLI', () => {
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  let dir: string;
  const pageErrors: string[] = [];
  let cli: { toy: Promise<string>; wide: Promise<string> };

  beforeAll(async () => {
    execFileSync(join(ROOT, 'node_modules/.bin/tsx'), [join(ROOT, 'scripts/gen-models.ts')], { stdio: 'ignore' });
    execFileSync(join(ROOT, 'node_modules/.bin/tsx'), [join(ROOT, 'scripts/prepare-corpus.ts')], { stdio: 'ignore' });
    dir = mkdtempSync(join(tmpdir(), 'neurolens-parity-'));
    server = await startBuiltApp();
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(server.url, { timeout: 120_000 });
    await page.getByTestId('model-status').waitFor({ timeout: 120_000 });
    // The CLI's scans run while the browser's do.
    cli = { toy: cliScan(join(dir, 'toy'), 'toy-planted', 96), wide: cliScan(join(dir, 'wide'), 'wide-random', 32) };
    cli.toy.catch(() => undefined);
    cli.wide.catch(() => undefined);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Loads a bundled model on WASM (the CLI's runtime here), as a user picks it. */
  async function loadOnWasm(name: string) {
    await showView(page, 'Settings');
    await page.getByLabel('model source').selectOption('bundled');
    await page.getByLabel('bundled model').selectOption(name);
    await page.getByLabel('backend').selectOption('wasm');
    await page.getByRole('button', { name: 'Load', exact: true }).click();
    await expect.poll(() => page.getByTestId('model-status').innerText(), { timeout: 120_000 }).toMatch(new RegExp(`${name}[\\s\\S]*WASM`));
  }

  /** Scans the bundled corpus with the app's defaults; resolves to the exported records (JSONL). */
  async function scanInApp(maxExcerpts: number): Promise<string> {
    await showView(page, 'Datasets');
    const before = await page.getByTestId('scan-list').locator('tbody tr').count().catch(() => 0);
    await page.getByLabel('max excerpts').fill(String(maxExcerpts));
    await page.getByTestId('scan-start').click();
    await expect.poll(() => page.getByTestId('scan-list').locator('tbody tr').count(), { timeout: 60_000 }).toBeGreaterThan(before);
    await expect.poll(() => page.getByTestId('scan-list').innerText(), { timeout: 500_000 }).not.toMatch(/running/);
    expect(await page.getByTestId('scan-list').innerText()).not.toMatch(/failed/);
    // The newest dataset is listed first; its records as the app exports them.
    return exportRecordsFromList(page, 0);
  }

  /** Every exported record is byte for byte the CLI's file of that neuron (differences are summarised, not printed whole). */
  function expectSameRecords(exported: string, out: string, neurons: number) {
    const lines = exported.split('\n').filter(Boolean);
    expect(lines).toHaveLength(neurons);
    const differing: string[] = [];
    for (const line of lines) {
      const { layer_index: layer, neuron_index: neuron } = JSON.parse(line).neuron_id;
      const file = readFileSync(join(out, String(layer), `${neuron}.json`), 'utf8');
      if (`${line}\n` === file) continue;
      let at = 0;
      while (line[at] === file[at]) at++;
      differing.push(`${layer}:${neuron} from character ${at}: browser …${line.slice(Math.max(0, at - 60), at + 60)}… CLI …${file.slice(Math.max(0, at - 60), at + 60)}…`);
    }
    expect(differing.slice(0, 3), `${differing.length} of ${lines.length} records differ`).toEqual([]);
  }

  it('on the toy model', async () => {
    await loadOnWasm('toy-planted');
    const exported = await scanInApp(96);
    expectSameRecords(exported, await cli.toy, 512);
  }, 600_000);

  it('on a model of 2,048 neurons', async () => {
    await loadOnWasm('wide-random');
    const exported = await scanInApp(32);
    expectSameRecords(exported, await cli.wide, 2048);
    expect(pageErrors).toEqual([]);
  }, 600_000);
});
