/**
 * The walkthrough controller (src/app/walkthrough.ts) in Node, with real parts where it matters:
 * real records of the toy model's planted neurons (captured with onnxruntime), the real explain job
 * (explainNeuron over in-memory job and response stores), the real scripted LLM, and a real
 * loopback OpenAI-protocol server for the user's endpoint. The app's router, probe and scan are
 * stand-ins that record what the walkthrough asked of them (the browser test drives the real ones).
 */
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NeuronRecord } from '../src/lib/activations/records.ts';
import { testConnection } from '../src/lib/explain/connection-test.ts';
import { MemoryJobStore } from '../src/lib/explain/job.ts';
import type { NeuronPipelineResult } from '../src/lib/explain/pipeline.ts';
import { isScriptedSource, SCRIPTED_ENDPOINT, SCRIPTED_MODEL } from '../src/lib/explain/scripted-llm.ts';
import { MemoryResponseCache } from '../src/lib/llm/response-cache.ts';
import type { LlmSettings } from '../src/lib/llm/settings.ts';
import type { ScanMeta } from '../src/lib/store/store-types.ts';
import type { ModelSummary } from '../src/worker/protocol.ts';
import type { ScanRequest } from '../src/app/datasets-controller.ts';
import { explainNeuron } from '../src/app/explain-neuron.ts';
import { Observable } from '../src/app/observable.ts';
import type { AppRoute } from '../src/app/url-state.ts';
import {
  chooseWalkthroughLlm,
  llmIsSetUp,
  WALKTHROUGH_SCAN_EXCERPTS,
  WALKTHROUGH_SCAN_NAME,
  WALKTHROUGH_STEPS,
  WALKTHROUGH_TEXT,
  WalkthroughController,
  type WalkthroughDatasets,
} from '../src/app/walkthrough.ts';
import { capturePlantedRecords, neuronKey, type PlantedCapture } from './fixtures/planted-records.ts';
import { plantedNeuronLlm } from './fixtures/planted-llm.ts';
import { logprobTokens, reply, startFakeOpenAiServer, type FakeOpenAiServer } from './helpers/fake-openai-server.ts';

let capture: PlantedCapture;
let server: FakeOpenAiServer;

beforeAll(async () => {
  capture = await capturePlantedRecords({ excerptCount: 120, excerptLength: 64 });
  const planted = plantedNeuronLlm({ planted: capture.planted });
  // "Test connection" gets its "7" with logprobs; everything else goes to the planted-rule LLM.
  server = await startFakeOpenAiServer((body, i, request) =>
    body.messages.length === 1 ? reply.completion('7', { logprobs: logprobTokens('7') }) : planted(body, i, request),
  );
}, 120_000);

afterAll(async () => {
  await server?.close();
});

const TOY: ModelSummary = {
  label: 'toy-planted', onnxPath: 'onnx/model.onnx', dtype: 'fp32', nLayer: 2, dModel: 64, dMlp: 256, nCtx: 1024, vocabSize: 50257,
  backend: 'wasm', wasmThreads: 1, loadMs: 1,
  planted: [{ layer: 0, neuron: 37, id: 'digits', description: 'numbers: tokens made only of digits' }],
};
const NO_ENDPOINT: LlmSettings = { baseUrl: 'https://api.openai.com/v1', model: 'gpt-4o-mini', apiKey: '', rememberKey: false };

/** The app around the walkthrough: stand-ins that record, real explain job and records. */
function harness(options: { llm?: LlmSettings; scans?: ScanMeta[]; scanMs?: number } = {}) {
  const model = new Observable<ModelSummary | null>(null);
  const datasets = new Observable<WalkthroughDatasets>({ scans: options.scans ?? [], runningScanId: null, progress: null, scanError: null });
  const routes: Partial<AppRoute>[] = [];
  const probed: string[] = [];
  const scanRequests: ScanRequest[] = [];
  const stored: { result: NeuronPipelineResult; source?: string }[] = [];
  const connectionTests: string[] = [];
  let loads = 0;
  const store = {
    responseCache: () => cache,
    jobStore: () => jobs,
    putPipelineResult: async (_scanId: string, result: NeuronPipelineResult, source?: string) => void stored.push({ result, source }),
  };
  const cache = new MemoryResponseCache();
  const jobs = new MemoryJobStore();
  const controller = new WalkthroughController({
    model,
    loadToyModel: () => {
      loads++;
      setTimeout(() => model.set(TOY), 5);
    },
    navigate: (changes) => routes.push(changes),
    probeText: (text) => probed.push(text),
    datasets,
    startScan: async (request) => {
      scanRequests.push(request);
      const scan: ScanMeta = {
        id: `scan-${scanRequests.length}`, name: request.name, model: { label: TOY.label, nLayer: 2, dModel: 64, dMlp: 256, nCtx: 1024, vocabSize: 50257 },
        corpus: { name: 'Brown corpus (default)', fingerprint: '' }, layers: [0, 1], topK: request.topK, seed: request.seed,
        excerptCount: request.maxExcerpts ?? 0, status: 'running', progress: 0, createdAt: Date.now(), updatedAt: Date.now(), bytes: 0,
      };
      datasets.patch({ scans: [scan, ...datasets.get().scans], runningScanId: scan.id });
      datasets.patch({ progress: { phase: 'scanning', excerptsDone: 40, excerptsTotal: 96, tokensPerSecond: 1, etaSeconds: 1, sampledDone: 0, sampledTotal: 0, recordsDone: 0, recordsTotal: 0 } });
      await new Promise((resolve) => setTimeout(resolve, options.scanMs ?? 20));
      datasets.patch({ scans: datasets.get().scans.map((s) => (s.id === scan.id ? { ...s, status: 'done', progress: 1 } : s)), runningScanId: null, progress: null });
    },
    runScan: async () => {
      throw new Error('not expected');
    },
    neuronRecord: async (_scanId, layer, neuron): Promise<NeuronRecord | undefined> => capture.records.get(neuronKey({ layer, neuron })),
    llm: () => options.llm ?? NO_ENDPOINT,
    testConnection: (settings, signal) => {
      connectionTests.push(settings.baseUrl);
      return testConnection(settings, signal);
    },
    explain: (request, call) => explainNeuron(store, request, call),
  });
  return { controller, model, datasets, routes, probed, scanRequests, stored, connectionTests, loads: () => loads };
}

const until = async (condition: () => boolean, what: string, timeoutMs = 20_000) => {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};
const stepId = (h: ReturnType<typeof harness>) => WALKTHROUGH_STEPS[h.controller.state.get().step].id;

describe('the walkthrough', () => {
  it('runs probe → scan → explain → simulate → score with the scripted LLM when no endpoint is set up, and says so', async () => {
    const h = harness();
    const { controller } = h;
    controller.open();
    expect(stepId(h)).toBe('welcome');
    // The toy model is asked for, and Next waits for it.
    expect(h.loads()).toBe(1);
    expect(controller.blockedBy()).toMatch(/waiting for the toy-planted model/);
    controller.next();
    expect(stepId(h)).toBe('welcome');
    await until(() => controller.state.get().modelReady, 'the model');
    controller.next();

    expect(stepId(h)).toBe('probe');
    expect(h.routes.at(-1)).toEqual({ view: 'probe', neuron: { layer: 0, neuron: 37 } });
    expect(h.probed).toEqual([WALKTHROUGH_TEXT]);
    controller.next();

    expect(stepId(h)).toBe('scan');
    expect(h.routes.at(-1)).toEqual({ view: 'datasets' });
    expect(h.scanRequests).toEqual([expect.objectContaining({ corpus: 'default', maxExcerpts: WALKTHROUGH_SCAN_EXCERPTS, name: WALKTHROUGH_SCAN_NAME })]);
    expect(controller.state.get().scan).toMatchObject({ status: 'running', progress: 'scanning: 40 of 96 excerpts' });
    expect(controller.blockedBy()).toMatch(/waiting for the scan/);
    await until(() => controller.state.get().scan.status === 'done', 'the scan');
    expect(controller.state.get().scan).toMatchObject({ scanId: 'scan-1', reused: false });
    controller.next();

    expect(stepId(h)).toBe('explain');
    expect(h.routes.at(-1)).toEqual({ view: 'neuron', dataset: 'scan-1', neuron: { layer: 0, neuron: 37 } });
    expect(controller.blockedBy()).toMatch(/waiting for the explanation/);
    await until(() => controller.state.get().explain.status !== 'running', 'the explanation');
    const explain = controller.state.get().explain;
    expect(explain.error).toBeUndefined();
    expect(explain.llm).toMatchObject({ scripted: true, settings: { baseUrl: SCRIPTED_ENDPOINT, model: SCRIPTED_MODEL } });
    expect(explain.llm!.reason).toMatch(/No LLM endpoint is set up/);
    // An OpenAI endpoint without a key is not worth a request.
    expect(h.connectionTests).toEqual([]);
    const result = explain.result!;
    expect(result.scripted).toBe(true);
    expect(isScriptedSource(result.source)).toBe(true);
    expect(result.explanation).toBe('numbers: tokens made only of digits');
    expect(result.rule.rule).toMatch(/ASCII digits/);
    expect(result.scores.all.ev_correlation_score!).toBeGreaterThan(0.95);
    expect(result.wrong!.explanation).toBe('capitalised words');
    expect(result.wrong!.scores.all.ev_correlation_score!).toBeLessThan(0.3);
    // The explanation is stored with the dataset, marked as scripted; the wrong one is not stored.
    expect(h.stored.map((s) => [s.result.explanations, s.source])).toEqual([[[result.explanation], `${SCRIPTED_MODEL} @ ${SCRIPTED_ENDPOINT}`]]);
    // The example excerpt: real (0–10) and simulated values side by side, high on the digits.
    const example = result.example!;
    expect(example.tokens.filter((t) => /^ ?[0-9]+$/.test(t)).length, 'the window with most firing tokens').toBeGreaterThan(0);
    expect(example.tokens.length).toBe(9);
    expect(example.tokens.length).toBe(example.real.length);
    expect(example.simulated.length).toBe(example.real.length);
    example.tokens.forEach((token, i) => {
      const digits = /^ ?[0-9]+$/.test(token);
      expect(example.real[i] > 5, `real at ${JSON.stringify(token)}`).toBe(digits);
      expect(example.simulated[i]! > 5, `simulated at ${JSON.stringify(token)}`).toBe(digits);
    });
    controller.next();
    expect(stepId(h)).toBe('simulate');
    controller.next();
    expect(stepId(h)).toBe('score');
    controller.next();
    expect(stepId(h)).toBe('done');
    expect(controller.blockedBy()).toBe('this is the last step');
    controller.openNeuronPage();
    expect(h.routes.at(-1)).toEqual({ view: 'neuron', dataset: 'scan-1', neuron: { layer: 0, neuron: 37 } });

    // Back and forth shows results again without redoing them.
    controller.back();
    controller.back();
    controller.back();
    controller.back();
    expect(stepId(h)).toBe('scan');
    controller.next();
    expect(h.scanRequests).toHaveLength(1);
    expect(controller.state.get().explain.status).toBe('done');
    controller.close();
    expect(controller.state.get().open).toBe(false);
  }, 60_000);

  it('uses the user\'s endpoint when it answers, and its answers are not marked scripted', async () => {
    const h = harness({ llm: { baseUrl: server.baseUrl, model: 'fake-model', apiKey: '', rememberKey: false } });
    const { controller } = h;
    h.model.set(TOY);
    controller.open();
    controller.next();
    controller.next();
    await until(() => controller.state.get().scan.status === 'done', 'the scan');
    server.reset();
    controller.next();
    await until(() => controller.state.get().explain.status !== 'running', 'the explanation');
    const explain = controller.state.get().explain;
    expect(explain.error).toBeUndefined();
    expect(explain.llm).toMatchObject({ scripted: false, label: `fake-model at ${server.baseUrl}` });
    expect(h.connectionTests).toEqual([server.baseUrl]);
    expect(explain.result!.scripted).toBe(false);
    expect(isScriptedSource(explain.result!.source)).toBe(false);
    expect(explain.result!.explanation).toBe('numbers: tokens made only of digits');
    expect(explain.result!.scores.all.ev_correlation_score!).toBeGreaterThan(0.9);
    // The probe, one explanation, 10 simulations of it and 10 of the wrong explanation, all on the server.
    expect(server.chatRequests).toHaveLength(22);
  }, 60_000);

  it('falls back to the scripted LLM when the endpoint cannot be reached, with the reason', async () => {
    // A port that was just free: nothing listens there.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const llm = { baseUrl: `http://127.0.0.1:${port}/v1`, model: 'llama3.1:8b', apiKey: '', rememberKey: false };
    const choice = await chooseWalkthroughLlm(llm, testConnection, new AbortController().signal);
    expect(choice.scripted).toBe(true);
    expect(choice.reason).toMatch(/^Your endpoint \(llama3\.1:8b at http:\/\/127\.0\.0\.1:\d+\/v1\) could not be used: .*ECONNREFUSED.*The built-in scripted LLM answers instead\.$/);
    // A server that never answers is given up on after the wait.
    const hung = await chooseWalkthroughLlm(llm, (_s, signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))), new AbortController().signal, 50);
    expect(hung.reason).toMatch(/no answer within 0 s/);
    expect(llmIsSetUp(NO_ENDPOINT)).toBe(false);
    expect(llmIsSetUp({ ...NO_ENDPOINT, apiKey: 'sk-x' })).toBe(true);
    expect(llmIsSetUp(llm)).toBe(true);
    expect(llmIsSetUp({ ...llm, model: ' ' })).toBe(false);
  });

  it('reuses a finished walkthrough scan, and a closed walkthrough stops its job and resumes it when reopened', async () => {
    const earlier: ScanMeta = {
      id: 'scan-earlier', name: WALKTHROUGH_SCAN_NAME, model: { label: 'toy-planted', nLayer: 2, dModel: 64, dMlp: 256, nCtx: 1024, vocabSize: 50257 },
      corpus: { name: 'Brown corpus (default)', fingerprint: '' }, layers: [0, 1], topK: 20, seed: 0, excerptCount: 96,
      status: 'done', progress: 1, createdAt: 1, updatedAt: 1, bytes: 0,
    };
    const h = harness({ scans: [earlier] });
    const { controller } = h;
    h.model.set(TOY);
    controller.open();
    controller.next();
    controller.next();
    expect(controller.state.get().scan).toEqual({ status: 'done', scanId: 'scan-earlier', reused: true });
    expect(h.scanRequests).toEqual([]);
    controller.next();
    expect(controller.state.get().explain.status).toBe('running');
    controller.close();
    await until(() => controller.state.get().explain.status === 'idle', 'the job to stop');
    controller.open();
    expect(stepId(h)).toBe('explain');
    await until(() => controller.state.get().explain.status === 'done', 'the resumed job');
    expect(controller.state.get().explain.result!.scores.all.ev_correlation_score!).toBeGreaterThan(0.95);
  }, 60_000);
});
