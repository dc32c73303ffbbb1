/**
 * The Neurolens store: scans and everything computed for them, kept in IndexedDB (db.ts), with a
 * small API for the app, a Web Worker, the scan (checkpoints), the explain job (JobStore) and the
 * LLM client (ResponseCache).
 *
 * Every write is one IndexedDB transaction: it is validated first and then either lands whole or
 * not at all (a failed put, a thrown exception or a quota error aborts the transaction). Writes
 * that belong to a scan check that the scan exists and add the rows' approximate size to its
 * `bytes` in the same transaction. A quota error becomes StorageFullError; other failures are
 * StoreErrors; invalid paper-format data is refused with formats.ts' FormatError.
 */
import type { NeuronRecord } from '../activations/records.ts';
import type { ScanCheckpoint, ScanCheckpointStore } from '../activations/scan.ts';
import type { NeuronSimulationResults, ScoredExplanation } from '../explain/explanation-types.ts';
import { FormatError, validateNeuronRecord, validateNeuronSimulationResults } from '../explain/formats.ts';
import type { JobStore } from '../explain/job.ts';
import type { ExplanationScores, NeuronPipelineResult } from '../explain/pipeline.ts';
import { normalizeChatResponse } from '../llm/chat-response.ts';
import type { ResponseCache } from '../llm/response-cache.ts';
import type { ChatResponse } from '../llm/types.ts';
import type { ActivationEncoding, EncodingChoice } from './compact-activations.ts';
import { type CompactRecords, compactRecords, expandNeuronRecord, recordRow } from './compact-record.ts';
import {
  DB_NAME,
  type NeurolensDb,
  openNeurolensDb,
  type OpenOptions,
  prefixRange,
  SCAN_KEYED_STORES,
  scanRange,
  type StoreName,
} from './db.ts';
import { scoreOfScores, scoreOfSimulation } from './explanation-score.ts';
import { type NeuronSummaryColumns, summariesByLayer, withSummaries } from './neuron-summaries.ts';
import { readExcerptTokens, storeExcerpts } from './stored-excerpts.ts';
import { checkNeuronKey, checkScanId, checkScanInputs, checkScanPatch, scanFromInit } from './scan-meta.ts';
import { isQuotaError, StorageFullError, StoreError } from './store-errors.ts';
import { type AfterPutHook, WriteContext, type WriteTx } from './write-context.ts';
import type {
  ExplanationRow,
  NeuronKey,
  NeuronRecordRow,
  Probe,
  ProbeInput,
  ScanInit,
  ScanInputs,
  ScanMeta,
  ScanPatch,
  SimulationRow,
  StoredExplanation,
} from './store-types.ts';

export interface NeurolensStoreOptions extends OpenOptions {
  /**
   * Fault injection for tests: called after each row a write transaction puts (`count` = rows put
   * so far in it). Throwing aborts the transaction as a real failure would.
   */
  afterPut?: AfterPutHook;
  /** Source of the origin's usage and quota (default navigator.storage.estimate). */
  estimate?: () => Promise<{ usage?: number; quota?: number }>;
}

export interface StorageUsage {
  /** What the browser reports for the whole origin (undefined where it reports nothing). */
  usedBytes: number | undefined;
  quotaBytes: number | undefined;
  /** Approximate bytes per scan, largest first. */
  scans: { id: string; name: string; bytes: number }[];
}

/** What an import writes, already validated (see import-export.ts). */
export interface ImportContents {
  records?: CompactRecords;
  simulationResults?: NeuronSimulationResults[];
  explanations?: StoredExplanation[];
  scores?: (NeuronKey & { explanation: string; scores: ExplanationScores })[];
}

/** Import into an existing scan, or into a new one created in the same transaction. */
export type ImportTarget = { scanId: string } | { newScan: ScanInit };

const neuronRowKey = (scanId: string, { layer, neuron }: NeuronKey): [string, number, number] => [scanId, layer, neuron];

/** A stored record that cannot be read back, as the StoreError to show. */
function damaged(row: Pick<NeuronRecordRow, 'layer' | 'neuron'> | undefined, error: unknown): StoreError {
  const which = row ? `the stored record of neuron ${row.layer}:${row.neuron}` : 'a stored record';
  return new StoreError(`${which} is damaged: ${errorText(error)}`, { cause: error });
}

function randomId(): string {
  if (typeof crypto !== 'undefined' && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function errorText(error: unknown): string {
  if (error instanceof Error || (typeof error === 'object' && error !== null && 'message' in error)) {
    const { name, message } = error as { name?: string; message?: string };
    return `${name ?? 'Error'}: ${message ?? ''}`;
  }
  return String(error);
}

/** Explanations keyed by text, in order; duplicates in one neuron's list are refused. */
function checkExplanationTexts(explanations: readonly string[], where: string): void {
  if (!Array.isArray(explanations)) throw new StoreError(`${where} must be an array of strings`);
  const seen = new Set<string>();
  explanations.forEach((text, i) => {
    if (typeof text !== 'string') throw new StoreError(`${where}[${i}] must be a string`);
    if (seen.has(text)) throw new StoreError(`${where}[${i}] repeats the explanation ${JSON.stringify(text.slice(0, 60))}`);
    seen.add(text);
  });
}

/** Refuses a results document that lists the same explanation twice (they share one stored row). */
function checkDistinctExplanations(results: NeuronSimulationResults, path: string): void {
  const seen = new Map<string, number>();
  results.scored_explanations.forEach((s, i) => {
    const first = seen.get(s.explanation);
    if (first !== undefined) {
      throw new FormatError(`repeats the explanation of scored_explanations[${first}]`, `${path}scored_explanations[${i}].explanation`);
    }
    seen.set(s.explanation, i);
  });
}

export class NeurolensStore {
  private closedReason: string | undefined;

  private constructor(
    private readonly db: NeurolensDb,
    private readonly options: NeurolensStoreOptions,
  ) {}

  /** Opens (creating or upgrading) the database `name`. */
  static async open(name = DB_NAME, options: NeurolensStoreOptions = {}): Promise<NeurolensStore> {
    let store: NeurolensStore | undefined;
    const db = await openNeurolensDb(name, {
      ...options,
      onClosedByUpgrade: () => {
        if (store) store.closedReason = 'another tab upgraded the Neurolens database; reload this page';
        options.onClosedByUpgrade?.();
      },
    });
    store = new NeurolensStore(db, options);
    return store;
  }

  get name(): string {
    return this.db.name;
  }

  get version(): number {
    return this.db.version;
  }

  close(): void {
    this.closedReason ??= 'the store was closed';
    this.db.close();
  }

  // ---- transaction plumbing ----------------------------------------------------------------

  private checkOpen(): void {
    if (this.closedReason) throw new StoreError(`the Neurolens database is not available: ${this.closedReason}`);
  }

  /** A storage failure as the error to show: StorageFullError for quota, StoreError otherwise. */
  private async translate(error: unknown, what: string): Promise<Error> {
    if (isQuotaError(error)) {
      let usage: { usage?: number; quota?: number } = {};
      try {
        usage = await (this.options.estimate ?? (() => navigator.storage.estimate()))();
      } catch {
        // Unknown usage: the message just says the storage is full.
      }
      return new StorageFullError(usage.usage, usage.quota, { cause: error });
    }
    if (error instanceof StoreError || error instanceof FormatError) return error;
    if (error instanceof Error && !(typeof DOMException !== 'undefined' && error instanceof DOMException)) return error;
    return new StoreError(`${what} failed: ${errorText(error)}`, { cause: error });
  }

  /** Runs `body` in one read-write transaction over `stores`; on any failure nothing is kept. */
  private async write<T>(
    stores: StoreName[],
    what: string,
    body: (ctx: WriteContext) => Promise<T>,
    durability: 'default' | 'strict' = 'default',
  ): Promise<T> {
    this.checkOpen();
    let tx: WriteTx;
    try {
      tx = this.db.transaction(stores, 'readwrite', { durability });
    } catch (error) {
      throw await this.translate(error, what);
    }
    const done = tx.done;
    done.catch(() => undefined);
    let result: T;
    try {
      result = await body(new WriteContext(tx, this.options.afterPut));
    } catch (error) {
      try {
        tx.abort();
      } catch {
        // Already aborted by the failed request.
      }
      await done.catch(() => undefined);
      throw await this.translate(error, what);
    }
    try {
      await done;
    } catch (error) {
      // The commit failed (e.g. the quota check at commit time): the transaction was rolled back.
      throw await this.translate(error, what);
    }
    return result;
  }

  private async read<T>(what: string, body: () => Promise<T>): Promise<T> {
    this.checkOpen();
    try {
      return await body();
    } catch (error) {
      throw await this.translate(error, what);
    }
  }

  // ---- scans -------------------------------------------------------------------------------

  /** Creates a scan; `init.inputs` (corpus and settings to run it) are stored alongside. */
  async createScan(init: ScanInit): Promise<ScanMeta> {
    const scan = scanFromInit(init, init?.id ?? randomId(), Date.now());
    if (init.inputs !== undefined) checkScanInputs(init.inputs);
    return this.write(['scans', 'scanInputs'], 'creating a scan', async (ctx) => {
      await this.insertScan(ctx, scan, init.inputs);
      await ctx.finish(scan.createdAt);
      return ctx.updatedScan(scan.id)!;
    });
  }

  private async insertScan(ctx: WriteContext, scan: ScanMeta, inputs: ScanInputs | undefined): Promise<void> {
    if (await ctx.tx.objectStore('scans').getKey(scan.id)) throw new StoreError(`a scan with id ${JSON.stringify(scan.id)} already exists`);
    ctx.adopt(scan);
    if (inputs !== undefined) await ctx.replace('scanInputs', scan.id, { scanId: scan.id, inputs }, scan.id);
  }

  /** A scan's metadata with its inputs (if it has any). */
  async getScan(scanId: string): Promise<ScanMeta | undefined> {
    checkScanId(scanId);
    const [scan, inputs] = await this.read('reading a scan', async () => {
      const tx = this.db.transaction(['scans', 'scanInputs']);
      return Promise.all([tx.objectStore('scans').get(scanId), tx.objectStore('scanInputs').get(scanId)]);
    });
    return scan && (inputs ? { ...scan, inputs: inputs.inputs } : scan);
  }

  /** The corpus and settings a scan was created with (undefined for imported scans). */
  async getScanInputs(scanId: string): Promise<ScanInputs | undefined> {
    checkScanId(scanId);
    return (await this.read('reading scan inputs', () => this.db.get('scanInputs', scanId)))?.inputs;
  }

  /** Every scan, most recently updated first (without their inputs). */
  async listScans(): Promise<ScanMeta[]> {
    return this.read('listing scans', async () => (await this.db.getAllFromIndex('scans', 'byUpdatedAt')).reverse());
  }

  async updateScan(scanId: string, patch: ScanPatch): Promise<ScanMeta> {
    checkScanId(scanId);
    checkScanPatch(patch);
    return this.write(['scans'], 'updating a scan', async (ctx) => {
      await ctx.scan(scanId);
      await ctx.finish(Date.now(), new Map([[scanId, patch]]));
      return ctx.updatedScan(scanId)!;
    });
  }

  /** Deletes a scan and everything stored for it, in one transaction. False if there was no such scan. */
  async deleteScan(scanId: string): Promise<boolean> {
    checkScanId(scanId);
    return this.write(['scans', 'scanInputs', 'checkpoints', 'probes', ...SCAN_KEYED_STORES], 'deleting a scan', async ({ tx }) => {
      const existed = (await tx.objectStore('scans').getKey(scanId)) !== undefined;
      const range = scanRange(scanId);
      const deletions: Promise<unknown>[] = [
        tx.objectStore('scans').delete(scanId),
        tx.objectStore('scanInputs').delete(scanId),
        tx.objectStore('checkpoints').delete(scanId),
      ];
      for (const name of SCAN_KEYED_STORES) deletions.push(tx.objectStore(name).delete(range));
      for (const id of await tx.objectStore('probes').index('byScan').getAllKeys(scanId)) deletions.push(tx.objectStore('probes').delete(id));
      await Promise.all(deletions);
      return existed;
    });
  }

  // ---- checkpoints ---------------------------------------------------------------------------

  async saveCheckpoint(scanId: string, checkpoint: ScanCheckpoint): Promise<void> {
    checkScanId(scanId);
    const { fingerprint, excerptsDone, state } = checkpoint ?? ({} as ScanCheckpoint);
    if (typeof fingerprint !== 'string' || !Number.isInteger(excerptsDone) || excerptsDone < 0) {
      throw new StoreError('a checkpoint needs a fingerprint string and a non-negative excerptsDone');
    }
    if (!Array.isArray(state) || !state.every((b) => b instanceof ArrayBuffer)) throw new StoreError('a checkpoint state must be a list of ArrayBuffers');
    const row = { scanId, fingerprint, excerptsDone, state, savedAt: Date.now() };
    await this.write(
      ['scans', 'checkpoints'],
      'saving a scan checkpoint',
      async (ctx) => {
        await ctx.scan(scanId);
        await ctx.replace('checkpoints', scanId, row, scanId);
        await ctx.finish(row.savedAt);
      },
      'strict',
    );
  }

  async loadCheckpoint(scanId: string): Promise<ScanCheckpoint | undefined> {
    checkScanId(scanId);
    const row = await this.read('loading a scan checkpoint', () => this.db.get('checkpoints', scanId));
    return row && { fingerprint: row.fingerprint, excerptsDone: row.excerptsDone, state: row.state };
  }

  async deleteCheckpoint(scanId: string): Promise<void> {
    checkScanId(scanId);
    await this.write(['scans', 'checkpoints'], 'deleting a scan checkpoint', async (ctx) => {
      const old = await ctx.tx.objectStore('checkpoints').get(scanId);
      if (!old) return;
      await ctx.scan(scanId);
      ctx.account(scanId, undefined, old);
      await ctx.tx.objectStore('checkpoints').delete(scanId);
      await ctx.finish(Date.now());
    });
  }

  /** The scan's checkpoints as runScan wants them. */
  checkpointStoreFor(scanId: string): ScanCheckpointStore {
    checkScanId(scanId);
    return {
      save: (checkpoint) => this.saveCheckpoint(scanId, checkpoint),
      load: () => this.loadCheckpoint(scanId),
    };
  }

  // ---- neuron records ------------------------------------------------------------------------

  /**
   * Stores records (replacing those of the same neurons), all or nothing: the records and the
   * excerpts they bring are one transaction. Every record is validated and encoded before the
   * transaction starts. `encoding` defaults to `lossless` (the scan's float16-rounded records then
   * take at most 2 bytes per value); see compact-activations.ts.
   */
  async putNeuronRecords(scanId: string, records: readonly NeuronRecord[], options: { encoding?: EncodingChoice } = {}): Promise<void> {
    checkScanId(scanId);
    if (!Array.isArray(records)) throw new StoreError('records must be an array of NeuronRecords');
    records.forEach((record, i) => validateNeuronRecord(record, `[${i}]`));
    const compact = compactRecords(records, options.encoding ?? 'lossless');
    await this.write(['scans', 'neuronRecords', 'neuronSummaries', 'excerpts', 'vocabulary'], 'storing neuron records', async (ctx) => {
      await ctx.scan(scanId);
      await this.writeRecords(ctx, scanId, compact);
      await ctx.finish(Date.now());
    });
  }

  /** Writes records, their summaries and the excerpts they refer to (those not stored yet), in the caller's transaction. */
  private async writeRecords(ctx: WriteContext, scanId: string, { excerpts, records, summaries }: CompactRecords): Promise<void> {
    const scanIndex = await storeExcerpts(ctx.tx, scanId, excerpts, (name, row) => {
      ctx.account(scanId, row, undefined);
      return ctx.put(name, row as never);
    });
    const store = ctx.tx.objectStore('neuronRecords');
    const old = await Promise.all(records.map((r) => store.get([scanId, r.layer, r.neuron])));
    const puts = records.map((r, i) => {
      const row = recordRow(scanId, r, scanIndex);
      ctx.account(scanId, row, old[i]);
      return ctx.put('neuronRecords', row);
    });
    await Promise.all(puts);
    for (const [layer, list] of summariesByLayer(summaries)) {
      const key: [string, number] = [scanId, layer];
      const old = await ctx.tx.objectStore('neuronSummaries').get(key);
      await ctx.replace('neuronSummaries', scanId, withSummaries(old, scanId, layer, list), key);
    }
  }

  /**
   * The summaries of every record of a scan (see neuron-summary.ts), one set of columns per layer
   * in layer order (neuron-summaries.ts), read at once.
   */
  async listNeuronSummaries(scanId: string): Promise<NeuronSummaryColumns[]> {
    checkScanId(scanId);
    const rows = await this.read('reading neuron summaries', () => this.db.getAll('neuronSummaries', scanRange(scanId)));
    return rows.map(({ scanId: _, ...columns }) => columns);
  }

  async getNeuronRecord(scanId: string, layer: number, neuron: number): Promise<NeuronRecord | undefined> {
    return (await this.getNeuronRecordEntry(scanId, layer, neuron))?.record;
  }

  /** A record with the encoding its activations are stored in. */
  async getNeuronRecordEntry(
    scanId: string,
    layer: number,
    neuron: number,
  ): Promise<{ record: NeuronRecord; encoding: ActivationEncoding } | undefined> {
    const [entry] = await this.readRecords(scanId, [{ layer, neuron }], 'reading a neuron record');
    return entry;
  }

  /** Records of many neurons (in the order asked), read in one transaction; missing ones are omitted. */
  async getNeuronRecords(scanId: string, neurons: readonly NeuronKey[]): Promise<NeuronRecord[]> {
    return (await this.readRecords(scanId, neurons, 'reading neuron records')).map((entry) => entry.record);
  }

  /** Reads record rows and the excerpts they refer to in one transaction, and expands them. */
  private async readRecords(
    scanId: string,
    neurons: readonly NeuronKey[],
    what: string,
  ): Promise<{ record: NeuronRecord; encoding: ActivationEncoding }[]> {
    checkScanId(scanId);
    neurons.forEach(checkNeuronKey);
    const { rows, tokens } = await this.read(what, async () => {
      const tx = this.db.transaction(['neuronRecords', 'excerpts', 'vocabulary']);
      const rows = (await Promise.all(neurons.map((n) => tx.objectStore('neuronRecords').get(neuronRowKey(scanId, n))))).filter(
        (row) => row !== undefined,
      );
      let tokens: Map<number, string[]>;
      try {
        tokens = await readExcerptTokens(tx, scanId, rows.flatMap((row) => Array.from(row.excerpts)));
      } catch (error) {
        throw damaged(rows.length === 1 ? rows[0] : undefined, error);
      }
      return { rows, tokens };
    });
    return rows.map((row) => {
      try {
        return { record: expandNeuronRecord(row, (e) => tokens.get(e)!), encoding: row.encoding };
      } catch (error) {
        throw damaged(row, error);
      }
    });
  }

  /** The neurons that have a record, sorted by layer then neuron. */
  async listNeuronIds(scanId: string): Promise<NeuronKey[]> {
    checkScanId(scanId);
    const keys = await this.read('listing neuron records', () => this.db.getAllKeys('neuronRecords', scanRange(scanId)));
    return keys.map(([, layer, neuron]) => ({ layer, neuron }));
  }

  // ---- probes --------------------------------------------------------------------------------

  async putProbe(input: ProbeInput): Promise<Probe> {
    checkProbe(input);
    const probe: Probe = { ...input, id: randomId(), createdAt: Date.now() };
    if (probe.scanId === undefined) delete probe.scanId;
    const scanId = probe.scanId;
    await this.write(scanId === undefined ? ['probes'] : ['scans', 'probes'], 'storing a probe', async (ctx) => {
      if (scanId === undefined) {
        await ctx.put('probes', probe);
        return;
      }
      await ctx.scan(scanId);
      await ctx.replace('probes', scanId, probe, probe.id);
      await ctx.finish(probe.createdAt);
    });
    return probe;
  }

  async getProbe(id: string): Promise<Probe | undefined> {
    return this.read('reading a probe', () => this.db.get('probes', id));
  }

  /** Probes of a scan (or all probes), oldest first. */
  async listProbes(scanId?: string): Promise<Probe[]> {
    const probes = await this.read('listing probes', () =>
      scanId === undefined ? this.db.getAll('probes') : this.db.getAllFromIndex('probes', 'byScan', scanId),
    );
    return probes.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
  }

  async deleteProbe(id: string): Promise<boolean> {
    return this.write(['scans', 'probes'], 'deleting a probe', async (ctx) => {
      const old = await ctx.tx.objectStore('probes').get(id);
      if (!old) return false;
      if (old.scanId !== undefined && (await ctx.tx.objectStore('scans').getKey(old.scanId)) !== undefined) {
        await ctx.scan(old.scanId);
        ctx.account(old.scanId, undefined, old);
      }
      await ctx.tx.objectStore('probes').delete(id);
      await ctx.finish(Date.now());
      return true;
    });
  }

  // ---- explanations, simulations, scores -----------------------------------------------------

  /** Adds explanations of a neuron (ones already stored keep their place). Returns all, in order. */
  async putExplanations(scanId: string, neuron: NeuronKey, explanations: readonly string[], source?: string): Promise<StoredExplanation[]> {
    checkScanId(scanId);
    checkNeuronKey(neuron);
    checkExplanationTexts(explanations, 'explanations');
    return this.write(['scans', 'explanations'], 'storing explanations', async (ctx) => {
      await ctx.scan(scanId);
      await this.ensureExplanations(ctx, scanId, neuron, explanations, source);
      await ctx.finish(Date.now());
      return this.explanationsIn(ctx, scanId, neuron);
    });
  }

  /** Explanation rows for texts not stored yet, appended after the neuron's existing ones. */
  private async ensureExplanations(
    ctx: WriteContext,
    scanId: string,
    neuron: NeuronKey,
    texts: readonly string[],
    source: string | undefined,
    createdAt = Date.now(),
  ): Promise<void> {
    const existing = await ctx.tx.objectStore('explanations').getAll(prefixRange([scanId, neuron.layer, neuron.neuron]));
    const known = new Set(existing.map((e) => e.explanation));
    let order = existing.reduce((m, e) => Math.max(m, e.order + 1), 0);
    for (const explanation of texts) {
      if (known.has(explanation)) continue;
      known.add(explanation);
      const row: ExplanationRow = { scanId, layer: neuron.layer, neuron: neuron.neuron, explanation, order: order++, createdAt };
      if (source !== undefined) row.source = source;
      ctx.account(scanId, row, undefined);
      await ctx.put('explanations', row);
    }
  }

  private async explanationsIn(ctx: WriteContext, scanId: string, neuron: NeuronKey): Promise<StoredExplanation[]> {
    const rows = await ctx.tx.objectStore('explanations').getAll(prefixRange([scanId, neuron.layer, neuron.neuron]));
    return rows.sort((a, b) => a.order - b.order).map(({ scanId: _, ...e }) => e);
  }

  /** A neuron's explanations in order. */
  async listExplanations(scanId: string, neuron: NeuronKey): Promise<StoredExplanation[]> {
    checkScanId(scanId);
    checkNeuronKey(neuron);
    const rows = await this.read('reading explanations', () =>
      this.db.getAll('explanations', prefixRange([scanId, neuron.layer, neuron.neuron])),
    );
    return rows.sort((a, b) => a.order - b.order).map(({ scanId: _, ...e }) => e);
  }

  /** Neurons with at least one explanation, sorted. */
  async listExplainedNeurons(scanId: string): Promise<NeuronKey[]> {
    checkScanId(scanId);
    const keys = await this.read('listing explained neurons', () => this.db.getAllKeys('explanations', scanRange(scanId)));
    const out: NeuronKey[] = [];
    for (const [, layer, neuron] of keys) {
      const last = out[out.length - 1];
      if (!last || last.layer !== layer || last.neuron !== neuron) out.push({ layer, neuron });
    }
    return out;
  }

  /**
   * Stores scored explanations in the paper's format (NeuronSimulationResults, validated), all or
   * nothing. Explanations not stored yet are added; a stored simulation of the same explanation
   * is replaced.
   */
  async putSimulationResults(scanId: string, results: readonly NeuronSimulationResults[], source?: string): Promise<void> {
    checkScanId(scanId);
    checkResultsList(results);
    await this.write(['scans', 'explanations', 'simulations', 'scores'], 'storing simulation results', async (ctx) => {
      await ctx.scan(scanId);
      await this.writeSimulationResults(ctx, scanId, results, source);
      await ctx.finish(Date.now());
    });
  }

  private async writeSimulationResults(
    ctx: WriteContext,
    scanId: string,
    results: readonly NeuronSimulationResults[],
    source: string | undefined,
  ): Promise<void> {
    for (const result of results) {
      const neuron = { layer: result.neuron_id.layer_index, neuron: result.neuron_id.neuron_index };
      const texts = result.scored_explanations.map((s) => s.explanation);
      await this.ensureExplanations(ctx, scanId, neuron, texts, source);
      const { scored_explanations: scored, ...resultsFields } = result;
      for (const scoredExplanation of scored) {
        const row: SimulationRow = { scanId, ...neuron, explanation: scoredExplanation.explanation, scoredExplanation, resultsFields };
        const key: [string, number, number, string] = [scanId, neuron.layer, neuron.neuron, row.explanation];
        await ctx.replace('simulations', scanId, row, key);
        // Neurolens' own scores of the explanation, where there are some, give its headline score.
        if ((await ctx.tx.objectStore('scores').getKey(key)) === undefined) {
          await this.setExplanationScore(ctx, scanId, key, scoreOfSimulation(scoredExplanation));
        }
      }
    }
  }

  /** A neuron's scored explanations as one NeuronSimulationResults (explanation order), or undefined. */
  async getSimulationResults(scanId: string, neuron: NeuronKey): Promise<NeuronSimulationResults | undefined> {
    checkScanId(scanId);
    checkNeuronKey(neuron);
    const range = prefixRange([scanId, neuron.layer, neuron.neuron]);
    const [explanations, simulations] = await this.read('reading simulation results', async () => {
      const tx = this.db.transaction(['explanations', 'simulations']);
      return Promise.all([tx.objectStore('explanations').getAll(range), tx.objectStore('simulations').getAll(range)]);
    });
    if (simulations.length === 0) return undefined;
    const order = new Map(explanations.map((e) => [e.explanation, e.order]));
    simulations.sort((a, b) => (order.get(a.explanation) ?? Infinity) - (order.get(b.explanation) ?? Infinity));
    return { ...simulations[0].resultsFields, scored_explanations: simulations.map((s) => s.scoredExplanation) };
  }

  /** The paper-format simulation (ScoredExplanation) of one explanation. */
  async getScoredExplanation(scanId: string, neuron: NeuronKey, explanation: string): Promise<ScoredExplanation | undefined> {
    checkScanId(scanId);
    checkNeuronKey(neuron);
    const row = await this.read('reading a simulation', () => this.db.get('simulations', [scanId, neuron.layer, neuron.neuron, explanation]));
    return row?.scoredExplanation;
  }

  /** Neurolens' scores of one explanation (top/random/all, calibration, detection, fuzzing). */
  async putScores(scanId: string, neuron: NeuronKey, scores: ExplanationScores, source?: string): Promise<void> {
    checkScanId(scanId);
    checkNeuronKey(neuron);
    checkScores(scores, 'scores');
    await this.write(['scans', 'explanations', 'scores'], 'storing scores', async (ctx) => {
      await ctx.scan(scanId);
      await this.writeScores(ctx, scanId, neuron, [scores], source);
      await ctx.finish(Date.now());
    });
  }

  private async writeScores(ctx: WriteContext, scanId: string, neuron: NeuronKey, list: readonly ExplanationScores[], source?: string) {
    await this.ensureExplanations(ctx, scanId, neuron, list.map((s) => s.explanation), source);
    for (const scores of list) {
      const row = { scanId, ...neuron, explanation: scores.explanation, scores };
      const key: [string, number, number, string] = [scanId, neuron.layer, neuron.neuron, scores.explanation];
      await ctx.replace('scores', scanId, row, key);
      await this.setExplanationScore(ctx, scanId, key, scoreOfScores(scores));
    }
  }

  /** Keeps an explanation's headline score on its row (explanation-score.ts). */
  private async setExplanationScore(ctx: WriteContext, scanId: string, key: [string, number, number, string], score: number | null): Promise<void> {
    const row = await ctx.tx.objectStore('explanations').get(key);
    if (!row || row.score === score) return;
    await ctx.replace('explanations', scanId, { ...row, score }, key);
  }

  async getScores(scanId: string, neuron: NeuronKey, explanation: string): Promise<ExplanationScores | undefined> {
    checkScanId(scanId);
    checkNeuronKey(neuron);
    const row = await this.read('reading scores', () => this.db.get('scores', [scanId, neuron.layer, neuron.neuron, explanation]));
    return row?.scores;
  }

  /** Everything the explain pipeline produced for one neuron, in one transaction. */
  async putPipelineResult(scanId: string, result: NeuronPipelineResult, source?: string): Promise<void> {
    checkScanId(scanId);
    if (typeof result !== 'object' || result === null) throw new StoreError('a pipeline result must be an object');
    checkResultsList([result.simulation_results]);
    checkExplanationTexts(result.explanations, 'explanations');
    (result.scores ?? []).forEach((s, i) => checkScores(s, `scores[${i}]`));
    const neuron = { layer: result.neuron_id.layer_index, neuron: result.neuron_id.neuron_index };
    checkNeuronKey(neuron);
    await this.write(['scans', 'explanations', 'simulations', 'scores'], 'storing explanation results', async (ctx) => {
      await ctx.scan(scanId);
      await this.ensureExplanations(ctx, scanId, neuron, result.explanations, source);
      await this.writeSimulationResults(ctx, scanId, [result.simulation_results], source);
      await this.writeScores(ctx, scanId, neuron, result.scores ?? [], source);
      await ctx.finish(Date.now());
    });
  }

  /**
   * Deletes one explanation of a neuron with its simulation and its scores, in one transaction.
   * False when the neuron had no such explanation.
   */
  async deleteExplanation(scanId: string, neuron: NeuronKey, explanation: string): Promise<boolean> {
    checkScanId(scanId);
    checkNeuronKey(neuron);
    if (typeof explanation !== 'string') throw new StoreError('the explanation to delete must be a string');
    const key: [string, number, number, string] = [scanId, neuron.layer, neuron.neuron, explanation];
    return this.write(['scans', 'explanations', 'simulations', 'scores'], 'deleting an explanation', async (ctx) => {
      await ctx.scan(scanId);
      let existed = false;
      for (const name of ['explanations', 'simulations', 'scores'] as const) {
        const old = await ctx.tx.objectStore(name).get(key);
        if (old === undefined) continue;
        existed = true;
        ctx.account(scanId, undefined, old);
        await ctx.tx.objectStore(name).delete(key);
      }
      await ctx.finish(Date.now());
      return existed;
    });
  }

  /** All Neurolens scores of a scan. */
  async listScores(scanId: string): Promise<(NeuronKey & { explanation: string; scores: ExplanationScores })[]> {
    checkScanId(scanId);
    const rows = await this.read('reading scores', () => this.db.getAll('scores', scanRange(scanId)));
    return rows.map(({ layer, neuron, explanation, scores }) => ({ layer, neuron, explanation, scores }));
  }

  /** All explanations of a scan, by neuron then order. */
  async listAllExplanations(scanId: string): Promise<StoredExplanation[]> {
    checkScanId(scanId);
    const rows = await this.read('reading explanations', () => this.db.getAll('explanations', scanRange(scanId)));
    return rows
      .sort((a, b) => a.layer - b.layer || a.neuron - b.neuron || a.order - b.order)
      .map(({ scanId: _, ...e }) => e);
  }

  // ---- imports -------------------------------------------------------------------------------

  /**
   * Writes validated import contents in one transaction, into an existing scan or a new one
   * created in the same transaction (so a failed import leaves no empty scan behind).
   */
  async writeImport(target: ImportTarget, contents: ImportContents): Promise<ScanMeta> {
    const now = Date.now();
    let newScan: ScanMeta | undefined;
    const inputs = 'newScan' in target ? target.newScan.inputs : undefined;
    if ('newScan' in target) newScan = scanFromInit(target.newScan, target.newScan.id ?? randomId(), now);
    else checkScanId(target.scanId);
    if (inputs !== undefined) checkScanInputs(inputs);
    const scanId = newScan ? newScan.id : (target as { scanId: string }).scanId;
    checkResultsList(contents.simulationResults ?? []);
    (contents.scores ?? []).forEach((s, i) => {
      checkNeuronKey(s);
      checkScores(s.scores, `scores[${i}]`);
    });
    (contents.explanations ?? []).forEach((e) => checkNeuronKey(e));
    return this.write(
      ['scans', 'scanInputs', 'neuronRecords', 'neuronSummaries', 'excerpts', 'vocabulary', 'explanations', 'simulations', 'scores'],
      'importing',
      async (ctx) => {
        if (newScan) await this.insertScan(ctx, newScan, inputs);
        else await ctx.scan(scanId);
        if (contents.records) await this.writeRecords(ctx, scanId, contents.records);
        for (const e of contents.explanations ?? []) {
          const row: ExplanationRow = { ...e, scanId };
          await ctx.replace('explanations', scanId, row, [scanId, e.layer, e.neuron, e.explanation]);
        }
        await this.writeSimulationResults(ctx, scanId, contents.simulationResults ?? [], 'imported');
        for (const s of contents.scores ?? []) {
          await this.writeScores(ctx, scanId, s, [s.scores], 'imported');
        }
        await ctx.finish(now);
        return ctx.updatedScan(scanId)!;
      },
    );
  }

  // ---- LLM cache and job steps ---------------------------------------------------------------

  /** A ResponseCache over the `llmCache` store; a damaged entry reads as a miss. */
  responseCache(): ResponseCache {
    const checkKey = (key: string) => {
      if (typeof key !== 'string' || key === '') throw new StoreError('a response-cache key must be a non-empty string');
    };
    return {
      get: async (key: string): Promise<ChatResponse | undefined> => {
        checkKey(key);
        const row = await this.read('reading the LLM cache', () => this.db.get('llmCache', key));
        if (!row) return undefined;
        try {
          return normalizeChatResponse(row.response);
        } catch {
          return undefined;
        }
      },
      set: async (key: string, value: ChatResponse): Promise<void> => {
        checkKey(key);
        await this.write(['llmCache'], 'caching an LLM answer', async (ctx) => {
          await ctx.put('llmCache', { key, response: value, storedAt: Date.now() });
        });
      },
    };
  }

  async clearResponseCache(): Promise<void> {
    await this.write(['llmCache'], 'clearing the LLM cache', async ({ tx }) => tx.objectStore('llmCache').clear());
  }

  /**
   * A JobStore over the `jobSteps` store. Values are kept as JSON text, exactly as the memory and
   * file job stores do, so a resumed job reads back what a fresh one would have computed; a put
   * resolves once the step is committed with strict durability.
   */
  jobStore(): JobStore {
    const checkIds = (jobId: string, key: string) => {
      if (typeof jobId !== 'string' || jobId === '' || typeof key !== 'string' || key === '') {
        throw new StoreError('a job step needs a non-empty job id and step key');
      }
    };
    return {
      get: async (jobId: string, key: string): Promise<unknown> => {
        checkIds(jobId, key);
        const row = await this.read('reading a job step', () => this.db.get('jobSteps', [jobId, key]));
        if (!row) return undefined;
        try {
          return JSON.parse(row.json) as unknown;
        } catch {
          return undefined; // damaged: redo the step
        }
      },
      put: async (jobId: string, key: string, value: unknown): Promise<void> => {
        checkIds(jobId, key);
        let json: string | undefined;
        try {
          json = JSON.stringify(value);
        } catch (error) {
          throw new StoreError(`job step "${key}" is not JSON data: ${errorText(error)}`);
        }
        if (json === undefined) throw new StoreError(`job step "${key}" has no JSON value`);
        await this.write(['jobSteps'], 'storing a job step', async (ctx) => ctx.put('jobSteps', { jobId, key, json }), 'strict');
      },
    };
  }

  async deleteJob(jobId: string): Promise<void> {
    await this.write(['jobSteps'], 'deleting a job', async ({ tx }) =>
      tx.objectStore('jobSteps').delete(IDBKeyRange.bound([jobId], [jobId, []])),
    );
  }

  /** Deletes every job whose id starts with `prefix` (e.g. all jobs of one neuron). */
  async deleteJobsStartingWith(prefix: string): Promise<void> {
    if (typeof prefix !== 'string' || prefix === '') throw new StoreError('a job-id prefix must be a non-empty string');
    // Ids that start with the prefix sort from [prefix] up to [prefix + U+FFFF].
    await this.write(['jobSteps'], 'deleting jobs', async ({ tx }) =>
      tx.objectStore('jobSteps').delete(IDBKeyRange.bound([prefix], [`${prefix}\uffff`, []])),
    );
  }

  // ---- usage ---------------------------------------------------------------------------------

  async storageUsage(): Promise<StorageUsage> {
    const scans = await this.listScans();
    let estimate: { usage?: number; quota?: number } = {};
    try {
      estimate = await (this.options.estimate ?? (() => navigator.storage.estimate()))();
    } catch {
      // Not available (e.g. an insecure context): per-scan figures only.
    }
    return {
      usedBytes: estimate.usage,
      quotaBytes: estimate.quota,
      scans: scans.map(({ id, name, bytes }) => ({ id, name, bytes: bytes ?? 0 })).sort((a, b) => b.bytes - a.bytes),
    };
  }
}

// ---- input checks ------------------------------------------------------------------------------

function checkResultsList(results: readonly NeuronSimulationResults[]): void {
  if (!Array.isArray(results)) throw new StoreError('simulation results must be an array of NeuronSimulationResults');
  results.forEach((r, i) => {
    validateNeuronSimulationResults(r, `[${i}]`);
    checkDistinctExplanations(r, `[${i}].`);
  });
}

function checkScores(scores: ExplanationScores, where: string): void {
  if (typeof scores !== 'object' || scores === null || typeof scores.explanation !== 'string') {
    throw new StoreError(`${where} must be an object with the explanation it scores`);
  }
}

function checkProbe(input: ProbeInput): void {
  if (typeof input !== 'object' || input === null) throw new StoreError('a probe must be an object');
  if (input.scanId !== undefined) checkScanId(input.scanId);
  if (typeof input.text !== 'string') throw new StoreError('a probe needs its text');
  if (!Array.isArray(input.tokens) || !input.tokens.every((t) => typeof t === 'string')) throw new StoreError('probe tokens must be strings');
  if (input.model !== undefined && typeof input.model !== 'string') throw new StoreError('probe model must be a string');
  if (input.spans !== undefined && (!Array.isArray(input.spans) || input.spans.length !== input.tokens.length || !input.spans.every((s) => Number.isInteger(s?.start) && Number.isInteger(s?.end)))) {
    throw new StoreError('probe spans must give a start and an end for every token');
  }
  if (!Number.isInteger(input.dMlp) || input.dMlp < 1) throw new StoreError('probe dMlp must be a positive integer');
  if (!Array.isArray(input.layers)) throw new StoreError('probe layers must be an array');
  input.layers.forEach((l, i) => {
    if (!Number.isInteger(l?.layer) || l.layer < 0) throw new StoreError(`probe layers[${i}].layer must be a layer index`);
    if (!(l.data instanceof Float32Array)) throw new StoreError(`probe layers[${i}].data must be a Float32Array`);
    if (l.data.length !== input.tokens.length * input.dMlp) {
      throw new StoreError(`probe layers[${i}].data has ${l.data.length} values; expected ${input.tokens.length} tokens × ${input.dMlp}`);
    }
  });
}
