/**
 * Prompt-logprob simulation ("all at once", the original method of Bills et al. 2023), for
 * servers that return log-probabilities of the prompt itself (vLLM's `prompt_logprobs`).
 *
 * The whole answer is sent pre-filled, with VALUE_PLACEHOLDER where each value goes, as a final
 * assistant message the server continues (`continue_final_message`, no generation prompt). One
 * forward pass then gives, at each placeholder position, the model's distribution over what should
 * stand there; the "0".."10" alternatives are renormalised as in the logprob mode.
 *
 * Locating the placeholders: vLLM reports, per prompt position, the top alternatives plus the
 * actual token, with decoded text but without saying which entry is the actual one. A position
 * counts as a placeholder when one of its entries decodes to the placeholder (or its first piece).
 * The pre-filled answer is the end of the prompt, so the last matches belong to it; walking back
 * from the end, each line contributes its value placeholder plus any occurrences of the
 * placeholder word inside its quoted token. When fewer matches are found than expected the
 * positions cannot be assigned safely and every value of the sequence is null (coverage 0).
 *
 * Limitation: the continuation after a "1" is not visible here, so a tokenizer that splits "10"
 * into "1" + "0" has its 10s counted as 1s.
 */
import type { ChatCompleter, ChatRequest, ChatResponse } from '../llm/types.ts';
import type { SequenceSimulation, SimulationMode } from './explanation-types.ts';
import { valueDistributionFromTopLogprobs, type ValueDistribution } from './expected-value.ts';
import type { SimulateCallOptions, Simulator, SimulatorOptions } from './simulator.ts';
import { sequenceSimulationFromDistributions, simulateEachSequence } from './simulator.ts';
import { buildPromptLogprobMessages, VALUE_PLACEHOLDER } from './simulator-prompt.ts';

/** The server answered without `prompt_logprobs` (it is not vLLM, or too old). */
export class PromptLogprobsMissingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PromptLogprobsMissingError';
  }
}

type PromptLogprobEntry = NonNullable<NonNullable<ChatResponse['prompt_logprobs']>[number]>;

/** A placeholder's first token piece is at least this long (shorter pieces match too much). */
const MIN_PLACEHOLDER_PIECE = 3;

function isPlaceholderPiece(decoded: string | undefined): boolean {
  return decoded !== undefined && decoded.length >= MIN_PLACEHOLDER_PIECE && VALUE_PLACEHOLDER.startsWith(decoded);
}

function occurrences(text: string, word: string): number {
  return text.split(word).length - 1;
}

function distributionOf(entry: PromptLogprobEntry): ValueDistribution | null {
  const mass = new Map<number, number>();
  for (const alternative of Object.values(entry)) {
    const text = alternative.decoded_token?.trim();
    if (text === undefined || !/^(?:10|[0-9])$/.test(text) || !Number.isFinite(alternative.logprob)) continue;
    const value = Number(text);
    mass.set(value, (mass.get(value) ?? 0) + Math.exp(alternative.logprob));
  }
  const logprobs: Record<string, number> = {};
  for (const [value, p] of [...mass.entries()].sort((a, b) => a[0] - b[0])) logprobs[String(value)] = Math.log(p);
  return valueDistributionFromTopLogprobs(logprobs);
}

/** Per excerpt token, the distribution at its placeholder (see the file comment). */
export function readDistributionsFromPromptLogprobs(
  tokens: readonly string[],
  promptLogprobs: NonNullable<ChatResponse['prompt_logprobs']>,
): (ValueDistribution | null)[] {
  const matches: number[] = [];
  promptLogprobs.forEach((entry, position) => {
    if (entry && Object.values(entry).some((alternative) => isPlaceholderPiece(alternative.decoded_token))) {
      matches.push(position);
    }
  });
  const inTokens = tokens.map((t) => occurrences(JSON.stringify(t), VALUE_PLACEHOLDER));
  const expected = tokens.length + inTokens.reduce((a, b) => a + b, 0);
  if (matches.length < expected) return tokens.map(() => null);
  const valuePositions: number[] = new Array(tokens.length);
  let cursor = matches.length - 1;
  for (let i = tokens.length - 1; i >= 0; i--) {
    valuePositions[i] = matches[cursor];
    cursor -= 1 + inTokens[i];
  }
  return valuePositions.map((position) => {
    const entry = promptLogprobs[position];
    return entry ? distributionOf(entry) : null;
  });
}

export interface PromptLogprobSimulatorOptions extends Pick<SimulatorOptions, 'model' | 'topLogprobs'> {}

export class PromptLogprobSimulator implements Simulator {
  readonly mode: SimulationMode = 'prompt-logprob';

  constructor(
    private readonly client: ChatCompleter,
    private readonly options: PromptLogprobSimulatorOptions,
  ) {}

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
    const request: ChatRequest = {
      model: this.options.model,
      messages: buildPromptLogprobMessages(explanation, tokens),
      max_tokens: 1,
      temperature: 0,
      echo: true,
      add_generation_prompt: false,
      continue_final_message: true,
      prompt_logprobs: this.options.topLogprobs ?? 20,
    };
    const response = await this.client.complete(request, { signal });
    if (!Array.isArray(response.prompt_logprobs)) {
      throw new PromptLogprobsMissingError(
        `the LLM server returned no prompt_logprobs for model "${this.options.model}"; the prompt-logprob mode needs a vLLM server (use --mode logprob or sampled elsewhere)`,
      );
    }
    return sequenceSimulationFromDistributions(
      tokens,
      readDistributionsFromPromptLogprobs(tokens, response.prompt_logprobs),
      this.mode,
    );
  }
}
