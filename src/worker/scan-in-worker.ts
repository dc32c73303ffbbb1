/**
 * Runs a stored scan inside the model worker: the scan job (scan-job.ts) with the browser's
 * adapters: inputs in the store (IndexedDB), checkpoints and sampled rows in the origin private
 * file system (opfs-storage.ts), records saved into the store. Pausing or a reload leaves a
 * checkpoint; running the same scan id again resumes from it.
 */
import type { ActivationCapturer } from '../lib/model/capture.ts';
import { buildExcerpts } from '../lib/activations/corpus.ts';
import { runScanJob } from '../lib/activations/scan-job.ts';
import { createScanSource } from '../lib/activations/scan-source.ts';
import type { NeurolensStore } from '../lib/store/neurolens-store.ts';
import { openScanCheckpoints, openScanRowSpill, removeOrphanScanFiles } from './opfs-storage.ts';
import type { ScanProgressInfo, ScanSummary } from './protocol.ts';

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

export async function runStoredScan(
  store: NeurolensStore,
  capturer: ActivationCapturer,
  scanId: string,
  signal: AbortSignal,
  onProgress: (p: ScanProgressInfo) => void,
): Promise<ScanSummary> {
  const scan = await store.getScan(scanId);
  if (!scan) throw new Error(`no scan ${scanId} in this browser's storage`);
  const inputs = scan.inputs;
  if (!inputs) throw new Error(`scan "${scan.name}" was imported and cannot be re-run here`);
  const model = capturer.model;
  if (scan.model.label !== model.label || scan.model.dMlp !== model.config.dMlp) {
    throw new Error(`scan "${scan.name}" was made with ${scan.model.label}; load that model to resume it (loaded: ${model.label})`);
  }
  onProgress({ phase: 'preparing', excerptsDone: 0, excerptsTotal: 0, tokensPerSecond: 0, etaSeconds: null, sampledDone: 0, sampledTotal: 0, recordsDone: 0, recordsTotal: 0 });
  const excerpts = buildExcerpts(inputs.documents, model.tokenizer, { maxExcerpts: inputs.maxExcerpts });
  if (excerpts.length === 0) throw new Error('the corpus gave no excerpts: it is empty or too short');
  await store.updateScan(scanId, { status: 'running', excerptCount: excerpts.length });
  await removeOrphanScanFiles((await store.listScans()).map((s) => s.id));
  const checkpoints = await openScanCheckpoints(store, scanId);
  try {
    const { summary } = await runScanJob({
      excerpts,
      settings: { layers: scan.layers, dMlp: model.config.dMlp, topK: scan.topK, seed: scan.seed, randomSampleSize: inputs.randomSampleSize, batchSize: inputs.batchSize, ...CHECKPOINTS },
      source: await createScanSource(capturer, scan.layers),
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
