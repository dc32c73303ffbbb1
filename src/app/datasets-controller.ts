/**
 * The datasets in this browser: scans (run in the worker, checkpointed in the store) and imports.
 * A scan a reload interrupted is resumed by itself once its model is loaded; until then it shows
 * as paused, never as running. A paused scan's records so far can be built into a dataset of
 * their own (its `coverage` says how much of the corpus they cover) while the scan stays paused.
 */
import { parseCorpusFile, type CorpusDocument } from '../lib/activations/corpus.ts';
import { SCAN_DEFAULTS } from '../lib/activations/scan-defaults.ts';
import { exportScan, importFiles, type ExportedFile } from '../lib/store/import-export.ts';
import type { NeurolensStore } from '../lib/store/neurolens-store.ts';
import type { ScanMeta } from '../lib/store/store-types.ts';
import type { ModelSummary, PartialDatasetSummary, ScanProgressInfo, ScanSummary } from '../worker/protocol.ts';
import { Observable } from './observable.ts';

export interface DatasetsState {
  scans: ScanMeta[];
  usage: { usedBytes?: number; quotaBytes?: number; persistent?: boolean } | null;
  runningScanId: string | null;
  progress: ScanProgressInfo | null;
  scanError: string | null;
  message: { kind: 'error' | 'info'; text: string } | null;
  /** Records of a paused scan being built: the scan, and how far. */
  partial: { scanId: string; progress: ScanProgressInfo | null } | null;
  partialError: string | null;
}

export interface ScanRequest {
  corpus: 'default' | File[];
  layers: number[] | null;
  topK: number;
  seed: number;
  maxExcerpts: number | null;
  name: string;
}

export interface DatasetsDeps {
  store: Promise<NeurolensStore>;
  scan(scanId: string, onProgress: (p: ScanProgressInfo) => void): Promise<ScanSummary>;
  stopScan(scanId: string, reason: 'pause' | 'cancel'): Promise<void>;
  /** Builds a paused scan's records so far into a dataset of their own (the worker's partialDataset). */
  partialDataset(scanId: string, onProgress: (p: ScanProgressInfo) => void): Promise<PartialDatasetSummary>;
  /** The id partialDataset gives the dataset of `scanId`, to stop it. */
  partialDatasetId(scanId: string): string;
  /** The bundled corpus's URL. */
  defaultCorpusUrl: string;
  persistent?: Promise<boolean>;
  /** A scan finished: e.g. open it. */
  onScanDone?(scan: ScanMeta): void;
}

export class DatasetsController {
  readonly state = new Observable<DatasetsState>({
    scans: [],
    usage: null,
    runningScanId: null,
    progress: null,
    scanError: null,
    message: null,
    partial: null,
    partialError: null,
  });
  /** Scans found running at start-up: a reload stopped them. */
  private interrupted = new Set<string>();

  constructor(private readonly deps: DatasetsDeps) {}

  /** Reads the list; scans a previous page left 'running' are marked paused and remembered for resuming. */
  async start(): Promise<void> {
    const store = await this.deps.store;
    for (const scan of await store.listScans()) {
      if (scan.status !== 'running') continue;
      if (scan.coverage) {
        // Records of a paused scan that a reload cut short: incomplete, so not offered as done.
        await store.updateScan(scan.id, { status: 'failed', error: 'the page was reloaded while these records were built; build them again from the paused scan' });
        continue;
      }
      this.interrupted.add(scan.id);
      await store.updateScan(scan.id, { status: 'paused' });
    }
    await this.refresh();
  }

  async refresh(): Promise<void> {
    const store = await this.deps.store;
    const scans = await store.listScans();
    const u = await store.storageUsage();
    this.state.patch({ scans, usage: { usedBytes: u.usedBytes, quotaBytes: u.quotaBytes, persistent: await this.deps.persistent } });
  }

  /** Resumes, one after another, the scans a reload interrupted that were made with this model. */
  async resumeInterrupted(model: ModelSummary): Promise<void> {
    for (const id of [...this.interrupted]) {
      const scan = this.state.get().scans.find((s) => s.id === id);
      if (!scan || scan.model.label !== model.label || scan.model.dMlp !== model.dMlp) continue;
      this.interrupted.delete(id);
      await this.run(id);
    }
  }

  async startScan(request: ScanRequest, model: ModelSummary): Promise<void> {
    this.state.patch({ scanError: null });
    try {
      const corpus = await this.readCorpus(request.corpus);
      const store = await this.deps.store;
      const scan = await store.createScan({
        name: request.name,
        model: { label: model.label, nLayer: model.nLayer, dModel: model.dModel, dMlp: model.dMlp, nCtx: model.nCtx, vocabSize: model.vocabSize },
        corpus: { name: corpus.name, fingerprint: '' },
        layers: request.layers ?? [...Array(model.nLayer).keys()],
        topK: request.topK,
        seed: request.seed,
        excerptCount: 0,
        inputs: { documents: corpus.documents, randomSampleSize: SCAN_DEFAULTS.randomSampleSize, batchSize: SCAN_DEFAULTS.batchSize, maxExcerpts: request.maxExcerpts ?? undefined },
      });
      await this.refresh();
      await this.run(scan.id);
    } catch (err) {
      this.state.patch({ scanError: (err as Error).message });
    }
  }

  /** Runs or resumes a stored scan; resolves when it is done, paused or failed. */
  async run(scanId: string): Promise<void> {
    this.state.patch({ runningScanId: scanId, scanError: null, progress: null });
    try {
      await this.deps.scan(scanId, (progress) => this.state.patch({ progress }));
      await this.refresh();
      const done = this.state.get().scans.find((s) => s.id === scanId);
      if (done) this.deps.onScanDone?.(done);
    } catch (err) {
      if ((err as Error).name !== 'ScanStoppedError') this.state.patch({ scanError: (err as Error).message });
    } finally {
      this.state.patch({ runningScanId: null, progress: null });
      await this.refresh();
    }
  }

  async stop(reason: 'pause' | 'cancel'): Promise<void> {
    const id = this.state.get().runningScanId;
    if (id) await this.deps.stopScan(id, reason);
  }

  /**
   * Builds the records of a paused scan's excerpts so far into a dataset of their own (replacing
   * an earlier one); resolves with its id, or null when it failed or was stopped.
   */
  async buildPartial(scanId: string): Promise<string | null> {
    if (this.state.get().partial) return null;
    this.state.patch({ partial: { scanId, progress: null }, partialError: null });
    try {
      const result = await this.deps.partialDataset(scanId, (progress) => this.state.patch({ partial: { scanId, progress } }));
      return result.datasetId;
    } catch (err) {
      if ((err as Error).name !== 'ScanStoppedError') this.state.patch({ partialError: (err as Error).message });
      return null;
    } finally {
      this.state.patch({ partial: null });
      await this.refresh();
    }
  }

  async stopPartial(): Promise<void> {
    const partial = this.state.get().partial;
    if (partial) await this.deps.stopScan(this.deps.partialDatasetId(partial.scanId), 'cancel');
  }

  async delete(scanId: string): Promise<void> {
    this.interrupted.delete(scanId);
    await (await this.deps.store).deleteScan(scanId);
    await this.refresh();
  }

  async export(scanId: string, format: 'bundle' | 'records'): Promise<ExportedFile | null> {
    this.state.patch({ message: null });
    try {
      return await exportScan(await this.deps.store, scanId, format);
    } catch (err) {
      this.state.patch({ message: { kind: 'error', text: (err as Error).message } });
      return null;
    }
  }

  async import(files: File[]): Promise<void> {
    this.state.patch({ message: null });
    try {
      const inputs = await Promise.all(files.map(async (f) => ({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) })));
      const result = await importFiles(await this.deps.store, inputs);
      this.state.patch({ message: { kind: 'info', text: result.summary } });
      await this.refresh();
    } catch (err) {
      this.state.patch({ message: { kind: 'error', text: (err as Error).message } });
    }
  }

  private async readCorpus(corpus: 'default' | File[]): Promise<{ name: string; documents: CorpusDocument[] }> {
    if (corpus === 'default') {
      const response = await fetch(this.deps.defaultCorpusUrl);
      if (!response.ok) throw new Error(`the bundled corpus is missing (HTTP ${response.status}); run npm start again to prepare it`);
      return { name: 'Brown corpus (default)', documents: parseCorpusFile('default.jsonl', await response.text()) };
    }
    const documents: CorpusDocument[] = [];
    for (const file of corpus) documents.push(...parseCorpusFile(file.name, await file.text()));
    return { name: corpus.map((f) => f.name).join(', '), documents };
  }
}
