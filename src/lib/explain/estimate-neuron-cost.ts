/**
 * A rough advance estimate of what explaining and scoring one neuron costs, shown before a job
 * starts. Per-token constants were measured on Neurolens' own prompts (scripts/demo-explain-
 * transcript.ts, counted with a GPT-2-like tokenizer): a token line costs about 6 prompt tokens
 * and about 8 completion tokens when the simulator writes it back; each request adds ~500 tokens
 * of instructions and examples. Real counts depend on the LLM's tokenizer.
 */
import type { NeuronRecord } from '../activations/records.ts';
import { defaultPricingFor, estimateCost } from '../llm/cost.ts';

const FIXED_PROMPT_TOKENS = 500;
const PROMPT_TOKENS_PER_LINE = 6;
const COMPLETION_TOKENS_PER_LINE = 8;
const EXPLANATION_TOKENS = 40;

export interface NeuronCostEstimate {
  promptTokens: number;
  completionTokens: number;
  /** USD; null when the model's price is unknown. */
  costUsd: number | null;
}

export function estimateNeuronCost(
  record: NeuronRecord,
  model: string,
  options: { explanations?: number; explain?: number; scoreTop?: number; scoreRandom?: number } = {},
): NeuronCostEstimate {
  const n = options.explanations ?? 1;
  const lengths = (list: { tokens: string[] }[], count: number) => list.slice(0, count).reduce((s, r) => s + r.tokens.length, 0);
  const explainLines = lengths(record.most_positive_activation_records, options.explain ?? 5);
  const scoredLines =
    lengths(record.most_positive_activation_records.slice(options.explain ?? 5), options.scoreTop ?? 5) +
    lengths(record.random_sample, options.scoreRandom ?? 5);
  const scoredRequests = (options.scoreTop ?? 5) + (options.scoreRandom ?? 5);
  const promptTokens =
    n * (FIXED_PROMPT_TOKENS + explainLines * PROMPT_TOKENS_PER_LINE) + n * (scoredRequests * FIXED_PROMPT_TOKENS + scoredLines * PROMPT_TOKENS_PER_LINE);
  const completionTokens = n * EXPLANATION_TOKENS + n * scoredLines * COMPLETION_TOKENS_PER_LINE;
  const pricing = defaultPricingFor(model);
  return { promptTokens, completionTokens, costUsd: pricing ? estimateCost({ promptTokens, completionTokens }, pricing) : null };
}
