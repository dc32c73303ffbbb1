/**
 * Fuzzing scoring: each top-activating excerpt is shown twice among a shuffled set, once with the
 * tokens the neuron really fires on marked `<<like this>>` and once with as many tokens marked at
 * random (preferably where the neuron is silent). Given the explanation, the LLM says whether the marked tokens
 * are what the neuron responds to. The score is the balanced accuracy; unlike detection it tests
 * whether the explanation pins down *which tokens* fire, not just which texts.
 */
import type { ActivationRecord } from '../activations/records.ts';
import type { ChatCompleter } from '../llm/types.ts';
import {
  askBinaryQuestion,
  binaryScoreResult,
  BinaryScorerError,
  seededRandom,
  shuffled,
  type BinaryScoreResult,
  type BinaryScorerOptions,
} from './detection-scorer.ts';
import { maxActivation, normalizeActivations } from './normalize.ts';
import { formatHighlightedExcerpt } from './prompt-format.ts';

export interface FuzzingOptions extends BinaryScorerOptions {
  /** Tokens at or above this normalised (0..10) activation count as firing (default 4). */
  highlightThreshold?: number;
}

const FUZZING_INSTRUCTIONS = [
  'You check an explanation of a single neuron in a language model.',
  'You are given the explanation and several numbered text excerpts in which some tokens are marked <<like this>>. In some excerpts the marked tokens are exactly where the neuron fires; in the others they were marked at random.',
  'Judging only from the explanation, decide for each excerpt whether the marked tokens are the ones the neuron responds to: answer true if they are, false if they look randomly chosen.',
].join('\n');

/** The truly firing tokens of a record: those at or above the threshold, or at least its peak. */
export function firingTokens(activations: readonly number[], max: number, threshold: number): boolean[] {
  const normalized = normalizeActivations(activations, max);
  const flags = normalized.map((v) => v >= threshold);
  if (!flags.includes(true) && activations.length > 0) {
    let peak = 0;
    activations.forEach((a, i) => {
      if (a > activations[peak]) peak = i;
    });
    flags[peak] = true;
  }
  return flags;
}

/**
 * As many marks as `truth` has, placed at random: on tokens where the neuron is silent (normalised
 * 0) when there are enough, else on any token not truly firing, else anywhere.
 */
export function randomHighlights(truth: readonly boolean[], normalized: readonly number[], random: () => number): boolean[] {
  const count = truth.filter(Boolean).length;
  const silent = truth.flatMap((t, i) => (!t && normalized[i] === 0 ? [i] : []));
  const notFiring = truth.flatMap((t, i) => (t ? [] : [i]));
  const pool = silent.length >= count ? silent : notFiring.length >= count ? notFiring : truth.map((_, i) => i);
  const chosen = new Set(shuffled(pool, random).slice(0, count));
  return truth.map((_, i) => chosen.has(i));
}

/** Fuzzing score of `explanation` on top-activating `records`. */
export async function scoreFuzzing(
  client: ChatCompleter,
  explanation: string,
  records: readonly ActivationRecord[],
  options: FuzzingOptions,
  call: { signal?: AbortSignal } = {},
): Promise<BinaryScoreResult> {
  if (typeof explanation !== 'string' || explanation.trim() === '') {
    throw new BinaryScorerError('the explanation to score must be a non-empty string');
  }
  if (!Array.isArray(records)) throw new BinaryScorerError('records must be an array of activation records');
  records.forEach((r, i) => {
    if (!r || !Array.isArray(r.tokens) || !Array.isArray(r.activations) || r.tokens.length !== r.activations.length) {
      throw new BinaryScorerError(`records[${i}] must have "tokens" and "activations" arrays of equal length`);
    }
  });
  const usable = records.filter((r) => r.tokens.length > 1);
  const random = seededRandom(options.seed ?? 0);
  const max = maxActivation(usable);
  const examples = usable.flatMap((record) => {
    const truth = firingTokens(record.activations, max, options.highlightThreshold ?? 4);
    const decoy = randomHighlights(truth, normalizeActivations(record.activations, max), random);
    return [
      { tokens: record.tokens, highlighted: truth, label: true },
      { tokens: record.tokens, highlighted: decoy, label: false },
    ];
  });
  const order = shuffled(examples, random);
  if (order.length === 0) return binaryScoreResult([], []);
  const predictions = await askBinaryQuestion(
    client,
    {
      instructions: FUZZING_INSTRUCTIONS,
      explanation,
      excerpts: order.map((e) => formatHighlightedExcerpt(e.tokens, e.highlighted)),
    },
    options,
    call.signal,
  );
  return binaryScoreResult(
    order.map((e) => e.label),
    predictions,
  );
}
