import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActivationRecord, NeuronRecord } from '../src/lib/activations/records.ts';
import { createChatClient } from '../src/lib/llm/client.ts';
import type { ChatRequest } from '../src/lib/llm/types.ts';
import { validateNeuronSimulationResults } from '../src/lib/explain/formats.ts';
import { JobError, MemoryJobStore, runExplainJob, type JobStore } from '../src/lib/explain/job.ts';
import { FileJobStore } from '../src/lib/explain/job-store.node.ts';
import { scoreDetection } from '../src/lib/explain/detection-scorer.ts';
import { scoreFuzzing } from '../src/lib/explain/fuzzing-scorer.ts';
import { explainAndScoreNeuron, PipelineError, selectRecords, type PipelineProgress } from '../src/lib/explain/pipeline.ts';
import {
  logprobTokens,
  reply,
  startFakeOpenAiServer,
  withDelay,
  type FakeHandler,
  type FakeOpenAiServer,
} from './helpers/fake-openai-server.ts';

// ---------------------------------------------------------------------------------------------
// A synthetic neuron that fires on animal names, and scripted LLMs that simulate it.

const ANIMALS = [' cat', ' dog', ' horse', ' cow', ' fox', ' owl', ' bear', ' wolf'];
const OTHERS = [' the', ' a', ' house', ' ran', ' blue', ' quickly', ' table', ' river', ' and', ' of', ' to', ' green', ' stone', ' paper', ',', '.'];

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

function excerpt(random: () => number, animalRate: number, length = 64): ActivationRecord {
  const tokens: string[] = [];
  const activations: number[] = [];
  for (let i = 0; i < length; i++) {
    if (random() < animalRate) {
      tokens.push(ANIMALS[Math.floor(random() * ANIMALS.length)]);
      activations.push(4 + random() * 6);
    } else {
      tokens.push(OTHERS[Math.floor(random() * OTHERS.length)]);
      activations.push(-0.17 + random() * 0.3);
    }
  }
  return { tokens, activations };
}

function animalNeuron(layer: number, neuron: number, seed: number, top = 10, randomCount = 10): NeuronRecord {
  const random = prng(seed);
  const tops = Array.from({ length: top }, () => excerpt(random, 0.15));
  const max = (r: ActivationRecord) => Math.max(...r.activations);
  tops.sort((a, b) => max(b) - max(a));
  return {
    dataclass_name: 'NeuronRecord',
    neuron_id: { layer_index: layer, neuron_index: neuron },
    // Every other random excerpt has no animal at all: clear negatives for the detection scorer.
    random_sample: Array.from({ length: randomCount }, (_, i) => excerpt(random, i % 2 === 0 ? 0.04 : 0)),
    random_sample_by_quantile: null,
    quantile_boundaries: null,
    mean: null,
    variance: null,
    skewness: null,
    kurtosis: null,
    most_positive_activation_records: tops,
  };
}

function tokensOf(body: ChatRequest): string[] {
  const last = body.messages.filter((m) => m.role === 'user').at(-1)!.content;
  const tokens: string[] = [];
  for (const line of last.split('\n')) {
    const m = /^(\d+)\t(".*")$/.exec(line);
    if (m) tokens[Number(m[1])] = JSON.parse(m[2]) as string;
  }
  return tokens;
}

/** A logprob-mode answer giving `values` with certainty. */
function certainAnswer(tokens: string[], values: number[]) {
  const text = tokens.map((t, i) => `${i}\t${JSON.stringify(t)}\t${values[i]}`).join('\n');
  return reply.completion(text, { logprobs: logprobTokens(text) });
}

const isExplainer = (body: ChatRequest) => body.messages[0].content.includes('interpret single neurons');
const binaryKind = (body: ChatRequest) =>
  body.response_format?.type === 'json_schema' && body.response_format.json_schema.name === 'excerpt_answers'
    ? body.messages[0].content.includes('marked <<like this>>')
      ? 'fuzzing'
      : 'detection'
    : undefined;

/** Excerpt texts of a detection/fuzzing request, by number. */
function excerptsOf(body: ChatRequest): string[] {
  return [...body.messages.at(-1)!.content.matchAll(/^Excerpt \d+: <start>(.*)<end>$/gm)].map((m) => m[1]);
}

const containsAnimal = (text: string) => ANIMALS.some((a) => text.includes(a));

/**
 * A scripted LLM. "perfect" simulates from the true activations (normalised by the neuron's
 * largest activation) and judges excerpts by the truth; "random" answers at random.
 */
function scriptedLlm(records: NeuronRecord[], kind: 'perfect' | 'random', seed = 1): FakeHandler {
  const truth = new Map<string, number[]>();
  for (const record of records) {
    const all = [...record.most_positive_activation_records, ...record.random_sample];
    const max = Math.max(...all.flatMap((r) => r.activations));
    for (const r of all) truth.set(JSON.stringify(r.tokens), r.activations.map((a) => Math.max(0, Math.min(10, Math.floor((10 * a) / max)))));
  }
  const random = prng(seed);
  return (body) => {
    if (isExplainer(body)) {
      const n = body.n ?? 1;
      return reply.completion(null, { choices: ['animal names', 'names of animals'].slice(0, n).map((content) => ({ content })) });
    }
    const binary = binaryKind(body);
    if (binary) {
      const answers = excerptsOf(body).map((text, i) => {
        const spans = [...text.matchAll(/<<(.*?)>>/g)].map((m) => m[1]);
        const answer =
          kind === 'random'
            ? random() < 0.5
            : binary === 'detection'
              ? containsAnimal(text)
              : spans.every((span) => span.split(/(?= )/).every((word) => ANIMALS.includes(word)));
        return { excerpt: i + 1, answer };
      });
      return reply.completion(JSON.stringify({ answers }));
    }
    if (body.logprobs) {
      const tokens = tokensOf(body);
      const values = kind === 'perfect' ? truth.get(JSON.stringify(tokens)) : tokens.map(() => Math.floor(random() * 11));
      if (!values) throw new Error('simulation request for an excerpt the neuron does not have');
      return certainAnswer(tokens, values);
    }
    throw new Error(`unexpected request: ${JSON.stringify(body).slice(0, 200)}`);
  };
}

let server: FakeOpenAiServer;
beforeAll(async () => {
  server = await startFakeOpenAiServer();
});
afterAll(async () => {
  await server.close();
});

function serve(handler: FakeHandler) {
  server.reset();
  server.setHandler(handler);
}

describe('record selection', () => {
  it('interleaves top records between explaining and scoring and keeps random records disjoint', () => {
    const record = animalNeuron(0, 0, 7, 12, 12);
    // One random record duplicates an explaining record: it must not be scored.
    record.random_sample[0] = record.most_positive_activation_records[2];
    const selected = selectRecords(record, {}, true);
    expect(selected.indices.explain).toEqual([0, 2, 4, 6, 8]);
    expect(selected.indices.score_top).toEqual([1, 3, 5, 7, 9]);
    expect(selected.indices.score_random).toEqual([1, 2, 3, 4, 5]);
    expect(selected.indices.calibration_top).toEqual([11]);
    expect(selected.indices.calibration_random).toEqual([6, 7, 8, 9, 10]);
  });

  it('rejects malformed records with a message naming the field', async () => {
    const record = animalNeuron(0, 0, 7);
    record.most_positive_activation_records[1] = { tokens: ['a'], activations: [] };
    expect(() => selectRecords(record)).toThrow(/most_positive_activation_records\[1\]/);
    await expect(explainAndScoreNeuron({} as NeuronRecord, createChatClient({ baseUrl: server.baseUrl }), { model: 'm' })).rejects.toThrow(
      PipelineError,
    );
    const noTop = animalNeuron(0, 0, 7);
    noTop.most_positive_activation_records = [];
    await expect(explainAndScoreNeuron(noTop, createChatClient({ baseUrl: server.baseUrl }), { model: 'm' })).rejects.toThrow(
      /no top-activating records/,
    );
  });
});

describe('explainAndScoreNeuron', () => {
  it('scores ~1 with an LLM that simulates perfectly, in the paper format, on disjoint records', async () => {
    const record = animalNeuron(3, 17, 11, 20, 20);
    serve(scriptedLlm([record], 'perfect'));
    const progress: PipelineProgress[] = [];
    const result = await explainAndScoreNeuron(
      record,
      createChatClient({ baseUrl: server.baseUrl }),
      { model: 'm', explanations: 2, calibration: true, detection: true, fuzzing: true },
      { onProgress: (p) => progress.push(p) },
    );
    expect(result.explanations).toEqual(['animal names', 'names of animals']);
    validateNeuronSimulationResults(result.simulation_results);
    expect(result.simulation_results.neuron_id).toMatchObject({ layer_index: 3, neuron_index: 17 });
    expect(result.simulation_results.scored_explanations).toHaveLength(2);
    for (const [e, scores] of result.scores.entries()) {
      expect(scores.all.ev_correlation_score).toBeGreaterThan(0.97);
      expect(scores.top.ev_correlation_score).toBeGreaterThan(0.97);
      expect(scores.random.ev_correlation_score).toBeGreaterThan(0.9);
      expect(scores.all.coverage).toBe(1);
      expect(scores.simulation_modes).toEqual(['logprob']);
      expect(scores.calibrated!.scores.rsquared_score).toBeGreaterThan(0.9);
      expect(scores.detection!.balanced_accuracy).toBe(1);
      expect(scores.fuzzing!.balanced_accuracy).toBe(1);
      const scored = result.simulation_results.scored_explanations[e];
      expect(scored.scored_simulation.ev_correlation_score).toBe(scores.all.ev_correlation_score);
      // 5 top + 5 random scored sequences, with their true activations.
      expect(scored.scored_simulation.scored_sequence_simulations).toHaveLength(10);
    }
    // Nothing used for explaining was simulated for scoring.
    const explained = new Set(result.records_used.explain.map((i) => JSON.stringify(record.most_positive_activation_records[i].tokens)));
    const simulated = server.chatRequests.filter((r) => r.body!.logprobs).map((r) => JSON.stringify(tokensOf(r.body!)));
    expect(simulated).toHaveLength(2 * 20); // 10 scored + 10 calibration records per explanation
    expect(simulated.some((s) => explained.has(s))).toBe(false);
    // The explainer saw exactly the 5 explaining records (full blocks; sparse pairs are repeated after them).
    const explainer = server.chatRequests.find((r) => isExplainer(r.body!))!.body!.messages.at(-1)!.content;
    const blocks = [...explainer.matchAll(/<start>\n([^]*?)\n<end>/g)].map((m) => m[1].split('\n').map((l) => l.split('\t')[0]));
    expect(blocks.filter((b) => b.length === 64)).toEqual(
      result.records_used.explain.map((i) => record.most_positive_activation_records[i].tokens),
    );
    expect(progress.at(-1)).toMatchObject({ done: progress.at(-1)!.total });
    expect(progress.at(-1)!.total).toBe(1 + 2 * (20 + 2));
  });

  it('scores ~0 with an LLM that answers at random', async () => {
    const record = animalNeuron(1, 2, 5);
    serve(scriptedLlm([record], 'random', 99));
    const result = await explainAndScoreNeuron(record, createChatClient({ baseUrl: server.baseUrl }), { model: 'm' });
    const [scores] = result.scores;
    expect(Math.abs(scores.all.ev_correlation_score!)).toBeLessThan(0.2);
    expect(Math.abs(scores.top.ev_correlation_score!)).toBeLessThan(0.25);
  });

  it('scores given explanations without calling the explainer', async () => {
    const record = animalNeuron(1, 2, 5);
    serve(scriptedLlm([record], 'perfect'));
    const result = await explainAndScoreNeuron(record, createChatClient({ baseUrl: server.baseUrl }), {
      model: 'm',
      givenExplanations: ['animals'],
    });
    expect(result.explanations).toEqual(['animals']);
    expect(server.chatRequests.some((r) => isExplainer(r.body!))).toBe(false);
    expect(server.chatRequests).toHaveLength(10);
  });

  it('stops sibling requests and rejects when cancelled', async () => {
    const record = animalNeuron(1, 2, 5);
    const perfect = scriptedLlm([record], 'perfect');
    serve(async (body, i, r) => {
      if (!isExplainer(body)) await new Promise((resolve) => setTimeout(resolve, 200));
      return perfect(body, i, r);
    });
    const controller = new AbortController();
    const run = explainAndScoreNeuron(record, createChatClient({ baseUrl: server.baseUrl, concurrency: 10 }), { model: 'm' }, {
      signal: controller.signal,
    });
    await server.waitForRequests(5);
    controller.abort();
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    // Nothing is left running: every request still open at the server was abandoned by the client.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(server.inFlight).toBe(0);
    expect(server.chatRequests.filter((r) => r.clientAborted).length).toBeGreaterThan(0);
  });
});

describe('detection and fuzzing scorers', () => {
  const record = animalNeuron(4, 5, 33);
  const top = record.most_positive_activation_records.slice(0, 5);
  const randoms = record.random_sample.slice(0, 6);

  it('gives 0.5 to a judge that always says yes, and counts each excerpt once', async () => {
    serve((body) => reply.completion(JSON.stringify({ answers: excerptsOf(body).map((_, i) => ({ excerpt: i + 1, answer: true })) })));
    const detection = await scoreDetection(createChatClient({ baseUrl: server.baseUrl }), 'animals', top, randoms, { model: 'm' });
    // Random excerpts with an animal reach well over a fifth of the top activation: left out.
    const clearNegatives = randoms.filter((r) => !r.tokens.some((t) => ANIMALS.includes(t))).length;
    expect(detection.labels.filter((l) => !l)).toHaveLength(clearNegatives);
    expect(detection.labels.filter((l) => l)).toHaveLength(5);
    expect(detection.balanced_accuracy).toBe(0.5);
    const fuzzing = await scoreFuzzing(createChatClient({ baseUrl: server.baseUrl }), 'animals', top, { model: 'm' });
    expect(fuzzing.labels).toHaveLength(10);
    expect(fuzzing.balanced_accuracy).toBe(0.5);
  });

  it('asks again for unanswered excerpts and reports coverage', async () => {
    serve((body, i) => {
      const excerpts = excerptsOf(body);
      const answers = excerpts.map((text, k) => ({ excerpt: k + 1, answer: containsAnimal(text) }));
      // First reply: cut off after two answers; the retry leaves out the last excerpt.
      if (i === 0) return reply.completion(JSON.stringify({ answers }).slice(0, 70));
      return reply.completion(JSON.stringify({ answers: answers.slice(0, -1) }));
    });
    const result = await scoreDetection(createChatClient({ baseUrl: server.baseUrl }), 'animals', top, randoms, { model: 'm' });
    expect(server.chatRequests).toHaveLength(2);
    expect(result.predictions.at(-1)).toBeNull();
    expect(result.predictions.slice(0, -1).every((p) => p !== null)).toBe(true);
    expect(result.coverage).toBeCloseTo((result.labels.length - 1) / result.labels.length, 10);
    expect(result.balanced_accuracy).toBe(1);
  });
});

describe('runExplainJob', () => {
  const records = [animalNeuron(0, 1, 21), animalNeuron(2, 3, 22)];
  const options = { model: 'm', explanations: 2, detection: true };
  const client = () => createChatClient({ baseUrl: server.baseUrl, concurrency: 1, maxRetries: 0 });
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'neurolens-job-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  /**
   * Runs the job once uninterrupted (reference), then under `jobId` with the server failing at
   * request `crashFraction` of the way, then again (resumed) with a healthy server.
   */
  async function crashAndResume(jobId: string, crashFraction: number, firstStore: JobStore, secondStore: JobStore) {
    serve(scriptedLlm(records, 'perfect'));
    const reference = await runExplainJob(client(), { jobId, records, options }, new MemoryJobStore());
    const total = server.chatRequests.length;
    // Every request of a run is distinct, so "repeated" below means "the same step asked again".
    expect(new Set(server.chatRequests.map((r) => r.rawBody)).size).toBe(total);

    const crashAt = Math.floor(total * crashFraction);
    const perfect = scriptedLlm(records, 'perfect');
    // Answers come a little late, so a request the client starts just as the crash cancels the job
    // is seen by the server as abandoned rather than answered.
    serve(async (body, i, r) => (i === crashAt ? reply.error(400, 'simulated crash') : withDelay(await perfect(body, i, r), 5)));
    await expect(runExplainJob(client(), { jobId, records, options }, firstStore)).rejects.toThrow(/simulated crash/);
    await new Promise((resolve) => setTimeout(resolve, 100)); // let abandoned requests close
    expect(server.chatRequests.length).toBeGreaterThanOrEqual(crashAt + 1);
    expect(server.chatRequests.slice(crashAt + 1).every((r) => r.clientAborted)).toBe(true);
    const answered = server.chatRequests.slice(0, crashAt).filter((r) => !r.clientAborted);
    expect(answered).toHaveLength(crashAt);
    const answeredBeforeCrash = new Set(answered.map((r) => r.rawBody));

    serve(scriptedLlm(records, 'perfect'));
    const resumed = await runExplainJob(client(), { jobId, records, options }, secondStore);
    return {
      reference,
      resumed,
      total,
      crashAt,
      resumedRequests: server.chatRequests.length,
      repeated: server.chatRequests.filter((r) => answeredBeforeCrash.has(r.rawBody)).length,
    };
  }

  it('resumes after a crash with the same in-memory store: same result, no finished step asked again', async () => {
    const store = new MemoryJobStore();
    const run = await crashAndResume('memory-job', 0.3, store, store);
    expect(run.repeated).toBe(0);
    expect(run.resumedRequests).toBe(run.total - run.crashAt);
    expect(run.resumed).toEqual(run.reference);
  });

  it('resumes from files after a crash, and a finished job reruns without any request', async () => {
    const dir = join(tmp, 'resume');
    const run = await crashAndResume('file-job', 0.7, new FileJobStore(dir), new FileJobStore(dir));
    expect(run.repeated).toBe(0);
    expect(run.resumedRequests).toBe(run.total - run.crashAt);
    expect(run.resumed).toEqual(run.reference);
    server.reset();
    const again = await runExplainJob(client(), { jobId: 'file-job', records, options }, new FileJobStore(dir));
    expect(server.chatRequests).toHaveLength(0);
    expect(again).toEqual(run.reference);
  });

  it('refuses to resume a job id with different inputs, and writes one file per step', async () => {
    serve(scriptedLlm(records, 'perfect'));
    const dir = join(tmp, 'mismatch');
    const store = new FileJobStore(dir);
    await runExplainJob(client(), { jobId: 'a/b', records: records.slice(0, 1), options: { model: 'm' } }, store);
    await expect(
      runExplainJob(client(), { jobId: 'a/b', records: records.slice(0, 1), options: { model: 'other' } }, store),
    ).rejects.toThrow(JobError);
    // The job id's "/" cannot escape the store directory.
    const [jobDir] = await readdir(dir);
    expect(jobDir).toBe('a%2fb');
    const files = await readdir(join(dir, jobDir));
    // manifest + explanations + 10 simulations + result; no temporary file left behind.
    expect(files.filter((f) => f.endsWith('.json'))).toHaveLength(13);
    expect(files.some((f) => f.endsWith('.tmp'))).toBe(false);
  });
});
