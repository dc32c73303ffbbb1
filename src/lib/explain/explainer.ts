/**
 * The explainer: asks an LLM for N candidate explanations of a neuron from its top-activating
 * records. Uses the `n` parameter when the server honours it and tops up with further calls when
 * it returns fewer choices (many OpenAI-compatible servers ignore `n`). Replies that are not a
 * usable phrase (empty, a refusal, an echo of the prompt) are dropped and asked for again; with
 * `distinct`, so are repeats of an explanation already had. With `distinct`, running out of
 * requests before `n` distinct explanations is not a failure: the ones found are returned.
 */
import type { ActivationRecord } from '../activations/records.ts';
import type { ChatCompleter, ChatRequest } from '../llm/types.ts';
import { buildExplainerMessages, EXPLANATION_PREFIX } from './explainer-prompt.ts';
import { generationFields, type GenerationSettings } from './prompt-format.ts';

export class ExplanationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExplanationError';
  }
}

export interface ExplainerOptions extends GenerationSettings {
  model: string;
  /** Number of candidate explanations (default 1). */
  n?: number;
  /** Sampling temperature; default 1 when n > 1 (for variety), else 0. */
  temperature?: number;
  /** Output token limit per explanation (default 80). */
  maxTokens?: number;
  /** Send `n` in one request (default true); false makes one request per candidate. */
  useN?: boolean;
  /** Most requests made in total (default n + 2; 2n + 2 with `distinct`). */
  maxRequests?: number;
  /**
   * Keep only distinct explanations, asking again in place of a repeat (default false). Stores
   * key explanations by their text, so the app asks for distinct ones.
   */
  distinct?: boolean;
}

/** Longest reply accepted as an explanation; longer ones are essays, not phrases. */
const MAX_EXPLANATION_CHARS = 300;

const QUOTE_CHARS = `"'\`“”‘’«»`;

/** Removes quotes wrapping the whole text (not those around a word inside it). */
function unwrapQuotes(text: string): string {
  let out = text.trim();
  while (
    out.length >= 2 &&
    QUOTE_CHARS.includes(out[0]) &&
    QUOTE_CHARS.includes(out[out.length - 1]) &&
    ![...out.slice(1, -1)].some((c) => QUOTE_CHARS.includes(c))
  ) {
    out = out.slice(1, -1).trim();
  }
  return out;
}
const PREFIX_PATTERN = new RegExp(`^(?:\\.\\.\\.|…)?\\s*(?:${EXPLANATION_PREFIX.replace(/ /g, '\\s+')})s?\\b\\s*:?\\s*`, 'i');
const LABEL_PATTERN = /^(?:explanation|answer)(?: of [^:]{0,40})?\s*:\s*/i;
const REFUSAL_PATTERN = /^(?:i'm sorry|i am sorry|sorry,|i cannot|i can't|i can not|as an ai|unfortunately)/i;

/**
 * The explanation phrase in an LLM reply, or null when the reply is not usable. Strips a repeated
 * "the main thing this neuron does is find" prefix, a leading label, surrounding quotes, a
 * leading ellipsis and trailing periods; only the first non-empty line counts.
 */
export function parseExplanation(reply: string | null | undefined): string | null {
  if (typeof reply !== 'string') return null;
  const firstLine = reply
    .split(/\r?\n/)
    .map((line) => line.trim())
    .find((line) => line !== '' && !/^```/.test(line));
  if (firstLine === undefined) return null;
  let text = unwrapQuotes(firstLine.replace(LABEL_PATTERN, ''));
  text = text.replace(PREFIX_PATTERN, '').replace(/^(?:\.\.\.|…)\s*/, '');
  // Twice: the period may sit inside or outside closing quotes.
  text = unwrapQuotes(unwrapQuotes(text.replace(/[\s.]+$/, '')).replace(/[\s.]+$/, ''));
  if (text === '' || text.length > MAX_EXPLANATION_CHARS) return null;
  if (!/\p{L}/u.test(text)) return null;
  if (/<start>|<end>|\t/.test(text) || REFUSAL_PATTERN.test(text)) return null;
  return text;
}

/** Asks for `options.n` candidate explanations of the neuron whose top records are `records`. */
export async function generateExplanations(
  client: ChatCompleter,
  records: readonly ActivationRecord[],
  options: ExplainerOptions,
  call: { signal?: AbortSignal } = {},
): Promise<string[]> {
  if (!Array.isArray(records) || records.length === 0) {
    throw new ExplanationError('cannot explain a neuron without any activation records');
  }
  const n = options.n ?? 1;
  if (!Number.isInteger(n) || n < 1) throw new ExplanationError(`n must be a positive integer, got ${n}`);
  const distinct = options.distinct === true;
  const maxRequests = options.maxRequests ?? (distinct ? 2 * n + 2 : n + 2);
  const temperature = options.temperature ?? (n > 1 ? 1 : 0);
  const explanations: string[] = [];
  let lastReply: string | null = null;
  let requests = 0;
  let sawUnusable = false;
  while (explanations.length < n && requests < maxRequests) {
    call.signal?.throwIfAborted();
    const remaining = n - explanations.length;
    const askN = options.useN === false ? 1 : remaining;
    // Follow-up requests must differ from the first (here by `seed`), or a response cache would
    // hand back the same answer; after an unusable reply the format is also restated.
    const followUp = requests > 0;
    const request: ChatRequest = {
      model: options.model,
      messages: buildExplainerMessages(
        records,
        sawUnusable ? 'Reply with one short phrase only, for example: words about cooking' : undefined,
      ),
      ...generationFields(options, options.maxTokens ?? 80, temperature),
      ...(askN > 1 ? { n: askN } : {}),
      ...(followUp ? { seed: requests } : {}),
    };
    requests++;
    const response = await client.complete(request, { signal: call.signal });
    for (const choice of response.choices.slice(0, remaining)) {
      lastReply = choice.message.content;
      const parsed = parseExplanation(choice.message.content);
      if (parsed === null) sawUnusable = true;
      else if (explanations.length < n && !(distinct && explanations.includes(parsed))) explanations.push(parsed);
    }
  }
  if (explanations.length === 0) {
    const shown = lastReply === null ? 'no text' : JSON.stringify(lastReply.slice(0, 120));
    throw new ExplanationError(`the LLM gave no usable explanation in ${requests} request(s); last reply: ${shown}`);
  }
  return explanations;
}
