/**
 * The neuron page's controller in Node, on real parts: records of the toy model's planted neurons
 * captured with onnxruntime, the model itself for live activations, weights and the ablation score,
 * and the loopback OpenAI-protocol server with the scripted planted-rule LLM (it is handed the
 * planted rules and answers the real prompts). The store is an in-memory stand-in with the
 * NeurolensStore methods the page uses (the browser tests run the IndexedDB one).
 *
 * Checked: explain → simulate → score with the ablation score; a server that ignores `n` still
 * gives two explanations; an all-zero simulation gets a reason in words, a non-fresh run recalls
 * it and a re-run replaces it; delete; switching neuron mid-job shows nothing of the old job; the
 * test box never shows a simulation made for an older text.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NeuronPageController, type NeuronPageState, type NeuronPageStore } from '../src/app/neuron-controller.ts';
import type { NeuronRecord } from '../src/lib/activations/records.ts';
import { computeAblationScore } from '../src/lib/explain/ablation-score.ts';
import type { ScoredExplanation } from '../src/lib/explain/explanation-types.ts';
import type { JobStore } from '../src/lib/explain/job.ts';
import type { ExplanationScores, NeuronPipelineResult } from '../src/lib/explain/pipeline.ts';
import { MemoryResponseCache } from '../src/lib/llm/response-cache.ts';
import type { LlmSettings } from '../src/lib/llm/settings.ts';
import { ActivationCapturer } from '../src/lib/model/capture.ts';
import { dirSource } from '../src/lib/model/dir-source.node.ts';
import { loadModel } from '../src/lib/model/load-model.ts';
import { ModelWeights } from '../src/lib/model/model-weights.ts';
import { loadNodeRuntime } from '../src/lib/model/ort-runtime.node.ts';
import { neuronWeightViews } from '../src/lib/model/weight-views.ts';
import type { NeuronKey, ScanMeta, StoredExplanation } from '../src/lib/store/store-types.ts';
import type { ModelSummary } from '../src/worker/protocol.ts';
import type { PlantedNeuron } from '../scripts/toy/planted-model.ts';
import { allZeroSimulationLlm, plantedNeuronLlm } from './fixtures/planted-llm.ts';
import { capturePlantedRecords, neuronKey, type PlantedCapture } from './fixtures/planted-records.ts';
import { startFakeOpenAiServer, type FakeOpenAiServer } from './helpers/fake-openai-server.ts';

const TOY = join(import.meta.dirname, '../public/models/toy-planted');

/** The store methods the page uses, in memory, refusing what IndexedDB's store refuses that matters here. */
class MemoryNeuronStore implements NeuronPageStore {
  readonly records = new Map<string, NeuronRecord>();
  readonly explanations = new Map<string, StoredExplanation[]>();
  readonly scores = new Map<string, ExplanationScores>();
  readonly simulations = new Map<string, ScoredExplanation>();
  readonly steps = new Map<string, string>();
  readonly cache = new MemoryResponseCache();

  private key = (scanId: string, n: NeuronKey) => `${scanId}/${n.layer}:${n.neuron}`;

  async getNeuronRecord(scanId: string, layer: number, neuron: number) {
    return this.records.get(this.key(scanId, { layer, neuron }));
  }
  async listExplanations(scanId: string, neuron: NeuronKey) {
    return [...(this.explanations.get(this.key(scanId, neuron)) ?? [])];
  }
  async getScores(scanId: string, neuron: NeuronKey, explanation: string) {
    return this.scores.get(`${this.key(scanId, neuron)}/${explanation}`);
  }
  async getScoredExplanation(scanId: string, neuron: NeuronKey, explanation: string) {
    return this.simulations.get(`${this.key(scanId, neuron)}/${explanation}`);
  }
  private ensure(scanId: string, neuron: NeuronKey, texts: string[], source?: string) {
    if (new Set(texts).size !== texts.length) throw new Error('explanations repeat one another');
    const list = this.explanations.get(this.key(scanId, neuron)) ?? [];
    for (const explanation of texts) {
      if (!list.some((e) => e.explanation === explanation)) list.push({ ...neuron, explanation, order: list.length, source, createdAt: Date.now() });
    }
    this.explanations.set(this.key(scanId, neuron), list);
  }
  async putPipelineResult(scanId: string, result: NeuronPipelineResult, source?: string) {
    const neuron = { layer: result.neuron_id.layer_index, neuron: result.neuron_id.neuron_index };
    this.ensure(scanId, neuron, result.explanations, source);
    for (const s of result.simulation_results.scored_explanations) this.simulations.set(`${this.key(scanId, neuron)}/${s.explanation}`, s);
    for (const s of result.scores) this.scores.set(`${this.key(scanId, neuron)}/${s.explanation}`, s);
  }
  async putScores(scanId: string, neuron: NeuronKey, scores: ExplanationScores) {
    this.ensure(scanId, neuron, [scores.explanation]);
    this.scores.set(`${this.key(scanId, neuron)}/${scores.explanation}`, scores);
  }
  async putSimulationResults(scanId: string, results: readonly { neuron_id: { layer_index: number; neuron_index: number }; scored_explanations: ScoredExplanation[] }[]) {
    for (const r of results) {
      const neuron = { layer: r.neuron_id.layer_index, neuron: r.neuron_id.neuron_index };
      this.ensure(scanId, neuron, r.scored_explanations.map((s) => s.explanation));
      for (const s of r.scored_explanations) this.simulations.set(`${this.key(scanId, neuron)}/${s.explanation}`, s);
    }
  }
  async deleteExplanation(scanId: string, neuron: NeuronKey, explanation: string) {
    const list = this.explanations.get(this.key(scanId, neuron)) ?? [];
    this.explanations.set(this.key(scanId, neuron), list.filter((e) => e.explanation !== explanation));
    this.scores.delete(`${this.key(scanId, neuron)}/${explanation}`);
    this.simulations.delete(`${this.key(scanId, neuron)}/${explanation}`);
    return list.some((e) => e.explanation === explanation);
  }
  async deleteJob(jobId: string) {
    for (const k of [...this.steps.keys()]) if (JSON.parse(k)[0] === jobId) this.steps.delete(k);
  }
  async deleteJobsStartingWith(prefix: string) {
    for (const k of [...this.steps.keys()]) if ((JSON.parse(k)[0] as string).startsWith(prefix)) this.steps.delete(k);
  }
  jobStore(): JobStore {
    return {
      get: async (jobId, key) => {
        const v = this.steps.get(JSON.stringify([jobId, key]));
        return v === undefined ? undefined : JSON.parse(v);
      },
      put: async (jobId, key, value) => void this.steps.set(JSON.stringify([jobId, key]), JSON.stringify(value)),
    };
  }
  responseCache() {
    return this.cache;
  }
}

const SCAN: ScanMeta = {
  id: 'scan-1',
  name: 'planted records',
  model: { label: 'toy-planted', dMlp: 256 },
  corpus: { name: 'generated', fingerprint: '' },
  layers: [0, 1],
  topK: 20,
  seed: 0,
  excerptCount: 200,
  status: 'done',
  progress: 1,
  createdAt: 0,
  updatedAt: 0,
  bytes: 0,
};

let capture: PlantedCapture;
let capturer: ActivationCapturer;
let weights: ModelWeights;
let summary: ModelSummary;

beforeAll(async () => {
  capture = await capturePlantedRecords();
  const model = await loadModel(await dirSource(TOY));
  capturer = new ActivationCapturer(model, await loadNodeRuntime('node'));
  weights = await ModelWeights.of(model);
  const c = model.config;
  summary = { label: 'toy-planted', onnxPath: 'onnx/model.onnx', dtype: 'fp32', nLayer: c.nLayer, dModel: c.dModel, dMlp: c.dMlp, nCtx: c.nCtx, vocabSize: c.vocabSize, backend: 'onnxruntime-node', wasmThreads: 1, loadMs: 0, planted: [] };
}, 300_000);

afterAll(async () => {
  await capturer?.dispose();
});

const planted = (id: string): PlantedNeuron => capture.planted.find((p) => p.id === id)!;

describe('the neuron page controller', () => {
  let server: FakeOpenAiServer;
  let store: MemoryNeuronStore;
  let page: NeuronPageController;
  let settings: LlmSettings;
  const ablations: { layer: number; neuron: number; mode: string; mean?: number }[] = [];

  beforeAll(async () => {
    server = await startFakeOpenAiServer(plantedNeuronLlm({ planted: capture.planted }));
  });
  afterAll(async () => {
    await server?.close();
  });

  function fresh() {
    server.reset();
    store = new MemoryNeuronStore();
    for (const p of capture.planted) store.records.set(`${SCAN.id}/${p.layer}:${p.neuron}`, capture.records.get(neuronKey(p))!);
    settings = { baseUrl: server.baseUrl, model: 'fake-model', apiKey: 'sk-x', rememberKey: false };
    page = new NeuronPageController({
      store: Promise.resolve(store),
      llm: () => settings,
      model: () => summary,
      capture: async (text) => {
        const c = await capturer.captureText(text);
        return { tokens: c.tokens, backend: c.backend, windows: c.windows, dMlp: capturer.dMlp, layers: [...c.layers].map(([layer, rows]) => ({ layer, data: Float32Array.from(rows.flatMap((r) => Array.from(r))) })), runMs: 0 };
      },
      weights: async (layer, neuron) => neuronWeightViews(weights, { layer, neuron }, (id) => capturer.model.tokenizer.tokenText(id)),
      ablationScore: (input, signal) => computeAblationScore(capturer, input, { signal }),
      compare: async () => {
        throw new Error('not used here');
      },
      requestAblation: (r) => ablations.push(r),
      testDebounceMs: 5,
    });
  }

  const until = async (what: (s: NeuronPageState) => boolean, timeoutMs = 60_000) => {
    const start = Date.now();
    while (!what(page.state.get())) {
      const s = page.state.get();
      for (const part of [s.record, s.explanations, s.weights, s.test.live]) if (part.status === 'error') throw new Error(part.message);
      if (Date.now() - start > timeoutMs) throw new Error(`timed out; state: ${JSON.stringify({ ...page.state.get(), record: page.state.get().record.status, weights: page.state.get().weights.status })}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const entries = () => {
    const e = page.state.get().explanations;
    return e.status === 'ready' ? e.value : [];
  };
  const show = async (p: PlantedNeuron) => {
    page.show(SCAN, { layer: p.layer, neuron: p.neuron });
    await until((s) => s.record.status === 'ready' && s.explanations.status === 'ready' && s.weights.status === 'ready');
  };

  it('shows the record, its statistics and the weights, and explains and scores with the ablation score', async () => {
    fresh();
    server.setHandler(plantedNeuronLlm({ planted: capture.planted }));
    const digits = planted('digits');
    await show(digits);
    const state = page.state.get();
    expect(state.stats!.max).toBeGreaterThan(3.5);
    expect(state.model.matches).toBe(true);
    const w = state.weights.status === 'ready' ? state.weights.value : null;
    expect(w!.inputTokens.slice(0, 5).every((t) => /^\s?\d+$/.test(t.token))).toBe(true);

    const stages = new Set<string>();
    const seen = page.state.subscribe((s) => s.job?.progress && stages.add(s.job.progress.stage));
    await page.explain({ explanations: 1 });
    seen();
    expect(page.state.get().outcome).toMatchObject({ kind: 'done' });
    expect([...stages]).toEqual(['explain', 'simulate', 'ablation']);
    const [entry] = entries();
    expect(entry.explanation).toBe(digits.description);
    expect(entry.all!).toBeGreaterThan(0.99);
    expect(entry.modes).toEqual(['logprob']);
    expect(entry.coverage).toBe(1);
    expect(entry.ablation!).toBeGreaterThan(0.5);
    expect(entry.reasons).toEqual({ all: null, top: null, random: null, ablation: null, coverage: null });
    expect(entry.excerpts.map((e) => e.kind)).toEqual(['top', 'top', 'top', 'top', 'top', 'random', 'random', 'random', 'random', 'random']);
    expect(page.state.get().notices).toEqual([]);

    // A wrong rule, written by the user: lower correlation, and a lower ablation score.
    await page.simulate(planted('the').description);
    const wrong = entries().find((e) => e.explanation === planted('the').description)!;
    expect(wrong.ablation ?? -Infinity).toBeLessThan(entry.ablation!);
    expect(wrong.all ?? -1).toBeLessThan(0.5);

    page.ablateInProbe('mean');
    expect(ablations.at(-1)).toEqual({ layer: digits.layer, neuron: digits.neuron, mode: 'mean', mean: capture.records.get(neuronKey(digits))!.mean });
  });

  it('a server that ignores n still gives two explanations', async () => {
    fresh();
    const rule = plantedNeuronLlm({ planted: capture.planted });
    const wrongRule = plantedNeuronLlm({ planted: capture.planted, answerFor: () => planted('capitalised') });
    let explainers = 0;
    // One choice whatever `n` asks; the first answer is the right rule, later ones another rule.
    server.setHandler((body, i, request) => {
      if (!body.messages[0]?.content.includes('interpret single neurons')) return rule(body, i, request);
      const answer = (explainers++ === 0 ? rule : wrongRule)({ ...body, n: 1 }, i, request);
      return answer;
    });
    await show(planted('digits'));
    await page.explain({ explanations: 2 });
    expect(page.state.get().outcome).toMatchObject({ kind: 'done' });
    const explainerRequests = server.chatRequests.filter((r) => r.body?.messages[0]?.content.includes('interpret single neurons'));
    expect(explainerRequests[0].body!.n).toBe(2);
    expect(explainerRequests).toHaveLength(2);
    expect(entries().map((e) => e.explanation)).toEqual([planted('digits').description, planted('capitalised').description]);
    expect(page.state.get().notices).toEqual([]);
  });

  it('an all-zero simulation gets a reason; a plain run recalls it, a re-run replaces it; delete removes it', async () => {
    fresh();
    server.setHandler(allZeroSimulationLlm);
    const the = planted('the');
    await show(the);
    await page.simulate(the.description);
    let [entry] = entries();
    expect(entry.all).toBeNull();
    expect(entry.reasons.all).toMatch(/^the simulation is 0\.00 on every token/);
    // A constant simulation, calibrated, is a constant in place of the neuron: no better than its mean.
    expect(Math.abs(entry.ablation!)).toBeLessThan(0.1);

    server.setHandler(plantedNeuronLlm({ planted: capture.planted }));
    const sent = server.chatRequests.length;
    await page.simulate(the.description);
    expect(server.chatRequests.length).toBe(sent); // recalled from the job's saved steps
    expect(entries()[0].all).toBeNull();

    await page.rerun(the.description);
    expect(server.chatRequests.length).toBeGreaterThan(sent);
    [entry] = entries();
    expect(entry.all!).toBeGreaterThan(0.99);
    expect(page.state.get().outcome?.text).toMatch(/^Done: 10 requests sent \(0 answered from the cache\)/);

    await page.deleteExplanation(the.description);
    expect(entries()).toEqual([]);
    expect([...store.steps.keys()].some((k) => (JSON.parse(k)[0] as string).includes(`/${the.layer}:${the.neuron}/`))).toBe(false);
  });

  it('switching neuron mid-job stops it and shows nothing of it under the new neuron', async () => {
    fresh();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const rule = plantedNeuronLlm({ planted: capture.planted });
    server.setHandler(async (body, i, request) => {
      if (i === 0) await gate;
      return rule(body, i, request);
    });
    await show(planted('digits'));
    const job = page.explain();
    await server.waitForRequests(1, 30_000);
    expect(page.state.get().job?.kind).toBe('explain');
    await show(planted('capitalised'));
    release();
    await job;
    const state = page.state.get();
    expect(state.neuron).toEqual({ layer: planted('capitalised').layer, neuron: planted('capitalised').neuron });
    expect(state.job).toBeNull();
    expect(state.outcome).toBeNull();
    expect(entries()).toEqual([]);
    expect(server.chatRequests[0].clientAborted).toBe(true);
  });

  it('the test box: live activations as typed, a simulation only for the text it was made for', async () => {
    fresh();
    let release!: () => void;
    let gate = new Promise<void>((resolve) => (release = resolve));
    const rule = plantedNeuronLlm({ planted: capture.planted });
    server.setHandler(async (body, i, request) => {
      await gate;
      return rule(body, i, request);
    });
    const digits = planted('digits');
    await show(digits);
    page.setTestText('Call 555 0142 at 9 pm');
    await until((s) => s.test.live.status === 'ready');
    const live = page.state.get().test.live;
    if (live.status !== 'ready') throw new Error('no live activations');
    const at = live.value.tokens.findIndex((t) => t.text === ' 555');
    expect(live.value.values[at]).toBeGreaterThan(3);
    expect(live.value.values[0]).toBeLessThan(0.5);

    // A simulation under way when the text changes is dropped, never shown for the new text.
    const late = page.simulateTest(digits.description);
    await server.waitForRequests(1, 30_000);
    page.setTestText('No numbers here');
    release();
    await late;
    expect(page.state.get().test.simulation.status).toBe('idle');
    await until((s) => s.test.live.status === 'ready');

    gate = Promise.resolve();
    await page.simulateTest(digits.description);
    const sim = page.state.get().test.simulation;
    if (sim.status !== 'ready') throw new Error(`no simulation: ${JSON.stringify(sim)}`);
    expect(sim.value.text).toBe('No numbers here');
    // No digits: neither the neuron nor the simulation varies, and the page says why there is no correlation.
    expect(sim.value.correlation).toBeNull();
    expect(sim.value.reason).toMatch(/^neither the neuron \(0\.00 on every scored token\) nor the simulation \([\d.]+ throughout\) varies/);

    page.setTestText('Room 12 and 34');
    await until((s) => s.test.live.status === 'ready');
    await page.simulateTest(digits.description);
    const good = page.state.get().test.simulation;
    expect(good.status === 'ready' && good.value.correlation).toBeGreaterThan(0.9);
  });
});
