/** Promise-based access to the model worker for the UI. */
import type { NeuronRecord } from '../lib/activations/records.ts';
import type {
  CaptureReply,
  CompareReply,
  ForwardTiming,
  ForwardTimingRequest,
  ModelRequest,
  ModelSummary,
  ScanProgressInfo,
  ScanSummary,
  WorkerReply,
  WorkerRequest,
} from './protocol.ts';

export class WorkerError extends Error {
  constructor(message: string, readonly errorName: string) {
    super(message);
    this.name = errorName;
  }
}

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

type Pending = {
  resolve(v: unknown): void;
  reject(e: Error): void;
  onProgress?: (p: { file: string; loaded: number; total: number | null }) => void;
  onScanProgress?: (p: ScanProgressInfo) => void;
};

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
      if (reply.type === 'progress') {
        p.onProgress?.(reply);
        return;
      }
      if (reply.type === 'scan-progress') {
        p.onScanProgress?.(reply.progress);
        return;
      }
      this.pending.delete(reply.id);
      if (reply.type === 'error') p.reject(new WorkerError(reply.message, reply.errorName));
      else if (reply.type === 'loaded') p.resolve(reply.summary);
      else if (reply.type === 'captured') p.resolve(reply.result);
      else if (reply.type === 'scan-done') p.resolve(reply.summary);
      else if (reply.type === 'compared') p.resolve(reply.result);
      else if (reply.type === 'forward-timed') p.resolve(reply.timing);
      else p.resolve(undefined);
    };
    this.worker.onerror = (event) => {
      const err = new WorkerError(`the model worker crashed: ${event.message}`, 'WorkerCrash');
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
  }

  private call<T>(request: WithoutId<WorkerRequest>, callbacks: Pick<Pending, 'onProgress' | 'onScanProgress'> = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, ...callbacks });
      this.worker.postMessage({ ...request, id } as WorkerRequest);
    });
  }

  load(model: ModelRequest, backend: 'auto' | 'webgpu' | 'wasm', onProgress?: Pending['onProgress']): Promise<ModelSummary> {
    return this.call({ type: 'load', model, backend }, { onProgress });
  }

  capture(text: string, windowed = false): Promise<CaptureReply> {
    return this.call({ type: 'capture', text, windowed });
  }

  /** Runs (or resumes) a scan already created in the store; resolves when it is done. */
  scan(scanId: string, onScanProgress: (p: ScanProgressInfo) => void): Promise<ScanSummary> {
    return this.call({ type: 'scan', scan: { scanId } }, { onScanProgress });
  }

  stopScan(scanId: string, reason: 'pause' | 'cancel'): Promise<void> {
    return this.call({ type: 'scan-stop', scanId, reason });
  }

  /** Re-runs a record's excerpts through the loaded model with one GELU variant. */
  compare(record: NeuronRecord, gelu: 'tanh' | 'sigmoid'): Promise<CompareReply> {
    return this.call({ type: 'compare', record, gelu });
  }

  /** For benchmarks: times the model alone over a corpus's excerpts (see ForwardTimingRequest). */
  timeForward(forward: ForwardTimingRequest): Promise<ForwardTiming> {
    return this.call({ type: 'time-forward', forward });
  }

  terminate(): void {
    this.worker.terminate();
  }
}
