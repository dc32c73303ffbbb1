/**
 * Token and cost estimates, used to enforce a budget *before* a request is sent (when the real
 * counts are not known yet) and to count requests whose server reports no usage.
 *
 * Order of magnitude, for orientation: scoring one explanation on 10 excerpts of 64 tokens is
 * about 9k input and 2.5k output tokens.
 */
import type { ChatRequest } from './types.ts';

/** Prices in US dollars per million tokens. */
export interface Pricing {
  inputPerMTok: number;
  outputPerMTok: number;
}

/** Limits on what one client may spend; either or both. */
export interface Budget {
  maxCostUsd?: number;
  /** Prompt + completion tokens. */
  maxTokens?: number;
}

export interface TokenCounts {
  promptTokens: number;
  completionTokens: number;
}

/**
 * Approximate list prices (USD per million tokens, standard tier, no cached-input discount).
 * APPROXIMATE: prices change and differ by provider and tier; check your provider and pass
 * `pricing` explicitly when it matters. Keys are model-name prefixes; the longest match wins,
 * so `gpt-4o-mini-2024-07-18` is priced as `gpt-4o-mini`, not `gpt-4o`.
 */
export const DEFAULT_PRICING: Readonly<Record<string, Pricing>> = {
  'gpt-4o': { inputPerMTok: 2.5, outputPerMTok: 10 },
  'gpt-4o-mini': { inputPerMTok: 0.15, outputPerMTok: 0.6 },
  'gpt-4.1': { inputPerMTok: 2, outputPerMTok: 8 },
  'gpt-4.1-mini': { inputPerMTok: 0.4, outputPerMTok: 1.6 },
  'gpt-4.1-nano': { inputPerMTok: 0.1, outputPerMTok: 0.4 },
  // The built-in scripted LLM (src/lib/explain/scripted-llm.ts) runs in the page: free.
  'scripted-': { inputPerMTok: 0, outputPerMTok: 0 },
};

/** Output tokens assumed for a request that sets neither `max_tokens` nor `max_completion_tokens`. */
export const DEFAULT_OUTPUT_TOKENS_ESTIMATE = 1024;

/** Chat-format overhead per message (role and separators) and per reply, in tokens. */
const TOKENS_PER_MESSAGE = 4;
const TOKENS_PER_REPLY_PRIMING = 3;

/**
 * Tokens a text will cost, estimated without the LLM's tokenizer: the larger of characters ÷ 4
 * (right for prose) and the number of word, number and punctuation pieces (right for the
 * simulator's token-per-line prompts, where characters ÷ 4 undercounts by ~1.8×).
 */
export function estimateTokens(text: string): number {
  const pieces = text.match(/ ?\p{L}+| ?\p{N}{1,3}| ?[^\s\p{L}\p{N}]+|\s+/gu)?.length ?? 0;
  return Math.max(Math.ceil(text.length / 4), pieces);
}

/**
 * Upper-ish estimate of what a request will use: the prompt (content plus per-message overhead)
 * and the most output it may produce (`max_completion_tokens` ?? `max_tokens` ??
 * DEFAULT_OUTPUT_TOKENS_ESTIMATE, times `n`).
 */
export function estimateRequestTokens(request: ChatRequest): TokenCounts & { totalTokens: number } {
  let promptTokens = TOKENS_PER_REPLY_PRIMING;
  for (const message of request.messages) promptTokens += TOKENS_PER_MESSAGE + estimateTokens(message.content);
  const perChoice = request.max_completion_tokens ?? request.max_tokens ?? DEFAULT_OUTPUT_TOKENS_ESTIMATE;
  const completionTokens = perChoice * (request.n ?? 1);
  return { promptTokens, completionTokens, totalTokens: promptTokens + completionTokens };
}

/** Known default pricing for a model name (longest matching prefix), or undefined. */
export function defaultPricingFor(model: string): Pricing | undefined {
  let best: string | undefined;
  for (const prefix of Object.keys(DEFAULT_PRICING)) {
    if (model.startsWith(prefix) && (best === undefined || prefix.length > best.length)) best = prefix;
  }
  return best === undefined ? undefined : DEFAULT_PRICING[best];
}

/** Cost in USD of the given token counts. */
export function estimateCost(usage: TokenCounts, pricing: Pricing): number {
  return (usage.promptTokens * pricing.inputPerMTok + usage.completionTokens * pricing.outputPerMTok) / 1_000_000;
}
