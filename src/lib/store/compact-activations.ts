/**
 * Compact storage of activation values: IEEE 754 half precision (float16), float32 or float64,
 * chosen per record.
 *
 * float16 error (round to nearest, ties to even, computed directly from the double so there is
 * no double rounding):
 * - normal range, 2^-14 ≤ |x| ≤ 65504: relative error ≤ 2^-11 ≈ 4.9e-4;
 * - subnormal range, |x| < 2^-14: absolute error ≤ 2^-25 ≈ 3.0e-8 (half the spacing 2^-24);
 * - |x| ≥ 65520 would round to infinity: refused (StoreCodecError), as is NaN.
 * Signed zero is kept (-0 encodes as 0x8000).
 *
 * `lossless` picks the smallest of float16 / float32 / float64 that gives back every value
 * exactly (sign of zero included). Records built by the scan are already rounded to float16
 * (neuron-stats' rowPrecision), so they take 2 bytes per value at no loss; imported paper
 * records usually hold float32 values (4 bytes), anything else stays float64.
 */
import { halfValue } from '../model/float16.ts';

/** A value that cannot be stored in the requested encoding. */
export class StoreCodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreCodecError';
  }
}

export type ActivationEncoding = 'float16' | 'float32' | 'float64';
/** An encoding, or `lossless` for the smallest encoding that keeps every value exactly. */
export type EncodingChoice = ActivationEncoding | 'lossless';

export type PackedArray = Uint16Array | Float32Array | Float64Array;

export const FLOAT16_MAX = 65504;
/** Smallest |x| that rounds to infinity in float16 (halfway between 65504 and 2^16). */
const FLOAT16_OVERFLOW = 65520;
const MIN_NORMAL = 2 ** -14;

const prefix = (where: string): string => (where ? `${where}: ` : '');

/** Rounds x (0 ≤ x < 2^53) to an integer, ties to even. */
function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const rest = x - floor; // exact: x has at most 53 significant bits and floor(x) shares the top ones
  if (rest > 0.5) return floor + 1;
  if (rest < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** A double's bits: the exponent is read from them (Math.log2 is slow, and can be off by one near powers of two). */
const doubleView = new DataView(new ArrayBuffer(8));

/** floor(log2(a)) for a normal double a > 0, exactly: its unbiased exponent. */
function exponentOf(a: number): number {
  doubleView.setFloat64(0, a);
  return ((doubleView.getUint16(0) >>> 4) & 0x7ff) - 1023;
}

/** A float32's bits (the scan's activations are float32s: their conversion works on these bits). */
const float32Slot = new Float32Array(1);
const float32Bits = new Uint32Array(float32Slot.buffer);

/** The float16 bit pattern nearest to `value` (ties to even). Throws on NaN or overflow. */
export function float16Bits(value: number, where = ''): number {
  // Fast path, for a normal float16 result from a value that is exactly a float32 (every value
  // of a scan): rounding its 23-bit mantissa to 10 bits is then the only rounding, so the result
  // is the same as the general path's. A carry out of the mantissa moves to the exponent, as it should.
  float32Slot[0] = value;
  if (float32Slot[0] === value) {
    const bits = float32Bits[0];
    const magnitude = bits & 0x7fffffff;
    if (magnitude >= 0x38800000 && magnitude < 0x477ff000) {
      let half = (((magnitude >>> 23) - 112) << 10) | ((magnitude >>> 13) & 0x3ff);
      const rest = magnitude & 0x1fff;
      if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++;
      return ((bits >>> 16) & 0x8000) | half;
    }
  }
  if (Number.isNaN(value)) throw new StoreCodecError(`${prefix(where)}NaN cannot be stored`);
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  const a = Math.abs(value);
  if (a >= FLOAT16_OVERFLOW) {
    throw new StoreCodecError(`${prefix(where)}${value} is outside the float16 range (±${FLOAT16_MAX})`);
  }
  if (a < MIN_NORMAL) {
    // Subnormal: a multiple of 2^-24. A round-up to 1024 is the smallest normal's bit pattern.
    return sign | roundHalfEven(a * 2 ** 24);
  }
  let e = exponentOf(a);
  let m = roundHalfEven(a * 2 ** (10 - e)); // in [1024, 2048]
  if (m === 2048) {
    m = 1024;
    e++;
  }
  return sign | ((e + 15) << 10) | (m - 1024);
}

/** The value of a float16 bit pattern (exact as a double). */
export const float16Value = halfValue;

/** `value` rounded to the nearest float16 (ties to even). */
export function roundToFloat16(value: number): number {
  return float16Value(float16Bits(value));
}

/** Same number, with -0 and 0 told apart. */
function sameValue(a: number, b: number): boolean {
  return a === b ? a !== 0 || Object.is(a, b) : false;
}

function fitsFloat16(value: number): boolean {
  return Math.abs(value) < FLOAT16_OVERFLOW && sameValue(float16Value(float16Bits(value)), value);
}

function fitsFloat32(value: number): boolean {
  return sameValue(Math.fround(value), value);
}

function checkFinite(values: ArrayLike<number>, where: string): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new StoreCodecError(`${prefix(`${where}[${i}]`)}expected a finite number, got ${String(v)}`);
    }
  }
}

/** The smallest encoding that stores every one of `values` exactly. */
export function losslessEncoding(values: ArrayLike<number>): ActivationEncoding {
  let encoding: ActivationEncoding = 'float16';
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (encoding === 'float16' && fitsFloat16(v)) continue;
    if (fitsFloat32(v)) encoding = 'float32';
    else return 'float64';
  }
  return encoding;
}

/** Resolves `lossless` to a concrete encoding for these values. */
export function resolveEncoding(values: ArrayLike<number>, choice: EncodingChoice): ActivationEncoding {
  if (choice === 'lossless') return losslessEncoding(values);
  if (choice !== 'float16' && choice !== 'float32' && choice !== 'float64') {
    throw new StoreCodecError(`unknown activation encoding ${JSON.stringify(choice)}`);
  }
  return choice;
}

/**
 * `values` in the given encoding (float16 and float32 round to nearest). Non-finite values are
 * refused; `where` names the values in error messages.
 */
export function packValues(values: ArrayLike<number>, encoding: ActivationEncoding, where = ''): PackedArray {
  checkFinite(values, where);
  switch (encoding) {
    case 'float16': {
      const out = new Uint16Array(values.length);
      let i = 0;
      try {
        for (; i < values.length; i++) out[i] = float16Bits(values[i]);
      } catch {
        float16Bits(values[i], `${where}[${i}]`); // the same failure, now naming the value (names are built only then: they are slow)
      }
      return out;
    }
    case 'float32':
      for (let i = 0; i < values.length; i++) {
        if (!Number.isFinite(Math.fround(values[i]))) {
          throw new StoreCodecError(`${prefix(`${where}[${i}]`)}${values[i]} is outside the float32 range`);
        }
      }
      return Float32Array.from(values);
    case 'float64':
      return Float64Array.from(values);
    default:
      throw new StoreCodecError(`unknown activation encoding ${JSON.stringify(encoding)}`);
  }
}

/** The array type of each encoding, to check stored data. */
export function encodingOf(data: PackedArray): ActivationEncoding {
  if (data instanceof Uint16Array) return 'float16';
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  throw new StoreCodecError('stored activations are not a Uint16Array, Float32Array or Float64Array');
}

/** The value of every float16 bit pattern, built on first use (a lookup is faster than decoding). */
let float16Values: Float64Array | undefined;

/** Values `start` to `end` of packed data as plain numbers. */
export function unpackValues(data: PackedArray, start = 0, end = data.length): number[] {
  const out = new Array<number>(end - start);
  if (data instanceof Uint16Array) {
    const values = (float16Values ??= Float64Array.from({ length: 0x10000 }, (_, bits) => float16Value(bits)));
    for (let i = start; i < end; i++) out[i - start] = values[data[i]];
  } else {
    for (let i = start; i < end; i++) out[i - start] = data[i];
  }
  return out;
}
