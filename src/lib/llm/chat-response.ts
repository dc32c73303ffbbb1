/**
 * Checks that a 200 body really is a chat completion and normalises the small differences
 * between OpenAI-compatible servers, so downstream code can trust the `ChatResponse` types:
 * missing `top_logprobs` becomes `[]`, missing `bytes` becomes null, missing `index` becomes
 * the choice's position, a missing `logprobs` becomes null. Anything else malformed is an
 * `LlmResponseError` naming the offending field.
 */
import { LlmResponseError } from './errors.ts';
import type { ChatChoice, ChatResponse, ChatUsage, TokenLogprob, TopLogprob } from './types.ts';

const MAX_QUOTED_BODY_CHARS = 200;

/** Parses and validates the body text of a successful HTTP answer. */
export function parseChatResponseBody(bodyText: string, status = 200): ChatResponse {
  let body: unknown;
  try {
    body = JSON.parse(bodyText);
  } catch {
    const what = bodyText.trim() === '' ? 'an empty body' : `non-JSON or truncated JSON (${bodyText.length} chars: ${quote(bodyText)})`;
    throw new LlmResponseError(`LLM server answered HTTP ${status} with ${what}, not a chat completion`, { status });
  }
  return normalizeChatResponse(body, status);
}

/** Validates an already-parsed value (a server body or a cache entry) as a chat completion. */
export function normalizeChatResponse(body: unknown, status = 200): ChatResponse {
  const fail = (what: string): never => {
    throw new LlmResponseError(`LLM server answered HTTP ${status} but the body is not a chat completion: ${what}`, { status });
  };
  if (!isRecord(body)) return fail(`expected a JSON object, got ${describe(body)}`);
  if (body.error !== undefined && body.choices === undefined) {
    const error = isRecord(body.error) ? body.error.message : body.error;
    return fail(`it carries an error instead (${typeof error === 'string' ? error : quote(JSON.stringify(body.error))})`);
  }
  if (!Array.isArray(body.choices)) return fail(`"choices" is ${describe(body.choices)}, expected an array`);
  if (body.choices.length === 0) return fail('"choices" is empty');

  const choices = body.choices.map((choice, i) => normalizeChoice(choice, i, fail));
  const response: ChatResponse = { ...body, choices } as ChatResponse;
  const usage = normalizeUsage(body.usage);
  if (usage) response.usage = usage;
  else delete response.usage;
  return response;
}

function normalizeChoice(choice: unknown, position: number, fail: (what: string) => never): ChatChoice {
  const at = `choices[${position}]`;
  if (!isRecord(choice)) return fail(`${at} is ${describe(choice)}`);
  const message = choice.message;
  if (!isRecord(message)) return fail(`${at}.message is ${describe(message)}`);
  const content = message.content ?? null;
  if (content !== null && typeof content !== 'string') return fail(`${at}.message.content is ${describe(content)}`);

  let logprobs: ChatChoice['logprobs'] = null;
  if (choice.logprobs !== undefined && choice.logprobs !== null) {
    if (!isRecord(choice.logprobs)) return fail(`${at}.logprobs is ${describe(choice.logprobs)}`);
    const entries = choice.logprobs.content;
    if (entries === undefined || entries === null) logprobs = { content: null };
    else if (!Array.isArray(entries)) return fail(`${at}.logprobs.content is ${describe(entries)}`);
    else logprobs = { content: entries.map((e, j) => normalizeTokenLogprob(e, `${at}.logprobs.content[${j}]`, fail)) };
  }

  return {
    ...choice,
    index: typeof choice.index === 'number' ? choice.index : position,
    message: { ...message, role: 'assistant', content },
    finish_reason: typeof choice.finish_reason === 'string' ? choice.finish_reason : null,
    logprobs,
  } as ChatChoice;
}

function normalizeTokenLogprob(entry: unknown, at: string, fail: (what: string) => never): TokenLogprob {
  const top = normalizeTopLogprob(entry, at, fail);
  const alternatives = isRecord(entry) ? entry.top_logprobs : undefined;
  if (alternatives !== undefined && alternatives !== null && !Array.isArray(alternatives)) {
    return fail(`${at}.top_logprobs is ${describe(alternatives)}`);
  }
  return {
    ...top,
    top_logprobs: (alternatives ?? []).map((alt, k) => normalizeTopLogprob(alt, `${at}.top_logprobs[${k}]`, fail)),
  };
}

function normalizeTopLogprob(entry: unknown, at: string, fail: (what: string) => never): TopLogprob {
  if (!isRecord(entry)) return fail(`${at} is ${describe(entry)}`);
  if (typeof entry.token !== 'string') return fail(`${at}.token is ${describe(entry.token)}`);
  if (typeof entry.logprob !== 'number') return fail(`${at}.logprob is ${describe(entry.logprob)}`);
  const bytes = Array.isArray(entry.bytes) && entry.bytes.every((b) => typeof b === 'number') ? (entry.bytes as number[]) : null;
  return { token: entry.token, logprob: entry.logprob, bytes };
}

/** Usage with sane counts, or undefined (absent or malformed usage is treated as unknown). */
function normalizeUsage(usage: unknown): ChatUsage | undefined {
  if (!isRecord(usage)) return undefined;
  const prompt = usage.prompt_tokens;
  const completion = usage.completion_tokens;
  if (!isCount(prompt) || !isCount(completion)) return undefined;
  const total = isCount(usage.total_tokens) ? usage.total_tokens : prompt + completion;
  return { ...usage, prompt_tokens: prompt, completion_tokens: completion, total_tokens: total } as ChatUsage;
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

function quote(text: string): string {
  const flat = text.replace(/\s+/g, ' ');
  return JSON.stringify(flat.length > MAX_QUOTED_BODY_CHARS ? `${flat.slice(0, MAX_QUOTED_BODY_CHARS)}…` : flat);
}
