/**
 * What editing some MLP neurons does to a model's predictions on a text: per token, the
 * next-token distribution with and without the edit (its top tokens, the tokens that gain and lose
 * most probability, and KL(original ‖ edited) in nats), plus a summary of where the edit matters
 * most. Both runs use the same editable session (capture.ts `edits`), the unedited one with no
 * edit, which gives exactly the plain model's outputs. Deterministic; runs wherever an
 * ActivationCapturer does (Node, or the browser's model worker).
 */
import type { ActivationCapturer } from '../model/capture.ts';
import { checkNeuronEdits, type NeuronEdit } from '../model/neuron-edits.ts';
import { TextTooLongError } from '../model/text-errors.ts';
import type { Token } from '../model/tokenizer.ts';
import { topIndexes } from '../model/top-indexes.ts';
import { klDivergence, nextTokenDistribution } from './distributions.ts';

export interface TokenProbability {
  id: number;
  /** Display string of the token. */
  token: string;
  p: number;
}

export interface ProbabilityShift {
  id: number;
  token: string;
  /** Probability without the edit. */
  before: number;
  /** Probability with the edit. */
  after: number;
}

/** The next-token prediction after one token of the text, without and with the edit. */
export interface PositionEffect {
  /** KL(original ‖ edited) in nats. */
  kl: number;
  /** Most probable next tokens without the edit, most probable first. */
  original: TokenProbability[];
  /** Most probable next tokens with the edit, most probable first. */
  edited: TokenProbability[];
  /** Tokens whose probability rises most with the edit, largest rise first (only rises). */
  gained: ProbabilityShift[];
  /** Tokens whose probability falls most with the edit, largest fall first (only falls). */
  lost: ProbabilityShift[];
}

/** One edited neuron's activation on every token, before and after the edit. */
export interface EditedNeuronTrace {
  layer: number;
  neuron: number;
  original: number[];
  edited: number[];
}

export interface AblationSummary {
  /** Mean KL over the text's positions. */
  meanKl: number;
  maxKl: number;
  /** The positions where the edit changes the prediction most, by KL, largest first. */
  top: { position: number; token: string; kl: number; gained: ProbabilityShift | null; lost: ProbabilityShift | null }[];
}

export interface AblationResult {
  tokens: Token[];
  /** positions[i]: the next-token distribution after tokens[i]. */
  positions: PositionEffect[];
  neurons: EditedNeuronTrace[];
  summary: AblationSummary;
}

export interface AblationOptions {
  /** Tokens listed per position in original, edited, gained and lost (default 10). */
  top?: number;
  /** Positions listed in the summary (default 5). */
  summaryPositions?: number;
}

/** Compares the next-token distributions of two logit rows (see PositionEffect). */
export function comparePredictions(
  original: ArrayLike<number>,
  edited: ArrayLike<number>,
  tokenText: (id: number) => string,
  top = 10,
): PositionEffect {
  const P = nextTokenDistribution(original);
  const Q = nextTokenDistribution(edited);
  const { p, logP } = P;
  const { p: q, logP: logQ } = Q;
  const n = p.length;
  const listed = (indexes: number[], prob: Float64Array): TokenProbability[] =>
    indexes.map((id) => ({ id, token: tokenText(id), p: prob[id] }));
  const shifts = (indexes: number[], keep: (i: number) => boolean): ProbabilityShift[] =>
    indexes.filter(keep).map((id) => ({ id, token: tokenText(id), before: p[id], after: q[id] }));
  return {
    kl: klDivergence(P, Q),
    original: listed(topIndexes((i) => logP[i], n, top), p),
    edited: listed(topIndexes((i) => logQ[i], n, top), q),
    gained: shifts(topIndexes((i) => q[i] - p[i], n, top), (i) => q[i] > p[i]),
    lost: shifts(topIndexes((i) => p[i] - q[i], n, top), (i) => p[i] > q[i]),
  };
}

/** Where the edit matters most (see AblationSummary). */
export function summariseEffects(tokens: readonly Token[], positions: readonly PositionEffect[], count = 5): AblationSummary {
  const kls = positions.map((p) => p.kl);
  const order = topIndexes((i) => kls[i], kls.length, count);
  return {
    meanKl: kls.reduce((a, b) => a + b, 0) / Math.max(1, kls.length),
    maxKl: kls.length ? Math.max(...kls) : 0,
    top: order.map((position) => ({
      position,
      token: tokens[position].text,
      kl: kls[position],
      gained: positions[position].gained[0] ?? null,
      lost: positions[position].lost[0] ?? null,
    })),
  };
}

/**
 * Runs `text` through the model without and with `edits` and compares the predictions at every
 * position. Per-token edit values are one number per token of the text. The text must fit the
 * context window.
 */
export async function ablateText(
  capturer: ActivationCapturer,
  text: string,
  edits: readonly NeuronEdit[],
  options: AblationOptions = {},
): Promise<AblationResult> {
  const top = options.top ?? 10;
  const summaryPositions = options.summaryPositions ?? 5;
  for (const [name, v] of [['top', top], ['summaryPositions', summaryPositions]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive whole number, not ${v}`);
  }
  if (!Array.isArray(edits) || edits.length === 0) throw new RangeError('name at least one neuron to edit');
  const tokens = capturer.tokenize(text);
  const { nCtx, nLayer, dMlp } = capturer.model.config;
  if (tokens.length > nCtx) throw new TextTooLongError(tokens.length, nCtx);
  checkNeuronEdits(edits, { nLayer, dMlp, batch: 1, seq: tokens.length });
  const ids = [tokens.map((t) => t.id)];
  const layers = [...new Set(edits.map((e) => e.layer))];
  const original = await capturer.runTokens(ids, { layers, logits: true, edits: [] });
  const edited = await capturer.runTokens(ids, { layers, logits: true, edits });
  if (!original.logits || !edited.logits) throw new Error('the model returned no logits');
  const vocab = original.logits.length / tokens.length;
  const tokenText = (id: number) => capturer.model.tokenizer.tokenText(id);
  const positions = tokens.map((_, t) =>
    comparePredictions(
      original.logits!.subarray(t * vocab, (t + 1) * vocab),
      edited.logits!.subarray(t * vocab, (t + 1) * vocab),
      tokenText,
      top,
    ),
  );
  const column = (rows: Float32Array, neuron: number) => tokens.map((_, t) => rows[t * dMlp + neuron]);
  const neurons = edits.map(({ layer, neuron }) => ({
    layer,
    neuron,
    original: column(original.layers.get(layer)!, neuron),
    edited: column(edited.layers.get(layer)!, neuron),
  }));
  return { tokens, positions, neurons, summary: summariseEffects(tokens, positions, summaryPositions) };
}
