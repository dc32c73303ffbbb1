/**
 * Small AbortSignal helpers that work in browsers, workers and Node 20 alike (no reliance on
 * the newer `AbortSignal.any`), and that unhook their listeners when an operation ends. Signals
 * shared by many pending operations (a job's, a client's) go through `AbortFanout`, which keeps
 * one listener per signal instead of one per operation.
 */

export interface LinkedSignal {
  signal: AbortSignal;
  /** Detaches from the source signals; call when the operation is over. */
  dispose(): void;
}

/** A signal that aborts (with the same reason) as soon as any of `sources` does. */
export function linkSignals(...sources: (AbortSignal | undefined)[]): LinkedSignal {
  const controller = new AbortController();
  const cleanups: (() => void)[] = [];
  const dispose = () => {
    for (const cleanup of cleanups.splice(0)) cleanup();
  };
  for (const source of sources) {
    if (!source) continue;
    if (source.aborted) {
      controller.abort(source.reason);
      break;
    }
    const onAbort = () => {
      controller.abort(source.reason);
      dispose();
    };
    source.addEventListener('abort', onAbort, { once: true });
    cleanups.push(() => source.removeEventListener('abort', onAbort));
  }
  if (controller.signal.aborted) dispose();
  return { signal: controller.signal, dispose };
}

/**
 * Cancels many operations from a few long-lived signals (a job's, the client's cancel-all) with
 * at most one listener per source signal, however many operations are waiting on it. Linking one
 * listener per operation instead trips Node's MaxListenersExceededWarning once more than 10 calls
 * are queued on the same job signal.
 */
export class AbortFanout {
  private readonly targets = new Map<AbortSignal, { controllers: Set<AbortController>; onAbort: () => void }>();

  /**
   * Aborts `target` (with the source's reason) as soon as any of `sources` aborts. Returns the
   * function that detaches it again; a source's listener is removed with its last target.
   */
  link(target: AbortController, sources: readonly (AbortSignal | undefined)[]): () => void {
    const attached: AbortSignal[] = [];
    for (const source of sources) {
      if (!source) continue;
      if (source.aborted) {
        target.abort(source.reason);
        break;
      }
      let entry = this.targets.get(source);
      if (!entry) {
        const controllers = new Set<AbortController>();
        const onAbort = () => {
          this.targets.delete(source);
          for (const controller of controllers) controller.abort(source.reason);
          controllers.clear();
        };
        entry = { controllers, onAbort };
        this.targets.set(source, entry);
        source.addEventListener('abort', onAbort, { once: true });
      }
      entry.controllers.add(target);
      attached.push(source);
    }
    const detach = () => {
      for (const source of attached.splice(0)) {
        const entry = this.targets.get(source);
        if (!entry) continue;
        entry.controllers.delete(target);
        if (entry.controllers.size === 0) {
          this.targets.delete(source);
          source.removeEventListener('abort', entry.onAbort);
        }
      }
    };
    if (target.signal.aborted) detach();
    return detach;
  }
}

/** Settles like `promise`, but rejects with the signal's reason as soon as it aborts. */
export function raceAbort<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
