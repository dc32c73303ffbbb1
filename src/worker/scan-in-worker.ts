/**
 * Runs a stored scan inside the model worker: the scan job (scan-job.ts) with the browser's
 * adapters: inputs in the store (IndexedDB), checkpoints and sampled rows in the origin private
 * file system (opfs-storage.ts), records saved into the store. Pausing or a reload leaves a
 * checkpoint; running the same scan id again resumes from it.
 *
 * A paused scan's records so far (`buildPartialDataset`) go to a dataset of their own, whose
 * `coverage` says how much of the corpus they cover; the paused scan keeps its checkpoint.
 */
import type { ActivationCapturer } from '../lib/model/capture.ts';
import { buildExcerpts } from '../lib/activations/corpus.ts';
import { runPartialRecords, runScanJob, type ScanJobProgress } from '../lib/activations/scan-job.ts';
import { createScanSource } from '../lib/activations/scan-source.ts';
import { coveragePercent } from '../lib/store/coverage.ts';
import type { NeurolensStore } from '../lib/store/neurolens-store.ts';
import { openScanCheckpoints, openScanRowSpill, removeOrphanScanFiles } from './opfs-storage.ts';
import { partialDatasetId, type PartialDatasetSummary, type ScanProgressInfo, type ScanSummary } from './protocol.ts';

/**
 * Every 64 excerpts, but at most once a minute: a reload then loses at most about a minute of
 * scanning, and saving a large state (180 MB for GPT-2 small) takes a small share of the time.
 * Pausing always saves.
 */
const CHECKPOINTS = { checkpointEvery: 64, checkpointMinSeconds: 60 };

export class ScanStoppedError extends Error {
  constructor(readonly reason: 'pause' | 'cancel') {
    super(reason === 'pause' ? 'scan paused; progress saved' : 'scan cancelled');
    this.name = 'ScanStoppedError';
  }
}

/** A stored scan, its excerpts and the job settings it runs with, checked against the loaded model. */
async function prepareScan(store: NeurolensStore, capturer: ActivationCapturer, scanId: string, onProgress: (p: ScanProgressInfo) => void, doing: string) {
  const scan = await store.getScan(scanId);
  if (!scan) throw new Error(`no scan ${scanId} in this browser's storage`);
  const inputs = scan.inputs;
  if (!inputs) throw new Error(`scan "${scan.name}" was imported and cannot be re-run here`);
  const model = capturer.model;
  if (scan.model.label !== model.label || scan.model.dMlp !== model.config.dMlp) {
    throw new Error(`scan "${scan.name}" was made with ${scan.model.label}; load that model to ${doing} (loaded: ${model.label})`);
  }
  onProgress({ phase: 'preparing', excerptsDone: 0, excerptsTotal: 0, tokensPerSecond: 0, etaSeconds: null, sampledDone: 0, sampledTotal: 0, recordsDone: 0, recordsTotal: 0 });
  const excerpts = buildExcerpts(inputs.documents, model.tokenizer, { maxExcerpts: inputs.maxExcerpts });
  if (excerpts.length === 0) throw new Error('the corpus gave no excerpts: it is empty or too short');
  const settings = { layers: scan.layers, dMlp: model.config.dMlp, topK: scan.topK, seed: scan.seed, randomSampleSize: inputs.randomSampleSize, batchSize: inputs.batchSize };
  return { scan, excerpts, settings, source: await createScanSource(capturer, scan.layers) };
}

export async function runStoredScan(
  store: NeurolensStore,
  capturer: ActivationCapturer,
  scanId: string,
  signal: AbortSignal,
  onProgress: (p: ScanProgressInfo) => void,
): Promise<ScanSummary> {
  const { excerpts, settings, source } = await prepareScan(store, capturer, scanId, onProgress, 'resume it');
  await store.updateScan(scanId, { status: 'running', excerptCount: excerpts.length });
  await removeOrphanScanFiles((await store.listScans()).map((s) => s.id));
  const checkpoints = await openScanCheckpoints(store, scanId);
  try {
    const { summary } = await runScanJob({
      excerpts,
      settings: { ...settings, ...CHECKPOINTS },
      source,
      adapters: {
        checkpoints,
        openSpill: () => openScanRowSpill(scanId),
        onProgress: (p) => {
          onProgress(p);
          // Scanning is most of the work; sampling and records share the last tenth.
          const after = (done: number, total: number) => done / Math.max(1, total);
          const fraction =
            p.phase === 'scanning'
              ? 0.9 * after(p.excerptsDone, p.excerptsTotal)
              : p.phase === 'sampling'
                ? 0.9 + 0.05 * after(p.sampledDone, p.sampledTotal)
                : 0.95 + 0.05 * after(p.recordsDone, p.recordsTotal);
          void store.updateScan(scanId, { progress: fraction }).catch(() => {});
        },
      },
      signal,
      saveRecords: (records) => store.putNeuronRecords(scanId, records, { encoding: 'float16' }),
    });
    await store.updateScan(scanId, { status: 'done', progress: 1 });
    await checkpoints.clear();
    return {
      scanId,
      excerpts: summary.excerpts,
      tokens: summary.tokens,
      neurons: summary.neurons,
      resumedFrom: summary.resumedFrom,
      seconds: summary.seconds,
      forwardPasses: summary.forwardPasses,
    };
  } catch (err) {
    if (signal.aborted) {
      const reason = signal.reason instanceof ScanStoppedError ? signal.reason.reason : 'pause';
      if (reason === 'cancel') {
        await store.deleteScan(scanId);
        await checkpoints.clear();
      } else await store.updateScan(scanId, { status: 'paused' });
      throw new ScanStoppedError(reason);
    }
    await store.updateScan(scanId, { status: 'failed', error: (err as Error).message }).catch(() => {});
    throw err;
  }
}

/**
 * Builds the records of a paused scan's excerpts so far into a dataset of their own (replacing an
 * earlier one of the same scan), with the scan job's own sampling and record steps. The dataset
 * shows as running while it is built, and is removed if building stops or fails.
 */
export async function buildPartialDataset(
  store: NeurolensStore,
  capturer: ActivationCapturer,
  scanId: string,
  signal: AbortSignal,
  onProgress: (p: ScanProgressInfo) => void,
): Promise<PartialDatasetSummary> {
  const { scan, excerpts, settings, source } = await prepareScan(store, capturer, scanId, onProgress, 'browse it');
  const checkpoints = await openScanCheckpoints(store, scanId);
  const saved = await checkpoints.load();
  if (!saved || saved.excerptsDone === 0) throw new Error(`scan "${scan.name}" has no saved progress yet: let it run a little before browsing it`);
  const datasetId = partialDatasetId(scanId);
  await store.deleteScan(datasetId);
  const coverage = { excerptsDone: saved.excerptsDone, excerptsTotal: excerpts.length, fromScan: scanId };
  const { id: _id, createdAt: _c, updatedAt: _u, bytes: _b, inputs: _i, status: _s, progress: _p, error: _e, ...fields } = scan;
  await store.createScan({ ...fields, id: datasetId, name: `${scan.name} (so far: ${coveragePercent(coverage)}%)`, excerptCount: coverage.excerptsDone, coverage, status: 'running', progress: 0 });
  try {
    const result = await runPartialRecords({
      excerpts,
      settings,
      source,
      adapters: {
        checkpoints,
        openSpill: () => openScanRowSpill(datasetId),
        onProgress: (p: ScanJobProgress) => onProgress(p),
      },
      signal,
      saveRecords: (records) => store.putNeuronRecords(datasetId, records, { encoding: 'float16' }),
    });
    await store.updateScan(datasetId, { status: 'done', progress: 1 });
    return { datasetId, ...result };
  } catch (err) {
    await store.deleteScan(datasetId).catch(() => {});
    if (signal.aborted) throw new ScanStoppedError('cancel');
    throw err;
  }
}
