/**
 * The common simulator interface and the choice between simulation modes.
 *
 * A simulator predicts, from an explanation alone, a neuron's (0..10) activation on every token
 * of some excerpts. Every result records how it was made (`simulation_mode`) and which share of
 * tokens got a value (`coverage`); a token the LLM gave no readable value for is `null`, never 0.
 *
 * `createSimulator` with mode "logprob" (the default) falls back to "sampled" when the server
 * refuses logprobs or silently returns none (some local servers); from then on the same simulator
 * stays in sampled mode, and each result says which mode produced it. For a model declared a
 * reasoning model (which refuse logprobs) it starts in sampled mode.
 */
import { isLogprobsUnsupported } from '../llm/errors.ts';
import type { ChatCompleter } from '../llm/types.ts';
import type { SequenceSimulation, SimulationMode } from './explanation-types.ts';
import type { ValueDistribution } from './expected-value.ts';
import type { GenerationSettings } from './prompt-format.ts';
import { LogprobSimulator, LogprobsMissingError } from './simulator-logprob.ts';
import { PromptLogprobSimulator } from './simulator-prompt-logprob.ts';
import { SampledSimulator } from './simulator-sampled.ts';

export class SimulationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SimulationError';
  }
}

export interface SimulateCallOptions {
  signal?: AbortSignal;
}

export interface Simulator {
  /** The mode new simulations will use (may change from "logprob" to "sampled" on fallback). */
  readonly mode: SimulationMode;
  /** One SequenceSimulation per token list, in order. */
  simulate(
    explanation: string,
    tokens: readonly (readonly string[])[],
    options?: SimulateCallOptions,
  ): Promise<SequenceSimulation[]>;
}

export interface SimulatorOptions extends GenerationSettings {
  model: string;
  /** Default "logprob". */
  mode?: SimulationMode;
  /** Switch from logprob to sampled mode when logprobs are unavailable (default true). */
  fallbackToSampled?: boolean;
  /** Sampled mode: samples per sequence averaged into the distribution (default 1). */
  samples?: number;
  /** Logprob modes: alternatives asked for per position (default 20, the OpenAI maximum). */
  topLogprobs?: number;
  /** Times an incomplete sequence is asked for again (default 1). */
  retries?: number;
}

/** Checks the arguments every simulator receives, with messages a user can act on. */
export function checkSimulationInput(explanation: unknown, tokens: unknown): asserts tokens is string[][] {
  if (typeof explanation !== 'string' || explanation.trim() === '') {
    throw new SimulationError('the explanation to simulate must be a non-empty string');
  }
  if (!Array.isArray(tokens)) throw new SimulationError('tokens must be an array of token lists');
  tokens.forEach((sequence, s) => {
    if (!Array.isArray(sequence)) throw new SimulationError(`tokens[${s}] must be an array of strings`);
    sequence.forEach((token, t) => {
      if (typeof token !== 'string') throw new SimulationError(`tokens[${s}][${t}] must be a string`);
    });
  });
}

/** A SequenceSimulation from per-token distributions over 0..10 (null = no value read). */
export function sequenceSimulationFromDistributions(
  tokens: readonly string[],
  distributions: readonly (ValueDistribution | null)[],
  mode: SimulationMode,
): SequenceSimulation {
  if (distributions.length !== tokens.length) {
    throw new SimulationError(`${tokens.length} tokens but ${distributions.length} distributions`);
  }
  let read = 0;
  const expected = distributions.map((d) => {
    if (d === null) return null;
    read++;
    let mean = 0;
    d.values.forEach((v, i) => (mean += v * d.probabilities[i]));
    return mean;
  });
  return {
    dataclass_name: 'SequenceSimulation',
    tokens: [...tokens],
    expected_activations: expected,
    activation_scale: 'simulated_normalized_activations',
    distribution_values: distributions.map((d) => (d ? [...d.values] : [])),
    distribution_probabilities: distributions.map((d) => (d ? [...d.probabilities] : [])),
    simulation_mode: mode,
    coverage: tokens.length === 0 ? 1 : read / tokens.length,
  };
}

/**
 * What every simulator's `simulate` does around its per-sequence work: check the input, then
 * simulate all sequences concurrently (the client bounds concurrency); an empty sequence needs
 * no request.
 */
export function simulateEachSequence(
  explanation: string,
  tokens: readonly (readonly string[])[],
  mode: SimulationMode,
  simulateOne: (sequence: readonly string[]) => Promise<SequenceSimulation>,
): Promise<SequenceSimulation[]> {
  checkSimulationInput(explanation, tokens);
  return Promise.all(
    tokens.map((sequence) => (sequence.length === 0 ? Promise.resolve(sequenceSimulationFromDistributions([], [], mode)) : simulateOne(sequence))),
  );
}

/** Whether an error means "this server/model gives no logprobs", so sampling should take over. */
export function isLogprobsUnavailable(err: unknown): boolean {
  return err instanceof LogprobsMissingError || isLogprobsUnsupported(err);
}

/** Logprob simulation that turns into sampled simulation once logprobs prove unavailable. */
class FallbackSimulator implements Simulator {
  private fellBack = false;

  constructor(
    private readonly logprob: Simulator,
    private readonly sampled: Simulator,
    private readonly options: SimulatorOptions,
  ) {}

  get mode(): SimulationMode {
    return plannedSimulationMode(this.options, !this.fellBack);
  }

  async simulate(
    explanation: string,
    tokens: readonly (readonly string[])[],
    options: SimulateCallOptions = {},
  ): Promise<SequenceSimulation[]> {
    // Per sequence, so sequences already simulated with logprobs keep their result.
    return Promise.all(tokens.map((sequence) => this.simulateOne(explanation, sequence, options)));
  }

  private async simulateOne(
    explanation: string,
    sequence: readonly string[],
    options: SimulateCallOptions,
  ): Promise<SequenceSimulation> {
    if (!this.fellBack) {
      try {
        const [result] = await this.logprob.simulate(explanation, [sequence], options);
        return result;
      } catch (err) {
        if (!isLogprobsUnavailable(err)) throw err;
        this.fellBack = true;
      }
    }
    const [result] = await this.sampled.simulate(explanation, [sequence], options);
    return result;
  }
}

/**
 * The mode a simulator made by `createSimulator(client, options)` runs in, on an endpoint that
 * does or does not return logprobs: the rule described in the file comment, in one place.
 */
export function plannedSimulationMode(
  options: Pick<SimulatorOptions, 'mode' | 'fallbackToSampled' | 'reasoningModel'>,
  logprobsAvailable: boolean,
): SimulationMode {
  const mode = options.mode ?? 'logprob';
  if (mode !== 'logprob' || options.fallbackToSampled === false) return mode;
  // Reasoning models refuse logprobs: don't spend a failing request per sequence finding out.
  return options.reasoningModel || !logprobsAvailable ? 'sampled' : 'logprob';
}

/** The simulator for `options.mode` (see the file comment for the fallback rule). */
export function createSimulator(client: ChatCompleter, options: SimulatorOptions): Simulator {
  const mode = options.mode ?? 'logprob';
  if (typeof options.model !== 'string' || options.model === '') {
    throw new SimulationError('a model name is required for simulation');
  }
  if (mode !== 'logprob' && mode !== 'sampled' && mode !== 'prompt-logprob') {
    throw new SimulationError(`unknown simulation mode "${String(mode)}" (expected logprob, sampled or prompt-logprob)`);
  }
  // Planned as if logprobs were available; the fallback switches once they prove not to be.
  switch (plannedSimulationMode(options, true)) {
    case 'sampled':
      return new SampledSimulator(client, options);
    case 'prompt-logprob':
      return new PromptLogprobSimulator(client, options);
    case 'logprob': {
      const logprob = new LogprobSimulator(client, options);
      if (options.fallbackToSampled === false) return logprob;
      return new FallbackSimulator(logprob, new SampledSimulator(client, options), options);
    }
  }
}
