/**
 * Ground truth for the whole explain → simulate → score loop: the toy model's planted neurons are
 * captured for real (onnxruntime-node) on generated English, their records are built with
 * records-from-capture, and the pipeline runs against a loopback "LLM" that answers the real
 * prompts like a perfect model (test/fixtures/planted-llm.ts). The true rule must score high and
 * another neuron's rule must score low, through the library and through the CLI.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NeuronRecord } from '../src/lib/activations/records.ts';
import { parseNeuronRecord, parseNeuronSimulationResults, serializeNeuronRecord } from '../src/lib/explain/formats.ts';
import { explainAndScoreNeuron, selectRecords } from '../src/lib/explain/pipeline.ts';
import {
  activationMoments,
  neuronRecordFromExcerpts,
  RecordsFromCaptureError,
  type CapturedExcerpt,
} from '../src/lib/explain/records-from-capture.ts';
import { createChatClient } from '../src/lib/llm/client.ts';
import type { PlantedNeuron } from '../scripts/toy/planted-model.ts';
import { capturePlantedRecords, neuronKey, type PlantedCapture } from './fixtures/planted-records.ts';
import { parseSimulationPrompt, plantedNeuronLlm } from './fixtures/planted-llm.ts';
import { startFakeOpenAiServer, type FakeOpenAiServer } from './helpers/fake-openai-server.ts';

const run = promisify(execFile);
const REPO = join(import.meta.dirname, '..');

let capture: PlantedCapture;
let server: FakeOpenAiServer;
let dir: string;

beforeAll(async () => {
  capture = await capturePlantedRecords({ excerptCount: 200, excerptLength: 64 });
  server = await startFakeOpenAiServer();
  dir = await mkdtemp(join(tmpdir(), 'neurolens-e2e-'));
});

afterAll(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const recordOf = (p: PlantedNeuron): NeuronRecord => capture.records.get(neuronKey(p))!;
/** The "wrong" explanation of each neuron: the next planted neuron's (a different, unrelated rule). */
const wrongFor = (p: PlantedNeuron): PlantedNeuron => {
  const i = capture.planted.findIndex((q) => q.id === p.id);
  return capture.planted[(i + 1) % capture.planted.length];
};

describe('captured records of the planted neurons', () => {
  it('fire exactly where their rule says, and the records are built from those excerpts', () => {
    expect(capture.backend).toBe('onnxruntime-node');
    expect(capture.excerpts).toHaveLength(200);
    for (const p of capture.planted) {
      let firing = 0;
      for (const e of capture.excerpts) {
        const a = e.activations.get(neuronKey(p))!;
        e.tokens.forEach((_, i) => {
          // Planted: GELU(≈4) where the rule holds, GELU(−3) ≈ −0.004 elsewhere.
          if (p.matches(e.tokens, i)) {
            firing++;
            expect(a[i]).toBeGreaterThan(3);
          } else expect(Math.abs(a[i])).toBeLessThan(0.05);
        });
      }
      // The text exercises every rule often enough to score on.
      expect(firing, p.id).toBeGreaterThan(200);
      const record = recordOf(p);
      expect(record.neuron_id).toMatchObject({ layer_index: p.layer, neuron_index: p.neuron });
      expect(record.most_positive_activation_records).toHaveLength(20);
      expect(record.random_sample).toHaveLength(20);
      const maxima = record.most_positive_activation_records.map((r) => Math.max(...r.activations));
      expect(maxima).toEqual([...maxima].sort((a, b) => b - a));
      // A record file round-trips through the paper's format.
      expect(parseNeuronRecord(serializeNeuronRecord(record))).toEqual(record);
    }
  });
});

describe('records-from-capture', () => {
  const excerpt = (activations: number[]): CapturedExcerpt => ({ tokens: activations.map((_, i) => ` t${i}`), activations });

  it('keeps the top K by max activation (ties: earlier first) and a seeded uniform sample', () => {
    const excerpts = [[0, 1], [5, 0], [0, 3], [5, 2], [-1, 0.5]].map(excerpt);
    const record = neuronRecordFromExcerpts({ layer_index: 2, neuron_index: 7 }, excerpts, { topK: 3, randomSampleSize: 2, seed: 3 });
    expect(record.most_positive_activation_records.map((r) => r.activations)).toEqual([[5, 0], [5, 2], [0, 3]]);
    expect(record.random_sample).toHaveLength(2);
    expect(record.random_sample_by_quantile).toBeNull();
    expect(record.quantile_boundaries).toBeNull();
    // Deterministic per seed; over many seeds every excerpt is drawn about equally often.
    const again = neuronRecordFromExcerpts({ layer_index: 2, neuron_index: 7 }, excerpts, { topK: 3, randomSampleSize: 2, seed: 3 });
    expect(again).toEqual(record);
    const counts = new Map<string, number>();
    for (let seed = 0; seed < 2000; seed++) {
      const drawn = neuronRecordFromExcerpts({ layer_index: 0, neuron_index: 0 }, excerpts, { topK: 1, randomSampleSize: 2, seed });
      expect(new Set(drawn.random_sample.map((r) => JSON.stringify(r.activations))).size).toBe(2); // without replacement
      for (const r of drawn.random_sample) counts.set(JSON.stringify(r.activations), (counts.get(JSON.stringify(r.activations)) ?? 0) + 1);
    }
    // Each of 5 excerpts is in a 2-of-5 sample with probability 0.4: 800 of 2000 expected.
    for (const c of counts.values()) expect(Math.abs(c - 800)).toBeLessThan(100);
    expect(counts.size).toBe(5);
  });

  it('reports population mean, variance, skewness and excess kurtosis over all tokens', () => {
    // Values 0,0,0,4 repeated: mean 1, variance 3, skewness 2/√3, kurtosis 7/3 − 3 (a Bernoulli(1/4) × 4).
    const m = activationMoments([excerpt([0, 0, 0, 4]), excerpt([0, 4, 0, 0])]);
    expect(m.mean).toBeCloseTo(1, 12);
    expect(m.variance).toBeCloseTo(3, 12);
    expect(m.skewness).toBeCloseTo(2 / Math.sqrt(3), 12);
    expect(m.kurtosis).toBeCloseTo(7 / 3 - 3, 12);
    expect(activationMoments([excerpt([2, 2, 2])])).toEqual({ mean: 2, variance: 0, skewness: null, kurtosis: null });
    // Normal-ish data has excess kurtosis near 0 (Irwin–Hall sums of 12 uniforms: exactly −0.1).
    let s = 1;
    const rand = () => ((s = (s * 48271) % 2147483647) / 2147483647);
    const normalish = Array.from({ length: 40000 }, () => Array.from({ length: 12 }, rand).reduce((a, b) => a + b) - 6);
    expect(activationMoments([excerpt(normalish)]).kurtosis!).toBeCloseTo(-0.1, 1);
  });

  it('refuses bad input with clear errors', () => {
    const id = { layer_index: 0, neuron_index: 0 };
    expect(() => neuronRecordFromExcerpts(id, [])).toThrow(RecordsFromCaptureError);
    expect(() => neuronRecordFromExcerpts(id, [{ tokens: ['a', 'b'], activations: [1] }])).toThrow(/2 tokens but 1 activations/);
    expect(() => neuronRecordFromExcerpts(id, [{ tokens: ['a'], activations: [Number.NaN] }])).toThrow(/finite number/);
    expect(() => neuronRecordFromExcerpts(id, [excerpt([1])], { topK: 0 })).toThrow(/topK must be an integer >= 1/);
    expect(() => neuronRecordFromExcerpts({ layer_index: 1.5, neuron_index: 0 }, [excerpt([1])])).toThrow(/integer layer_index/);
  });
});

describe('explain → simulate → score on the planted neurons', () => {
  it('the true rule scores > 0.9 and another neuron\'s rule < 0.3, for every planted neuron', async () => {
    const client = createChatClient({ baseUrl: server.baseUrl, concurrency: 8 });
    for (const p of capture.planted) {
      for (const wrong of [false, true]) {
        server.reset();
        server.setHandler(plantedNeuronLlm({ planted: capture.planted, answerFor: wrong ? wrongFor : undefined }));
        const result = await explainAndScoreNeuron(recordOf(p), client, { model: 'fake-model' });
        const expected = wrong ? wrongFor(p) : p;
        expect(result.explanations).toEqual([expected.description]);

        // 1 explainer request, then one simulation per scored record (5 top + 5 random).
        expect(server.chatRequests).toHaveLength(11);
        const simulated = server.chatRequests.slice(1).map((r) => parseSimulationPrompt(r.body!.messages.at(-1)!.content));
        const selected = selectRecords(recordOf(p));
        expect(simulated.map((s) => s.tokens).sort()).toEqual([...selected.scoreTop, ...selected.scoreRandom].map((r) => r.tokens).sort());
        expect(simulated.every((s) => s.explanation === expected.description)).toBe(true);

        const scores = result.scores[0];
        expect(scores.simulation_modes).toEqual(['logprob']);
        expect(scores.all.coverage).toBe(1);
        const headline = scores.all.ev_correlation_score;
        expect(headline).toBe(result.simulation_results.scored_explanations[0].scored_simulation.ev_correlation_score);
        expect(typeof headline).toBe('number');
        console.log(`${p.id.padEnd(13)} ${wrong ? `wrong rule (${expected.id})` : 'true rule'}: headline ${headline!.toFixed(3)}`);
        if (wrong) expect(headline!).toBeLessThan(0.3);
        else expect(headline!).toBeGreaterThan(0.9);
      }
    }
  });

  it('the CLI runs the same loop from a record file and prints the paper-format results', async () => {
    const p = capture.planted.find((q) => q.id === 'after-the')!;
    const record = recordOf(p);
    const file = join(dir, 'after-the.json');
    await writeFile(file, serializeNeuronRecord(record));
    server.reset();
    server.setHandler(plantedNeuronLlm({ planted: capture.planted }));
    const env = { ...process.env, OPENAI_API_KEY: 'sk-e2e-test' };
    const { stdout, stderr } = await run(
      process.execPath,
      [join(REPO, 'bin/neurolens.mjs'), 'explain', '--record', file, '--base-url', server.baseUrl, '--model', 'fake-model', '--n', '2', '--concurrency', '2'],
      { cwd: REPO, env, timeout: 60_000 },
    );
    const results = parseNeuronSimulationResults(stdout);
    expect(results.neuron_id).toMatchObject({ layer_index: p.layer, neuron_index: p.neuron });
    expect(results.scored_explanations.map((e) => e.explanation)).toEqual([p.description, p.description]);
    const selected = selectRecords(record);
    for (const scored of results.scored_explanations) {
      const sims = scored.scored_simulation.scored_sequence_simulations;
      expect(sims).toHaveLength(10);
      // Scored on the held-out top records and the random ones, never the explaining ones.
      expect(sims.map((s) => s.true_activations)).toEqual([...selected.scoreTop, ...selected.scoreRandom].map((r) => r.activations));
      expect(sims.every((s) => s.simulation.simulation_mode === 'logprob' && s.simulation.coverage === 1)).toBe(true);
      expect(scored.scored_simulation.ev_correlation_score!).toBeGreaterThan(0.9);
    }
    const summary = stderr.trim().split('\n');
    expect(summary).toHaveLength(2);
    expect(summary[0]).toMatch(/^score (0\.9\d\d|1\.000) \(top .*, random .*, logprob, coverage 1\.00\): the word right after " the"$/);
    // 20 simulations queued at once on 2 slots: no listener-leak warning (the old client printed one).
    expect(stderr).not.toMatch(/MaxListenersExceededWarning/);
    // 1 explainer request for both candidates (n = 2), 2 × 10 simulations; the key sent on each.
    expect(server.chatRequests).toHaveLength(21);
    expect(server.chatRequests[0].body!.n).toBe(2);
    expect(server.chatRequests.every((r) => r.headers.authorization === 'Bearer sk-e2e-test')).toBe(true);
  });
});
