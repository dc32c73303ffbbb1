/**
 * The ablation score (src/lib/explain/ablation-score.ts) on the toy model's planted neurons, with
 * records captured for real and simulations from the loopback "LLM" of test/fixtures/planted-llm.ts,
 * which is handed the planted rules and answers the real simulation prompts. The planted rule's
 * simulation put in place of the neuron must keep the model's predictions far better than mean
 * ablation does; another neuron's rule must not. The score is stored with the explanation, in
 * Neurolens' scores and as an extension field of the paper's format.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NeuronRecord } from '../src/lib/activations/records.ts';
import { computeAblationScore, AblationScoreError, type AblationScorer } from '../src/lib/explain/ablation-score.ts';
import { parseNeuronSimulationResults, serializeNeuronSimulationResults } from '../src/lib/explain/formats.ts';
import { runExplainJob, MemoryJobStore } from '../src/lib/explain/job.ts';
import { explainAndScoreNeuron } from '../src/lib/explain/pipeline.ts';
import { createChatClient } from '../src/lib/llm/client.ts';
import { ActivationCapturer } from '../src/lib/model/capture.ts';
import { dirSource } from '../src/lib/model/dir-source.node.ts';
import { loadModel } from '../src/lib/model/load-model.ts';
import { loadNodeRuntime } from '../src/lib/model/ort-runtime.node.ts';
import type { PlantedNeuron } from '../scripts/toy/planted-model.ts';
import { plantedNeuronLlm } from './fixtures/planted-llm.ts';
import { capturePlantedRecords, neuronKey, type PlantedCapture } from './fixtures/planted-records.ts';
import { startFakeOpenAiServer, type FakeOpenAiServer } from './helpers/fake-openai-server.ts';

const TOY = join(import.meta.dirname, '../public/models/toy-planted');

let capture: PlantedCapture;
let server: FakeOpenAiServer;
let capturer: ActivationCapturer;
let scorer: AblationScorer;

beforeAll(async () => {
  capture = await capturePlantedRecords({ excerptCount: 120, excerptLength: 64 });
  server = await startFakeOpenAiServer();
  capturer = new ActivationCapturer(await loadModel(await dirSource(TOY)), await loadNodeRuntime('node'));
  scorer = (input, signal) => computeAblationScore(capturer, input, { signal });
}, 120_000);

afterAll(async () => {
  await server?.close();
  await capturer?.dispose();
});

const recordOf = (p: PlantedNeuron): NeuronRecord => capture.records.get(neuronKey(p))!;
const wrongFor = (p: PlantedNeuron): PlantedNeuron => {
  const i = capture.planted.findIndex((q) => q.id === p.id);
  return capture.planted[(i + 1) % capture.planted.length];
};

describe('ablation score of planted neurons (simulations from a scripted LLM handed the planted rules)', () => {
  it('is near 1 for the planted rule and far lower for another neuron\'s rule, stored with the explanation', async () => {
    const client = createChatClient({ baseUrl: server.baseUrl, concurrency: 8 });
    server.setHandler(plantedNeuronLlm({ planted: capture.planted }));
    const reported: Record<string, { right: number; wrong: number }> = {};
    // Five scored excerpts per explanation (three top, two random) keep the test quick.
    const records = { scoreTop: 3, scoreRandom: 2 };
    for (const p of capture.planted) {
      const wrong = wrongFor(p);
      const options = { model: 'fake-model', givenExplanations: [p.description, wrong.description], records };
      const result = await explainAndScoreNeuron(recordOf(p), client, options, { ablation: scorer });
      const [right, bad] = result.scores;
      expect(right.ablation, p.id).toBeTruthy();
      expect(bad.ablation, p.id).toBeTruthy();
      const rightScore = right.ablation!.score!;
      const wrongScore = bad.ablation!.score!;
      reported[p.id] = { right: rightScore, wrong: wrongScore };
      expect(rightScore, p.id).toBeGreaterThan(0.9);
      expect(wrongScore, p.id).toBeLessThan(rightScore - 0.5);
      // Every scored record was run; the recomputed real activations are the record's own.
      expect(right.ablation!.excerpts.map((e) => e.key)).toEqual(['top0', 'top1', 'top2', 'random0', 'random1']);
      expect(right.ablation!.excerpts.every((e) => e.skipped === undefined && e.jsd_mean_ablated! > 0)).toBe(true);
      expect(right.ablation!.max_activation_difference!).toBeLessThan(1e-5);
      expect(right.ablation!.mean_activation).toBe(recordOf(p).mean);
      // The calibration maps the simulator's 0–10 to the neuron's ~0–4.
      expect(right.ablation!.calibration.slope).toBeGreaterThan(0.3);
      expect(right.ablation!.calibration.slope).toBeLessThan(0.5);
      // Stored in the paper's format as an extension, dropped for the reference reader, read back losslessly.
      const stored = result.simulation_results.scored_explanations.map((s) => s.scored_simulation.ablation_score);
      expect(stored).toEqual([rightScore, wrongScore]);
      const text = serializeNeuronSimulationResults(result.simulation_results);
      const read = parseNeuronSimulationResults(text);
      expect(read.scored_explanations.map((s) => s.scored_simulation.ablation_score)).toEqual([rightScore, wrongScore]);
      expect(serializeNeuronSimulationResults(read)).toBe(text);
      expect(serializeNeuronSimulationResults(result.simulation_results, { paperFieldsOnly: true })).not.toContain('ablation_score');
    }
    console.log('ablation scores (scripted LLM handed the planted rules):', JSON.stringify(reported));
  }, 300_000);

  it('is deterministic, and a job stores and recalls it', async () => {
    const p = capture.planted[0];
    const client = createChatClient({ baseUrl: server.baseUrl, concurrency: 8 });
    server.setHandler(plantedNeuronLlm({ planted: capture.planted }));
    const store = new MemoryJobStore();
    const options = { model: 'fake-model', givenExplanations: [p.description], records: { scoreTop: 2, scoreRandom: 1 } };
    const spec = { jobId: 'ablation', records: [recordOf(p)], options };
    let calls = 0;
    const counting: AblationScorer = (input, signal) => {
      calls++;
      return scorer(input, signal);
    };
    const first = await runExplainJob(client, spec, store, { ablation: counting });
    expect(calls).toBe(1);
    const again = await runExplainJob(client, spec, store, { ablation: counting });
    expect(calls).toBe(1);
    expect(again.neurons[0].scores[0].ablation).toEqual(first.neurons[0].scores[0].ablation);
    // Recomputing gives the same numbers bit for bit.
    const fresh = await explainAndScoreNeuron(recordOf(p), client, options, { ablation: scorer });
    expect(fresh.scores[0].ablation).toEqual(first.neurons[0].scores[0].ablation);
  }, 120_000);

  it('skips excerpts it cannot map to token ids, and refuses bad input clearly', async () => {
    const p = capture.planted[0];
    const record = recordOf(p);
    const excerpts = record.most_positive_activation_records.slice(0, 2).map((r, i) => ({
      key: `top${i}`,
      tokens: r.tokens,
      activations: r.activations,
      expected: r.activations.map((a) => (a > 1 ? 10 : 0)),
    }));
    const unmappable = { ...excerpts[1], key: 'odd', tokens: ['\u{1F98A}', ...excerpts[1].tokens.slice(1)] };
    const result = await computeAblationScore(capturer, { layer: p.layer, neuron: p.neuron, mean: record.mean!, excerpts: [excerpts[0], unmappable] });
    expect(result.excerpts[0].score).toBeGreaterThan(0.9);
    expect(result.excerpts[1]).toMatchObject({ key: 'odd', score: null });
    expect(result.excerpts[1].skipped).toMatch(/does not name exactly one token id/);
    expect(result.score).toBe(result.excerpts[0].score);
    await expect(computeAblationScore(capturer, { layer: p.layer, neuron: p.neuron, mean: NaN, excerpts })).rejects.toThrow(AblationScoreError);
    await expect(computeAblationScore(capturer, { layer: p.layer, neuron: p.neuron, mean: 0, excerpts: [] })).rejects.toThrow(/no excerpts/);
    await expect(computeAblationScore(capturer, { layer: 9, neuron: 0, mean: 0, excerpts })).rejects.toThrow(/layer 9 is out of range/);
  }, 60_000);
});
