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
 *
 * A paused job's checkpoint can also give records now (`runPartialRecords`): steps 2 and 3 on the
 * statistics of the excerpts scanned so far, the same code as at the job's end. The checkpoint is
 * only read, so the job resumes as before.
 */
import type { CorpusExcerpt } from './corpus.ts';
import type { NeuronRecord } from './records.ts';
import type { RowSpill } from './row-spill.ts';
import { buildRecordsInChunks, collectSampleRows, SampleRowPlan, SampleRows } from './sample-rows.ts';
import { SCAN_DEFAULTS } from './scan-defaults.ts';
import {
  planScan,
  restoreCheckpoint,
  runScan,
  ScanAbortedError,
  ScanError,
  type ActivationSource,
  type ScanCheckpointStore,
  type ScanProgress,
  type ShardSpec,
} from './scan.ts';
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
  const { sampled, records, shardRows } = await sampleAndBuild({ stats, excerpts, source, adapters, batchSize, signal, saveRecords, report });
  const tokens = scan.scanned.reduce((sum, e) => sum + ids[e].length, 0);
  return {
    stats,
    shardRows,
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
}

/**
 * Steps 2 and 3 on a scan's statistics: the one extra pass over the sampled excerpts, then the
 * records (or, without `saveRecords`, the rows a merge needs, kept in their spill).
 */
async function sampleAndBuild(options: {
  stats: ScanStatistics;
  excerpts: readonly CorpusExcerpt[];
  source: ActivationSource;
  adapters: Pick<ScanJobAdapters, 'openSpill' | 'checkpoints'>;
  batchSize: number;
  signal?: AbortSignal;
  saveRecords?: (records: NeuronRecord[]) => Promise<void>;
  report: (patch: Partial<ScanJobProgress>) => void;
}): Promise<{ sampled: number; records: number; shardRows: ScanJobResult['shardRows'] }> {
  const { stats, excerpts, source, adapters, batchSize, signal, saveRecords, report } = options;
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
      tokenIds: (e) => excerpts[e].tokenIds,
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
    return { sampled, records, shardRows: keepSpill ? { plan, spill } : null };
  } finally {
    if (!keepSpill) await spill.close(true);
  }
}

export interface PartialRecordsOptions {
  /** The job's excerpts and settings, as given to runScanJob (so the checkpoint is recognised). */
  excerpts: readonly CorpusExcerpt[];
  settings: Omit<ScanJobSettings, 'shard' | 'checkpointEvery' | 'checkpointMinSeconds'>;
  source: ActivationSource;
  adapters: Required<Pick<ScanJobAdapters, 'checkpoints'>> & Omit<ScanJobAdapters, 'checkpoints'>;
  signal?: AbortSignal;
  saveRecords: (records: NeuronRecord[]) => Promise<void>;
}

export interface PartialRecordsResult {
  /** Excerpts the records cover (those scanned before the checkpoint), of `excerptsTotal`. */
  excerptsDone: number;
  excerptsTotal: number;
  records: number;
  sampledExcerpts: number;
}

/**
 * Records from a paused job's checkpoint: every neuron's record over the excerpts scanned so far
 * (steps 2 and 3 of the job, run on the checkpoint's statistics). The checkpoint stays as it was.
 */
export async function runPartialRecords(options: PartialRecordsOptions): Promise<PartialRecordsResult> {
  const { excerpts, settings, source, adapters, signal, saveRecords } = options;
  const { batchSize = SCAN_DEFAULTS.batchSize, ...statistics } = settings;
  const plan = planScan({ ...statistics, excerpts: excerpts.map((e) => e.tokenIds) });
  const saved = await adapters.checkpoints.load();
  if (!saved || saved.excerptsDone === 0) throw new ScanError('the scan has no saved progress yet: let it run a little before browsing it');
  const stats = restoreCheckpoint(saved, plan);
  const excerptsTotal = plan.scanned.length;
  let progress: ScanJobProgress = {
    phase: 'sampling',
    excerptsDone: stats.excerptCount,
    excerptsTotal,
    tokensDone: stats.tokenTotal,
    tokensTotal: plan.scanned.reduce((sum, e) => sum + excerpts[e].tokenIds.length, 0),
    tokensPerSecond: 0,
    etaSeconds: null,
    sampledDone: 0,
    sampledTotal: 0,
    recordsDone: 0,
    recordsTotal: settings.layers.length * settings.dMlp,
  };
  const report = (patch: Partial<ScanJobProgress>) => {
    progress = { ...progress, ...patch };
    adapters.onProgress?.(progress);
  };
  const { sampled, records } = await sampleAndBuild({ stats, excerpts, source, adapters, batchSize, signal, saveRecords, report });
  return { excerptsDone: stats.excerptCount, excerptsTotal, records, sampledExcerpts: sampled };
}
