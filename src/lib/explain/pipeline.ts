/**
 * Explain → simulate → score for one neuron (Bills et al. 2023):
 * 1. explain from top-activating records (default 5);
 * 2. simulate each explanation on other top-activating records (default 5) and random records
 *    (default 5), never on a record used for explaining;
 * 3. score per explanation on top-only, random-only and all records (the paper's headline score is
 *    `all.ev_correlation_score`), optionally calibrated, optionally with detection/fuzzing scores;
 * 4. optionally, with a model, the ablation score on the same scored records (ablation-score.ts).
 *
 * Record selection: the top records (largest first) are split by interleaving: even positions
 * (0, 2, 4, ...) are for explaining, odd positions (1, 3, 5, ...) for scoring, so both halves
 * cover the same range of activation strengths. Random records come from `random_sample` in order;
 * one identical to an explaining record is skipped. Calibration (when asked for) uses the next
 * unused scoring-side top records and random records.
 *
 * Every LLM-backed step (the explanations, each simulation of one explanation on one record, each
 * binary score) goes through `steps.run(key, compute)`, which the resumable job backs with a store;
 * the scores are then recomputed from the step results, which is cheap and deterministic.
 */
import type { ActivationRecord, NeuronId, NeuronRecord } from '../activations/records.ts';
import type { ChatCompleter } from '../llm/types.ts';
import { AblationScoreError, type AblationScore, type AblationScorer } from './ablation-score.ts';
import { calibratedScores, CalibrationError, type CalibratedScores } from './calibration.ts';
import { scoreDetection, type BinaryScoreResult, type BinaryScorerOptions } from './detection-scorer.ts';
import { generateExplanations, type ExplainerOptions } from './explainer.ts';
import type { NeuronSimulationResults, SequenceSimulation, SimulationMode } from './explanation-types.ts';
import { scoreFuzzing, type FuzzingOptions } from './fuzzing-scorer.ts';
import { scoreExplanation, scoreTopAndRandom, type ScoringPair, type SimulationScores } from './scoring.ts';
import { createSimulator, type Simulator, type SimulatorOptions } from './simulator.ts';

export class PipelineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PipelineError';
  }
}

/** Runs (or recalls) one named step; the job runner persists results under `key`. */
export interface StepRunner {
  run<T>(key: string, compute: () => Promise<T>): Promise<T>;
}

/** Runs every step directly (no persistence). */
export const runStepsDirectly: StepRunner = { run: (_key, compute) => compute() };

export interface RecordCounts {
  /** Top records shown to the explainer (default 5). */
  explain?: number;
  /** Top records simulated for scoring (default 5). */
  scoreTop?: number;
  /** Random records simulated for scoring (default 5). */
  scoreRandom?: number;
  /** With calibration: top and random records the calibration line is fitted on (default 5 each). */
  calibrationTop?: number;
  calibrationRandom?: number;
}

export interface PipelineOptions {
  /** Model for every LLM call unless overridden below. */
  model: string;
  explainerModel?: string;
  simulatorModel?: string;
  /** Reasoning model: no temperature, `max_completion_tokens`; logprob simulation falls back to sampled. */
  reasoningModel?: boolean;
  /** Candidate explanations per neuron (default 1). */
  explanations?: number;
  /** Score these explanations instead of generating new ones. */
  givenExplanations?: string[];
  explainer?: Omit<ExplainerOptions, 'model' | 'n' | 'reasoningModel'>;
  simulation?: Omit<SimulatorOptions, 'model' | 'reasoningModel'>;
  records?: RecordCounts;
  /** Fit a linear calibration on a separate record set and report calibrated scores. */
  calibration?: boolean;
  /** Also run the detection scorer (true for defaults). */
  detection?: boolean | Omit<BinaryScorerOptions, 'model' | 'reasoningModel'>;
  /** Also run the fuzzing scorer (true for defaults). */
  fuzzing?: boolean | Omit<FuzzingOptions, 'model' | 'reasoningModel'>;
}

export interface PipelineProgress {
  neuron_id: NeuronId;
  stage: 'explain' | 'simulate' | 'detection' | 'fuzzing' | 'ablation';
  /** Steps finished so far (recalled steps count) and steps in all, for this neuron. */
  done: number;
  total: number;
}

export interface PipelineCallOptions {
  signal?: AbortSignal;
  onProgress?: (progress: PipelineProgress) => void;
  steps?: StepRunner;
  /**
   * The simulator to use (default: one made from `options`). Sharing one across neurons keeps a
   * logprob-to-sampled fallback from being rediscovered (one failed request per excerpt) each time.
   */
  simulator?: Simulator;
  /**
   * Also compute each explanation's ablation score (ablation-score.ts) with a model: a function
   * that runs `computeAblationScore` where the model is (in Node directly, in the app in the model
   * worker). Skipped (`ablation: null`) when the record has no mean activation or no simulated
   * value to calibrate with.
   */
  ablation?: AblationScorer;
}

export interface SelectedRecords {
  explain: ActivationRecord[];
  scoreTop: ActivationRecord[];
  scoreRandom: ActivationRecord[];
  calibrationTop: ActivationRecord[];
  calibrationRandom: ActivationRecord[];
  /** Positions in `most_positive_activation_records` / `random_sample`, for the record. */
  indices: {
    explain: number[];
    score_top: number[];
    score_random: number[];
    calibration_top: number[];
    calibration_random: number[];
  };
}

export interface ExplanationScores {
  explanation: string;
  top: SimulationScores;
  random: SimulationScores;
  /** Top and random together; `all.ev_correlation_score` is the paper's headline score. */
  all: SimulationScores;
  /** With `calibration`: scores of the calibrated simulations on all scored records (null if no fit). */
  calibrated?: CalibratedScores | null;
  detection?: BinaryScoreResult;
  fuzzing?: BinaryScoreResult;
  /** With an ablation scorer: the ablation score on the scored records (null where it could not be computed). */
  ablation?: AblationScore | null;
  /** Simulation modes that produced this explanation's simulations. */
  simulation_modes: SimulationMode[];
}

export interface NeuronPipelineResult {
  neuron_id: NeuronId;
  explanations: string[];
  /** The paper's format: every explanation with its simulations and all-records scores. */
  simulation_results: NeuronSimulationResults;
  scores: ExplanationScores[];
  records_used: SelectedRecords['indices'];
}

function checkRecordList(list: unknown, name: string): ActivationRecord[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw new PipelineError(`${name} must be an array of activation records`);
  list.forEach((r: ActivationRecord, i) => {
    const ok =
      r &&
      Array.isArray(r.tokens) &&
      Array.isArray(r.activations) &&
      r.tokens.length === r.activations.length &&
      r.tokens.every((t) => typeof t === 'string') &&
      r.activations.every((a) => typeof a === 'number' && Number.isFinite(a));
    if (!ok) {
      throw new PipelineError(
        `${name}[${i}] must have "tokens" (strings) and "activations" (finite numbers) arrays of equal length`,
      );
    }
  });
  return list as ActivationRecord[];
}

/** Checks that `record` looks like a NeuronRecord, with messages that name the bad field. */
export function checkNeuronRecord(record: unknown): asserts record is NeuronRecord {
  if (!record || typeof record !== 'object') throw new PipelineError('a neuron record must be a JSON object');
  const r = record as Partial<NeuronRecord>;
  const id = r.neuron_id;
  if (!id || !Number.isInteger(id.layer_index) || !Number.isInteger(id.neuron_index)) {
    throw new PipelineError('the neuron record needs "neuron_id" with integer "layer_index" and "neuron_index"');
  }
  checkRecordList(r.most_positive_activation_records, 'most_positive_activation_records');
  checkRecordList(r.random_sample, 'random_sample');
}

const recordKey = (r: ActivationRecord) => JSON.stringify(r.tokens);

/** Which records are used for what (see the file comment). */
export function selectRecords(record: NeuronRecord, counts: RecordCounts = {}, calibration = false): SelectedRecords {
  checkNeuronRecord(record);
  const top = record.most_positive_activation_records;
  const random = record.random_sample ?? [];
  const even = top.map((_, i) => i).filter((i) => i % 2 === 0);
  const odd = top.map((_, i) => i).filter((i) => i % 2 === 1);
  const nExplain = counts.explain ?? 5;
  const nTop = counts.scoreTop ?? 5;
  const nRandom = counts.scoreRandom ?? 5;
  const explain = even.slice(0, nExplain);
  const scoreTop = odd.slice(0, nTop);
  const calibrationTop = calibration ? odd.slice(nTop, nTop + (counts.calibrationTop ?? 5)) : [];
  const seen = new Set(explain.map((i) => recordKey(top[i])));
  const randomUsable = random.map((_, i) => i).filter((i) => !seen.has(recordKey(random[i])));
  const scoreRandom = randomUsable.slice(0, nRandom);
  const calibrationRandom = calibration
    ? randomUsable.slice(nRandom, nRandom + (counts.calibrationRandom ?? 5))
    : [];
  return {
    explain: explain.map((i) => top[i]),
    scoreTop: scoreTop.map((i) => top[i]),
    scoreRandom: scoreRandom.map((i) => random[i]),
    calibrationTop: calibrationTop.map((i) => top[i]),
    calibrationRandom: calibrationRandom.map((i) => random[i]),
    indices: {
      explain,
      score_top: scoreTop,
      score_random: scoreRandom,
      calibration_top: calibrationTop,
      calibration_random: calibrationRandom,
    },
  };
}

/** The simulator `explainAndScoreNeuron` uses for `options`. */
export function simulatorFor(client: ChatCompleter, options: PipelineOptions): Simulator {
  return createSimulator(client, {
    ...options.simulation,
    model: options.simulatorModel ?? options.model,
    reasoningModel: options.reasoningModel,
  });
}

/**
 * Cancellation shared by a neuron's steps without one shared signal: every step gets its own
 * AbortController (so no signal collects a listener per in-flight request, which Node reports as
 * a leak past 10), and aborting — by the caller's signal or a failed step — aborts them all.
 */
class StepCancellation {
  private readonly open_ = new Set<AbortController>();
  private reason: unknown;
  private aborted = false;
  private readonly onOuterAbort = () => this.abortAll(this.outer?.reason);

  constructor(private readonly outer: AbortSignal | undefined) {
    if (outer?.aborted) this.abortAll(outer.reason);
    else outer?.addEventListener('abort', this.onOuterAbort, { once: true });
  }

  open(): { signal: AbortSignal; close: () => void } {
    const controller = new AbortController();
    if (this.aborted) controller.abort(this.reason);
    else this.open_.add(controller);
    return { signal: controller.signal, close: () => this.open_.delete(controller) };
  }

  abortAll(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    for (const controller of this.open_) controller.abort(reason);
    this.open_.clear();
  }

  dispose(): void {
    this.outer?.removeEventListener('abort', this.onOuterAbort);
  }
}

const pairsOf = (records: readonly ActivationRecord[], sims: readonly SequenceSimulation[]): ScoringPair[] =>
  records.map((r, i) => ({ trueActivations: r.activations, expected: sims[i].expected_activations }));

/**
 * Explains one neuron and scores the explanations (see the file comment). Sibling LLM calls are
 * cancelled as soon as one step fails, so a failure does not keep spending.
 */
export async function explainAndScoreNeuron(
  record: NeuronRecord,
  client: ChatCompleter,
  options: PipelineOptions,
  call: PipelineCallOptions = {},
): Promise<NeuronPipelineResult> {
  if (!options || typeof options.model !== 'string' || options.model.trim() === '') {
    throw new PipelineError('options.model must name the LLM to use');
  }
  const selected = selectRecords(record, options.records, options.calibration === true);
  const given = options.givenExplanations;
  if (given !== undefined && (!Array.isArray(given) || given.some((e) => typeof e !== 'string' || e.trim() === ''))) {
    throw new PipelineError('givenExplanations must be non-empty strings');
  }
  if (given === undefined && selected.explain.length === 0) {
    throw new PipelineError('the neuron record has no top-activating records to explain from');
  }
  if (selected.scoreTop.length + selected.scoreRandom.length === 0) {
    throw new PipelineError('the neuron record has no records left to score on (need more than the explaining ones)');
  }

  const steps = call.steps ?? runStepsDirectly;
  const cancellation = new StepCancellation(call.signal);
  /** Runs one step with its own signal; its failure cancels every other step. */
  const guarded = <T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> => {
    const step = cancellation.open();
    return work(step.signal)
      .catch((err: unknown) => {
        cancellation.abortAll(err);
        throw err;
      })
      .finally(step.close);
  };

  const nExplanations = given?.length ?? options.explanations ?? 1;
  const detection = options.detection ? (options.detection === true ? {} : options.detection) : undefined;
  const fuzzing = options.fuzzing ? (options.fuzzing === true ? {} : options.fuzzing) : undefined;
  const simulated = [
    ...selected.scoreTop.map((r, i) => ({ key: `top${i}`, record: r })),
    ...selected.scoreRandom.map((r, i) => ({ key: `random${i}`, record: r })),
    ...selected.calibrationTop.map((r, i) => ({ key: `calibration-top${i}`, record: r })),
    ...selected.calibrationRandom.map((r, i) => ({ key: `calibration-random${i}`, record: r })),
  ];
  const ablation = call.ablation;
  const perExplanation = simulated.length + (detection ? 1 : 0) + (fuzzing ? 1 : 0) + (ablation ? 1 : 0);
  // Re-counted once the explanations are known: a distinct-only explainer may return fewer.
  let total = 1 + nExplanations * perExplanation;
  let done = 0;
  const progress = (stage: PipelineProgress['stage']) => {
    done++;
    try {
      call.onProgress?.({ neuron_id: record.neuron_id, stage, done, total });
    } catch {
      // A faulty progress display must not break the run.
    }
  };

  try {
    const explanations = await steps.run('explanations', async () => {
      if (given) return [...given];
      return guarded((signal) => generateExplanations(
        client,
        selected.explain,
        {
          ...options.explainer,
          model: options.explainerModel ?? options.model,
          n: nExplanations,
          reasoningModel: options.reasoningModel,
        },
        { signal },
      ));
    });
    total = 1 + explanations.length * perExplanation;
    progress('explain');

    const simulator: Simulator = call.simulator ?? simulatorFor(client, options);
    const binary = { model: options.simulatorModel ?? options.model, reasoningModel: options.reasoningModel };

    const scores = await Promise.all(
      explanations.map(async (explanation, e) => {
        const sims = Promise.all(
          simulated.map(({ key, record: r }) =>
            steps
              .run(`simulation/e${e}/${key}`, () =>
                guarded(async (signal) => {
                  const [simulation] = await simulator.simulate(explanation, [r.tokens], { signal });
                  return simulation;
                }),
              )
              .then((simulation) => {
              progress('simulate');
              return simulation;
            }),
          ),
        );
        const detectionScore = detection
          ? steps
              .run(`detection/e${e}`, () =>
                guarded((signal) =>
                  scoreDetection(client, explanation, selected.scoreTop, selected.scoreRandom, { ...detection, ...binary }, {
                    signal,
                  }),
                ),
              )
              .then((s) => {
              progress('detection');
              return s;
            })
          : Promise.resolve(undefined);
        const fuzzingScore = fuzzing
          ? steps
              .run(`fuzzing/e${e}`, () =>
                guarded((signal) => scoreFuzzing(client, explanation, selected.scoreTop, { ...fuzzing, ...binary }, { signal })),
              )
              .then((s) => {
              progress('fuzzing');
              return s;
            })
          : Promise.resolve(undefined);
        const [allSims, detected, fuzzed] = await Promise.all([sims, detectionScore, fuzzingScore]);
        return { explanation, sims: allSims, detected, fuzzed };
      }),
    );

    const nTop = selected.scoreTop.length;
    const nRandom = selected.scoreRandom.length;
    const scoredRecords = [...selected.scoreTop, ...selected.scoreRandom];
    const calibrationRecords = [...selected.calibrationTop, ...selected.calibrationRandom];
    const summaries: ExplanationScores[] = [];
    const scoredExplanations = scores.map(({ explanation, sims, detected, fuzzed }) => {
      const topSims = sims.slice(0, nTop);
      const randomSims = sims.slice(nTop, nTop + nRandom);
      const calibrationSims = sims.slice(nTop + nRandom);
      const split = scoreTopAndRandom(pairsOf(selected.scoreTop, topSims), pairsOf(selected.scoreRandom, randomSims));
      const summary: ExplanationScores = {
        explanation,
        ...split,
        simulation_modes: [...new Set(sims.flatMap((s) => (s.simulation_mode ? [s.simulation_mode] : [])))],
      };
      if (options.calibration) {
        try {
          summary.calibrated = calibratedScores(
            pairsOf(calibrationRecords, calibrationSims),
            pairsOf(scoredRecords, [...topSims, ...randomSims]),
          );
        } catch (err) {
          if (!(err instanceof CalibrationError)) throw err;
          summary.calibrated = null;
        }
      }
      if (detected) summary.detection = detected;
      if (fuzzed) summary.fuzzing = fuzzed;
      summaries.push(summary);
      return scoreExplanation(
        explanation,
        [...topSims, ...randomSims],
        scoredRecords.map((r) => r.activations),
      );
    });

    if (ablation) {
      // One explanation at a time: the model runs one batch at a time anyway.
      for (const [e, { sims }] of scores.entries()) {
        const summary = summaries[e];
        const scored = [...selected.scoreTop.map((r, i) => ({ key: `top${i}`, record: r })), ...selected.scoreRandom.map((r, i) => ({ key: `random${i}`, record: r }))];
        const result = await steps.run(`ablation/e${e}`, async (): Promise<AblationScore | null> => {
          if (record.mean === null || !Number.isFinite(record.mean)) return null;
          try {
            return await guarded((signal) =>
              ablation(
                {
                  layer: record.neuron_id.layer_index,
                  neuron: record.neuron_id.neuron_index,
                  mean: record.mean!,
                  excerpts: scored.map(({ key, record: r }, i) => ({ key, tokens: r.tokens, activations: r.activations, expected: sims[i].expected_activations })),
                  ...(summary.calibrated ? { calibration: summary.calibrated.calibration } : {}),
                },
                signal,
              ),
            );
          } catch (err) {
            if (err instanceof AblationScoreError || err instanceof CalibrationError) return null;
            throw err;
          }
        });
        progress('ablation');
        summary.ablation = result;
        if (result) scoredExplanations[e].scored_simulation.ablation_score = result.score;
      }
    }

    return {
      neuron_id: { ...record.neuron_id },
      explanations,
      simulation_results: {
        dataclass_name: 'NeuronSimulationResults',
        neuron_id: { dataclass_name: 'NeuronId', ...record.neuron_id },
        scored_explanations: scoredExplanations,
      },
      scores: summaries,
      records_used: selected.indices,
    };
  } finally {
    cancellation.dispose();
  }
}
