/** Promise-based access to the model worker for the UI. */
import type { CaptureReply, ModelRequest, ModelSummary, WorkerReply, WorkerRequest } from './protocol.ts';

export class WorkerError extends Error {
  constructor(message: string, readonly errorName: string) {
    super(message);
    this.name = errorName;
  }
}

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

type Pending = { resolve(v: unknown): void; reject(e: Error): void; onProgress?: (p: { file: string; loaded: number; total: number | null }) => void };

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
      this.pending.delete(reply.id);
      if (reply.type === 'error') p.reject(new WorkerError(reply.message, reply.errorName));
      else if (reply.type === 'loaded') p.resolve(reply.summary);
      else p.resolve(reply.result);
    };
    this.worker.onerror = (event) => {
      const err = new WorkerError(`the model worker crashed: ${event.message}`, 'WorkerCrash');
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
  }

  private call<T>(request: WithoutId<WorkerRequest>, onProgress?: Pending['onProgress']): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, onProgress });
      this.worker.postMessage({ ...request, id } as WorkerRequest);
    });
  }

  load(model: ModelRequest, backend: 'auto' | 'webgpu' | 'wasm', onProgress?: Pending['onProgress']): Promise<ModelSummary> {
    return this.call({ type: 'load', model, backend }, onProgress);
  }

  capture(text: string, windowed = false): Promise<CaptureReply> {
    return this.call({ type: 'capture', text, windowed });
  }

  terminate(): void {
    this.worker.terminate();
  }
}
