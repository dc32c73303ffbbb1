import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildExcerpts, type CorpusExcerpt } from '../src/lib/activations/corpus.ts';
import { ScanStatistics } from '../src/lib/activations/scan-statistics.ts';
import type { NeuronRecord } from '../src/lib/activations/records.ts';
import { buildNeuronRecords } from '../src/lib/activations/sample-rows.ts';
import { peakTokens } from '../src/lib/activations/peak-tokens.ts';
import {
  runScan,
  scanOrder,
  ScanAbortedError,
  ScanError,
  type ActivationSource,
  type ScanProgress,
} from '../src/lib/activations/scan.ts';
import { createSeededRandom } from '../src/lib/activations/seeded-random.ts';
import { makeExcerpts, MemoryCheckpoints, syntheticActivation, makeSyntheticSource, SYNTHETIC_LAYERS, type SourceLog } from './helpers/synthetic-scan.ts';
import { ActivationCapturer } from '../src/lib/model/capture.ts';
import { dirSource } from '../src/lib/model/dir-source.node.ts';
import { loadModel } from '../src/lib/model/load-model.ts';
import { loadNodeRuntime } from '../src/lib/model/ort-runtime.node.ts';
import { ensureModels } from '../scripts/gen-models.ts';

const LAYERS = SYNTHETIC_LAYERS;
const D_MLP = 6;
const syntheticSource = (log?: SourceLog, failAtCall?: number) => makeSyntheticSource({ dMlp: D_MLP, log, failAtCall });

const bytesOf = (stats: ScanStatistics) => stats.serialize().map((p) => Buffer.from(p).toString('base64'));
const statsOptions = { layers: LAYERS, dMlp: D_MLP, topK: 4, randomSampleSize: 5, seed: 3, rowPrecision: 'float32' as const };

async function allRecords(stats: ScanStatistics, excerpts: number[][]): Promise<NeuronRecord[]> {
  const neurons = LAYERS.flatMap((layer) => Array.from({ length: D_MLP }, (_, neuron) => ({ layer, neuron })));
  return buildNeuronRecords({ stats, source: syntheticSource(), excerpts, tokensOf: (e) => excerpts[e].map(String), neurons });
}

describe('runScan with a deterministic source', () => {
  const excerpts = makeExcerpts(90, 1);

  it('equals feeding the accumulator directly in scan order, for any batch size, with only equal lengths per batch', async () => {
    const direct = new ScanStatistics({ ...statsOptions, excerptLength: 12 });
    const source = syntheticSource();
    const order = scanOrder(excerpts, statsOptions.seed);
    for (const e of order) {
      const acts = await source([excerpts[e]]);
      direct.addExcerpt(e, excerpts[e], new Map(LAYERS.map((l) => [l, { data: acts.get(l)! }])));
    }
    const log: SourceLog = { calls: [] };
    const batched = await runScan({ ...statsOptions, source: syntheticSource(log), excerpts, batchSize: 5 });
    const single = await runScan({ ...statsOptions, source: syntheticSource(), excerpts, batchSize: 1 });
    expect(bytesOf(batched.stats)).toEqual(bytesOf(direct));
    expect(bytesOf(single.stats)).toEqual(bytesOf(direct));
    expect(Math.max(...log.calls.map((c) => c.length))).toBe(5);
    expect(log.calls.flat()).toEqual(order.map((e) => excerpts[e]));
    expect(batched).toMatchObject({ excerptsDone: 90, resumedFrom: 0, tokensDone: excerpts.reduce((s, e) => s + e.length, 0) });
  });

  it('scans longest excerpts first, each length by sample priority, with the same statistics as corpus order', async () => {
    const order = scanOrder(excerpts, statsOptions.seed);
    expect([...order].sort((a, b) => a - b)).toEqual(excerpts.map((_, i) => i));
    const firstShort = order.findIndex((e) => excerpts[e].length === 7);
    expect(order.slice(0, firstShort).every((e) => excerpts[e].length === 12)).toBe(true);
    expect(order.slice(firstShort).every((e) => excerpts[e].length === 7)).toBe(true);
    expect(order.slice(0, 10)).not.toEqual([...order.slice(0, 10)].sort((a, b) => a - b)); // not corpus order
    expect(scanOrder(excerpts, statsOptions.seed + 1)).not.toEqual(order);

    const inCorpusOrder = new ScanStatistics({ ...statsOptions, excerptLength: 12 });
    const source = syntheticSource();
    for (let e = 0; e < excerpts.length; e++) {
      const acts = await source([excerpts[e]]);
      inCorpusOrder.addExcerpt(e, excerpts[e], new Map(LAYERS.map((l) => [l, { data: acts.get(l)! }])));
    }
    const scanned = (await runScan({ ...statsOptions, source: syntheticSource(), excerpts })).stats;
    expect(scanned.randomSampleExcerpts()).toEqual(inCorpusOrder.randomSampleExcerpts());
    for (let n = 0; n < scanned.neuronCount; n++) {
      expect(scanned.topExcerpts(n)).toEqual(inCorpusOrder.topExcerpts(n));
      expect(scanned.quantileSample(n)).toEqual(inCorpusOrder.quantileSample(n));
      const [a, b] = [scanned.momentsOf(n)!, inCorpusOrder.momentsOf(n)!];
      // Only rounding differs (float32 per-excerpt sums around a shift taken from the first excerpt).
      expect(a.mean).toBeCloseTo(b.mean, 6);
      expect(a.variance).toBeCloseTo(b.variance, 6);
    }
  });

  it('reports progress up to the total with a rate and an ETA', async () => {
    const reports: ScanProgress[] = [];
    await runScan({ ...statsOptions, source: syntheticSource(), excerpts, batchSize: 4, onProgress: (p) => reports.push(p) });
    const tokensTotal = excerpts.reduce((s, e) => s + e.length, 0);
    expect(reports[0]).toMatchObject({ excerptsDone: 0, excerptsTotal: 90, tokensDone: 0, tokensTotal, etaSeconds: null });
    const last = reports[reports.length - 1];
    expect(last).toMatchObject({ excerptsDone: 90, tokensDone: tokensTotal, etaSeconds: 0 });
    expect(last.tokensPerSecond).toBeGreaterThan(0);
    for (let i = 1; i < reports.length; i++) expect(reports[i].excerptsDone).toBeGreaterThan(reports[i - 1].excerptsDone);
  });

  it('stops on abort with a checkpoint, and a resumed scan equals an uninterrupted one, records included', async () => {
    const uninterrupted = await runScan({ ...statsOptions, source: syntheticSource(), excerpts, batchSize: 4 });
    const store = new MemoryCheckpoints();
    const controller = new AbortController();
    const first = runScan({
      ...statsOptions,
      source: syntheticSource(),
      excerpts,
      batchSize: 4,
      checkpoint: store,
      checkpointEvery: 10,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.excerptsDone >= 37) controller.abort();
      },
    });
    const error = await first.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ScanAbortedError);
    expect(error).toMatchObject({ name: 'AbortError', excerptsDone: 40, checkpointSaved: true });
    expect(store.saved?.excerptsDone).toBe(40);
    expect(store.saves).toBe(4); // after 12, 24 and 36 excerpts, and at the abort

    const reports: ScanProgress[] = [];
    const resumed = await runScan({ ...statsOptions, source: syntheticSource(), excerpts, batchSize: 7, checkpoint: store, onProgress: (p) => reports.push(p) });
    expect(resumed.resumedFrom).toBe(40);
    expect(reports[0].excerptsDone).toBe(40);
    expect(bytesOf(resumed.stats)).toEqual(bytesOf(uninterrupted.stats));
    expect(JSON.stringify(await allRecords(resumed.stats, excerpts))).toBe(JSON.stringify(await allRecords(uninterrupted.stats, excerpts)));
    expect(store.saved?.excerptsDone).toBe(90);
  });

  it('keeps the progress made before a source failure, and resumes from it', async () => {
    const store = new MemoryCheckpoints();
    await expect(runScan({ ...statsOptions, source: syntheticSource(undefined, 6), excerpts, batchSize: 5, checkpoint: store, checkpointEvery: 1 })).rejects.toThrow(
      'GPU device lost',
    );
    const savedAt = store.saved!.excerptsDone;
    expect(savedAt).toBe(30); // the six batches of five before the failing 7th call
    const resumed = await runScan({ ...statsOptions, source: syntheticSource(), excerpts, checkpoint: store });
    const uninterrupted = await runScan({ ...statsOptions, source: syntheticSource(), excerpts });
    expect(resumed.resumedFrom).toBe(savedAt);
    expect(bytesOf(resumed.stats)).toEqual(bytesOf(uninterrupted.stats));
  });

  it('saves checkpoints no more often than checkpointMinSeconds allows, and always at the end', async () => {
    const store = new MemoryCheckpoints();
    await runScan({ ...statsOptions, source: syntheticSource(), excerpts, batchSize: 5, checkpoint: store, checkpointEvery: 1, checkpointMinSeconds: 3600 });
    expect(store.saves).toBe(1);
    expect(store.saved?.excerptsDone).toBe(90);
  });

  it('refuses a checkpoint of a different scan', async () => {
    const store = new MemoryCheckpoints();
    await runScan({ ...statsOptions, source: syntheticSource(), excerpts: excerpts.slice(0, 20), checkpoint: store });
    await expect(runScan({ ...statsOptions, seed: 4, source: syntheticSource(), excerpts: excerpts.slice(0, 20), checkpoint: store })).rejects.toThrow(
      /belongs to a different scan/,
    );
    await expect(runScan({ ...statsOptions, source: syntheticSource(), excerpts: excerpts.slice(0, 21), checkpoint: store })).rejects.toThrow(ScanError);
    // A checkpoint of an earlier version (fingerprint v1 to v3) is refused with its own reason.
    for (const older of ['v1:', 'v2:', 'v3:']) {
      store.saved = { ...store.saved!, fingerprint: store.saved!.fingerprint.replace(/^v\d+:/, older) };
      await expect(runScan({ ...statsOptions, source: syntheticSource(), excerpts: excerpts.slice(0, 20), checkpoint: store })).rejects.toThrow(/older Neurolens/);
    }
  });

  it('stops before any work when the signal is already aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    const log: SourceLog = { calls: [] };
    await expect(runScan({ ...statsOptions, source: syntheticSource(log), excerpts, signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError', excerptsDone: 0 });
    expect(log.calls).toHaveLength(0);
  });

  it('explains a misbehaving source and bad input', async () => {
    const missing: ActivationSource = async (batch) => new Map([[0, new Float32Array(batch.length * batch[0].length * D_MLP)]]);
    await expect(runScan({ ...statsOptions, source: missing, excerpts })).rejects.toThrow('the activation source returned no Float32Array for layer 2');
    const short: ActivationSource = async () => new Map(LAYERS.map((l) => [l, new Float32Array(5)]));
    await expect(runScan({ ...statsOptions, source: short, excerpts, batchSize: 2 })).rejects.toThrow(
      'the activation source returned 5 values for layer 0; expected 2 × 12 × 6 = 144',
    );
    await expect(runScan({ ...statsOptions, source: syntheticSource(), excerpts: [[1, 2], []] })).rejects.toThrow('excerpt 1 is empty');
    await expect(runScan({ ...statsOptions, source: syntheticSource(), excerpts: [[1, 2.5]] })).rejects.toThrow('invalid token id 2.5');
    await expect(runScan({ ...statsOptions, source: syntheticSource(), excerpts, batchSize: 0 })).rejects.toThrow(/batchSize/);
  });
});

describe('buildNeuronRecords', () => {
  it('re-runs only the excerpts the records need and fills them with the source activations', async () => {
    const excerpts = makeExcerpts(60, 2);
    const { stats } = await runScan({ ...statsOptions, source: syntheticSource(), excerpts });
    const log: SourceLog = { calls: [] };
    const neurons = [
      { layer: 2, neuron: 4 },
      { layer: 0, neuron: 1 },
    ];
    const records = await buildNeuronRecords({ stats, source: syntheticSource(log), excerpts, tokensOf: (e) => excerpts[e].map((id) => `t${id}`), neurons, batchSize: 3 });
    const expectedRerun = new Set(neurons.flatMap(({ layer, neuron }) => stats.excerptsToRerun(stats.neuronIndex(layer, neuron))));
    const rerun = log.calls.flat().map((tokens) => excerpts.findIndex((e) => e === tokens || e.join() === tokens.join()));
    expect(new Set(rerun)).toEqual(expectedRerun);
    expect(rerun.length).toBe(expectedRerun.size);
    records.forEach((record, k) => {
      const { layer, neuron } = neurons[k];
      expect(record.neuron_id).toMatchObject({ layer_index: layer, neuron_index: neuron });
      const expectedRow = (e: number) => excerpts[e].map((_, t) => syntheticActivation(layer, neuron, t, excerpts[e]));
      expect(record.random_sample.map((r) => r.activations)).toEqual(stats.randomSampleExcerpts().map(expectedRow));
      expect(record.random_sample[0].tokens).toEqual(excerpts[stats.randomSampleExcerpts()[0]].map((id) => `t${id}`));
      const top = stats.topExcerpts(stats.neuronIndex(layer, neuron));
      expect(record.most_positive_activation_records.map((r) => r.activations)).toEqual(top.map((t) => expectedRow(t.excerptIndex)));
    });
    await expect(buildNeuronRecords({ stats, source: syntheticSource(), excerpts, tokensOf: () => [], neurons: [{ layer: 1, neuron: 0 }] })).rejects.toThrow(/layer 1 is not tracked/);
  });
});

// ---------------------------------------------------------------------------------------------
// The real thing: the toy-planted GPT-2 on onnxruntime-node, with real GPT-2 tokenisation.

function plantedCorpus(): { text: string; source: string }[] {
  const random = createSeededRandom(99);
  const pick = <T>(xs: T[]) => xs[Math.floor(random() * xs.length)];
  const names = ['Alice', 'Boston', 'Maria', 'London', 'Oxford', 'Peter', 'Tuesday', 'Kyoto'];
  const nouns = ['cat', 'house', 'river', 'report', 'engine', 'garden', 'letter', 'bridge', 'song', 'market'];
  const verbs = ['saw', 'built', 'found', 'sold', 'painted', 'opened', 'carried', 'missed'];
  const sentence = () =>
    pick([
      () => `${pick(names)} ${pick(verbs)} the ${pick(nouns)} in ${1900 + Math.floor(random() * 120)}.`,
      () => `A ${pick(nouns)} ${pick(verbs)} a ${pick(nouns)} near some ${pick(nouns)}s.`,
      () => `"We ${pick(verbs)} ${2 + Math.floor(random() * 90)} ${pick(nouns)}s," said ${pick(names)}.`,
      () => `nobody ${pick(verbs)} it, and then ${pick(nouns)}s ${pick(verbs)} every ${pick(nouns)}.`,
    ])();
  return Array.from({ length: 4 }, (_, d) => ({ text: Array.from({ length: 110 }, sentence).join(' '), source: `doc ${d}` }));
}

describe('scan of the planted toy GPT-2 (onnxruntime-node)', () => {
  let capturer: ActivationCapturer;
  let excerpts: CorpusExcerpt[];
  let source: ActivationSource;

  beforeAll(async () => {
    ensureModels({ only: ['toy-planted'], log: () => {} });
    const model = await loadModel(await dirSource(join(import.meta.dirname, '../public/models/toy-planted')));
    capturer = new ActivationCapturer(model, await loadNodeRuntime('node'));
    excerpts = buildExcerpts(plantedCorpus(), model.tokenizer);
    source = async (batch) => (await capturer.runTokens(batch, { layers: [0, 1] })).layers;
  });
  afterAll(async () => capturer?.dispose());

  it('finds the planted neurons’ triggers, and its records reproduce from their tokens', async () => {
    expect(excerpts.length).toBeGreaterThan(40);
    const ids = excerpts.map((e) => e.tokenIds);
    const { stats } = await runScan({ source, excerpts: ids, layers: [0, 1], dMlp: capturer.dMlp, topK: 8, randomSampleSize: 6, batchSize: 4 });
    const the = stats.neuronIndex(0, 203); // fires on " the"
    const digits = stats.neuronIndex(0, 37); // fires on tokens made of digits
    const after = stats.neuronIndex(1, 222); // fires on the token after " the"
    const argmaxToken = (e: number, record: number[]) => excerpts[e].tokens[record.indexOf(Math.max(...record))];
    const [theRecord, digitRecord, afterRecord] = await buildNeuronRecords({
      stats,
      source,
      excerpts: ids,
      tokensOf: (e) => excerpts[e].tokens,
      neurons: [
        { layer: 0, neuron: 203 },
        { layer: 0, neuron: 37 },
        { layer: 1, neuron: 222 },
      ],
    });
    const topOf = (n: number) => stats.topExcerpts(n).map((t) => t.excerptIndex);
    for (const record of [theRecord, digitRecord, afterRecord]) {
      expect(record.most_positive_activation_records).toHaveLength(8);
      expect(record.random_sample).toHaveLength(6);
    }
    theRecord.most_positive_activation_records.forEach((r, i) => expect(argmaxToken(topOf(the)[i], r.activations)).toBe(' the'));
    digitRecord.most_positive_activation_records.forEach((r, i) => expect(argmaxToken(topOf(digits)[i], r.activations)).toMatch(/^ ?[0-9]+$/));
    afterRecord.most_positive_activation_records.forEach((r) => {
      const at = r.activations.indexOf(Math.max(...r.activations));
      expect(r.tokens[at - 1]).toBe(' the');
    });
    expect(peakTokens(theRecord)[0]).toMatchObject({ token: ' the', count: 8 });

    // Each record's activations are those of its excerpt run on its own (float16 storage).
    for (const record of [theRecord, afterRecord]) {
      for (const r of [...record.most_positive_activation_records.slice(0, 3), ...record.random_sample.slice(0, 3)]) {
        const e = excerpts.findIndex((x) => x.tokens.join('\u0000') === r.tokens.join('\u0000'));
        const fresh = (await capturer.runTokens([ids[e]], { layers: [record.neuron_id.layer_index] })).layers.get(record.neuron_id.layer_index)!;
        r.activations.forEach((v, t) => {
          const exact = fresh[t * capturer.dMlp + record.neuron_id.neuron_index];
          expect(Math.abs(v - exact)).toBeLessThanOrEqual(Math.abs(exact) * 2 ** -10 + 1e-4);
        });
      }
    }
    expect(theRecord.mean).toBeTypeOf('number');
    expect(theRecord.quantile_boundaries).toHaveLength(6);
  });
});
