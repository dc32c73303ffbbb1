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
 *
 * Keys: scan-scoped stores are keyed by arrays that start with the scan id ([scanId, layer,
 * neuron, …]), so everything of one scan is one key range (see `scanRange`).
 */
import { openDB, type DBSchema, type IDBPDatabase, type IDBPTransaction, type StoreNames } from 'idb';
import { approximateBytes } from './approximate-size.ts';
import { StoreError } from './store-errors.ts';
import type {
  CheckpointRow,
  ExplanationRow,
  JobStepRow,
  LlmCacheRow,
  MeanTokensRow,
  NeuronRecordRow,
  Probe,
  ScanInputsRow,
  ScanMeta,
  ScoreRow,
  SimulationRow,
} from './store-types.ts';

export const DB_NAME = 'neurolens';
/** The schema version this code writes. */
export const DB_VERSION = 2;

type NeuronRowKey = [string, number, number];
type ExplanationRowKey = [string, number, number, string];

export interface NeurolensSchema extends DBSchema {
  scans: { key: string; value: ScanMeta; indexes: { byUpdatedAt: number } };
  scanInputs: { key: string; value: ScanInputsRow };
  checkpoints: { key: string; value: CheckpointRow };
  neuronRecords: { key: NeuronRowKey; value: NeuronRecordRow };
  meanTokens: { key: NeuronRowKey; value: MeanTokensRow };
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
export const SCAN_KEYED_STORES = ['neuronRecords', 'meanTokens', 'explanations', 'simulations', 'scores'] as const;
export type ScanKeyedStore = (typeof SCAN_KEYED_STORES)[number];

/** Every key of a scan-keyed store that starts with `prefix` ([scanId], [scanId, layer, neuron], …). */
export function prefixRange(prefix: (string | number)[]): IDBKeyRange {
  // Arrays sort after every number and string, so [...prefix, []] is above any longer key.
  return IDBKeyRange.bound(prefix, [...prefix, []]);
}

export const scanRange = (scanId: string): IDBKeyRange => prefixRange([scanId]);

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
      db.createObjectStore('meanTokens', { keyPath: ['scanId', 'layer', 'neuron'] });
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
      const scans = tx.objectStore('scans');
      scans.createIndex('byUpdatedAt', 'updatedAt');
      db.createObjectStore('scanInputs', { keyPath: 'scanId' });
      // Back-fill the byte count that v2 introduces, from every row the scan owns.
      const bytes = new Map<string, number>();
      const add = (scanId: unknown, row: unknown) => {
        if (typeof scanId === 'string') bytes.set(scanId, (bytes.get(scanId) ?? 0) + approximateBytes(row));
      };
      for (const name of [...SCAN_KEYED_STORES, 'checkpoints', 'probes'] as const) {
        for (let cursor = await tx.objectStore(name).openCursor(); cursor; cursor = await cursor.continue()) {
          add((cursor.value as { scanId?: unknown }).scanId, cursor.value);
        }
      }
      for (let cursor = await scans.openCursor(); cursor; cursor = await cursor.continue()) {
        const scan = cursor.value;
        await cursor.update({ ...scan, bytes: bytes.get(scan.id) ?? 0 });
      }
    },
  },
];

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
