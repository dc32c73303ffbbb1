/**
 * Messages between the UI thread and the model worker, typed end to end: `WorkerMethods` maps each
 * method to its parameters, its result and the progress it reports. The client (model-client.ts)
 * and the worker's handler table (model-worker.ts) are both checked against it. Activations travel
 * as transferable buffers.
 */
import type { Token } from '../lib/model/tokenizer.ts';
import type { BackendName } from '../lib/model/ort-runtime.ts';
import type { ModelDtype, ModelDtypeChoice } from '../lib/model/model-variants.ts';
import type { NeuronRecord } from '../lib/activations/records.ts';
import type { DiffStats } from '../lib/activations/compare-record.ts';
import type { CorpusDocument } from '../lib/activations/corpus.ts';
import type { AblationOptions, AblationResult } from '../lib/causal/ablation.ts';
import type { AblationScore, AblationScoreInput } from '../lib/explain/ablation-score.ts';
import type { NeuronEdit } from '../lib/model/neuron-edits.ts';
import type { NeuronWeightViews } from '../lib/model/weight-views.ts';

export type ModelRequest =
  | { kind: 'bundled'; name: string }
  | { kind: 'hub'; repoId: string; dtype: ModelDtypeChoice; endpoint?: string; revision?: string; token?: string }
  | { kind: 'files'; files: File[]; dtype: ModelDtypeChoice };

export type BackendChoice = 'auto' | 'webgpu' | 'wasm';

export interface PlantedNeuronInfo {
  layer: number;
  neuron: number;
  id: string;
  description: string;
}

export interface ModelSummary {
  label: string;
  onnxPath: string;
  /** The variant's precision, read from the graph. */
  dtype: ModelDtype;
  /** Why the variant loaded is not the one asked for, when it is not. */
  notice?: string;
  nLayer: number;
  dModel: number;
  dMlp: number;
  nCtx: number;
  vocabSize: number;
  backend: BackendName;
  /** WASM threads onnxruntime runs with (1 when the page is not cross-origin isolated). */
  wasmThreads: number;
  loadMs: number;
  planted: PlantedNeuronInfo[];
}

export interface DownloadProgress {
  file: string;
  loaded: number;
  total: number | null;
}

export interface CaptureReply {
  tokens: Token[];
  backend: BackendName;
  windows: number;
  dMlp: number;
  /** One buffer per layer, [tokens, dMlp] row-major. */
  layers: { layer: number; data: Float32Array }[];
  runMs: number;
}

export interface ScanProgressInfo {
  /** scanning → sampling (the sampled excerpts run once more for the records) → building-records. */
  phase: 'preparing' | 'scanning' | 'sampling' | 'building-records';
  excerptsDone: number;
  excerptsTotal: number;
  tokensPerSecond: number;
  etaSeconds: number | null;
  sampledDone: number;
  sampledTotal: number;
  recordsDone: number;
  recordsTotal: number;
}

export interface ScanSummary {
  scanId: string;
  excerpts: number;
  tokens: number;
  neurons: number;
  resumedFrom: number;
  seconds: number;
  /** Excerpts run through the model by this run, all passes together (see scan-job.ts). */
  forwardPasses: number;
}

/** The id of the dataset that holds a paused scan's records so far. */
export const partialDatasetId = (scanId: string): string => `${scanId}-so-far`;

/** Records built from a paused scan's excerpts so far, stored as dataset `datasetId`. */
export interface PartialDatasetSummary {
  datasetId: string;
  excerptsDone: number;
  excerptsTotal: number;
  records: number;
  sampledExcerpts: number;
}

/**
 * For benchmarks: the model alone over a corpus's excerpts, as a scan's source runs it (same
 * excerpts, layers and batches), its outputs discarded; what a scan cannot go below.
 */
export interface ForwardTimingRequest {
  documents: CorpusDocument[];
  maxExcerpts?: number;
  layers?: number[];
  batchSize?: number;
}

export interface ForwardTiming {
  excerpts: number;
  tokens: number;
  seconds: number;
  backend: BackendName;
}

/** How far a record's stored activations are from the loaded model's own (one GELU variant). */
export interface CompareReply {
  gelu: 'tanh' | 'sigmoid';
  compared: number;
  skipped: number;
  unmappedTokens: number;
  overall: DiffStats | null;
}

/** Every request the worker answers: its parameters, its result, and the progress it reports. */
export interface WorkerMethods {
  /** `appRoot`: the app's root URL, where bundled models and onnxruntime's files are served. */
  load: { params: { model: ModelRequest; backend: BackendChoice; appRoot: string }; result: ModelSummary; progress: DownloadProgress };
  capture: { params: { text: string; windowed: boolean }; result: CaptureReply; progress: never };
  /** Runs (or resumes) a scan already created in the store; resolves when it is done. */
  scan: { params: { scanId: string }; result: ScanSummary; progress: ScanProgressInfo };
  /** Stops a running scan, or the building of records from a paused one (by the dataset id partialDataset returned or will return). */
  scanStop: { params: { scanId: string; reason: 'pause' | 'cancel' }; result: void; progress: never };
  /** Builds the records of a paused scan's excerpts so far into a dataset of their own (scan-in-worker.ts). */
  partialDataset: { params: { scanId: string }; result: PartialDatasetSummary; progress: ScanProgressInfo };
  /** Re-runs a record's excerpts through the loaded model with one GELU variant. */
  compare: { params: { record: NeuronRecord; gelu: 'tanh' | 'sigmoid' }; result: CompareReply; progress: never };
  /** What editing neurons (zero, mean, steer) does to the next-token predictions on a text. */
  ablate: { params: { text: string; edits: NeuronEdit[]; options?: AblationOptions }; result: AblationResult; progress: never };
  /** A neuron's direct-path views from the weights: input tokens, output tokens, related neurons. */
  weights: { params: { layer: number; neuron: number; top?: number }; result: NeuronWeightViews; progress: never };
  /** The ablation score of an explanation's simulations (explain/ablation-score.ts). */
  ablationScore: { params: AblationScoreInput; result: AblationScore; progress: never };
  /** For benchmarks: the model alone over a corpus's excerpts, as a scan runs it. */
  timeForward: { params: ForwardTimingRequest; result: ForwardTiming; progress: never };
}

export type WorkerMethod = keyof WorkerMethods;
export type ParamsOf<M extends WorkerMethod> = WorkerMethods[M]['params'];
export type ResultOf<M extends WorkerMethod> = WorkerMethods[M]['result'];
export type ProgressOf<M extends WorkerMethod> = WorkerMethods[M]['progress'];

/** A call, or the cancellation of an earlier call (its AbortSignal fires in the worker). */
export type WorkerRequest =
  | { [M in WorkerMethod]: { id: number; method: M; params: ParamsOf<M> } }[WorkerMethod]
  | { id: number; method: 'cancel' };

export type WorkerReply =
  | { id: number; kind: 'progress'; progress: unknown }
  | { id: number; kind: 'result'; result: unknown }
  | { id: number; kind: 'error'; message: string; errorName: string };
