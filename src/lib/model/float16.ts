/** IEEE 754 half-precision bits to float32 (onnxruntime hands float16 tensors over as Uint16Array). */
export function float16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = halfToNumber(bits[i]);
  return out;
}

/** The value of one IEEE half (its 16 bits). */
export function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
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
