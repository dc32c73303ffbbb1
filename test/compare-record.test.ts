/**
 * Comparing a NeuronRecord with the model: token strings back to ids, the difference statistics,
 * and records the project builds itself from the toy model with each GELU variant (the matching
 * variant must reproduce them, the other must not). Also the published GPT-2 XL record, when it
 * is available on this machine (only its token mapping and that the command runs).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  compareRecordWithModel,
  diffStats,
  RecordComparisonError,
  recordExcerpts,
  TokenLookup,
} from '../src/lib/activations/compare-record.ts';
import { buildExcerpts } from '../src/lib/activations/corpus.ts';
import type { NeuronRecord } from '../src/lib/activations/records.ts';
import { runScan } from '../src/lib/activations/scan.ts';
import { buildNeuronRecords } from '../src/lib/activations/sample-rows.ts';
import { createSeededRandom } from '../src/lib/activations/seeded-random.ts';
import { parseNeuronRecord, serializeNeuronRecord } from '../src/lib/explain/formats.ts';
import { ActivationCapturer, type GeluChoice } from '../src/lib/model/capture.ts';
import { dirSource } from '../src/lib/model/dir-source.node.ts';
import { loadModel, type LoadedModel } from '../src/lib/model/load-model.ts';
import { loadNodeRuntime } from '../src/lib/model/ort-runtime.node.ts';
import { ensureModels } from '../scripts/gen-models.ts';

const TOY = join(import.meta.dirname, '../public/models/toy-planted');
const BIN = join(import.meta.dirname, '../bin/neurolens.mjs');
const PUBLISHED = '/work/shared/published/gpt2xl-neuron-1-1.json';
const execFileAsync = promisify(execFile);

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [BIN, ...args], { maxBuffer: 1 << 26, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

function corpusDocuments(): { text: string; source: string }[] {
  const random = createSeededRandom(7);
  const pick = <T>(xs: T[]) => xs[Math.floor(random() * xs.length)];
  const names = ['Alice', 'Boston', 'Maria', 'London', 'Peter', 'Kyoto'];
  const nouns = ['cat', 'house', 'river', 'report', 'engine', 'garden', 'letter', 'bridge'];
  const verbs = ['saw', 'built', 'found', 'sold', 'painted', 'opened'];
  const sentence = () =>
    pick([
      () => `${pick(names)} ${pick(verbs)} the ${pick(nouns)} in ${1900 + Math.floor(random() * 120)}.`,
      () => `"We ${pick(verbs)} ${2 + Math.floor(random() * 90)} ${pick(nouns)}s," said ${pick(names)}.`,
      () => `nobody ${pick(verbs)} it, and then the ${pick(nouns)}s ${pick(verbs)} every ${pick(nouns)}.`,
    ])();
  return Array.from({ length: 3 }, (_, d) => ({ text: Array.from({ length: 60 }, sentence).join(' '), source: `doc ${d}` }));
}

describe('TokenLookup', () => {
  let model: LoadedModel;
  beforeAll(async () => {
    ensureModels({ only: ['toy-planted'], log: () => {} });
    model = await loadModel(await dirSource(TOY));
  });

  it('inverts tokenText over the whole GPT-2 vocabulary, fragments of characters included', () => {
    const lookup = new TokenLookup(model.tokenizer);
    const { tokenizer } = model;
    for (let id = 0; id < tokenizer.vocabSize; id += 37) expect(lookup.map(tokenizer.tokenText(id))).toEqual({ id });
    expect(lookup.map(' the')).toEqual({ id: tokenizer.encodeIds(' the')[0] });
    expect(lookup.map('<|endoftext|>')).toEqual({ id: tokenizer.eosTokenId });
    // 🦊 takes two tokens, each holding part of its UTF-8 bytes, written with \xNN escapes.
    const fox = tokenizer.encodeIds('🦊');
    expect(fox.length).toBeGreaterThan(1);
    for (const id of fox) {
      expect(tokenizer.tokenText(id)).toMatch(/\\x[0-9A-F]{2}/);
      expect(lookup.map(tokenizer.tokenText(id))).toEqual({ id });
    }
    // What a capture shows for such a token (the whole character) names no single id.
    expect(lookup.map('🦊')).toEqual({ id: null, reason: 'unknown', candidates: 0 });
    expect(lookup.map('\u2603 not a token \u2603')).toMatchObject({ id: null, reason: 'unknown' });
  });

  it('reports a display string that several ids share as ambiguous instead of picking one', () => {
    const texts = ['a', 'b', 'a', 'c', 'a'];
    const lookup = new TokenLookup({ vocabSize: texts.length, tokenText: (id) => texts[id] });
    expect(lookup.map('a')).toEqual({ id: null, reason: 'ambiguous', candidates: 3 });
    expect(lookup.map('b')).toEqual({ id: 1 });
    expect(lookup.map('c')).toEqual({ id: 3 });
  });
});

describe('diffStats', () => {
  it('computes |diff| quantiles and the Pearson correlation', () => {
    // diffs 0, 0, 0, 2; correlation worked out by hand: cov 8, variances 5 and 14.
    const s = diffStats([0, 1, 2, 3], [0, 1, 2, 5])!;
    expect(s).toMatchObject({ count: 4, maxAbsDiff: 2, medianAbsDiff: 0, p99AbsDiff: 2, meanAbsDiff: 0.5 });
    expect(s.correlation).toBeCloseTo(8 / Math.sqrt(70), 12);
    expect(diffStats([1, 1, 1], [1, 2, 3])!.correlation).toBeNull();
    expect(diffStats([], [])).toBeNull();
    expect(() => diffStats([1], [1, 2])).toThrow(RangeError);
  });
});

describe('comparing records built by the project from the toy model', () => {
  let model: LoadedModel;
  let capturer: ActivationCapturer;
  const records = new Map<GeluChoice, NeuronRecord[]>();
  const NEURONS = [
    { layer: 0, neuron: 203 }, // fires on " the"
    { layer: 1, neuron: 222 }, // fires after " the"
    { layer: 1, neuron: 91 },
  ];

  beforeAll(async () => {
    ensureModels({ only: ['toy-planted'], log: () => {} });
    model = await loadModel(await dirSource(TOY));
    capturer = new ActivationCapturer(model, await loadNodeRuntime('node'));
    const excerpts = buildExcerpts(corpusDocuments(), model.tokenizer);
    const ids = excerpts.map((e) => e.tokenIds);
    for (const gelu of ['tanh', 'sigmoid'] as const) {
      const source = async (batch: number[][]) => (await capturer.runTokens(batch, { layers: [0, 1], gelu })).layers;
      const { stats } = await runScan({ source, excerpts: ids, layers: [0, 1], dMlp: capturer.dMlp, topK: 10, randomSampleSize: 10 });
      const built = await buildNeuronRecords({ stats, source, excerpts: ids, tokensOf: (e) => excerpts[e].tokens, neurons: NEURONS });
      // Through the paper's file format, as an imported record would come.
      records.set(gelu, built.map((r) => parseNeuronRecord(serializeNeuronRecord(r))));
    }
  });
  afterAll(async () => capturer?.dispose());

  it('finds ~0 difference with the GELU the record was made with, and a clear one with the other', async () => {
    for (const made of ['tanh', 'sigmoid'] as const) {
      const other = made === 'tanh' ? 'sigmoid' : 'tanh';
      for (const record of records.get(made)!) {
        const same = await compareRecordWithModel(record, capturer, { gelu: made });
        const different = await compareRecordWithModel(record, capturer, { gelu: other });
        const excerpts = recordExcerpts(record).length;
        expect(same.excerpts).toEqual({ total: excerpts, compared: excerpts, skipped: 0 });
        expect(same.unmappedTokens).toEqual([]);
        const largest = Math.max(...recordExcerpts(record).flatMap((r) => r.excerpt.activations.map(Math.abs)));
        // Records hold float16-rounded activations: half a unit in the last place at most.
        expect(same.overall!.maxAbsDiff).toBeLessThanOrEqual(largest * 2 ** -11 + 1e-6);
        expect(same.overall!.correlation!).toBeGreaterThan(0.99999);
        // The other GELU: a typical token is off by far more than rounding (its largest values
        // can be off by less than their float16 rounding, so medians are compared).
        expect(different.overall!.medianAbsDiff).toBeGreaterThan(1e-3);
        expect(different.overall!.medianAbsDiff).toBeGreaterThan(100 * same.overall!.medianAbsDiff);
        expect(different.overall!.meanAbsDiff).toBeGreaterThan(10 * same.overall!.meanAbsDiff);
        for (const excerpt of same.perExcerpt) expect(excerpt.stats!.maxAbsDiff).toBeLessThanOrEqual(same.overall!.maxAbsDiff);
        expect(same.byList.most_positive_activation_records!.count).toBe(record.most_positive_activation_records.reduce((n, r) => n + r.tokens.length, 0));
      }
    }
  });

  it('reports and skips excerpts whose tokens map to no id, comparing the rest', async () => {
    const record = structuredClone(records.get('tanh')![1]);
    record.random_sample[2].tokens[5] = '\u2603 not a token \u2603';
    record.random_sample[4].tokens[0] = '\u2603 not a token \u2603';
    const result = await compareRecordWithModel(record, capturer, { gelu: 'tanh' });
    expect(result.unmappedTokens).toEqual([{ token: '\u2603 not a token \u2603', count: 2, reason: 'unknown', candidates: 0 }]);
    expect(result.excerpts.skipped).toBe(2);
    expect(result.perExcerpt.find((e) => e.path === 'random_sample[2]')!.skipped).toMatch(/not in the vocabulary/);
    expect(result.overall!.maxAbsDiff).toBeLessThan(1e-2);
  });

  it('refuses a record for a neuron the model does not have', async () => {
    const record = { ...records.get('tanh')![0], neuron_id: { layer_index: 30, neuron_index: 1 } };
    await expect(compareRecordWithModel(record, capturer)).rejects.toThrow(RecordComparisonError);
    await expect(compareRecordWithModel(record, capturer)).rejects.toThrow(/layer 30 neuron 1, but the model has layers 0-1/);
  });

  it('`neurolens compare` reports both variants and names the one the record was made with', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'neurolens-compare-'));
    const file = join(dir, 'record.json');
    writeFileSync(file, serializeNeuronRecord(records.get('sigmoid')![1]));
    const json = await cli(['compare', '--record', file, '--model', 'toy-planted', '--json']);
    expect(json.stderr).toBe('');
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout);
    const { tanh, sigmoid } = report.records[0].comparisons;
    expect(report.records[0].neuron).toEqual({ layer: 1, neuron: 222 });
    expect(sigmoid.overall.medianAbsDiff).toBeLessThan(tanh.overall.medianAbsDiff / 100);
    expect(report.overall.sigmoid).toEqual(sigmoid.overall);

    const table = await cli(['compare', '--record', file, '--model', 'toy-planted']);
    expect(table.code).toBe(0);
    expect(table.stdout).toContain('closest to the stored activations: sigmoid');

    const bad = await cli(['compare', '--record', join(dir, 'missing.json'), '--model', 'toy-planted']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr.trim()).toMatch(/^neurolens compare: record file not found: .*missing\.json$/);
    writeFileSync(join(dir, 'bad.json'), '{"neuron_id": 3}');
    const malformed = await cli(['compare', '--record', join(dir, 'bad.json'), '--model', 'toy-planted']);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe.skipIf(!existsSync(PUBLISHED))('the published GPT-2 XL record (layer 1, neuron 1)', () => {
  it('maps every token string to an id of the GPT-2 vocabulary', async () => {
    ensureModels({ only: ['toy-planted'], log: () => {} });
    const model = await loadModel(await dirSource(TOY));
    const lookup = new TokenLookup(model.tokenizer);
    const record = parseNeuronRecord(readFileSync(PUBLISHED, 'utf8'));
    const tokens = recordExcerpts(record).flatMap((r) => r.excerpt.tokens);
    expect(tokens.length).toBeGreaterThan(10_000);
    const unmapped = [...new Set(tokens)].filter((t) => lookup.map(t).id === null);
    expect(unmapped).toEqual([]);
    // The mapping is the tokenizer's own: re-encoding a whole excerpt gives the same ids.
    const first = record.most_positive_activation_records[0].tokens;
    const ids = first.map((t) => (lookup.map(t) as { id: number }).id);
    expect(model.tokenizer.decode(ids)).toBe(first.join(''));
  });

  it('`neurolens compare` runs on it and prints a report for both GELU variants', async () => {
    const { code, stdout, stderr } = await cli(['compare', '--record', PUBLISHED, '--model', 'toy-planted']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toContain('record layer 1 neuron 1: 200 excerpts');
    expect(stdout).toContain("every token string maps to one id of the model's vocabulary");
    expect(stdout).toMatch(/^ {2}tanh +200 /m);
    expect(stdout).toMatch(/^ {2}sigmoid +200 /m);
  });
});
