/**
 * The one place that knows which onnxruntime build is in use. Everything else talks to an
 * `OrtRuntime`, so the same capture code runs on onnxruntime-web (WebGPU or WASM, browser and
 * Node) and onnxruntime-node (native CPU, much faster in Node).
 */
import type { InferenceSession, Tensor } from 'onnxruntime-common';

export type OrtModule = {
  InferenceSession: typeof InferenceSession;
  Tensor: typeof Tensor;
  env: { wasm?: { numThreads?: number; wasmPaths?: unknown; proxy?: boolean }; logLevel?: string };
};

/** Which engine actually runs the graph; shown to users so they know what they measured. */
export type BackendName = 'webgpu' | 'wasm' | 'onnxruntime-node';

export interface OrtRuntime {
  readonly ort: OrtModule;
  /** Execution providers to try, best first (e.g. ['webgpu', 'wasm']). */
  readonly executionProviders: BackendName[];
  /** Creates a session on the first provider that works and says which one ran. */
  createSession(model: Uint8Array, options?: SessionCreateOptions): Promise<{ session: InferenceSession; backend: BackendName }>;
}

export interface SessionCreateOptions {
  /** External-data files of a large model, by the path the graph refers to. */
  externalData?: { path: string; data: Uint8Array }[];
}

/** Builds a runtime over an imported onnxruntime module. */
export function makeOrtRuntime(ort: OrtModule, executionProviders: BackendName[]): OrtRuntime {
  return {
    ort,
    executionProviders,
    async createSession(model, options = {}) {
      const errors: string[] = [];
      for (const backend of executionProviders) {
        const ep = backend === 'onnxruntime-node' ? 'cpu' : backend;
        try {
          const sessionOptions: InferenceSession.SessionOptions = {
            executionProviders: [ep],
            graphOptimizationLevel: 'all',
          };
          if (options.externalData?.length) {
            (sessionOptions as { externalData?: unknown }).externalData = options.externalData;
          }
          const session = await ort.InferenceSession.create(model, sessionOptions);
          return { session, backend };
        } catch (err) {
          errors.push(`${backend}: ${(err as Error).message ?? String(err)}`);
        }
      }
      throw new Error(`could not start the model on any backend (${errors.join('; ')})`);
    },
  };
}
