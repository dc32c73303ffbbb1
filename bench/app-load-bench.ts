/**
 * Load times of the production app (dist/) in headless Chromium, WASM backend, toy model: a first
 * visit with an empty browser profile, a repeat visit, and a reload with the server gone (served
 * by the service worker's caches). Each figure is navigation start to "model ready" (the model
 * status shown), and the app's own load time of the model within it.
 * Usage: tsx bench/app-load-bench.ts [rounds] [--pages-host]; prints one JSON object.
 * `--pages-host`: a host without COOP/COEP (GitHub Pages), so a first visit includes the service
 * worker's one reload.
 */
import { launchChromium, startBuiltApp } from '../test/helpers/browser.ts';

const rounds = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 3);
const pagesHost = process.argv.includes('--pages-host');

interface Visit {
  msToModelReady: number;
  modelLoadMs: number;
}

const results: Record<'firstVisit' | 'repeatVisit' | 'offline', Visit[]> = { firstVisit: [], repeatVisit: [], offline: [] };
for (let round = 0; round < rounds; round++) {
  const server = await startBuiltApp({ isolationHeaders: !pagesHost, basePath: pagesHost ? '/neurolens/' : '/' });
  const browser = await launchChromium();
  const context = await browser.newContext();
  const page = await context.newPage();
  const visit = async (go: () => Promise<unknown>): Promise<Visit> => {
    const t0 = Date.now();
    await go();
    const status = page.getByTestId('model-status');
    await status.waitFor({ timeout: 300_000 });
    const ms = Date.now() - t0;
    const loaded = /in ([\d.]+) s/.exec(await status.innerText());
    return { msToModelReady: ms, modelLoadMs: loaded ? Math.round(Number(loaded[1]) * 1000) : NaN };
  };
  results.firstVisit.push(await visit(() => page.goto(server.url)));
  results.repeatVisit.push(await visit(() => page.reload()));
  await server.close();
  results.offline.push(await visit(() => page.reload()));
  await browser.close();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const summary = Object.fromEntries(
  Object.entries(results).map(([k, v]) => [k, { medianMsToModelReady: median(v.map((x) => x.msToModelReady)), medianModelLoadMs: median(v.map((x) => x.modelLoadMs)), runs: v }]),
);
process.stdout.write(`${JSON.stringify({ host: pagesHost ? 'no COOP/COEP (service worker isolates)' : 'COOP/COEP headers', rounds, model: 'toy-planted', ...summary })}\n`);
