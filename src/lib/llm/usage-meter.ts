/**
 * Counts what a client has spent and enforces its budget. A request reserves its *estimated*
 * tokens and cost before it is sent (so concurrent requests can't jointly overshoot); when the
 * answer arrives the reservation is replaced by the real usage the server reports, or by an
 * estimate when it reports none. Cache hits cost nothing and are only counted as hits.
 */
import { DEFAULT_OUTPUT_TOKENS_ESTIMATE, defaultPricingFor, estimateCost, estimateRequestTokens, estimateTokens } from './cost.ts';
import type { Budget, Pricing, TokenCounts } from './cost.ts';
import { LlmBudgetExceededError, LlmConfigError } from './errors.ts';
import type { ChatRequest, ChatResponse } from './types.ts';

export interface UsageTotals {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  /** Estimated USD spent on answered requests (tokens of models without known pricing count as 0). */
  costUsd: number;
  /** HTTP requests sent, retries included. */
  requests: number;
  /** Answers served from the cache (nothing sent, nothing spent). */
  cacheHits: number;
  /** Retries after a retryable failure. */
  retries: number;
  /** Answers whose token counts were estimated because the server sent no `usage`. */
  estimatedResponses: number;
  /** Tokens of models with no known pricing, so not included in `costUsd`. */
  unpricedTokens: number;
}

/** What one answered request added to the totals. */
export interface UsageDelta extends TokenCounts {
  model: string;
  costUsd: number;
  /** True when the server sent no usage and the counts are estimates. */
  estimated: boolean;
}

export interface Reservation {
  /** Replaces the reservation with the real usage of the answer. */
  settle(response: ChatResponse): UsageDelta;
  /** Drops the reservation: the request failed or was cancelled, nothing is counted as spent. */
  release(): void;
}

export class UsageMeter {
  private totals: UsageTotals = {
    promptTokens: 0,
    completionTokens: 0,
    totalTokens: 0,
    costUsd: 0,
    requests: 0,
    cacheHits: 0,
    retries: 0,
    estimatedResponses: 0,
    unpricedTokens: 0,
  };
  private reservedTokens = 0;
  private reservedCostUsd = 0;

  constructor(
    private readonly budget: Budget | undefined,
    private readonly pricing: Pricing | undefined,
  ) {
    for (const key of ['maxCostUsd', 'maxTokens'] as const) {
      const value = budget?.[key];
      if (value !== undefined && !(typeof value === 'number' && value >= 0)) {
        throw new LlmConfigError(`budget.${key} must be a non-negative number, got ${String(value)}`);
      }
    }
  }

  snapshot(): UsageTotals {
    return { ...this.totals };
  }

  countRequest(): void {
    this.totals.requests++;
  }

  countRetry(): void {
    this.totals.retries++;
  }

  countCacheHit(): void {
    this.totals.cacheHits++;
  }

  pricingFor(model: string): Pricing | undefined {
    return this.pricing ?? defaultPricingFor(model);
  }

  /**
   * Reserves the request's estimate, or throws `LlmBudgetExceededError` if spent + in flight +
   * this estimate would exceed the budget. Throws `LlmConfigError` when a cost budget is set but
   * the model's price is unknown (a cost limit we cannot check must not silently pass).
   */
  reserve(request: ChatRequest): Reservation {
    const estimate = estimateRequestTokens(request);
    const pricing = this.pricingFor(request.model);
    const estimatedCost = pricing ? estimateCost(estimate, pricing) : 0;

    const maxTokens = this.budget?.maxTokens;
    if (maxTokens !== undefined && this.totals.totalTokens + this.reservedTokens + estimate.totalTokens > maxTokens) {
      throw new LlmBudgetExceededError(
        `Token budget exceeded: this request needs up to ~${estimate.totalTokens} tokens, ` +
          `${this.totals.totalTokens} are spent and ${this.reservedTokens} in flight, limit ${maxTokens}; nothing was sent`,
        { kind: 'tokens', max: maxTokens, spent: this.totals.totalTokens, reserved: this.reservedTokens, thisRequest: estimate.totalTokens },
      );
    }
    const maxCost = this.budget?.maxCostUsd;
    if (maxCost !== undefined) {
      if (!pricing) {
        throw new LlmConfigError(
          `A cost budget is set but the price of model "${request.model}" is unknown; pass \`pricing\` to the client`,
        );
      }
      if (this.totals.costUsd + this.reservedCostUsd + estimatedCost > maxCost) {
        throw new LlmBudgetExceededError(
          `Cost budget exceeded: this request may cost up to ~$${usd(estimatedCost)}, ` +
            `$${usd(this.totals.costUsd)} is spent and $${usd(this.reservedCostUsd)} in flight, limit $${usd(maxCost)}; nothing was sent`,
          { kind: 'cost', max: maxCost, spent: this.totals.costUsd, reserved: this.reservedCostUsd, thisRequest: estimatedCost },
        );
      }
    }

    this.reservedTokens += estimate.totalTokens;
    this.reservedCostUsd += estimatedCost;
    let open = true;
    const release = () => {
      if (!open) return;
      open = false;
      this.reservedTokens -= estimate.totalTokens;
      this.reservedCostUsd -= estimatedCost;
    };
    return {
      release,
      settle: (response) => {
        release();
        return this.record(request, response, estimate.promptTokens);
      },
    };
  }

  private record(request: ChatRequest, response: ChatResponse, estimatedPromptTokens: number): UsageDelta {
    const usage = response.usage;
    const counts: TokenCounts = usage
      ? { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens }
      : { promptTokens: estimatedPromptTokens, completionTokens: estimateCompletionTokens(request, response) };
    const pricing = this.pricingFor(request.model);
    const costUsd = pricing ? estimateCost(counts, pricing) : 0;
    const t = this.totals;
    t.promptTokens += counts.promptTokens;
    t.completionTokens += counts.completionTokens;
    t.totalTokens += counts.promptTokens + counts.completionTokens;
    t.costUsd += costUsd;
    if (!usage) t.estimatedResponses++;
    if (!pricing) t.unpricedTokens += counts.promptTokens + counts.completionTokens;
    return { ...counts, model: request.model, costUsd, estimated: !usage };
  }
}

/**
 * Completion tokens of an answer without `usage`: exact when logprobs list the tokens,
 * otherwise estimated from the text (and never above what the request allowed).
 */
function estimateCompletionTokens(request: ChatRequest, response: ChatResponse): number {
  const cap = (request.max_completion_tokens ?? request.max_tokens ?? DEFAULT_OUTPUT_TOKENS_ESTIMATE) * (request.n ?? 1);
  let tokens = 0;
  for (const choice of response.choices) {
    const listed = choice.logprobs?.content;
    tokens += listed ? listed.length : estimateTokens(choice.message.content ?? '');
  }
  return cap > 0 ? Math.min(tokens, cap) : tokens;
}

function usd(value: number): string {
  return value < 0.01 ? value.toFixed(6) : value.toFixed(4);
}
