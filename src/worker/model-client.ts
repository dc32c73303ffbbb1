/** Promise-based access to the model worker for the UI, typed by protocol.ts's WorkerMethods. */
import type { AblationOptions, AblationResult } from '../lib/causal/ablation.ts';
import type { AblationScore, AblationScoreInput } from '../lib/explain/ablation-score.ts';
import type { NeuronEdit } from '../lib/model/neuron-edits.ts';
import type { NeuronWeightViews } from '../lib/model/weight-views.ts';
import type { NeuronRecord } from '../lib/activations/records.ts';
import type {
  BackendChoice,
  CaptureReply,
  CompareReply,
  ForwardTiming,
  ForwardTimingRequest,
  ModelRequest,
  ModelSummary,
  ParamsOf,
  PartialDatasetSummary,
  ProgressOf,
  ResultOf,
  ScanProgressInfo,
  ScanSummary,
  WorkerMethod,
  WorkerReply,
  WorkerRequest,
} from './protocol.ts';

export class WorkerError extends Error {
  constructor(message: string, readonly errorName: string) {
    super(message);
    this.name = errorName;
  }
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  onProgress?: (p: unknown) => void;
}

export interface CallOptions<M extends WorkerMethod> {
  onProgress?: (p: ProgressOf<M>) => void;
  /** Aborting rejects the call at once and tells the worker to stop its work. */
  signal?: AbortSignal;
}

export class ModelClient {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor() {
    this.worker = new Worker(new URL('./model-worker.ts', import.meta.url), { type: 'module' });
    this.worker.onmessage = (event: MessageEvent<WorkerReply>) => {
      const reply = event.data;
      const p = this.pending.get(reply.id);
      if (!p) return;
      if (reply.kind === 'progress') {
        p.onProgress?.(reply.progress);
        return;
      }
      this.pending.delete(reply.id);
      if (reply.kind === 'error') p.reject(new WorkerError(reply.message, reply.errorName));
      else p.resolve(reply.result);
    };
    // Keeps the UI from waiting forever on a worker that died (out of memory, a bad wasm build).
    this.worker.onerror = (event) => {
      const err = new WorkerError(`the model worker crashed: ${event.message}`, 'WorkerCrash');
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
  }

  /** Calls a worker method; the result's type is the one WorkerMethods gives it. */
  call<M extends WorkerMethod>(method: M, params: ParamsOf<M>, options: CallOptions<M> = {}): Promise<ResultOf<M>> {
    const id = this.nextId++;
    const { signal, onProgress } = options;
    return new Promise<ResultOf<M>>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        if (!this.pending.delete(id)) return;
        this.worker.postMessage({ id, method: 'cancel' } satisfies WorkerRequest);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = () => signal?.removeEventListener('abort', onAbort);
      this.pending.set(id, {
        resolve: (v) => (done(), resolve(v as ResultOf<M>)),
        reject: (e) => (done(), reject(e)),
        onProgress: onProgress as Pending['onProgress'],
      });
      this.worker.postMessage({ id, method, params } as WorkerRequest);
    });
  }

  load(model: ModelRequest, backend: BackendChoice, options: CallOptions<'load'> = {}): Promise<ModelSummary> {
    return this.call('load', { model, backend, appRoot: new URL(import.meta.env.BASE_URL, document.baseURI).href }, options);
  }

  capture(text: string, windowed = false): Promise<CaptureReply> {
    return this.call('capture', { text, windowed });
  }

  scan(scanId: string, onProgress: (p: ScanProgressInfo) => void): Promise<ScanSummary> {
    return this.call('scan', { scanId }, { onProgress });
  }

  /** Builds a paused scan's records so far into a dataset of their own; stop it with stopScan(datasetId). */
  partialDataset(scanId: string, onProgress: (p: ScanProgressInfo) => void): Promise<PartialDatasetSummary> {
    return this.call('partialDataset', { scanId }, { onProgress });
  }

  stopScan(scanId: string, reason: 'pause' | 'cancel'): Promise<void> {
    return this.call('scanStop', { scanId, reason });
  }

  compare(record: NeuronRecord, gelu: 'tanh' | 'sigmoid'): Promise<CompareReply> {
    return this.call('compare', { record, gelu });
  }

  ablate(text: string, edits: NeuronEdit[], options?: AblationOptions, signal?: AbortSignal): Promise<AblationResult> {
    return this.call('ablate', { text, edits, options }, { signal });
  }

  weights(layer: number, neuron: number, top?: number): Promise<NeuronWeightViews> {
    return this.call('weights', { layer, neuron, top });
  }

  ablationScore(input: AblationScoreInput, signal?: AbortSignal): Promise<AblationScore> {
    return this.call('ablationScore', input, { signal });
  }

  /** For benchmarks: the model alone over a corpus's excerpts (see ForwardTimingRequest). */
  timeForward(forward: ForwardTimingRequest): Promise<ForwardTiming> {
    return this.call('timeForward', forward);
  }

  terminate(): void {
    this.worker.terminate();
  }
}
