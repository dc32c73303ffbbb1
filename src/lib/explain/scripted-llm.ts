/**
 * The built-in scripted "LLM": an OpenAI chat-completions endpoint that lives in the page, with no
 * network and no model, and answers Neurolens' real prompts from the toy model's planted rules
 * (src/lib/model/planted-neurons.ts). It lets the walkthrough, and anyone without an LLM, run
 * explain → simulate → score on the toy model's planted neurons, where the right answers are known.
 *
 * It is selected by its endpoint, `scripted:planted` (SCRIPTED_ENDPOINT): the chat client hands the
 * `openai` SDK `scriptedLlmFetch` instead of the network's fetch, so every place that explains or
 * simulates uses it unchanged, and the whole plumbing runs (SDK, transport, response parsing, the
 * explainer's and simulators' prompt building and answer reading). Its answers are scripted, not a
 * model's: its model is named SCRIPTED_MODEL, results are stored with a source naming both, and
 * `isScriptedSource` lets the UI mark them.
 *
 * What it reads is only what the prompt says:
 * - explainer prompts: the excerpts and their 0–10 values of the last turn; the planted neuron
 *   whose rule fits those values (correlation ≥ MIN_RULE_FIT) is the answer, its description the
 *   explanation. Excerpts that fit no rule (any other neuron) get a clear refusal;
 * - logprob-simulation prompts: the explanation and the numbered token lines; the explanation must
 *   be one of the planted descriptions, whose rule then gives 10 or 0 per token, written back as the
 *   answer lines with top logprobs around that value (sampled JSON-schema prompts get the JSON);
 * - "Test connection"'s probe: "7", with logprobs.
 * Anything else (the vLLM prompt-logprob mode, the detection and fuzzing scorers) is refused with
 * a message saying what it answers.
 */
import { estimateRequestTokens, estimateTokens } from '../llm/cost.ts';
import type { ChatChoice, ChatRequest, ChatResponse, TokenLogprob } from '../llm/types.ts';
import { PLANTED_NEURON_RULES, type PlantedNeuronRule } from '../model/planted-neurons.ts';
import { buildExplainerMessages } from './explainer-prompt.ts';
import { CONNECTION_TEST_PROMPT, NON_ZERO_REPEAT_HEADING, RECORD_END, RECORD_START, formatSimulationAnswerLine, undisplayToken } from './prompt-format.ts';
import { correlation } from './scoring.ts';
import { buildLogprobSimulationMessages, buildSampledSimulationMessages } from './simulator-prompt.ts';

/** The endpoint (base URL) that selects the scripted LLM. */
export const SCRIPTED_ENDPOINT = 'scripted:planted';
/** The model name it answers as (any name works; this one says what it is). */
export const SCRIPTED_MODEL = 'scripted-planted-rules';
/** What to tell the user wherever its answers are shown (after a "Scripted answers" mark). */
export const SCRIPTED_NOTICE = 'No language model was asked: these answers come from the rules planted in the toy model.';

/**
 * Least correlation between a planted rule and the excerpts' values for the rule to be the neuron's:
 * the planted neurons fit theirs at 0.998 or more; some random neurons of the toy model fit " the" at
 * up to 0.89.
 */
export const MIN_RULE_FIT = 0.97;

export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** Whether a base URL names a scripted endpoint (`scripted:…`) rather than a server. */
export function isScriptedEndpoint(baseUrl: string | null | undefined): boolean {
  return /^\s*scripted:/i.test(baseUrl ?? '');
}

/** Whether a stored result's source (`<model> @ <endpoint>`) is the scripted LLM's. */
export function isScriptedSource(source: string | null | undefined): boolean {
  return /(^|\s)scripted:/i.test(source ?? '') || (source ?? '').startsWith(SCRIPTED_MODEL);
}

/** The fetch that answers for a scripted endpoint, or undefined when `baseUrl` names no known one. */
export function scriptedLlmFetch(baseUrl: string): FetchLike | undefined {
  return baseUrl.trim().replace(/\/+$/, '').toLowerCase() === SCRIPTED_ENDPOINT ? answerRequest : undefined;
}

const PLANTED_LIST = PLANTED_NEURON_RULES.map((r) => `${r.layer}:${r.neuron} (${r.description})`).join(', ');

/** A refusal, carried as the server error a real endpoint would send. */
class Refusal extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

/** The system prompts of the real prompt builders, to tell the requests apart. */
let systemPrompts: { explainer: string; logprob: string; sampled: string } | undefined;
function knownSystemPrompts() {
  systemPrompts ??= {
    explainer: buildExplainerMessages([{ tokens: ['x'], activations: [1] }])[0].content,
    logprob: buildLogprobSimulationMessages('x', ['x'])[0].content,
    sampled: buildSampledSimulationMessages('x', ['x'])[0].content,
  };
  return systemPrompts;
}

async function answerRequest(input: string | URL | Request, init?: RequestInit): Promise<Response> {
  init?.signal?.throwIfAborted();
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
  try {
    if (!/\/chat\/completions$/.test(new URL(url).pathname) || method !== 'POST') {
      throw new Refusal(`the scripted LLM answers only POST /chat/completions, not ${method} ${url}`, 404);
    }
    let request: ChatRequest;
    try {
      request = JSON.parse(typeof init?.body === 'string' ? init.body : '') as ChatRequest;
    } catch {
      throw new Refusal('the request body is not JSON');
    }
    return json(200, respond(request));
  } catch (err) {
    if (!(err instanceof Refusal)) throw err;
    return json(err.status, { error: { message: err.message, type: 'invalid_request_error', code: 'scripted_llm', param: null } });
  }
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}

/** The answer to one chat request, or a Refusal. */
export function respond(request: ChatRequest): ChatResponse {
  const messages = Array.isArray(request?.messages) ? request.messages : [];
  const system = messages[0]?.role === 'system' ? messages[0].content : '';
  const lastUser = messages.filter((m) => m.role === 'user').at(-1)?.content ?? '';
  const known = knownSystemPrompts();
  if (system === known.explainer) return explain(request, lastUser);
  if (system === known.logprob && request.logprobs === true) return simulateLines(request, lastUser);
  if (system === known.sampled) return simulateJson(request, lastUser);
  if (system === known.logprob) throw new Refusal('the scripted LLM has no prompt logprobs (vLLM\'s prompt-logprob mode): use the logprob or sampled simulator');
  if (messages.length === 1 && lastUser === CONNECTION_TEST_PROMPT) {
    return completion(request, [{ content: '7', logprobs: request.logprobs ? valueLogprobs('', { '7': 1 }) : undefined }]);
  }
  throw new Refusal(
    'the scripted LLM answers only Neurolens\' explainer and simulator prompts (and "Test connection"), for the toy model\'s planted neurons',
  );
}

// ---- explainer ---------------------------------------------------------------------------------

interface ShownExcerpt {
  tokens: string[];
  values: number[];
}

/** The excerpts of an explainer turn, each once (the repeated non-zero-only blocks are skipped). */
function shownExcerpts(turn: string): ShownExcerpt[] {
  const lines = turn.split('\n');
  const excerpts: ShownExcerpt[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== RECORD_START) continue;
    const repeated = lines[i - 1] === NON_ZERO_REPEAT_HEADING;
    const excerpt: ShownExcerpt = { tokens: [], values: [] };
    for (i++; i < lines.length && lines[i] !== RECORD_END; i++) {
      const tab = lines[i].lastIndexOf('\t');
      const value = Number(lines[i].slice(tab + 1));
      if (tab < 0 || !Number.isFinite(value)) throw new Refusal(`the explainer prompt has a line that is not "token<TAB>value": ${JSON.stringify(lines[i])}`);
      excerpt.tokens.push(undisplayToken(lines[i].slice(0, tab)));
      excerpt.values.push(value);
    }
    if (!repeated) excerpts.push(excerpt);
  }
  return excerpts;
}

/** The planted rule that fits the excerpts' values best, and how well (Pearson correlation). */
export function bestFittingRule(excerpts: readonly ShownExcerpt[]): { rule: PlantedNeuronRule; fit: number } {
  const values = excerpts.flatMap((e) => e.values);
  let best = { rule: PLANTED_NEURON_RULES[0], fit: -Infinity };
  for (const rule of PLANTED_NEURON_RULES) {
    const predicted = excerpts.flatMap((e) => e.tokens.map((_, i) => (rule.matches(e.tokens, i) ? 1 : 0)));
    const fit = correlation(predicted, values) ?? -1;
    if (fit > best.fit) best = { rule, fit };
  }
  return best;
}

function explain(request: ChatRequest, turn: string): ChatResponse {
  const excerpts = shownExcerpts(turn);
  if (excerpts.length === 0) throw new Refusal('the explainer prompt shows no excerpts');
  const { rule, fit } = bestFittingRule(excerpts);
  if (fit < MIN_RULE_FIT) {
    throw new Refusal(
      `the scripted LLM explains only the toy model's planted neurons (${PLANTED_LIST}); these excerpts follow none of their rules ` +
        `(closest: ${rule.id}, correlation ${fit.toFixed(2)}). Set a real LLM endpoint in Settings to explain other neurons.`,
    );
  }
  const n = Math.max(1, Math.floor(request.n ?? 1));
  return completion(request, Array.from({ length: n }, () => ({ content: rule.description })));
}

// ---- simulators --------------------------------------------------------------------------------

/** Probabilities of the value written where the rule fires, and where it does not. */
const FIRING = { '10': 0.92, '9': 0.05, '0': 0.03 };
const SILENT = { '0': 0.97, '1': 0.03 };

/** The explanation and the numbered tokens of a simulation turn. */
function simulationInput(turn: string): { explanation: string; tokens: string[] } {
  const explanation = /^Explanation: (.*)$/m.exec(turn)?.[1];
  if (explanation === undefined) throw new Refusal('the simulation prompt has no "Explanation:" line');
  const tokens: string[] = [];
  for (const match of turn.matchAll(/^(\d+)\t(".*")$/gm)) {
    if (Number(match[1]) !== tokens.length) throw new Refusal(`the simulation prompt's token line ${match[1]} is out of order`);
    tokens.push(JSON.parse(match[2]) as string);
  }
  if (tokens.length === 0) throw new Refusal('the simulation prompt has no token lines');
  return { explanation, tokens };
}

const comparable = (text: string) => text.trim().replace(/\s+/g, ' ').replace(/\.+$/, '').toLowerCase();

/** Per token, whether the planted rule the explanation describes fires there. */
function firing(explanation: string, tokens: readonly string[]): boolean[] {
  const rule = PLANTED_NEURON_RULES.find((r) => comparable(r.description) === comparable(explanation));
  if (!rule) {
    throw new Refusal(
      `the scripted LLM simulates only the planted neurons' own explanations (${PLANTED_NEURON_RULES.map((r) => JSON.stringify(r.description)).join(', ')}), ` +
        `not ${JSON.stringify(explanation)}. Set a real LLM endpoint in Settings to simulate other explanations.`,
    );
  }
  return tokens.map((_, i) => rule.matches(tokens, i));
}

function simulateLines(request: ChatRequest, turn: string): ChatResponse {
  const { explanation, tokens } = simulationInput(turn);
  const fires = firing(explanation, tokens);
  const logprobs: TokenLogprob[] = [];
  const lines: string[] = [];
  tokens.forEach((token, i) => {
    const distribution = fires[i] ? FIRING : SILENT;
    const value = fires[i] ? '10' : '0';
    // The line up to its value, then the value as a token of its own with its alternatives.
    const lead = `${i > 0 ? '\n' : ''}${formatSimulationAnswerLine(i, token, '')}`;
    logprobs.push(...valueLogprobs(lead, distribution, value));
    lines.push(formatSimulationAnswerLine(i, token, value));
  });
  return completion(request, [{ content: lines.join('\n'), logprobs }]);
}

function simulateJson(request: ChatRequest, turn: string): ChatResponse {
  const { explanation, tokens } = simulationInput(turn);
  const activations = firing(explanation, tokens).map((fires, index) => ({ index, value: fires ? 10 : 0 }));
  return completion(request, [{ content: JSON.stringify({ activations }) }]);
}

// ---- answers -----------------------------------------------------------------------------------

const utf8 = new TextEncoder();

function logprobToken(token: string, probability: number): TokenLogprob {
  return { token, logprob: Math.log(probability), bytes: [...utf8.encode(token)], top_logprobs: [] };
}

/**
 * Logprob entries for `lead` (certain) followed by a value drawn from `distribution` (the chosen
 * one, default the most likely, with every alternative in top_logprobs).
 */
function valueLogprobs(lead: string, distribution: Record<string, number>, chosen?: string): TokenLogprob[] {
  const entries = Object.entries(distribution).sort((a, b) => b[1] - a[1]);
  const pick = chosen ?? entries[0][0];
  const value = logprobToken(pick, distribution[pick]);
  value.top_logprobs = entries.map(([token, p]) => {
    const { top_logprobs: _, ...alternative } = logprobToken(token, p);
    return alternative;
  });
  const out = lead === '' ? [] : [{ ...logprobToken(lead, 1), top_logprobs: [{ token: lead, logprob: 0, bytes: [...utf8.encode(lead)] }] }];
  return [...out, value];
}

function completion(request: ChatRequest, choices: { content: string; logprobs?: TokenLogprob[] }[]): ChatResponse {
  const promptTokens = estimateRequestTokens(request).promptTokens;
  const completionTokens = choices.reduce((sum, c) => sum + estimateTokens(c.content), 0);
  return {
    id: `scripted-${Date.now().toString(36)}`,
    model: request.model,
    choices: choices.map(
      (c, index): ChatChoice => ({
        index,
        message: { role: 'assistant', content: c.content },
        finish_reason: 'stop',
        logprobs: c.logprobs ? { content: c.logprobs } : null,
      }),
    ),
    usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
  };
}
