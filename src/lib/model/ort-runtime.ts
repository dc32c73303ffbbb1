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

/** A model for createSession: its bytes, or (onnxruntime-node) the path of a file holding it. */
export type ModelInput = Uint8Array | string;

/** A model written to a temporary file (see OrtRuntime.stageModel). */
export interface StagedModel {
  /** The file, for createSession. */
  readonly path: string;
  /** Removes the file (and its folder); safe to call more than once. */
  dispose(): Promise<void>;
}

export interface OrtRuntime {
  readonly ort: OrtModule;
  /** Execution providers to try, best first (e.g. ['webgpu', 'wasm']). */
  readonly executionProviders: BackendName[];
  /** Creates a session on the first provider that works and says which one ran. */
  createSession(model: ModelInput, options?: SessionCreateOptions): Promise<{ session: InferenceSession; backend: BackendName }>;
  /**
   * Where onnxruntime can read model files itself (onnxruntime-node): writes the model and its
   * external-data files to a temporary folder. The caller can then drop its bytes before the
   * session is created, instead of holding them while onnxruntime builds its own copy (for GPT-2
   * small, 0.5 GB less at the memory peak). Absent elsewhere.
   */
  readonly stageModel?: (model: Uint8Array, externalData?: readonly { path: string; data: Uint8Array }[]) => Promise<StagedModel>;
  /**
   * Frees memory that is no longer referenced now (a full garbage collection), so large buffers
   * just let go of are gone before onnxruntime allocates: its allocations do not prompt the
   * JavaScript engine to collect. Absent where that is not possible.
   */
  readonly reclaimMemory?: () => void;
}

export interface SessionCreateOptions {
  /** External-data files of a large model, by the path the graph refers to. */
  externalData?: { path: string; data: Uint8Array }[];
}

/** Session settings that trade speed for memory; see makeOrtRuntime. */
export interface RuntimeSessionSettings {
  /** onnxruntime's CPU memory arena (default true: onnxruntime's own default). */
  enableCpuMemArena?: boolean;
  /** Memory pattern planning for repeated input shapes (default true). */
  enableMemPattern?: boolean;
  /**
   * Whether idle intra-op threads spin waiting for work (default: onnxruntime's, true). Off keeps
   * them from competing for the cores with the JavaScript thread between runs.
   */
  allowSpinning?: boolean;
}

export interface RuntimeExtras {
  stageModel?: OrtRuntime['stageModel'];
  reclaimMemory?: OrtRuntime['reclaimMemory'];
  session?: RuntimeSessionSettings;
}

/** Builds a runtime over an imported onnxruntime module. */
export function makeOrtRuntime(ort: OrtModule, executionProviders: BackendName[], extras: RuntimeExtras = {}): OrtRuntime {
  const settings = extras.session ?? {};
  return {
    ort,
    executionProviders,
    stageModel: extras.stageModel,
    reclaimMemory: extras.reclaimMemory,
    async createSession(model, options = {}) {
      const errors: string[] = [];
      for (const backend of executionProviders) {
        const ep = backend === 'onnxruntime-node' ? 'cpu' : backend;
        try {
          const sessionOptions: InferenceSession.SessionOptions = {
            executionProviders: [ep],
            graphOptimizationLevel: 'all',
            // Errors only: onnxruntime's warnings (which nodes run on the CPU) mean nothing to users.
            logSeverityLevel: 3,
          };
          if (settings.enableCpuMemArena !== undefined) sessionOptions.enableCpuMemArena = settings.enableCpuMemArena;
          if (settings.enableMemPattern !== undefined) sessionOptions.enableMemPattern = settings.enableMemPattern;
          if (settings.allowSpinning !== undefined) {
            sessionOptions.extra = { session: { intra_op: { allow_spinning: settings.allowSpinning ? '1' : '0' } } };
          }
          if (options.externalData?.length) {
            (sessionOptions as { externalData?: unknown }).externalData = options.externalData;
          }
          const session =
            typeof model === 'string' ? await ort.InferenceSession.create(model, sessionOptions) : await ort.InferenceSession.create(model, sessionOptions);
          return { session, backend };
        } catch (err) {
          errors.push(`${backend}: ${(err as Error).message ?? String(err)}`);
        }
      }
      throw new Error(`could not start the model on any backend (${errors.join('; ')})`);
    },
  };
}
