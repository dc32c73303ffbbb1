/**
 * The IndexedDB store in a real headless Chromium (real IndexedDB, CompressionStream,
 * navigator.storage, Float16Array), driven through test/browser/store-harness.ts: schema and
 * migrations, all-or-nothing writes under injected failures and a real quota limit, refusal of
 * malformed imports with exact messages and nothing touched, and lossless round trips (paper
 * formats and whole-scan bundles), including records built in Node by the real scan code.
 */
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { NeuronRecord } from '../src/lib/activations/records.ts';
import { runScan, type ActivationSource } from '../src/lib/activations/scan.ts';
import { buildNeuronRecords } from '../src/lib/activations/sample-rows.ts';
import { createSeededRandom } from '../src/lib/activations/seeded-random.ts';
import type { NeuronSimulationResults } from '../src/lib/explain/explanation-types.ts';
import { serializeJsonl, serializeNeuronRecord } from '../src/lib/explain/formats.ts';
import type { StoreHarness } from './browser/store-harness.ts';
import { summarizeNeuronRecord } from '../src/lib/activations/neuron-summary.ts';
import { DB_VERSION } from '../src/lib/store/db.ts';
import { browserAvailable, launchChromium, startBuiltHarness } from './helpers/browser.ts';
import type { StaticServer } from './helpers/static-server.ts';

// ---------------------------------------------------------------------------------------------
// Test data made in Node

const LAYERS = [0, 1];
const D_MLP = 5;
/** Token texts that stress string handling: quotes, backslashes, non-Latin scripts, emoji, control characters. */
const TOKEN_TEXT = [' the', '"', '\\', ' café', 'Ж', '😀', '\n', '\t', ' x', 'y', '</s>', ' 42'];

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

/** NeuronRecords of every neuron, built by the real scan (runScan + buildNeuronRecords). */
async function scanBuiltRecords(): Promise<NeuronRecord[]> {
  const random = createSeededRandom(5);
  const excerpts = Array.from({ length: 48 }, () => Array.from({ length: 10 }, () => Math.floor(random() * 40)));
  const settings = { layers: LAYERS, dMlp: D_MLP, topK: 5, randomSampleSize: 6, quantileSampleSize: 2, seed: 4 };
  const { stats } = await runScan({ ...settings, source: syntheticSource(), excerpts });
  return buildNeuronRecords({
    stats,
    source: syntheticSource(),
    excerpts,
    tokensOf: (e) => excerpts[e].map((id) => TOKEN_TEXT[id % TOKEN_TEXT.length]),
    neurons: LAYERS.flatMap((layer) => Array.from({ length: D_MLP }, (_, neuron) => ({ layer, neuron }))),
  });
}

/** A record as some other tool might write it: no dataclass_names, -0, float64 values, an unknown field. */
const FOREIGN_RECORD = {
  neuron_id: { layer_index: 7, neuron_index: 1234 },
  random_sample: [{ tokens: ['a', 'b'], activations: [-0, 0.1] }],
  random_sample_by_quantile: null,
  quantile_boundaries: null,
  mean: 0.05,
  variance: null,
  skewness: null,
  kurtosis: null,
  most_positive_activation_records: [{ tokens: ['c', 'd', 'e'], activations: [1.25, 3.141592653589793, -0.5] }],
  extra_note: 'kept as is',
};

function simulationResults(layer: number, neuron: number, explanations: string[]): NeuronSimulationResults {
  return {
    dataclass_name: 'NeuronSimulationResults',
    neuron_id: { dataclass_name: 'NeuronId', layer_index: layer, neuron_index: neuron },
    scored_explanations: explanations.map((explanation, i) => ({
      dataclass_name: 'ScoredExplanation',
      explanation,
      scored_simulation: {
        dataclass_name: 'ScoredSimulation',
        scored_sequence_simulations: [
          {
            dataclass_name: 'ScoredSequenceSimulation',
            simulation: {
              dataclass_name: 'SequenceSimulation',
              tokens: ['x', ' y', 'z'],
              expected_activations: [0.5 + i, -0, null],
              activation_scale: 'simulated_normalized_activations',
              distribution_values: [[0, 10], [0, 10], []],
              distribution_probabilities: [[0.95, 0.05], [1, 0], []],
              simulation_mode: 'logprob',
              coverage: 0.6666666666666666,
            },
            true_activations: [1.5, 0, 2.25],
            ev_correlation_score: 0.1 * (i + 1),
            rsquared_score: -0.25,
            absolute_dev_explained_score: null,
          },
        ],
        ev_correlation_score: 0.1 * (i + 1),
        rsquared_score: -0.25,
        absolute_dev_explained_score: null,
      },
    })),
  };
}

const SCAN_INIT = {
  name: 'toy scan',
  model: { label: 'toy-planted', nLayer: 2, dMlp: D_MLP, dModel: 8 },
  corpus: { name: 'synthetic', fingerprint: 'v1:48:0123abcd' },
  layers: LAYERS,
  topK: 5,
  seed: 4,
  excerptCount: 48,
};

/** Every ActivationRecord of a record, in packing order. */
const allExcerptsOf = (r: NeuronRecord) => [r.random_sample, ...(r.random_sample_by_quantile ?? []), r.most_positive_activation_records].flat();

/** JSON documents of a JSON Lines text. */
const jsonLines = (text: string): unknown[] =>
  text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l));

/** Deep equality that also tells -0 from 0, naming the first difference. */
function expectSameJson(actual: unknown, expected: unknown, path = '$'): void {
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

// ---------------------------------------------------------------------------------------------

const run = browserAvailable() ? describe : describe.skip;

run('Neurolens store in headless Chromium', () => {
  let server: StaticServer & { origin: string };
  let origin: string;
  let browser: Browser;
  let page: Page;
  let records: NeuronRecord[];
  let recordsJsonl: string;
  let dbCounter = 0;
  let db: string;

  /** Runs `fn(harness, arg)` in the page. `fn` must be self-contained (it is sent as source text). */
  function inPage<A, R>(fn: (h: StoreHarness, arg: A) => Promise<R> | R, arg: A, target: Page = page): Promise<R> {
    return target.evaluate(
      async ([source, a]) => {
        const f = new Function(`return (${source})`)() as (h: unknown, arg: unknown) => unknown;
        return f((window as unknown as { neurolensStore: unknown }).neurolensStore, a);
      },
      [fn.toString(), arg] as [string, A],
    ) as Promise<R>;
  }

  async function openHarness(target: Page): Promise<void> {
    target.on('pageerror', (err) => console.error('page error:', err.message));
    await target.goto(`${origin}/test/browser/store-harness.html`);
    await target.waitForFunction(() => document.getElementById('status')?.textContent === 'ready', null, { timeout: 120_000 });
  }

  beforeAll(async () => {
    records = await scanBuiltRecords();
    recordsJsonl = serializeJsonl(records, 'NeuronRecord');
    server = await startBuiltHarness();
    origin = server.origin;
    browser = await launchChromium();
    page = await browser.newPage();
    await openHarness(page);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  beforeEach(() => {
    db = `neurolens-test-${++dbCounter}`;
  });

  it('creates the current schema; a v1 database upgrades step by step (v2, v3, v4) to the same schema and keeps its data', async () => {
    const result = await inPage(
      async (h, { name, record, init }) => {
        const fresh = await h.NeurolensStore.open(`${name}-fresh`);
        fresh.close();
        const freshSchema = await h.describeSchema(`${name}-fresh`);

        // A database as v1 code left it: v1 rows (scans have no `bytes` yet; records in the old layout).
        const v1 = await h.openNeurolensDb(name, { version: 1 });
        const v1Schema = { version: v1.version, scanIndexes: Array.from(v1.transaction('scans').store.indexNames) };
        const scans = [
          { id: 'old', ...init, status: 'done', progress: 1, createdAt: 1000, updatedAt: 1000 },
          { id: 'new', ...init, name: 'newer', status: 'paused', progress: 0.5, createdAt: 2000, updatedAt: 3000 },
        ];
        for (const scan of scans) await v1.put('scans', scan as never);
        await v1.put('neuronRecords', h.legacyRecordRow('old', record, 'float16') as never);
        await v1.put('explanations', { scanId: 'old', layer: 0, neuron: 1, explanation: 'commas', order: 0, createdAt: 1500 });
        v1.close();

        const store = await h.NeurolensStore.open(name);
        const migrated = {
          version: store.version,
          schema: await h.describeSchema(name),
          listed: (await store.listScans()).map((s) => [s.id, s.name, s.status, s.progress]),
          old: await store.getScan('old'),
          record: await store.getNeuronRecord('old', record.neuron_id.layer_index, record.neuron_id.neuron_index),
          explanations: await store.listExplanations('old', { layer: 0, neuron: 1 }),
        };
        // The same rows written by v3 code from the start, to compare the recounted byte count.
        const direct = await h.NeurolensStore.open(`${name}-direct`);
        const scan = await direct.createScan({ ...init, id: 'old', status: 'done', progress: 1 });
        await direct.putNeuronRecords(scan.id, [record]);
        await direct.putExplanations(scan.id, { layer: 0, neuron: 1 }, ['commas']);
        const directBytes = (await direct.getScan('old'))!.bytes;
        store.close();
        direct.close();
        return { freshSchema, v1Schema, migrated, directBytes };
      },
      { name: db, record: records[3], init: SCAN_INIT },
    );
    const stores = result.freshSchema.stores.map((s) => s.name);
    expect(stores).toEqual(['checkpoints', 'excerpts', 'explanations', 'jobSteps', 'llmCache', 'neuronRecords', 'neuronSummaries', 'probes', 'scanInputs', 'scans', 'scores', 'simulations', 'vocabulary']);
    expect(result.freshSchema.version).toBe(DB_VERSION);
    expect(DB_VERSION).toBe(4);
    const schemaOf = (name: string) => result.freshSchema.stores.find((s) => s.name === name)!;
    expect(schemaOf('neuronRecords').keyPath).toEqual(['scanId', 'layer', 'neuron']);
    expect(schemaOf('excerpts')).toEqual({ name: 'excerpts', keyPath: ['scanId', 'index'], indexes: [{ name: 'byHash', keyPath: ['scanId', 'hash'] }] });
    expect(schemaOf('vocabulary')).toEqual({ name: 'vocabulary', keyPath: ['scanId', 'firstId'], indexes: [] });
    expect(schemaOf('probes').indexes).toEqual([{ name: 'byScan', keyPath: 'scanId' }]);
    expect(schemaOf('scans').indexes).toEqual([{ name: 'byUpdatedAt', keyPath: 'updatedAt' }]);
    expect(result.v1Schema).toEqual({ version: 1, scanIndexes: [] });
    // Upgraded step by step (1 → 2 → 3) or created at once (0 → 3): the same schema.
    expect(result.migrated.schema).toEqual(result.freshSchema);
    expect(result.migrated.version).toBe(DB_VERSION);
    // The v2 index orders the listing, most recently updated first.
    expect(result.migrated.listed).toEqual([
      ['new', 'newer', 'paused', 0.5],
      ['old', 'toy scan', 'done', 1],
    ]);
    expectSameJson(result.migrated.record, records[3]);
    expect(result.migrated.explanations).toEqual([{ layer: 0, neuron: 1, explanation: 'commas', order: 0, createdAt: 1500 }]);
    // The upgrade counts `bytes` from the rows the scan owns; it matches what v3 code counts as it writes.
    expect(result.migrated.old!.bytes).toBeGreaterThan(0);
    expect(Math.abs(result.migrated.old!.bytes - result.directBytes)).toBeLessThanOrEqual(16); // createdAt digits differ
  });

  it('migrates a v2 store: every record reads back identical, excerpts stored once per scan, mean-token tables dropped', async () => {
    const result = await inPage(
      async (h, { name, records, foreign, init }) => {
        // The old schema (v1 and v2 steps), filled with rows in the old layouts.
        const v2 = await h.openNeurolensDb(name, { version: 2 });
        const old = { status: 'done', progress: 1, createdAt: 1000, updatedAt: 1000, bytes: 123 };
        await v2.put('scans', { id: 'a', ...init, ...old } as never);
        await v2.put('scans', { id: 'b', ...init, name: 'second', ...old } as never);
        for (const r of records) await v2.put('neuronRecords', h.legacyRecordRow('a', r, 'float16') as never);
        for (const r of records.slice(0, 3)) await v2.put('neuronRecords', h.legacyRecordRow('b', r, 'float16') as never);
        await v2.put('neuronRecords', h.legacyRecordRow('b', foreign, 'float64') as never);
        const meanTokens = { scanId: 'a', layer: 0, neuron: 2, tokens: [{ tokenId: 3, token: ' x', meanActivation: 1.5, count: 4 }] };
        await v2.put('meanTokens' as never, meanTokens as never);
        await v2.put('scanInputs', { scanId: 'a', inputs: { documents: [{ text: 'some text', source: 'x.txt' }] } });
        await v2.put('explanations', { scanId: 'b', layer: 0, neuron: 1, explanation: 'commas', order: 0, createdAt: 1500 });
        const oldStores = Array.from(v2.objectStoreNames);
        v2.close();

        const store = await h.NeurolensStore.open(name);
        const dump = await h.dumpDb(name);
        const ids = async (scanId: string) => store.listNeuronIds(scanId);
        const out = {
          oldStores,
          version: store.version,
          stores: Object.keys(dump),
          a: await store.getNeuronRecords('a', await ids('a')),
          b: await store.getNeuronRecords('b', await ids('b')),
          aJsonl: await h.importExport.exportNeuronRecordsJsonl(store, 'a'),
          encodings: await Promise.all((await ids('b')).map(async (n) => (await store.getNeuronRecordEntry('b', n.layer, n.neuron))!.encoding)),
          excerpts: (dump.excerpts as { scanId: string; index: number }[]).map((e) => [e.scanId, e.index]),
          vocabulary: (dump.vocabulary as { scanId: string; tokens: string[] }[]).map((v) => [v.scanId, v.tokens.length]),
          recordRowsHaveTokens: JSON.stringify(dump.neuronRecords).includes('"tokens"'),
          explanations: await store.listExplanations('b', { layer: 0, neuron: 1 }),
          inputs: await store.getScanInputs('a'),
          bytes: [(await store.getScan('a'))!.bytes, (await store.getScan('b'))!.bytes],
        };
        store.close();

        // A damaged old row (values missing) makes the upgrade fail as a whole: the database stays v2, untouched.
        const broken = await h.openNeurolensDb(`${name}-broken`, { version: 2 });
        await broken.put('scans', { id: 'a', ...init, ...old } as never);
        await broken.put('neuronRecords', h.legacyRecordRow('a', records[0], 'float16') as never);
        const bad = h.legacyRecordRow('a', records[1], 'float16');
        await broken.put('neuronRecords', { ...bad, activations: bad.activations.subarray(1) } as never);
        broken.close();
        const before = await h.dumpDb(`${name}-broken`);
        const failed = await h.errorOf(() => h.NeurolensStore.open(`${name}-broken`));
        const after = await h.dumpDb(`${name}-broken`);
        const reopened = await h.openDB(`${name}-broken`);
        const brokenVersion = reopened.version;
        reopened.close();
        return { ...out, failed, brokenUntouched: JSON.stringify(before) === JSON.stringify(after), brokenVersion };
      },
      { name: db, records, foreign: FOREIGN_RECORD, init: SCAN_INIT },
    );
    expect(result.oldStores).toContain('meanTokens');
    expect(result.version).toBe(DB_VERSION);
    expect(result.stores).not.toContain('meanTokens');
    // Identical records, scan by scan; the scan's own float16 and the import's float64 kept as they were.
    expectSameJson(result.a, records);
    expectSameJson(result.b, [...records.slice(0, 3), FOREIGN_RECORD]);
    expect(result.aJsonl).toBe(recordsJsonl);
    expect(result.encodings).toEqual(['float16', 'float16', 'float16', 'float64']);
    // Each scan stores each distinct excerpt once, numbered from 0; record rows hold no token strings.
    const distinct = (list: NeuronRecord[]) => new Set(list.flatMap((r) => allExcerptsOf(r).map((e) => JSON.stringify(e.tokens))));
    const countOf = (scanId: string) => result.excerpts.filter(([s]) => s === scanId).length;
    expect(countOf('a')).toBe(distinct(records).size);
    expect(countOf('b')).toBe(distinct([...records.slice(0, 3), FOREIGN_RECORD as NeuronRecord]).size);
    expect(countOf('a')).toBeLessThan(records.reduce((n, r) => n + allExcerptsOf(r).length, 0));
    expect(result.excerpts.filter(([s]) => s === 'a').map(([, i]) => i)).toEqual(Array.from({ length: countOf('a') }, (_, i) => i));
    const tokensOf = (list: NeuronRecord[]) => new Set(list.flatMap((r) => allExcerptsOf(r).flatMap((e) => e.tokens))).size;
    expect(result.vocabulary).toEqual([
      ['a', tokensOf(records)],
      ['b', tokensOf([...records.slice(0, 3), FOREIGN_RECORD as NeuronRecord])],
    ]);
    expect(result.recordRowsHaveTokens).toBe(false);
    expect(result.explanations).toEqual([{ layer: 0, neuron: 1, explanation: 'commas', order: 0, createdAt: 1500 }]);
    expect(result.inputs).toEqual({ documents: [{ text: 'some text', source: 'x.txt' }] });
    expect(result.bytes[0]).toBeGreaterThan(1000); // counted again from the new rows (it said 123)
    expect(result.bytes[1]).toBeGreaterThan(500);
    expect(result.failed).toMatchObject({ isStoreError: true });
    expect(result.failed!.message).toMatch(new RegExp(`^cannot open the Neurolens database "${db}-broken": AbortError: `));
    expect(result.brokenUntouched).toBe(true);
    expect(result.brokenVersion).toBe(2);
  });

  it('migrates a v3 store to v4: every stored record gets its summary, explanations their headline score, a damaged record is skipped', async () => {
    const result = await inPage(
      async (h, { name, records, foreign, init }) => {
        // A database as v3 code left it: compact records referring to excerpts stored once per scan.
        const v3 = await h.openNeurolensDb(name, { version: 3 });
        const old = { status: 'done', progress: 1, createdAt: 1000, updatedAt: 1000, bytes: 5 };
        await v3.put('scans', { id: 'a', ...init, ...old } as never);
        await v3.put('scans', { id: 'b', ...init, name: 'second', ...old } as never);
        const writeScan = async (scanId: string, list: unknown[]) => {
          const table = new h.ExcerptTable();
          const compact = list.map((r) => h.compactNeuronRecord(r as never, table, 'lossless'));
          for (let i = 0; i < table.size; i++) await v3.put('excerpts', { scanId, index: i, hash: table.hash(i), tokenIds: table.tokenIds(i) });
          await v3.put('vocabulary', { scanId, firstId: 0, tokens: table.vocabulary });
          for (const c of compact) await v3.put('neuronRecords', { ...c, scanId } as never);
          return compact;
        };
        await writeScan('a', [...records, foreign]);
        // Scan b: one good record and one whose excerpt went missing.
        const [good, broken] = await writeScan('b', records.slice(0, 2));
        const own = Array.from(broken.excerpts).find((e) => !Array.from(good.excerpts).includes(e))!;
        await v3.delete('excerpts', ['b', own]);
        // Explanations of neuron 0:1: one with Neurolens scores (and a simulation), one with a paper simulation only, one unscored.
        const simulation = (explanation: string, score: number) => ({
          scanId: 'a', layer: 0, neuron: 1, explanation,
          scoredExplanation: { explanation, scored_simulation: { scored_sequence_simulations: [], ev_correlation_score: score, rsquared_score: null, absolute_dev_explained_score: null } },
          resultsFields: { neuron_id: { layer_index: 0, neuron_index: 1 } },
        });
        for (const [order, explanation] of ['commas', 'quotes', 'unscored'].entries()) {
          await v3.put('explanations', { scanId: 'a', layer: 0, neuron: 1, explanation, order, createdAt: 1500 });
        }
        await v3.put('simulations', simulation('commas', 0.2) as never);
        await v3.put('simulations', simulation('quotes', 0.4) as never);
        await v3.put('scores', { scanId: 'a', layer: 0, neuron: 1, explanation: 'commas', scores: { explanation: 'commas', all: { ev_correlation_score: 0.75 } } } as never);
        v3.close();

        const store = await h.NeurolensStore.open(name);
        const columns = await store.listNeuronSummaries('a');
        const summaries = columns.flatMap((c) => Array.from(c.present).flatMap((p, n) => (p ? [h.neuronSummaries.summaryAt(c, n)] : [])));
        const out = {
          version: store.version,
          layers: columns.map((c) => [c.layer, c.present.length]),
          summaries,
          b: (await store.listNeuronSummaries('b')).flatMap((c) => Array.from(c.present).flatMap((p, n) => (p ? [[c.layer, n]] : []))),
          bRecords: (await store.listNeuronIds('b')).length,
          explanations: (await store.listExplanations('a', { layer: 0, neuron: 1 })).map((e) => [e.explanation, e.score]),
          bytes: (await store.getScan('a'))!.bytes,
        };
        store.close();
        return out;
      },
      { name: db, records, foreign: FOREIGN_RECORD, init: SCAN_INIT },
    );
    expect(result.version).toBe(4);
    expect(result.layers).toEqual([[0, D_MLP], [1, D_MLP], [7, 1235]]);
    // The summary of each record is what the record itself gives.
    expect(result.summaries).toEqual([...records, FOREIGN_RECORD as NeuronRecord].map(summarizeNeuronRecord));
    expect(result.summaries[0]!.peaks.length).toBeGreaterThan(0);
    // The damaged record stays (it shows its error when opened) but has no summary; the database opened.
    expect(result.bRecords).toBe(2);
    expect(result.b).toEqual([[records[0].neuron_id.layer_index, records[0].neuron_id.neuron_index]]);
    // Neurolens' scores win over the simulation's; a simulation alone gives the score; unscored stays unscored.
    expect(result.explanations).toEqual([
      ['commas', 0.75],
      ['quotes', 0.4],
      ['unscored', undefined],
    ]);
    expect(result.bytes).toBeGreaterThan(1000);
  });

  it('summaries and headline scores are written with records, imports, scores and simulations, and deleted with the scan', async () => {
    const resultsText = serializeJsonl([simulationResults(0, 2, ['the letter t', 'quotes'])], 'NeuronSimulationResults');
    const result = await inPage(
      async (h, { name, records, init, recordsJsonl, resultsText }) => {
        const store = await h.NeurolensStore.open(name);
        const flat = async (scanId: string) =>
          (await store.listNeuronSummaries(scanId)).flatMap((c) => Array.from(c.present).flatMap((p, n) => (p ? [h.neuronSummaries.summaryAt(c, n)] : [])));
        const scan = await store.createScan({ ...init, status: 'done', progress: 1 });
        // Written in two parts, the second replacing a record of the first.
        await store.putNeuronRecords(scan.id, records.slice(0, 6));
        await store.putNeuronRecords(scan.id, records.slice(5));
        const written = await flat(scan.id);
        const imported = await h.importExport.importFiles(store, [
          { name: 'records.jsonl', bytes: new TextEncoder().encode(recordsJsonl) },
          { name: 'results.jsonl', bytes: new TextEncoder().encode(resultsText) },
        ]);
        const fromImport = await flat(imported.imported[0].scan.id);
        const importedScores = (await store.listExplanations(imported.imported[0].scan.id, { layer: 0, neuron: 2 })).map((e) => [e.explanation, e.score]);
        const bundle = await h.importExport.exportScanBundle(store, imported.imported[0].scan.id);
        const fromBundle = await h.importExport.importScanBundle(store, bundle);
        const bundleSummaries = await flat(fromBundle.scan.id);
        const bundleScores = (await store.listExplanations(fromBundle.scan.id, { layer: 0, neuron: 2 })).map((e) => [e.explanation, e.score]);
        // Scores: Neurolens' own replace the simulation's; a later simulation does not undo them.
        const id = imported.imported[0].scan.id;
        await store.putScores(id, { layer: 0, neuron: 2 }, { explanation: 'quotes', all: { ev_correlation_score: 0.9 } } as never);
        await h.importExport.importPaperText(store, resultsText, { scanId: id });
        const afterScores = (await store.listExplanations(id, { layer: 0, neuron: 2 })).map((e) => [e.explanation, e.score]);
        await store.deleteScan(id);
        const afterDelete = await store.listNeuronSummaries(id);
        const dump = await h.dumpDb(name);
        store.close();
        return {
          written,
          fromImport,
          bundleSummaries,
          importedScores,
          bundleScores,
          afterScores,
          afterDelete,
          summaryRows: (dump.neuronSummaries as { scanId: string }[]).map((r) => r.scanId),
          ids: [scan.id, fromBundle.scan.id, id],
        };
      },
      { name: db, records, init: SCAN_INIT, recordsJsonl, resultsText },
    );
    const expected = records.map(summarizeNeuronRecord);
    expect(result.written).toEqual(expected);
    expect(result.fromImport).toEqual(expected);
    expect(result.bundleSummaries).toEqual(expected);
    expect(result.importedScores).toEqual([
      ['the letter t', 0.1],
      ['quotes', 0.2],
    ]);
    expect(result.bundleScores).toEqual(result.importedScores);
    expect(result.afterScores).toEqual([
      ['the letter t', 0.1],
      ['quotes', 0.9],
    ]);
    expect(result.afterDelete).toEqual([]);
    expect(new Set(result.summaryRows)).toEqual(new Set([result.ids[0], result.ids[1]]));
  });

  it('refuses a database written by a newer schema version, and a store closed by an upgrade elsewhere', async () => {
    const result = await inPage(
      async (h, name) => {
        const future = await h.openDB(name, h.DB_VERSION + 1, { upgrade: (d) => void d.createObjectStore('scans', { keyPath: 'id' }) });
        future.close();
        const newer = await h.errorOf(() => h.NeurolensStore.open(name));
        const other = `${name}-b`;
        const store = await h.NeurolensStore.open(other);
        // Another tab opening a higher version makes this connection step aside.
        const upgrader = await h.openDB(other, h.DB_VERSION + 1);
        upgrader.close();
        const afterUpgrade = await h.errorOf(() => store.listScans());
        // A connection to an older version that never lets go (no versionchange handler): give up, clearly.
        (await h.openNeurolensDb(`${name}-e`, { version: 1 })).close();
        const holder = await new Promise<IDBDatabase>((resolve, reject) => {
          const request = indexedDB.open(`${name}-e`, 1);
          request.onsuccess = () => resolve(request.result);
          request.onerror = () => reject(request.error);
        });
        const started = performance.now();
        const blocked = await h.errorOf(() => h.NeurolensStore.open(`${name}-e`, { blockedTimeoutMs: 300 }));
        const waited = performance.now() - started;
        holder.close();
        // An upgrade step that fails (here: a damaged v1 database lacking most stores) aborts the
        // whole upgrade: the database keeps its old version and its rows.
        const damaged = await h.openDB(`${name}-f`, 1, { upgrade: (d) => void d.createObjectStore('scans', { keyPath: 'id' }) });
        await damaged.put('scans', { id: 'x', name: 'kept' });
        damaged.close();
        const failedUpgrade = await h.errorOf(() => h.NeurolensStore.open(`${name}-f`));
        const reopened = await h.openDB(`${name}-f`);
        const afterFailure = { version: reopened.version, stores: Array.from(reopened.objectStoreNames), rows: await reopened.getAll('scans') };
        reopened.close();
        const later = await h.NeurolensStore.open(`${name}-e`);
        const laterVersion = later.version;
        later.close();
        return { newer, afterUpgrade, blocked, waited, laterVersion, failedUpgrade, afterFailure };
      },
      db,
    );
    expect(result.newer).toMatchObject({
      isStoreError: true,
      message: `the Neurolens database "${db}" was written by a newer version of Neurolens (this one reads schema version ${DB_VERSION}); update the app`,
    });
    expect(result.blocked).toMatchObject({
      isStoreError: true,
      message: 'another tab keeps an older version of the Neurolens database open; close or reload it and try again',
    });
    expect(result.waited).toBeGreaterThanOrEqual(290);
    expect(result.waited).toBeLessThan(5000);
    expect(result.laterVersion).toBe(DB_VERSION);
    expect(result.failedUpgrade).toMatchObject({ isStoreError: true });
    expect(result.failedUpgrade!.message).toMatch(new RegExp(`^cannot open the Neurolens database "${db}-f": AbortError: `));
    expect(result.afterFailure).toEqual({ version: 1, stores: ['scans'], rows: [{ id: 'x', name: 'kept' }] });
    expect(result.afterUpgrade).toMatchObject({
      isStoreError: true,
      message: 'the Neurolens database is not available: another tab upgraded the Neurolens database; reload this page',
    });
  });

  it('scans: create, validate, update, list; checkpoints through runScan survive as ArrayBuffers', async () => {
    const result = await inPage(
      async (h, { name, init }) => {
        const store = await h.NeurolensStore.open(name);
        const a = await store.createScan({ ...init });
        const bad = await h.errorOf(() => store.createScan({ ...init, layers: [0, -1] }));
        const badStatus = await h.errorOf(() => store.updateScan(a.id, { status: 'exploded' as never }));
        const badField = await h.errorOf(() => store.updateScan(a.id, { bytes: 5 } as never));
        const duplicate = await h.errorOf(() => store.createScan({ ...init, id: a.id }));
        const missing = await h.errorOf(() => store.updateScan('nope', { progress: 0.5 }));
        const updated = await store.updateScan(a.id, { status: 'paused', progress: 0.25 });

        // A real scan checkpoints into the store and a second run resumes from it.
        const excerpts = Array.from({ length: 30 }, (_, i) => Array.from({ length: 6 }, (_, t) => (i * 7 + t * 3) % 23));
        const source = async (batch: number[][]) => {
          const data = new Float32Array(batch.length * 6 * 4);
          batch.forEach((tokens, b) => tokens.forEach((id, t) => { for (let j = 0; j < 4; j++) data[(b * 6 + t) * 4 + j] = Math.sin(id * 1.7 + j) * (j + 1); }));
          return new Map([[0, data]]);
        };
        const settings = { layers: [0], dMlp: 4, topK: 3, randomSampleSize: 4, seed: 1 };
        const checkpoint = store.checkpointStoreFor(a.id);
        const first = await h.runScan({ ...settings, source, excerpts, checkpoint, checkpointEvery: 7 });
        const saved = await store.loadCheckpoint(a.id);
        const second = await h.runScan({ ...settings, source, excerpts, checkpoint });
        const same = first.stats.serialize().every((buffer, i) => {
          const other = new Uint8Array(second.stats.serialize()[i]);
          return new Uint8Array(buffer).every((byte, k) => other[k] === byte) && other.length === buffer.byteLength;
        });
        const withCheckpoint = (await store.getScan(a.id))!.bytes;
        await store.deleteCheckpoint(a.id);
        const afterDelete = (await store.getScan(a.id))!.bytes;
        store.close();
        return {
          a,
          bad,
          badStatus,
          badField,
          duplicate,
          missing,
          updated,
          saved: saved && { excerptsDone: saved.excerptsDone, isBuffers: saved.state.every((b) => b instanceof ArrayBuffer), parts: saved.state.length },
          resumedFrom: second.resumedFrom,
          same,
          withCheckpoint,
          afterDelete,
        };
      },
      { name: db, init: SCAN_INIT },
    );
    expect(result.a).toMatchObject({ ...SCAN_INIT, status: 'running', progress: 0, bytes: 0 });
    expect(result.a.id).toMatch(/^[0-9a-f-]{32,36}$/);
    expect(result.bad?.message).toBe('scan layers must be an array of layer indices');
    expect(result.badStatus?.message).toBe('scan status must be one of running, paused, done, failed, imported, got "exploded"');
    expect(result.badField?.message).toBe('scan field "bytes" cannot be changed (changeable: name, status, progress, error, excerptCount, layers, topK, seed, model, corpus)');
    expect(result.duplicate?.message).toBe(`a scan with id "${result.a.id}" already exists`);
    expect(result.missing).toMatchObject({ isStoreError: true, message: 'there is no scan with id "nope"' });
    expect(result.updated).toMatchObject({ status: 'paused', progress: 0.25, createdAt: result.a.createdAt });
    expect(result.updated.updatedAt).toBeGreaterThanOrEqual(result.a.updatedAt);
    expect(result.saved).toEqual({ excerptsDone: 30, isBuffers: true, parts: expect.any(Number) });
    expect(result.saved!.parts).toBeGreaterThan(5);
    expect(result.resumedFrom).toBe(30);
    expect(result.same).toBe(true);
    expect(result.withCheckpoint).toBeGreaterThan(1000);
    expect(result.afterDelete).toBe(0);
  });

  it('records built by the scan in Node import in the browser and export back deep-equal (stored as float16)', async () => {
    const result = await inPage(
      async (h, { name, text }) => {
        const store = await h.NeurolensStore.open(name);
        const summary = await h.importExport.importPaperText(store, text, { newScan: { name: 'from node' } });
        const exported = await h.importExport.exportNeuronRecordsJsonl(store, summary.scan.id);
        const ids = await store.listNeuronIds(summary.scan.id);
        const one = await store.getNeuronRecordEntry(summary.scan.id, 1, 3);
        const usage = await store.storageUsage();
        store.close();
        return { summary, exported, ids, encoding: one?.encoding, usage };
      },
      { name: db, text: recordsJsonl },
    );
    expect(result.summary.neuronRecords).toBe(10);
    expect(result.summary.encodings).toEqual({ float16: 10, float32: 0, float64: 0 });
    expect(result.summary.scan).toMatchObject({ name: 'from node', status: 'imported', layers: [0, 1], topK: 5, progress: 1 });
    expect(result.encoding).toBe('float16');
    expect(result.ids).toEqual(LAYERS.flatMap((layer) => Array.from({ length: D_MLP }, (_, neuron) => ({ layer, neuron }))));
    expectSameJson(jsonLines(result.exported), jsonLines(recordsJsonl));
    expect(result.exported).toBe(recordsJsonl); // even byte-identical: same key order and number formatting
    // Per-scan size: more than the packed activations (2 bytes each), well under the JSON text.
    const values = records.reduce(
      (n, r) => n + [r.random_sample, ...(r.random_sample_by_quantile ?? []), r.most_positive_activation_records].flat().reduce((m, x) => m + x.activations.length, 0),
      0,
    );
    const scanUsage = result.usage.scans.find((s) => s.id === result.summary.scan.id)!;
    expect(scanUsage.bytes).toBeGreaterThan(values * 2);
    expect(scanUsage.bytes).toBeLessThan(recordsJsonl.length);
    expect(result.usage.usedBytes).toBeGreaterThan(0);
    expect(result.usage.quotaBytes).toBeGreaterThan(result.usage.usedBytes!);
  });

  it('records refer to excerpts stored once per scan, across writes; record rows hold no token strings', async () => {
    const result = await inPage(
      async (h, { name, records, init }) => {
        const store = await h.NeurolensStore.open(name);
        const scan = await store.createScan({ ...init });
        const rows = async () => {
          const dump = await h.dumpDb(name);
          const of = (rows: unknown[], scanId: string) => (rows as { scanId: string }[]).filter((r) => r.scanId === scanId);
          return {
            excerpts: of(dump.excerpts, scan.id).length,
            vocabulary: (of(dump.vocabulary, scan.id) as unknown as { firstId: number; tokens: string[] }[]).map((v) => [v.firstId, v.tokens.length]),
            records: of(dump.neuronRecords, scan.id).length,
          };
        };
        await store.putNeuronRecords(scan.id, records.slice(0, 5));
        const first = await rows();
        await store.putNeuronRecords(scan.id, records.slice(5));
        const second = await rows();
        await store.putNeuronRecords(scan.id, records); // replaces every record: no excerpt is new
        const again = await rows();
        const other = await store.createScan({ ...init, name: 'other' });
        await store.putNeuronRecords(other.id, records.slice(0, 1));
        const dump = await h.dumpDb(name);
        const back = await store.getNeuronRecords(scan.id, await store.listNeuronIds(scan.id));
        const excerptRow = dump.excerpts[0] as { tokenIds: { type: string } };
        // The same records in the v1/v2 layout (token strings in every record), for the size comparison.
        const legacyBytes = records.reduce((n, r) => n + h.approximateBytes(h.legacyRecordRow(scan.id, r, 'float16')), 0);
        const stored = (await store.getScan(scan.id))!.bytes;
        store.close();
        return {
          first,
          second,
          again,
          otherExcerpts: (dump.excerpts as { scanId: string }[]).filter((r) => r.scanId === other.id).length,
          back,
          tokenIdsType: excerptRow.tokenIds.type,
          recordRowsHaveTokens: JSON.stringify(dump.neuronRecords).includes('"tokens"'),
          legacyBytes,
          stored,
        };
      },
      { name: db, records, init: SCAN_INIT },
    );
    const excerptsOf = (list: NeuronRecord[]) => new Set(list.flatMap((r) => allExcerptsOf(r).map((e) => JSON.stringify(e.tokens))));
    const stringsOf = (list: NeuronRecord[]) => new Set(list.flatMap((r) => allExcerptsOf(r).flatMap((e) => e.tokens)));
    const listed = records.reduce((n, r) => n + allExcerptsOf(r).length, 0);
    expect(result.first).toEqual({ excerpts: excerptsOf(records.slice(0, 5)).size, vocabulary: [[0, stringsOf(records.slice(0, 5)).size]], records: 5 });
    // The second write adds only excerpts (and strings) the first did not bring.
    const allStrings = stringsOf(records).size;
    const firstStrings = stringsOf(records.slice(0, 5)).size;
    expect(result.second).toEqual({
      excerpts: excerptsOf(records).size,
      vocabulary: allStrings > firstStrings ? [[0, firstStrings], [firstStrings, allStrings - firstStrings]] : [[0, firstStrings]],
      records: 10,
    });
    expect(result.second.excerpts).toBeLessThan(listed / 2); // the random sample alone is shown by every record
    expect(result.again).toEqual(result.second);
    expect(result.otherExcerpts).toBe(excerptsOf(records.slice(0, 1)).size); // each scan has its own table
    expectSameJson(result.back, records);
    expect(result.tokenIdsType).toBe('Uint8Array'); // 12 distinct strings: ids fit in a byte
    expect(result.recordRowsHaveTokens).toBe(false);
    // Toy excerpts are 10 tokens long, so each record's own fields weigh more than in a real scan
    // (where the store-size bench measures the sizes); without shared excerpts this would exceed the v2 layout.
    console.log(`10 toy records: ${result.stored} bytes stored (excerpts, vocabulary, records), ${result.legacyBytes} in the v2 layout`);
    expect(result.stored).toBeLessThan(0.6 * result.legacyBytes);
  });

  it('paper formats round trip: foreign records (float64, -0, no dataclass_name, unknown fields) and simulation results', async () => {
    // Written as a Python tool would (-0.0 kept; JSON.stringify would write 0), pretty-printed.
    const recordText = `${serializeNeuronRecord(FOREIGN_RECORD as NeuronRecord, { indent: 2, addDataclassNames: false })}\n`;
    expect(recordText).toContain('-0.0');
    const resultsText = serializeJsonl([simulationResults(0, 2, ['the letter t', 'quotes']), simulationResults(1, 4, ['emoji 😀'])], 'NeuronSimulationResults');
    const result = await inPage(
      async (h, { name, recordText, resultsText }) => {
        const store = await h.NeurolensStore.open(name);
        const scan = await store.createScan({ name: 'mixed', model: { label: 'gpt2' }, corpus: { name: 'c', fingerprint: '' }, layers: [0, 1, 7], topK: 1, seed: 0, excerptCount: 0 });
        const a = await h.importExport.importPaperText(store, recordText, { scanId: scan.id }, { expect: 'NeuronRecord' });
        const b = await h.importExport.importPaperText(store, resultsText, { scanId: scan.id });
        const record = await h.importExport.exportNeuronRecordJson(store, scan.id, { layer: 7, neuron: 1234 }, { indent: 2 });
        const results = await h.importExport.exportSimulationResultsJsonl(store, scan.id);
        const explanations = await store.listExplanations(scan.id, { layer: 0, neuron: 2 });
        const entry = await store.getNeuronRecordEntry(scan.id, 7, 1234);
        store.close();
        return { a: a.encodings, b: b.simulationResults, record, results, explanations, encoding: entry?.encoding };
      },
      { name: db, recordText, resultsText },
    );
    expect(result.a).toEqual({ float16: 0, float32: 0, float64: 1 });
    expect(result.encoding).toBe('float64');
    expectSameJson(JSON.parse(result.record), FOREIGN_RECORD);
    expect(result.b).toBe(2);
    expectSameJson(jsonLines(result.results), jsonLines(resultsText));
    expect(result.explanations.map((e) => [e.explanation, e.order, e.source])).toEqual([
      ['the letter t', 0, 'imported'],
      ['quotes', 1, 'imported'],
    ]);
  });

  it('refuses malformed imports with exact messages and leaves every stored row untouched', async () => {
    const good = recordsJsonl.trimEnd().split('\n');
    const second = JSON.parse(good[1]);
    const lengthMismatch = structuredClone(second);
    lengthMismatch.most_positive_activation_records[0].activations.pop();
    const n = second.most_positive_activation_records[0].tokens.length;
    const wrongName = { ...second, dataclass_name: 'NeuronRecrd' };
    const withNaN = good[1].replace(/("activations":\[)([^,\]]+)/, '$1NaN');
    expect(withNaN).not.toBe(good[1]);
    const badScale = simulationResults(0, 1, ['x']);
    (badScale.scored_explanations[0].scored_simulation.scored_sequence_simulations[0].simulation as { activation_scale: string }).activation_scale = 'percent';
    const repeated = simulationResults(0, 1, ['same', 'same']);
    const cases: { label: string; text: string; expect?: 'NeuronRecord'; message: string | RegExp }[] = [
      { label: 'truncated JSON Lines', text: [good[0], good[1], good[2].slice(0, 40)].join('\n'), message: /^line 3: not valid JSON \(.+\)$/ },
      { label: 'truncated pretty JSON', text: JSON.stringify(second, null, 2).slice(0, 300), message: /^(line \d+: )?not valid JSON \(.+\)$/ },
      { label: 'empty', text: '  \n', message: 'empty input: expected a JSON object or JSON Lines' },
      { label: 'wrong dataclass_name', text: [good[0], JSON.stringify(wrongName)].join('\n'), message: 'line 2: dataclass_name: expected "NeuronRecord" or "NeuronSimulationResults", got string "NeuronRecrd"' },
      {
        label: 'wrong dataclass_name (records only)',
        text: JSON.stringify(wrongName),
        expect: 'NeuronRecord',
        message: 'dataclass_name: expected "NeuronRecord", got string "NeuronRecrd"',
      },
      { label: 'length mismatch', text: [good[0], JSON.stringify(lengthMismatch)].join('\n'), message: `line 2: most_positive_activation_records[0].activations: expected ${n} numbers, got ${n - 1}` },
      { label: 'NaN', text: [good[0], withNaN].join('\n'), message: 'line 2: not valid JSON: NaN is not a JSON number (activations and scores must be finite numbers)' },
      { label: 'a neuron twice', text: [good[0], good[1], good[0]].join('\n'), message: 'line 3: neuron_id: a second NeuronRecord of layer 0 neuron 0 (the first is at line 1); a file holds one per neuron' },
      { label: 'bad activation_scale', text: JSON.stringify(badScale), message: 'scored_explanations[0].scored_simulation.scored_sequence_simulations[0].simulation.activation_scale: expected one of "neuron_activations", "simulated_normalized_activations", got string "percent"' },
      { label: 'repeated explanation', text: `${JSON.stringify(simulationResults(0, 2, ['y']))}\n${JSON.stringify(repeated)}\n`, message: 'line 2: scored_explanations[1].explanation: repeats the explanation of scored_explanations[0]' },
    ];
    const result = await inPage(
      async (h, { name, cases, goodText }) => {
        const store = await h.NeurolensStore.open(name);
        const scan = await store.createScan({ name: 'target', model: { label: 'm' }, corpus: { name: 'c', fingerprint: '' }, layers: [0, 1], topK: 5, seed: 0, excerptCount: 0 });
        await h.importExport.importPaperText(store, goodText, { scanId: scan.id });
        const before = await h.dumpDb(name);
        const outcomes: Record<string, unknown> = {};
        for (const c of cases) {
          outcomes[`${c.label} → existing scan`] = await h.errorOf(() => h.importExport.importPaperText(store, c.text, { scanId: scan.id }, { expect: c.expect }));
          outcomes[`${c.label} → new scan`] = await h.errorOf(() => h.importExport.importPaperText(store, c.text, { newScan: { name: 'x' } }, { expect: c.expect }));
        }
        outcomes['missing scan'] = await h.errorOf(() => h.importExport.importPaperText(store, goodText, { scanId: 'nope' }));
        const after = await h.dumpDb(name);
        store.close();
        return { outcomes, before, after };
      },
      { name: db, cases: cases.map((c) => ({ label: c.label, text: c.text, expect: c.expect })), goodText: `${good[0]}\n${good[5]}\n` },
    );
    for (const c of cases) {
      for (const target of ['existing scan', 'new scan']) {
        const outcome = result.outcomes[`${c.label} → ${target}`] as { name: string; message: string } | null;
        expect(outcome, `${c.label} → ${target}`).not.toBeNull();
        expect(outcome!.name, c.label).toBe('FormatError');
        if (typeof c.message === 'string') expect(outcome!.message, c.label).toBe(c.message);
        else expect(outcome!.message, c.label).toMatch(c.message);
      }
    }
    expect(result.outcomes['missing scan']).toMatchObject({ name: 'StoreError', message: 'there is no scan with id "nope"' });
    expect(result.before.neuronRecords).toHaveLength(2);
    expect(result.after).toEqual(result.before);
  });

  it('putNeuronRecords is all or nothing: a validation failure, an injected abort mid-transaction, a simulated quota error', async () => {
    const broken = structuredClone(records[2]);
    broken.random_sample[1].activations.push(0.5);
    const changed = records.slice(0, 4).map((r) => ({ ...r, mean: 123.5 }));
    const result = await inPage(
      async (h, { name, records, broken, changed }) => {
        // Fault injection: every put of a write transaction is logged; `failWhen` picks the one that throws.
        let puts: string[] = [];
        let failWhen: ((storeName: string) => boolean) | undefined;
        let failWith: () => Error = () => new Error('injected failure');
        const store = await h.NeurolensStore.open(name, {
          afterPut: (storeName) => {
            puts.push(storeName);
            if (failWhen?.(storeName)) throw failWith();
          },
          estimate: async () => ({ usage: 52_428_800, quota: 62_914_560 }),
        });
        const scan = await store.createScan({ name: 's', model: { label: 'm' }, corpus: { name: 'c', fingerprint: '' }, layers: [0, 1], topK: 5, seed: 0, excerptCount: 48 });
        await store.putNeuronRecords(scan.id, records.slice(0, 3));
        const before = await h.dumpDb(name);
        const outcomes: Record<string, unknown> = {};
        const logs: Record<string, string[]> = {};
        const attempt = async (label: string, action: () => Promise<unknown>) => {
          puts = [];
          outcomes[label] = await h.errorOf(action);
          logs[label] = puts;
        };
        await attempt('validation', () => store.putNeuronRecords(scan.id, [records[5], records[6], broken, records[7]]));
        await attempt('twice', () => store.putNeuronRecords(scan.id, [records[5], records[5]]));
        const nthRecord = (n: number) => (storeName: string) => storeName === 'neuronRecords' && puts.filter((p) => p === storeName).length === n;
        failWhen = nthRecord(3); // two changed records are already written in the transaction
        await attempt('abort', () => store.putNeuronRecords(scan.id, changed));
        failWhen = nthRecord(1); // new records: their new excerpts are already written in the transaction
        await attempt('abortAfterExcerpts', () => store.putNeuronRecords(scan.id, records.slice(5)));
        failWhen = nthRecord(3);
        failWith = () => new DOMException('simulated: the quota has been exceeded', 'QuotaExceededError');
        await attempt('quota', () => store.putNeuronRecords(scan.id, changed));
        failWhen = () => true;
        await attempt('quotaOnCache', () => store.responseCache().set('k', { choices: [] } as never));
        failWhen = undefined;
        const after = await h.dumpDb(name);
        await store.putNeuronRecords(scan.id, changed);
        const mean = (await store.getNeuronRecord(scan.id, changed[3].neuron_id.layer_index, changed[3].neuron_id.neuron_index))?.mean;
        store.close();
        return { outcomes, logs, before, after, mean };
      },
      { name: db, records, broken, changed },
    );
    expect(result.outcomes.validation).toMatchObject({
      name: 'FormatError',
      message: `[2].random_sample[1].activations: expected ${broken.random_sample[1].tokens.length} numbers, got ${broken.random_sample[1].tokens.length + 1}`,
    });
    expect(result.outcomes.twice).toMatchObject({ name: 'FormatError', message: '[1].neuron_id: a second record of neuron 1:0' });
    expect(result.outcomes.abort).toMatchObject({ name: 'Error', message: 'injected failure' });
    expect(result.outcomes.abortAfterExcerpts).toMatchObject({ name: 'Error', message: 'injected failure' });
    expect(result.logs.abortAfterExcerpts.filter((p) => p === 'excerpts').length).toBeGreaterThan(0);
    expect(result.logs.abortAfterExcerpts.at(-1)).toBe('neuronRecords');
    expect(result.logs.validation).toEqual([]); // refused before any transaction
    expect(result.outcomes.quota).toMatchObject({
      isStorageFull: true,
      isStoreError: true,
      message: 'browser storage is full: 52.4 MB used of 62.9 MB; delete a dataset or export it first',
      usedBytes: 52_428_800,
      quotaBytes: 62_914_560,
    });
    expect(result.outcomes.quotaOnCache).toMatchObject({ isStorageFull: true });
    expect(result.after).toEqual(result.before);
    expect(result.mean).toBe(123.5); // the same write goes through once nothing fails
  });

  it('a real quota limit (DevTools quota override): StorageFullError and nothing half-written', async () => {
    // A fresh browser context, so the origin's storage starts empty under the overridden quota
    // (Chromium applies the override to storage opened after it is set).
    const context = await browser.newContext();
    try {
      const quotaPage = await context.newPage();
      const cdp = await context.newCDPSession(quotaPage);
      await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: 3_000_000 });
      await openHarness(quotaPage);
      const result = await inPage(
        async (h, { name }) => {
          const store = await h.NeurolensStore.open(name);
          const scan = await store.createScan({ name: 'big', model: { label: 'm' }, corpus: { name: 'c', fingerprint: '' }, layers: [0], topK: 1, seed: 0, excerptCount: 1 });
          // 40 records of 8 MB random float64 activations in all: far over the 3 MB quota.
          let seed = 1;
          const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
          function recordOf(neuron: number, excerpts: number) {
            return {
              neuron_id: { layer_index: 0, neuron_index: neuron },
              random_sample: [],
              random_sample_by_quantile: null,
              quantile_boundaries: null,
              mean: null,
              variance: null,
              skewness: null,
              kurtosis: null,
              // Each record brings a new excerpt and 40 new token strings: the failing write holds excerpt rows too.
              most_positive_activation_records: Array.from({ length: excerpts }, () => {
                const activations = Array.from({ length: 500 }, () => random() * 10 - 5);
                return { tokens: activations.map((_, k) => `w${neuron}:${k % 40}`), activations };
              }),
            };
          }
          const small = await h.errorOf(() => store.putNeuronRecords(scan.id, [recordOf(0, 2)]));
          const before = await h.dumpDb(name);
          const error = await h.errorOf(() => store.putNeuronRecords(scan.id, Array.from({ length: 40 }, (_, n) => recordOf(n, 50))));
          const after = await h.dumpDb(name);
          const ids = await store.listNeuronIds(scan.id);
          const rows = { excerpts: after.excerpts.length, vocabulary: (after.vocabulary as { tokens: string[] }[]).reduce((n, v) => n + v.tokens.length, 0) };
          store.close();
          return { small, error, same: JSON.stringify(before) === JSON.stringify(after), ids, rows };
        },
        { name: db },
        quotaPage,
      );
      expect(result.small).toBeNull(); // a write that fits goes through
      expect(result.error).toMatchObject({ isStorageFull: true, isStoreError: true });
      expect(result.error!.message).toMatch(/^browser storage is full: \d+\.\d MB used of \d+\.\d MB; delete a dataset or export it first$/);
      expect(result.same).toBe(true);
      expect(result.ids).toEqual([{ layer: 0, neuron: 0 }]);
      expect(result.rows).toEqual({ excerpts: 1, vocabulary: 40 }); // only the first write's excerpt and strings
      await cdp.send('Storage.overrideQuotaForOrigin', { origin });
    } finally {
      await context.close();
    }
  });

  it('deleteScan removes everything of that scan in one transaction and nothing of another', async () => {
    const pipeline = {
      neuron_id: { layer_index: 0, neuron_index: 2 },
      explanations: ['first idea', 'second idea'],
      simulation_results: simulationResults(0, 2, ['first idea', 'second idea']),
      scores: [
        { explanation: 'first idea', top: {}, random: {}, all: { ev_correlation_score: 0.1 }, simulation_modes: ['logprob'] },
        { explanation: 'second idea', top: {}, random: {}, all: { ev_correlation_score: 0.2 }, simulation_modes: ['logprob'] },
      ],
      records_used: { explain: [0], score_top: [0], score_random: [0], calibration_top: [], calibration_random: [] },
    };
    const result = await inPage(
      async (h, { name, records, pipeline }) => {
        const store = await h.NeurolensStore.open(name);
        const init = { model: { label: 'm' }, corpus: { name: 'c', fingerprint: '' }, layers: [0, 1], topK: 5, seed: 0, excerptCount: 48 };
        const ids: string[] = [];
        for (const label of ['doomed', 'kept']) {
          const scan = await store.createScan({ ...init, name: label });
          ids.push(scan.id);
          await store.putNeuronRecords(scan.id, records);
          await store.saveCheckpoint(scan.id, { fingerprint: 'f', excerptsDone: 3, state: [new ArrayBuffer(64)] });
          await store.putPipelineResult(scan.id, pipeline as never, 'gpt-test');
          await store.putProbe({ scanId: scan.id, text: 'hi there', tokens: ['hi', ' there'], dMlp: 2, layers: [{ layer: 0, data: new Float32Array([1, 2, 3, 4]) }] });
        }
        const loose = await store.putProbe({ text: 'no scan', tokens: ['a'], dMlp: 1, layers: [{ layer: 1, data: new Float32Array([-0]) }] });
        const keptBefore = (await store.getScan(ids[1]))!;
        const deleted = await store.deleteScan(ids[0]);
        const again = await store.deleteScan(ids[0]);
        const dump = await h.dumpDb(name);
        const owners = Object.fromEntries(
          Object.entries(dump).map(([storeName, rows]) => [
            storeName,
            (rows as Record<string, unknown>[]).map((r) => (storeName === 'scans' ? r.id : r.scanId ?? null)),
          ]),
        );
        const kept = {
          scan: await store.getScan(ids[1]),
          records: (await store.listNeuronIds(ids[1])).length,
          results: await store.getSimulationResults(ids[1], { layer: 0, neuron: 2 }),
          scores: await store.getScores(ids[1], { layer: 0, neuron: 2 }, 'second idea'),
          probes: (await store.listProbes(ids[1])).map((p) => ({ text: p.text, data: Array.from(p.layers[0].data) })),
          allProbes: (await store.listProbes()).length,
        };
        const looseAfter = await store.getProbe(loose.id);
        const usage = await store.storageUsage();
        store.close();
        return { ids, deleted, again, owners, kept, keptBefore, looseData: looseAfter && Array.from(looseAfter.layers[0].data), usage };
      },
      { name: db, records, pipeline },
    );
    const [doomed, kept] = result.ids;
    expect(result.deleted).toBe(true);
    expect(result.again).toBe(false);
    for (const [storeName, owners] of Object.entries(result.owners)) {
      expect(owners, storeName).not.toContain(doomed);
    }
    expect(result.owners.neuronRecords).toHaveLength(records.length);
    // The kept scan's excerpt table is whole; the deleted one's is gone (checked above for every store).
    const distinctExcerpts = new Set(records.flatMap((r) => allExcerptsOf(r).map((e) => JSON.stringify(e.tokens)))).size;
    expect(result.owners.excerpts).toEqual(Array(distinctExcerpts).fill(kept));
    expect(result.owners.vocabulary).toEqual([kept]);
    expect(result.owners.explanations).toEqual([kept, kept]);
    expect(result.owners.simulations).toEqual([kept, kept]);
    expect(result.owners.scores).toEqual([kept, kept]);
    expect(result.owners.checkpoints).toEqual([kept]);
    expect(result.owners.probes.sort()).toEqual([kept, null].sort());
    expect(result.kept.scan).toEqual(result.keptBefore);
    expect(result.kept.records).toBe(records.length);
    expectSameJson(result.kept.results, simulationResults(0, 2, ['first idea', 'second idea']));
    expect(result.kept.scores).toMatchObject({ explanation: 'second idea', all: { ev_correlation_score: 0.2 } });
    expect(result.kept.probes).toEqual([{ text: 'hi there', data: [1, 2, 3, 4] }]);
    expect(result.kept.allProbes).toBe(2);
    expect(Object.is(result.looseData![0], -0)).toBe(true);
    expect(result.usage.scans.map((s) => s.id)).toEqual([kept]);
  });

  it('bundle: export → import as a new scan gives back everything; the file is gzip JSON Lines other tools can read', async () => {
    const pipeline = {
      neuron_id: { layer_index: 1, neuron_index: 4 },
      explanations: ['a', 'b'],
      simulation_results: simulationResults(1, 4, ['b', 'a']),
      scores: [{ explanation: 'a', top: {}, random: {}, all: { ev_correlation_score: 0.5 }, simulation_modes: ['sampled'] }],
      records_used: { explain: [0], score_top: [0], score_random: [0], calibration_top: [], calibration_random: [] },
    };
    const result = await inPage(
      async (h, { name, records, pipeline, foreign, init }) => {
        const store = await h.NeurolensStore.open(name);
        const scan = await store.createScan({ ...init, status: 'done', progress: 1 });
        await store.putNeuronRecords(scan.id, [...records, foreign as never]);
        await store.putPipelineResult(scan.id, pipeline as never, 'explainer-x');
        await store.putExplanations(scan.id, { layer: 0, neuron: 0 }, ['unscored idea'], 'explainer-x');
        const blob = await h.importExport.exportScanBundle(store, scan.id);
        const bytes = Array.from(new Uint8Array(await blob.arrayBuffer()));
        const imported = await h.importExport.importScanBundle(store, blob);
        // A bundle from before the mean-token table was dropped: its mean_tokens items are checked and left out.
        const lines = (await new Response(blob.stream().pipeThrough(new DecompressionStream('gzip'))).text()).trimEnd().split('\n');
        const header = JSON.parse(lines[0]);
        const withTable = [
          JSON.stringify({ ...header, counts: { ...header.counts, mean_tokens: 1 } }),
          ...lines.slice(1),
          JSON.stringify({ type: 'mean_tokens', value: { layer: 1, neuron: 4, tokens: [{ tokenId: 9, token: '😀', meanActivation: 2.5, count: 2 }] } }),
        ].join('\n');
        const older = await h.importExport.importScanBundle(store, new TextEncoder().encode(withTable));
        const id = imported.scan.id;
        const collect = async (scanId: string) => ({
          records: await h.importExport.exportNeuronRecordsJsonl(store, scanId),
          results: await h.importExport.exportSimulationResultsJsonl(store, scanId),
          explanations: (await Promise.all([{ layer: 0, neuron: 0 }, { layer: 1, neuron: 4 }].map((n) => store.listExplanations(scanId, n)))).flat(),
          scores: await store.listScores(scanId),
          encodings: await Promise.all((await store.listNeuronIds(scanId)).map(async (n) => (await store.getNeuronRecordEntry(scanId, n.layer, n.neuron))!.encoding)),
        });
        const out = {
          scan: await store.getScan(scan.id),
          imported,
          original: await collect(scan.id),
          copy: await collect(id),
          older: { records: older.neuronRecords, collected: await collect(older.scan.id) },
          bytes,
          type: blob.type,
        };
        store.close();
        return out;
      },
      { name: db, records, pipeline, foreign: FOREIGN_RECORD, init: SCAN_INIT },
    );
    const { original, copy, imported, scan } = result;
    expect(imported.scan.id).not.toBe(scan!.id);
    expect(imported.scan).toMatchObject({ ...SCAN_INIT, status: 'imported', progress: 1 });
    expect(imported.neuronRecords).toBe(records.length + 1);
    expect(imported.encodings).toEqual({ float16: records.length, float32: 0, float64: 1 });
    expect(copy.encodings).toEqual(original.encodings);
    expect(copy.records).toBe(original.records);
    expectSameJson(jsonLines(copy.records).at(-1), FOREIGN_RECORD);
    expect(copy.results).toBe(original.results);
    // Scored explanations come back in the neuron's explanation order ('a' was listed first).
    const given = simulationResults(1, 4, ['b', 'a']);
    const back = jsonLines(copy.results) as NeuronSimulationResults[];
    expect(back).toHaveLength(1);
    expectSameJson(back[0], { ...given, scored_explanations: [given.scored_explanations[1], given.scored_explanations[0]] });
    expect(copy.explanations).toEqual(original.explanations);
    expect(copy.explanations.map((e) => [e.explanation, e.order, e.source])).toEqual([
      ['unscored idea', 0, 'explainer-x'],
      ['a', 0, 'explainer-x'],
      ['b', 1, 'explainer-x'],
    ]);
    expect(copy.scores).toEqual(original.scores);
    expect(result.older.records).toBe(records.length + 1);
    expect(result.older.collected).toEqual(original);
    expect(imported.scan.bytes).toBeGreaterThan(0);
    expect(Math.abs(imported.scan.bytes - scan!.bytes) / scan!.bytes).toBeLessThan(0.01);

    // The file itself, read with node:zlib rather than the code under test.
    const bytes = Uint8Array.from(result.bytes);
    expect(result.type).toBe('application/gzip');
    const lines = gunzipSync(bytes).toString('utf8').trimEnd().split('\n');
    const header = JSON.parse(lines[0]);
    expect(header).toMatchObject({
      format: 'neurolens-scan-bundle',
      version: 1,
      scan: { ...SCAN_INIT, status: 'done' },
      counts: { neuron_record: 11, simulation_results: 1, explanation: 3, explanation_scores: 1, mean_tokens: 0 },
    });
    const firstRecord = JSON.parse(lines[1]);
    expect(firstRecord.type).toBe('neuron_record');
    expectSameJson(firstRecord.value, records[0]);
    console.log(`bundle of ${records.length + 1} small records: ${bytes.length} bytes gzip, ${gunzipSync(bytes).length} bytes JSON`);
  });

  it('refuses bad bundles (bad gzip, newer version, not a bundle, cut short) without touching the store', async () => {
    const result = await inPage(
      async (h, { name, records, init }) => {
        const store = await h.NeurolensStore.open(name);
        const scan = await store.createScan({ ...init });
        await store.putNeuronRecords(scan.id, records.slice(0, 3));
        const blob = await h.importExport.exportScanBundle(store, scan.id);
        const bytes = new Uint8Array(await blob.arrayBuffer());
        const text = await new Response(blob.stream().pipeThrough(new DecompressionStream('gzip'))).text();
        const lines = text.trimEnd().split('\n');
        const gzip = async (s: string) => new Uint8Array(await new Response(new Blob([s]).stream().pipeThrough(new CompressionStream('gzip'))).arrayBuffer());
        const header = JSON.parse(lines[0]);
        const before = await h.dumpDb(name);
        const flipped = bytes.slice();
        for (let i = 100; i < 140; i++) flipped[i] ^= 0xa5;
        const outcomes = {
          badGzip: await h.errorOf(() => h.importExport.importScanBundle(store, flipped)),
          truncatedGzip: await h.errorOf(() => h.importExport.importScanBundle(store, bytes.slice(0, bytes.length - 30))),
          newer: await h.errorOf(async () => h.importExport.importScanBundle(store, await gzip([JSON.stringify({ ...header, version: 2 }), ...lines.slice(1)].join('\n')))),
          notBundle: await h.errorOf(() => h.importExport.importScanBundle(store, new TextEncoder().encode('PK\u0003\u0004 zip file'))),
          missingLine: await h.errorOf(async () => h.importExport.importScanBundle(store, await gzip(lines.slice(0, -1).join('\n')))),
          badRecord: await h.errorOf(async () =>
            h.importExport.importScanBundle(store, await gzip([lines[0], lines[1].replace(/"neuron_index":\d+/, '"neuron_index":-3'), ...lines.slice(2)].join('\n'))),
          ),
          badHeaderScan: await h.errorOf(async () =>
            h.importExport.importScanBundle(store, await gzip([JSON.stringify({ ...header, scan: { ...header.scan, name: '' } }), ...lines.slice(1)].join('\n'))),
          ),
        };
        const after = await h.dumpDb(name);
        store.close();
        return { outcomes, same: JSON.stringify(before) === JSON.stringify(after), scans: after.scans.length };
      },
      { name: db, records, init: SCAN_INIT },
    );
    const o = result.outcomes;
    expect(o.badGzip).toMatchObject({ isBundleError: true });
    expect(o.badGzip!.message).toMatch(/^the bundle is damaged: its gzip data cannot be decompressed \(.*\)$/);
    expect(o.truncatedGzip).toMatchObject({ isBundleError: true });
    expect(o.truncatedGzip!.message).toMatch(/^the bundle is damaged: its gzip data cannot be decompressed \(.*\)$|^the bundle is incomplete or damaged: /);
    expect(o.newer).toMatchObject({
      isBundleError: true,
      message: 'this bundle has format version 2, newer than this Neurolens reads (version 1); update Neurolens to import it',
    });
    expect(o.notBundle).toMatchObject({
      isBundleError: true,
      message: 'not a Neurolens scan bundle: expected a gzip file (.neurolens.json.gz), whose first bytes are 1f 8b',
    });
    expect(o.missingLine).toMatchObject({ message: 'the bundle is incomplete or damaged: its header lists 3 neuron_record items but it holds 2' });
    expect(o.badRecord).toMatchObject({ name: 'FormatError', message: 'line 2: value.neuron_id.neuron_index: expected a non-negative integer, got -3' });
    expect(o.badHeaderScan).toMatchObject({ isBundleError: true, message: 'damaged bundle header: scan name must be a non-empty string' });
    expect(result.same).toBe(true);
    expect(result.scans).toBe(1);
  });

  it('scan inputs are kept apart (getScan only), survive progress updates, stay out of bundles and go with deleteScan', async () => {
    const documents = Array.from({ length: 200 }, (_, i) => ({ text: `Document ${i}: ${'lorem ipsum '.repeat(50)}`, source: `corpus.jsonl line ${i + 1}` }));
    const result = await inPage(
      async (h, { name, init, documents, record }) => {
        const store = await h.NeurolensStore.open(name);
        const bad = await h.errorOf(() => store.createScan({ ...init, inputs: { documents: [{ text: 1 }] } as never }));
        const scan = await store.createScan({ ...init, inputs: { documents, randomSampleSize: 20, batchSize: 8, maxExcerpts: undefined } });
        const created = await store.getScan(scan.id);
        const bytesWithInputs = created!.bytes;
        for (let i = 1; i <= 5; i++) await store.updateScan(scan.id, { progress: i / 10 });
        await store.putNeuronRecords(scan.id, [record]);
        const listed = (await store.listScans())[0];
        const after = await store.getScan(scan.id);
        const bundle = await h.importExport.exportScanBundle(store, scan.id);
        const header = JSON.parse((await new Response(bundle.stream().pipeThrough(new DecompressionStream('gzip'))).text()).split('\n')[0]);
        const copy = await h.importExport.importScanBundle(store, bundle);
        const copyInputs = await store.getScanInputs(copy.scan.id);
        await store.deleteScan(scan.id);
        const inputsLeft = (await h.dumpDb(name)).scanInputs.length;
        store.close();
        return {
          bad,
          documents: created!.inputs!.documents.length,
          settings: { ...created!.inputs, documents: undefined },
          bytesWithInputs,
          listedHasInputs: 'inputs' in listed,
          afterDocuments: after!.inputs!.documents.length,
          progress: after!.progress,
          headerScanKeys: Object.keys(header.scan).sort(),
          copyInputs: copyInputs ?? null,
          inputsLeft,
        };
      },
      { name: db, init: SCAN_INIT, documents, record: records[0] },
    );
    expect(result.bad).toMatchObject({ isStoreError: true, message: 'scan inputs.documents[0] must be {text, source} strings' });
    expect(result.documents).toBe(200);
    expect(result.settings).toMatchObject({ randomSampleSize: 20, batchSize: 8 });
    expect(result.bytesWithInputs).toBeGreaterThan(documents.reduce((n, d) => n + d.text.length, 0));
    expect(result.listedHasInputs).toBe(false);
    expect(result.afterDocuments).toBe(200);
    expect(result.progress).toBe(0.5);
    expect(result.headerScanKeys).toEqual(['corpus', 'createdAt', 'excerptCount', 'layers', 'model', 'name', 'progress', 'seed', 'status', 'topK', 'updatedAt']);
    expect(result.copyInputs).toBeNull();
    expect(result.inputsLeft).toBe(0);
  });

  it('the app\'s file import/export: several paper files become one scan, bundles their own; a bad file is named and nothing is written', async () => {
    const perNeuron = records.slice(0, 3).map((r) => ({ name: `${r.neuron_id.layer_index}/${r.neuron_id.neuron_index}.json`, text: `${serializeNeuronRecord(r, { indent: 1 })}\n` }));
    const explanations = { name: 'explanations.jsonl', text: serializeJsonl([simulationResults(0, 1, ['commas'])], 'NeuronSimulationResults') };
    const result = await inPage(
      async (h, { name, files, explanations, init, records }) => {
        const store = await h.NeurolensStore.open(name);
        const source = await store.createScan({ ...init, name: 'Source scan: v1!' });
        await store.putNeuronRecords(source.id, records);
        const bundleFile = await h.importExport.exportScan(store, source.id, 'bundle');
        const recordsFile = await h.importExport.exportScan(store, source.id, 'records');
        const encode = (text: string) => new TextEncoder().encode(text);
        const before = await h.dumpDb(name);
        const badFile = await h.errorOf(() =>
          h.importExport.importFiles(store, [
            ...files.map((f) => ({ name: f.name, bytes: encode(f.text) })),
            { name: 'broken.jsonl', bytes: encode('{"dataclass_name": "NeuronRecord", "neuron_id": {}}\n') },
            { name: 'bundle.neurolens.json.gz', bytes: bundleFile.data as Uint8Array },
          ]),
        );
        const sameNeuron = await h.errorOf(() =>
          h.importExport.importFiles(store, [
            { name: 'a.json', bytes: encode(files[0].text) },
            { name: 'b.json', bytes: encode(files[0].text) },
          ]),
        );
        const binary = await h.errorOf(() => h.importExport.importFiles(store, [{ name: 'x.bin', bytes: new Uint8Array([0xff, 0xfe, 0x00, 0x81]) }]));
        const unchanged = JSON.stringify(await h.dumpDb(name)) === JSON.stringify(before);
        const ok = await h.importExport.importFiles(store, [
          ...files.map((f) => ({ name: f.name, bytes: encode(f.text) })),
          { name: explanations.name, bytes: encode(explanations.text) },
          { name: bundleFile.name, bytes: bundleFile.data as Uint8Array },
        ]);
        const paperScan = ok.imported[0].scan;
        const paperRecords = await h.importExport.exportNeuronRecordsJsonl(store, paperScan.id);
        const copyRecords = await h.importExport.exportNeuronRecordsJsonl(store, ok.imported[1].scan.id);
        store.close();
        return {
          bundleFile: { name: bundleFile.name, type: bundleFile.type, magic: Array.from((bundleFile.data as Uint8Array).slice(0, 2)) },
          recordsFile: { name: recordsFile.name, type: recordsFile.type, data: recordsFile.data as string },
          badFile,
          sameNeuron,
          binary,
          unchanged,
          summary: ok.summary,
          scans: ok.imported.map((i) => ({ name: i.scan.name, status: i.scan.status, records: i.neuronRecords, results: i.simulationResults })),
          paperRecords,
          copyRecords,
        };
      },
      { name: db, files: perNeuron, explanations, init: SCAN_INIT, records },
    );
    expect(result.bundleFile).toEqual({ name: 'Source-scan-v1.neurolens.json.gz', type: 'application/gzip', magic: [0x1f, 0x8b] });
    expect(result.recordsFile.name).toBe('Source-scan-v1.records.jsonl');
    expect(result.recordsFile.data).toBe(recordsJsonl);
    expect(result.badFile).toMatchObject({ name: 'FileImportError', message: 'broken.jsonl: neuron_id: missing required field "layer_index"' });
    expect(result.sameNeuron).toMatchObject({ name: 'FileImportError', message: 'b.json: a second NeuronRecord of layer 0 neuron 0 (the first is in a.json)' });
    expect(result.binary).toMatchObject({ name: 'FileImportError', message: 'x.bin: not UTF-8 text: expected JSON, JSON Lines or a .neurolens.json.gz bundle' });
    expect(result.unchanged).toBe(true);
    // The bundle's dataset is named apart from its source, still in this browser.
    expect(result.scans).toEqual([
      { name: '0/0 and 3 more', status: 'imported', records: 3, results: 1 },
      { name: 'Source scan: v1! (2)', status: 'imported', records: records.length, results: 0 },
    ]);
    expect(result.summary).toBe(`Imported ${3 + records.length} neuron records and explanations of 1 neuron into 2 new datasets.`);
    expectSameJson(jsonLines(result.paperRecords), records.slice(0, 3));
    expect(result.copyRecords).toBe(recordsJsonl);
  });

  it('the LLM response cache and the job store keep answers and steps across reopening', async () => {
    const result = await inPage(
      async (h, { name }) => {
        const answer = { id: 'c1', choices: [{ index: 0, message: { role: 'assistant', content: 'hello' }, finish_reason: 'stop', logprobs: null }] };
        let store = await h.NeurolensStore.open(name);
        await store.responseCache().set('key-1', answer as never);
        await store.jobStore().put('job-a', 'neuron/0/explain', { explanations: ['x'], dropped: undefined, n: 1.5 });
        await store.jobStore().put('job-b', 'manifest', { version: 1 });
        const badJson = await h.errorOf(() => store.jobStore().put('job-a', 'bad', { n: 10n }));
        const noValue = await h.errorOf(() => store.jobStore().put('job-a', 'bad', undefined));
        store.close();
        store = await h.NeurolensStore.open(name);
        const cached = await store.responseCache().get('key-1');
        const miss = await store.responseCache().get('key-2');
        const step = await store.jobStore().get('job-a', 'neuron/0/explain');
        const absent = await store.jobStore().get('job-a', 'other');
        // A damaged cache entry (e.g. from an old version) reads as a miss, not as a crash.
        const raw = await h.openDB(name);
        await raw.put('llmCache', { key: 'key-3', response: { choices: 'nonsense' }, storedAt: 0 });
        raw.close();
        const damaged = await store.responseCache().get('key-3');
        await store.deleteJob('job-a');
        const afterDelete = [await store.jobStore().get('job-a', 'neuron/0/explain'), await store.jobStore().get('job-b', 'manifest')];
        store.close();
        return { cached, miss, step, absent, badJson, noValue, damaged, afterDelete };
      },
      { name: db },
    );
    expect(result.cached).toMatchObject({ id: 'c1', choices: [{ message: { content: 'hello' } }] });
    expect(result.miss).toBeUndefined();
    expect(result.step).toEqual({ explanations: ['x'], n: 1.5 });
    expect(result.step).not.toHaveProperty('dropped');
    expect(result.absent).toBeUndefined();
    expect(result.badJson).toMatchObject({ isStoreError: true, message: 'job step "bad" is not JSON data: TypeError: Do not know how to serialize a BigInt' });
    expect(result.noValue).toMatchObject({ isStoreError: true, message: 'job step "bad" has no JSON value' });
    expect(result.damaged).toBeUndefined();
    expect(result.afterDelete).toEqual([undefined, { version: 1 }]);
  });

  it('the float16 codec agrees with Chromium\'s own Float16Array (round to nearest even) on 200,000 values', async () => {
    const result = await inPage(async (h) => {
      const F16 = (globalThis as unknown as { Float16Array?: new (n: number) => ArrayLike<number> & { buffer: ArrayBuffer; [i: number]: number } }).Float16Array;
      if (!F16) return { available: false, mismatches: [] as number[][], checked: 0 };
      const f16 = new F16(1);
      const bits = new Uint16Array(f16.buffer);
      let seed = 12345;
      const random = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
      const mismatches: number[][] = [];
      let checked = 0;
      for (let i = 0; i < 200_000; i++) {
        const x = (random() < 0.5 ? -1 : 1) * 2 ** (-26 + random() * 41.9);
        // Every 4th value is the exact midpoint between two neighbouring halves: a tie.
        const value = i % 4 === 0 ? (h.activations.float16Value(h.activations.float16Bits(x)) + h.activations.float16Value(h.activations.float16Bits(x) + 1)) / 2 : x;
        if (!Number.isFinite(value) || Math.abs(value) >= 65504) continue;
        f16[0] = value;
        if (bits[0] !== h.activations.float16Bits(value)) mismatches.push([value, bits[0], h.activations.float16Bits(value)]);
        checked++;
      }
      return { available: true, mismatches: mismatches.slice(0, 5), checked };
    }, null);
    if (!result.available) {
      console.warn('this Chromium has no Float16Array: cross-check skipped');
      return;
    }
    expect(result.checked).toBeGreaterThan(190_000);
    expect(result.mismatches).toEqual([]);
  });
});
