import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ActivationRecord, NeuronRecord } from '../src/lib/activations/records.ts';
import type { ChatRequest } from '../src/lib/llm/types.ts';
import { CliError } from '../src/cli/cli-error.ts';
import { run as explain } from '../src/cli/commands/explain.ts';
import { run as simulate } from '../src/cli/commands/simulate.ts';
import { run as score } from '../src/cli/commands/score.ts';
import { parseNeuronSimulationResults, validateSequenceSimulation } from '../src/lib/explain/formats.ts';
import { logprobTokens, reply, startFakeOpenAiServer, type FakeHandler, type FakeOpenAiServer } from './helpers/fake-openai-server.ts';

// A neuron firing on " x" tokens, and a scripted LLM that simulates it from the truth.
function record(): NeuronRecord {
  const excerpt = (seed: number, fires: boolean): ActivationRecord => {
    const tokens = Array.from({ length: 16 }, (_, i) => ((i * 7 + seed) % 5 === 0 && fires ? ' x' : ` w${(i + seed) % 9}`));
    return { tokens, activations: tokens.map((t, i) => (t === ' x' ? 2 + ((i + seed) % 4) : 0)) };
  };
  return {
    neuron_id: { layer_index: 1, neuron_index: 42 },
    random_sample: Array.from({ length: 6 }, (_, i) => excerpt(100 + i, i % 2 === 0)),
    random_sample_by_quantile: null,
    quantile_boundaries: null,
    mean: null,
    variance: null,
    skewness: null,
    kurtosis: null,
    most_positive_activation_records: Array.from({ length: 10 }, (_, i) => excerpt(i, true)),
  };
}

function tokensOf(body: ChatRequest): string[] {
  const last = body.messages.filter((m) => m.role === 'user').at(-1)!.content;
  return [...last.matchAll(/^\d+\t(".*")$/gm)].map((m) => JSON.parse(m[1]) as string);
}

let server: FakeOpenAiServer;
let scriptedLlm: FakeHandler;
let dir: string;
let recordFile: string;
let out: string[];
let err: string[];
const savedKey = process.env.OPENAI_API_KEY;

beforeAll(async () => {
  const neuron = record();
  const truth = new Map<string, number[]>();
  for (const r of [...neuron.most_positive_activation_records, ...neuron.random_sample]) {
    truth.set(JSON.stringify(r.tokens), r.activations.map((a) => Math.floor((10 * a) / 5)));
  }
  scriptedLlm = (body) => {
    if (body.messages[0].content.includes('interpret single neurons')) return reply.completion('the token x.');
    if (body.response_format?.type === 'json_schema' && body.response_format.json_schema.name === 'excerpt_answers') {
      const count = body.messages.at(-1)!.content.match(/^Excerpt \d+:/gm)!.length;
      return reply.completion(JSON.stringify({ answers: Array.from({ length: count }, (_, i) => ({ excerpt: i + 1, answer: true })) }));
    }
    const tokens = tokensOf(body);
    const values = truth.get(JSON.stringify(tokens))!;
    const text = tokens.map((t, i) => `${i}\t${JSON.stringify(t)}\t${values[i]}`).join('\n');
    return reply.completion(text, { logprobs: logprobTokens(text) });
  };
  server = await startFakeOpenAiServer(scriptedLlm);
  dir = await mkdtemp(join(tmpdir(), 'neurolens-cli-'));
  recordFile = join(dir, 'record.json');
  await writeFile(recordFile, JSON.stringify(neuron));
});

afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  server.reset();
  server.setHandler(scriptedLlm);
  delete process.env.OPENAI_API_KEY;
  out = [];
  err = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out.push(String(chunk));
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    err.push(String(chunk));
    return true;
  });
});

afterEach(() => {
  vi.restoreAllMocks();
  if (savedKey === undefined) delete process.env.OPENAI_API_KEY;
  else process.env.OPENAI_API_KEY = savedKey;
});

const local = () => ['--record', recordFile, '--base-url', server.baseUrl, '--model', 'fake-model'];

describe('neurolens explain', () => {
  it('explains, simulates and scores, printing NeuronSimulationResults on stdout', async () => {
    await explain(local());
    expect(out.join('').trim().split('\n')).toHaveLength(1);
    const results = parseNeuronSimulationResults(out.join(''));
    expect(results.neuron_id).toMatchObject({ layer_index: 1, neuron_index: 42 });
    expect(results.scored_explanations.map((e) => e.explanation)).toEqual(['the token x']);
    const scored = results.scored_explanations[0].scored_simulation;
    expect(scored.scored_sequence_simulations).toHaveLength(10);
    expect(scored.ev_correlation_score).toBeGreaterThan(0.95);
    expect(err.join('')).toMatch(/^score (?:0\.9\d\d|1\.000) \(top .*logprob, coverage 1\.00\): the token x\n$/);
    // 1 explanation request + 10 simulations, all to the given model.
    expect(server.chatRequests).toHaveLength(11);
    expect(server.chatRequests.every((r) => r.body!.model === 'fake-model')).toBe(true);
  });

  it('only explains with --no-score, asking for --n candidates, and sends the key when set', async () => {
    process.env.OPENAI_API_KEY = 'sk-test-key';
    await explain([...local(), '--no-score', '--n', '2']);
    expect(JSON.parse(out.join(''))).toEqual({ neuron_id: { layer_index: 1, neuron_index: 42 }, explanations: ['the token x', 'the token x'] });
    expect(server.chatRequests[0].body!.n).toBe(2);
    expect(server.chatRequests[0].headers.authorization).toBe('Bearer sk-test-key');
  });

  it('fails with one clear line when the OpenAI key is missing, before any request', async () => {
    const error = await explain(['--record', recordFile]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CliError);
    expect((error as Error).message).toMatch(/OPENAI_API_KEY is not set/);
    expect(server.chatRequests).toHaveLength(0);
  });

  it('reports unreadable or invalid records and bad flags as CLI errors', async () => {
    await expect(explain([...local().slice(2), '--record', join(dir, 'missing.json')])).rejects.toThrow(/missing\.json: no such file/);
    const bad = join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ neuron_id: { layer_index: 0, neuron_index: 0 } }));
    await expect(explain([...local().slice(2), '--record', bad])).rejects.toThrow(/not a NeuronRecord/);
    await expect(explain([...local(), '--mode', 'guess'])).rejects.toMatchObject({ name: 'CliError', exitCode: 2 });
    await expect(explain([...local(), '--n', '0'])).rejects.toThrow(/--n must be a positive integer/);
    await expect(explain([...local(), '--bogus'])).rejects.toMatchObject({ name: 'CliError', exitCode: 2 });
    await expect(explain(['--base-url', server.baseUrl])).rejects.toThrow(/--record/);
  });

  it('turns LLM errors into a one-line CLI error', async () => {
    server.setHandler(() => reply.error(401, 'Incorrect API key provided.\nSee the docs.', { code: 'invalid_api_key' }));
    const error = await explain(local()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CliError);
    expect((error as Error).message).toMatch(/401|Incorrect API key/);
    expect((error as Error).message).not.toContain('\n');
  });
});

describe('neurolens simulate and score', () => {
  it('simulate prints one SequenceSimulation per scoring excerpt', async () => {
    await simulate([...local(), '--explanation', 'the token x']);
    const lines = out.join('').trim().split('\n');
    expect(lines).toHaveLength(10);
    for (const line of lines) {
      const sim = validateSequenceSimulation(JSON.parse(line));
      expect(sim.simulation_mode).toBe('logprob');
      expect(sim.coverage).toBe(1);
    }
    await expect(simulate(local())).rejects.toThrow(/--explanation/);
  });

  it('score scores several explanations with detection, in the paper format', async () => {
    await score([...local(), '--explanation', 'the token x', '--explanation', 'x tokens', '--detection']);
    const results = parseNeuronSimulationResults(out.join(''));
    expect(results.scored_explanations.map((e) => e.explanation)).toEqual(['the token x', 'x tokens']);
    const summary = err.join('').trim().split('\n');
    expect(summary).toHaveLength(2);
    // An always-yes judge: balanced accuracy 0.5.
    expect(summary[0]).toContain('detection=0.500');
    expect(server.chatRequests.some((r) => r.body!.messages[0].content.includes('interpret single neurons'))).toBe(false);
  });

  it('resumes from --job-dir and reuses --cache-dir answers without new requests', async () => {
    const jobDir = join(dir, 'jobs');
    await score([...local(), '--explanation', 'the token x', '--job-dir', jobDir]);
    const first = out.join('');
    expect(server.chatRequests).toHaveLength(10);
    expect((await readdir(jobDir)).length).toBe(1);
    server.reset();
    out.length = 0;
    await score([...local(), '--explanation', 'the token x', '--job-dir', jobDir]);
    expect(server.chatRequests).toHaveLength(0);
    expect(out.join('')).toBe(first);

    const cacheDir = join(dir, 'cache');
    server.reset();
    await simulate([...local(), '--explanation', 'x', '--cache-dir', cacheDir]);
    expect(server.chatRequests).toHaveLength(10);
    server.reset();
    await simulate([...local(), '--explanation', 'x', '--cache-dir', cacheDir]);
    expect(server.chatRequests).toHaveLength(0);
  });
});
