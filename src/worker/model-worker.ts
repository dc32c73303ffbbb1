/// <reference lib="webworker" />
/**
 * The model lives here, never on the UI thread: loading, instrumenting and running the graph.
 * Each method of protocol.ts's WorkerMethods has one handler below.
 */
import { ActivationCapturer } from '../lib/model/capture.ts';
import { fileListSource } from '../lib/model/file-list-source.ts';
import { hubSource } from '../lib/model/hub-source.ts';
import { loadModel } from '../lib/model/load-model.ts';
import { readManifestListing, withListing, type ModelSource } from '../lib/model/model-source.ts';
import { urlSource } from '../lib/model/url-source.ts';
import { loadWebRuntime, wasmThreadCount } from '../lib/model/ort-runtime.web.ts';
import type { ModelRequest, ParamsOf, PlantedNeuronInfo, ProgressOf, ResultOf, WorkerMethod, WorkerMethods, WorkerReply, WorkerRequest } from './protocol.ts';
import { partialDatasetId } from './protocol.ts';
import { NeurolensStore } from '../lib/store/neurolens-store.ts';
import { buildPartialDataset, runStoredScan, ScanStoppedError } from './scan-in-worker.ts';
import { compareRecordWithModel } from '../lib/activations/compare-record.ts';
import { buildExcerpts } from '../lib/activations/corpus.ts';
import { SCAN_DEFAULTS } from '../lib/activations/scan-defaults.ts';
import { createScanSource } from '../lib/activations/scan-source.ts';
import { planBatches } from '../lib/activations/scan.ts';
import { ablateText } from '../lib/causal/ablation.ts';
import { computeAblationScore } from '../lib/explain/ablation-score.ts';
import { ModelWeights } from '../lib/model/model-weights.ts';
import { neuronWeightViews } from '../lib/model/weight-views.ts';

declare const self: DedicatedWorkerGlobalScope;

let capturer: ActivationCapturer | null = null;
/** The loaded model's weights, read on first use (they keep the graph's bytes alive). */
let weights: { of: ActivationCapturer; weights: Promise<ModelWeights> } | null = null;
let store: Promise<NeurolensStore> | null = null;
const runningScans = new Map<string, AbortController>();
/** Calls in progress, so that a `cancel` message can stop them. */
const inFlight = new Map<number, AbortController>();

function openStore(): Promise<NeurolensStore> {
  store ??= NeurolensStore.open();
  return store;
}

function post(reply: WorkerReply, transfer: Transferable[] = []): void {
  self.postMessage(reply, transfer);
}

interface CallContext<M extends WorkerMethod> {
  signal: AbortSignal;
  progress(p: ProgressOf<M>): void;
  /** Buffers to transfer (not copy) with the result. */
  transfer: Transferable[];
}

type Handlers = { [M in WorkerMethod]: (params: ParamsOf<M>, ctx: CallContext<M>) => Promise<ResultOf<M>> };

async function sourceFor(request: ModelRequest, appRoot: string, signal: AbortSignal): Promise<ModelSource> {
  switch (request.kind) {
    case 'bundled': {
      const source = urlSource(new URL(`models/${request.name}/`, appRoot).href, request.name);
      const listing = await readManifestListing(source, signal);
      return listing ? withListing(source, listing) : source;
    }
    case 'hub':
      return hubSource(request.repoId, { endpoint: request.endpoint, revision: request.revision, token: request.token });
    case 'files':
      return fileListSource(
        request.files.map((f) => ({
          name: f.name,
          path: (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name,
          size: f.size,
          bytes: async () => new Uint8Array(await f.arrayBuffer()),
        })),
      );
  }
}

async function readPlanted(source: ModelSource): Promise<PlantedNeuronInfo[]> {
  // Only the project's planted models have this file: ask for it only where it is listed.
  if ((await source.size('planted.json').catch(() => undefined)) === undefined) return [];
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

const handlers: Handlers = {
  async load({ model: request, backend: choice, appRoot }, { signal, progress }) {
    const started = performance.now();
    const source = await sourceFor(request, appRoot, signal);
    // Dropped files: a single .onnx among them is the model, whatever its name.
    const droppedOnnx = request.kind === 'files' ? request.files.filter((f) => f.name.endsWith('.onnx')) : [];
    const model = await loadModel(source, {
      dtype: request.kind === 'bundled' ? 'auto' : request.dtype,
      onnxPath: droppedOnnx.length === 1 ? droppedOnnx[0].name : undefined,
      onProgress: progress,
      signal,
    });
    signal.throwIfAborted();
    const runtime = await loadWebRuntime(choice, appRoot);
    const next = new ActivationCapturer(model, runtime);
    const backend = await next.warmUp();
    // Cancelled while the session was being built: keep the model in use.
    if (signal.aborted) {
      await next.dispose();
      signal.throwIfAborted();
    }
    await capturer?.dispose();
    capturer = next;
    weights = null;
    return {
      label: model.label,
      onnxPath: model.onnxPath,
      dtype: model.dtype,
      notice: model.notice,
      nLayer: model.config.nLayer,
      dModel: model.config.dModel,
      dMlp: model.config.dMlp,
      nCtx: model.config.nCtx,
      vocabSize: model.config.vocabSize,
      backend,
      wasmThreads: wasmThreadCount(),
      loadMs: performance.now() - started,
      planted: await readPlanted(source),
    };
  },

  async capture({ text, windowed }, { transfer }) {
    if (!capturer) throw new Error('no model is loaded yet');
    const started = performance.now();
    const capture = await capturer.captureText(text, { windowed });
    const dMlp = capturer.dMlp;
    const layers = [...capture.layers].map(([layer, rows]) => {
      const data = new Float32Array(rows.length * dMlp);
      rows.forEach((r, t) => data.set(r, t * dMlp));
      return { layer, data };
    });
    transfer.push(...layers.map((l) => l.data.buffer));
    return { tokens: capture.tokens, backend: capture.backend, windows: capture.windows, dMlp, layers, runMs: performance.now() - started };
  },

  async scan({ scanId }, { progress }) {
    if (!capturer) throw new Error('load a model before scanning');
    if (runningScans.has(scanId)) throw new Error('this scan is already running');
    const controller = new AbortController();
    runningScans.set(scanId, controller);
    try {
      return await runStoredScan(await openStore(), capturer, scanId, controller.signal, progress);
    } finally {
      runningScans.delete(scanId);
    }
  },

  async partialDataset({ scanId }, { progress }) {
    if (!capturer) throw new Error('load a model before browsing a paused scan');
    if (runningScans.has(scanId)) throw new Error('this scan is running: pause it to browse what it has scanned so far');
    const datasetId = partialDatasetId(scanId);
    if (runningScans.has(datasetId)) throw new Error('the records of this scan are already being built');
    const controller = new AbortController();
    runningScans.set(datasetId, controller);
    try {
      return await buildPartialDataset(await openStore(), capturer, scanId, controller.signal, progress);
    } finally {
      runningScans.delete(datasetId);
    }
  },

  async scanStop({ scanId, reason }) {
    runningScans.get(scanId)?.abort(new ScanStoppedError(reason));
  },

  async compare({ record, gelu }) {
    if (!capturer) throw new Error('load a model before comparing');
    const c = await compareRecordWithModel(record, capturer, { gelu });
    return { gelu, compared: c.excerpts.compared, skipped: c.excerpts.skipped, unmappedTokens: c.unmappedTokens.length, overall: c.overall };
  },

  async ablate({ text, edits, options }) {
    if (!capturer) throw new Error('no model is loaded yet');
    return ablateText(capturer, text, edits, options);
  },

  async weights({ layer, neuron, top }) {
    if (!capturer) throw new Error('no model is loaded yet');
    const current = capturer;
    if (weights?.of !== current) weights = { of: current, weights: ModelWeights.of(current.model) };
    const tokenizer = current.model.tokenizer;
    return neuronWeightViews(await weights.weights, { layer, neuron }, (id) => tokenizer.tokenText(id), { top });
  },

  async ablationScore(input, { signal }) {
    if (!capturer) throw new Error('no model is loaded yet');
    return computeAblationScore(capturer, input, { signal });
  },

  async timeForward({ documents, maxExcerpts, layers: requested, batchSize = SCAN_DEFAULTS.batchSize }) {
    if (!capturer) throw new Error('load a model before timing it');
    const layers = capturer.resolveLayers(requested);
    const excerpts = buildExcerpts(documents, capturer.model.tokenizer, { maxExcerpts }).map((e) => e.tokenIds);
    const source = await createScanSource(capturer, layers);
    const batches = planBatches(excerpts.map((_, i) => i), (i) => excerpts[i].length, batchSize);
    const started = performance.now();
    for (const batch of batches) await source(batch.excerpts.map((i) => excerpts[i]));
    return { excerpts: excerpts.length, tokens: excerpts.reduce((n, e) => n + e.length, 0), seconds: (performance.now() - started) / 1000, backend: capturer.backend! };
  },
};

async function dispatch<M extends WorkerMethod>(id: number, method: M, params: WorkerMethods[M]['params']): Promise<void> {
  const controller = new AbortController();
  inFlight.set(id, controller);
  const ctx: CallContext<M> = { signal: controller.signal, progress: (p) => post({ id, kind: 'progress', progress: p }), transfer: [] };
  try {
    const handler = handlers[method] as (params: ParamsOf<M>, ctx: CallContext<M>) => Promise<ResultOf<M>>;
    const result = await handler(params, ctx);
    post({ id, kind: 'result', result }, ctx.transfer);
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    post({ id, kind: 'error', message: e.message, errorName: e.name });
  } finally {
    inFlight.delete(id);
  }
}

self.onmessage = (event: MessageEvent<WorkerRequest>) => {
  const request = event.data;
  if (request.method === 'cancel') {
    inFlight.get(request.id)?.abort(new DOMException('cancelled', 'AbortError'));
    return;
  }
  void dispatch(request.id, request.method, request.params);
};
