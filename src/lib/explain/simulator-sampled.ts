/**
 * Sampled simulation, for models and servers without logprobs (reasoning models, LM Studio, ...):
 * the LLM answers JSON `{"activations": [{"index": i, "value": v}, ...]}` (structured output when
 * the server supports it), optionally several samples per sequence; each token's distribution is
 * the empirical one over the samples and its expected value their mean.
 *
 * Answers that are truncated or otherwise not valid JSON are salvaged entry by entry (every
 * complete `{"index": i, "value": v}` object counts). Tokens no sample gave a value for are asked
 * for once more; what is still missing stays `null` and lowers `coverage`.
 */
import type { ChatCompleter, ChatRequest } from '../llm/types.ts';
import type { SequenceSimulation, SimulationMode } from './explanation-types.ts';
import type { ValueDistribution } from './expected-value.ts';
import { generationFields } from './prompt-format.ts';
import type { SimulateCallOptions, Simulator, SimulatorOptions } from './simulator.ts';
import { sequenceSimulationFromDistributions, simulateEachSequence } from './simulator.ts';
import { buildSampledSimulationMessages, retryReminder, SAMPLED_ANSWER_SCHEMA } from './simulator-prompt.ts';

/** Output tokens allowed per excerpt token (`{"index": 12, "value": 3},`). */
const OUTPUT_TOKENS_PER_ENTRY = 14;

export interface SampledSimulatorOptions
  extends Pick<SimulatorOptions, 'model' | 'samples' | 'retries' | 'reasoningModel'> {
  /** Temperature; default 1 with several samples (they should differ), else 0. */
  temperature?: number;
  /** Ask for JSON-schema structured output (default true); off for servers that reject it. */
  structuredOutput?: boolean;
}

const ENTRY_PATTERN =
  /\{\s*"index"\s*:\s*(-?\d+(?:\.\d+)?)\s*,\s*"value"\s*:\s*(-?\d+(?:\.\d+)?)\s*\}|\{\s*"value"\s*:\s*(-?\d+(?:\.\d+)?)\s*,\s*"index"\s*:\s*(-?\d+(?:\.\d+)?)\s*\}/g;

function acceptValue(raw: unknown): number | null {
  if (typeof raw !== 'number' || !Number.isFinite(raw) || raw < 0 || raw > 10) return null;
  return Math.round(raw);
}

/**
 * The values one answer gives, by token index. Entries with an index outside the excerpt, a value
 * outside 0..10, or an index given twice (the LLM lost its place) are left out.
 */
export function parseSampledAnswer(answer: string | null, tokenCount: number): Map<number, number> {
  const pairs: [unknown, unknown][] = [];
  const text = (answer ?? '').replace(/^\s*```(?:json)?\s*|\s*```\s*$/g, '');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const list = Array.isArray(parsed)
    ? parsed
    : parsed && typeof parsed === 'object' && Array.isArray((parsed as { activations?: unknown }).activations)
      ? (parsed as { activations: unknown[] }).activations
      : undefined;
  if (list) {
    list.forEach((entry, position) => {
      if (typeof entry === 'number') pairs.push([position, entry]);
      else if (entry && typeof entry === 'object') {
        const e = entry as { index?: unknown; value?: unknown };
        pairs.push([e.index, e.value]);
      }
    });
  } else {
    // Not JSON as a whole (typically cut off at the token limit): keep every complete entry.
    for (const m of text.matchAll(ENTRY_PATTERN)) {
      pairs.push(m[1] !== undefined ? [Number(m[1]), Number(m[2])] : [Number(m[4]), Number(m[3])]);
    }
  }
  const values = new Map<number, number>();
  const repeated = new Set<number>();
  for (const [index, raw] of pairs) {
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= tokenCount) continue;
    const value = acceptValue(raw);
    if (value === null) continue;
    if (values.has(index)) repeated.add(index);
    values.set(index, value);
  }
  for (const index of repeated) values.delete(index);
  return values;
}

/** The empirical distribution of one token's sampled values, or null without samples. */
export function empiricalDistribution(samples: readonly number[]): ValueDistribution | null {
  if (samples.length === 0) return null;
  const counts = new Map<number, number>();
  for (const v of samples) counts.set(v, (counts.get(v) ?? 0) + 1);
  const values = [...counts.keys()].sort((a, b) => a - b);
  return { values, probabilities: values.map((v) => (counts.get(v) ?? 0) / samples.length) };
}

export class SampledSimulator implements Simulator {
  readonly mode: SimulationMode = 'sampled';

  constructor(
    private readonly client: ChatCompleter,
    private readonly options: SampledSimulatorOptions,
  ) {
    const samples = options.samples ?? 1;
    if (!Number.isInteger(samples) || samples < 1) {
      throw new RangeError(`samples must be a positive integer, got ${samples}`);
    }
  }

  async simulate(
    explanation: string,
    tokens: readonly (readonly string[])[],
    options: SimulateCallOptions = {},
  ): Promise<SequenceSimulation[]> {
    return simulateEachSequence(explanation, tokens, this.mode, (sequence) => this.simulateSequence(explanation, sequence, options.signal));
  }

  private async simulateSequence(
    explanation: string,
    tokens: readonly string[],
    signal: AbortSignal | undefined,
  ): Promise<SequenceSimulation> {
    const samples: number[][] = tokens.map(() => []);
    await this.collect(explanation, tokens, undefined, samples, signal);
    const retries = this.options.retries ?? 1;
    for (let r = 0; r < retries && samples.some((s) => s.length === 0); r++) {
      const again: number[][] = tokens.map(() => []);
      await this.collect(explanation, tokens, retryReminder(tokens.length), again, signal);
      again.forEach((values, i) => {
        if (samples[i].length === 0) samples[i] = values;
      });
    }
    return sequenceSimulationFromDistributions(tokens, samples.map(empiricalDistribution), this.mode);
  }

  /** Draws `samples` answers (with `n` when the server honours it) into `into`. */
  private async collect(
    explanation: string,
    tokens: readonly string[],
    reminder: string | undefined,
    into: number[][],
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const wanted = this.options.samples ?? 1;
    const temperature = this.options.temperature ?? (wanted > 1 ? 1 : 0);
    let answers = 0;
    // Servers that ignore `n` return one answer per request; top up with differently seeded ones.
    for (let request = 0; answers < wanted && request < wanted; request++) {
      const remaining = wanted - answers;
      const body: ChatRequest = {
        model: this.options.model,
        messages: buildSampledSimulationMessages(explanation, tokens, reminder),
        ...generationFields(this.options, OUTPUT_TOKENS_PER_ENTRY * tokens.length + 32, temperature),
        ...(remaining > 1 ? { n: remaining } : {}),
        ...(request > 0 ? { seed: request } : {}),
        ...(this.options.structuredOutput === false
          ? {}
          : {
              response_format: {
                type: 'json_schema' as const,
                json_schema: { name: 'simulated_activations', schema: SAMPLED_ANSWER_SCHEMA, strict: true },
              },
            }),
      };
      const response = await this.client.complete(body, { signal });
      for (const choice of response.choices.slice(0, remaining)) {
        answers++;
        for (const [index, value] of parseSampledAnswer(choice.message.content, tokens.length)) {
          into[index].push(value);
        }
      }
    }
  }
}
