/**
 * Detection scoring: given only the explanation, the LLM says for each of a shuffled mix of
 * excerpts whether the neuron fires on it. Truth: top-activating excerpts fire, random ones do not.
 * A random excerpt on which the neuron does reach a fifth (NEGATIVE_MAX_FRACTION) of its largest
 * activation among the top excerpts is left out: it is neither a clear positive nor a clear negative.
 * The score is the balanced accuracy of the answers.
 *
 * Also home of the machinery shared with the fuzzing scorer: a seeded shuffle (so a rerun asks
 * the same question and a response cache or job store can answer it) and one batched yes/no
 * question over numbered excerpts, answered as JSON, with one retry for unanswered excerpts.
 */
import type { ActivationRecord } from '../activations/records.ts';
import type { ChatCompleter, ChatMessage, ChatRequest } from '../llm/types.ts';
import { balancedAccuracy } from './binary-scoring.ts';
import { formatExcerptText, generationFields, type GenerationSettings } from './prompt-format.ts';
import { createSeededRandom } from '../activations/seeded-random.ts';

export class BinaryScorerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BinaryScorerError';
  }
}

export interface BinaryScoreResult {
  /** Balanced accuracy over the answered examples; null when a class has no answered example. */
  balanced_accuracy: number | null;
  /** Truth per example, in the order shown to the LLM. */
  labels: boolean[];
  /** The LLM's answer per example (null: it gave none). */
  predictions: (boolean | null)[];
  /** Share of examples the LLM answered. */
  coverage: number;
}

export interface BinaryScorerOptions extends GenerationSettings {
  model: string;
  /** Seed of the shuffle (default 0). */
  seed?: number;
  /** Times the unanswered examples are asked again (default 1). */
  retries?: number;
  /** Ask for JSON-schema structured output (default true). */
  structuredOutput?: boolean;
}

/** The project's one seeded PRNG (mulberry32), used here to shuffle excerpts reproducibly. */
export const seededRandom = createSeededRandom;

/** A Fisher–Yates shuffle of a copy of `items`, driven by `random`. */
export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

const ANSWER_SCHEMA = {
  type: 'object',
  properties: {
    answers: {
      type: 'array',
      items: {
        type: 'object',
        properties: { excerpt: { type: 'integer' }, answer: { type: 'boolean' } },
        required: ['excerpt', 'answer'],
        additionalProperties: false,
      },
    },
  },
  required: ['answers'],
  additionalProperties: false,
} as const;

const ANSWER_FORMAT =
  'Answer with JSON of the form {"answers": [{"excerpt": 1, "answer": true}, ...]}, one entry for every excerpt number.';

const ANSWER_PATTERN = /"excerpt"\s*:\s*(\d+)\s*,\s*"answer"\s*:\s*(true|false)|"answer"\s*:\s*(true|false)\s*,\s*"excerpt"\s*:\s*(\d+)/g;

/** Answers by excerpt number (1-based) from a reply; unparsable or repeated entries are dropped. */
export function parseBinaryAnswers(reply: string | null, count: number): Map<number, boolean> {
  const found: [number, boolean][] = [];
  const text = (reply ?? '').replace(/^\s*```(?:json)?\s*|\s*```\s*$/g, '');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const list = parsed && typeof parsed === 'object' ? (parsed as { answers?: unknown }).answers : undefined;
  if (Array.isArray(list)) {
    for (const entry of list) {
      const e = entry as { excerpt?: unknown; answer?: unknown } | null;
      if (e && typeof e.excerpt === 'number' && typeof e.answer === 'boolean') found.push([e.excerpt, e.answer]);
    }
  } else {
    for (const m of text.matchAll(ANSWER_PATTERN)) {
      found.push(m[1] !== undefined ? [Number(m[1]), m[2] === 'true'] : [Number(m[4]), m[3] === 'true']);
    }
  }
  const answers = new Map<number, boolean>();
  const repeated = new Set<number>();
  for (const [n, answer] of found) {
    if (!Number.isInteger(n) || n < 1 || n > count) continue;
    if (answers.has(n) && answers.get(n) !== answer) repeated.add(n);
    answers.set(n, answer);
  }
  for (const n of repeated) answers.delete(n);
  return answers;
}

export interface BinaryQuestion {
  /** The task, ending with what "true" means. */
  instructions: string;
  explanation: string;
  /** Excerpt texts in the order shown (numbered from 1). */
  excerpts: string[];
}

function questionMessages(question: BinaryQuestion, reminder: string | undefined): ChatMessage[] {
  const body = [
    `Explanation: ${question.explanation}`,
    '',
    ...question.excerpts.map((text, i) => `Excerpt ${i + 1}: <start>${text}<end>`),
  ].join('\n');
  return [
    { role: 'system', content: `${question.instructions}\n${ANSWER_FORMAT}` },
    { role: 'user', content: reminder ? `${body}\n\n${reminder}` : body },
  ];
}

/** Asks one batched yes/no question per excerpt; null where no answer was obtained. */
export async function askBinaryQuestion(
  client: ChatCompleter,
  question: BinaryQuestion,
  options: BinaryScorerOptions,
  signal?: AbortSignal,
): Promise<(boolean | null)[]> {
  const count = question.excerpts.length;
  const answers: (boolean | null)[] = question.excerpts.map(() => null);
  const retries = options.retries ?? 1;
  for (let attempt = 0; attempt <= retries && answers.includes(null); attempt++) {
    const request: ChatRequest = {
      model: options.model,
      messages: questionMessages(
        question,
        attempt === 0 ? undefined : `Make sure to answer for every excerpt, 1 to ${count}, exactly once.`,
      ),
      ...generationFields(options, 16 * count + 32, 0),
      ...(options.structuredOutput === false
        ? {}
        : {
            response_format: {
              type: 'json_schema' as const,
              json_schema: { name: 'excerpt_answers', schema: ANSWER_SCHEMA, strict: true },
            },
          }),
    };
    const response = await client.complete(request, { signal });
    const parsed = parseBinaryAnswers(response.choices[0]?.message.content ?? null, count);
    for (const [n, answer] of parsed) if (answers[n - 1] === null) answers[n - 1] = answer;
  }
  return answers;
}

/** Balanced accuracy and coverage from truths and (possibly missing) answers. */
export function binaryScoreResult(labels: boolean[], predictions: (boolean | null)[]): BinaryScoreResult {
  const answered = predictions.flatMap((p, i) => (p === null ? [] : [i]));
  return {
    balanced_accuracy: balancedAccuracy(
      answered.map((i) => labels[i]),
      answered.map((i) => predictions[i] as boolean),
    ),
    labels,
    predictions,
    coverage: labels.length === 0 ? 1 : answered.length / labels.length,
  };
}

function checkRecords(records: unknown, name: string): asserts records is ActivationRecord[] {
  if (!Array.isArray(records)) throw new BinaryScorerError(`${name} must be an array of activation records`);
  records.forEach((r: ActivationRecord, i) => {
    if (!r || !Array.isArray(r.tokens) || !Array.isArray(r.activations) || r.tokens.length !== r.activations.length) {
      throw new BinaryScorerError(`${name}[${i}] must have "tokens" and "activations" arrays of equal length`);
    }
  });
}

/** Random excerpts reaching this fraction of the top excerpts' largest activation are not negatives. */
export const NEGATIVE_MAX_FRACTION = 0.2;

function maxOf(record: ActivationRecord): number {
  return record.activations.reduce((m, a) => Math.max(m, a), -Infinity);
}

const DETECTION_INSTRUCTIONS = [
  'You check an explanation of a single neuron in a language model.',
  'You are given the explanation and several numbered text excerpts. Some excerpts contain something the neuron responds to strongly; the others are ordinary text on which it stays quiet.',
  'Judging only from the explanation, decide for each excerpt whether the neuron fires strongly somewhere in it: answer true if it does, false if not.',
].join('\n');

/**
 * Detection score of `explanation`: `activating` excerpts (top-activating) should be recognised,
 * `nonActivating` ones (random) rejected.
 */
export async function scoreDetection(
  client: ChatCompleter,
  explanation: string,
  activating: readonly ActivationRecord[],
  nonActivating: readonly ActivationRecord[],
  options: BinaryScorerOptions,
  call: { signal?: AbortSignal } = {},
): Promise<BinaryScoreResult> {
  if (typeof explanation !== 'string' || explanation.trim() === '') {
    throw new BinaryScorerError('the explanation to score must be a non-empty string');
  }
  checkRecords(activating, 'activating records');
  checkRecords(nonActivating, 'non-activating records');
  const topMax = activating.reduce((m, r) => Math.max(m, maxOf(r)), 0);
  const negatives = nonActivating.filter((r) => topMax <= 0 || maxOf(r) < NEGATIVE_MAX_FRACTION * topMax);
  const examples = shuffled(
    [
      ...activating.map((record) => ({ record, label: true })),
      ...negatives.map((record) => ({ record, label: false })),
    ],
    seededRandom(options.seed ?? 0),
  );
  if (examples.length === 0) return binaryScoreResult([], []);
  const predictions = await askBinaryQuestion(
    client,
    {
      instructions: DETECTION_INSTRUCTIONS,
      explanation,
      excerpts: examples.map((e) => formatExcerptText(e.record.tokens)),
    },
    options,
    call.signal,
  );
  return binaryScoreResult(
    examples.map((e) => e.label),
    predictions,
  );
}
