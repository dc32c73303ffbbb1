/**
 * The scan's innermost loop: for one layer's [seq, dMlp] block of one excerpt, each neuron's
 * per-excerpt power sums Σd, Σd², Σd³, Σd⁴ (d = x − shift) and its max. This is most of the
 * scan's bookkeeping: every activation passes through it once. It also copies out the column of
 * every neuron whose max reaches a threshold (the scan's top-K entrants), right after reading
 * it, while its cache lines are still loaded: gathering those columns from the block afterwards
 * meant reading most of the block again, a cache line per token per neuron.
 *
 * The per-excerpt sums are float32, summed over tokens in order from 0 (the caller adds them to
 * float64 totals): over at most a few hundred tokens, with the shift near the neuron's mean, that
 * costs a relative error of about 1e-6 in the final statistics (the activations themselves are
 * kept as float16), and lets four neurons share one SIMD register instead of two. A sum can
 * overflow float32 where float64 would not (|d| above ~4e9); the caller recomputes those.
 *
 * Two implementations with bit-identical results (the same IEEE single-precision operations on
 * each neuron in the same order: in JS each operation is rounded with Math.fround, which gives
 * the correctly rounded float32 result for +, − and × of float32 operands; WebAssembly does not
 * fuse multiply-adds):
 * - WebAssembly SIMD, four neurons per float32x4 register, eight at a time.
 *   The block is copied into the module's memory first (a memcpy, cheap next to the arithmetic).
 * - plain JS, tokens in tiles of four rows so each neuron's running sums are loaded once per tile
 *   (the fallback where WebAssembly SIMD is missing, and for blocks too large to copy).
 * The WebAssembly module's source is wasm/moment-kernel.wat (assembled by scripts/gen-wasm.ts).
 */

import { halfBits } from '../model/float16.ts';
import { compileOnce } from './wasm/compile-once.ts';
import { MOMENT_KERNEL_WASM } from './wasm/wasm-modules.generated.ts';

export interface MomentKernel {
  /** 'wasm-simd' or 'js', for benchmarks. */
  readonly kind: 'wasm-simd' | 'js';
  /** Per neuron of the last block: its four per-excerpt power sums (float32), as sums[k · dMlp + j]. */
  readonly sums: Float32Array;
  /** Per neuron of the last block: its max. */
  readonly max: Float32Array;
  /** The neurons j of the last block whose max reached their threshold, ascending; `reachedCount` of them. */
  readonly reached: Int32Array;
  readonly reachedCount: number;
  /** Their columns: reached neuron i's activation at token t is columns[i · seq + t]. */
  readonly columns: Float32Array;
  /** The same as IEEE half bits (rounded to nearest even), when the kernel was made with `halfColumns`. */
  readonly halfColumns: Uint16Array;
  /**
   * Runs on `data[offset + t·dMlp + j]`, 1 ≤ seq ≤ maxSeq, with `shift[shiftOffset + j]` and
   * `threshold[shiftOffset + j]` (the caller checks the bounds); neuron j is listed in `reached`
   * when max ≥ its threshold. Returns where the block can be read back afterwards (the copy the
   * kernel worked on, which is cache-warm).
   */
  run(data: Float32Array, offset: number, seq: number, shift: Float32Array, shiftOffset: number, threshold: Float32Array): { data: Float32Array; offset: number };
}

/** Largest block copied into WebAssembly memory; larger ones use the JS kernel. */
const MAX_WASM_BLOCK_BYTES = 64 << 20;

/**
 * The fastest kernel available here for blocks of up to maxSeq × dMlp (`prefer: 'js'` asks for
 * the JS one, e.g. to compare them).
 */
export function createMomentKernel(dMlp: number, maxSeq: number, prefer: MomentKernel['kind'] = 'wasm-simd', halfColumns = false): MomentKernel {
  if (!Number.isInteger(dMlp) || dMlp < 1 || !Number.isInteger(maxSeq) || maxSeq < 1) {
    throw new RangeError(`a moment kernel needs positive whole dMlp and maxSeq, got ${dMlp} and ${maxSeq}`);
  }
  if (prefer === 'wasm-simd' && dMlp >= 4 && maxSeq * dMlp * 4 <= MAX_WASM_BLOCK_BYTES) {
    const module = compiledModule();
    if (module) return new WasmMomentKernel(module, dMlp, maxSeq, halfColumns);
  }
  return new JsMomentKernel(dMlp, maxSeq, halfColumns);
}

const fround = Math.fround;

/** The per-neuron sums and max of rows [0, seq) of columns [fromColumn, dMlp), in float32. */
function accumulateColumns(
  kernel: { sums: Float32Array; max: Float32Array },
  dMlp: number,
  data: Float32Array,
  offset: number,
  seq: number,
  shift: Float32Array,
  shiftOffset: number,
  fromColumn: number,
): void {
  const { sums, max } = kernel;
  for (let j = fromColumn; j < dMlp; j++) {
    const c = shift[shiftOffset + j];
    let s1 = 0, s2 = 0, s3 = 0, s4 = 0, m = -Infinity;
    for (let t = 0, p = offset + j; t < seq; t++, p += dMlp) {
      const x = data[p];
      const d = fround(x - c);
      const d2 = fround(d * d);
      s1 = fround(s1 + d);
      s2 = fround(s2 + d2);
      s3 = fround(s3 + fround(d2 * d));
      s4 = fround(s4 + fround(d2 * d2));
      if (x > m) m = x;
    }
    sums[j] = s1;
    sums[dMlp + j] = s2;
    sums[2 * dMlp + j] = s3;
    sums[3 * dMlp + j] = s4;
    max[j] = m;
  }
}

/**
 * Lists, from `count` on, each neuron j in [fromColumn, dMlp) whose max reached its threshold and
 * copies its column; returns the new count.
 */
function gatherReached(
  kernel: { max: Float32Array; reached: Int32Array; columns: Float32Array },
  dMlp: number,
  data: Float32Array,
  offset: number,
  seq: number,
  threshold: Float32Array,
  thresholdOffset: number,
  fromColumn: number,
  count: number,
): number {
  const { max, reached, columns } = kernel;
  for (let j = fromColumn; j < dMlp; j++) {
    if (!(max[j] >= threshold[thresholdOffset + j])) continue;
    reached[count] = j;
    for (let t = 0, p = offset + j, at = count * seq; t < seq; t++, p += dMlp, at++) columns[at] = data[p];
    count++;
  }
  return count;
}

class JsMomentKernel implements MomentKernel {
  readonly kind = 'js';
  readonly sums: Float32Array;
  readonly max: Float32Array;
  readonly reached: Int32Array;
  reachedCount = 0;
  readonly columns: Float32Array;
  readonly halfColumns: Uint16Array;
  private readonly columnBits: Uint32Array;

  constructor(
    private readonly dMlp: number,
    maxSeq: number,
    private readonly withHalves: boolean,
  ) {
    this.sums = new Float32Array(4 * dMlp);
    this.max = new Float32Array(dMlp);
    this.reached = new Int32Array(dMlp);
    this.columns = new Float32Array(dMlp * maxSeq);
    this.columnBits = new Uint32Array(this.columns.buffer);
    this.halfColumns = new Uint16Array(withHalves ? dMlp * maxSeq : 0);
  }

  run(data: Float32Array, offset: number, seq: number, shift: Float32Array, shiftOffset: number, threshold: Float32Array) {
    const { dMlp, sums, max } = this;
    sums.fill(0);
    max.fill(-Infinity);
    const s2o = dMlp, s3o = 2 * dMlp, s4o = 3 * dMlp;
    // Rows in tiles of four: reads stay sequential and each neuron's sums are loaded and stored
    // once per tile (float32 values, so storing them loses nothing); the additions per neuron
    // still run token by token.
    const tiled = seq - (seq % 4);
    for (let t = 0; t < tiled; t += 4) {
      const r0 = offset + t * dMlp, r1 = r0 + dMlp, r2 = r1 + dMlp, r3 = r2 + dMlp;
      for (let j = 0; j < dMlp; j++) {
        const c = shift[shiftOffset + j];
        let s1 = sums[j], s2 = sums[s2o + j], s3 = sums[s3o + j], s4 = sums[s4o + j], m = max[j];
        let x = data[r0 + j], d = fround(x - c), d2 = fround(d * d);
        s1 = fround(s1 + d); s2 = fround(s2 + d2); s3 = fround(s3 + fround(d2 * d)); s4 = fround(s4 + fround(d2 * d2));
        if (x > m) m = x;
        x = data[r1 + j]; d = fround(x - c); d2 = fround(d * d);
        s1 = fround(s1 + d); s2 = fround(s2 + d2); s3 = fround(s3 + fround(d2 * d)); s4 = fround(s4 + fround(d2 * d2));
        if (x > m) m = x;
        x = data[r2 + j]; d = fround(x - c); d2 = fround(d * d);
        s1 = fround(s1 + d); s2 = fround(s2 + d2); s3 = fround(s3 + fround(d2 * d)); s4 = fround(s4 + fround(d2 * d2));
        if (x > m) m = x;
        x = data[r3 + j]; d = fround(x - c); d2 = fround(d * d);
        s1 = fround(s1 + d); s2 = fround(s2 + d2); s3 = fround(s3 + fround(d2 * d)); s4 = fround(s4 + fround(d2 * d2));
        if (x > m) m = x;
        sums[j] = s1; sums[s2o + j] = s2; sums[s3o + j] = s3; sums[s4o + j] = s4; max[j] = m;
      }
    }
    for (let t = tiled; t < seq; t++) {
      const r = offset + t * dMlp;
      for (let j = 0; j < dMlp; j++) {
        const x = data[r + j];
        const d = fround(x - shift[shiftOffset + j]);
        const d2 = fround(d * d);
        sums[j] = fround(sums[j] + d);
        sums[s2o + j] = fround(sums[s2o + j] + d2);
        sums[s3o + j] = fround(sums[s3o + j] + fround(d2 * d));
        sums[s4o + j] = fround(sums[s4o + j] + fround(d2 * d2));
        if (x > max[j]) max[j] = x;
      }
    }
    this.reachedCount = gatherReached(this, dMlp, data, offset, seq, threshold, shiftOffset, 0, 0);
    if (this.withHalves) {
      const { halfColumns, columnBits } = this;
      for (let i = 0; i < this.reachedCount * seq; i++) halfColumns[i] = halfBits(columnBits[i]);
    }
    return { data, offset };
  }
}

class WasmMomentKernel implements MomentKernel {
  readonly kind = 'wasm-simd';
  readonly sums: Float32Array;
  readonly max: Float32Array;
  readonly reached: Int32Array;
  reachedCount = 0;
  readonly columns: Float32Array;
  readonly halfColumns: Uint16Array;
  private readonly block: Float32Array;
  private readonly shift: Float32Array;
  private readonly threshold: Float32Array;
  private readonly moments4: (...args: number[]) => number;
  private readonly moments8: (...args: number[]) => number;
  private readonly toHalf: (src: number, dst: number, groups: number) => void;
  private readonly at: { block: number; shift: number; threshold: number; sums: number; max: number; reached: number; columns: number; halves: number };

  constructor(
    module: WebAssembly.Module,
    private readonly dMlp: number,
    maxSeq: number,
    private readonly withHalves: boolean,
  ) {
    // Layout: block, shift, threshold, sums, max, reached (int32), columns and their half bits
    // (with room for toHalf's last group of eight), all 16-byte aligned.
    const align = (n: number) => Math.ceil(n / 16) * 16;
    const block = 0;
    const shift = align(maxSeq * dMlp * 4);
    const threshold = align(shift + dMlp * 4);
    const sums = align(threshold + dMlp * 4);
    const max = align(sums + 4 * dMlp * 4);
    const reached = align(max + dMlp * 4);
    const columns = align(reached + dMlp * 4);
    const halves = align(columns + (maxSeq * dMlp + 8) * 4);
    const bytes = align(halves + (withHalves ? (maxSeq * dMlp + 8) * 2 : 0));
    const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536) });
    const instance = new WebAssembly.Instance(module, { env: { memory } });
    this.moments4 = instance.exports.moments4 as (...args: number[]) => number;
    this.moments8 = instance.exports.moments8 as (...args: number[]) => number;
    this.toHalf = instance.exports.toHalf as (src: number, dst: number, groups: number) => void;
    this.at = { block, shift, threshold, sums, max, reached, columns, halves };
    // The memory never grows, so these views stay valid.
    const buffer = memory.buffer;
    this.block = new Float32Array(buffer, block, maxSeq * dMlp);
    this.shift = new Float32Array(buffer, shift, dMlp);
    this.threshold = new Float32Array(buffer, threshold, dMlp);
    this.sums = new Float32Array(buffer, sums, 4 * dMlp);
    this.max = new Float32Array(buffer, max, dMlp);
    this.reached = new Int32Array(buffer, reached, dMlp);
    this.columns = new Float32Array(buffer, columns, maxSeq * dMlp);
    this.halfColumns = new Uint16Array(buffer, halves, withHalves ? maxSeq * dMlp : 0);
  }

  run(data: Float32Array, offset: number, seq: number, shift: Float32Array, shiftOffset: number, threshold: Float32Array) {
    const { dMlp, at } = this;
    this.block.set(data.subarray(offset, offset + seq * dMlp));
    this.shift.set(shift.subarray(shiftOffset, shiftOffset + dMlp));
    this.threshold.set(threshold.subarray(shiftOffset, shiftOffset + dMlp));
    // Eight neurons at a time, then four, then the last dMlp mod 4 in JS with the same arithmetic.
    const eights = dMlp >> 3;
    let count = 0;
    if (eights > 0) count = this.moments8(at.block, seq, eights, dMlp * 4, at.shift, at.sums, dMlp * 4, at.max, at.threshold, at.columns, at.reached, 0, 0);
    let done = eights * 8;
    if (dMlp - done >= 4) {
      const skip = done * 4;
      count = this.moments4(at.block + skip, seq, 1, dMlp * 4, at.shift + skip, at.sums + skip, dMlp * 4, at.max + skip, at.threshold + skip, at.columns, at.reached, done, count);
      done += 4;
    }
    if (done < dMlp) {
      accumulateColumns(this, dMlp, this.block, 0, seq, this.shift, 0, done);
      count = gatherReached(this, dMlp, this.block, 0, seq, this.threshold, 0, done, count);
    }
    this.reachedCount = count;
    if (this.withHalves && count > 0) this.toHalf(at.columns, at.halves, Math.ceil((count * seq) / 8));
    return { data: this.block, offset: 0 };
  }
}

// ---- the WebAssembly module ------------------------------------------------------------------

/**
 * The module (wasm/moment-kernel.wat), compiled once per realm; null where WebAssembly or its SIMD
 * is unavailable (the JS kernel does the same work).
 */
const compiledModule = compileOnce(MOMENT_KERNEL_WASM);
