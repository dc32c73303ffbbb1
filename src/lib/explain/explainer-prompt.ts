/**
 * The explainer's few-shot chat prompt: instructions, invented worked examples (one user turn with
 * a neuron's top-activating excerpts, one assistant turn with the answer), then the neuron to
 * explain. The answer is a short phrase completing EXPLANATION_PREFIX; the chat API cannot prefill
 * the assistant turn, so the instructions ask for the phrase alone and the parser strips the
 * prefix if the model repeats it anyway.
 */
import type { ActivationRecord } from '../activations/records.ts';
import type { ChatMessage } from '../llm/types.ts';
import { formatRecordsForExplainer } from './prompt-format.ts';

/** The sentence every explanation completes (Bills et al. 2023). */
export const EXPLANATION_PREFIX = 'the main thing this neuron does is find';

const SYSTEM_PROMPT = [
  'You help interpret single neurons inside a language model.',
  'For a neuron you are shown text excerpts on which it fires. Each excerpt sits between <start> and <end>, one token per line; after a tab comes the neuron\'s activation on that token, from 0 (silent) to 10 (its strongest response among the excerpts shown). A token that begins with a space is a new word; tabs and newlines inside tokens are written as \\t and \\n.',
  'Work out what the neuron responds to and describe it as a short phrase that completes the sentence "The main thing this neuron does is find ...".',
  'Describe the common pattern (a concept, a kind of word, a position in a construction), not a list of the excerpts\' words; mention surrounding context only when it decides whether the neuron fires.',
  'Reply with the phrase only: no preamble, no quotation marks, no final period.',
].join('\n');

interface WorkedExample {
  records: ActivationRecord[];
  explanation: string;
}

/** Invented neurons (not from any real model) that show the expected kind of answer. */
const WORKED_EXAMPLES: WorkedExample[] = [
  {
    records: [
      {
        tokens: ['The', ' market', ' opens', ' on', ' Saturday', ' mornings', ' and', ' closes', ' early', ' on', ' Sunday', '.'],
        activations: [0, 0, 0, 0.3, 8.1, 0.9, 0, 0, 0, 0.2, 7.4, 0],
      },
      {
        tokens: ['We', ' can', ' meet', ' again', ' next', ' Tuesday', ' after', ' lunch', '.'],
        activations: [0, 0, 0, 0, 1.1, 9.0, 0, 0, 0],
      },
      {
        tokens: ['Deliveries', ' arrive', ' every', ' Wed', 'nes', 'day', ' by', ' noon', '.'],
        activations: [0, 0, 0.4, 6.2, 5.0, 3.3, 0, 0.1, 0],
      },
    ],
    explanation: 'names of the days of the week, including their pieces when split into several tokens',
  },
  {
    records: [
      {
        tokens: ['if', ' (', 'count', ' >', ' 0', ')', ' {', '\n', '    ', 'return', ' total', ' /', ' count', ';'],
        activations: [0, 0.5, 0, 0, 0, 6.8, 1.2, 0, 0, 0, 0, 0, 0, 0],
      },
      {
        tokens: ['print', '(', 'len', '(', 'items', '))', '\n'],
        activations: [0, 0.3, 0, 0.4, 0, 9.4, 0.8],
      },
      {
        tokens: ['The', ' result', ' (', 'see', ' Table', ' 2', ')', ' was', ' smaller', '.'],
        activations: [0, 0, 0.2, 0, 0, 0, 3.9, 0, 0, 0],
      },
    ],
    explanation: 'closing parentheses, most strongly in source code',
  },
  {
    records: [
      {
        tokens: ['She', ' did', ' not', ' expect', ' the', ' storm', ' to', ' last', '.'],
        activations: [0, 0, 1.4, 7.7, 0.6, 0, 0, 0, 0],
      },
      {
        tokens: ['I', ' have', ' never', ' seen', ' such', ' a', ' crowd', ' here', '.'],
        activations: [0, 0, 0.9, 8.3, 0.7, 0, 0, 0, 0],
      },
      {
        tokens: ['They', ' hardly', ' noticed', ' the', ' change', '.'],
        activations: [0, 0.6, 5.1, 0, 0, 0],
      },
    ],
    explanation: 'the verb that directly follows a negation such as "not", "never" or "hardly"',
  },
];

function neuronTurn(label: string, records: readonly ActivationRecord[]): string {
  return [
    `${label}`,
    'Activations:',
    formatRecordsForExplainer(records),
    '',
    `Complete the sentence: ${EXPLANATION_PREFIX} ...`,
  ].join('\n');
}

/** The full message list asking for an explanation of the neuron behind `records`. */
export function buildExplainerMessages(records: readonly ActivationRecord[], reminder?: string): ChatMessage[] {
  const messages: ChatMessage[] = [{ role: 'system', content: SYSTEM_PROMPT }];
  WORKED_EXAMPLES.forEach((example, i) => {
    messages.push({ role: 'user', content: neuronTurn(`Example neuron ${i + 1}`, example.records) });
    messages.push({ role: 'assistant', content: example.explanation });
  });
  const last = neuronTurn('Neuron to explain', records);
  messages.push({ role: 'user', content: reminder ? `${last}\n\n${reminder}` : last });
  return messages;
}
