/**
 * Real-browser test plumbing: Debian's Chromium driven by playwright-core, and the pages it opens:
 * the production build (the app, or the test harness pages built the same way) served by a plain
 * static server on 127.0.0.1, or the Vite dev server for its own smoke test.
 */
import { existsSync, readFileSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createServer, type Plugin, type ViteDevServer } from 'vite';
import { ensureAppBuilt, ensureHarnessBuilt } from './app-build.ts';
import { ensureModels } from '../../scripts/gen-models.ts';
import { startStaticServer, type StaticServer } from './static-server.ts';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Browser tests run when Chromium is installed; CI sets NEUROLENS_REQUIRE_BROWSER so they cannot be skipped there. */
export function browserAvailable(): boolean {
  if (existsSync(CHROMIUM_PATH)) return true;
  if (process.env.NEUROLENS_REQUIRE_BROWSER) {
    throw new Error(`NEUROLENS_REQUIRE_BROWSER is set but there is no Chromium at ${CHROMIUM_PATH} (apt-get install -y chromium)`);
  }
  console.warn(`browser tests skipped: no Chromium at ${CHROMIUM_PATH} (apt-get install -y chromium)`);
  return false;
}

/**
 * The built app (dist/) on a static server. `isolationHeaders` (default true) makes the server
 * send COOP/COEP like a configurable host; false is a GitHub-Pages-like host, where the app's
 * service worker must add them. `basePath` serves it under a sub-path, as GitHub Pages does.
 */
export async function startBuiltApp(options: { isolationHeaders?: boolean; basePath?: string } = {}): Promise<StaticServer> {
  ensureModels({ log: () => {} });
  return startStaticServer(ensureAppBuilt(), { isolationHeaders: options.isolationHeaders ?? true, basePath: options.basePath });
}

/**
 * The harness pages (test/browser/*.html) as built by `vite build`, at the same paths as in the
 * source tree: `${origin}/test/browser/harness.html`. `origin` has no trailing slash.
 */
export async function startBuiltHarness(): Promise<StaticServer & { origin: string }> {
  ensureModels({ log: () => {} });
  const server = await startStaticServer(ensureHarnessBuilt(), { isolationHeaders: true });
  // Bundled models and the corpus are served from public/ in the app; the harness build has them too.
  return { ...server, origin: server.url.replace(/\/$/, '') };
}

/** `npm start`'s dev server on a free port; `plugins` add to the app's own (a benchmark serves its model). */
export async function startDevServer(plugins: Plugin[] = []): Promise<{ server: ViteDevServer; url: string }> {
  const server = await createServer({
    configFile: new URL('../../vite.config.ts', import.meta.url).pathname,
    plugins,
    server: { port: 0, host: '127.0.0.1', strictPort: false, hmr: false },
    logLevel: 'error',
    clearScreen: false,
  });
  await server.listen();
  const address = server.httpServer!.address();
  if (!address || typeof address === 'string') throw new Error('dev server has no address');
  return { server, url: `http://127.0.0.1:${address.port}` };
}

/** Opens one of the app's views (Probe, Neuron, Explorer, Datasets, Settings) from its header. */
export async function showView(page: Page, view: 'Probe' | 'Neuron' | 'Explorer' | 'Datasets' | 'Settings'): Promise<void> {
  await page.getByRole('navigation', { name: 'views' }).getByRole('link', { name: view, exact: true }).click();
}

/** Opens a neuron by number (e.g. '0:37') with the neuron picker of the view shown, and waits for the address to name it. */
export async function showNeuron(page: Page, neuron: string): Promise<void> {
  const input = page.locator('#neuron-input');
  // On a small screen the neuron page folds its picker away.
  const folded = page.locator('details:has(#neuron-input):not([open]) > summary');
  if (await folded.count()) await folded.click();
  await input.fill(neuron);
  await input.press('Enter');
  await page.waitForFunction((n) => new URL(location.href).searchParams.get('neuron') === n, neuron);
}

/** Scans the bundled corpus with the loaded model from the Datasets view (`maxExcerpts` excerpts) and waits until the scan is listed as done. */
export async function scanBundledCorpus(page: Page, maxExcerpts: number, timeout = 240_000): Promise<void> {
  await showView(page, 'Datasets');
  await page.getByLabel('max excerpts').fill(String(maxExcerpts));
  await page.getByTestId('scan-start').click();
  await page.waitForFunction(() => /done/.test(document.querySelector('[data-testid="scan-list"]')?.textContent ?? ''), null, { timeout });
}

/** Exports a dataset's records through the app's own button (Datasets view, `row` of the list) and returns the file's text. */
export async function exportRecordsFromList(page: Page, row: number): Promise<string> {
  await showView(page, 'Datasets');
  const download = page.waitForEvent('download');
  await page.getByTestId('scan-list').locator('tbody tr').nth(row).getByRole('button', { name: 'Export records' }).click();
  return readFileSync((await (await download).path())!, 'utf8');
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      '--no-sandbox',
      '--enable-unsafe-webgpu',
      '--enable-features=Vulkan',
      '--use-angle=swiftshader',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
}
