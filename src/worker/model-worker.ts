/// <reference lib="webworker" />
/**
 * The model lives here, never on the UI thread: loading, instrumenting and running the graph.
 */
import { ActivationCapturer } from '../lib/model/capture.ts';
import { fileListSource } from '../lib/model/file-list-source.ts';
import { hubSource } from '../lib/model/hub-source.ts';
import { loadModel } from '../lib/model/load-model.ts';
import type { ModelSource } from '../lib/model/model-source.ts';
import { urlSource } from '../lib/model/url-source.ts';
import { loadWebRuntime } from '../lib/model/ort-runtime.web.ts';
import type { ModelRequest, PlantedNeuronInfo, WorkerReply, WorkerRequest } from './protocol.ts';
import { NeurolensStore } from '../lib/store/neurolens-store.ts';
import { runStoredScan, ScanStoppedError } from './scan-in-worker.ts';
import { compareRecordWithModel } from '../lib/activations/compare-record.ts';
import { buildExcerpts } from '../lib/activations/corpus.ts';
import { SCAN_DEFAULTS } from '../lib/activations/scan-defaults.ts';
import { createScanSource } from '../lib/activations/scan-source.ts';
import { planBatches } from '../lib/activations/scan.ts';

declare const self: DedicatedWorkerGlobalScope;

let capturer: ActivationCapturer | null = null;
let store: Promise<NeurolensStore> | null = null;
const runningScans = new Map<string, AbortController>();

function openStore(): Promise<NeurolensStore> {
  store ??= NeurolensStore.open();
  return store;
}

function post(reply: WorkerReply, transfer: Transferable[] = []): void {
  self.postMessage(reply, transfer);
}

function sourceFor(request: ModelRequest): ModelSource {
  switch (request.kind) {
    case 'bundled':
      return urlSource(new URL(`${import.meta.env.BASE_URL}models/${request.name}/`, self.location.origin).href, request.name);
    case 'hub':
      return hubSource(request.repoId, { endpoint: request.endpoint || undefined });
    case 'files':
      return fileListSource(
        request.files.map((f) => ({
          name: f.name,
          path: (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name,
          bytes: async () => new Uint8Array(await f.arrayBuffer()),
        })),
      );
  }
}

async function readPlanted(source: ModelSource): Promise<PlantedNeuronInfo[]> {
  const bytes = await source.read('planted.json').catch(() => undefined);
  if (!bytes) return [];
  try {
    const parsed = JSON.parse(new TextDecoder().decode(bytes)) as { neurons?: PlantedNeuronInfo[] } | PlantedNeuronInfo[];
    const list = Array.isArray(parsed) ? parsed : parsed.neurons;
    return Array.isArray(list) ? list.map(({ layer, neuron, id, description }) => ({ layer, neuron, id, description })) : [];
  } catch {
    return [];
  }
}

async function handle(msg: WorkerRequest): Promise<void> {
  if (msg.type === 'load') {
    const started = performance.now();
    const source = sourceFor(msg.model);
    const dtype = msg.model.kind === 'bundled' ? 'fp32' : msg.model.dtype;
    // Dropped files: a single .onnx among them is the model, whatever its name.
    const droppedOnnx = msg.model.kind === 'files' ? msg.model.files.filter((f) => f.name.endsWith('.onnx')) : [];
    const model = await loadModel(source, {
      dtype,
      onnxPath: droppedOnnx.length === 1 ? droppedOnnx[0].name : undefined,
      onProgress: (p) => post({ id: msg.id, type: 'progress', ...p }),
    });
    const runtime = await loadWebRuntime(msg.backend);
    const next = new ActivationCapturer(model, runtime);
    const backend = await next.warmUp();
    await capturer?.dispose();
    capturer = next;
    post({
      id: msg.id,
      type: 'loaded',
      summary: {
        label: model.label,
        onnxPath: model.onnxPath,
        nLayer: model.config.nLayer,
        dModel: model.config.dModel,
        dMlp: model.config.dMlp,
        nCtx: model.config.nCtx,
        vocabSize: model.config.vocabSize,
        backend,
        loadMs: performance.now() - started,
        planted: await readPlanted(source),
      },
    });
  } else if (msg.type === 'scan') {
    if (!capturer) throw new Error('load a model before scanning');
    const { scanId } = msg.scan;
    if (runningScans.has(scanId)) throw new Error('this scan is already running');
    const controller = new AbortController();
    runningScans.set(scanId, controller);
    try {
      const summary = await runStoredScan(await openStore(), capturer, scanId, controller.signal, (progress) =>
        post({ id: msg.id, type: 'scan-progress', progress }),
      );
      post({ id: msg.id, type: 'scan-done', summary });
    } finally {
      runningScans.delete(scanId);
    }
  } else if (msg.type === 'scan-stop') {
    runningScans.get(msg.scanId)?.abort(new ScanStoppedError(msg.reason));
    post({ id: msg.id, type: 'stopped' });
  } else if (msg.type === 'compare') {
    if (!capturer) throw new Error('load a model before comparing');
    const c = await compareRecordWithModel(msg.record, capturer, { gelu: msg.gelu });
    post({
      id: msg.id,
      type: 'compared',
      result: { gelu: msg.gelu, compared: c.excerpts.compared, skipped: c.excerpts.skipped, unmappedTokens: c.unmappedTokens.length, overall: c.overall },
    });
  } else if (msg.type === 'time-forward') {
    if (!capturer) throw new Error('load a model before timing it');
    const { documents, maxExcerpts, batchSize = SCAN_DEFAULTS.batchSize } = msg.forward;
    const layers = capturer.resolveLayers(msg.forward.layers);
    const excerpts = buildExcerpts(documents, capturer.model.tokenizer, { maxExcerpts }).map((e) => e.tokenIds);
    const source = await createScanSource(capturer, layers);
    const batches = planBatches(excerpts.map((_, i) => i), (i) => excerpts[i].length, batchSize);
    const started = performance.now();
    for (const batch of batches) await source(batch.excerpts.map((i) => excerpts[i]));
    post({
      id: msg.id,
      type: 'forward-timed',
      timing: { excerpts: excerpts.length, tokens: excerpts.reduce((n, e) => n + e.length, 0), seconds: (performance.now() - started) / 1000, backend: capturer.backend! },
    });
  } else if (msg.type === 'capture') {
    if (!capturer) throw new Error('no model is loaded yet');
    const started = performance.now();
    const capture = await capturer.captureText(msg.text, { windowed: msg.windowed });
    const layers = [...capture.layers].map(([layer, rows]) => {
      const data = new Float32Array(rows.length * capturer!.dMlp);
      rows.forEach((r, t) => data.set(r, t * capturer!.dMlp));
      return { layer, data };
    });
    post(
      {
        id: msg.id,
        type: 'captured',
        result: {
          tokens: capture.tokens,
          backend: capture.backend,
          windows: capture.windows,
          dMlp: capturer.dMlp,
          layers,
          runMs: performance.now() - started,
        },
      },
      layers.map((l) => l.data.buffer),
    );
  }
}

self.onmessage = (event: MessageEvent<WorkerRequest>) => {
  handle(event.data).catch((err: unknown) => {
    const e = err instanceof Error ? err : new Error(String(err));
    post({ id: event.data.id, type: 'error', message: e.message, errorName: e.name });
  });
};
