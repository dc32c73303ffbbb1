/**
 * Where a scan puts the activation rows of its sampled excerpts until the records are built
 * (sample-rows.ts): storage addressed by byte position, so the rows of a whole model (hundreds of
 * megabytes for GPT-2 small) stay off the heap. Implementations: a file in Node
 * (scan-files.node.ts), the origin private file system in the browser worker
 * (src/worker/opfs-row-spill.ts), and memory here for tests and small scans.
 */
export interface RowSpill {
  /** Writes `bytes` at byte `position` (the spill grows as needed). */
  write(bytes: Uint8Array, position: number): void | Promise<void>;
  /** Fills `into` from byte `position`; bytes never written read as zeros. */
  read(into: Uint8Array, position: number): void | Promise<void>;
  /** Lets go of the storage; `discard` also deletes what was written. */
  close(discard: boolean): void | Promise<void>;
}

/** Bytes per block of MemoryRowSpill. */
const BLOCK = 1 << 22;

/** A spill kept in memory, in blocks allocated as they are written. */
export class MemoryRowSpill implements RowSpill {
  private readonly blocks: Uint8Array[] = [];

  write(bytes: Uint8Array, position: number): void {
    this.copy(bytes, position, (block, at, data, from, length) => block.set(data.subarray(from, from + length), at));
  }

  read(into: Uint8Array, position: number): void {
    into.fill(0);
    this.copy(into, position, (block, at, data, from, length) => data.set(block.subarray(at, at + length), from), false);
  }

  close(_discard?: boolean): void {
    this.blocks.length = 0;
  }

  /** Walks the blocks that [position, position + data.length) spans. */
  private copy(
    data: Uint8Array,
    position: number,
    move: (block: Uint8Array, at: number, data: Uint8Array, from: number, length: number) => void,
    allocate = true,
  ): void {
    for (let from = 0; from < data.length; ) {
      const index = Math.floor((position + from) / BLOCK);
      const at = (position + from) % BLOCK;
      const length = Math.min(BLOCK - at, data.length - from);
      if (!this.blocks[index] && allocate) this.blocks[index] = new Uint8Array(BLOCK);
      if (this.blocks[index]) move(this.blocks[index], at, data, from, length);
      from += length;
    }
  }
}
