/**
 * The scan's moment kernel: the WebAssembly SIMD and the JS implementations against a plain
 * per-neuron float32 loop, bit for bit (the scan's checkpoints and records must not depend on which one
 * ran), and the columns it copies out for neurons whose max reaches their threshold.
 */
import { describe, expect, it } from 'vitest';
import { createMomentKernel, type MomentKernel } from '../src/lib/activations/moment-kernel.ts';
import { createSeededRandom } from '../src/lib/activations/seeded-random.ts';
import { halfBits } from '../src/lib/model/float16.ts';

/**
 * Neuron by neuron, token by token, every operation rounded to float32 (a Float32Array stores
 * each intermediate): the definition the kernels must reproduce exactly.
 */
function reference(data: Float32Array, offset: number, seq: number, dMlp: number, shift: Float32Array, shiftOffset: number) {
  const sums = new Float32Array(4 * dMlp);
  const max = new Float32Array(dMlp).fill(-Infinity);
  const r = new Float32Array(4); // d, d², d²·d, d²·d²
  for (let j = 0; j < dMlp; j++) {
    for (let t = 0; t < seq; t++) {
      const x = data[offset + t * dMlp + j];
      r[0] = x - shift[shiftOffset + j];
      r[1] = r[0] * r[0];
      r[2] = r[1] * r[0];
      r[3] = r[1] * r[1];
      for (let k = 0; k < 4; k++) sums[k * dMlp + j] += r[k];
      if (x > max[j]) max[j] = x;
    }
  }
  return { sums, max };
}

function sameBits(actual: ArrayLike<number>, expected: ArrayLike<number>): boolean {
  if (actual.length !== expected.length) return false;
  for (let i = 0; i < actual.length; i++) if (!Object.is(actual[i], expected[i])) return false;
  return true;
}

/** Activations with ties (values on a 1/8 grid), signed zeros, and very small and large magnitudes. */
function block(random: () => number, length: number): Float32Array {
  return Float32Array.from({ length }, () => {
    const u = random();
    if (u < 0.05) return 0;
    if (u < 0.1) return -0;
    if (u < 0.3) return Math.round((random() - 0.3) * 40) / 8;
    if (u < 0.32) return (random() - 0.5) * 1e-30;
    if (u < 0.34) return (random() - 0.5) * 1e30;
    return (random() - 0.2) * 3;
  });
}

describe('moment kernel', () => {
  it('uses WebAssembly SIMD in Node, and JS when asked to', () => {
    expect(createMomentKernel(3072, 64).kind).toBe('wasm-simd');
    expect(createMomentKernel(3072, 64, 'js').kind).toBe('js');
    // Fewer than four neurons do not fill one SIMD group.
    expect(createMomentKernel(3, 64).kind).toBe('js');
  });

  it('gives the per-neuron float32 loop’s sums and max bit for bit, for any width and length', () => {
    const random = createSeededRandom(7);
    let cases = 0;
    for (const dMlp of [1, 3, 4, 5, 8, 13, 64, 771]) {
      for (const seq of [1, 2, 3, 4, 5, 7, 9, 64]) {
        const kernels: MomentKernel[] = [createMomentKernel(dMlp, 64), createMomentKernel(dMlp, 64, 'js')];
        for (let repeat = 0; repeat < 2; repeat++) {
          const offset = Math.floor(random() * 3) * dMlp + Math.floor(random() * 2);
          const data = block(random, offset + seq * dMlp + 5);
          const shift = Float32Array.from({ length: dMlp + 3 }, () => (random() - 0.5) * 2);
          const expected = reference(data, offset, seq, dMlp, shift, 2);
          // Thresholds: some exactly at the max (reached), some just above it, −∞ and +∞.
          const threshold = Float32Array.from({ length: dMlp + 3 }, (_, i) => {
            const max = expected.max[i - 2] ?? 0;
            return [max, max + 1, -Infinity, Infinity][Math.floor(random() * 4)];
          });
          const reached = Array.from({ length: dMlp }, (_, j) => j).filter((j) => expected.max[j] >= threshold[j + 2]);
          for (const kernel of kernels) {
            const read = kernel.run(data, offset, seq, shift, 2, threshold);
            expect(sameBits(kernel.sums, expected.sums), `${kernel.kind} sums, dMlp ${dMlp}, seq ${seq}`).toBe(true);
            expect(sameBits(kernel.max, expected.max), `${kernel.kind} max, dMlp ${dMlp}, seq ${seq}`).toBe(true);
            expect(Array.from(kernel.reached.subarray(0, kernel.reachedCount)), `${kernel.kind} reached, dMlp ${dMlp}, seq ${seq}`).toEqual(reached);
            reached.forEach((j, i) => {
              const column = Float32Array.from({ length: seq }, (_, t) => data[offset + t * dMlp + j]);
              expect(sameBits(kernel.columns.subarray(i * seq, (i + 1) * seq), column), `${kernel.kind} column of ${j}`).toBe(true);
            });
            // The block it hands back holds the same activations.
            expect(sameBits(read.data.subarray(read.offset, read.offset + seq * dMlp), data.subarray(offset, offset + seq * dMlp))).toBe(true);
          }
          cases++;
        }
      }
    }
    expect(cases).toBe(8 * 8 * 2);
  });

  it('gives the reached columns as half bits equal to halfBits, across the whole float32 range', () => {
    // 65,536 bit patterns spread over every sign, exponent and rounding case, plus exact ties.
    const dMlp = 1024;
    const seq = 64;
    const bits = Uint32Array.from({ length: dMlp * seq }, (_, i) => (i * 65537 + (i >>> 6)) >>> 0);
    bits.set([0x33000000, 0x33000001, 0x387fe000, 0x387ff000, 0x477fefff, 0x477ff000, 0x477fe000, 0x00000001, 0x80000000, 0x7f800000, 0xff800001], 0);
    const data = new Float32Array(bits.buffer);
    for (const kernel of [createMomentKernel(dMlp, seq, 'wasm-simd', true), createMomentKernel(dMlp, seq, 'js', true)]) {
      kernel.run(data, 0, seq, new Float32Array(dMlp), 0, new Float32Array(dMlp).fill(-Infinity));
      expect(kernel.reachedCount).toBe(dMlp);
      const columnBits = new Uint32Array(kernel.columns.buffer, kernel.columns.byteOffset, dMlp * seq);
      const mismatches = Array.from({ length: dMlp * seq }, (_, i) => i).filter((i) => kernel.halfColumns[i] !== halfBits(columnBits[i]));
      expect(mismatches, kernel.kind).toEqual([]);
    }
    // A few values whose half bits are known: 1, −2, 65504 (largest half), 65520 (rounds to ∞), 2⁻²⁴, 2⁻²⁵ (tie → 0).
    expect([1, -2, 65504, 65520, 2 ** -24, 2 ** -25].map((x) => halfBits(new Uint32Array(Float32Array.of(x).buffer)[0]))).toEqual([0x3c00, 0xc000, 0x7bff, 0x7c00, 0x0001, 0x0000]);
  });

  it('keeps the first of tied zeros as the max, as the per-neuron loop does', () => {
    const dMlp = 12;
    const seq = 3;
    const data = new Float32Array(seq * dMlp).fill(-1);
    // Neurons 0-5: −0 then +0 (the max stays −0); 6-11: +0 then −0.
    for (let j = 0; j < dMlp; j++) {
      data[dMlp + j] = j < 6 ? -0 : 0;
      data[2 * dMlp + j] = j < 6 ? 0 : -0;
    }
    for (const kernel of [createMomentKernel(dMlp, seq), createMomentKernel(dMlp, seq, 'js')]) {
      kernel.run(data, 0, seq, new Float32Array(dMlp), 0, new Float32Array(dMlp));
      expect(Array.from(kernel.max).map((m) => Object.is(m, -0))).toEqual([...new Array(6).fill(true), ...new Array(6).fill(false)]);
    }
  });

  it('overflows float32 (rather than failing silently) where |d| is beyond about 4e9', () => {
    const dMlp = 8;
    const data = new Float32Array(2 * dMlp).fill(1);
    data[dMlp + 3] = 1e10;
    for (const kernel of [createMomentKernel(dMlp, 2), createMomentKernel(dMlp, 2, 'js')]) {
      kernel.run(data, 0, 2, new Float32Array(dMlp), 0, new Float32Array(dMlp));
      expect(kernel.sums[3 * dMlp + 3]).toBe(Infinity); // Σd⁴: the accumulator then redoes this neuron in float64
      expect(Number.isFinite(kernel.sums[3])).toBe(true);
      expect(kernel.sums[3 * dMlp + 2]).toBe(2);
    }
  });

  it('lets a non-finite activation show in its own neuron’s sums only', () => {
    const dMlp = 9;
    const seq = 4;
    const random = createSeededRandom(3);
    const data = block(random, seq * dMlp);
    data[2 * dMlp + 5] = NaN;
    data[1 * dMlp + 6] = Infinity;
    for (const kernel of [createMomentKernel(dMlp, seq), createMomentKernel(dMlp, seq, 'js')]) {
      kernel.run(data, 0, seq, new Float32Array(dMlp), 0, new Float32Array(dMlp));
      const firstSums = Array.from(kernel.sums.subarray(0, dMlp));
      expect(firstSums.map((s) => Number.isFinite(s))).toEqual([true, true, true, true, true, false, false, true, true]);
    }
  });

  it('starts every block afresh (a short block after a long one)', () => {
    const random = createSeededRandom(11);
    const dMlp = 12;
    const kernel = createMomentKernel(dMlp, 64);
    const long = block(random, 64 * dMlp);
    const short = block(random, 3 * dMlp);
    const shift = new Float32Array(dMlp);
    const everyNeuron = new Float32Array(dMlp).fill(-Infinity);
    kernel.run(long, 0, 64, shift, 0, everyNeuron);
    kernel.run(short, 0, 3, shift, 0, Float32Array.from({ length: dMlp }, (_, j) => (j === 5 ? -Infinity : Infinity)));
    const expected = reference(short, 0, 3, dMlp, shift, 0);
    expect(sameBits(kernel.sums, expected.sums)).toBe(true);
    expect(sameBits(kernel.max, expected.max)).toBe(true);
    expect(Array.from(kernel.reached.subarray(0, kernel.reachedCount))).toEqual([5]);
    expect(Array.from(kernel.columns.subarray(0, 3))).toEqual([short[5], short[dMlp + 5], short[2 * dMlp + 5]]);
  });

  it('refuses impossible sizes', () => {
    expect(() => createMomentKernel(0, 64)).toThrow(RangeError);
    expect(() => createMomentKernel(16, 0)).toThrow(/positive whole/);
    expect(() => createMomentKernel(2.5, 4)).toThrow(RangeError);
  });
});
