/**
 * The Explorer in Node: neuron summaries from records, the table built from the store's summary
 * columns (sorting by packed keys equals a plain comparator sort; filters and search), and the
 * controller over an in-memory stand-in of the store's Explorer methods, with batches run against
 * the loopback OpenAI-protocol server and the scripted LLM handed the planted rules
 * (test/fixtures/planted-llm.ts): three planted neurons explained and scored within a budget, a
 * budget too small stopping with a clear message and keeping what finished, an exhausted quota
 * stopping the batch, and a neuron that fails listed while the batch goes on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { summarizeNeuronRecord } from '../src/lib/activations/neuron-summary.ts';
import type { NeuronRecord } from '../src/lib/activations/records.ts';
import { createSeededRandom } from '../src/lib/activations/seeded-random.ts';
import { MemoryJobStore } from '../src/lib/explain/job.ts';
import type { NeuronPipelineResult } from '../src/lib/explain/pipeline.ts';
import type { ChatRequest, ChatResponse } from '../src/lib/llm/types.ts';
import { scoreOfScores } from '../src/lib/store/explanation-score.ts';
import { summariesByLayer, summaryAt, withSummaries, type NeuronSummaryColumns } from '../src/lib/store/neuron-summaries.ts';
import type { NeuronKey, StoredExplanation } from '../src/lib/store/store-types.ts';
import { ExplorerController, MAX_BATCH, type ExplorerStore } from '../src/app/explorer-controller.ts';
import { buildColumns, DEFAULT_QUERY, filterOrder, rowOfNeuron, sortedOrder, type ExplorerColumns, type SortKey } from '../src/app/explorer-table.ts';
import { capturePlantedRecords, neuronKey, type PlantedCapture } from './fixtures/planted-records.ts';
import { plantedNeuronLlm } from './fixtures/planted-llm.ts';
import { reply, startFakeOpenAiServer, type FakeOpenAiServer } from './helpers/fake-openai-server.ts';

const record = (layer: number, neuron: number, random: number[][], top: { tokens: string[]; activations: number[] }[], mean: number | null = 0.1): NeuronRecord => ({
  neuron_id: { layer_index: layer, neuron_index: neuron },
  random_sample: random.map((activations) => ({ tokens: activations.map((_, i) => `r${i}`), activations })),
  random_sample_by_quantile: null,
  quantile_boundaries: null,
  mean,
  variance: null,
  skewness: null,
  kurtosis: null,
  most_positive_activation_records: top,
});

describe('neuron summaries', () => {
  it('take the maximum, the share of random-sample tokens above 0, the mean and the peak tokens from the record', () => {
    const r = record(
      2,
      7,
      [
        [0.5, -0.1, 0, 2],
        [-0.2, 0.3],
      ],
      [
        { tokens: [' the', ' cat'], activations: [5, 1] },
        { tokens: [' a', ' the'], activations: [0.1, 4] },
        { tokens: [' 19', '99'], activations: [3, 2.5] },
      ],
      0.25,
    );
    expect(summarizeNeuronRecord(r)).toEqual({
      layer: 2,
      neuron: 7,
      maxActivation: 5,
      mean: 0.25,
      firesOn: 3 / 6,
      sampledTokens: 6,
      topExcerpts: 3,
      peaks: [
        { token: ' the', count: 2, maxActivation: 5 },
        { token: ' 19', count: 1, maxActivation: 3 },
      ],
    });
    const empty = summarizeNeuronRecord(record(0, 1, [], [], null));
    expect(empty).toMatchObject({ maxActivation: null, firesOn: null, sampledTokens: 0, mean: null, peaks: [] });
  });

  it('are kept in columns per layer that grow and give each summary back', () => {
    const a = summarizeNeuronRecord(record(1, 3, [[1, -1]], [{ tokens: ['"'], activations: [2] }]));
    const b = summarizeNeuronRecord(record(1, 9, [[0]], [], null));
    let row = withSummaries(undefined, 'scan', 1, [a]);
    expect(row.present.length).toBe(4);
    row = withSummaries(row, 'scan', 1, [b]);
    expect(row.present.length).toBe(10);
    expect(Array.from(row.present).map((p, n) => (p ? n : -1)).filter((n) => n >= 0)).toEqual([3, 9]);
    expect(summaryAt(row, 3)).toEqual(a);
    expect(summaryAt(row, 9)).toEqual(b);
    expect(summaryAt(row, 4)).toBeUndefined();
    expect(() => withSummaries(row, 'scan', 2, [a])).toThrow(/layer 1 in the row of layer 2/);
  });
});

/** Columns of `layers` × `perLayer` neurons with random values (some missing) and explanations on some. */
function syntheticDataset(layers: number, perLayer: number, seed = 3) {
  const random = createSeededRandom(seed);
  const summaries = [];
  for (let layer = 0; layer < layers; layer++) {
    for (let neuron = 0; neuron < perLayer; neuron++) {
      const none = random() < 0.05;
      summaries.push({
        layer,
        neuron,
        // Rounded to few values, so that ties are common.
        maxActivation: none ? null : Math.round(random() * 40) / 4,
        mean: random() - 0.5,
        firesOn: none ? null : Math.round(random() * 20) / 20,
        sampledTokens: none ? 0 : 3200,
        topExcerpts: 20,
        peaks: [{ token: ` w${neuron % 7}`, count: 3, maxActivation: 1 }],
      });
    }
  }
  const columns: NeuronSummaryColumns[] = [...summariesByLayer(summaries)].map(([layer, list]) => {
    const { scanId: _, ...c } = withSummaries(undefined, 's', layer, list);
    return c;
  });
  const explanations: StoredExplanation[] = [];
  for (const s of summaries) {
    if (random() > 0.3) continue;
    const words = ['digits', 'quotes', 'capital letters', 'the word the', 'commas'];
    const count = 1 + Math.floor(random() * 2);
    for (let order = 0; order < count; order++) {
      const score = random() < 0.2 ? null : Math.round(random() * 10) / 10;
      explanations.push({ layer: s.layer, neuron: s.neuron, explanation: `${words[(s.neuron + order) % words.length]} ${s.layer}.${s.neuron}.${order}`, order, createdAt: 0, ...(random() < 0.1 ? {} : { score }) });
    }
  }
  return { summaries, columns, explanations };
}

describe('the Explorer table', () => {
  const { summaries, columns: summaryColumns, explanations } = syntheticDataset(4, 500);
  const table = buildColumns(summaryColumns, explanations);

  it('holds every neuron in layer and neuron order, with its best explanation and score', () => {
    expect(table.count).toBe(2000);
    expect(table.layers).toEqual([0, 1, 2, 3]);
    for (const i of [0, 499, 500, 1999]) {
      expect([table.layer[i], table.neuron[i]]).toEqual([summaries[i].layer, summaries[i].neuron]);
      expect(rowOfNeuron(table, summaries[i].layer, summaries[i].neuron)).toBe(i);
    }
    expect(rowOfNeuron(table, 9, 0)).toBe(-1);
    for (let i = 0; i < table.count; i++) {
      const own = explanations.filter((e) => e.layer === table.layer[i] && e.neuron === table.neuron[i]);
      const scored = own.filter((e) => typeof e.score === 'number').sort((a, b) => b.score! - a.score! || a.order - b.order);
      const best = scored[0] ?? own[0];
      expect(table.explanation[i]).toBe(best?.explanation ?? '');
      expect(Number.isNaN(table.score[i]) ? null : table.score[i]).toBe(typeof best?.score === 'number' ? best.score : null);
      expect(table.explanationCount[i]).toBe(own.length);
    }
  });

  it('sorts by every key in both directions as a comparator sort does: ties in neuron order, missing values last', () => {
    const values: Record<SortKey, (i: number) => number> = {
      neuron: (i) => i,
      max: (i) => table.maxActivation[i],
      firesOn: (i) => table.firesOn[i],
      score: (i) => table.score[i],
    };
    for (const key of ['neuron', 'max', 'firesOn', 'score'] as SortKey[]) {
      for (const descending of [false, true]) {
        const expected = Array.from({ length: table.count }, (_, i) => i).sort((a, b) => {
          const va = values[key](a);
          const vb = values[key](b);
          if (Number.isNaN(va) !== Number.isNaN(vb)) return Number.isNaN(va) ? 1 : -1;
          if (Number.isNaN(va)) return a - b;
          if (key === 'neuron') return descending ? b - a : a - b;
          return (descending ? vb - va : va - vb) || a - b;
        });
        expect(Array.from(sortedOrder(table, key, descending)), `${key} ${descending ? 'descending' : 'ascending'}`).toEqual(expected);
      }
    }
  });

  it('filters by layer, maximum, fires-on share and score, and searches all of a neuron’s explanations', () => {
    const order = sortedOrder(table, 'max', true);
    const pass = (query: Partial<typeof DEFAULT_QUERY>) => Array.from(filterOrder(table, order, { ...DEFAULT_QUERY, ...query }));
    expect(pass({})).toEqual(Array.from(order));
    const layer2 = pass({ layer: 2 });
    expect(layer2.length).toBe(500);
    expect(layer2.every((i) => table.layer[i] === 2)).toBe(true);
    expect(layer2).toEqual(Array.from(order).filter((i) => table.layer[i] === 2)); // still sorted
    const strong = pass({ minMax: 8, minFiresOn: 20, maxFiresOn: 60 });
    expect(strong.length).toBeGreaterThan(0);
    expect(strong).toEqual(Array.from(order).filter((i) => table.maxActivation[i] >= 8 && table.firesOn[i] >= 0.2 - 1e-12 && table.firesOn[i] <= 0.6 + 1e-12));
    const scored = pass({ minScore: 0.5 });
    expect(scored).toEqual(Array.from(order).filter((i) => table.score[i] >= 0.5));
    // Search: every word, anywhere in any of the neuron's explanations, case ignored.
    const hits = pass({ search: '  QUOTES  2. ' });
    const expected = Array.from(order).filter((i) =>
      explanations.some((e) => e.layer === table.layer[i] && e.neuron === table.neuron[i] && e.explanation.includes('quotes')) &&
      explanations.some((e) => e.layer === table.layer[i] && e.neuron === table.neuron[i]) &&
      table.searchText[i].includes('2.'),
    );
    expect(hits).toEqual(expected);
    expect(hits.length).toBeGreaterThan(0);
    expect(pass({ search: 'no such words' })).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// The controller

/** The store's Explorer methods in memory, keeping explanations and their headline scores as the real store does. */
class MemoryExplorerStore implements ExplorerStore {
  explanations: (StoredExplanation & { key: string })[] = [];
  results: NeuronPipelineResult[] = [];
  readonly jobs = new MemoryJobStore();
  private readonly cache = new Map<string, ChatResponse>();

  constructor(
    private readonly records: Map<string, NeuronRecord>,
    private readonly summaries: NeuronSummaryColumns[],
  ) {}

  async listNeuronSummaries() {
    return this.summaries;
  }
  async listAllExplanations() {
    return this.explanations.map(({ key: _, ...e }) => e);
  }
  async listExplanations(_scanId: string, n: NeuronKey) {
    return (await this.listAllExplanations()).filter((e) => e.layer === n.layer && e.neuron === n.neuron);
  }
  async getNeuronRecords(_scanId: string, neurons: readonly NeuronKey[]) {
    return neurons.flatMap((n) => this.records.get(neuronKey(n)) ?? []);
  }
  async putPipelineResult(_scanId: string, result: NeuronPipelineResult, source?: string) {
    this.results.push(result);
    const layer = result.neuron_id.layer_index;
    const neuron = result.neuron_id.neuron_index;
    for (const s of result.scores) {
      const key = `${layer}:${neuron}:${s.explanation}`;
      const old = this.explanations.find((e) => e.key === key);
      if (old) old.score = scoreOfScores(s);
      else this.explanations.push({ key, layer, neuron, explanation: s.explanation, order: 0, createdAt: 0, source, score: scoreOfScores(s) });
    }
  }
  responseCache() {
    return { get: async (key: string) => this.cache.get(key), set: async (key: string, value: ChatResponse) => void this.cache.set(key, value) };
  }
  jobStore() {
    return this.jobs;
  }
}

/** An explainer request, as the scripted LLM tells them apart. */
const isExplainer = (body: ChatRequest) => body.messages[0]?.content.includes('interpret single neurons');

describe('the Explorer controller', () => {
  let capture: PlantedCapture;
  let server: FakeOpenAiServer;
  const words = (text: string) => text.split(/\s+/).filter(Boolean).length * 2;

  beforeAll(async () => {
    capture = await capturePlantedRecords({ excerptCount: 120, excerptLength: 64 });
    server = await startFakeOpenAiServer();
  }, 120_000);
  afterAll(async () => server?.close());

  /** A dataset of the planted neurons' records (and 2 × 300 neurons without records' explanations). */
  function setUp(model = 'gpt-4o-mini') {
    const records = new Map(capture.planted.map((p) => [neuronKey(p), capture.records.get(neuronKey(p))!]));
    const synthetic = syntheticDataset(2, 300, 9).summaries.filter((s) => !records.has(neuronKey(s)));
    const all = [...synthetic, ...[...records.values()].map(summarizeNeuronRecord)];
    const summaries = [...summariesByLayer(all)].map(([layer, list]) => withSummaries(undefined, 'toy', layer, list));
    const store = new MemoryExplorerStore(records, summaries);
    const llm = { baseUrl: server.baseUrl, model, apiKey: 'sk-explorer-test', rememberKey: false };
    const controller = new ExplorerController({ store: Promise.resolve(store), llm: () => llm });
    return { store, controller, llm };
  }

  const planted = (controller: ExplorerController) => capture.planted.map((p) => ({ p, index: rowIndex(controller, p) }));
  /** The column index of a neuron, read through the list with no filters. */
  function rowIndex(controller: ExplorerController, n: NeuronKey): number {
    for (let i = 0; i < controller.state.get().shown; i++) {
      const row = controller.rowAt(i);
      if (row.layer === n.layer && row.neuron === n.neuron) return row.index;
    }
    throw new Error(`no row ${neuronKey(n)}`);
  }

  it('opens a dataset, sorts, filters and searches, selects what is shown', async () => {
    const { controller } = setUp();
    await controller.open('toy');
    const state = controller.state.get();
    expect(state).toMatchObject({ status: 'ready', total: 600, shown: 600, layers: [0, 1], selected: 0 });
    controller.sortBy('max');
    expect(controller.state.get().query).toMatchObject({ sort: 'max', descending: true });
    const first = controller.rowAt(0);
    for (let i = 1; i < 600; i++) expect(controller.rowAt(i).maxActivation ?? -Infinity).toBeLessThanOrEqual(first.maxActivation!);
    controller.sortBy('max');
    expect(controller.state.get().query.descending).toBe(false);
    controller.setQuery({ layer: 1, minFiresOn: 50 });
    const shown = controller.state.get().shown;
    expect(shown).toBeGreaterThan(0);
    expect(shown).toBeLessThan(300);
    for (let i = 0; i < shown; i++) expect(controller.rowAt(i)).toMatchObject({ layer: 1 });
    controller.selectShown();
    expect(controller.state.get().selected).toBe(shown);
    expect(controller.selectedNeurons()).toHaveLength(shown);
    controller.setQuery({ layer: null, minFiresOn: null });
    controller.clearSelection();
    expect(controller.state.get().selected).toBe(0);
    // The estimate refuses an empty selection and one over the limit.
    await controller.estimateBatch();
    expect(controller.state.get().batch.error).toBe('select the neurons to explain first');
    expect(MAX_BATCH).toBe(1000);
  });

  it('explains and scores three selected neurons in one batch within the budget (scripted LLM handed the planted rules)', async () => {
    server.setHandler(plantedNeuronLlm({ planted: capture.planted, countTokens: words }));
    server.reset();
    const { store, controller } = setUp();
    await controller.open('toy');
    const three = planted(controller).slice(0, 3);
    for (const { index } of three) controller.setSelected(index, true);
    await controller.estimateBatch();
    const estimated = controller.state.get().batch;
    expect(estimated.phase).toBe('ready');
    expect(estimated.neurons).toHaveLength(3);
    expect(estimated.estimate!.costUsd).toBeGreaterThan(0);
    await controller.runBatch(1);
    const batch = controller.state.get().batch;
    expect(batch.phase).toBe('finished');
    expect(batch.outcome).toEqual({ kind: 'complete', message: '3 of 3 neurons explained and scored.' });
    expect(batch.failed).toEqual([]);
    expect(batch.done.map((d) => d.explanation)).toEqual(three.map(({ p }) => p.description));
    for (const d of batch.done) expect(d.score!).toBeGreaterThan(0.9);
    expect(batch.usage!.costUsd).toBeGreaterThan(0);
    expect(batch.usage!.costUsd).toBeLessThan(1);
    expect(store.results).toHaveLength(3);
    // The rows show their new explanations and scores; searching and sorting by score find them.
    controller.setQuery({ search: three[0].p.description.split(' ').slice(-1)[0] });
    expect(controller.state.get().shown).toBeGreaterThan(0);
    expect(Array.from({ length: controller.state.get().shown }, (_, i) => controller.rowAt(i).explanation)).toContain(three[0].p.description);
    controller.setQuery({ search: '' });
    controller.sortBy('score');
    expect(controller.rowAt(0).score).toBeGreaterThan(0.9);
    for (const request of server.chatRequests) expect(request.headers.authorization).toBe('Bearer sk-explorer-test');
  });

  it('a budget too small stops the batch with a clear message and keeps the neurons that finished', async () => {
    server.setHandler(plantedNeuronLlm({ planted: capture.planted, countTokens: words }));
    // What one neuron costs, with a model of another price (nothing cached for it).
    const probe = setUp('gpt-4.1-mini');
    await probe.controller.open('toy');
    const [one] = planted(probe.controller);
    probe.controller.setSelected(one.index, true);
    await probe.controller.estimateBatch();
    await probe.controller.runBatch(10);
    const perNeuron = probe.controller.state.get().batch.usage!.costUsd;
    expect(perNeuron).toBeGreaterThan(0);

    const { store, controller } = setUp('gpt-4.1-nano');
    await controller.open('toy');
    const four = planted(controller).slice(1, 5);
    for (const { index } of four) controller.setSelected(index, true);
    await controller.estimateBatch();
    // gpt-4.1-nano costs a quarter of gpt-4.1-mini: room for about six neurons' answers, less the reservations of requests in flight.
    await controller.runBatch(perNeuron / 4 * 1.6);
    const batch = controller.state.get().batch;
    expect(batch.phase).toBe('finished');
    expect(batch.outcome!.kind).toBe('budget');
    expect(batch.outcome!.message).toMatch(/^The budget ran out at neuron \d+:\d+: its next request would have gone over it \(Cost budget exceeded: .*\)\. 1 of 4 neurons explained and scored; their results are kept\.$/);
    expect(batch.done).toHaveLength(1);
    expect(store.results.map((r) => r.neuron_id)).toMatchObject([{ layer_index: four[0].p.layer, neuron_index: four[0].p.neuron }]);
    expect(batch.usage!.costUsd).toBeLessThanOrEqual(perNeuron / 4 * 1.6);
  });

  it('an exhausted quota stops the batch; a neuron that fails is listed and the batch goes on', async () => {
    const { controller, store } = setUp('gpt-4o');
    await controller.open('toy');
    const rows = planted(controller);
    const plantedLlm = plantedNeuronLlm({ planted: capture.planted });
    // The second neuron's prompt is refused (a per-neuron failure); the third neuron finds the quota gone.
    let explainerCalls = 0;
    server.setHandler((body, i, request) => {
      const explaining = isExplainer(body);
      if (explaining) explainerCalls++;
      if (explaining && explainerCalls === 2) return reply.error(400, "This model's maximum context length is 128 tokens", { code: 'context_length_exceeded' });
      if (explaining && explainerCalls === 3) return reply.error(429, 'You exceeded your current quota.', { code: 'insufficient_quota', type: 'insufficient_quota' });
      return plantedLlm(body, i, request);
    });
    for (const { index } of rows.slice(0, 4)) controller.setSelected(index, true);
    await controller.estimateBatch();
    await controller.runBatch(null);
    const batch = controller.state.get().batch;
    expect(batch.done.map((d) => d.neuron)).toEqual([{ layer: rows[0].p.layer, neuron: rows[0].p.neuron }]);
    expect(batch.failed).toHaveLength(1);
    expect(batch.failed[0].neuron).toEqual({ layer: rows[1].p.layer, neuron: rows[1].p.neuron });
    expect(batch.outcome!.kind).toBe('quota');
    expect(batch.outcome!.message).toMatch(/^The LLM account's quota is exhausted \(at neuron \d+:\d+\): .*quota.*\. 1 of 4 neurons explained and scored, 1 failed; their results are kept\.$/);
    expect(store.results).toHaveLength(1);
  });

  it('stops a running batch at once; what finished stays', async () => {
    const { controller, store } = setUp('gpt-4.1');
    await controller.open('toy');
    const plantedLlm = plantedNeuronLlm({ planted: capture.planted });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let arrived!: () => void;
    const secondNeuron = new Promise<void>((resolve) => (arrived = resolve));
    let explainerCalls = 0;
    server.setHandler(async (body, i, request) => {
      if (isExplainer(body) && ++explainerCalls === 2) {
        arrived();
        await gate;
      }
      return plantedLlm(body, i, request);
    });
    for (const { index } of planted(controller).slice(0, 3)) controller.setSelected(index, true);
    await controller.estimateBatch();
    const running = controller.runBatch(5);
    await secondNeuron;
    expect(controller.state.get().batch.done).toHaveLength(1);
    controller.stopBatch();
    await running;
    release();
    const batch = controller.state.get().batch;
    expect(batch.outcome!.kind).toBe('stopped');
    expect(batch.outcome!.message).toMatch(/^Stopped at neuron \d+:\d+\. 1 of 3 neurons explained and scored; their results are kept\.$/);
    expect(store.results).toHaveLength(1);
  });
});
