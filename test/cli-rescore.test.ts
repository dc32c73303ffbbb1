import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { run } from '../src/cli/commands/rescore.ts';
import { CliError } from '../src/cli/cli-error.ts';

const dir = mkdtempSync(join(tmpdir(), 'neurolens-rescore-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

function sequence(trueActivations: number[], expected: (number | null)[]) {
  return {
    dataclass_name: 'ScoredSequenceSimulation',
    simulation: {
      dataclass_name: 'SequenceSimulation',
      tokens: trueActivations.map((_, i) => ` w${i}`),
      expected_activations: expected,
      activation_scale: 'simulated_normalized_activations',
      distribution_values: [],
      distribution_probabilities: [],
      uncalibrated_simulation: null,
    },
    true_activations: trueActivations,
    // Deliberately wrong stored scores: rescore must recompute, not copy.
    ev_correlation_score: 0.5,
    rsquared_score: 0.5,
    absolute_dev_explained_score: 0.5,
  };
}

function explanation(text: string, sequences: ReturnType<typeof sequence>[]) {
  return {
    dataclass_name: 'ScoredExplanation',
    explanation: text,
    scored_simulation: {
      dataclass_name: 'ScoredSimulation',
      scored_sequence_simulations: sequences,
      ev_correlation_score: 0.5,
      rsquared_score: 0.5,
      absolute_dev_explained_score: 0.5,
    },
  };
}

function results(layer: number, neuron: number, explanations: ReturnType<typeof explanation>[]) {
  return {
    dataclass_name: 'NeuronSimulationResults',
    neuron_id: { dataclass_name: 'NeuronId', layer_index: layer, neuron_index: neuron },
    scored_explanations: explanations,
  };
}

// Neuron 2/7, explanation "foxes": tokens with a simulated value are (1,1), (2,2), (3,4); the
// true activation 100 has none and must be ignored. By hand: Sxy = 3, Sxx = 2, Syy = 42/9 so
// r = 9/sqrt(84); rsquared = 1 - (1/3)/(14/3) = 13/14; abs dev = 1 - (1/3)/(6/3) = 5/6.
// Explanation "constant": the simulation is constant, so the correlation is undefined (null);
// rsquared = 1 - mean(25,16,25,16)/mean(0,1,0,1) = -40; abs dev = 1 - 4.5/0.5 = -8.
const neuronA = results(2, 7, [
  explanation('foxes', [sequence([1, 2], [1, 2]), sequence([3, 100], [4, null])]),
  explanation('constant', [sequence([0, 1, 0, 1], [5, 5, 5, 5])]),
]);
// Neuron 0/3: a perfect linear prediction, y = 2x: r = 1; rsquared = 1 - mean(x^2)/mean(x^2) = 0;
// abs dev = 1 - mean|x|/mean|x| = 0.
const neuronB = results(0, 3, [explanation('perfect', [sequence([1, 2, 3], [2, 4, 6])])]);

function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

async function captureRun(argv: string[]): Promise<string> {
  let out = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return true;
  });
  await run(argv);
  vi.restoreAllMocks();
  return out;
}

async function cliErrorOf(argv: string[]): Promise<CliError> {
  vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  try {
    await run(argv);
  } catch (error) {
    expect(error).toBeInstanceOf(CliError);
    return error as CliError;
  } finally {
    vi.restoreAllMocks();
  }
  throw new Error('expected a CliError, but run() succeeded');
}

describe('neurolens rescore', () => {
  it('recomputes every score of every explanation in a JSONL file', async () => {
    const path = file('two-neurons.jsonl', `${JSON.stringify(neuronA)}\n${JSON.stringify(neuronB)}\n`);
    const out = await captureRun([path]);
    const lines = out.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    const rows = lines.map((l) => JSON.parse(l));
    expect(Object.keys(rows[0])).toEqual([
      'explanation',
      'ev_correlation_score',
      'rsquared_score',
      'absolute_dev_explained_score',
      'layer_index',
      'neuron_index',
    ]);
    expect(rows.map((r) => [r.explanation, r.layer_index, r.neuron_index])).toEqual([
      ['foxes', 2, 7],
      ['constant', 2, 7],
      ['perfect', 0, 3],
    ]);
    expect(rows[0].ev_correlation_score).toBeCloseTo(9 / Math.sqrt(84), 12);
    expect(rows[0].rsquared_score).toBeCloseTo(13 / 14, 12);
    expect(rows[0].absolute_dev_explained_score).toBeCloseTo(5 / 6, 12);
    expect(rows[1].ev_correlation_score).toBeNull();
    expect(rows[1].rsquared_score).toBeCloseTo(-40, 12);
    expect(rows[1].absolute_dev_explained_score).toBeCloseTo(-8, 12);
    expect(rows[2].ev_correlation_score).toBeCloseTo(1, 12);
    expect(rows[2].rsquared_score).toBeCloseTo(0, 12);
    expect(rows[2].absolute_dev_explained_score).toBeCloseTo(0, 12);
  });

  it('reads a single pretty-printed JSON object', async () => {
    const out = await captureRun([file('one.json', JSON.stringify(neuronB, null, 2))]);
    const rows = out.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(rows).toHaveLength(1);
    expect(rows[0].explanation).toBe('perfect');
    expect(rows[0].ev_correlation_score).toBeCloseTo(1, 12);
  });

  it('prints usage for --help', async () => {
    expect(await captureRun(['--help'])).toMatch(/^usage: neurolens rescore/);
  });

  it('reports usage errors with exit code 2', async () => {
    expect((await cliErrorOf([])).exitCode).toBe(2);
    expect((await cliErrorOf(['a.jsonl', 'b.jsonl'])).message).toMatch(/^expected one results file, got 2/);
    expect((await cliErrorOf(['--frobnicate', 'x'])).message).toMatch(/^unknown option "--frobnicate"/);
  });

  it('reports unreadable and malformed files in one clear line', async () => {
    const missing = join(dir, 'nope.jsonl');
    expect((await cliErrorOf([missing])).message).toBe(`${missing}: no such file`);
    expect((await cliErrorOf([dir])).message).toBe(`${dir}: is a directory, expected a .json or .jsonl file`);

    const broken = file('broken.jsonl', `${JSON.stringify(neuronA)}\n{"dataclass_name": "NeuronSim\n`);
    expect((await cliErrorOf([broken])).message).toMatch(new RegExp(`^${broken}: line 2: not valid JSON \\(`));

    const short = structuredClone(neuronA);
    short.scored_explanations[0].scored_simulation.scored_sequence_simulations[1].true_activations.pop();
    const mismatch = file('mismatch.jsonl', `${JSON.stringify(neuronB)}\n${JSON.stringify(short)}\n`);
    expect((await cliErrorOf([mismatch])).message).toBe(
      `${mismatch}: line 2: scored_explanations[0].scored_simulation.scored_sequence_simulations[1].true_activations: expected 2 numbers, got 1`,
    );

    const record = file(
      'record.json',
      JSON.stringify({ dataclass_name: 'NeuronRecord', neuron_id: { layer_index: 0, neuron_index: 0 } }),
    );
    expect((await cliErrorOf([record])).message).toBe(
      `${record}: dataclass_name: expected "NeuronSimulationResults", got string "NeuronRecord"`,
    );

    const empty = file('empty.jsonl', '\n\n');
    expect((await cliErrorOf([empty])).message).toMatch(/empty input/);
    for (const error of [await cliErrorOf([broken]), await cliErrorOf([mismatch])]) {
      expect(error.message).not.toContain('\n');
      expect(error.exitCode).toBe(1);
    }
  });
});
