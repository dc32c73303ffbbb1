/**
 * What the Neurolens store keeps, as the application sees it (scan metadata, probes) and as rows
 * of the IndexedDB object stores (see db.ts for the schema).
 */
import type { CorpusDocument } from '../activations/corpus.ts';
import type { NeuronSimulationResults, ScoredExplanation } from '../explain/explanation-types.ts';
import type { ExplanationScores } from '../explain/pipeline.ts';
import type { ChatResponse } from '../llm/types.ts';
import type { CompactNeuronRecord } from './compact-record.ts';
import type { IndexArray } from './excerpt-table.ts';

export type ScanStatus = 'running' | 'paused' | 'done' | 'failed' | 'imported';
export const SCAN_STATUSES: readonly ScanStatus[] = ['running', 'paused', 'done', 'failed', 'imported'];

/** The model a scan ran on: a label to show and the shapes that matter to the data. */
export interface ScanModelInfo {
  label: string;
  nLayer?: number;
  dModel?: number;
  dMlp?: number;
  nCtx?: number;
  vocabSize?: number;
}

export interface ScanCorpusInfo {
  name: string;
  /** Identifies the exact excerpts (e.g. scan.ts' checkpoint fingerprint); '' when unknown. */
  fingerprint: string;
}

/**
 * What a scan needs to be run (or resumed) again in this browser: its corpus and run settings.
 * Kept in its own object store (it can be megabytes) and never put in bundles; imported scans
 * have none.
 */
export interface ScanInputs {
  documents: CorpusDocument[];
  randomSampleSize?: number;
  batchSize?: number;
  maxExcerpts?: number;
}

export interface ScanCoverage {
  excerptsDone: number;
  excerptsTotal: number;
  /** The scan (in the browser that made it) whose excerpts these are. */
  fromScan?: string;
}

export interface ScanMeta {
  id: string;
  name: string;
  model: ScanModelInfo;
  corpus: ScanCorpusInfo;
  layers: number[];
  topK: number;
  seed: number;
  /** Excerpts the scan covers (or will cover when done). */
  excerptCount: number;
  status: ScanStatus;
  /** Fraction done, 0 to 1. */
  progress: number;
  /** Why a 'failed' scan failed. */
  error?: string;
  /** Milliseconds since the epoch. */
  createdAt: number;
  updatedAt: number;
  /** Approximate bytes of the rows stored for this scan, the scan's own row aside (see approximate-size.ts). */
  bytes: number;
  /**
   * Records built from part of the corpus (a paused scan's excerpts so far): how many excerpts
   * they cover of how many, and the scan they came from. Absent when they cover the whole corpus.
   */
  coverage?: ScanCoverage;
  /** The scan's inputs: filled in by getScan only (listScans leaves them out; they can be large). */
  inputs?: ScanInputs;
}

/** What createScan needs; the store fills in the id (unless given), times, status, progress and bytes. */
export type ScanInit = Omit<ScanMeta, 'id' | 'createdAt' | 'updatedAt' | 'bytes' | 'status' | 'progress'> & {
  id?: string;
  status?: ScanStatus;
  progress?: number;
};

/** Fields updateScan may change. */
export type ScanPatch = Partial<
  Pick<ScanMeta, 'name' | 'status' | 'progress' | 'error' | 'excerptCount' | 'layers' | 'topK' | 'seed' | 'model' | 'corpus'>
>;

export interface NeuronKey {
  layer: number;
  neuron: number;
}

export interface ProbeLayer {
  layer: number;
  /** [tokens, dMlp] row-major post-GELU activations. */
  data: Float32Array;
}

/** A text run through the model with its captured activations, kept to look at again. */
export interface ProbeInput {
  /** The scan (model) it belongs to, if any; deleting the scan deletes its probes. */
  scanId?: string;
  text: string;
  /** The model's label (a bundled name, a hub id). */
  model?: string;
  tokens: string[];
  tokenIds?: number[];
  /** Each token's characters in `text` (UTF-16 offsets); `fragment` marks part of a character. */
  spans?: { start: number; end: number; fragment?: boolean }[];
  dMlp: number;
  layers: ProbeLayer[];
}

export interface Probe extends ProbeInput {
  id: string;
  createdAt: number;
}

export interface StoredExplanation extends NeuronKey {
  explanation: string;
  /** Position among the neuron's explanations (export order). */
  order: number;
  /** Where it came from: an explainer model name, 'imported', … */
  source?: string;
  createdAt: number;
  /**
   * Its headline score (correlation on all scored excerpts; explanation-score.ts), kept by the
   * store once it has been scored; null when the score is undefined, absent when never scored.
   */
  score?: number | null;
}

// ---- rows of the object stores -------------------------------------------------------------

export interface NeuronRecordRow extends CompactNeuronRecord {
  scanId: string;
}

/** One excerpt of a scan, referred to by its records (see stored-excerpts.ts). */
export interface ExcerptRow {
  scanId: string;
  index: number;
  /** excerptHash of its token strings. */
  hash: number;
  /** Ids in the scan's vocabulary (the narrowest of Uint8Array, Uint16Array, Uint32Array that holds them). */
  tokenIds: IndexArray;
}

/** Token strings of a scan with ids firstId, firstId + 1, … */
export interface VocabularyRow {
  scanId: string;
  firstId: number;
  tokens: string[];
}

export interface ScanInputsRow {
  scanId: string;
  inputs: ScanInputs;
}

export interface CheckpointRow {
  scanId: string;
  fingerprint: string;
  excerptsDone: number;
  state: ArrayBuffer[];
  savedAt: number;
}

export interface ExplanationRow extends StoredExplanation {
  scanId: string;
}

/** One scored explanation in the paper's format, with the rest of its NeuronSimulationResults. */
export interface SimulationRow extends NeuronKey {
  scanId: string;
  explanation: string;
  scoredExplanation: ScoredExplanation;
  /** The NeuronSimulationResults it came in, less `scored_explanations` (kept for a lossless export). */
  resultsFields: Omit<NeuronSimulationResults, 'scored_explanations'>;
}

export interface ScoreRow extends NeuronKey {
  scanId: string;
  explanation: string;
  scores: ExplanationScores;
}

export interface LlmCacheRow {
  key: string;
  response: ChatResponse;
  storedAt: number;
}

export interface JobStepRow {
  jobId: string;
  key: string;
  /** The step's value as JSON text. */
  json: string;
}
