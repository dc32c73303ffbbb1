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
 * The WebAssembly module is assembled here from its opcodes (no build step, no binary file).
 */

import { halfBits } from '../model/float16.ts';
import { compileOnce, name, section, sleb, uleb, vector } from './wasm-encoding.ts';

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

/** The module, compiled once per realm; null where WebAssembly or its SIMD is unavailable (the JS kernel does the same work). */
const compiledModule = compileOnce(() => momentModuleBytes());



/**
 * Two functions, moments4 and moments8, with the same parameters (block, seq, groups, rowBytes,
 * shift, sums, sumsStride, max, threshold, columns, reached, first, count) and result: for each
 * group of four (or eight) neurons, walks the rows t = 0 … seq−1 keeping four float32x4 running
 * sums and the max per four neurons in registers, then stores the sums at sums + k·sumsStride
 * (k = power − 1) and the max. Each neuron of the group whose max ≥ its threshold is then listed
 * (reached[count] = first + its index) and its column copied to columns + count·seq·4, while the
 * column is still in the cache; the result is the new count. Eight neurons at a time give the
 * processor two independent chains of additions to overlap. Pointers are byte addresses; seq and
 * groups must be ≥ 1.
 */
function momentModuleBytes(): Uint8Array<ArrayBuffer> {
  const I32 = 0x7f;
  const V128 = 0x7b;
  // Parameters.
  const BLOCK = 0, SEQ = 1, GROUPS = 2, ROW_BYTES = 3, SHIFT = 4, SUMS = 5, SUMS_STRIDE = 6, MAX = 7;
  const THRESHOLD = 8, COLUMNS = 9, REACHED = 10, FIRST = 11, COUNT = 12;
  // Locals: i32 group, row, row pointer, sums pointer, reached lanes, lane, column and copy pointers;
  // then v128 (10 per vector of four neurons).
  const G = 13, T = 14, P = 15, Q = 16, BITS = 17, LANE = 18, CP = 19, OP = 20;
  const I32_LOCALS = 8;
  const FIRST_V128 = 21;
  const get = (i: number) => [0x20, ...uleb(i)];
  const set = (i: number) => [0x21, ...uleb(i)];
  const tee = (i: number) => [0x22, ...uleb(i)];
  const i32 = (n: number) => [0x41, ...sleb(n)];
  const addI32 = (local: number, n: number) => [...get(local), ...i32(n), 0x6a, ...set(local)];
  const simd = (op: number, ...immediates: number[]) => [0xfd, ...uleb(op), ...immediates];
  const load = (offset: number) => simd(0x00, 0, ...uleb(offset));
  const store = (offset: number) => simd(0x0b, 0, ...uleb(offset));
  const zero = simd(0x0c, ...new Array<number>(16).fill(0));
  const F32X4_SPLAT = 0x13, F32X4_ADD = 0xe4, F32X4_SUB = 0xe5, F32X4_MUL = 0xe6, F32X4_PMAX = 0xeb;
  const F32X4_GE = 0x46, I32X4_BITMASK = 0xa4;
  const I32_ADD = 0x6a, I32_MUL = 0x6c, I32_AND = 0x71, I32_OR = 0x72, I32_SHL = 0x74, I32_SHR_U = 0x76, I32_LT_U = 0x49, I32_EQZ = 0x45;
  const I32_LOAD = [0x28, 2, 0], I32_STORE = [0x36, 2, 0];
  const BLOCK_START = [0x02, 0x40], LOOP = [0x03, 0x40], IF = [0x04, 0x40], END = 0x0b, BR_IF_0 = [0x0d, 0];

  /** The function body for `vectors` float32x4 vectors (4 neurons each) per group. */
  const functionBody = (vectors: number) => {
    const v = Array.from({ length: vectors }, (_, i) => {
      const first = FIRST_V128 + 10 * i;
      return { lanes: 16 * i, C: first, S: [first + 1, first + 2, first + 3, first + 4], M: first + 5, X: first + 6, D: first + 7, D2: first + 8 };
    });
    const bytes = 16 * vectors;
    const neurons = 4 * vectors;
    // Copies the columns of the group's neurons whose max reached the threshold (see above).
    const gather = [
      ...v.flatMap(({ lanes, M }, i) => [
        ...get(M), ...get(THRESHOLD), ...load(lanes), ...simd(F32X4_GE), ...simd(I32X4_BITMASK),
        ...(i > 0 ? [...i32(4 * i), I32_SHL, I32_OR] : []),
      ]),
      ...set(BITS),
      ...BLOCK_START,
      ...get(BITS), I32_EQZ, ...BR_IF_0, // no neuron of the group reached it: the common case
      ...i32(0), ...set(LANE),
      ...LOOP, // lanes
      ...get(BITS), ...get(LANE), I32_SHR_U, ...i32(1), I32_AND,
      ...IF,
      // reached[count] = first + group · neurons + lane
      ...get(REACHED), ...get(COUNT), ...i32(2), I32_SHL, I32_ADD,
      ...get(FIRST), ...get(G), ...i32(neurons), I32_MUL, I32_ADD, ...get(LANE), I32_ADD,
      ...I32_STORE,
      // Copy the column's bits, row by row, to columns + count · seq · 4.
      ...get(BLOCK), ...get(LANE), ...i32(2), I32_SHL, I32_ADD, ...set(CP),
      ...get(COLUMNS), ...get(COUNT), ...get(SEQ), I32_MUL, ...i32(2), I32_SHL, I32_ADD, ...set(OP),
      ...i32(0), ...set(T),
      ...LOOP, // rows
      ...get(OP), ...get(CP), ...I32_LOAD, ...I32_STORE,
      ...get(CP), ...get(ROW_BYTES), I32_ADD, ...set(CP),
      ...addI32(OP, 4),
      ...get(T), ...i32(1), I32_ADD, ...tee(T), ...get(SEQ), I32_LT_U, ...BR_IF_0,
      END,
      ...addI32(COUNT, 1),
      END, // if
      ...get(LANE), ...i32(1), I32_ADD, ...tee(LANE), ...i32(neurons), I32_LT_U, ...BR_IF_0,
      END, // lanes
      END, // block
    ];
    const body = [
      ...LOOP, // groups
      ...v.flatMap(({ lanes, C, S, M }) => [
        ...get(SHIFT), ...load(lanes), ...set(C),
        ...zero, ...S.flatMap((local, i) => (i < S.length - 1 ? tee(local) : set(local))),
        0x43, 0x00, 0x00, 0x80, 0xff, ...simd(F32X4_SPLAT), ...set(M), // −∞
      ]),
      ...get(BLOCK), ...set(P),
      ...i32(0), ...set(T),
      ...LOOP, // rows
      ...v.flatMap(({ lanes, C, S, M, X, D, D2 }) => [
        ...get(P), ...load(lanes), ...tee(X),
        ...get(M), ...get(X), ...simd(F32X4_PMAX), ...set(M), // m < x ? x : m
        // d = x − c; s1 += d; s2 += d²; s3 += d²·d; s4 += d²·d² (the JS kernel's order).
        ...get(C), ...simd(F32X4_SUB), ...tee(D),
        ...get(D), ...simd(F32X4_MUL), ...set(D2),
        ...get(S[0]), ...get(D), ...simd(F32X4_ADD), ...set(S[0]),
        ...get(S[1]), ...get(D2), ...simd(F32X4_ADD), ...set(S[1]),
        ...get(S[2]), ...get(D2), ...get(D), ...simd(F32X4_MUL), ...simd(F32X4_ADD), ...set(S[2]),
        ...get(S[3]), ...get(D2), ...get(D2), ...simd(F32X4_MUL), ...simd(F32X4_ADD), ...set(S[3]),
      ]),
      ...get(P), ...get(ROW_BYTES), I32_ADD, ...set(P),
      ...get(T), ...i32(1), I32_ADD, ...tee(T), ...get(SEQ), I32_LT_U, ...BR_IF_0, // t < seq (unsigned)
      END,
      ...get(SUMS), ...set(Q),
      ...[0, 1, 2, 3].flatMap((k) => [
        ...(k > 0 ? [...get(Q), ...get(SUMS_STRIDE), I32_ADD, ...set(Q)] : []),
        ...v.flatMap(({ lanes, S }) => [...get(Q), ...get(S[k]), ...store(lanes)]),
      ]),
      ...v.flatMap(({ lanes, M }) => [...get(MAX), ...get(M), ...store(lanes)]),
      ...gather,
      ...addI32(BLOCK, bytes), ...addI32(SHIFT, bytes), ...addI32(SUMS, bytes), ...addI32(MAX, bytes), ...addI32(THRESHOLD, bytes),
      ...get(G), ...i32(1), I32_ADD, ...tee(G), ...get(GROUPS), I32_LT_U, ...BR_IF_0,
      END,
      ...get(COUNT),
      END,
    ];
    const code = [...vector([[...uleb(I32_LOCALS), I32], [...uleb(10 * vectors), V128]]), ...body];
    return [...uleb(code.length), ...code];
  };

  /**
   * toHalf(src, dst, groups): float32 bits → IEEE half bits, eight values per group, rounded to
   * nearest even exactly as halfBits (float16.ts) does. Per lane: normal halves by integer
   * arithmetic on the bits, subnormal ones by letting a float32 addition of 2²³ round |x|·2²⁴ to
   * an integer, and magnitudes from 2¹⁶ up as infinity (NaN stays NaN); masks pick the case.
   */
  const toHalfBody = () => {
    const SRC = 0, DST = 1, GROUPS = 2, I = 3, X = 4, MAG = 5, SIGN = 6, R = 7, LO = 8;
    const splat = (n: number) => simd(0x0c, ...[0, 0, 0, 0].flatMap(() => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff]));
    const V128_AND = 0x4e, V128_OR = 0x50, V128_BITSELECT = 0x52;
    const I32X4_LT_S = 0x39, I32X4_GT_S = 0x3b, I32X4_GE_S = 0x3f, I32X4_SHR_U = 0xad, I32X4_ADD = 0xae, I32X4_SUB = 0xb1;
    const I16X8_NARROW_I32X4_U = 0x86;
    const convert = (offset: number, into: number) => [
      ...get(SRC), ...load(offset), ...set(X),
      ...get(X), ...i32(16), ...simd(I32X4_SHR_U), ...splat(0x8000), ...simd(V128_AND), ...set(SIGN),
      ...get(X), ...splat(0x7fffffff), ...simd(V128_AND), ...set(MAG),
      // Normal: ((mag + 0xfff + ((mag >> 13) & 1)) >> 13) − (112 << 10).
      ...get(MAG), ...splat(0xfff), ...simd(I32X4_ADD),
      ...get(MAG), ...i32(13), ...simd(I32X4_SHR_U), ...splat(1), ...simd(V128_AND), ...simd(I32X4_ADD),
      ...i32(13), ...simd(I32X4_SHR_U), ...splat(112 << 10), ...simd(I32X4_SUB), ...set(R),
      // Subnormal (|x| < 2⁻¹⁴): bits(|x| · 2²⁴ + 2²³) − bits(2²³).
      ...get(MAG), ...splat(0x4b800000), ...simd(F32X4_MUL), ...splat(0x4b000000), ...simd(F32X4_ADD), ...splat(0x4b000000), ...simd(I32X4_SUB),
      ...get(R), ...get(MAG), ...splat(0x38800000), ...simd(I32X4_LT_S), ...simd(V128_BITSELECT), ...set(R),
      // From 2¹⁶ up: infinity, or a quiet NaN.
      ...get(MAG), ...splat(0x7f800000), ...simd(I32X4_GT_S), ...splat(0x200), ...simd(V128_AND), ...splat(0x7c00), ...simd(V128_OR),
      ...get(R), ...get(MAG), ...splat(0x47800000), ...simd(I32X4_GE_S), ...simd(V128_BITSELECT),
      ...get(SIGN), ...simd(V128_OR), ...set(into),
    ];
    const body = [
      ...LOOP,
      ...convert(0, LO),
      ...convert(16, R),
      ...get(DST), ...get(LO), ...get(R), ...simd(I16X8_NARROW_I32X4_U), ...store(0),
      ...addI32(SRC, 32), ...addI32(DST, 16),
      ...get(I), ...i32(1), I32_ADD, ...tee(I), ...get(GROUPS), I32_LT_U, ...BR_IF_0,
      END,
      END,
    ];
    const code = [...vector([[...uleb(1), I32], [...uleb(5), V128]]), ...body];
    return [...uleb(code.length), ...code];
  };
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vector([
      [0x60, ...vector(new Array<number[]>(13).fill([I32])), ...vector([[I32]])],
      [0x60, ...vector(new Array<number[]>(3).fill([I32])), ...vector([])],
    ])),
    ...section(2, vector([[...name('env'), ...name('memory'), 0x02, 0x00, 0x01]])),
    ...section(3, vector([[0x00], [0x00], [0x01]])),
    ...section(7, vector([[...name('moments4'), 0x00, 0x00], [...name('moments8'), 0x00, 0x01], [...name('toHalf'), 0x00, 0x02]])),
    ...section(10, vector([functionBody(1), functionBody(2), toHalfBody()])),
  ]);
}
