/**
 * The store's pure parts in Node: the float16 codec (against an exhaustive nearest-value oracle
 * built from the project's independent float16 decoder) and its entropy coding, record
 * compaction against an excerpt table, and the scan bundle (gzip JSON Lines) both ways,
 * including refusals of damaged and foreign files.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { NeuronRecord } from '../src/lib/activations/records.ts';
import { runScan, type ActivationSource } from '../src/lib/activations/scan.ts';
import { buildNeuronRecords } from '../src/lib/activations/sample-rows.ts';
import { createSeededRandom } from '../src/lib/activations/seeded-random.ts';
import type { NeuronSimulationResults } from '../src/lib/explain/explanation-types.ts';
import { FormatError } from '../src/lib/explain/formats.ts';
import { float16ToFloat32 } from '../src/lib/model/float16.ts';
import {
  bundleHeader,
  decodeBundle,
  streamToBlob,
  writeBundle,
  type BundleItem,
} from '../src/lib/store/bundle-format.ts';
import {
  float16Bits,
  float16Value,
  losslessEncoding,
  packValues,
  roundToFloat16,
  StoreCodecError,
  unpackValues,
} from '../src/lib/store/compact-activations.ts';
import { compactNeuronRecord, expandNeuronRecord } from '../src/lib/store/compact-record.ts';
import { ExcerptTable, excerptHash, narrowIndices } from '../src/lib/store/excerpt-table.ts';
import { decodeFloat16Stream, encodeFloat16Stream } from '../src/lib/store/float16-coding.ts';
import { BundleError } from '../src/lib/store/store-errors.ts';
import type { ScanMeta } from '../src/lib/store/store-types.ts';

// ---------------------------------------------------------------------------------------------
// An oracle for float16 rounding: every finite positive half value, sorted, decoded by
// src/lib/model/float16.ts (written separately from the codec under test).

const POSITIVE_BITS = Array.from({ length: 0x7c00 }, (_, i) => i); // 0 … 0x7bff, increasing in value
const POSITIVE_VALUES = Array.from(float16ToFloat32(Uint16Array.from(POSITIVE_BITS)));

/** Bits of the half nearest to x (ties to the even pattern), by binary search over all values. */
function oracleBits(x: number): number {
  const a = Math.abs(x);
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  let lo = 0;
  let hi = POSITIVE_VALUES.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (POSITIVE_VALUES[mid] <= a) lo = mid;
    else hi = mid;
  }
  const dLo = a - POSITIVE_VALUES[lo];
  const dHi = POSITIVE_VALUES[hi] - a;
  const pick = dLo < dHi ? lo : dHi < dLo ? hi : lo % 2 === 0 ? lo : hi;
  return sign | (a >= POSITIVE_VALUES[hi] ? hi : pick);
}

describe('float16 codec', () => {
  it('decodes every finite bit pattern like the independent decoder, and encodes it back to itself', () => {
    for (const sign of [0, 0x8000]) {
      for (const bits of POSITIVE_BITS) {
        const value = float16Value(sign | bits);
        expect(Object.is(value, float16ToFloat32(Uint16Array.of(sign | bits))[0])).toBe(true);
        expect(float16Bits(value)).toBe(sign | bits);
      }
    }
  });

  it('rounds to the nearest half, ties to even, exactly as the exhaustive oracle (random doubles and exact midpoints)', () => {
    const random = createSeededRandom(7);
    let checked = 0;
    for (let i = 0; i < 20_000; i++) {
      // Log-uniform magnitudes from deep subnormal to the top of the range, both signs.
      const x = (random() < 0.5 ? -1 : 1) * 2 ** (-27 + random() * 42.99);
      expect(float16Bits(x)).toBe(oracleBits(x));
      checked++;
    }
    // Every midpoint between neighbouring halves is a tie: it must go to the even pattern.
    for (let bits = 0; bits < 0x7bff; bits += 37) {
      const mid = (POSITIVE_VALUES[bits] + POSITIVE_VALUES[bits + 1]) / 2;
      expect(float16Bits(mid)).toBe(bits % 2 === 0 ? bits : bits + 1);
      expect(float16Bits(-mid)).toBe(0x8000 | (bits % 2 === 0 ? bits : bits + 1));
      checked++;
    }
    expect(checked).toBeGreaterThan(20_000);
  });

  it('rounds float32 values (the scan\'s, which take a faster path) exactly as the oracle, next to every kind of tie', () => {
    const random = createSeededRandom(13);
    const f32 = new Float32Array(1);
    const u32 = new Uint32Array(f32.buffer);
    const neighbours = (x: number): number[] => {
      f32[0] = x;
      const bits = u32[0];
      return [-1, 0, 1].map((d) => {
        u32[0] = bits + d;
        return f32[0];
      });
    };
    let checked = 0;
    const check = (x: number) => {
      expect(float16Bits(x)).toBe(oracleBits(x));
      expect(float16Bits(-x)).toBe(oracleBits(-x));
      checked++;
    };
    for (let i = 0; i < 20_000; i++) check(Math.fround(2 ** (-27 + random() * 42.99)));
    // Each midpoint between neighbouring halves and the float32s on either side of it.
    for (let bits = 0; bits < 0x7bff; bits++) for (const x of neighbours((POSITIVE_VALUES[bits] + POSITIVE_VALUES[bits + 1]) / 2)) check(x);
    // The edges: the smallest normal half, and the largest value that rounds to 65504.
    for (const edge of [2 ** -14, 65504]) for (const x of neighbours(edge)) check(x);
    check(65519.99609375);
    expect(() => float16Bits(Math.fround(65520))).toThrow(/outside the float16 range/);
    expect(checked).toBeGreaterThan(110_000);
  });

  it('keeps the documented error bound: relative ≤ 2^-11 for normal values, absolute ≤ 2^-25 below 2^-14', () => {
    const random = createSeededRandom(11);
    let worstRelative = 0;
    let worstAbsolute = 0;
    for (let i = 0; i < 50_000; i++) {
      const normal = 2 ** (-14 + random() * 29.999) * (random() < 0.5 ? -1 : 1);
      worstRelative = Math.max(worstRelative, Math.abs(roundToFloat16(normal) - normal) / Math.abs(normal));
      const tiny = random() * 2 ** -14 * (random() < 0.5 ? -1 : 1);
      worstAbsolute = Math.max(worstAbsolute, Math.abs(roundToFloat16(tiny) - tiny));
    }
    expect(worstRelative).toBeLessThanOrEqual(2 ** -11);
    expect(worstRelative).toBeGreaterThan(2 ** -12); // the bound is tight, not vacuous
    expect(worstAbsolute).toBeLessThanOrEqual(2 ** -25);
    expect(worstAbsolute).toBeGreaterThan(2 ** -26);
  });

  it('handles the edge cases: ±0, subnormals, the largest value, overflow, NaN', () => {
    expect(float16Bits(0)).toBe(0);
    expect(float16Bits(-0)).toBe(0x8000);
    expect(Object.is(roundToFloat16(-0), -0)).toBe(true);
    expect(float16Bits(2 ** -24)).toBe(1); // smallest subnormal
    expect(float16Bits(2 ** -25)).toBe(0); // tie between 0 and 2^-24: to even (0)
    expect(float16Bits(3 * 2 ** -25)).toBe(2); // tie between 1 and 2 (×2^-24): to even (2)
    expect(float16Bits(2 ** -14 - 2 ** -26)).toBe(0x0400); // rounds up into the smallest normal
    expect(float16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie: to even (1.0)
    expect(float16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(float16Bits(65504)).toBe(0x7bff);
    expect(float16Bits(65519.99)).toBe(0x7bff);
    expect(float16Bits(2047.5)).toBe(0x67ff + 1); // 2047.5 is a tie between 2047 and 2048: even is 2048
    expect(() => float16Bits(65520)).toThrow(new StoreCodecError('65520 is outside the float16 range (±65504)'));
    expect(() => float16Bits(-Infinity)).toThrow(StoreCodecError);
    expect(() => float16Bits(NaN, 'x[3]')).toThrow(new StoreCodecError('x[3]: NaN cannot be stored'));
    expect(() => packValues([1, NaN], 'float64', 'acts')).toThrow(new StoreCodecError('acts[1]: expected a finite number, got NaN'));
    expect(() => packValues([1, 1e39], 'float32', 'acts')).toThrow(StoreCodecError);
  });

  it('picks the smallest lossless encoding, keeping the sign of zero', () => {
    expect(losslessEncoding([0.5, -0, 65504, 2 ** -24])).toBe('float16');
    expect(losslessEncoding([0.5, Math.fround(0.1)])).toBe('float32');
    expect(losslessEncoding([70000])).toBe('float32');
    expect(losslessEncoding([0.5, 0.1])).toBe('float64');
    expect(losslessEncoding([])).toBe('float16');
    for (const values of [[0.5, -0, 3], [Math.fround(0.1), -0], [0.1, -0, 1e300]]) {
      const encoding = losslessEncoding(values);
      const back = unpackValues(packValues(values, encoding));
      back.forEach((v, i) => expect(Object.is(v, values[i])).toBe(true));
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Records

function handMadeRecord(): NeuronRecord {
  return {
    dataclass_name: 'NeuronRecord',
    neuron_id: { dataclass_name: 'NeuronId', layer_index: 3, neuron_index: 17 },
    random_sample: [
      { dataclass_name: 'ActivationRecord', tokens: ['a', 'b'], activations: [-0, 0.1] },
      { tokens: [], activations: [] },
    ],
    random_sample_by_quantile: [[{ dataclass_name: 'ActivationRecord', tokens: ['c'], activations: [1e-300] }], []],
    quantile_boundaries: [null, 0.25, null],
    mean: 0.125,
    variance: 2.5,
    skewness: null,
    kurtosis: -0.5,
    most_positive_activation_records: [{ dataclass_name: 'ActivationRecord', tokens: ['x', 'y', 'z'], activations: [3.75, -1234.5, 0] }],
    // Unknown fields survive (validation never strips them).
    ...({ custom_field: { nested: [1, 2] } } as object),
  } as NeuronRecord;
}

const LAYERS = [0, 1];
const D_MLP = 5;

/** A deterministic stand-in model: each activation is a fixed function of layer, neuron, position and tokens. */
function syntheticSource(): ActivationSource {
  return async (batch) => {
    const seq = batch[0].length;
    const out = new Map<number, Float32Array>();
    for (const layer of LAYERS) {
      const data = new Float32Array(batch.length * seq * D_MLP);
      batch.forEach((tokens, b) => {
        for (let t = 0; t < seq; t++) {
          for (let j = 0; j < D_MLP; j++) {
            const h = Math.imul(tokens[t] + 31 * j + 7 * layer + 1, 0x9e3779b1) ^ Math.imul((t > 0 ? tokens[t - 1] : 5) + 3, 0x85ebca6b);
            const u = ((h ^ (h >>> 13)) >>> 0) / 2 ** 32;
            data[(b * seq + t) * D_MLP + j] = Math.fround(u < 0.85 ? u * 0.2 - 0.05 : (u - 0.85) * 30);
          }
        }
      });
      out.set(layer, data);
    }
    return out;
  };
}

async function scanBuiltRecords(): Promise<NeuronRecord[]> {
  const random = createSeededRandom(3);
  const excerpts = Array.from({ length: 40 }, () => Array.from({ length: 8 }, () => Math.floor(random() * 30)));
  const stats = { layers: LAYERS, dMlp: D_MLP, topK: 4, randomSampleSize: 5, quantileSampleSize: 2, seed: 9 };
  const { stats: accumulator } = await runScan({ ...stats, source: syntheticSource(), excerpts });
  return buildNeuronRecords({
    stats: accumulator,
    source: syntheticSource(),
    excerpts,
    tokensOf: (e) => excerpts[e].map((id) => ` t${id}`),
    neurons: [
      { layer: 0, neuron: 2 },
      { layer: 1, neuron: 4 },
    ],
  });
}

/** Deep equality that also tells -0 from 0 (toEqual does; this says where it differs). */
function expectSameJson(actual: unknown, expected: unknown, path = ''): void {
  if (typeof expected === 'number') {
    expect(Object.is(actual, expected), `${path}: ${String(actual)} vs ${expected}`).toBe(true);
    return;
  }
  if (Array.isArray(expected)) {
    expect(Array.isArray(actual), path).toBe(true);
    expect((actual as unknown[]).length, path).toBe(expected.length);
    expected.forEach((e, i) => expectSameJson((actual as unknown[])[i], e, `${path}[${i}]`));
    return;
  }
  if (expected !== null && typeof expected === 'object') {
    expect(Object.keys(actual as object).sort(), path).toEqual(Object.keys(expected).sort());
    for (const [k, v] of Object.entries(expected)) expectSameJson((actual as Record<string, unknown>)[k], v, `${path}.${k}`);
    return;
  }
  expect(actual, path).toBe(expected);
}

/** The token strings of a table's excerpts, to expand records compacted against it. */
const tokensIn = (table: ExcerptTable) => (e: number) => table.tokens(e);

/** Every ActivationRecord of a record, in packing order. */
const allExcerpts = (r: NeuronRecord) => [r.random_sample, ...(r.random_sample_by_quantile ?? []), r.most_positive_activation_records].flat();

describe('record compaction', () => {
  it('lossless: expand(compact(r)) deep-equals r, unknown fields and -0 included, in the widest needed encoding', () => {
    const record = handMadeRecord();
    const table = new ExcerptTable();
    const compact = compactNeuronRecord(record, table, 'lossless');
    expect(compact.encoding).toBe('float64'); // 0.1 and 1e-300 need float64
    expect(compact.activations).toBeInstanceOf(Float64Array);
    expect(compact.activations.length).toBe(6);
    // Four excerpts, each once in the table; the record keeps their indices in packing order.
    expect(table.size).toBe(4);
    expect(Array.from(compact.excerpts)).toEqual([0, 1, 2, 3]);
    expect(table.vocabulary).toEqual(['a', 'b', 'c', 'x', 'y', 'z']);
    // Three of four ActivationRecords carry dataclass_name: the one without is listed apart.
    expect(compact.named).toBe(true);
    expect(compact.excerptFields).toEqual([[1, {}]]);
    expectSameJson(expandNeuronRecord(compact, tokensIn(table)), record);
    expect(record.random_sample[0].activations).toEqual([-0, 0.1]); // the input is not modified
  });

  it('float16 rounds every activation (within the bound) and leaves everything else as it was', () => {
    const record = handMadeRecord();
    const table = new ExcerptTable();
    const compact = compactNeuronRecord(record, table, 'float16');
    expect(compact.encoding).toBe('float16');
    expect(compact.activations).toBeInstanceOf(Uint16Array); // 6 values: a coded stream's 37-byte header would not pay
    const back = expandNeuronRecord(compact, tokensIn(table));
    expect(back.random_sample[0].activations).toEqual([-0, roundToFloat16(0.1)]);
    expect(Math.abs(back.random_sample[0].activations[1] - 0.1) / 0.1).toBeLessThanOrEqual(2 ** -11);
    expect(back.random_sample_by_quantile![0][0].activations).toEqual([0]); // 1e-300 underflows to +0
    // 3.75 is exact; -1234.5 is a tie between -1234 and -1235 (spacing 1 there): to even.
    expect(back.most_positive_activation_records[0].activations).toEqual([3.75, -1234, 0]);
    expect(back.mean).toBe(0.125);
    expect(back.quantile_boundaries).toEqual([null, 0.25, null]);
    expect((back as unknown as { custom_field: unknown }).custom_field).toEqual({ nested: [1, 2] });
  });

  it('keeps unusual ActivationRecord fields: unknown keys, a missing or mostly missing dataclass_name', () => {
    const record = handMadeRecord();
    (record.random_sample[0] as unknown as Record<string, unknown>).source = 'doc 7';
    for (const r of [record.random_sample_by_quantile![0][0], record.most_positive_activation_records[0]]) delete r.dataclass_name;
    const table = new ExcerptTable();
    const compact = compactNeuronRecord(record, table);
    expect(compact.named).toBe(false); // one of four is named
    expect(compact.excerptFields).toEqual([[0, { dataclass_name: 'ActivationRecord', source: 'doc 7' }]]);
    expectSameJson(expandNeuronRecord(compact, tokensIn(table)), record);
  });

  it('refuses NaN and out-of-range values with the neuron and position in the message', () => {
    const record = handMadeRecord();
    record.most_positive_activation_records[0].activations[1] = NaN;
    expect(() => compactNeuronRecord(record, new ExcerptTable(), 'lossless')).toThrow(
      new StoreCodecError('neuron 3:17 most_positive_activation_records[0].activations[1]: expected a finite number, got NaN'),
    );
    const big = handMadeRecord();
    big.random_sample[0].activations[0] = 1e6;
    expect(() => compactNeuronRecord(big, new ExcerptTable(), 'float16')).toThrow(
      new StoreCodecError('neuron 3:17 random_sample[0].activations[0]: 1000000 is outside the float16 range (±65504)'),
    );
    expect(compactNeuronRecord(big, new ExcerptTable(), 'lossless').encoding).toBe('float64');
  });

  it('refuses a damaged stored form', () => {
    const table = new ExcerptTable();
    const compact = compactNeuronRecord(handMadeRecord(), table, 'lossless');
    const tokens = tokensIn(table);
    expect(() => expandNeuronRecord({ ...compact, activations: (compact.activations as Float64Array).subarray(0, 4) }, tokens)).toThrow(StoreCodecError);
    expect(() => expandNeuronRecord({ ...compact, encoding: 'float16' }, tokens)).toThrow(/says float16 but holds float64/);
    expect(() => expandNeuronRecord({ ...compact, excerpts: compact.excerpts.subarray(1) }, tokens)).toThrow(/3 excerpts for 4 places/);
    expect(() => expandNeuronRecord({ ...compact, rows: Uint16Array.of(0, 2, 1, 3) }, tokens)).toThrow(/refers to row 2 of 1/);
  });

  it('shares excerpts: between records through the table, within a record when an excerpt repeats with the same values', () => {
    const shared = { dataclass_name: 'ActivationRecord' as const, tokens: [' the', ' cat', ' sat'], activations: [0.5, 1.5, -0] };
    const recordOf = (neuron: number, top: number[]): NeuronRecord => ({
      neuron_id: { layer_index: 0, neuron_index: neuron },
      random_sample: [{ ...shared, activations: [neuron, 0.25, 0.5] }],
      random_sample_by_quantile: [[{ ...shared, tokens: [' a', ' dog'], activations: [1, 2] }]],
      quantile_boundaries: [null, 1, null],
      mean: 0,
      variance: 1,
      skewness: 0,
      kurtosis: 3,
      // The same excerpt as the random sample: same values for neuron 2 (one row), others for neuron 1.
      most_positive_activation_records: [{ ...shared, activations: top }],
    });
    const a = recordOf(1, [4, 4.5, 5]);
    const b = recordOf(2, [2, 0.25, 0.5]);
    const table = new ExcerptTable();
    const [ca, cb] = [compactNeuronRecord(a, table), compactNeuronRecord(b, table)];
    expect(table.size).toBe(2); // ' the cat sat' and ' a dog', once each for both records
    expect(table.vocabulary).toEqual([' the', ' cat', ' sat', ' a', ' dog']);
    expect(Array.from(ca.excerpts)).toEqual([0, 1, 0]);
    expect(Array.from(cb.excerpts)).toEqual([0, 1, 0]);
    expect(ca.rows).toBeUndefined(); // three different rows: 8 values
    expect(cb.rows && Array.from(cb.rows)).toEqual([0, 1, 0]); // the top excerpt reuses row 0: 5 values
    const values = (c: typeof ca) => (c.activations instanceof Uint8Array ? decodeFloat16Stream(c.activations).length : c.activations.length);
    expect([values(ca), values(cb)]).toEqual([8, 5]);
    expectSameJson(expandNeuronRecord(ca, tokensIn(table)), a);
    expectSameJson(expandNeuronRecord(cb, tokensIn(table)), b);
    // -0 and 0 are different values: no sharing then.
    const c = recordOf(3, [3, 0.25, 0.5]);
    c.most_positive_activation_records[0].activations = [3, 0.25, 0.5];
    c.random_sample[0].activations = [3, 0.25, -0];
    expect(compactNeuronRecord(c, table).rows).toBeUndefined();
  });

  it('records built by the scan are float16 already: no loss, entropy-coded below 2 bytes per value', async () => {
    const records = await scanBuiltRecords();
    expect(records).toHaveLength(2);
    const table = new ExcerptTable();
    for (const record of records) {
      const compact = compactNeuronRecord(record, table, 'lossless');
      expect(compact.encoding).toBe('float16');
      const values = allExcerpts(record).reduce((n, r) => n + r.activations.length, 0);
      expect(values).toBeGreaterThan(30);
      expect(compact.activations.byteLength).toBeLessThan(2 * values);
      expectSameJson(expandNeuronRecord(compact, tokensIn(table)), record);
    }
    // Both records show the shared random sample: the table holds fewer excerpts than they list.
    const listed = records.flatMap((r) => allExcerpts(r).map((e) => e.tokens.join('|')));
    expect(table.size).toBe(new Set(listed).size);
    expect(table.size).toBeLessThan(listed.length);
  });
});

describe('excerpt table', () => {
  it('gives one index per distinct token sequence, whether the same array or an equal copy', () => {
    const table = new ExcerptTable();
    const tokens = [' a', 'b', ' a'];
    expect(table.intern(tokens)).toBe(0);
    expect(table.intern([...tokens])).toBe(0);
    expect(table.intern([' a', 'b'])).toBe(1);
    // Token boundaries count: "ab" is not "a" + "b".
    expect(table.intern(['ab'])).toBe(2);
    expect(table.intern(['a', 'b'])).toBe(3);
    expect(table.intern([])).toBe(4);
    expect(table.tokens(0)).toEqual(tokens);
    expect(Array.from(table.tokenIds(0))).toEqual([0, 1, 0]);
    expect(table.vocabulary).toEqual([' a', 'b', 'ab', 'a']);
    expect(excerptHash(['ab'])).not.toBe(excerptHash(['a', 'b']));
    expect(table.hash(1)).toBe(excerptHash([' a', 'b']));
  });

  it('narrows index arrays to the smallest unsigned type that holds them', () => {
    expect(narrowIndices([0, 255])).toBeInstanceOf(Uint8Array);
    expect(narrowIndices([0, 256])).toBeInstanceOf(Uint16Array);
    expect(narrowIndices([0, 65535])).toBeInstanceOf(Uint16Array);
    expect(narrowIndices([0, 65536])).toBeInstanceOf(Uint32Array);
    expect(Array.from(narrowIndices([7, 65536]))).toEqual([7, 65536]);
  });
});

describe('float16 stream coding', () => {
  const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

  it('gives back every bit pattern exactly (all 65,536, in a shuffled order)', () => {
    const random = createSeededRandom(11);
    const bits = Uint16Array.from({ length: 65536 }, (_, i) => i);
    for (let i = bits.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [bits[i], bits[j]] = [bits[j], bits[i]];
    }
    const coded = encodeFloat16Stream(bits);
    expect(coded.length).toBe(37 + 65536 * 2); // uniform symbols: 6-bit codes + 10-bit mantissas
    expect(decodeFloat16Stream(coded)).toEqual(bits);
  });

  it('codes GELU outputs in about 13 bits per value, and handles empty, one-value and one-symbol streams', () => {
    const random = createSeededRandom(5);
    const gauss = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    const bits = Uint16Array.from({ length: 6400 }, () => float16Bits(gelu(-1 + gauss())));
    const coded = encodeFloat16Stream(bits);
    expect(decodeFloat16Stream(coded)).toEqual(bits);
    expect(coded.length / bits.length).toBeLessThan(1.7); // vs 2 bytes raw
    expect(coded.length / bits.length).toBeGreaterThan(1.25); // mantissas stay: 10 bits each
    for (const edge of [new Uint16Array(0), Uint16Array.of(0x8000), new Uint16Array(999).fill(0x3c00)]) {
      expect(decodeFloat16Stream(encodeFloat16Stream(edge))).toEqual(edge);
    }
  });

  it('refuses damaged streams', () => {
    const coded = encodeFloat16Stream(Uint16Array.from({ length: 500 }, (_, i) => float16Bits(gelu(i / 100 - 3))));
    expect(() => decodeFloat16Stream(coded.subarray(0, coded.length - 3))).toThrow(StoreCodecError);
    expect(() => decodeFloat16Stream(Uint8Array.of(...coded, 0))).toThrow(/bytes left over/);
    const badTag = coded.slice();
    badTag[0] = 9;
    expect(() => decodeFloat16Stream(badTag)).toThrow(/not a coded float16 stream/);
    const badLengths = coded.slice();
    badLengths.fill(0x11, 5, 37); // 64 codes of 1 bit: impossible
    expect(() => decodeFloat16Stream(badLengths)).toThrow(/impossible code lengths/);
  });
});

// ---------------------------------------------------------------------------------------------
// Bundles

const SCAN: ScanMeta = {
  id: 'scan-1',
  name: 'toy scan',
  model: { label: 'toy', nLayer: 2, dMlp: 5 },
  corpus: { name: 'synthetic', fingerprint: 'v1:40:abc' },
  layers: [0, 1],
  topK: 4,
  seed: 9,
  excerptCount: 40,
  status: 'done',
  progress: 1,
  createdAt: 1_700_000_000_000,
  updatedAt: 1_700_000_100_000,
  bytes: 1234,
};

const RESULTS: NeuronSimulationResults = {
  dataclass_name: 'NeuronSimulationResults',
  neuron_id: { dataclass_name: 'NeuronId', layer_index: 0, neuron_index: 2 },
  scored_explanations: [
    {
      dataclass_name: 'ScoredExplanation',
      explanation: 'the letter t',
      scored_simulation: {
        dataclass_name: 'ScoredSimulation',
        scored_sequence_simulations: [
          {
            dataclass_name: 'ScoredSequenceSimulation',
            simulation: {
              dataclass_name: 'SequenceSimulation',
              tokens: ['a', 'b'],
              expected_activations: [0.5, -0],
              activation_scale: 'simulated_normalized_activations',
              distribution_values: [[0, 1], [0, 1]],
              distribution_probabilities: [[0.5, 0.5], [1, 0]],
              simulation_mode: 'logprob',
            },
            true_activations: [1.5, 0],
            ev_correlation_score: 0.25,
            rsquared_score: null,
            absolute_dev_explained_score: 0.1,
          },
        ],
        ev_correlation_score: 0.25,
        rsquared_score: null,
        absolute_dev_explained_score: 0.1,
      },
    },
  ],
};

async function bundleItems(): Promise<BundleItem[]> {
  const [a, b] = await scanBuiltRecords();
  return [
    { type: 'neuron_record', value: a },
    { type: 'neuron_record', value: handMadeRecord() },
    { type: 'neuron_record', value: b },
    { type: 'explanation', value: { layer: 0, neuron: 2, explanation: 'the letter t', order: 0, source: 'gpt-4', createdAt: 1_700_000_050_000 } },
    { type: 'simulation_results', value: RESULTS },
    {
      type: 'explanation_scores',
      value: { layer: 0, neuron: 2, explanation: 'the letter t', scores: { explanation: 'the letter t', simulation_modes: ['logprob'] } as never },
    },
    { type: 'mean_tokens', value: { layer: 0, neuron: 2, tokens: [{ tokenId: 5, token: ' t5', meanActivation: 2.5, count: 3 }] } },
  ];
}

const countsOf = (items: BundleItem[]) => ({
  neuron_record: items.filter((i) => i.type === 'neuron_record').length,
  simulation_results: items.filter((i) => i.type === 'simulation_results').length,
  explanation: items.filter((i) => i.type === 'explanation').length,
  explanation_scores: items.filter((i) => i.type === 'explanation_scores').length,
  mean_tokens: items.filter((i) => i.type === 'mean_tokens').length,
});

async function bundleBytes(items: BundleItem[], header = bundleHeader(SCAN, countsOf(items))): Promise<Uint8Array> {
  return new Uint8Array(await (await streamToBlob(writeBundle(header, items))).arrayBuffer());
}

/** A bundle's JSON lines (decompressed with node:zlib, independently of the code under test). */
const linesOf = (bytes: Uint8Array) => gunzipSync(bytes).toString('utf8').trimEnd().split('\n');
const regzip = (lines: string[]) => new Uint8Array(gzipSync(`${lines.join('\n')}\n`));

async function expectRefusal(bytes: Uint8Array | Blob, error: Error): Promise<void> {
  await expect(decodeBundle(bytes)).rejects.toThrow(error);
  await expect(decodeBundle(bytes)).rejects.toBeInstanceOf(error.constructor);
}

describe('scan bundle', () => {
  it('round trip: gzip JSON Lines with a header, every item back deep-equal (-0 and unknown fields included)', async () => {
    const items = await bundleItems();
    const bytes = await bundleBytes(items);
    expect([bytes[0], bytes[1]]).toEqual([0x1f, 0x8b]);
    const lines = linesOf(bytes);
    expect(lines).toHaveLength(1 + items.length);
    const header = JSON.parse(lines[0]);
    expect(header).toMatchObject({ format: 'neurolens-scan-bundle', version: 1, counts: countsOf(items) });
    expect(header.scan).not.toHaveProperty('id');
    expect(header.scan.name).toBe('toy scan');
    expect(JSON.parse(lines[1]).type).toBe('neuron_record');

    const decoded = await decodeBundle(new Blob([bytes as BlobPart]));
    expect(decoded.header.scan).toEqual((({ id: _i, bytes: _b, ...rest }) => rest)(SCAN));
    expect(decoded.items.map((i) => i.type)).toEqual(items.map((i) => i.type));
    expectSameJson(decoded.items, items);
  });

  it('reads a gunzipped bundle (plain JSON Lines) the same way', async () => {
    const items = await bundleItems();
    const plain = new Uint8Array(gunzipSync(await bundleBytes(items)));
    expectSameJson((await decodeBundle(plain)).items, items);
  });

  it('refuses a bundle of a newer version, another format, a damaged header', async () => {
    const items = await bundleItems();
    const lines = linesOf(await bundleBytes(items));
    const withHeader = (change: (h: Record<string, unknown>) => void) => {
      const h = JSON.parse(lines[0]);
      change(h);
      return regzip([JSON.stringify(h), ...lines.slice(1)]);
    };
    await expectRefusal(
      withHeader((h) => (h.version = 2)),
      new BundleError('this bundle has format version 2, newer than this Neurolens reads (version 1); update Neurolens to import it'),
    );
    await expectRefusal(
      withHeader((h) => (h.format = 'something-else')),
      new BundleError('not a Neurolens scan bundle: the header has no "format": "neurolens-scan-bundle"'),
    );
    await expectRefusal(
      withHeader((h) => (h.version = '1')),
      new BundleError('damaged bundle header: "version" must be a positive integer, got "1"'),
    );
    await expectRefusal(
      withHeader((h) => ((h.scan as Record<string, unknown>).layers = [0, 0])),
      new BundleError('damaged bundle header: scan layers contains a duplicate'),
    );
    await expectRefusal(regzip(['[1, 2]']), new BundleError('not a Neurolens scan bundle: the header has no "format": "neurolens-scan-bundle"'));
  });

  it('refuses damaged gzip data, files that are not gzip, and bundles cut short', async () => {
    const bytes = await bundleBytes(await bundleItems());
    const flipped = bytes.slice();
    for (let i = 200; i < 260; i++) flipped[i] ^= 0x5a;
    await expect(decodeBundle(flipped)).rejects.toThrow(/^the bundle is damaged: its gzip data cannot be decompressed \(/);
    await expect(decodeBundle(bytes.subarray(0, bytes.length >> 1))).rejects.toThrow(
      /^the bundle is damaged: its gzip data cannot be decompressed \(|^the bundle is incomplete or damaged/,
    );
    await expect(decodeBundle(bytes.subarray(0, bytes.length >> 1))).rejects.toBeInstanceOf(BundleError);
    await expectRefusal(
      new Uint8Array([0x50, 0x4b, 3, 4, 0, 0]),
      new BundleError('not a Neurolens scan bundle: expected a gzip file (.neurolens.json.gz), whose first bytes are 1f 8b'),
    );
    await expectRefusal(new Uint8Array(0), new BundleError('the bundle file is empty'));
    const lines = linesOf(bytes);
    await expectRefusal(
      regzip(lines.slice(0, 3)),
      new BundleError('the bundle is incomplete or damaged: its header lists 3 neuron_record items but it holds 2'),
    );
  });

  it('refuses a malformed item with its line and path', async () => {
    const lines = linesOf(await bundleBytes(await bundleItems()));
    const item = JSON.parse(lines[2]);
    item.value.most_positive_activation_records[0].activations.pop();
    const n = item.value.most_positive_activation_records[0].tokens.length;
    await expectRefusal(
      regzip([lines[0], lines[1], JSON.stringify(item), ...lines.slice(3)]),
      new FormatError(`expected ${n} numbers, got ${n - 1}`, 'value.most_positive_activation_records[0].activations', 3),
    );
    await expectRefusal(
      regzip([lines[0], '{"type":"neuron_recrd","value":{}}', ...lines.slice(2)]),
      new FormatError(
        'unknown bundle item type "neuron_recrd" (expected one of neuron_record, simulation_results, explanation, explanation_scores, mean_tokens)',
        'type',
        2,
      ),
    );
    await expect(decodeBundle(regzip([lines[0], lines[1].slice(0, 50), ...lines.slice(2)]))).rejects.toThrow(/^line 2: not valid JSON \(/);
  });

  it('refuses to write non-finite numbers rather than writing null', async () => {
    const items: BundleItem[] = [{ type: 'mean_tokens', value: { layer: 0, neuron: 1, tokens: [{ tokenId: 1, meanActivation: NaN, count: 1 }] } }];
    await expect(bundleBytes(items)).rejects.toThrow(new BundleError('cannot write a mean_tokens item: meanActivation is NaN'));
  });
});
