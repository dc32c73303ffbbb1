/**
 * A rough advance estimate of what explaining and scoring one neuron costs, shown before a job
 * starts. Per-token constants were measured on Neurolens' own prompts (scripts/demo-explain-
 * transcript.ts, counted with a GPT-2-like tokenizer): a token line costs about 6 prompt tokens
 * and about 8 completion tokens when the simulator writes it back; each request adds ~500 tokens
 * of instructions and examples. Real counts depend on the LLM's tokenizer.
 */
import type { NeuronRecord } from '../activations/records.ts';
import { defaultPricingFor, estimateCost } from '../llm/cost.ts';
import { selectRecords } from './pipeline.ts';

const FIXED_PROMPT_TOKENS = 500;
const PROMPT_TOKENS_PER_LINE = 6;
const COMPLETION_TOKENS_PER_LINE = 8;
const EXPLANATION_TOKENS = 40;

export interface NeuronCostEstimate {
  /** LLM requests, at least (a retry or a top-up for a server that ignores `n` adds more). */
  requests: number;
  promptTokens: number;
  completionTokens: number;
  /** USD; null when the model's price is unknown. */
  costUsd: number | null;
}

export function estimateNeuronCost(
  record: NeuronRecord,
  model: string,
  /** `given`: the explanations are given (simulate and score only, no explainer request). */
  options: { explanations?: number; explain?: number; scoreTop?: number; scoreRandom?: number; given?: boolean } = {},
): NeuronCostEstimate {
  const n = options.explanations ?? 1;
  const explaining = options.given ? 0 : 1;
  // The very records the pipeline would use.
  const selected = selectRecords(record, { explain: options.explain, scoreTop: options.scoreTop, scoreRandom: options.scoreRandom });
  const lines = (list: { tokens: string[] }[]) => list.reduce((s, r) => s + r.tokens.length, 0);
  const explainLines = lines(selected.explain);
  const scored = [...selected.scoreTop, ...selected.scoreRandom];
  const scoredLines = lines(scored);
  const promptTokens =
    explaining * n * (FIXED_PROMPT_TOKENS + explainLines * PROMPT_TOKENS_PER_LINE) +
    n * (scored.length * FIXED_PROMPT_TOKENS + scoredLines * PROMPT_TOKENS_PER_LINE);
  const completionTokens = explaining * n * EXPLANATION_TOKENS + n * scoredLines * COMPLETION_TOKENS_PER_LINE;
  const pricing = defaultPricingFor(model);
  return {
    requests: explaining + n * scored.length,
    promptTokens,
    completionTokens,
    costUsd: pricing ? estimateCost({ promptTokens, completionTokens }, pricing) : null,
  };
}

/** What simulating one explanation on one text of `tokens` tokens costs (one request). */
export function estimateTextSimulationCost(tokens: number, model: string): NeuronCostEstimate {
  const promptTokens = FIXED_PROMPT_TOKENS + tokens * PROMPT_TOKENS_PER_LINE;
  const completionTokens = tokens * COMPLETION_TOKENS_PER_LINE;
  const pricing = defaultPricingFor(model);
  return { requests: 1, promptTokens, completionTokens, costUsd: pricing ? estimateCost({ promptTokens, completionTokens }, pricing) : null };
}
