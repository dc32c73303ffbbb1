/**
 * Page used by test/browser-store.test.ts: puts the real store modules on window.neurolensStore
 * so the test can drive them (with real IndexedDB, CompressionStream, Float16Array) through
 * page.evaluate, plus a few helpers that turn stored data into plain JSON for comparisons.
 */
import { deleteDB, openDB } from 'idb';
import { runScan } from '../../src/lib/activations/scan.ts';
import { buildNeuronRecords } from '../../src/lib/activations/sample-rows.ts';
import { ScanStatistics } from '../../src/lib/activations/scan-statistics.ts';
import type { ActivationRecord, NeuronRecord } from '../../src/lib/activations/records.ts';
import { serializeJsonl } from '../../src/lib/explain/formats.ts';
import { approximateBytes } from '../../src/lib/store/approximate-size.ts';
import * as bundle from '../../src/lib/store/bundle-format.ts';
import * as activations from '../../src/lib/store/compact-activations.ts';
import { compactNeuronRecord, expandNeuronRecord } from '../../src/lib/store/compact-record.ts';
import { ExcerptTable } from '../../src/lib/store/excerpt-table.ts';
import { DB_VERSION, openNeurolensDb } from '../../src/lib/store/db.ts';
import * as importExport from '../../src/lib/store/import-export.ts';
import { NeurolensStore } from '../../src/lib/store/neurolens-store.ts';
import * as neuronSummaries from '../../src/lib/store/neuron-summaries.ts';
import { BundleError, StorageFullError, StoreError } from '../../src/lib/store/store-errors.ts';

/** Typed arrays and buffers as {type, values} so they survive page.evaluate and compare with toEqual. */
function plain(value: unknown): unknown {
  if (ArrayBuffer.isView(value)) return { type: value.constructor.name, values: Array.from(value as unknown as ArrayLike<number>) };
  if (value instanceof ArrayBuffer) return { type: 'ArrayBuffer', values: Array.from(new Uint8Array(value)) };
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  return value;
}

/** Every row of every object store of a database, as plain data (to check that nothing changed). */
async function dumpDb(name: string): Promise<Record<string, unknown[]>> {
  const db = await openDB(name);
  try {
    const out: Record<string, unknown[]> = {};
    for (const store of Array.from(db.objectStoreNames).sort()) out[store] = (await db.getAll(store)).map(plain);
    return out;
  } finally {
    db.close();
  }
}

/** Store names, key paths and indexes of a database. */
async function describeSchema(name: string) {
  const db = await openDB(name);
  try {
    const tx = db.transaction(Array.from(db.objectStoreNames), 'readonly');
    return {
      version: db.version,
      stores: Array.from(db.objectStoreNames)
        .sort()
        .map((storeName) => {
          const store = tx.objectStore(storeName);
          return {
            name: storeName,
            keyPath: store.keyPath,
            indexes: Array.from(store.indexNames)
              .sort()
              .map((i) => ({ name: i, keyPath: store.index(i).keyPath })),
          };
        }),
    };
  } finally {
    db.close();
  }
}

/** An error as plain data for the test to check. */
function describeError(error: unknown) {
  const e = error as Error & { usedBytes?: number; quotaBytes?: number };
  return {
    name: e?.name,
    message: e?.message,
    isStoreError: error instanceof StoreError,
    isStorageFull: error instanceof StorageFullError,
    isBundleError: error instanceof BundleError,
    usedBytes: e?.usedBytes,
    quotaBytes: e?.quotaBytes,
  };
}

/** Runs `action` and returns its error (or null when it succeeded). */
async function errorOf(action: () => unknown): Promise<ReturnType<typeof describeError> | null> {
  try {
    await action();
    return null;
  } catch (error) {
    return describeError(error);
  }
}

/**
 * A record row as schema v1/v2 code wrote it, for migration tests: the whole record with each
 * ActivationRecord's activations replaced by their count, plus all values packed in one array
 * (random_sample, quantile bins, most_positive_activation_records). Written here from that
 * description, apart from the migration's reader (src/lib/store/legacy-record.ts).
 */
function legacyRecordRow(scanId: string, record: NeuronRecord, encoding: 'float16' | 'float32' | 'float64') {
  const counted = (e: ActivationRecord) => ({ ...e, activations: e.activations.length });
  const lists = [record.random_sample, ...(record.random_sample_by_quantile ?? []), record.most_positive_activation_records];
  return {
    scanId,
    layer: record.neuron_id.layer_index,
    neuron: record.neuron_id.neuron_index,
    encoding,
    skeleton: {
      ...record,
      random_sample: record.random_sample.map(counted),
      random_sample_by_quantile: record.random_sample_by_quantile?.map((bin) => bin.map(counted)) ?? null,
      most_positive_activation_records: record.most_positive_activation_records.map(counted),
    },
    activations: activations.packValues(lists.flat().flatMap((e) => e.activations), encoding),
  };
}

const harness = {
  NeurolensStore,
  openNeurolensDb,
  DB_VERSION,
  deleteDB,
  openDB,
  importExport,
  bundle,
  activations,
  compactNeuronRecord,
  expandNeuronRecord,
  ExcerptTable,
  neuronSummaries,
  legacyRecordRow,
  approximateBytes,
  runScan,
  buildNeuronRecords,
  ScanStatistics,
  serializeJsonl,
  plain,
  dumpDb,
  describeSchema,
  errorOf,
};

export type StoreHarness = typeof harness;
(window as unknown as { neurolensStore: StoreHarness }).neurolensStore = harness;
document.getElementById('status')!.textContent = 'ready';
