/**
 * The browser's spill for a scan's sampled rows (row-spill.ts): a file in the origin private file
 * system, read and written synchronously through a FileSystemSyncAccessHandle (dedicated workers
 * only), so hundreds of megabytes of rows stay out of the worker's heap. Where the origin private
 * file system is unavailable the rows stay in memory.
 */
import { MemoryRowSpill, type RowSpill } from '../lib/activations/row-spill.ts';

const FOLDER = 'neurolens-scan-rows';

class OpfsRowSpill implements RowSpill {
  constructor(
    private readonly folder: FileSystemDirectoryHandle,
    private readonly name: string,
    private readonly handle: FileSystemSyncAccessHandle,
  ) {}

  write(bytes: Uint8Array, position: number): void {
    for (let done = 0; done < bytes.length; ) done += this.handle.write(bytes.subarray(done), { at: position + done });
  }

  read(into: Uint8Array, position: number): void {
    let done = 0;
    while (done < into.length) {
      const n = this.handle.read(into.subarray(done), { at: position + done });
      if (n === 0) break;
      done += n;
    }
    into.fill(0, done);
  }

  async close(discard: boolean): Promise<void> {
    this.handle.close();
    if (discard) await this.folder.removeEntry(this.name).catch(() => undefined);
  }
}

/** A fresh spill for scan `scanId` (replacing one a crashed run left behind). */
export async function openScanRowSpill(scanId: string): Promise<RowSpill> {
  const storage = (globalThis.navigator as Navigator | undefined)?.storage;
  if (typeof storage?.getDirectory !== 'function') return new MemoryRowSpill();
  try {
    const root = await storage.getDirectory();
    const folder = await root.getDirectoryHandle(FOLDER, { create: true });
    const name = `${scanId.replace(/[^\w-]/g, '_')}.rows`;
    const file = await folder.getFileHandle(name, { create: true });
    const handle = await file.createSyncAccessHandle();
    handle.truncate(0);
    return new OpfsRowSpill(folder, name, handle);
  } catch {
    // No origin private file system here (e.g. a private window in some browsers).
    return new MemoryRowSpill();
  }
}
