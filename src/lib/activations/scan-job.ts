/**
 * A whole corpus scan as one resumable job: run the model over every excerpt (runScan, with
 * checkpoints), then build the NeuronRecords and mean-token tables in chunks and hand them to
 * `saveRecords`. Re-running the same job after a crash or reload resumes from the checkpoint;
 * the records are rebuilt from the final state, so the result equals an uninterrupted run.
 */
import type { CorpusExcerpt } from './corpus.ts';
import type { NeuronRecord } from './records.ts';
import { buildNeuronRecords, runScan, type ActivationSource, type ScanCheckpointStore, type ScanProgress } from './scan.ts';
import type { MeanToken } from './neuron-stats.ts';

export interface ScanJobSettings {
  layers: number[];
  dMlp: number;
  topK?: number;
  randomSampleSize?: number;
  seed?: number;
  batchSize?: number;
  checkpointEvery?: number;
}

export interface ScanJobProgress extends ScanProgress {
  phase: 'scanning' | 'building-records';
  recordsDone: number;
  recordsTotal: number;
}

export interface NeuronTables {
  layer: number;
  neuron: number;
  meanTokens: MeanToken[];
}

export interface ScanJobOptions {
  excerpts: readonly CorpusExcerpt[];
  settings: ScanJobSettings;
  source: ActivationSource;
  checkpoint?: ScanCheckpointStore;
  signal?: AbortSignal;
  onProgress?: (p: ScanJobProgress) => void;
  /** Receives records in chunks, in neuron order. */
  saveRecords: (records: NeuronRecord[], tables: NeuronTables[]) => Promise<void>;
  /** Neurons per record-building chunk (bounded memory: each needs its resampled rows). */
  chunkSize?: number;
}

export interface ScanJobSummary {
  excerpts: number;
  tokens: number;
  neurons: number;
  resumedFrom: number;
  seconds: number;
}

export async function runScanJob(options: ScanJobOptions): Promise<ScanJobSummary> {
  const { excerpts, settings, source, signal, onProgress, saveRecords, chunkSize = 512 } = options;
  const started = performance.now();
  const ids = excerpts.map((e) => e.tokenIds);
  const recordsTotal = settings.layers.length * settings.dMlp;
  const result = await runScan({
    source,
    excerpts: ids,
    layers: settings.layers,
    dMlp: settings.dMlp,
    topK: settings.topK,
    randomSampleSize: settings.randomSampleSize,
    seed: settings.seed,
    batchSize: settings.batchSize,
    checkpoint: options.checkpoint,
    checkpointEvery: settings.checkpointEvery,
    signal,
    onProgress: (p) => onProgress?.({ ...p, phase: 'scanning', recordsDone: 0, recordsTotal }),
  });
  const neurons = settings.layers.flatMap((layer) => Array.from({ length: settings.dMlp }, (_, neuron) => ({ layer, neuron })));
  const tokensTotal = ids.reduce((n, e) => n + e.length, 0);
  for (let start = 0; start < neurons.length; start += chunkSize) {
    const chunk = neurons.slice(start, start + chunkSize);
    const records = await buildNeuronRecords({
      stats: result.stats,
      source,
      excerpts: ids,
      tokensOf: (i) => excerpts[i].tokens,
      neurons: chunk,
      batchSize: settings.batchSize,
      signal,
    });
    const tables = chunk.map(({ layer, neuron }) => ({
      layer,
      neuron,
      meanTokens: result.stats.topMeanTokens(result.stats.neuronIndex(layer, neuron)),
    }));
    await saveRecords(records, tables);
    onProgress?.({
      phase: 'building-records',
      excerptsDone: excerpts.length,
      excerptsTotal: excerpts.length,
      tokensDone: tokensTotal,
      tokensTotal,
      tokensPerSecond: 0,
      etaSeconds: null,
      recordsDone: Math.min(neurons.length, start + chunk.length),
      recordsTotal,
    });
  }
  return {
    excerpts: excerpts.length,
    tokens: tokensTotal,
    neurons: neurons.length,
    resumedFrom: result.resumedFrom,
    seconds: (performance.now() - started) / 1000,
  };
}
