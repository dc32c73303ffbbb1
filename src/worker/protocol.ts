/** Messages between the UI thread and the model worker. Activations travel as transferable buffers. */
import type { Token } from '../lib/model/tokenizer.ts';
import type { BackendName } from '../lib/model/ort-runtime.ts';
import type { ModelDtype } from '../lib/model/model-source.ts';
import type { NeuronRecord } from '../lib/activations/records.ts';
import type { DiffStats } from '../lib/activations/compare-record.ts';
import type { CorpusDocument } from '../lib/activations/corpus.ts';

export type ModelRequest =
  | { kind: 'bundled'; name: string }
  | { kind: 'hub'; repoId: string; dtype: ModelDtype; endpoint?: string }
  | { kind: 'files'; files: File[]; dtype: ModelDtype };

export interface PlantedNeuronInfo {
  layer: number;
  neuron: number;
  id: string;
  description: string;
}

export interface ModelSummary {
  label: string;
  onnxPath: string;
  nLayer: number;
  dModel: number;
  dMlp: number;
  nCtx: number;
  vocabSize: number;
  backend: BackendName;
  loadMs: number;
  planted: PlantedNeuronInfo[];
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

export interface ScanRequest {
  /** The scan in the store: new ones are created by the UI first, so a reload can resume them. */
  scanId: string;
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

export type WorkerRequest =
  | { id: number; type: 'load'; model: ModelRequest; backend: 'auto' | 'webgpu' | 'wasm' }
  | { id: number; type: 'capture'; text: string; windowed: boolean }
  | { id: number; type: 'scan'; scan: ScanRequest }
  | { id: number; type: 'scan-stop'; scanId: string; reason: 'pause' | 'cancel' }
  | { id: number; type: 'compare'; record: NeuronRecord; gelu: 'tanh' | 'sigmoid' }
  | { id: number; type: 'time-forward'; forward: ForwardTimingRequest };

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

export type WorkerReply =
  | { id: number; type: 'progress'; file: string; loaded: number; total: number | null }
  | { id: number; type: 'loaded'; summary: ModelSummary }
  | { id: number; type: 'captured'; result: CaptureReply }
  | { id: number; type: 'scan-progress'; progress: ScanProgressInfo }
  | { id: number; type: 'scan-done'; summary: ScanSummary }
  | { id: number; type: 'stopped' }
  | { id: number; type: 'compared'; result: CompareReply }
  | { id: number; type: 'forward-timed'; timing: ForwardTiming }
  | { id: number; type: 'error'; message: string; errorName: string };
