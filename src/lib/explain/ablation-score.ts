/**
 * The ablation score of an explanation (Bills et al. 2023's causal check): does putting the
 * explanation's simulated activations in place of the neuron's real ones keep the model's
 * predictions, compared with putting the neuron's mean there?
 *
 * For every scored excerpt the model runs three times in one batch, with the neuron's activation
 * on every token (1) as it is, (2) set to the neuron's mean (mean ablation), (3) set to the
 * simulated activation mapped to the neuron's units by a least-squares line from simulated to
 * real activations (calibration.ts; fitted on the scored excerpts themselves unless a line is
 * given, e.g. one fitted on a separate calibration set). At each position the next-token
 * distributions are compared by Jensen–Shannon divergence, averaged over the excerpt's positions:
 *
 *   excerpt score = 1 − JSD(real ‖ substituted) / JSD(real ‖ mean-ablated)
 *
 * and the ablation score is the mean of the excerpt scores: 1 when the simulation reproduces the
 * neuron's effect, 0 when it does no better than the mean, below 0 when it does worse. An excerpt
 * where mean ablation changes nothing (JSD 0) has no score. Tokens without a simulated value keep
 * their real activation. Excerpts whose token strings do not map to token ids (compare-record.ts)
 * or that exceed the context are skipped and reported.
 */
import { TokenLookup } from '../activations/compare-record.ts';
import { jsDivergence, nextTokenDistribution } from '../causal/distributions.ts';
import type { ActivationCapturer } from '../model/capture.ts';
import { applyLinearCalibration, fitLinearCalibration, type LinearCalibration } from './calibration.ts';

export class AblationScoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AblationScoreError';
  }
}

/** One scored excerpt: its tokens, the neuron's real activations and the simulated ones (0–10). */
export interface AblationExcerpt {
  /** Names the excerpt in the result, e.g. `top0` or `random3`. */
  key: string;
  tokens: readonly string[];
  activations: readonly number[];
  expected: readonly (number | null)[];
}

export interface AblationScoreInput {
  layer: number;
  neuron: number;
  /** The neuron's mean activation over the corpus (a NeuronRecord's `mean`). */
  mean: number;
  excerpts: readonly AblationExcerpt[];
  /** The simulated-to-real line; default: fitted on `excerpts`. */
  calibration?: LinearCalibration;
}

export interface ExcerptAblation {
  key: string;
  /** Mean over positions of JSD(real ‖ substituted), in nats; null when skipped. */
  jsd_substituted: number | null;
  /** Mean over positions of JSD(real ‖ mean-ablated), in nats; null when skipped. */
  jsd_mean_ablated: number | null;
  /** 1 − jsd_substituted / jsd_mean_ablated; null when skipped or when mean ablation changes nothing. */
  score: number | null;
  /** Why the excerpt was not run. */
  skipped?: string;
}

export interface AblationScore {
  /** Mean of the excerpt scores; null when no excerpt has one. */
  score: number | null;
  calibration: LinearCalibration;
  mean_activation: number;
  excerpts: ExcerptAblation[];
  /**
   * Largest |stored − recomputed| real activation over the excerpts run: large when the record
   * comes from another model or GELU than the one scoring it.
   */
  max_activation_difference: number | null;
}

/** Computes the ablation score with a model (e.g. in the model worker); see the module comment. */
export type AblationScorer = (input: AblationScoreInput, signal: AbortSignal) => Promise<AblationScore>;

export interface AblationScoreOptions {
  /**
   * Excerpts per model run, each taking three rows (default 2: for GPT-2 small the logits of one
   * run of six 64-token rows take 77 MB).
   */
  batchSize?: number;
  /** Reuse a token lookup across calls (building one reads the whole vocabulary). */
  lookup?: TokenLookup;
  signal?: AbortSignal;
}

function checkInput(input: AblationScoreInput): void {
  if (!input || typeof input !== 'object') throw new AblationScoreError('the ablation score needs {layer, neuron, mean, excerpts}');
  if (!(typeof input.mean === 'number' && Number.isFinite(input.mean))) {
    throw new AblationScoreError(`the neuron's mean activation must be a finite number, not ${String(input.mean)}`);
  }
  if (!Array.isArray(input.excerpts) || input.excerpts.length === 0) throw new AblationScoreError('no excerpts to score on');
  input.excerpts.forEach((e, i) => {
    const ok =
      e &&
      Array.isArray(e.tokens) &&
      Array.isArray(e.activations) &&
      Array.isArray(e.expected) &&
      e.tokens.length > 0 &&
      e.tokens.length === e.activations.length &&
      e.tokens.length === e.expected.length;
    if (!ok) throw new AblationScoreError(`excerpts[${i}] needs tokens, activations and expected values, equally many and not none`);
  });
}

/** Computes the ablation score of one explanation's simulations (see the module comment). */
export async function computeAblationScore(
  capturer: ActivationCapturer,
  input: AblationScoreInput,
  options: AblationScoreOptions = {},
): Promise<AblationScore> {
  checkInput(input);
  const batchSize = options.batchSize ?? 2;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new AblationScoreError(`batchSize must be a positive integer, not ${batchSize}`);
  const { layer, neuron, mean } = input;
  capturer.checkNeuron({ layer, neuron });
  const calibration =
    input.calibration ??
    fitLinearCalibration(input.excerpts.map((e) => ({ trueActivations: e.activations, expected: e.expected })));
  const lookup = options.lookup ?? new TokenLookup(capturer.model.tokenizer);
  const { nCtx, dMlp } = capturer.model.config;

  const results = new Map<AblationExcerpt, ExcerptAblation>();
  const runnable: { excerpt: AblationExcerpt; ids: number[] }[] = [];
  for (const excerpt of input.excerpts) {
    const skip = (why: string) => results.set(excerpt, { key: excerpt.key, jsd_substituted: null, jsd_mean_ablated: null, score: null, skipped: why });
    if (excerpt.tokens.length > nCtx) {
      skip(`${excerpt.tokens.length} tokens exceed the model's context of ${nCtx}`);
      continue;
    }
    const ids: number[] = [];
    for (const token of excerpt.tokens) {
      const m = lookup.map(token);
      if (m.id === null) break;
      ids.push(m.id);
    }
    if (ids.length < excerpt.tokens.length) {
      skip(`the token ${JSON.stringify(excerpt.tokens[ids.length])} does not name exactly one token id of this model`);
      continue;
    }
    runnable.push({ excerpt, ids });
  }

  let maxDifference: number | null = null;
  // Equally long excerpts share a run (rows are not padded).
  const byLength = new Map<number, typeof runnable>();
  for (const item of runnable) byLength.set(item.ids.length, [...(byLength.get(item.ids.length) ?? []), item]);
  for (const [seq, group] of byLength) {
    for (let start = 0; start < group.length; start += batchSize) {
      options.signal?.throwIfAborted();
      const batch = group.slice(start, start + batchSize);
      const rows = batch.flatMap((b) => [b.ids, b.ids, b.ids]);
      const values = new Float32Array(rows.length * seq);
      batch.forEach(({ excerpt }, b) => {
        const substituted = applyLinearCalibration(calibration, excerpt.expected);
        for (let t = 0; t < seq; t++) {
          values[(3 * b) * seq + t] = NaN; // real
          values[(3 * b + 1) * seq + t] = mean;
          values[(3 * b + 2) * seq + t] = substituted[t] ?? NaN;
        }
      });
      const out = await capturer.runTokens(rows, { layers: [layer], logits: true, edits: [{ layer, neuron, value: values }] });
      const logits = out.logits!;
      const vocab = logits.length / (rows.length * seq);
      const activations = out.layers.get(layer)!;
      const distribution = (row: number, t: number) => nextTokenDistribution(logits.subarray((row * seq + t) * vocab, (row * seq + t + 1) * vocab));
      batch.forEach(({ excerpt }, b) => {
        let substitutedSum = 0;
        let meanSum = 0;
        for (let t = 0; t < seq; t++) {
          const real = distribution(3 * b, t);
          substitutedSum += jsDivergence(real, distribution(3 * b + 2, t));
          meanSum += jsDivergence(real, distribution(3 * b + 1, t));
          const difference = Math.abs(activations[((3 * b) * seq + t) * dMlp + neuron] - excerpt.activations[t]);
          maxDifference = Math.max(maxDifference ?? 0, difference);
        }
        const jsdSubstituted = substitutedSum / seq;
        const jsdMean = meanSum / seq;
        results.set(excerpt, {
          key: excerpt.key,
          jsd_substituted: jsdSubstituted,
          jsd_mean_ablated: jsdMean,
          score: jsdMean > 0 ? 1 - jsdSubstituted / jsdMean : null,
        });
      });
    }
  }

  const excerpts = input.excerpts.map((e) => results.get(e)!);
  const scores = excerpts.flatMap((e) => (e.score === null ? [] : [e.score]));
  return {
    score: scores.length > 0 ? scores.reduce((a, b) => a + b, 0) / scores.length : null,
    calibration,
    mean_activation: mean,
    excerpts,
    max_activation_difference: maxDifference,
  };
}
