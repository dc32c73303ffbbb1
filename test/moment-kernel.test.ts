/**
 * The scan's moment kernel: the WebAssembly SIMD and the JS implementations against a plain
 * per-neuron loop, bit for bit (the scan's checkpoints and records must not depend on which one
 * ran).
 */
import { describe, expect, it } from 'vitest';
import { createMomentKernel, type MomentKernel } from '../src/lib/activations/moment-kernel.ts';
import { createSeededRandom } from '../src/lib/activations/seeded-random.ts';

/** Neuron by neuron, token by token: the definition the kernels must reproduce exactly. */
function reference(data: Float32Array, offset: number, seq: number, dMlp: number, shift: Float64Array, shiftOffset: number) {
  const sums = new Float64Array(4 * dMlp);
  const max = new Float32Array(dMlp);
  const argmax = new Int32Array(dMlp);
  for (let j = 0; j < dMlp; j++) {
    let s1 = 0, s2 = 0, s3 = 0, s4 = 0, best = -Infinity, at = 0;
    for (let t = 0; t < seq; t++) {
      const x = data[offset + t * dMlp + j];
      const d = x - shift[shiftOffset + j];
      s1 += d;
      s2 += d * d;
      s3 += d * d * d;
      s4 += d * d * (d * d);
      if (x > best) {
        best = x;
        at = t;
      }
    }
    [s1, s2, s3, s4].forEach((v, k) => (sums[k * dMlp + j] = v));
    max[j] = best;
    argmax[j] = at;
  }
  return { sums, max, argmax };
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

  it('gives the per-neuron loop’s sums, max and first argmax bit for bit, for any width and length', () => {
    const random = createSeededRandom(7);
    let cases = 0;
    for (const dMlp of [1, 3, 4, 5, 8, 13, 64, 771]) {
      for (const seq of [1, 2, 3, 4, 5, 7, 9, 64]) {
        const kernels: MomentKernel[] = [createMomentKernel(dMlp, 64), createMomentKernel(dMlp, 64, 'js')];
        for (let repeat = 0; repeat < 2; repeat++) {
          const offset = Math.floor(random() * 3) * dMlp + Math.floor(random() * 2);
          const data = block(random, offset + seq * dMlp + 5);
          const shift = Float64Array.from({ length: dMlp + 3 }, () => (random() - 0.5) * 2);
          const expected = reference(data, offset, seq, dMlp, shift, 2);
          for (const kernel of kernels) {
            const read = kernel.run(data, offset, seq, shift, 2);
            expect(sameBits(kernel.sums, expected.sums), `${kernel.kind} sums, dMlp ${dMlp}, seq ${seq}`).toBe(true);
            expect(sameBits(kernel.max, expected.max), `${kernel.kind} max, dMlp ${dMlp}, seq ${seq}`).toBe(true);
            expect(sameBits(kernel.argmax, expected.argmax), `${kernel.kind} argmax, dMlp ${dMlp}, seq ${seq}`).toBe(true);
            // The block it hands back holds the same activations.
            expect(sameBits(read.data.subarray(read.offset, read.offset + seq * dMlp), data.subarray(offset, offset + seq * dMlp))).toBe(true);
          }
          cases++;
        }
      }
    }
    expect(cases).toBe(8 * 8 * 2);
  });

  it('takes the first token of a tied max, and a later one only when strictly larger', () => {
    const dMlp = 8;
    const seq = 5;
    const data = new Float32Array(seq * dMlp);
    // Neurons 0-6: their max 2 at tokens 1, 2 and 3 (the first is 1), or at 4 only for neuron 6;
    // neuron 7 rises to the end.
    for (let j = 0; j < dMlp; j++) {
      for (const t of j === 6 ? [4] : [1, 2, 3]) data[t * dMlp + j] = 2;
    }
    for (let t = 0; t < seq; t++) data[t * dMlp + 7] = t * 10;
    for (const kernel of [createMomentKernel(dMlp, seq), createMomentKernel(dMlp, seq, 'js')]) {
      kernel.run(data, 0, seq, new Float64Array(dMlp), 0);
      expect(Array.from(kernel.argmax)).toEqual([1, 1, 1, 1, 1, 1, 4, 4]);
      expect(Array.from(kernel.max)).toEqual([2, 2, 2, 2, 2, 2, 2, 40]);
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
      kernel.run(data, 0, seq, new Float64Array(dMlp), 0);
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
    const shift = new Float64Array(dMlp);
    kernel.run(long, 0, 64, shift, 0);
    kernel.run(short, 0, 3, shift, 0);
    const expected = reference(short, 0, 3, dMlp, shift, 0);
    expect(sameBits(kernel.sums, expected.sums)).toBe(true);
    expect(sameBits(kernel.max, expected.max)).toBe(true);
    expect(sameBits(kernel.argmax, expected.argmax)).toBe(true);
  });

  it('refuses impossible sizes', () => {
    expect(() => createMomentKernel(0, 64)).toThrow(RangeError);
    expect(() => createMomentKernel(16, 0)).toThrow(/positive whole/);
    expect(() => createMomentKernel(2.5, 4)).toThrow(RangeError);
  });
});
