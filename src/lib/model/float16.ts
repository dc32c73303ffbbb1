/** The value of every IEEE half (by its bits), built on first use (256 KB). */
let halfValues: Float32Array | null = null;

function halfValueTable(): Float32Array {
  if (halfValues) return halfValues;
  const table = new Float32Array(1 << 16);
  for (let h = 0; h < table.length; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) table[h] = sign * frac * 2 ** -24;
    else if (exp === 31) table[h] = frac ? NaN : sign * Infinity;
    else table[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  halfValues = table;
  return table;
}

/** The value of the IEEE half with bits h. */
export function halfValue(h: number): number {
  return halfValueTable()[h & 0xffff];
}

/** `count` halves of `bits` from `from`, as plain numbers. */
export function halvesToNumbers(bits: Uint16Array, from: number, count: number): number[] {
  const table = halfValueTable();
  const out = new Array<number>(count);
  for (let i = 0; i < count; i++) out[i] = table[bits[from + i]];
  return out;
}

/** IEEE 754 half-precision bits to float32 (onnxruntime hands float16 tensors over as Uint16Array). */
export function float16ToFloat32(bits: Uint16Array): Float32Array {
  const table = halfValueTable();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
  return out;
}

/** Magnitudes (float32 bits) from the smallest normal half, 2^−14, up to 2^16: see halfBits. */
const HALF_NORMAL_LOW = 0x38800000;
const HALF_NORMAL_SPAN = 0x47800000 - HALF_NORMAL_LOW;

/**
 * IEEE half bits of the float32 with bits x, rounded to nearest even (Node 20 has no
 * Float16Array). For magnitudes that become normal halves (or overflow to infinity by rounding)
 * this is one expression: dropping 13 mantissa bits after adding 0xfff plus the kept last bit
 * rounds to nearest even, a carry ripples correctly into the exponent, and rebiasing subtracts
 * 112 from it; the general routine handles the rest.
 */
export function halfBits(x: number): number {
  const magnitude = x & 0x7fffffff;
  if (((magnitude - HALF_NORMAL_LOW) >>> 0) < HALF_NORMAL_SPAN) {
    return ((x >>> 16) & 0x8000) | (((magnitude + 0xfff + ((magnitude >>> 13) & 1)) >>> 13) - (112 << 10));
  }
  return generalHalfBits(x);
}

function generalHalfBits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const full = mantissa | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = full & ((1 << shift) - 1);
    let m = full >>> shift;
    if (rest > half || (rest === half && m & 1)) m++;
    return sign | m;
  }
  let h = sign | (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++; // a carry into the exponent is still correct
  return h;
}
