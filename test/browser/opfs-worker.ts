/// <reference lib="webworker" />
/**
 * Runs in a dedicated worker (FileSystemSyncAccessHandles exist only there): exercises the scan's
 * origin-private-file-system storage (src/worker/opfs-storage.ts) and posts what it saw.
 */
import type { ScanCheckpoint } from '../../src/lib/activations/scan.ts';
import type { NeurolensStore } from '../../src/lib/store/neurolens-store.ts';
import { openScanCheckpoints, openScanRowSpill, removeOrphanScanFiles } from '../../src/worker/opfs-storage.ts';

declare const self: DedicatedWorkerGlobalScope;

const checkpoint = (excerptsDone: number, bytes: number): ScanCheckpoint => ({
  fingerprint: `v4:test:${excerptsDone}`,
  excerptsDone,
  state: [new TextEncoder().encode(`{"n":${excerptsDone}}`).buffer as ArrayBuffer, Uint8Array.from({ length: bytes }, (_, i) => (i * 7 + excerptsDone) & 0xff).buffer],
});
const summary = (c: ScanCheckpoint | null | undefined) =>
  c ? { fingerprint: c.fingerprint, excerptsDone: c.excerptsDone, parts: c.state.map((p) => Array.from(new Uint8Array(p)).reduce((a, b) => (a * 31 + b) >>> 0, 7)) } : null;

async function fileNames(): Promise<string[]> {
  const folder = await (await navigator.storage.getDirectory()).getDirectoryHandle('neurolens-scans', { create: true });
  const names: string[] = [];
  for await (const name of (folder as FileSystemDirectoryHandle & { keys(): AsyncIterable<string> }).keys()) names.push(name);
  return names.sort();
}

async function run() {
  const unusedStore = {} as NeurolensStore; // only used without an origin private file system
  const checkpoints = await openScanCheckpoints(unusedStore, 'scan-a');
  const empty = summary(await checkpoints.load());
  const first = checkpoint(64, 3000);
  await checkpoints.save(first);
  const afterFirst = summary(await checkpoints.load());
  const second = checkpoint(128, 5000);
  await checkpoints.save(second);
  const afterSecond = summary(await checkpoints.load());
  const filesWithCheckpoints = await fileNames();

  // A crash while the newest checkpoint was written: its file lacks the final mark.
  const folder = await (await navigator.storage.getDirectory()).getDirectoryHandle('neurolens-scans');
  const newest = filesWithCheckpoints.filter((n) => n.startsWith('scan-a.checkpoint'));
  let cut = false;
  for (const name of newest) {
    const handle = await (await folder.getFileHandle(name)).createSyncAccessHandle();
    if (handle.getSize() > 5000) {
      handle.truncate(handle.getSize() - 3);
      cut = true;
    }
    handle.close();
  }
  const afterCrash = summary(await checkpoints.load());
  await checkpoints.save(checkpoint(192, 100));
  const afterThird = summary(await checkpoints.load());

  const spill = await openScanRowSpill('scan-a');
  spill.write(Uint8Array.of(1, 2, 3), 10);
  spill.write(Uint8Array.of(9), 5_000_000);
  const read = new Uint8Array(6);
  spill.read(read, 9);
  const beyond = new Uint8Array(4);
  spill.read(beyond, 5_000_000);
  await spill.close(false);
  const other = await openScanRowSpill('scan-b');
  await other.close(false);
  const beforePrune = await fileNames();
  await removeOrphanScanFiles(['scan-a']);
  const afterPrune = await fileNames();
  await checkpoints.clear();
  const reopened = await openScanRowSpill('scan-a');
  await reopened.close(true);
  const afterClear = await fileNames();
  return {
    empty, first: summary(first), afterFirst, second: summary(second), afterSecond, cut, afterCrash, afterThird,
    read: Array.from(read), beyond: Array.from(beyond), filesWithCheckpoints, beforePrune, afterPrune, afterClear,
  };
}

run().then(
  (result) => self.postMessage({ result }),
  (err: unknown) => self.postMessage({ error: String((err as Error)?.stack ?? err) }),
);
