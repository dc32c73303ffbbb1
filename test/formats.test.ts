import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  FormatError,
  parseAllNeuronRecords,
  parseAllNeuronSimulationResults,
  parseJsonDocuments,
  parseNeuronRecord,
  parseNeuronSimulationResults,
  parsePaperDocuments,
  serializeDataclass,
  serializeJsonl,
  serializeNeuronRecord,
  serializeNeuronSimulationResults,
  validateNeuronRecord,
} from '../src/lib/explain/formats.ts';
import type { NeuronRecord } from '../src/lib/activations/records.ts';
import type { NeuronSimulationResults } from '../src/lib/explain/explanation-types.ts';

const PUBLISHED = '/work/shared/published/gpt2xl-neuron-1-1.json';

/** Keys of every object, depth first, so key order can be compared as well as content. */
function keyOrder(value: unknown, path = '$', out: string[] = []): string[] {
  if (Array.isArray(value)) value.forEach((v, i) => keyOrder(v, `${path}[${i}]`, out));
  else if (value !== null && typeof value === 'object') {
    out.push(`${path}: ${Object.keys(value).join(',')}`);
    for (const [k, v] of Object.entries(value)) keyOrder(v, `${path}.${k}`, out);
  }
  return out;
}

function record(tokens: string[], activations: number[]) {
  return { dataclass_name: 'ActivationRecord', tokens, activations };
}

/** A small NeuronRecord written the way the paper writes one (all fields, paper key order). */
function makeNeuronRecord(): NeuronRecord {
  return JSON.parse(
    JSON.stringify({
      dataclass_name: 'NeuronRecord',
      neuron_id: { dataclass_name: 'NeuronId', layer_index: 3, neuron_index: 17 },
      random_sample: [record([' a', ' b', ' c'], [-0.1, 0.0, 0.25]), record(['x'], [1.5])],
      random_sample_by_quantile: [[record(['q'], [0.5])], []],
      quantile_boundaries: [null, 0.25, null],
      mean: -0.05,
      variance: 0.0053,
      skewness: null,
      kurtosis: 195.6,
      most_positive_activation_records: [
        record([' the', ' fox', '\n', 'é', '"q"'], [2.5, 1e-7, 1.0000000000000002, 5e-324, -0.169]),
        record([' jumps'], [1.7976931348623157e308]),
      ],
    }),
  ) as NeuronRecord;
}

function makeResults(): NeuronSimulationResults {
  const sim = (tokens: string[], expected: (number | null)[]) => ({
    dataclass_name: 'SequenceSimulation' as const,
    tokens,
    expected_activations: expected,
    activation_scale: 'simulated_normalized_activations' as const,
    distribution_values: expected.map(() => [0, 10]),
    distribution_probabilities: expected.map(() => [0.75, 0.25]),
    uncalibrated_simulation: null,
  });
  return {
    dataclass_name: 'NeuronSimulationResults',
    neuron_id: { dataclass_name: 'NeuronId', layer_index: 0, neuron_index: 5 },
    scored_explanations: [
      {
        dataclass_name: 'ScoredExplanation',
        explanation: 'the word "fox"',
        scored_simulation: {
          dataclass_name: 'ScoredSimulation',
          scored_sequence_simulations: [
            {
              dataclass_name: 'ScoredSequenceSimulation',
              simulation: { ...sim([' a', ' fox'], [0.1, 8.2]), simulation_mode: 'logprob', coverage: 1 },
              true_activations: [0, 2.5],
              ev_correlation_score: 1,
              rsquared_score: -3.2,
              absolute_dev_explained_score: -1.1,
            },
            {
              dataclass_name: 'ScoredSequenceSimulation',
              simulation: sim([' b', ' c', ' d'], [null, 0, 1]),
              true_activations: [0.3, -0.1, 0.2],
              ev_correlation_score: null,
              rsquared_score: null,
              absolute_dev_explained_score: null,
            },
          ],
          ev_correlation_score: 0.9,
          rsquared_score: -2,
          absolute_dev_explained_score: -1,
        },
      },
    ],
  } as NeuronSimulationResults;
}

/** The FormatError message of running `fn`, failing the test if it does not throw one. */
function formatErrorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(FormatError);
    return (error as Error).message;
  }
  throw new Error('expected a FormatError, but nothing was thrown');
}

describe.skipIf(!existsSync(PUBLISHED))(`published NeuronRecord (${PUBLISHED}; skipped when absent)`, () => {
  it('reads the released file and writes it back equal in content and key order', () => {
    const text = readFileSync(PUBLISHED, 'utf8');
    const original = JSON.parse(text);
    const parsed = parseNeuronRecord(text);
    expect(parsed.neuron_id).toEqual({ dataclass_name: 'NeuronId', layer_index: 1, neuron_index: 1 });
    expect(parsed.most_positive_activation_records.length).toBeGreaterThan(0);
    for (const indent of [0, 2]) {
      const written = serializeNeuronRecord(parsed, { indent });
      const reread = JSON.parse(written);
      expect(reread).toStrictEqual(original);
      expect(keyOrder(reread)).toEqual(keyOrder(original));
      expect(parseNeuronRecord(written)).toStrictEqual(original);
    }
  });

  it('reads it as JSON Lines too', () => {
    const parsed = parseNeuronRecord(readFileSync(PUBLISHED, 'utf8'));
    const jsonl = serializeJsonl([parsed, parsed], 'NeuronRecord');
    expect(jsonl.split('\n')).toHaveLength(3); // two lines and the final newline
    const both = parseAllNeuronRecords(jsonl);
    expect(both).toHaveLength(2);
    expect(both[1]).toStrictEqual(parsed);
  });
});

describe('round trips', () => {
  it('keeps every number, string and null of a NeuronRecord', () => {
    const original = makeNeuronRecord();
    const text = serializeNeuronRecord(original);
    expect(text).not.toContain('\n');
    const back = parseNeuronRecord(text);
    expect(back).toStrictEqual(original);
    expect(keyOrder(back)).toEqual(keyOrder(original));
    expect(back.most_positive_activation_records[0].activations[3]).toBe(5e-324);
    expect(back.most_positive_activation_records[1].activations[0]).toBe(1.7976931348623157e308);
    expect(back.most_positive_activation_records[0].tokens[3]).toBe('é');
  });

  it('keeps the sign of -0', () => {
    const r = makeNeuronRecord();
    r.random_sample[0].activations[1] = -0;
    const back = parseNeuronRecord(serializeNeuronRecord(r));
    expect(Object.is(back.random_sample[0].activations[1], -0)).toBe(true);
  });

  it('writes keys in the paper order, then extensions, then unknown fields in their order', () => {
    const r = makeNeuronRecord() as unknown as Record<string, unknown>;
    // Same content, scrambled key order, with unknown fields at two levels.
    const scrambled: Record<string, unknown> = { zeta_extra: { nested: [1, 2] } };
    for (const key of Object.keys(r).reverse()) scrambled[key] = r[key];
    scrambled.alpha_extra = 'kept';
    const rs = scrambled.random_sample as Record<string, unknown>[];
    rs[0] = { activations: rs[0].activations, note: 'x', tokens: rs[0].tokens };
    const written = JSON.parse(serializeNeuronRecord(scrambled as unknown as NeuronRecord));
    expect(Object.keys(written)).toEqual([
      'dataclass_name',
      'neuron_id',
      'random_sample',
      'random_sample_by_quantile',
      'quantile_boundaries',
      'mean',
      'variance',
      'skewness',
      'kurtosis',
      'most_positive_activation_records',
      'zeta_extra',
      'alpha_extra',
    ]);
    expect(written.zeta_extra).toEqual({ nested: [1, 2] });
    // The nested record had no dataclass_name: it is added first, as the reference reader relies on it.
    expect(Object.keys(written.random_sample[0])).toEqual(['dataclass_name', 'tokens', 'activations', 'note']);
    expect(written.random_sample[0].dataclass_name).toBe('ActivationRecord');
  });

  it('adds dataclass_name where missing unless told not to', () => {
    const bare = { tokens: ['a'], activations: [1] };
    expect(JSON.parse(serializeDataclass(bare, 'ActivationRecord'))).toEqual({
      dataclass_name: 'ActivationRecord',
      tokens: ['a'],
      activations: [1],
    });
    expect(JSON.parse(serializeDataclass(bare, 'ActivationRecord', { addDataclassNames: false }))).toEqual(bare);
  });

  it('round-trips NeuronSimulationResults with nulls and Neurolens extension fields', () => {
    const results = makeResults();
    const back = parseNeuronSimulationResults(serializeNeuronSimulationResults(results));
    expect(back).toStrictEqual(results);
    expect(keyOrder(back)).toEqual(keyOrder(results));
    const sim = back.scored_explanations[0].scored_simulation.scored_sequence_simulations[0].simulation;
    expect(Object.keys(sim).slice(-3)).toEqual(['uncalibrated_simulation', 'simulation_mode', 'coverage']);
    expect(back.scored_explanations[0].scored_simulation.scored_sequence_simulations[1].simulation.expected_activations[0]).toBeNull();
  });

  it('can drop extension and unknown fields for the reference Python reader', () => {
    const results = makeResults() as unknown as Record<string, unknown>;
    results.extra = 1;
    const written = JSON.parse(
      serializeNeuronSimulationResults(results as unknown as NeuronSimulationResults, { paperFieldsOnly: true }),
    );
    expect(written.extra).toBeUndefined();
    const sim = written.scored_explanations[0].scored_simulation.scored_sequence_simulations[0].simulation;
    expect(Object.keys(sim)).toEqual([
      'dataclass_name',
      'tokens',
      'expected_activations',
      'activation_scale',
      'distribution_values',
      'distribution_probabilities',
      'uncalibrated_simulation',
    ]);
  });

  it('reads JSON Lines (with CRLF, blank lines and a BOM), JSON arrays and mixed documents', () => {
    const a = makeResults();
    const b = { ...makeResults(), neuron_id: { dataclass_name: 'NeuronId' as const, layer_index: 9, neuron_index: 1 } };
    const jsonl = `\ufeff${serializeJsonl([a, b], 'NeuronSimulationResults').replace(/\n/g, '\r\n')}\r\n\r\n`;
    const both = parseAllNeuronSimulationResults(jsonl);
    expect(both.map((r) => r.neuron_id.layer_index)).toEqual([0, 9]);
    expect(parseAllNeuronSimulationResults(JSON.stringify([a, b]))).toStrictEqual([a, b]);
    const mixed = parsePaperDocuments(
      `${serializeNeuronRecord(makeNeuronRecord())}\n${serializeNeuronSimulationResults(a)}\n`,
    );
    expect(mixed.map((d) => d.kind)).toEqual(['NeuronRecord', 'NeuronSimulationResults']);
    // Without dataclass_name the kind is inferred from the fields.
    const { dataclass_name: _omit, ...untagged } = makeNeuronRecord();
    expect(parsePaperDocuments(JSON.stringify(untagged))[0].kind).toBe('NeuronRecord');
  });

  it('writes indented JSON that reads back the same', () => {
    const r = makeNeuronRecord();
    const text = serializeNeuronRecord(r, { indent: 2 });
    expect(text.split('\n').length).toBeGreaterThan(10);
    expect(parseNeuronRecord(text)).toStrictEqual(r);
  });
});

describe('malformed input', () => {
  const withRecord = (mutate: (r: Record<string, any>) => void): string => {
    const r = makeNeuronRecord() as unknown as Record<string, any>;
    mutate(r);
    return JSON.stringify(r);
  };

  it('reports activations/tokens length mismatches with their path', () => {
    const tokens = Array.from({ length: 64 }, (_, i) => `t${i}`);
    const text = withRecord((r) => {
      r.most_positive_activation_records = [0, 1, 2, 3].map(() => record(tokens, tokens.map(() => 0.5)));
      r.most_positive_activation_records[3].activations.pop();
    });
    expect(formatErrorOf(() => parseNeuronRecord(text))).toBe(
      'most_positive_activation_records[3].activations: expected 64 numbers, got 63',
    );
  });

  it('reports invalid JSON Lines with the line number', () => {
    const good = serializeNeuronRecord(makeNeuronRecord());
    const message = formatErrorOf(() => parseAllNeuronRecords(`${good}\n${good}\n{"broken": \n${good}\n`));
    expect(message).toMatch(/^line 3: not valid JSON \(.+\)$/);
  });

  it('prefixes validation errors in JSON Lines with the line number', () => {
    const good = serializeNeuronRecord(makeNeuronRecord());
    const bad = withRecord((r) => {
      r.random_sample[1].tokens = ['x', 5];
    });
    expect(formatErrorOf(() => parseAllNeuronRecords(`${good}\n\n${bad}\n`))).toBe(
      'line 3: random_sample[1].tokens[1]: expected a string, got 5',
    );
  });

  it('locates a syntax error in a pretty-printed document by line', () => {
    const text = serializeNeuronRecord(makeNeuronRecord(), { indent: 2 }).replace('"mean": -0.05', '"mean": -0.05,,');
    const expectedLine = text.split('\n').findIndex((l) => l.includes(',,')) + 1;
    expect(formatErrorOf(() => parseNeuronRecord(text))).toMatch(new RegExp(`^line ${expectedLine}: not valid JSON`));
  });

  it('rejects non-finite numbers', () => {
    // JSON cannot spell infinity, but an overflowing literal parses to it.
    const three = withRecord((r) => {
      r.random_sample[0].activations = ['ACT'];
    }).replace('["ACT"]', '[0, 1e999, 2]');
    expect(formatErrorOf(() => parseNeuronRecord(three))).toBe(
      'random_sample[0].activations[1]: expected a finite number, got Infinity',
    );
    expect(formatErrorOf(() => parseNeuronRecord(three.replace('1e999', 'NaN')))).toMatch(/^line 1: not valid JSON/);
    const inMean = withRecord((r) => {
      r.mean = 'M';
    }).replace('"M"', '-1e999');
    expect(formatErrorOf(() => parseNeuronRecord(inMean))).toBe(
      'mean: expected a finite number or null, got -Infinity',
    );
  });

  it('rejects a wrong dataclass_name, at the top and nested', () => {
    expect(formatErrorOf(() => parseNeuronRecord(serializeNeuronSimulationResults(makeResults())))).toBe(
      'dataclass_name: expected "NeuronRecord", got string "NeuronSimulationResults"',
    );
    const nested = withRecord((r) => {
      r.random_sample[1].dataclass_name = 'NeuronId';
    });
    expect(formatErrorOf(() => parseNeuronRecord(nested))).toBe(
      'random_sample[1].dataclass_name: expected "ActivationRecord", got string "NeuronId"',
    );
  });

  it('rejects missing required fields', () => {
    expect(formatErrorOf(() => parseNeuronRecord(withRecord((r) => delete r.most_positive_activation_records)))).toBe(
      'missing required field "most_positive_activation_records"',
    );
    expect(formatErrorOf(() => parseNeuronRecord(withRecord((r) => delete r.neuron_id.layer_index)))).toBe(
      'neuron_id: missing required field "layer_index"',
    );
    expect(formatErrorOf(() => parseNeuronRecord(withRecord((r) => delete r.random_sample_by_quantile[0][0].tokens)))).toBe(
      'random_sample_by_quantile[0][0]: missing required field "tokens"',
    );
  });

  it('rejects wrong types and out-of-range values', () => {
    expect(formatErrorOf(() => parseNeuronRecord(withRecord((r) => (r.neuron_id.neuron_index = -1))))).toBe(
      'neuron_id.neuron_index: expected a non-negative integer, got -1',
    );
    expect(formatErrorOf(() => parseNeuronRecord(withRecord((r) => (r.neuron_id.layer_index = 1.5))))).toBe(
      'neuron_id.layer_index: expected a non-negative integer, got 1.5',
    );
    expect(formatErrorOf(() => parseNeuronRecord(withRecord((r) => (r.random_sample = {}))))).toBe(
      'random_sample: expected an array, got an object',
    );
    expect(formatErrorOf(() => parseNeuronRecord(withRecord((r) => (r.quantile_boundaries = [0, 'x']))))).toBe(
      'quantile_boundaries[1]: expected a finite number or null, got string "x"',
    );
    expect(formatErrorOf(() => parseNeuronRecord('"just a string"'))).toBe(
      'expected a JSON object, got string "just a string"',
    );
    expect(formatErrorOf(() => parseAllNeuronRecords('[1]'))).toBe('[0]: expected a JSON object, got 1');
    expect(formatErrorOf(() => parseNeuronRecord('  \n '))).toMatch(/^empty input/);
    const two = `${serializeNeuronRecord(makeNeuronRecord())}\n${serializeNeuronRecord(makeNeuronRecord())}`;
    expect(formatErrorOf(() => parseNeuronRecord(two))).toBe('expected exactly one NeuronRecord, got 2');
  });

  it('checks simulations: lengths, scale, distributions and scores', () => {
    const mutateResults = (mutate: (r: Record<string, any>) => void): string => {
      const r = makeResults() as unknown as Record<string, any>;
      mutate(r);
      return JSON.stringify(r);
    };
    const seq = 'scored_explanations[0].scored_simulation.scored_sequence_simulations';
    const cases: [(r: Record<string, any>) => void, string][] = [
      [
        (r) => r.scored_explanations[0].scored_simulation.scored_sequence_simulations[1].true_activations.pop(),
        `${seq}[1].true_activations: expected 3 numbers, got 2`,
      ],
      [
        (r) => r.scored_explanations[0].scored_simulation.scored_sequence_simulations[0].simulation.expected_activations.push(1),
        `${seq}[0].simulation.expected_activations: expected 2 values, got 3`,
      ],
      [
        (r) => (r.scored_explanations[0].scored_simulation.scored_sequence_simulations[0].simulation.activation_scale = 'raw'),
        `${seq}[0].simulation.activation_scale: expected one of "neuron_activations", "simulated_normalized_activations", got string "raw"`,
      ],
      [
        (r) => r.scored_explanations[0].scored_simulation.scored_sequence_simulations[0].simulation.distribution_probabilities[1].pop(),
        `${seq}[0].simulation.distribution_probabilities[1]: expected 2 numbers, got 1`,
      ],
      [
        (r) => (r.scored_explanations[0].scored_simulation.scored_sequence_simulations[0].simulation.distribution_probabilities[0][0] = -0.5),
        `${seq}[0].simulation.distribution_probabilities[0][0]: expected a probability (>= 0), got -0.5`,
      ],
      [
        (r) => (r.scored_explanations[0].scored_simulation.scored_sequence_simulations[0].simulation.coverage = 1.5),
        `${seq}[0].simulation.coverage: expected a fraction between 0 and 1, got 1.5`,
      ],
      [
        (r) => (r.scored_explanations[0].scored_simulation.ev_correlation_score = 'high'),
        'scored_explanations[0].scored_simulation.ev_correlation_score: expected a finite number or null, got string "high"',
      ],
      [
        (r) => delete r.scored_explanations[0].scored_simulation.scored_sequence_simulations[0].ev_correlation_score,
        `${seq}[0]: missing required field "ev_correlation_score"`,
      ],
      [(r) => (r.scored_explanations[0].explanation = 7), 'scored_explanations[0].explanation: expected a string, got 7'],
    ];
    for (const [mutate, message] of cases) {
      expect(formatErrorOf(() => parseNeuronSimulationResults(mutateResults(mutate)))).toBe(message);
    }
  });

  it('refuses to write invalid objects', () => {
    const r = makeNeuronRecord();
    r.random_sample[0].activations[0] = Number.NaN;
    expect(formatErrorOf(() => serializeNeuronRecord(r))).toBe(
      'random_sample[0].activations[0]: expected a finite number, got NaN',
    );
    expect(formatErrorOf(() => serializeJsonl([makeNeuronRecord(), r], 'NeuronRecord'))).toMatch(/^line 2: /);
    expect(() => validateNeuronRecord(makeNeuronRecord())).not.toThrow();
  });

  it('splits documents without validating them', () => {
    expect(parseJsonDocuments('{"a":1}\n{"b":2}\n').map((d) => [d.line, d.value])).toEqual([
      [1, { a: 1 }],
      [2, { b: 2 }],
    ]);
    expect(parseJsonDocuments('{"a":\n 1}')).toEqual([{ value: { a: 1 }, path: '' }]);
  });
});
