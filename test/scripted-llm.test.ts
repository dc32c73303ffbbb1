/**
 * The built-in scripted LLM (src/lib/explain/scripted-llm.ts) through the real client, SDK,
 * explainer, simulators and scorer, in Node: the toy model's planted neurons are captured for real
 * (test/fixtures/planted-records.ts), and the endpoint `scripted:planted` must explain each with its
 * planted description, score it high, score another neuron's rule low, and refuse, with a message
 * saying why, an unplanted neuron or an explanation it cannot judge. No network is used.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { serializeNeuronRecord } from '../src/lib/explain/formats.ts';
import type { NeuronRecord } from '../src/lib/activations/records.ts';
import { testConnection } from '../src/lib/explain/connection-test.ts';
import { explainAndScoreNeuron } from '../src/lib/explain/pipeline.ts';
import { neuronRecordFromExcerpts } from '../src/lib/explain/records-from-capture.ts';
import { isScriptedEndpoint, isScriptedSource, SCRIPTED_ENDPOINT, SCRIPTED_MODEL } from '../src/lib/explain/scripted-llm.ts';
import { createSimulator } from '../src/lib/explain/simulator.ts';
import { createChatClient } from '../src/lib/llm/client.ts';
import { LlmBadRequestError, LlmConfigError } from '../src/lib/llm/errors.ts';
import { applyPreset, LLM_PRESETS, type LlmSettings } from '../src/lib/llm/settings.ts';
import { PLANTED_NEURON_RULES } from '../src/lib/model/planted-neurons.ts';
import { capturePlantedRecords, neuronKey, type PlantedCapture } from './fixtures/planted-records.ts';

let capture: PlantedCapture;
/**
 * Records of unplanted (random) neurons of the toy model, from the same texts: 0:5, and 0:45, whose
 * top excerpts follow the " the" rule in part (correlation about 0.85).
 */
let unplanted: NeuronRecord[];

beforeAll(async () => {
  capture = await capturePlantedRecords({ excerptCount: 120, excerptLength: 64 });
  // The planted capture keeps only planted neurons; an unplanted neuron's excerpts come from a
  // second, real capture of layer 0 on the same texts.
  const { ActivationCapturer } = await import('../src/lib/model/capture.ts');
  const { loadModel } = await import('../src/lib/model/load-model.ts');
  const { dirSource } = await import('../src/lib/model/dir-source.node.ts');
  const { loadNodeRuntime } = await import('../src/lib/model/ort-runtime.node.ts');
  const model = await loadModel(await dirSource(new URL('../public/models/toy-planted', import.meta.url).pathname));
  const capturer = new ActivationCapturer(model, await loadNodeRuntime('node'));
  try {
    const rows = capture.excerpts.slice(0, 60).map((e) => model.tokenizer.encode(e.tokens.join('')).slice(0, 48).map((t) => t.id));
    const length = Math.min(...rows.map((r) => r.length));
    const result = await capturer.runTokens(rows.map((r) => r.slice(0, length)), { layers: [0] });
    const values = result.layers.get(0)!;
    unplanted = [5, 45].map((neuron) =>
      neuronRecordFromExcerpts(
        { layer_index: 0, neuron_index: neuron },
        rows.map((row, b) => ({
          tokens: row.slice(0, length).map((id) => model.tokenizer.decode([id])),
          activations: Array.from({ length }, (_, t) => values[(b * result.seq + t) * result.dMlp + neuron]),
        })),
        { seed: 1 },
      ),
    );
  } finally {
    await capturer.dispose();
  }
}, 120_000);

afterEach(() => vi.restoreAllMocks());

const recordOf = (layer: number, neuron: number) => capture.records.get(neuronKey({ layer, neuron }))!;

describe('the scripted LLM', () => {
  it('explains every planted neuron with its rule, scores it high, and scores another rule low, without the network', async () => {
    const network = vi.spyOn(globalThis, 'fetch');
    const client = createChatClient({ baseUrl: SCRIPTED_ENDPOINT });
    for (const [i, rule] of PLANTED_NEURON_RULES.entries()) {
      const record = recordOf(rule.layer, rule.neuron);
      const result = await explainAndScoreNeuron(record, client, { model: SCRIPTED_MODEL });
      expect(result.explanations).toEqual([rule.description]);
      const scores = result.scores[0];
      expect(scores.simulation_modes).toEqual(['logprob']);
      expect(scores.all.coverage).toBe(1);
      expect(scores.all.ev_correlation_score!, rule.id).toBeGreaterThan(0.95);

      // Another neuron's rule, given as the explanation, is judged by that rule: a low score.
      const other = PLANTED_NEURON_RULES[(i + 1) % PLANTED_NEURON_RULES.length];
      const wrong = await explainAndScoreNeuron(record, client, { model: SCRIPTED_MODEL, givenExplanations: [other.description] });
      expect(wrong.scores[0].all.ev_correlation_score!, `${rule.id} as ${other.id}`).toBeLessThan(0.3);
    }
    expect(network).not.toHaveBeenCalled();
    const usage = client.usage();
    expect(usage.requests).toBeGreaterThan(50);
    expect(usage.costUsd).toBe(0);
  }, 60_000);

  it('answers the sampled JSON simulator too, and asks for every explanation wanted (n)', async () => {
    const client = createChatClient({ baseUrl: SCRIPTED_ENDPOINT });
    const digits = PLANTED_NEURON_RULES.find((r) => r.id === 'digits')!;
    const result = await explainAndScoreNeuron(recordOf(digits.layer, digits.neuron), client, {
      model: SCRIPTED_MODEL,
      explanations: 2,
      simulation: { mode: 'sampled' },
    });
    expect(result.explanations).toEqual([digits.description, digits.description]);
    expect(result.scores[0].simulation_modes).toEqual(['sampled']);
    expect(result.scores[0].all.ev_correlation_score!).toBeGreaterThan(0.95);
  });

  it('refuses an unplanted neuron, and an explanation it has no rule for, saying why', async () => {
    const client = createChatClient({ baseUrl: SCRIPTED_ENDPOINT, maxRetries: 0 });
    for (const record of unplanted) {
      const failure = await explainAndScoreNeuron(record, client, { model: SCRIPTED_MODEL }).catch((err: Error) => err);
      expect(failure).toBeInstanceOf(LlmBadRequestError);
      expect((failure as Error).message).toMatch(/explains only the toy model's planted neurons \(0:37 \(numbers: tokens made only of digits\), .*follow none of their rules/);
      expect((failure as Error).message).toMatch(/Set a real LLM endpoint in Settings/);
    }

    const simulator = createSimulator(client, { model: SCRIPTED_MODEL, fallbackToSampled: false });
    const refused = await simulator.simulate('words about the sea', [['The', ' sea', ' was', ' calm']]).catch((err: Error) => err);
    expect(refused).toBeInstanceOf(LlmBadRequestError);
    expect((refused as Error).message).toMatch(/simulates only the planted neurons' own explanations .* not "words about the sea"/);
  });

  it('passes "Test connection" in logprob mode, and an unknown scripted endpoint is a configuration error', async () => {
    const report = await testConnection({ baseUrl: SCRIPTED_ENDPOINT, model: SCRIPTED_MODEL });
    expect(report).toMatchObject({ ok: true, logprobs: true, mode: 'logprob' });
    expect(() => createChatClient({ baseUrl: 'scripted:gpt-5' })).toThrow(LlmConfigError);
    expect(() => createChatClient({ baseUrl: 'scripted:gpt-5' })).toThrow(/the built-in one is scripted:planted/);
    // Anything else than the prompts it knows is refused.
    const client = createChatClient({ baseUrl: SCRIPTED_ENDPOINT, maxRetries: 0 });
    await expect(client.complete({ model: SCRIPTED_MODEL, messages: [{ role: 'user', content: 'Hello?' }] })).rejects.toThrow(
      /answers only Neurolens' explainer and simulator prompts/,
    );
  });

  it('answers the command line too (--base-url scripted:planted), with no key', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'neurolens-scripted-'));
    try {
      const file = join(dir, 'digits.json');
      await writeFile(file, serializeNeuronRecord(recordOf(0, 37)));
      const env = { ...process.env };
      delete env.OPENAI_API_KEY;
      const { stderr } = await promisify(execFile)(
        process.execPath,
        [join(import.meta.dirname, '../bin/neurolens.mjs'), 'explain', '--record', file, '--base-url', SCRIPTED_ENDPOINT, '--model', SCRIPTED_MODEL],
        { env, timeout: 60_000 },
      );
      expect(stderr.trim()).toMatch(/^score (0\.9[5-9]\d|1\.000) \(top .*, logprob, coverage 1\.00\): numbers: tokens made only of digits$/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('is a preset of the LLM settings, whose source reads as scripted, and takes no key along', () => {
    const preset = LLM_PRESETS.find((p) => p.baseUrl === SCRIPTED_ENDPOINT)!;
    expect(preset.label).toBe('Built-in scripted (toy model only)');
    const openai: LlmSettings = { baseUrl: 'https://api.openai.com/v1', model: 'gpt-4o-mini', apiKey: 'sk-secret', rememberKey: false };
    const scripted = applyPreset(openai, preset);
    expect(scripted).toMatchObject({ baseUrl: SCRIPTED_ENDPOINT, model: SCRIPTED_MODEL, apiKey: '' });
    expect(isScriptedEndpoint(scripted.baseUrl)).toBe(true);
    expect(isScriptedEndpoint(openai.baseUrl)).toBe(false);
    expect(isScriptedSource(`${SCRIPTED_MODEL} @ ${SCRIPTED_ENDPOINT}`)).toBe(true);
    expect(isScriptedSource('gpt-4o-mini @ https://api.openai.com/v1')).toBe(false);
    expect(isScriptedSource(undefined)).toBe(false);
  });
});
