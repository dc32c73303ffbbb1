/**
 * Each neuron's top-K excerpts by max activation, with their activations: a min-heap of
 * (max, excerpt index) per neuron, ties broken towards the smaller excerpt index, and the
 * excerpt's activations stored (float16 or float32) when it enters, so top records need no
 * second pass. Most excerpts fail one comparison against the heap root, which the moment kernel
 * makes for every neuron as it reads the block (`heapRoot` is its threshold).
 *
 * The state a top-K entry touches is laid out to take few cache lines: after a forward pass of the
 * model little of it is still cached.
 */
import { halfBits, halfValue, halvesToNumbers } from '../model/float16.ts';
import type { MomentKernel } from './moment-kernel.ts';
import { counter, restoreSection, type LoadedSection, type StateArray, type StateSection } from './state-codec.ts';

export interface TopExcerpt {
  excerptIndex: number;
  maxActivation: number;
}

export type RowPrecision = 'float16' | 'float32';

// float32 → IEEE half bits, round to nearest even (Node 20 has no Float16Array).
const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** The value `precision` stores for x (float16 rounds to nearest even). */
export function roundToPrecision(x: number, precision: RowPrecision): number {
  f32Scratch[0] = x;
  if (precision === 'float32') return f32Scratch[0];
  return halfValue(halfBits(u32Scratch[0]));
}

export class TopKTracker {
  static readonly SECTION = 'topK';
  readonly heapValue: Float32Array;
  /** heapValue at each neuron's root (the K-th best max), contiguous for the kernel; derived. */
  readonly heapRoot: Float32Array;
  readonly heapExcerpt: Int32Array;
  /** Each entry's row among the neuron's K rows (entries move in the heap, rows stay). */
  readonly heapSlot: Uint16Array;
  /** K rows of L values per neuron: float16 bits or float32. */
  readonly rows: Uint16Array | Float32Array;
  /** Excerpts offered; the heaps hold min(K, excerpts) entries. */
  excerpts = 0;

  /** `rows` as raw bits (itself for float16, a Uint32Array view for float32). */
  private readonly rowUnits: Uint16Array | Uint32Array;
  /** Float16 rows as pairs of values (32-bit words) when L is even, else null. */
  private readonly rowPairs: Uint32Array | null;
  /** The kernel's `columns` as float32 bits, and its `halfColumns` as pairs (32-bit words). */
  private readonly columnBits: Uint32Array;
  private readonly halfColumnPairs: Uint32Array;
  /** Neurons (within the layer) entering their top-K in the current block, and their column in the kernel's `columns`. */
  private readonly entering: Int32Array;
  private readonly enteringColumn: Int32Array;
  /** Sink of touchHeaps. */
  private touched = 0;

  constructor(
    readonly neuronCount: number,
    readonly topK: number,
    readonly excerptLength: number,
    readonly precision: RowPrecision,
    private readonly kernel: MomentKernel,
    dMlp: number,
  ) {
    const N = neuronCount;
    const K = topK;
    const L = excerptLength;
    this.heapValue = new Float32Array(N * K);
    this.heapRoot = new Float32Array(N);
    this.heapExcerpt = new Int32Array(N * K);
    this.heapSlot = new Uint16Array(N * K);
    this.rows = precision === 'float16' ? new Uint16Array(N * K * L) : new Float32Array(N * K * L);
    const halfRows = this.rows instanceof Uint16Array;
    this.rowUnits = halfRows ? (this.rows as Uint16Array) : new Uint32Array(this.rows.buffer);
    this.rowPairs = halfRows && L % 2 === 0 ? new Uint32Array(this.rows.buffer) : null;
    const { columns, halfColumns } = kernel;
    this.columnBits = new Uint32Array(columns.buffer, columns.byteOffset, columns.length);
    this.halfColumnPairs = new Uint32Array(halfColumns.buffer, halfColumns.byteOffset, halfColumns.length >> 1);
    this.entering = new Int32Array(dMlp);
    this.enteringColumn = new Int32Array(dMlp);
  }

  /** Bytes of state per neuron. */
  static bytesPerNeuron(topK: number, excerptLength: number, precision: RowPrecision): number {
    return topK * (10 + excerptLength * (precision === 'float16' ? 2 : 4)) + 4;
  }

  /** Whether every heap holds K entries (the kernel's threshold is then the heap roots). */
  get full(): boolean {
    return this.excerpts >= this.topK;
  }

  /**
   * Offers excerpt `excerpt` to neurons base … base + dMlp − 1 after the kernel ran on its layer
   * block: of the neurons the kernel listed (max ≥ heap root), those entering their top-K (the tie
   * rule decides equal maxima) have their heaps updated and their kernel column stored.
   */
  offer(base: number, excerpt: number, seq: number): void {
    const { max: excerptMax, reached, reachedCount } = this.kernel;
    const { heapRoot, heapExcerpt, entering, enteringColumn } = this;
    const K = this.topK;
    const full = this.full;
    let entries = 0;
    // Equal maxima enter for an earlier excerpt only.
    for (let i = 0; i < reachedCount; i++) {
      const j = reached[i];
      const n = base + j;
      if (!full || excerptMax[j] > heapRoot[n] || excerpt < heapExcerpt[n * K]) {
        entering[entries] = j;
        enteringColumn[entries++] = i;
      }
    }
    if (entries === 0) return;
    if (full) this.touchHeaps(base, entries);
    for (let i = 0; i < entries; i++) {
      const j = entering[i];
      const column = enteringColumn[i] * seq;
      if (full) this.heapReplaceRoot(base + j, excerptMax[j], excerpt, column, seq);
      else this.heapPush(base + j, excerptMax[j], excerpt, column, seq, this.excerpts);
    }
  }

  endExcerpt(): void {
    this.excerpts++;
  }

  /**
   * Reads a word of each cache line the heap updates of the entering neurons will touch, in a loop
   * of independent loads, so their (mostly uncached) lines are fetched together rather than one
   * update after another. The sum only keeps the loads from being optimised away.
   */
  private touchHeaps(base: number, entries: number): void {
    const K = this.topK;
    const L = this.excerptLength;
    const { entering, heapValue, heapExcerpt, heapSlot, rowUnits } = this;
    let sink = 0;
    for (let i = 0; i < entries; i++) {
      const h = (base + entering[i]) * K;
      sink += heapValue[h + K - 1] + heapExcerpt[h + K - 1] + heapSlot[h + K - 1];
      const row = (h + heapSlot[h]) * L;
      sink += rowUnits[row] + rowUnits[row + L - 1];
    }
    this.touched = sink;
  }

  /** Stores the kernel column starting at `from` (seq values) as neuron n's row `slot`. */
  private storeRow(n: number, slot: number, from: number, seq: number): void {
    const L = this.excerptLength;
    const to = (n * this.topK + slot) * L;
    const { rowUnits, rowPairs } = this;
    if (this.rows instanceof Uint16Array) {
      const halves = this.kernel.halfColumns;
      if (rowPairs !== null && (from & 1) === 0) {
        // Two float16 values per word (L is even, so rows start on word boundaries).
        const halfPairs = this.halfColumnPairs;
        const pairs = seq >> 1;
        for (let w = 0, a = to >> 1, b = from >> 1; w < pairs; w++) rowPairs[a + w] = halfPairs[b + w];
        if (seq & 1) rowUnits[to + seq - 1] = halves[from + seq - 1];
      } else {
        for (let t = 0; t < seq; t++) rowUnits[to + t] = halves[from + t];
      }
    } else {
      const { columnBits } = this;
      for (let t = 0; t < seq; t++) rowUnits[to + t] = columnBits[from + t];
    }
  }

  /** a is a worse top-K entry than b: smaller max, or equal max and later excerpt. */
  private worse(a: number, b: number): boolean {
    const va = this.heapValue[a];
    const vb = this.heapValue[b];
    return va < vb || (va === vb && this.heapExcerpt[a] > this.heapExcerpt[b]);
  }

  private swap(a: number, b: number): void {
    const { heapValue, heapExcerpt, heapSlot } = this;
    const v = heapValue[a];
    heapValue[a] = heapValue[b];
    heapValue[b] = v;
    const e = heapExcerpt[a];
    heapExcerpt[a] = heapExcerpt[b];
    heapExcerpt[b] = e;
    const s = heapSlot[a];
    heapSlot[a] = heapSlot[b];
    heapSlot[b] = s;
  }

  /** Adds (value, excerpt) with the kernel column at `from` to neuron n's heap of `size` < K entries. */
  private heapPush(n: number, value: number, excerpt: number, from: number, seq: number, size: number): void {
    const h = n * this.topK;
    this.heapValue[h + size] = value;
    this.heapExcerpt[h + size] = excerpt;
    this.heapSlot[h + size] = size;
    this.storeRow(n, size, from, seq);
    let i = size;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.worse(h + i, h + parent)) break;
      this.swap(h + i, h + parent);
      i = parent;
    }
    this.heapRoot[n] = this.heapValue[h];
  }

  /** Replaces the root (the worst of K entries) by (value, excerpt) with the kernel column at `from`. */
  private heapReplaceRoot(n: number, value: number, excerpt: number, from: number, seq: number): void {
    const K = this.topK;
    const h = n * K;
    this.heapValue[h] = value;
    this.heapExcerpt[h] = excerpt;
    this.storeRow(n, this.heapSlot[h], from, seq);
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= K) break;
      const right = left + 1;
      const child = right < K && this.worse(h + right, h + left) ? right : left;
      if (!this.worse(h + child, h + i)) break;
      this.swap(h + i, h + child);
      i = child;
    }
    this.heapRoot[n] = this.heapValue[h];
  }

  /** Heap entries of neuron n, best first (largest max; ties: smaller excerpt index). */
  private sortedEntries(n: number): number[] {
    const h = n * this.topK;
    const size = Math.min(this.topK, this.excerpts);
    const entries = Array.from({ length: size }, (_, i) => h + i);
    return entries.sort((a, b) => (this.worse(a, b) ? 1 : this.worse(b, a) ? -1 : 0));
  }

  /** Top-K excerpts of neuron n, largest max first (ties: smaller excerpt index first). */
  top(n: number): TopExcerpt[] {
    return this.sortedEntries(n).map((i) => ({ excerptIndex: this.heapExcerpt[i], maxActivation: this.heapValue[i] }));
  }

  /** Neuron n's stored activations on each of its top excerpts (`lengthOf(e)` values each), by excerpt. */
  storedRows(n: number, lengthOf: (excerpt: number) => number): Map<number, number[]> {
    const rows = new Map<number, number[]>();
    const L = this.excerptLength;
    for (const i of this.sortedEntries(n)) {
      const excerpt = this.heapExcerpt[i];
      const at = (n * this.topK + this.heapSlot[i]) * L;
      const length = Math.min(L, lengthOf(excerpt));
      rows.set(excerpt, this.rows instanceof Uint16Array ? halvesToNumbers(this.rows, at, length) : Array.from(this.rows.subarray(at, at + length)));
    }
    return rows;
  }

  /**
   * Takes the other tracker's entries (of other excerpts) in: each heap becomes the top K of both,
   * with their rows. Exact, since the order of entries is total.
   */
  merge(other: TopKTracker): void {
    const K = this.topK;
    const L = this.excerptLength;
    const rowSpan = K * L;
    const mergedRows = this.rows instanceof Uint16Array ? new Uint16Array(rowSpan) : new Float32Array(rowSpan);
    const value = new Float32Array(K);
    const excerpt = new Int32Array(K);
    for (let n = 0; n < this.neuronCount; n++) {
      const candidates = [
        ...this.sortedEntries(n).map((i) => ({ from: this as TopKTracker, i })),
        ...other.sortedEntries(n).map((i) => ({ from: other, i })),
      ];
      candidates.sort((a, b) => {
        const [va, vb] = [a.from.heapValue[a.i], b.from.heapValue[b.i]];
        return va > vb ? -1 : va < vb ? 1 : a.from.heapExcerpt[a.i] - b.from.heapExcerpt[b.i];
      });
      const kept = candidates.slice(0, K);
      // Sorted from worst to best, an array is a valid min-heap (every parent is worse than its children).
      kept.reverse().forEach(({ from, i }, slot) => {
        value[slot] = from.heapValue[i];
        excerpt[slot] = from.heapExcerpt[i];
        const at = (n * K + from.heapSlot[i]) * L;
        mergedRows.set(from.rows.subarray(at, at + L), slot * L);
      });
      const h = n * K;
      for (let slot = 0; slot < kept.length; slot++) {
        this.heapValue[h + slot] = value[slot];
        this.heapExcerpt[h + slot] = excerpt[slot];
        this.heapSlot[h + slot] = slot;
      }
      this.rows.set(mergedRows.subarray(0, kept.length * L), h * L);
      this.heapRoot[n] = this.heapValue[h];
    }
    this.excerpts += other.excerpts;
  }

  section(): StateSection {
    return { name: TopKTracker.SECTION, counters: { excerpts: this.excerpts }, arrays: this.arrays() };
  }

  restore(sections: Map<string, LoadedSection>): void {
    this.excerpts = counter(restoreSection(sections, TopKTracker.SECTION, this.arrays()), 'excerpts');
    for (let n = 0; n < this.neuronCount; n++) this.heapRoot[n] = this.heapValue[n * this.topK];
  }

  private arrays(): [string, StateArray][] {
    return [
      ['heapValue', this.heapValue],
      ['heapExcerpt', this.heapExcerpt],
      ['heapSlot', this.heapSlot],
      ['rows', this.rows],
    ];
  }
}
