/**
 * The simulator's few-shot chat prompts. The LLM reads an explanation and an excerpt shown as
 * numbered token lines and predicts the neuron's activation (0..10) on every token. Three answer
 * styles, one per simulation mode:
 * - logprob: the LLM rewrites each line with a value appended (`<i>\t"<token>"\t<v>`), and the value
 *   tokens' log-probabilities give the distribution;
 * - sampled: the LLM answers JSON `{"activations": [{"index": i, "value": v}, ...]}`;
 * - prompt-logprob: the answer is supplied with a placeholder in place of every value, and the
 *   server's prompt log-probabilities at the placeholders give the distributions (one forward pass).
 */
import type { ChatMessage } from '../llm/types.ts';
import { formatSimulationAnswer, formatTokensForSimulation } from './prompt-format.ts';

/** Stands in for each value in the prompt-logprob mode's pre-filled answer. */
export const VALUE_PLACEHOLDER = 'unknown';

const TASK_DESCRIPTION = [
  'You predict the behaviour of one neuron inside a language model from an explanation of what it responds to.',
  'You get the explanation and a text excerpt split into tokens, one per line: the token\'s index, a tab, then the token written as a JSON string (so spaces, tabs and line breaks inside it are visible).',
  'For every token, predict how strongly the neuron fires on it as an integer from 0 (not at all) to 10 (as strongly as it ever does). Most tokens get 0; the explanation says which do not.',
].join('\n');

const LINES_ANSWER_FORMAT =
  'Answer by writing every line again, in order, with a tab and your predicted value added at its end. Write exactly one line per token and nothing else.';

const JSON_ANSWER_FORMAT =
  'Answer with JSON of the form {"activations": [{"index": 0, "value": 0}, ...]}: one entry per token, in order, with every index from the first to the last.';

interface SimulationExample {
  explanation: string;
  tokens: string[];
  values: number[];
}

/** Invented examples (not from any real neuron) showing the answer layout. */
const SIMULATION_EXAMPLES: SimulationExample[] = [
  {
    explanation: 'words naming colours',
    tokens: ['The', ' sky', ' turned', ' a', ' deep', ' orange', ' and', ' then', ' slate', ' grey', '.'],
    values: [0, 0, 0, 0, 1, 9, 0, 0, 4, 8, 0],
  },
  {
    explanation: 'the first word at the start of a new line of verse',
    tokens: ['roses', ' are', ' red', ',', '\n', 'viol', 'ets', ' are', ' blue', '\n', 'sugar'],
    values: [6, 0, 0, 0, 1, 8, 3, 0, 0, 1, 7],
  },
];

function userTurn(explanation: string, tokens: readonly string[]): string {
  return [
    `Explanation: ${explanation}`,
    '',
    `Tokens (${tokens.length} ${tokens.length === 1 ? 'line' : 'lines'}, indexes 0 to ${tokens.length - 1}):`,
    formatTokensForSimulation(tokens),
  ].join('\n');
}

function jsonAnswer(values: readonly number[]): string {
  return JSON.stringify({ activations: values.map((value, index) => ({ index, value })) });
}

function withReminder(text: string, reminder: string | undefined): string {
  return reminder ? `${text}\n\n${reminder}` : text;
}

/** The reminder added when a sequence is asked for again after an incomplete answer. */
export function retryReminder(tokenCount: number): string {
  return `Make sure to answer for all ${tokenCount} tokens, indexes 0 to ${tokenCount - 1}, each exactly once and in order.`;
}

function linesConversation(explanation: string, tokens: readonly string[], reminder?: string): ChatMessage[] {
  const messages: ChatMessage[] = [{ role: 'system', content: `${TASK_DESCRIPTION}\n${LINES_ANSWER_FORMAT}` }];
  for (const example of SIMULATION_EXAMPLES) {
    messages.push({ role: 'user', content: userTurn(example.explanation, example.tokens) });
    messages.push({ role: 'assistant', content: formatSimulationAnswer(example.tokens, example.values) });
  }
  messages.push({ role: 'user', content: withReminder(userTurn(explanation, tokens), reminder) });
  return messages;
}

/** Messages for the logprob simulator: the LLM writes `<i>\t"<token>"\t<v>` lines. */
export function buildLogprobSimulationMessages(
  explanation: string,
  tokens: readonly string[],
  reminder?: string,
): ChatMessage[] {
  return linesConversation(explanation, tokens, reminder);
}

/** Messages for the sampled simulator: the LLM answers JSON activations. */
export function buildSampledSimulationMessages(
  explanation: string,
  tokens: readonly string[],
  reminder?: string,
): ChatMessage[] {
  const messages: ChatMessage[] = [{ role: 'system', content: `${TASK_DESCRIPTION}\n${JSON_ANSWER_FORMAT}` }];
  for (const example of SIMULATION_EXAMPLES) {
    messages.push({ role: 'user', content: userTurn(example.explanation, example.tokens) });
    messages.push({ role: 'assistant', content: jsonAnswer(example.values) });
  }
  messages.push({ role: 'user', content: withReminder(userTurn(explanation, tokens), reminder) });
  return messages;
}

/**
 * Messages for the prompt-logprob simulator: the line-style conversation followed by the answer
 * already written out, with VALUE_PLACEHOLDER for every value (the server continues this final
 * assistant message rather than starting a new one).
 */
export function buildPromptLogprobMessages(explanation: string, tokens: readonly string[]): ChatMessage[] {
  const messages = linesConversation(explanation, tokens);
  messages.push({
    role: 'assistant',
    content: formatSimulationAnswer(tokens, tokens.map(() => VALUE_PLACEHOLDER)),
  });
  return messages;
}

/** JSON schema of the sampled simulator's answer (OpenAI structured outputs, strict mode). */
export const SAMPLED_ANSWER_SCHEMA = {
  type: 'object',
  properties: {
    activations: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          index: { type: 'integer' },
          value: { type: 'integer', minimum: 0, maximum: 10 },
        },
        required: ['index', 'value'],
        additionalProperties: false,
      },
    },
  },
  required: ['activations'],
  additionalProperties: false,
} as const;
