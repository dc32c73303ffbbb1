/**
 * The WebAssembly binning loop of the scan's quantile tracking, against the same rules written
 * plainly in JS: counts per bin, and the (bin, excerpt) and (−1 − neuron, excerpt) events in order.
 */
import { describe, expect, it } from 'vitest';
import { createHistogramKernel } from '../src/lib/activations/histogram-kernel.ts';
import { createSeededRandom } from '../src/lib/activations/seeded-random.ts';

describe('histogram kernel', () => {
  it('counts every buffered max in its bin and reports exactly the pairs that need more', () => {
    const random = createSeededRandom(5);
    const neurons = 37; // not a multiple of the group size
    const bins = 9;
    const pending = 12;
    const group = 16;
    const sampleSize = 3;
    const kernel = createHistogramKernel(neurons, bins, pending, group);
    expect(kernel).not.toBeNull();
    if (!kernel) return;
    // A table where some entries are ambiguous (0xffff), and a bin state with full and open bins.
    for (let i = 0; i < 65536; i++) kernel.binByBits[i] = i % 97 === 0 ? 0xffff : (i >>> 7) % bins;
    for (let bin = 0; bin < neurons * bins; bin++) {
      const held = Math.floor(random() * (sampleSize + 1));
      kernel.binState[3 * bin] = Math.floor(random() * 50);
      kernel.binState[3 * bin + 1] = Math.floor(random() * 2 ** 32);
      kernel.binState[3 * bin + 2] = held | (Math.floor(random() * sampleSize) << 8);
    }
    const count = 10;
    const bits = new Uint32Array(kernel.pendingMax.buffer, kernel.pendingMax.byteOffset, pending * neurons);
    for (let i = 0; i < count * neurons; i++) bits[i] = Math.floor(random() * 2 ** 32);
    for (let b = 0; b < count; b++) kernel.pendingPriority[b] = Math.floor(random() * 2 ** 32);

    const expectedState = kernel.binState.slice();
    const expectedEvents: number[][] = [];
    const events: number[][] = [];
    for (let from = 0; from < neurons; from += group) {
      const to = Math.min(neurons, from + group);
      const expected: number[][] = [];
      for (let b = 0; b < count; b++) {
        for (let n = from; n < to; n++) {
          const j = kernel.binByBits[bits[b * neurons + n] >>> 16];
          if (j === 0xffff) {
            expected.push([-1 - n, b]);
            continue;
          }
          const state = 3 * (n * bins + j);
          expectedState[state]++;
          if ((expectedState[state + 2] & 0xff) === sampleSize && kernel.pendingPriority[b] > expectedState[state + 1]) continue;
          expected.push([n * bins + j, b]);
        }
      }
      const pairs = kernel.bin(from, to, count, sampleSize);
      for (let i = 0; i < pairs; i++) events.push([kernel.events[2 * i], kernel.events[2 * i + 1]]);
      expectedEvents.push(...expected);
    }
    expect(Array.from(kernel.binState)).toEqual(Array.from(expectedState));
    expect(events).toEqual(expectedEvents);
    // Both kinds of event occur, so both paths were exercised.
    expect(events.some(([code]) => code < 0)).toBe(true);
    expect(events.some(([code]) => code >= 0)).toBe(true);
    expect(events.length).toBeLessThan(count * neurons);
  });
});
