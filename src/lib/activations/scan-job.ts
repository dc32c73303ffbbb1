/**
 * A whole corpus scan as one resumable job, the same in the browser worker and the CLI:
 * 1. scan: run the model over every excerpt (runScan, checkpointed);
 * 2. sample: one more pass over just the sampled excerpts the records need, each run once for all
 *    neurons, their rows written to a spill (sample-rows.ts);
 * 3. records: build every neuron's NeuronRecord, a chunk of neurons at a time, and hand them over.
 * So every record is built with at most one extra forward pass per sampled excerpt, whatever the
 * number of neurons, and memory stays bounded (the rows are in storage).
 *
 * What differs between the browser and Node is passed in as adapters: where checkpoints live
 * (IndexedDB, a file), where the rows spill (the origin private file system, a file), progress
 * reporting, and where the records go. Re-running the same job after a crash or a reload resumes
 * from the checkpoint; the sampled rows and records are rebuilt from the final state, so the
 * result equals an uninterrupted run.
 *
 * A shard (`settings.shard`) scans its part of the excerpts and stops after step 2, keeping in its
 * spill the rows a merge with the other shards can need (see merge-shards.ts).
 */
import type { CorpusExcerpt } from './corpus.ts';
import type { NeuronRecord } from './records.ts';
import type { RowSpill } from './row-spill.ts';
import { buildRecordsInChunks, collectSampleRows, SampleRowPlan, SampleRows } from './sample-rows.ts';
import { SCAN_DEFAULTS } from './scan-defaults.ts';
import { runScan, ScanAbortedError, type ActivationSource, type ScanCheckpointStore, type ScanProgress, type ShardSpec } from './scan.ts';
import type { ScanStatistics, ScanStatisticsConfig } from './scan-statistics.ts';

export interface ScanJobSettings extends Omit<ScanStatisticsConfig, 'layers' | 'dMlp'> {
  layers: number[];
  dMlp: number;
  batchSize?: number;
  checkpointEvery?: number;
  checkpointMinSeconds?: number;
  /** Scan one shard of the excerpts, and keep its rows for a merge instead of building records. */
  shard?: ShardSpec;
}

export type ScanJobPhase = 'scanning' | 'sampling' | 'building-records';

export interface ScanJobProgress extends ScanProgress {
  phase: ScanJobPhase;
  /** Sampled excerpts run again so far, and in all (phase 'sampling' on). */
  sampledDone: number;
  sampledTotal: number;
  recordsDone: number;
  recordsTotal: number;
}

/** What differs between where the job runs. */
export interface ScanJobAdapters {
  /** Where checkpoints live; without one an interrupted job starts over. */
  checkpoints?: ScanCheckpointStore;
  /** Opens the storage the sampled excerpts' rows spill to (a fresh, empty one each time). */
  openSpill: () => RowSpill | Promise<RowSpill>;
  onProgress?: (progress: ScanJobProgress) => void;
}

export interface ScanJobOptions {
  /** The corpus cut into excerpts (corpus.ts); excerpt i is index i in the records. */
  excerpts: readonly CorpusExcerpt[];
  settings: ScanJobSettings;
  source: ActivationSource;
  adapters: ScanJobAdapters;
  signal?: AbortSignal;
  /** Receives the records a chunk at a time, in neuron order (not called for a shard). */
  saveRecords?: (records: NeuronRecord[]) => Promise<void>;
}

export interface ScanJobSummary {
  excerpts: number;
  tokens: number;
  neurons: number;
  /** Excerpts that came from a checkpoint rather than this run. */
  resumedFrom: number;
  /** Tokens scanned in this run (not restored from a checkpoint). */
  tokensScanned: number;
  seconds: number;
  scanSeconds: number;
  /** Excerpts run through the model in this run, all passes together (scan, shift, samples). */
  forwardPasses: number;
  /** Of which the sampled excerpts run again for the records. */
  sampledExcerpts: number;
  records: number;
}

export interface ScanJobResult {
  summary: ScanJobSummary;
  stats: ScanStatistics;
  /** A shard's sampled rows (plan and open spill) for merging; null once records were built (the spill is then deleted). */
  shardRows: { plan: SampleRowPlan; spill: RowSpill } | null;
}

export async function runScanJob(options: ScanJobOptions): Promise<ScanJobResult> {
  const { excerpts, settings, source, adapters, signal, saveRecords } = options;
  const { batchSize = SCAN_DEFAULTS.batchSize, checkpointEvery, checkpointMinSeconds, shard, ...statistics } = settings;
  const started = performance.now();
  const recordsTotal = settings.layers.length * settings.dMlp;
  const ids = excerpts.map((e) => e.tokenIds);
  let progress: ScanJobProgress | null = null;
  const report = (patch: Partial<ScanJobProgress>) => {
    if (!progress) return;
    progress = { ...progress, ...patch };
    adapters.onProgress?.(progress);
  };
  const scan = await runScan({
    ...statistics,
    source,
    excerpts: ids,
    batchSize,
    checkpoint: adapters.checkpoints,
    checkpointEvery,
    checkpointMinSeconds,
    shard,
    signal,
    onProgress: (p) => {
      progress = { ...p, phase: 'scanning', sampledDone: 0, sampledTotal: 0, recordsDone: 0, recordsTotal: saveRecords ? recordsTotal : 0 };
      adapters.onProgress?.(progress);
    },
  });
  const scanSeconds = (performance.now() - started) / 1000;
  const { stats } = scan;
  const stopped = (error: unknown): never => {
    if (error instanceof ScanAbortedError) throw new ScanAbortedError(stats.excerptCount, adapters.checkpoints !== undefined, error.message);
    throw error;
  };

  const plan = SampleRowPlan.build(stats, saveRecords ? 'records' : 'merge');
  const spill = await adapters.openSpill();
  let keepSpill = false;
  try {
    report({ phase: 'sampling', sampledTotal: plan.excerpts.length });
    const sampled = await collectSampleRows({
      stats,
      plan,
      source,
      tokenIds: (e) => ids[e],
      spill,
      batchSize,
      signal,
      onProgress: (done) => report({ sampledDone: done }),
    }).catch(stopped);
    let records = 0;
    if (saveRecords) {
      report({ phase: 'building-records' });
      records = await buildRecordsInChunks({
        stats,
        rows: new SampleRows([{ plan, spill }]),
        tokensOf: (e) => excerpts[e].tokens,
        saveRecords,
        signal,
        onProgress: (done) => report({ recordsDone: done }),
      }).catch(stopped);
    } else {
      keepSpill = true;
    }
    const tokens = scan.scanned.reduce((sum, e) => sum + ids[e].length, 0);
    return {
      stats,
      shardRows: keepSpill ? { plan, spill } : null,
      summary: {
        excerpts: scan.scanned.length,
        tokens,
        neurons: stats.neuronCount,
        resumedFrom: scan.resumedFrom,
        tokensScanned: scan.scanned.slice(scan.resumedFrom).reduce((sum, e) => sum + ids[e].length, 0),
        seconds: (performance.now() - started) / 1000,
        scanSeconds,
        forwardPasses: scan.scanned.length - scan.resumedFrom + scan.extraExcerptsRun + sampled,
        sampledExcerpts: sampled,
        records,
      },
    };
  } finally {
    if (!keepSpill) await spill.close(true);
  }
}
