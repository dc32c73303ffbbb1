/**
 * Where WebAssembly is missing (or disabled by policy), the statistics fall back to the JS
 * moment kernel and JS binning. The result must be the same, byte for byte, as with WebAssembly.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createSeededRandom } from '../src/lib/activations/seeded-random.ts';

type StatsModule = typeof import('../src/lib/activations/scan-statistics.ts');
type KernelModule = typeof import('../src/lib/activations/moment-kernel.ts');

/** A scan of random activations (values on a grid, so ties and edge values occur) with tokens from a small vocabulary. */
function scanWith(stats: StatsModule): ArrayBuffer[] {
  const layers = [0, 2];
  const dMlp = 37; // eight-, four- and single-neuron tails in the kernel
  const acc = new stats.ScanStatistics({ layers, dMlp, excerptLength: 9, topK: 5, randomSampleSize: 6, quantileSampleSize: 3, seed: 2 });
  const random = createSeededRandom(21);
  for (let e = 0; e < 400; e++) {
    const length = 3 + Math.floor(random() * 7);
    const tokens = Array.from({ length }, () => Math.floor(random() * 30));
    const activations = new Map(
      layers.map((layer) => [layer, { data: Float32Array.from({ length: length * dMlp }, () => Math.round((random() - 0.2) * 64) / 16) }]),
    );
    acc.addExcerpt(e, tokens, activations);
  }
  return acc.serialize();
}

const bytes = (parts: ArrayBuffer[]) => parts.map((p) => Buffer.from(p).toString('base64'));

describe('neuron statistics without WebAssembly', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    vi.resetModules();
  });

  it('gives the same state as with WebAssembly', async () => {
    vi.resetModules();
    const withWasm = await import('../src/lib/activations/scan-statistics.ts');
    const kernels = (await import('../src/lib/activations/moment-kernel.ts')) as KernelModule;
    expect(kernels.createMomentKernel(37, 9).kind).toBe('wasm-simd');
    const expected = bytes(scanWith(withWasm));

    // Fresh module instances, whose compile-once caches see WebAssembly refuse every module.
    vi.resetModules();
    vi.spyOn(WebAssembly, 'validate').mockReturnValue(false);
    const withoutWasm = await import('../src/lib/activations/scan-statistics.ts');
    const jsKernels = (await import('../src/lib/activations/moment-kernel.ts')) as KernelModule;
    const histogram = await import('../src/lib/activations/histogram-kernel.ts');
    expect(jsKernels.createMomentKernel(37, 9).kind).toBe('js');
    expect(histogram.createHistogramKernel(37, 64, 128, 16)).toBeNull();
    expect(bytes(scanWith(withoutWasm))).toEqual(expected);
  });
});
