/**
 * The app's scan in headless Chromium, run in its own process.
 * Usage: tsx bench/browser-scan-bench.ts <model-dir> <excerpts> [--layers 0,1]
 *
 * The model folder is served at /models/<its name>/ beside the app (Vite dev server, so the page
 * is cross-origin isolated and onnxruntime-web runs WASM with threads). In the page, the app's own
 * pieces do what the app does: ModelClient loads the model in the model worker on WASM, the scan is
 * created in the store with the app's defaults (SCAN_DEFAULTS) over the first <excerpts> excerpts
 * of the bundled corpus, and the worker runs it: scan, sampled excerpts, records stored in
 * IndexedDB. Before it, the worker times the model alone over the same excerpts, batched as the
 * scan batches them (ModelClient.timeForward).
 *
 * Prints one JSON object: excerpts, tokensPerSecond (the whole job: scan, sampled excerpts,
 * records and storage), forwardOnlyTokensPerSecond, forwardPassesPerExcerpt, storedBytesPerNeuron
 * (the store's accounting of the scan's rows), and details.
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { basename, resolve, sep } from 'node:path';
import type { Plugin } from 'vite';
import { launchChromium, startDevServer } from '../test/helpers/browser.ts';

const args = process.argv.slice(2);
const [modelDirArg, excerptsArg] = args;
const layersAt = args.indexOf('--layers');
const layers = layersAt >= 0 ? args[layersAt + 1].split(',').map(Number) : null;
if (!modelDirArg || !(Number(excerptsArg) > 0)) {
  console.error('usage: tsx bench/browser-scan-bench.ts <model-dir> <excerpts> [--layers 0,1]');
  process.exit(2);
}
const modelDir = resolve(modelDirArg);
const modelName = basename(modelDir);
const maxExcerpts = Number(excerptsArg);

/** Serves the model folder at /models/<name>/, with the headers a cross-origin-isolated page needs. */
function serveModel(): Plugin {
  const prefix = `/models/${modelName}/`;
  return {
    name: 'neurolens-bench-model',
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        const url = decodeURIComponent((req.url ?? '').split('?')[0]);
        if (!url.startsWith(prefix)) return next();
        const file = resolve(modelDir, url.slice(prefix.length));
        if (!file.startsWith(modelDir + sep) || !existsSync(file) || statSync(file).isDirectory()) {
          res.statusCode = 404;
          res.end();
          return;
        }
        res.setHeader('Content-Length', statSync(file).size);
        res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
        res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
        createReadStream(file).pipe(res);
      });
    },
  };
}

const { server, url } = await startDevServer([serveModel()]);
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(`${url}/`, { timeout: 300_000 });
  // A string, so that tsx does not rewrite the dynamic imports meant for the page.
  const result = await page.evaluate(`(async () => {
    const { ModelClient } = await import('/src/worker/model-client.ts');
    const { NeurolensStore } = await import('/src/lib/store/neurolens-store.ts');
    const { SCAN_DEFAULTS } = await import('/src/lib/activations/scan-defaults.ts');
    const { parseCorpusFile } = await import('/src/lib/activations/corpus.ts');
    const client = new ModelClient();
    const loadStarted = performance.now();
    const summary = await client.load({ kind: 'bundled', name: ${JSON.stringify(modelName)} }, 'wasm');
    const loadSeconds = (performance.now() - loadStarted) / 1000;
    const documents = parseCorpusFile('default.jsonl', await (await fetch('/corpus/default.jsonl')).text());
    const layers = ${JSON.stringify(layers)} ?? [...Array(summary.nLayer).keys()];
    const forward = await client.timeForward({ documents, maxExcerpts: ${maxExcerpts}, layers, batchSize: SCAN_DEFAULTS.batchSize });
    const store = await NeurolensStore.open();
    const scan = await store.createScan({
      name: 'browser-scan bench',
      model: { label: summary.label, nLayer: summary.nLayer, dModel: summary.dModel, dMlp: summary.dMlp, nCtx: summary.nCtx, vocabSize: summary.vocabSize },
      corpus: { name: 'Brown corpus (default)', fingerprint: '' },
      layers,
      topK: SCAN_DEFAULTS.topK,
      seed: SCAN_DEFAULTS.seed,
      excerptCount: 0,
      inputs: { documents, randomSampleSize: SCAN_DEFAULTS.randomSampleSize, batchSize: SCAN_DEFAULTS.batchSize, maxExcerpts: ${maxExcerpts} },
    });
    const usageBefore = await navigator.storage.estimate();
    const phases = {};
    let phase = null;
    let phaseStarted = performance.now();
    const started = performance.now();
    const done = await client.scan(scan.id, (p) => {
      if (p.phase === phase) return;
      const now = performance.now();
      if (phase) phases[phase] = +((now - phaseStarted) / 1000).toFixed(2);
      phase = p.phase;
      phaseStarted = now;
    });
    const seconds = (performance.now() - started) / 1000;
    if (phase) phases[phase] = +((performance.now() - phaseStarted) / 1000).toFixed(2);
    const usageAfter = await navigator.storage.estimate();
    const stored = (await store.listScans()).find((s) => s.id === scan.id);
    client.terminate();
    return {
      summary, loadSeconds, forward, done, seconds, phases,
      storedBytes: stored.bytes,
      originBytesAdded: (usageAfter.usage ?? 0) - (usageBefore.usage ?? 0),
      threads: navigator.hardwareConcurrency, crossOriginIsolated,
    };
  })()`) as {
    summary: { label: string; backend: string; nLayer: number; dMlp: number };
    loadSeconds: number;
    forward: { excerpts: number; tokens: number; seconds: number; backend: string };
    done: { excerpts: number; tokens: number; neurons: number; forwardPasses: number; seconds: number };
    seconds: number;
    phases: Record<string, number>;
    storedBytes: number;
    originBytesAdded: number;
    threads: number;
    crossOriginIsolated: boolean;
  };
  if (errors.length > 0) throw new Error(`the page reported errors: ${errors.join('; ')}`);
  const { done, forward } = result;
  const browserScan = {
    excerpts: done.excerpts,
    tokensPerSecond: Math.round(done.tokens / result.seconds),
    forwardOnlyTokensPerSecond: Math.round(forward.tokens / forward.seconds),
    forwardPassesPerExcerpt: +(done.forwardPasses / done.excerpts).toFixed(3),
    storedBytesPerNeuron: Math.round(result.storedBytes / done.neurons),
    details: {
      model: result.summary.label,
      backend: result.summary.backend,
      wasmThreads: result.crossOriginIsolated ? Math.min(4, result.threads) : 1,
      neurons: done.neurons,
      tokens: done.tokens,
      seconds: +result.seconds.toFixed(2),
      phaseSeconds: result.phases,
      forwardOnlySeconds: +forward.seconds.toFixed(2),
      modelLoadSeconds: +result.loadSeconds.toFixed(2),
      originBytesAdded: result.originBytesAdded,
      targets: { forwardPassesPerExcerpt: 2.0, tokensPerSecondOverForwardOnly: 0.45 },
      tokensPerSecondOverForwardOnly: +((done.tokens / result.seconds) / (forward.tokens / forward.seconds)).toFixed(3),
    },
  };
  process.stdout.write(`${JSON.stringify(browserScan)}\n`);
} finally {
  await browser.close();
  await server.close();
}
