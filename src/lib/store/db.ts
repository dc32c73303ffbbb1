/**
 * The Neurolens IndexedDB database: object stores, their keys, and the versioned schema.
 *
 * Schema changes are an ordered list of upgrade steps, one per version. Opening an older database
 * runs every step after its version, in order, inside the one upgrade transaction, so a database
 * of any older version ends in the same state as a new one (and a failing step aborts the upgrade,
 * leaving the old version untouched). Never edit a released step: add a new version.
 *
 * - v1: every object store (see NeurolensSchema).
 * - v2: `scans` gets an index on `updatedAt` (recent-first listing) and a per-scan approximate
 *   byte count, `bytes`, computed for existing scans from their stored rows; new store
 *   `scanInputs` (scanId → corpus and settings, to re-run a scan).
 * - v3: compact records. New stores `excerpts` ([scanId, index], index `byHash` on [scanId, hash])
 *   and `vocabulary` ([scanId, firstId]) keep each excerpt's tokens once per scan (see
 *   stored-excerpts.ts); `neuronRecords` rows refer to excerpts (compact-record.ts). Every
 *   stored record is rewritten in the new layout (read with legacy-record.ts), the `meanTokens`
 *   store is dropped, and every scan's `bytes` is counted again.
 * - v4: new store `neuronSummaries` ([scanId, layer]): every record's NeuronSummary, kept in columns
 *   per layer (neuron-summaries.ts), computed here from every stored record; explanation rows get
 *   `score`, the headline score of their scores or simulation rows (explanation-score.ts); every
 *   scan's `bytes` is counted again.
 *
 * Keys: scan-scoped stores are keyed by arrays that start with the scan id ([scanId, layer,
 * neuron, …]), so everything of one scan is one key range (see `scanRange`).
 */
import { openDB, type DBSchema, type IDBPDatabase, type IDBPTransaction, type StoreNames } from 'idb';
import { summarizeNeuronRecord, type NeuronSummary } from '../activations/neuron-summary.ts';
import { approximateBytes } from './approximate-size.ts';
import { compactNeuronRecord, expandNeuronRecord } from './compact-record.ts';
import { ExcerptTable } from './excerpt-table.ts';
import { scoreOfScores, scoreOfSimulation } from './explanation-score.ts';
import { expandLegacyRecord, type LegacyNeuronRecordRow } from './legacy-record.ts';
import { type NeuronSummaryRow, withSummaries } from './neuron-summaries.ts';
import { StoreError } from './store-errors.ts';
import { loadVocabulary, storeExcerpts } from './stored-excerpts.ts';
import type {
  CheckpointRow,
  ExcerptRow,
  ExplanationRow,
  JobStepRow,
  LlmCacheRow,
  NeuronRecordRow,
  Probe,
  ScanInputsRow,
  ScanMeta,
  ScoreRow,
  SimulationRow,
  VocabularyRow,
} from './store-types.ts';

export { prefixRange, scanRange } from './key-ranges.ts';

export const DB_NAME = 'neurolens';
/** The schema version this code writes. */
export const DB_VERSION = 4;

type NeuronRowKey = [string, number, number];
type ExplanationRowKey = [string, number, number, string];

export interface NeurolensSchema extends DBSchema {
  scans: { key: string; value: ScanMeta; indexes: { byUpdatedAt: number } };
  scanInputs: { key: string; value: ScanInputsRow };
  checkpoints: { key: string; value: CheckpointRow };
  neuronRecords: { key: NeuronRowKey; value: NeuronRecordRow };
  neuronSummaries: { key: [string, number]; value: NeuronSummaryRow };
  excerpts: { key: [string, number]; value: ExcerptRow; indexes: { byHash: [string, number] } };
  vocabulary: { key: [string, number]; value: VocabularyRow };
  probes: { key: string; value: Probe; indexes: { byScan: string } };
  explanations: { key: ExplanationRowKey; value: ExplanationRow };
  simulations: { key: ExplanationRowKey; value: SimulationRow };
  scores: { key: ExplanationRowKey; value: ScoreRow };
  llmCache: { key: string; value: LlmCacheRow };
  jobSteps: { key: [string, string]; value: JobStepRow };
}

export type StoreName = StoreNames<NeurolensSchema>;
export type NeurolensDb = IDBPDatabase<NeurolensSchema>;
type UpgradeTransaction = IDBPTransaction<NeurolensSchema, StoreName[], 'versionchange'>;

/** Stores whose keys start with a scan id, i.e. whose rows belong to one scan. */
export const SCAN_KEYED_STORES = ['neuronRecords', 'neuronSummaries', 'excerpts', 'vocabulary', 'explanations', 'simulations', 'scores'] as const;
export type ScanKeyedStore = (typeof SCAN_KEYED_STORES)[number];

interface UpgradeStep {
  version: number;
  /** Runs inside the upgrade transaction; may be async (IndexedDB requests only). */
  upgrade(db: NeurolensDb, tx: UpgradeTransaction): void | Promise<void>;
}

/** The schema's history, oldest first. */
const UPGRADE_STEPS: readonly UpgradeStep[] = [
  {
    version: 1,
    upgrade(db) {
      db.createObjectStore('scans', { keyPath: 'id' });
      db.createObjectStore('checkpoints', { keyPath: 'scanId' });
      db.createObjectStore('neuronRecords', { keyPath: ['scanId', 'layer', 'neuron'] });
      db.createObjectStore('meanTokens' as StoreName, { keyPath: ['scanId', 'layer', 'neuron'] }); // dropped in v3
      const probes = db.createObjectStore('probes', { keyPath: 'id' });
      probes.createIndex('byScan', 'scanId');
      for (const name of ['explanations', 'simulations', 'scores'] as const) {
        db.createObjectStore(name, { keyPath: ['scanId', 'layer', 'neuron', 'explanation'] });
      }
      db.createObjectStore('llmCache', { keyPath: 'key' });
      db.createObjectStore('jobSteps', { keyPath: ['jobId', 'key'] });
    },
  },
  {
    version: 2,
    async upgrade(db, tx) {
      tx.objectStore('scans').createIndex('byUpdatedAt', 'updatedAt');
      db.createObjectStore('scanInputs', { keyPath: 'scanId' });
      // Back-fill the byte count that v2 introduces, from every row the scan owns.
      await countScanBytes(tx, ['neuronRecords', 'meanTokens', 'explanations', 'simulations', 'scores', 'checkpoints', 'probes']);
    },
  },
  {
    version: 3,
    async upgrade(db, tx) {
      db.createObjectStore('excerpts', { keyPath: ['scanId', 'index'] }).createIndex('byHash', ['scanId', 'hash']);
      db.createObjectStore('vocabulary', { keyPath: ['scanId', 'firstId'] });
      await compactStoredRecords(tx);
      db.deleteObjectStore('meanTokens' as StoreName);
      await countScanBytes(tx, ['neuronRecords', 'excerpts', 'vocabulary', 'explanations', 'simulations', 'scores', 'checkpoints', 'probes']);
    },
  },
  {
    version: 4,
    async upgrade(db, tx) {
      db.createObjectStore('neuronSummaries', { keyPath: ['scanId', 'layer'] });
      await summarizeStoredRecords(tx);
      await scoreStoredExplanations(tx);
      await countScanBytes(tx, ['neuronRecords', 'neuronSummaries', 'excerpts', 'vocabulary', 'explanations', 'simulations', 'scores', 'checkpoints', 'probes']);
    },
  },
];

/** Sets every scan's `bytes` to the approximate size of its rows in `stores`. */
async function countScanBytes(tx: UpgradeTransaction, stores: readonly string[]): Promise<void> {
  const bytes = new Map<string, number>();
  for (const name of stores) {
    for (let cursor = await tx.objectStore(name as StoreName).openCursor(); cursor; cursor = await cursor.continue()) {
      const scanId = (cursor.value as { scanId?: unknown }).scanId;
      if (typeof scanId === 'string') bytes.set(scanId, (bytes.get(scanId) ?? 0) + approximateBytes(cursor.value));
    }
  }
  const scans = tx.objectStore('scans');
  for (let cursor = await scans.openCursor(); cursor; cursor = await cursor.continue()) {
    await cursor.update({ ...cursor.value, bytes: bytes.get(cursor.value.id) ?? 0 });
  }
}

/**
 * Rewrites every v1/v2 record row in the v3 layout, scan by scan: each record is read whole
 * (legacy-record.ts) and compacted in the encoding it was stored in, so its numbers stay exactly
 * as they were; the scan's excerpts are stored once after its last row. A row that cannot be
 * read aborts the upgrade (the database then stays at its old version, untouched).
 */
async function compactStoredRecords(tx: UpgradeTransaction): Promise<void> {
  const finishScan = async (scanId: string, table: ExcerptTable) => {
    const scanIndex = await storeExcerpts(tx, scanId, table, (name, row) => tx.objectStore(name).put(row as never));
    // The scan had no stored excerpts, so they are numbered as in the table, which the rows already use.
    if (scanIndex.some((index, i) => index !== i)) throw new StoreError(`migrating scan ${scanId}: excerpts were numbered differently`);
  };
  let current: { scanId: string; table: ExcerptTable } | undefined;
  for (let cursor = await tx.objectStore('neuronRecords').openCursor(); cursor; cursor = await cursor.continue()) {
    const legacy = cursor.value as unknown as LegacyNeuronRecordRow;
    if (current?.scanId !== legacy.scanId) {
      if (current) await finishScan(current.scanId, current.table);
      current = { scanId: legacy.scanId, table: new ExcerptTable() };
    }
    const compact = compactNeuronRecord(expandLegacyRecord(legacy), current.table, legacy.encoding);
    await cursor.update({ ...compact, scanId: legacy.scanId });
  }
  if (current) await finishScan(current.scanId, current.table);
}

/**
 * Writes the summary rows of every stored record, scan by scan and layer by layer (the records'
 * key order). A record that cannot be read back gets no summary (it shows its error when opened)
 * rather than keeping the whole database from opening.
 */
async function summarizeStoredRecords(tx: UpgradeTransaction): Promise<void> {
  let scan: { id: string; vocabulary: string[]; tokens: Map<number, string[]> } | undefined;
  let layer: { scanId: string; layer: number; summaries: NeuronSummary[] } | undefined;
  const flush = async () => {
    if (layer && layer.summaries.length > 0) await tx.objectStore('neuronSummaries').put(withSummaries(undefined, layer.scanId, layer.layer, layer.summaries));
    layer = undefined;
  };
  const excerpts = tx.objectStore('excerpts');
  for (let cursor = await tx.objectStore('neuronRecords').openCursor(); cursor; cursor = await cursor.continue()) {
    const row = cursor.value;
    if (scan?.id !== row.scanId) scan = { id: row.scanId, vocabulary: await loadVocabulary(tx, row.scanId).catch(() => []), tokens: new Map() };
    if (layer?.scanId !== row.scanId || layer.layer !== row.layer) {
      await flush();
      layer = { scanId: row.scanId, layer: row.layer, summaries: [] };
    }
    const { vocabulary, tokens } = scan;
    const missing = [...new Set(Array.from(row.excerpts))].filter((e) => !tokens.has(e));
    const found = await Promise.all(missing.map((e) => excerpts.get([row.scanId, e])));
    missing.forEach((e, i) => {
      const ids = found[i]?.tokenIds;
      if (ids && Array.from(ids).every((id) => id < vocabulary.length)) tokens.set(e, Array.from(ids, (id) => vocabulary[id]));
    });
    try {
      if (missing.some((e) => !tokens.has(e))) throw new StoreError('an excerpt it shows is missing');
      layer.summaries.push(summarizeNeuronRecord(expandNeuronRecord(row, (e) => tokens.get(e)!)));
    } catch (error) {
      console.warn(`Neurolens database upgrade: no summary for the damaged record ${row.layer}:${row.neuron} of scan ${row.scanId}:`, error);
    }
  }
  await flush();
}

/** Gives every explanation row the headline score of its scores row, else of its simulation row. */
async function scoreStoredExplanations(tx: UpgradeTransaction): Promise<void> {
  const scores = new Map<string, number | null>();
  for (let cursor = await tx.objectStore('simulations').openCursor(); cursor; cursor = await cursor.continue()) {
    scores.set(JSON.stringify(cursor.primaryKey), scoreOfSimulation(cursor.value.scoredExplanation));
  }
  for (let cursor = await tx.objectStore('scores').openCursor(); cursor; cursor = await cursor.continue()) {
    scores.set(JSON.stringify(cursor.primaryKey), scoreOfScores(cursor.value.scores));
  }
  for (let cursor = await tx.objectStore('explanations').openCursor(); cursor; cursor = await cursor.continue()) {
    const key = JSON.stringify(cursor.primaryKey);
    if (scores.has(key)) await cursor.update({ ...cursor.value, score: scores.get(key)! });
  }
}

if (UPGRADE_STEPS[UPGRADE_STEPS.length - 1].version !== DB_VERSION) throw new Error('DB_VERSION does not match the upgrade steps');

export interface OpenOptions {
  /** Open at an older schema version (tests of migrations); default DB_VERSION. */
  version?: number;
  /** Called when another tab needs a newer version: this connection has been closed. */
  onClosedByUpgrade?: () => void;
  /** How long to wait for other tabs to let go of an older version before giving up (default 10 s). */
  blockedTimeoutMs?: number;
}

/**
 * Runs the upgrade steps after `oldVersion` up to `newVersion`, in order. Synchronous steps run
 * at once (an exception aborts the upgrade); a step that returns a promise delays the ones after it.
 */
function runUpgradeSteps(db: NeurolensDb, tx: UpgradeTransaction, oldVersion: number, newVersion: number): void {
  let pending: Promise<void> | undefined;
  for (const step of UPGRADE_STEPS) {
    if (step.version <= oldVersion || step.version > newVersion) continue;
    if (pending) pending = pending.then(() => step.upgrade(db, tx));
    else pending = step.upgrade(db, tx) ?? undefined;
  }
  tx.done.catch(() => undefined); // a failed upgrade is reported by the open request
  pending?.catch((error: unknown) => {
    console.error('Neurolens database upgrade failed:', error);
    try {
      tx.abort(); // the open request then fails and the database keeps its old version
    } catch {
      // already finished
    }
  });
}

/**
 * Opens (creating or upgrading as needed) the Neurolens database. Errors are StoreErrors that say
 * what to do: a database from a newer Neurolens, another tab holding an old version open, or
 * IndexedDB being unavailable (e.g. some private-browsing modes).
 */
export async function openNeurolensDb(name = DB_NAME, options: OpenOptions = {}): Promise<NeurolensDb> {
  const version = options.version ?? DB_VERSION;
  if (!Number.isInteger(version) || version < 1 || version > DB_VERSION) {
    throw new StoreError(`schema version must be an integer from 1 to ${DB_VERSION}, got ${version}`);
  }
  if (typeof indexedDB === 'undefined') {
    throw new StoreError('IndexedDB is not available in this environment (private browsing or an old browser?)');
  }
  let blockedTimer: ReturnType<typeof setTimeout> | undefined;
  let gaveUp = false;
  let rejectBlocked: (error: Error) => void = () => {};
  const blocked = new Promise<never>((_, reject) => (rejectBlocked = reject));
  let db: NeurolensDb | undefined;
  const opening = openDB<NeurolensSchema>(name, version, {
    upgrade(db, oldVersion, newVersion, tx) {
      runUpgradeSteps(db, tx, oldVersion, newVersion ?? version);
    },
    blocked() {
      blockedTimer ??= setTimeout(() => {
        gaveUp = true;
        rejectBlocked(
          new StoreError('another tab keeps an older version of the Neurolens database open; close or reload it and try again'),
        );
      }, options.blockedTimeoutMs ?? 10_000);
    },
    blocking() {
      // Let the other tab upgrade; this connection is closed and its store refuses further calls.
      db?.close();
      options.onClosedByUpgrade?.();
    },
  });
  // If we gave up while blocked, a late success must not leak an open connection.
  opening.then((late) => gaveUp && late.close()).catch(() => undefined);
  try {
    db = await Promise.race([opening, blocked]);
    return db;
  } catch (error) {
    if (error instanceof StoreError) throw error;
    const { name: errorName, message } = error as { name?: string; message?: string };
    if (errorName === 'VersionError') {
      throw new StoreError(
        `the Neurolens database "${name}" was written by a newer version of Neurolens (this one reads schema version ${version}); update the app`,
        { cause: error },
      );
    }
    throw new StoreError(`cannot open the Neurolens database "${name}": ${errorName ?? 'Error'}: ${message ?? String(error)}`, {
      cause: error,
    });
  } finally {
    clearTimeout(blockedTimer);
  }
}
