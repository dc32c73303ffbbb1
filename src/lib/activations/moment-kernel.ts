/**
 * The scan's innermost loop: for one layer's [seq, dMlp] block of one excerpt, each neuron's power
 * sums Σd, Σd², Σd³, Σd⁴ (d = x − shift, in float64, summed over tokens in order from 0) and its
 * max and argmax (first token of the max). This is most of the scan's bookkeeping: every
 * activation passes through it once.
 *
 * Two implementations with bit-identical results (same IEEE operations on each neuron in the same
 * order; float32 → float64 is exact and neither JS engines nor WebAssembly fuse multiply-adds):
 * - WebAssembly SIMD, two neurons per float64x2 lane pair, four per loop: about twice as fast.
 *   The block is copied into the module's memory first (a memcpy, cheap next to the arithmetic).
 * - plain JS, tokens in tiles of four rows so each neuron's running sums are loaded once per tile
 *   (the fallback where WebAssembly SIMD is missing, and for blocks too large to copy).
 * The WebAssembly module is assembled here from its opcodes (no build step, no binary file).
 */

export interface MomentKernel {
  /** 'wasm-simd' or 'js', for benchmarks. */
  readonly kind: 'wasm-simd' | 'js';
  /** Per neuron of the last block: its four per-excerpt power sums, as sums[k · dMlp + j]. */
  readonly sums: Float64Array;
  /** Per neuron of the last block: max and the first token reaching it. */
  readonly max: Float32Array;
  readonly argmax: Int32Array;
  /**
   * Runs on `data[offset + t·dMlp + j]`, 1 ≤ seq ≤ maxSeq, with `shift[shiftOffset + j]` (the
   * caller checks the bounds). Returns where the block can be read back afterwards (the copy the
   * kernel worked on, which is cache-warm).
   */
  run(data: Float32Array, offset: number, seq: number, shift: Float64Array, shiftOffset: number): { data: Float32Array; offset: number };
}

/** Largest block copied into WebAssembly memory; larger ones use the JS kernel. */
const MAX_WASM_BLOCK_BYTES = 64 << 20;

/**
 * The fastest kernel available here for blocks of up to maxSeq × dMlp (`prefer: 'js'` asks for
 * the JS one, e.g. to compare them).
 */
export function createMomentKernel(dMlp: number, maxSeq: number, prefer: MomentKernel['kind'] = 'wasm-simd'): MomentKernel {
  if (!Number.isInteger(dMlp) || dMlp < 1 || !Number.isInteger(maxSeq) || maxSeq < 1) {
    throw new RangeError(`a moment kernel needs positive whole dMlp and maxSeq, got ${dMlp} and ${maxSeq}`);
  }
  if (prefer === 'wasm-simd' && dMlp >= 4 && maxSeq * dMlp * 4 <= MAX_WASM_BLOCK_BYTES) {
    const module = compiledModule();
    if (module) return new WasmMomentKernel(module, dMlp, maxSeq);
  }
  return new JsMomentKernel(dMlp);
}

/** Adds the per-neuron sums of rows [fromRow, seq) of columns [fromColumn, dMlp) to the kernel's outputs. */
function accumulateColumns(
  kernel: { sums: Float64Array; max: Float32Array; argmax: Int32Array },
  dMlp: number,
  data: Float32Array,
  offset: number,
  seq: number,
  shift: Float64Array,
  shiftOffset: number,
  fromColumn: number,
): void {
  const { sums, max, argmax } = kernel;
  for (let j = fromColumn; j < dMlp; j++) {
    const c = shift[shiftOffset + j];
    let s1 = 0, s2 = 0, s3 = 0, s4 = 0, m = -Infinity, a = 0;
    for (let t = 0, p = offset + j; t < seq; t++, p += dMlp) {
      const x = data[p];
      const d = x - c;
      const d2 = d * d;
      s1 += d;
      s2 += d2;
      s3 += d2 * d;
      s4 += d2 * d2;
      if (x > m) {
        m = x;
        a = t;
      }
    }
    sums[j] = s1;
    sums[dMlp + j] = s2;
    sums[2 * dMlp + j] = s3;
    sums[3 * dMlp + j] = s4;
    max[j] = m;
    argmax[j] = a;
  }
}

class JsMomentKernel implements MomentKernel {
  readonly kind = 'js';
  readonly sums: Float64Array;
  readonly max: Float32Array;
  readonly argmax: Int32Array;

  constructor(private readonly dMlp: number) {
    this.sums = new Float64Array(4 * dMlp);
    this.max = new Float32Array(dMlp);
    this.argmax = new Int32Array(dMlp);
  }

  run(data: Float32Array, offset: number, seq: number, shift: Float64Array, shiftOffset: number) {
    const { dMlp, sums, max, argmax } = this;
    sums.fill(0);
    max.fill(-Infinity);
    argmax.fill(0);
    const s2o = dMlp, s3o = 2 * dMlp, s4o = 3 * dMlp;
    // Rows in tiles of four: reads stay sequential and each neuron's sums are loaded and stored
    // once per tile; the additions per neuron still run token by token.
    const tiled = seq - (seq % 4);
    for (let t = 0; t < tiled; t += 4) {
      const r0 = offset + t * dMlp, r1 = r0 + dMlp, r2 = r1 + dMlp, r3 = r2 + dMlp;
      for (let j = 0; j < dMlp; j++) {
        const c = shift[shiftOffset + j];
        let s1 = sums[j], s2 = sums[s2o + j], s3 = sums[s3o + j], s4 = sums[s4o + j], m = max[j], a = argmax[j];
        let x = data[r0 + j], d = x - c, d2 = d * d;
        s1 += d; s2 += d2; s3 += d2 * d; s4 += d2 * d2;
        if (x > m) { m = x; a = t; }
        x = data[r1 + j]; d = x - c; d2 = d * d;
        s1 += d; s2 += d2; s3 += d2 * d; s4 += d2 * d2;
        if (x > m) { m = x; a = t + 1; }
        x = data[r2 + j]; d = x - c; d2 = d * d;
        s1 += d; s2 += d2; s3 += d2 * d; s4 += d2 * d2;
        if (x > m) { m = x; a = t + 2; }
        x = data[r3 + j]; d = x - c; d2 = d * d;
        s1 += d; s2 += d2; s3 += d2 * d; s4 += d2 * d2;
        if (x > m) { m = x; a = t + 3; }
        sums[j] = s1; sums[s2o + j] = s2; sums[s3o + j] = s3; sums[s4o + j] = s4; max[j] = m; argmax[j] = a;
      }
    }
    for (let t = tiled; t < seq; t++) {
      const r = offset + t * dMlp;
      for (let j = 0; j < dMlp; j++) {
        const x = data[r + j];
        const d = x - shift[shiftOffset + j];
        const d2 = d * d;
        sums[j] += d; sums[s2o + j] += d2; sums[s3o + j] += d2 * d; sums[s4o + j] += d2 * d2;
        if (x > max[j]) { max[j] = x; argmax[j] = t; }
      }
    }
    return { data, offset };
  }
}

class WasmMomentKernel implements MomentKernel {
  readonly kind = 'wasm-simd';
  readonly sums: Float64Array;
  readonly max: Float32Array;
  readonly argmax: Int32Array;
  private readonly block: Float32Array;
  private readonly shift: Float64Array;
  private readonly moments: (...args: number[]) => void;
  private readonly at: { block: number; shift: number; sums: number; max: number; argmax: number };

  constructor(module: WebAssembly.Module, private readonly dMlp: number, maxSeq: number) {
    // Layout: block (float32), shift and sums (float64, 16-byte aligned), max, argmax.
    const align = (n: number) => Math.ceil(n / 16) * 16;
    const block = 0;
    const shift = align(maxSeq * dMlp * 4);
    const sums = align(shift + dMlp * 8);
    const max = align(sums + 4 * dMlp * 8);
    const argmax = align(max + dMlp * 4);
    const bytes = align(argmax + dMlp * 4);
    const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536) });
    const instance = new WebAssembly.Instance(module, { env: { memory } });
    this.moments = instance.exports.moments as (...args: number[]) => void;
    this.at = { block, shift, sums, max, argmax };
    // The memory never grows, so these views stay valid.
    const buffer = memory.buffer;
    this.block = new Float32Array(buffer, block, maxSeq * dMlp);
    this.shift = new Float64Array(buffer, shift, dMlp);
    this.sums = new Float64Array(buffer, sums, 4 * dMlp);
    this.max = new Float32Array(buffer, max, dMlp);
    this.argmax = new Int32Array(buffer, argmax, dMlp);
  }

  run(data: Float32Array, offset: number, seq: number, shift: Float64Array, shiftOffset: number) {
    const { dMlp, at } = this;
    this.block.set(data.subarray(offset, offset + seq * dMlp));
    this.shift.set(shift.subarray(shiftOffset, shiftOffset + dMlp));
    const groups = dMlp >> 2;
    this.moments(at.block, seq, groups, dMlp * 4, at.shift, at.sums, dMlp * 8, at.max, at.argmax);
    // The last dMlp mod 4 neurons, in JS with the same arithmetic.
    if (groups * 4 < dMlp) accumulateColumns(this, dMlp, this.block, 0, seq, this.shift, 0, groups * 4);
    return { data: this.block, offset: 0 };
  }
}

// ---- the WebAssembly module ------------------------------------------------------------------

let compiled: WebAssembly.Module | null | undefined;

/** The module, compiled once per realm; null where WebAssembly or its SIMD is unavailable. */
function compiledModule(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  compiled = null;
  try {
    const bytes = momentModuleBytes();
    if (typeof WebAssembly === 'object' && WebAssembly.validate(bytes)) compiled = new WebAssembly.Module(bytes);
  } catch {
    // No WebAssembly (or it is disabled by policy): the JS kernel does the same work.
  }
  return compiled;
}

const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return out;
};
const vector = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const name = (s: string): number[] => vector([...s].map((c) => [c.charCodeAt(0)]));
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];

/**
 * moments(block, seq, groups, rowBytes, shift, sums, sumsStride, max, argmax): for each group of
 * four neurons (columns 4g … 4g+3), walks the rows t = 0 … seq−1 keeping eight float64x2 running
 * sums in registers, then stores them at sums + k·sumsStride (k = power − 1), with max/argmax.
 * Pointers are byte addresses; seq and groups must be ≥ 1.
 */
function momentModuleBytes(): Uint8Array<ArrayBuffer> {
  const I32 = 0x7f;
  const V128 = 0x7b;
  // Parameters.
  const BLOCK = 0, SEQ = 1, GROUPS = 2, ROW_BYTES = 3, SHIFT = 4, SUMS = 5, SUMS_STRIDE = 6, MAX = 7, ARGMAX = 8;
  // Locals: i32 group, row, row pointer, sums pointer; then v128.
  const G = 9, T = 10, P = 11, Q = 12;
  const C_LOW = 13, C_HIGH = 14, LOW = [15, 16, 17, 18], HIGH = [19, 20, 21, 22];
  const M = 23, AM = 24, X = 25, D = 26, D2 = 27, TV = 28;
  const get = (i: number) => [0x20, ...uleb(i)];
  const set = (i: number) => [0x21, ...uleb(i)];
  const tee = (i: number) => [0x22, ...uleb(i)];
  const i32 = (n: number) => [0x41, ...uleb(n)]; // only small non-negative constants (< 64) are used
  const addI32 = (local: number, n: number) => [...get(local), ...i32(n), 0x6a, ...set(local)];
  const simd = (op: number, ...immediates: number[]) => [0xfd, ...uleb(op), ...immediates];
  const load = (offset: number) => simd(0x00, 0, ...uleb(offset));
  const store = (offset: number) => simd(0x0b, 0, ...uleb(offset));
  const zero = simd(0x0c, ...new Array<number>(16).fill(0));
  const F32X4_GT = 0x44, V128_AND = 0x4e, PROMOTE_LOW = 0x5f, I32X4_SPLAT = 0x11, F32X4_SPLAT = 0x13;
  const I32X4_ADD = 0xae, I32X4_MAX_S = 0xb8, F32X4_PMAX = 0xeb, F64X2_ADD = 0xf0, F64X2_SUB = 0xf1, F64X2_MUL = 0xf2;
  const LOOP = [0x03, 0x40], END = 0x0b, BR_IF_0 = [0x0d, 0];

  // d = promote(lanes) − c; s1 += d; s2 += d²; s3 += d²·d; s4 += d²·d² (the JS kernel's order).
  const powerSums = (lanes: number[], c: number, s: number[]) => [
    ...lanes, ...simd(PROMOTE_LOW), ...get(c), ...simd(F64X2_SUB), ...tee(D),
    ...get(D), ...simd(F64X2_MUL), ...set(D2),
    ...get(s[0]), ...get(D), ...simd(F64X2_ADD), ...set(s[0]),
    ...get(s[1]), ...get(D2), ...simd(F64X2_ADD), ...set(s[1]),
    ...get(s[2]), ...get(D2), ...get(D), ...simd(F64X2_MUL), ...simd(F64X2_ADD), ...set(s[2]),
    ...get(s[3]), ...get(D2), ...get(D2), ...simd(F64X2_MUL), ...simd(F64X2_ADD), ...set(s[3]),
  ];
  const highLanes = [...get(X), ...get(X), ...simd(0x0d, 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15)];
  const body = [
    ...LOOP, // groups
    ...get(SHIFT), ...load(0), ...set(C_LOW),
    ...get(SHIFT), ...load(16), ...set(C_HIGH),
    ...zero, ...[...LOW, ...HIGH, AM].flatMap((local, i, all) => (i < all.length - 1 ? tee(local) : set(local))),
    ...zero, ...set(TV),
    0x43, 0x00, 0x00, 0x80, 0xff, ...simd(F32X4_SPLAT), ...set(M), // −∞
    ...get(BLOCK), ...set(P),
    ...i32(0), ...set(T),
    ...LOOP, // rows
    ...get(P), ...load(0), ...set(X),
    // A new max at row t: t exceeds every earlier argmax, so max(argmax, t where x > max) is it.
    ...get(AM), ...get(TV), ...get(X), ...get(M), ...simd(F32X4_GT), ...simd(V128_AND), ...simd(I32X4_MAX_S), ...set(AM),
    ...get(M), ...get(X), ...simd(F32X4_PMAX), ...set(M), // m < x ? x : m
    ...get(TV), ...i32(1), ...simd(I32X4_SPLAT), ...simd(I32X4_ADD), ...set(TV),
    ...powerSums(get(X), C_LOW, LOW),
    ...powerSums(highLanes, C_HIGH, HIGH),
    ...get(P), ...get(ROW_BYTES), 0x6a, ...set(P),
    ...get(T), ...i32(1), 0x6a, ...tee(T), ...get(SEQ), 0x49, ...BR_IF_0, // t < seq (unsigned)
    END,
    ...get(SUMS), ...set(Q),
    ...[0, 1, 2, 3].flatMap((k) => [
      ...(k > 0 ? [...get(Q), ...get(SUMS_STRIDE), 0x6a, ...set(Q)] : []),
      ...get(Q), ...get(LOW[k]), ...store(0),
      ...get(Q), ...get(HIGH[k]), ...store(16),
    ]),
    ...get(MAX), ...get(M), ...store(0),
    ...get(ARGMAX), ...get(AM), ...store(0),
    ...addI32(BLOCK, 16), ...addI32(SHIFT, 32), ...addI32(SUMS, 32), ...addI32(MAX, 16), ...addI32(ARGMAX, 16),
    ...get(G), ...i32(1), 0x6a, ...tee(G), ...get(GROUPS), 0x49, ...BR_IF_0,
    END,
    END,
  ];
  const code = [...vector([[...uleb(4), I32], [...uleb(16), V128]]), ...body];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vector([[0x60, ...vector(new Array<number[]>(9).fill([I32])), 0x00]])),
    ...section(2, vector([[...name('env'), ...name('memory'), 0x02, 0x00, 0x01]])),
    ...section(3, vector([[0x00]])),
    ...section(7, vector([[...name('moments'), 0x00, 0x00]])),
    ...section(10, vector([[...uleb(code.length), ...code]])),
  ]);
}
