/**
 * The browser's storage for a running scan (scan-job.ts adapters), in the origin private file
 * system, read and written synchronously through FileSystemSyncAccessHandles (dedicated workers
 * only):
 * - the sampled rows (row-spill.ts), hundreds of megabytes for GPT-2 small, out of the heap;
 * - checkpoints: the statistics of a whole GPT-2 small are about 180 MB, more than IndexedDB takes
 *   in one value in Chromium (about 133 MB).
 * Where the origin private file system is unavailable, rows stay in memory and checkpoints go to
 * IndexedDB (the store), which holds the state of smaller scans.
 */
import { MemoryRowSpill, type RowSpill } from '../lib/activations/row-spill.ts';
import type { ScanCheckpoint, ScanCheckpointStore } from '../lib/activations/scan.ts';
import type { NeurolensStore } from '../lib/store/neurolens-store.ts';

const FOLDER = 'neurolens-scans';
const ROWS_SUFFIX = '.rows';
const CHECKPOINT_SUFFIXES = ['.checkpoint-a', '.checkpoint-b'];
const CHECKPOINT_FORMAT = 'neurolens.opfs-checkpoint';
/** Written after everything else: a checkpoint file without it at its end was cut short. */
const COMPLETE = new TextEncoder().encode('NLCKPTOK');

async function scanFolder(): Promise<FileSystemDirectoryHandle | null> {
  const storage = (globalThis.navigator as Navigator | undefined)?.storage;
  if (typeof storage?.getDirectory !== 'function') return null;
  try {
    return await (await storage.getDirectory()).getDirectoryHandle(FOLDER, { create: true });
  } catch {
    return null; // e.g. a private window in some browsers
  }
}

const fileStem = (scanId: string) => scanId.replace(/[^\w-]/g, '_');

async function openHandle(folder: FileSystemDirectoryHandle, name: string): Promise<FileSystemSyncAccessHandle> {
  return (await folder.getFileHandle(name, { create: true })).createSyncAccessHandle();
}

function writeAll(handle: FileSystemSyncAccessHandle, bytes: Uint8Array, position: number): void {
  for (let done = 0; done < bytes.length; ) done += handle.write(bytes.subarray(done), { at: position + done });
}

function readAll(handle: FileSystemSyncAccessHandle, into: Uint8Array, position: number): number {
  let done = 0;
  while (done < into.length) {
    const n = handle.read(into.subarray(done), { at: position + done });
    if (n === 0) break;
    done += n;
  }
  return done;
}

// ---- sampled rows ------------------------------------------------------------------------------

class OpfsRowSpill implements RowSpill {
  constructor(
    private readonly folder: FileSystemDirectoryHandle,
    private readonly name: string,
    private readonly handle: FileSystemSyncAccessHandle,
  ) {}

  write(bytes: Uint8Array, position: number): void {
    writeAll(this.handle, bytes, position);
  }

  read(into: Uint8Array, position: number): void {
    into.fill(0, readAll(this.handle, into, position));
  }

  async close(discard: boolean): Promise<void> {
    this.handle.close();
    if (discard) await this.folder.removeEntry(this.name).catch(() => undefined);
  }
}

/** A fresh spill for scan `scanId` (replacing one a crashed run left behind). */
export async function openScanRowSpill(scanId: string): Promise<RowSpill> {
  const folder = await scanFolder();
  if (!folder) return new MemoryRowSpill();
  const name = `${fileStem(scanId)}${ROWS_SUFFIX}`;
  const handle = await openHandle(folder, name);
  handle.truncate(0);
  return new OpfsRowSpill(folder, name, handle);
}

// ---- checkpoints -------------------------------------------------------------------------------

interface CheckpointHeader {
  format: string;
  sequence: number;
  fingerprint: string;
  excerptsDone: number;
  parts: number[];
}

/**
 * Checkpoints in two files used in turn, so a crash while one is written leaves the other: each
 * file is emptied, written, flushed, and only then marked complete (COMPLETE at its end).
 */
class OpfsCheckpointStore implements ScanCheckpointStore {
  constructor(
    private readonly folder: FileSystemDirectoryHandle,
    private readonly stem: string,
  ) {}

  /** The header of slot `slot`'s checkpoint, or null when it is missing or incomplete. */
  private async readSlot(slot: number, withParts: boolean): Promise<{ header: CheckpointHeader; state: ArrayBuffer[] } | null> {
    const handle = await openHandle(this.folder, `${this.stem}${CHECKPOINT_SUFFIXES[slot]}`);
    try {
      const size = handle.getSize();
      if (size < 4 + COMPLETE.length) return null;
      const length = new Uint8Array(4);
      readAll(handle, length, 0);
      const headerLength = new DataView(length.buffer).getUint32(0, true);
      const headerBytes = new Uint8Array(Math.min(headerLength, size));
      readAll(handle, headerBytes, 4);
      let header: CheckpointHeader;
      try {
        header = JSON.parse(new TextDecoder().decode(headerBytes));
      } catch {
        return null;
      }
      if (header.format !== CHECKPOINT_FORMAT || !Array.isArray(header.parts)) return null;
      const end = 4 + headerLength + header.parts.reduce((sum, n) => sum + n, 0);
      const marker = new Uint8Array(COMPLETE.length);
      if (size !== end + COMPLETE.length || readAll(handle, marker, end) !== COMPLETE.length || !marker.every((b, i) => b === COMPLETE[i])) return null;
      const state: ArrayBuffer[] = [];
      if (withParts) {
        let at = 4 + headerLength;
        for (const n of header.parts) {
          const part = new Uint8Array(n);
          readAll(handle, part, at);
          state.push(part.buffer);
          at += n;
        }
      }
      return { header, state };
    } finally {
      handle.close();
    }
  }

  private async latest(withParts: boolean): Promise<{ slot: number; header: CheckpointHeader; state: ArrayBuffer[] } | null> {
    let best: { slot: number; header: CheckpointHeader; state: ArrayBuffer[] } | null = null;
    for (let slot = 0; slot < CHECKPOINT_SUFFIXES.length; slot++) {
      const found = await this.readSlot(slot, false);
      if (found && (!best || found.header.sequence > best.header.sequence)) best = { slot, ...found };
    }
    if (best && withParts) best = { slot: best.slot, ...(await this.readSlot(best.slot, true))! };
    return best;
  }

  async load(): Promise<ScanCheckpoint | null> {
    const found = await this.latest(true);
    return found && { fingerprint: found.header.fingerprint, excerptsDone: found.header.excerptsDone, state: found.state };
  }

  async save(checkpoint: ScanCheckpoint): Promise<void> {
    const current = await this.latest(false);
    const slot = current ? 1 - current.slot : 0;
    const header: CheckpointHeader = {
      format: CHECKPOINT_FORMAT,
      sequence: (current?.header.sequence ?? 0) + 1,
      fingerprint: checkpoint.fingerprint,
      excerptsDone: checkpoint.excerptsDone,
      parts: checkpoint.state.map((p) => p.byteLength),
    };
    const headerBytes = new TextEncoder().encode(JSON.stringify(header));
    const handle = await openHandle(this.folder, `${this.stem}${CHECKPOINT_SUFFIXES[slot]}`);
    try {
      handle.truncate(0);
      handle.flush();
      const length = new Uint8Array(4);
      new DataView(length.buffer).setUint32(0, headerBytes.length, true);
      writeAll(handle, length, 0);
      writeAll(handle, headerBytes, 4);
      let at = 4 + headerBytes.length;
      for (const part of checkpoint.state) {
        writeAll(handle, new Uint8Array(part), at);
        at += part.byteLength;
      }
      handle.flush();
      writeAll(handle, COMPLETE, at);
      handle.flush();
    } finally {
      handle.close();
    }
  }

  async clear(): Promise<void> {
    for (const suffix of CHECKPOINT_SUFFIXES) await this.folder.removeEntry(`${this.stem}${suffix}`).catch(() => undefined);
  }
}

/** Where scan `scanId` checkpoints: the origin private file system, else the store (IndexedDB). */
export async function openScanCheckpoints(store: NeurolensStore, scanId: string): Promise<ScanCheckpointStore & { clear(): Promise<void> }> {
  const folder = await scanFolder();
  if (folder) return new OpfsCheckpointStore(folder, fileStem(scanId));
  return { ...store.checkpointStoreFor(scanId), clear: () => store.deleteCheckpoint(scanId) };
}

/** Removes the files of scans that are no longer in the store (deleted while paused, say). */
export async function removeOrphanScanFiles(keep: readonly string[]): Promise<void> {
  const folder = await scanFolder();
  if (!folder) return;
  const stems = new Set(keep.map(fileStem));
  const suffixes = [ROWS_SUFFIX, ...CHECKPOINT_SUFFIXES];
  const names: string[] = [];
  for await (const name of (folder as FileSystemDirectoryHandle & { keys(): AsyncIterable<string> }).keys()) names.push(name);
  for (const name of names) {
    const suffix = suffixes.find((s) => name.endsWith(s));
    if (suffix && !stems.has(name.slice(0, -suffix.length))) await folder.removeEntry(name).catch(() => undefined);
  }
}
