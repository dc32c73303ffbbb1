/**
 * One read-write transaction of the store: puts (with the test fault hook) and the per-scan byte
 * accounting that is written back, with the scan's update time, when the work is done.
 */
import type { IDBPTransaction } from 'idb';
import { approximateBytes } from './approximate-size.ts';
import type { NeurolensSchema, StoreName } from './db.ts';
import { StoreError } from './store-errors.ts';
import type { ScanMeta } from './store-types.ts';

export type WriteTx = IDBPTransaction<NeurolensSchema, StoreName[], 'readwrite'>;
type Row<N extends StoreName> = NeurolensSchema[N]['value'];
/** Called after each put of a transaction; throwing aborts it (fault injection for tests). */
export type AfterPutHook = (store: StoreName, count: number) => void;

export class WriteContext {
  private puts = 0;
  /** Scans touched by this write, with their byte change. */
  private readonly scans = new Map<string, { scan: ScanMeta; delta: number }>();

  constructor(
    readonly tx: WriteTx,
    private readonly afterPut: AfterPutHook | undefined,
  ) {}

  /** Issues a put; the returned promise settles with the request (already guarded against unhandled rejection). */
  put<N extends StoreName>(name: N, row: Row<N>): Promise<unknown> {
    const store = this.tx.objectStore(name) as unknown as { put(row: unknown): Promise<unknown> };
    const request = store.put(row);
    request.catch(() => undefined);
    this.puts++;
    this.afterPut?.(name, this.puts);
    return request;
  }

  /** Loads a scan for writing; fails if it does not exist. */
  async scan(scanId: string): Promise<ScanMeta> {
    const touched = this.scans.get(scanId);
    if (touched) return touched.scan;
    const scan = await this.tx.objectStore('scans').get(scanId);
    if (!scan) throw new StoreError(`there is no scan with id ${JSON.stringify(scanId)}`);
    this.scans.set(scanId, { scan, delta: 0 });
    return scan;
  }

  /** A scan created in this transaction. */
  adopt(scan: ScanMeta): void {
    this.scans.set(scan.id, { scan, delta: 0 });
  }

  /** Records that `newRow` replaces `oldRow` (either may be absent) in one of the scan's stores. */
  account(scanId: string, newRow: unknown, oldRow: unknown): void {
    const touched = this.scans.get(scanId);
    if (!touched) throw new StoreError(`internal: scan ${scanId} was not loaded for writing`);
    touched.delta += (newRow === undefined ? 0 : approximateBytes(newRow)) - (oldRow === undefined ? 0 : approximateBytes(oldRow));
  }

  /** Puts a scan-owned row, accounting for the row it replaces. */
  async replace<N extends StoreName>(name: N, scanId: string, row: Row<N>, key: IDBValidKey): Promise<void> {
    const store = this.tx.objectStore(name) as unknown as { get(key: IDBValidKey): Promise<unknown> };
    const old = await store.get(key);
    this.account(scanId, row, old);
    await this.put(name, row);
  }

  /** Writes the touched scans' new byte counts and update times. */
  async finish(now: number, patches: Map<string, Partial<ScanMeta>> = new Map()): Promise<void> {
    for (const [id, { scan, delta }] of this.scans) {
      const updated: ScanMeta = { ...scan, ...patches.get(id), updatedAt: Math.max(now, scan.updatedAt) };
      updated.bytes = Math.max(0, Math.round((scan.bytes ?? 0) + delta));
      await this.put('scans', updated);
      this.scans.set(id, { scan: updated, delta: 0 });
    }
  }

  updatedScan(id: string): ScanMeta | undefined {
    return this.scans.get(id)?.scan;
  }
}
