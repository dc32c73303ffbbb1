import { describe, expect, it } from 'vitest';
import { ScanStatistics, ScanStatisticsError, type ScanStatisticsConfig } from '../src/lib/activations/scan-statistics.ts';
import { createSeededRandom, QUANTILE_SAMPLE_STREAM, RANDOM_SAMPLE_STREAM, samplePriority } from '../src/lib/activations/seeded-random.ts';

// ---------------------------------------------------------------------------------------------
// Synthetic scans and brute-force references.

interface Excerpt {
  tokens: number[];
  /** Per layer: [seq, dMlp]. */
  layers: Map<number, Float32Array>;
}

interface DataOptions {
  layers: number[];
  dMlp: number;
  count: number;
  maxLength: number;
  vocab: number;
  seed: number;
  /** Round activations to multiples of 1/8 (exact in float16, and full of ties). */
  quantize?: boolean;
  /** Token that adds `plantedBoost` to neuron 0 of every layer. */
  plantedToken?: number;
  plantedBoost?: number;
}

function gelu(z: number): number {
  return 0.5 * z * (1 + Math.tanh(0.7978845608 * (z + 0.044715 * z ** 3)));
}

function makeExcerpts(o: DataOptions): Excerpt[] {
  const random = createSeededRandom(o.seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  return Array.from({ length: o.count }, () => {
    const seq = random() < 0.25 ? 1 + Math.floor(random() * o.maxLength) : o.maxLength;
    const tokens = Array.from({ length: seq }, () => Math.floor(random() ** 2 * o.vocab));
    const layers = new Map<number, Float32Array>();
    for (const layer of o.layers) {
      const data = new Float32Array(seq * o.dMlp);
      for (let t = 0; t < seq; t++) {
        for (let j = 0; j < o.dMlp; j++) {
          let v = gelu(normal() * (1 + j / o.dMlp) - 0.4) * (1 + layer);
          if (j === 0 && tokens[t] === o.plantedToken) v += o.plantedBoost ?? 0;
          data[t * o.dMlp + j] = o.quantize ? Math.round(v * 8) / 8 : v;
        }
      }
      layers.set(layer, data);
    }
    return { tokens, layers };
  });
}

function feed(acc: ScanStatistics, excerpts: Excerpt[], from = 0, to = excerpts.length): void {
  for (let e = from; e < to; e++) {
    const { tokens, layers } = excerpts[e];
    acc.addExcerpt(e, tokens, new Map([...layers].map(([layer, data]) => [layer, { data }])));
  }
}

/** Activations of neuron n (slot · dMlp + j) on excerpt e, as float32 values. */
function row(excerpts: Excerpt[], layers: number[], dMlp: number, n: number, e: number): number[] {
  const data = excerpts[e].layers.get(layers[Math.floor(n / dMlp)])!;
  const j = n % dMlp;
  return excerpts[e].tokens.map((_, t) => data[t * dMlp + j]);
}

function bottomByPriority(indices: number[], seed: number, stream: number, k: number): number[] {
  return indices
    .map((e) => ({ e, p: samplePriority(seed, stream, e) }))
    .sort((a, b) => a.p - b.p || a.e - b.e)
    .slice(0, k)
    .map((x) => x.e);
}

function closeTo(actual: number | null, expected: number, relative: number): void {
  expect(actual).not.toBeNull();
  expect(Math.abs(actual! - expected)).toBeLessThanOrEqual(relative * Math.max(1, Math.abs(expected)));
}

const tokenText = (e: number, excerpts: Excerpt[]) => excerpts[e].tokens.map((id) => `<${id}>`);

// ---------------------------------------------------------------------------------------------

describe('ScanStatistics against brute force', () => {
  const layers = [1, 3];
  const dMlp = 5;
  const data = makeExcerpts({ layers, dMlp, count: 300, maxLength: 12, vocab: 40, seed: 7 });
  const config: ScanStatisticsConfig = { layers, dMlp, excerptLength: 12, topK: 6, randomSampleSize: 9, quantileSampleSize: 3, seed: 11, rowPrecision: 'float32' };
  const acc = new ScanStatistics(config);
  feed(acc, data);
  const neurons = layers.length * dMlp;

  it('counts excerpts and tokens', () => {
    expect(acc.excerptCount).toBe(300);
    expect(acc.tokenTotal).toBe(data.reduce((s, e) => s + e.tokens.length, 0));
  });

  // Per-excerpt power sums are float32 (see moment-kernel.ts), totals float64: about 1e-7 here.
  it('moments equal a two-pass float64 computation to 1e-6 (kurtosis is excess kurtosis)', () => {
    for (let n = 0; n < neurons; n++) {
      const values = data.flatMap((_, e) => row(data, layers, dMlp, n, e));
      const mean = values.reduce((s, v) => s + v, 0) / values.length;
      const central = (p: number) => values.reduce((s, v) => s + (v - mean) ** p, 0) / values.length;
      const variance = central(2);
      const m = acc.momentsOf(n)!;
      closeTo(m.mean, mean, 1e-6);
      closeTo(m.variance, variance, 1e-6);
      closeTo(m.skewness, central(3) / variance ** 1.5, 1e-6);
      closeTo(m.kurtosis, central(4) / variance ** 2 - 3, 1e-6);
    }
  });

  it('keeps moments accurate far from zero and beyond float32’s range for d⁴', () => {
    const dMlp = 8;
    const acc = new ScanStatistics({ layers: [0], dMlp, excerptLength: 16 });
    const random = createSeededRandom(5);
    const columns: number[][] = Array.from({ length: dMlp }, () => []);
    for (let e = 0; e < 50; e++) {
      const data = new Float32Array(16 * dMlp);
      for (let t = 0; t < 16; t++) {
        for (let j = 0; j < dMlp; j++) {
          // Neuron 0: around 1000 with spread 1; neuron 1: rare activations of 1e12 (d⁴ overflows float32).
          const x = j === 0 ? 1000 + random() : j === 1 ? (random() < 0.05 ? 1e12 : random()) : random() - 0.5;
          data[t * dMlp + j] = x;
          columns[j].push(data[t * dMlp + j]);
        }
      }
      acc.addExcerpt(e, new Array(16).fill(1), new Map([[0, { data }]]));
    }
    for (const j of [0, 1, 2]) {
      const values = columns[j];
      const mean = values.reduce((s, v) => s + v, 0) / values.length;
      const central = (p: number) => values.reduce((s, v) => s + (v - mean) ** p, 0) / values.length;
      const m = acc.momentsOf(j)!;
      expect(Math.abs(m.mean - mean) / Math.abs(mean)).toBeLessThan(1e-6);
      expect(Math.abs(m.variance - central(2)) / central(2)).toBeLessThan(1e-5);
      expect(Math.abs(m.skewness! - central(3) / central(2) ** 1.5)).toBeLessThan(1e-4 * Math.max(1, Math.abs(m.skewness!)));
      expect(Math.abs(m.kurtosis! - (central(4) / central(2) ** 2 - 3))).toBeLessThan(1e-4 * Math.max(1, Math.abs(m.kurtosis!)));
    }
  });

  it('keeps the exact top-K excerpts by max activation, largest first', () => {
    for (let n = 0; n < neurons; n++) {
      const expected = data
        .map((_, e) => ({ e, max: Math.max(...row(data, layers, dMlp, n, e)) }))
        .sort((a, b) => b.max - a.max || a.e - b.e)
        .slice(0, 6);
      expect(acc.topExcerpts(n)).toEqual(expected.map(({ e, max }) => ({ excerptIndex: e, maxActivation: max })));
    }
  });

  it('takes the shared random sample as the excerpts of smallest priority', () => {
    const all = data.map((_, e) => e);
    expect(acc.randomSampleExcerpts()).toEqual(bottomByPriority(all, 11, RANDOM_SAMPLE_STREAM, 9));
  });

  it('samples each quantile bin exactly: members lie within its boundaries and are its smallest priorities', () => {
    for (let n = 0; n < neurons; n++) {
      const maxima = data.map((_, e) => Math.max(...row(data, layers, dMlp, n, e)));
      const q = acc.quantileSample(n)!;
      expect(q.boundaries).toHaveLength(6);
      expect(q.bins).toHaveLength(5);
      expect(q.boundaries[0]).toBe(Math.min(...maxima));
      expect(q.boundaries[5]).toBe(Math.max(...maxima));
      for (let i = 1; i < 6; i++) expect(q.boundaries[i]).toBeGreaterThanOrEqual(q.boundaries[i - 1]);
      q.bins.forEach((bin, i) => {
        const last = i === q.bins.length - 1;
        const inBin = (v: number) => v >= q.boundaries[i] && (last ? v <= q.boundaries[i + 1] : v < q.boundaries[i + 1]);
        for (const e of bin) expect(inBin(maxima[e])).toBe(true);
        const members = maxima.flatMap((v, e) => (inBin(v) ? [e] : []));
        expect(bin).toEqual(bottomByPriority(members, 11, QUANTILE_SAMPLE_STREAM, 3));
      });
    }
  });

  it('builds records in the paper format from stored rows and re-run activations', () => {
    const n = 7;
    const rerun = acc.excerptsToRerun(n);
    const requested: number[] = [];
    const record = acc.buildRecord(
      n,
      (e) => tokenText(e, data),
      (e) => {
        requested.push(e);
        return row(data, layers, dMlp, n, e);
      },
    );
    expect(new Set(requested)).toEqual(new Set(rerun));
    expect(record.dataclass_name).toBe('NeuronRecord');
    expect(record.neuron_id).toEqual({ dataclass_name: 'NeuronId', layer_index: 3, neuron_index: 2 });
    const top = acc.topExcerpts(n);
    expect(record.most_positive_activation_records.map((r) => r.activations)).toEqual(top.map((t) => row(data, layers, dMlp, n, t.excerptIndex)));
    expect(record.most_positive_activation_records[0].tokens).toEqual(tokenText(top[0].excerptIndex, data));
    expect(record.random_sample.map((r) => r.activations)).toEqual(acc.randomSampleExcerpts().map((e) => row(data, layers, dMlp, n, e)));
    for (const r of record.random_sample) expect(r.dataclass_name).toBe('ActivationRecord');
    expect(record.random_sample_by_quantile).toHaveLength(5);
    expect(record.quantile_boundaries).toEqual(acc.quantileSample(n)!.boundaries);
    expect(record.mean).toBe(acc.momentsOf(n)!.mean);
    expect(record.kurtosis).toBe(acc.momentsOf(n)!.kurtosis);
    expect(() => acc.buildRecord(n, (e) => tokenText(e, data), () => undefined)).toThrow(/were not supplied/);
  });
});

describe('top-K ties and stored rows', () => {
  it('breaks ties by the smaller excerpt index and stores float16 rows exactly for representable values', () => {
    const layers = [0];
    const dMlp = 4;
    const data = makeExcerpts({ layers, dMlp, count: 120, maxLength: 6, vocab: 10, seed: 3, quantize: true });
    const acc = new ScanStatistics({ layers, dMlp, excerptLength: 6, topK: 15, seed: 1 });
    feed(acc, data);
    for (let n = 0; n < dMlp; n++) {
      const maxima = data.map((_, e) => Math.max(...row(data, layers, dMlp, n, e)));
      const expected = maxima.map((max, e) => ({ e, max })).sort((a, b) => b.max - a.max || a.e - b.e).slice(0, 15);
      expect(new Set(expected.map((x) => x.max)).size).toBeLessThan(15); // the data really has ties
      expect(acc.topExcerpts(n).map((t) => t.excerptIndex)).toEqual(expected.map((x) => x.e));
      const record = acc.buildRecord(n, (e) => tokenText(e, data), (e) => row(data, layers, dMlp, n, e));
      expect(record.most_positive_activation_records.map((r) => r.activations)).toEqual(expected.map((x) => row(data, layers, dMlp, n, x.e)));
    }
  });

  it('rounds float16 rows to nearest even, with overflow, underflow and subnormals', () => {
    const values = [0.1, -0.1, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 65504, 65520, 1e-8, 2 ** -24, -(2 ** -20), 3.1416];
    const expected = [0.0999755859375, -0.0999755859375, 1, 1 + 2 ** -9, 65504, Infinity, 0, 2 ** -24, -(2 ** -20), 3.140625];
    const acc = new ScanStatistics({ layers: [0], dMlp: 1, excerptLength: values.length, topK: 1 });
    acc.addExcerpt(0, values.map(() => 1), new Map([[0, { data: Float32Array.from(values) }]]));
    const record = acc.buildRecord(0, () => values.map(() => 'x'), () => undefined);
    expect(record.most_positive_activation_records[0].activations).toEqual(expected);
  });
});

describe('quantile boundaries', () => {
  it('approximate the requested quantiles of the per-excerpt max', () => {
    const layers = [0];
    const dMlp = 3;
    const data = makeExcerpts({ layers, dMlp, count: 2000, maxLength: 8, vocab: 10, seed: 5 });
    const acc = new ScanStatistics({
      layers,
      dMlp,
      excerptLength: 8,
      quantiles: [0.25, 0.5, 0.9],
      histogram: { bins: 400, min: -0.2, max: 20, unit: 0.01 },
    });
    feed(acc, data);
    for (let n = 0; n < dMlp; n++) {
      const maxima = data.map((_, e) => Math.max(...row(data, layers, dMlp, n, e)));
      const boundaries = acc.quantileSample(n)!.boundaries;
      [0.25, 0.5, 0.9].forEach((level, i) => {
        const below = maxima.filter((v) => v < boundaries[i + 1]).length / maxima.length;
        expect(Math.abs(below - level)).toBeLessThan(0.02);
      });
    }
  });

  it('collapse onto one bin when every excerpt max is the same', () => {
    const acc = new ScanStatistics({ layers: [0], dMlp: 1, excerptLength: 2 });
    for (let e = 0; e < 30; e++) acc.addExcerpt(e, [1, 2], new Map([[0, { data: Float32Array.of(0, 0.5) }]]));
    const q = acc.quantileSample(0)!;
    expect(q.boundaries).toEqual([0.5, 0.5, 0.5, 0.5, 0.5, 0.5]);
    expect(q.bins.slice(0, 4)).toEqual([[], [], [], []]);
    expect(q.bins[4]).toHaveLength(5);
  });
});

describe('random sample', () => {
  it('is roughly uniform over excerpts across seeds', () => {
    const excerpts = 40;
    const seeds = 300;
    const hits = new Array<number>(excerpts).fill(0);
    const block = new Map([[0, { data: Float32Array.of(0) }]]);
    for (let seed = 0; seed < seeds; seed++) {
      const acc = new ScanStatistics({ layers: [0], dMlp: 1, excerptLength: 1, randomSampleSize: 4, quantileSampleSize: 0, seed });
      for (let e = 0; e < excerpts; e++) acc.addExcerpt(e, [0], block);
      for (const e of acc.randomSampleExcerpts()) hits[e]++;
    }
    const expected = (seeds * 4) / excerpts;
    const chiSquare = hits.reduce((s, h) => s + (h - expected) ** 2 / expected, 0);
    expect(chiSquare).toBeLessThan(80); // 39 degrees of freedom: p < 1e-4 above this
    expect(Math.min(...hits)).toBeGreaterThan(0);
  });
});

describe('determinism, checkpoints and bounded memory', () => {
  const layers = [0, 1];
  const dMlp = 6;
  const data = makeExcerpts({ layers, dMlp, count: 260, maxLength: 10, vocab: 50, seed: 21 });
  const config: ScanStatisticsConfig = { layers, dMlp, excerptLength: 10, topK: 5, randomSampleSize: 7, seed: 4 };
  const bytesOf = (parts: ArrayBuffer[]) => parts.map((p) => Array.from(new Uint8Array(p)));
  const records = (acc: ScanStatistics) =>
    Array.from({ length: layers.length * dMlp }, (_, n) => acc.buildRecord(n, (e) => tokenText(e, data), (e) => row(data, layers, dMlp, n, e)));

  it('gives identical state for the same seed and a different sample for another seed', () => {
    const a = new ScanStatistics(config);
    const b = new ScanStatistics(config);
    const c = new ScanStatistics({ ...config, seed: 5 });
    for (const acc of [a, b, c]) feed(acc, data);
    expect(bytesOf(a.serialize())).toEqual(bytesOf(b.serialize()));
    expect(c.randomSampleExcerpts()).not.toEqual(a.randomSampleExcerpts());
  });

  it('resumed from a checkpoint equals an uninterrupted run, bitwise', () => {
    const uninterrupted = new ScanStatistics(config);
    feed(uninterrupted, data);
    let resumed = new ScanStatistics(config);
    feed(resumed, data, 0, 77); // not a multiple of the internal 32-excerpt buffer
    resumed = ScanStatistics.deserialize(resumed.serialize());
    feed(resumed, data, 77, 150);
    resumed = ScanStatistics.deserialize(resumed.serialize());
    feed(resumed, data, 150);
    expect(bytesOf(resumed.serialize())).toEqual(bytesOf(uninterrupted.serialize()));
    expect(JSON.stringify(records(resumed))).toBe(JSON.stringify(records(uninterrupted)));
  });

  it('keeps a state whose size does not grow with the corpus', () => {
    const small = new ScanStatistics(config);
    feed(small, data, 0, 20);
    const large = new ScanStatistics(config);
    feed(large, data);
    const size = (acc: ScanStatistics) => acc.serialize().slice(1).reduce((s, p) => s + p.byteLength, 0);
    expect(size(large)).toBe(size(small));
  });

  it('refuses a damaged checkpoint', () => {
    const acc = new ScanStatistics(config);
    feed(acc, data, 0, 10);
    const parts = acc.serialize();
    expect(() => ScanStatistics.deserialize([new ArrayBuffer(3)])).toThrow(ScanStatisticsError);
    expect(() => ScanStatistics.deserialize(parts.slice(0, -1))).toThrow(/wrong number of arrays/);
    const truncated = [...parts];
    truncated[2] = truncated[2].slice(0, 8);
    expect(() => ScanStatistics.deserialize(truncated)).toThrow(/bytes, expected/);
  });
});

describe('bad input', () => {
  const make = () => new ScanStatistics({ layers: [0, 1], dMlp: 2, excerptLength: 3 });
  const block = (values: number[]) => Float32Array.from(values);

  it('rejects invalid configurations', () => {
    expect(() => new ScanStatistics({ layers: [], dMlp: 2 })).toThrow(/layers/);
    expect(() => new ScanStatistics({ layers: [0, 0], dMlp: 2 })).toThrow(/duplicate/);
    expect(() => new ScanStatistics({ layers: [0], dMlp: 2, topK: 0 })).toThrow(/topK/);
    expect(() => new ScanStatistics({ layers: [0], dMlp: 2, quantiles: [0.9, 0.5] })).toThrow(/quantiles/);
    expect(() => new ScanStatistics({ layers: [0], dMlp: 2, histogram: { bins: 2, min: 0, max: 1, unit: 1 } })).toThrow(/bins/);
  });

  it('names the excerpt, layer and neuron of a non-finite activation', () => {
    const acc = make();
    acc.beginExcerpt(4, [1, 2]);
    expect(() => acc.addLayer(1, block([0, 1, NaN, 0]))).toThrow(/non-finite activation in excerpt 4, layer 1, neuron 0/);
  });

  it('checks layers, lengths and call order', () => {
    const acc = make();
    expect(() => acc.addLayer(0, block([0, 0]))).toThrow(/outside beginExcerpt/);
    expect(() => acc.beginExcerpt(0, [1, 2, 3, 4])).toThrow(/has 4 tokens; expected 1 to 3/);
    expect(() => acc.beginExcerpt(0, [1, -2])).toThrow(/invalid token id -2/);
    acc.beginExcerpt(0, [1, 2]);
    expect(() => acc.addLayer(5, block([0, 0, 0, 0]))).toThrow(/layer 5 is not tracked/);
    expect(() => acc.addLayer(0, block([0, 0, 0]))).toThrow(/need 2 × 2 values from offset 0, array has 3/);
    acc.addLayer(0, block([0, 0, 0, 0]));
    expect(() => acc.addLayer(0, block([0, 0, 0, 0]))).toThrow(/already added/);
    expect(() => acc.endExcerpt()).toThrow(/missing layers 1/);
    expect(() => acc.serialize()).toThrow(/while an excerpt is being added/);
    acc.addLayer(1, block([0, 0, 0, 0]));
    acc.endExcerpt();
    expect(acc.excerptCount).toBe(1);
    expect(() => acc.momentsOf(4)).toThrow(/out of range/);
    expect(() => acc.neuronIndex(2, 0)).toThrow(/not tracked/);
    expect(acc.neuronIndex(1, 1)).toBe(3);
  });

  it('reports a constant neuron with null skewness and kurtosis', () => {
    const acc = make();
    expect(acc.momentsOf(0)).toBeNull();
    acc.addExcerpt(0, [1], new Map([[0, { data: block([2, 2]) }], [1, { data: block([2, 2]) }]]));
    expect(acc.momentsOf(0)).toEqual({ mean: 2, variance: 0, skewness: null, kurtosis: null });
  });
});

describe('merging the states of shards', () => {
  const layers = [0, 2];
  const dMlp = 6;
  const data = makeExcerpts({ layers, dMlp, count: 240, maxLength: 10, vocab: 50, seed: 17, quantize: true });
  const config: ScanStatisticsConfig = { layers, dMlp, excerptLength: 10, topK: 5, randomSampleSize: 7, quantileSampleSize: 3, seed: 9, rowPrecision: 'float32' };
  const layerBlocks = (e: number) => new Map([...data[e].layers].map(([layer, block]) => [layer, { data: block }]));
  const records = (acc: ScanStatistics) =>
    Array.from({ length: layers.length * dMlp }, (_, n) => acc.buildRecord(n, (e) => tokenText(e, data), (e) => row(data, layers, dMlp, n, e)));

  /** Three shards of interleaved groups; shards 1 and 2 take the moments' shift from excerpt 0, as runScan does. */
  function shards(): ScanStatistics[] {
    return [0, 1, 2].map((s) => {
      const acc = new ScanStatistics(config);
      if (s > 0) acc.setShiftFrom(data[0].tokens.length, layerBlocks(0));
      for (let e = 0; e < data.length; e++) if (Math.floor(e / 8) % 3 === s) acc.addExcerpt(e, data[e].tokens, layerBlocks(e));
      return acc;
    });
  }

  it('gives one scan’s top excerpts, samples and boundaries exactly, and its moments to 1e-9', () => {
    const whole = new ScanStatistics(config);
    feed(whole, data);
    const merged = new ScanStatistics(config);
    for (const shard of shards()) merged.merge(ScanStatistics.deserialize(shard.serialize()));
    expect(merged.excerptCount).toBe(whole.excerptCount);
    expect(merged.tokenTotal).toBe(whole.tokenTotal);
    expect(merged.randomSampleExcerpts()).toEqual(whole.randomSampleExcerpts());
    for (let n = 0; n < layers.length * dMlp; n++) {
      expect(merged.topExcerpts(n)).toEqual(whole.topExcerpts(n));
      expect(merged.quantileSample(n)).toEqual(whole.quantileSample(n));
      const [a, b] = [merged.momentsOf(n)!, whole.momentsOf(n)!];
      for (const key of ['mean', 'variance', 'skewness', 'kurtosis'] as const) closeTo(a[key], b[key]!, 1e-9);
    }
    const strip = (list: ReturnType<typeof records>) => list.map(({ mean, variance, skewness, kurtosis, ...rest }) => rest);
    expect(strip(records(merged))).toEqual(strip(records(whole)));
    // Merging in another order gives the same samples.
    const reversed = new ScanStatistics(config);
    for (const shard of shards().reverse()) reversed.merge(shard);
    expect(strip(records(reversed))).toEqual(strip(records(whole)));
  });

  it('keeps the rows a merge can need: every excerpt of a shard’s samples, top excerpts included', () => {
    const [first] = shards();
    for (let n = 0; n < layers.length * dMlp; n++) {
      const forMerge = new Set(first.excerptsForMerge(n));
      for (const e of first.randomSampleExcerpts()) expect(forMerge.has(e)).toBe(true);
      for (const bin of first.quantileSample(n)!.bins) for (const e of bin) expect(forMerge.has(e)).toBe(true);
      for (const e of first.excerptsToRerun(n)) expect(forMerge.has(e)).toBe(true);
    }
  });

  it('refuses states of another configuration or taken around other shifts', () => {
    const [a] = shards();
    expect(() => a.merge(new ScanStatistics({ ...config, topK: 4 }))).toThrow(/different configurations/);
    const unshifted = new ScanStatistics(config);
    unshifted.addExcerpt(100, data[100].tokens, layerBlocks(100));
    expect(() => a.merge(unshifted)).toThrow(/different shifts: the states are not shards of one scan/);
  });
});

describe('saved state', () => {
  it('has one section per tracker', () => {
    const acc = new ScanStatistics({ layers: [0], dMlp: 4, excerptLength: 3 });
    acc.addExcerpt(0, [1, 2], new Map([[0, { data: Float32Array.from({ length: 8 }, (_, i) => i / 8) }]]));
    const header = JSON.parse(new TextDecoder().decode(acc.serialize()[0]));
    expect(header.sections.map((s: { name: string }) => s.name)).toEqual(['moments', 'topK', 'randomSample', 'quantiles']);
    const off = new ScanStatistics({ layers: [0], dMlp: 4, excerptLength: 3, quantileSampleSize: 0 });
    expect(JSON.parse(new TextDecoder().decode(off.serialize()[0])).sections).toHaveLength(3);
  });

  it('refuses the state of an older Neurolens with a clear message', () => {
    const older = new TextEncoder().encode(JSON.stringify({ format: 'neurolens.neuron-stats', version: 2, config: {}, arrays: [] }));
    expect(() => ScanStatistics.deserialize([older.buffer.slice(0) as ArrayBuffer])).toThrow(/saved by an older Neurolens .* cannot be continued; clear it to start over/);
  });
});
