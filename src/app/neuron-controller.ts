/**
 * The neuron page: everything about one neuron of one dataset. It loads the neuron's record and
 * its stored explanations, runs the explain → simulate → score jobs (with the ablation score when
 * the dataset's model is loaded), the "test it on my text" box (live activations from the model,
 * simulated values from the LLM), the weight-based views and the comparison with the loaded model.
 *
 * The rules, in one place:
 * - What is shown belongs to the neuron on screen. Every kind of request has a LatestOnly guard:
 *   switching neuron (or dataset, or model) supersedes what was under way, stops its work, and
 *   nothing that arrives for the neuron left behind is shown.
 * - A job's finished steps are kept (job store) and its LLM answers cached, so running it again is
 *   free; a re-run ("fresh") forgets the job's steps and asks the LLM again, storing the new
 *   answers over the old ones, so a bad cached answer never sticks.
 * - Every undefined score comes with a reason in words (score-reasons.ts), and a fallback from
 *   logprob to sampled simulation is said, not silent.
 * - The test box shows a simulation only for the text, tokens and explanation it was made for.
 */
import type { NeuronRecord } from '../lib/activations/records.ts';
import { recordStatistics, type RecordStatistics } from '../lib/activations/record-stats.ts';
import { AblationScoreError, type AblationScore, type AblationScoreInput, type AblationScorer } from '../lib/explain/ablation-score.ts';
import type { ScoredExplanation, SimulationMode } from '../lib/explain/explanation-types.ts';
import { neuronJobId, neuronJobPrefix, runExplainJob, type JobStore } from '../lib/explain/job.ts';
import { explainOptions, llmSource } from './explain-neuron.ts';
import { simulatorFor, type ExplanationScores, type NeuronPipelineResult, type PipelineOptions } from '../lib/explain/pipeline.ts';
import { ablationUndefinedReason, correlationUndefinedReason, coverageNote } from '../lib/explain/score-reasons.ts';
import { scoreSimulation, type ScoringPair } from '../lib/explain/scoring.ts';
import { LatestOnly, type LatestTicket } from '../lib/latest-only.ts';
import { createChatClient, type ChatClientOptions } from '../lib/llm/client.ts';
import { defaultPricingFor } from '../lib/llm/cost.ts';
import { refreshingCache, type ResponseCache } from '../lib/llm/response-cache.ts';
import type { LlmSettings } from '../lib/llm/settings.ts';
import type { ChatCompleter } from '../lib/llm/types.ts';
import type { UsageTotals } from '../lib/llm/usage-meter.ts';
import type { Token } from '../lib/model/tokenizer.ts';
import type { NeuronWeightViews } from '../lib/model/weight-views.ts';
import type { NeurolensStore } from '../lib/store/neurolens-store.ts';
import type { ScanMeta, StoredExplanation } from '../lib/store/store-types.ts';
import type { CaptureReply, CompareReply, ModelSummary } from '../worker/protocol.ts';
import { Observable } from './observable.ts';
import type { NeuronRef } from './url-state.ts';

/** What the probe's ablation panel is asked to do when the user ablates a neuron from its page. */
export interface AblateRequest {
  layer: number;
  neuron: number;
  mode: 'zero' | 'mean';
  /** The neuron's mean activation over the dataset, for mean ablation. */
  mean?: number;
}

/** Something loaded for the page: not asked for, on its way, there, not available (and why), or failed. */
export type Loadable<T> =
  | { status: 'idle' }
  | { status: 'loading' }
  | { status: 'ready'; value: T }
  | { status: 'unavailable'; message: string }
  | { status: 'error'; message: string };

/** One scored excerpt of an explanation: the neuron's activations and the simulated ones. */
export interface ComparedExcerpt {
  /** Where it came from: the top-activating or the random excerpts ('scored' when not known). */
  kind: 'top' | 'random' | 'scored';
  tokens: string[];
  real: number[];
  simulated: (number | null)[];
  correlation: number | null;
}

export interface ExplanationEntry {
  explanation: string;
  source?: string;
  createdAt?: number;
  /** Neurolens' scores (absent for explanations imported in the paper's format alone). */
  scores: ExplanationScores | null;
  /** The paper-format simulation, with every scored excerpt. */
  scored: ScoredExplanation | null;
  /** The headline score: correlation over the top and random excerpts together. */
  all: number | null;
  top: number | null | undefined;
  random: number | null | undefined;
  /** undefined: not computed; null: could not be (see reasons.ablation). */
  ablation: number | null | undefined;
  modes: SimulationMode[];
  coverage: number | null;
  /** Plain words for each undefined score (null where the score has a value). */
  reasons: { all: string | null; top: string | null; random: string | null; ablation: string | null; coverage: string | null };
  excerpts: ComparedExcerpt[];
}

export type JobKind = 'explain' | 'simulate' | 'ablation';

export interface JobState {
  kind: JobKind;
  /** The explanation simulated or scored (simulate, ablation). */
  explanation?: string;
  /** A re-run: the job's stored steps and cached answers are not used. */
  fresh: boolean;
  progress: { stage: string; done: number; total: number } | null;
}

export interface TestSimulation {
  text: string;
  explanation: string;
  expected: (number | null)[];
  modes: SimulationMode[];
  coverage: number;
  correlation: number | null;
  reason: string | null;
  /** Said when the endpoint gave no logprobs and the values were sampled. */
  notice: string | null;
}

export interface LiveActivations {
  text: string;
  tokens: Token[];
  values: number[];
  max: number;
}

export interface TestState {
  text: string;
  live: Loadable<LiveActivations>;
  simulation: Loadable<TestSimulation>;
}

export interface NeuronPageState {
  scan: ScanMeta | null;
  neuron: NeuronRef | null;
  /** How the loaded model relates to the dataset's: live views need the same one. */
  model: { loaded: string | null; matches: boolean; note: string | null };
  record: Loadable<NeuronRecord>;
  stats: RecordStatistics | null;
  explanations: Loadable<ExplanationEntry[]>;
  job: JobState | null;
  /** How the last job ended: an error, "stopped", or done with what it cost. */
  outcome: { kind: 'error' | 'stopped' | 'done'; text: string } | null;
  /** Things the user should know about the last job (sampled mode, fewer explanations, no ablation score). */
  notices: string[];
  weights: Loadable<NeuronWeightViews>;
  comparison: Loadable<CompareReply[]>;
  test: TestState;
}

/** The store as the page uses it (NeurolensStore; tests may hand in a smaller one). */
export type NeuronPageStore = Pick<
  NeurolensStore,
  | 'getNeuronRecord'
  | 'listExplanations'
  | 'getScores'
  | 'getScoredExplanation'
  | 'putPipelineResult'
  | 'putScores'
  | 'putSimulationResults'
  | 'deleteExplanation'
  | 'deleteJob'
  | 'deleteJobsStartingWith'
  | 'jobStore'
  | 'responseCache'
>;

/** A chat client as the page needs it: completions and what they cost. */
export type PageChatClient = ChatCompleter & { usage(): UsageTotals };

export interface NeuronPageDeps {
  store: Promise<NeuronPageStore>;
  llm: () => LlmSettings;
  model: () => ModelSummary | null;
  capture(text: string): Promise<CaptureReply>;
  weights(layer: number, neuron: number): Promise<NeuronWeightViews>;
  ablationScore(input: AblationScoreInput, signal: AbortSignal): Promise<AblationScore>;
  compare(record: NeuronRecord, gelu: 'tanh' | 'sigmoid'): Promise<CompareReply>;
  /** Opens the probe with an ablation of this neuron. */
  requestAblation(request: AblateRequest): void;
  /** Makes the LLM client (default createChatClient); e.g. a scripted LLM for a walkthrough. */
  chatClient?: (options: ChatClientOptions) => PageChatClient;
  /** Pause after typing in the test box before the model runs (default 300 ms). */
  testDebounceMs?: number;
}

export interface ExplainOptions {
  /** Candidate explanations to ask for (default 1). */
  explanations?: number;
  /** Spending limit in USD for models with a known price (null: none). */
  budgetUsd?: number | null;
  /** Re-run: forget the stored steps and ask the LLM again. */
  fresh?: boolean;
  /** Also compute the ablation score when the dataset's model is loaded (default true). */
  ablation?: boolean;
}

const SAMPLED_NOTICE =
  'The endpoint gave no logprobs (or refused them), so the simulator ran in sampled mode: each value is one sampled answer, not an expected value over 0–10, and the scores are noisier.';

const idle = { status: 'idle' } as const;
const emptyTest = (): TestState => ({ text: '', live: idle, simulation: idle });

const describeError = (err: unknown): string => (err instanceof Error ? err.message : String(err));
const isAbort = (err: unknown) => err instanceof Error && err.name === 'AbortError';

export class NeuronPageController {
  readonly state = new Observable<NeuronPageState>({
    scan: null,
    neuron: null,
    model: { loaded: null, matches: false, note: null },
    record: idle,
    stats: null,
    explanations: idle,
    job: null,
    outcome: null,
    notices: [],
    weights: idle,
    comparison: idle,
    test: emptyTest(),
  });

  private readonly records = new LatestOnly();
  private readonly lists = new LatestOnly();
  private readonly jobs = new LatestOnly();
  private readonly weightRuns = new LatestOnly();
  private readonly comparisons = new LatestOnly();
  private readonly liveRuns = new LatestOnly();
  private readonly testRuns = new LatestOnly();
  private job: LatestTicket | undefined;
  private shownKey = '';
  private modelKey = '';
  /** When the shown dataset last changed (an import into it, say): its rows are read again after one. */
  private shownUpdatedAt = 0;
  private liveTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly deps: NeuronPageDeps) {}

  /**
   * Shows `neuron` of `scan` (either may be null). Showing what is already shown changes nothing
   * (unless the dataset changed since, e.g. by an import: then its rows are read again); another
   * neuron or dataset drops everything of the previous one and stops its work.
   */
  show(scan: ScanMeta | null, neuron: NeuronRef | null): void {
    const model = this.deps.model();
    const key = `${scan?.id ?? ''}|${neuron ? `${neuron.layer}:${neuron.neuron}` : ''}`;
    const modelKey = `${key}|${model?.label ?? ''}|${model?.dMlp ?? ''}`;
    if (key === this.shownKey && modelKey === this.modelKey) {
      if (scan && scan.updatedAt > this.shownUpdatedAt && !this.state.get().job) {
        this.shownUpdatedAt = scan.updatedAt;
        this.state.patch({ scan });
        if (neuron) this.loadRecord(scan, neuron);
      }
      return;
    }
    this.shownUpdatedAt = scan?.updatedAt ?? 0;
    const neuronChanged = key !== this.shownKey;
    this.shownKey = key;
    this.modelKey = modelKey;
    const matches = !!model && (!scan || (scan.model.label === model.label && (scan.model.dMlp === undefined || scan.model.dMlp === model.dMlp)));
    const note = !model
      ? 'No model is loaded: live activations, the weights and the ablation score need one.'
      : scan && !matches
        ? `The loaded model is ${model.label}, but this dataset was scanned with ${scan.model.label}: load ${scan.model.label} (Settings) for live activations, the weights and the ablation score.`
        : null;
    this.state.patch({ scan, neuron, model: { loaded: model?.label ?? null, matches, note } });

    if (neuronChanged) {
      for (const guard of [this.records, this.lists, this.jobs, this.comparisons]) guard.supersede();
      this.job = undefined;
      this.state.patch({ record: idle, stats: null, explanations: idle, job: null, outcome: null, notices: [], comparison: idle });
      if (scan && neuron) this.loadRecord(scan, neuron);
      else this.state.patch({ record: { status: 'unavailable', message: scan ? 'Pick a neuron.' : 'There is no dataset in this browser yet.' } });
    }
    // Live views follow the model as well as the neuron.
    this.weightRuns.supersede();
    this.testRuns.supersede();
    this.liveRuns.supersede();
    clearTimeout(this.liveTimer);
    const text = neuronChanged ? '' : this.state.get().test.text;
    this.state.patch({ weights: idle, test: { ...emptyTest(), text } });
    this.loadWeights();
    if (text.trim()) this.runLive(text);
  }

  private neuronOk(neuron: NeuronRef): string | null {
    const model = this.deps.model();
    if (!model) return null;
    if (neuron.layer >= model.nLayer || neuron.neuron >= model.dMlp) return `${model.label} has no neuron ${neuron.layer}:${neuron.neuron}.`;
    return null;
  }

  private loadRecord(scan: ScanMeta, neuron: NeuronRef): void {
    const ticket = this.records.begin();
    // Read again for the same neuron (after an import), the record on screen stays until the new one is in.
    if (this.state.get().record.status !== 'ready') this.state.patch({ record: { status: 'loading' } });
    void ticket.settle(
      (async () => (await this.deps.store).getNeuronRecord(scan.id, neuron.layer, neuron.neuron))(),
      (record) => {
        if (!record) {
          const layers = scan.layers.includes(neuron.layer) ? '' : ` (it covers layer${scan.layers.length === 1 ? '' : 's'} ${scan.layers.join(', ')})`;
          this.state.patch({ record: { status: 'unavailable', message: `There is no record of neuron ${neuron.layer}:${neuron.neuron} in ${scan.name}${layers}.` } });
          return;
        }
        this.state.patch({ record: { status: 'ready', value: record }, stats: recordStatistics(record) });
        this.loadExplanations();
      },
      (err) => this.state.patch({ record: { status: 'error', message: describeError(err) } }),
    );
  }

  private loadExplanations(): Promise<void> {
    const { scan, neuron } = this.state.get();
    if (!scan || !neuron) return Promise.resolve();
    const ticket = this.lists.begin();
    if (this.state.get().explanations.status !== 'ready') this.state.patch({ explanations: { status: 'loading' } });
    return ticket.settle(
      this.readExplanations(scan.id, neuron),
      (entries) => this.state.patch({ explanations: { status: 'ready', value: entries } }),
      (err) => this.state.patch({ explanations: { status: 'error', message: describeError(err) } }),
    );
  }

  private async readExplanations(scanId: string, neuron: NeuronRef): Promise<ExplanationEntry[]> {
    const store = await this.deps.store;
    const stored = await store.listExplanations(scanId, neuron);
    return Promise.all(
      stored.map(async (e) => explanationEntry(e, (await store.getScores(scanId, neuron, e.explanation)) ?? null, (await store.getScoredExplanation(scanId, neuron, e.explanation)) ?? null)),
    );
  }

  // ---- jobs ------------------------------------------------------------------------------------

  /** Explains the neuron, then simulates and scores every explanation (the whole pipeline). */
  explain(options: ExplainOptions = {}): Promise<void> {
    const n = options.explanations ?? 1;
    return this.runPipeline({ kind: 'explain', fresh: options.fresh === true, progress: null }, options, (model) => ({
      options: explainOptions(model, n),
      asked: n,
    }));
  }

  /** Simulates and scores a given explanation (written by the user, or one to re-run). */
  simulate(explanation: string, options: Omit<ExplainOptions, 'explanations'> = {}): Promise<void> {
    const text = explanation.trim();
    if (!text) {
      this.state.patch({ outcome: { kind: 'error', text: 'Write an explanation to simulate first.' } });
      return Promise.resolve();
    }
    return this.runPipeline({ kind: 'simulate', explanation: text, fresh: options.fresh === true, progress: null }, options, (model) => ({
      options: { model, givenExplanations: [text] },
      asked: 1,
    }));
  }

  /** Re-runs an explanation afresh: new simulations from the LLM, replacing the stored ones. */
  rerun(explanation: string, options: Omit<ExplainOptions, 'explanations' | 'fresh'> = {}): Promise<void> {
    return this.simulate(explanation, { ...options, fresh: true });
  }

  /** Stops the job under way; its finished steps are kept. */
  stop(): void {
    this.job?.abort();
  }

  private readyRecord(): NeuronRecord | null {
    const r = this.state.get().record;
    return r.status === 'ready' ? r.value : null;
  }

  /** The ablation scorer when the dataset's model is loaded; otherwise a notice says why there is none. */
  private ablationScorer(notices: string[]): AblationScorer | undefined {
    const { model } = this.state.get();
    const record = this.readyRecord();
    if (!model.matches) {
      notices.push(`No ablation score: ${model.note ?? 'the dataset’s model is not loaded.'}`);
      return undefined;
    }
    if (record && (record.mean === null || !Number.isFinite(record.mean))) {
      notices.push('No ablation score: the record has no mean activation to ablate to.');
      return undefined;
    }
    return async (input, signal) => {
      try {
        return await this.deps.ablationScore(input, signal);
      } catch (err) {
        // Errors from the worker lose their class; the pipeline records these as "could not be computed".
        if (err instanceof Error && (err.name === 'AblationScoreError' || err.name === 'CalibrationError')) throw new AblationScoreError(err.message);
        throw err;
      }
    };
  }

  private client(settings: LlmSettings, cache: ResponseCache, budgetUsd: number | null, signal: AbortSignal, priced: boolean): PageChatClient {
    const make = this.deps.chatClient ?? createChatClient;
    return make({
      baseUrl: settings.baseUrl.trim(),
      apiKey: settings.apiKey.trim() || undefined,
      cache,
      budget: budgetUsd && priced ? { maxCostUsd: budgetUsd } : undefined,
      signal,
    });
  }

  private llmProblem(settings: LlmSettings): string | null {
    if (!settings.baseUrl.trim()) return 'Set the LLM endpoint first.';
    if (!settings.model.trim()) return 'Name the LLM model first.';
    return null;
  }

  private async runPipeline(
    job: JobState,
    call: Pick<ExplainOptions, 'budgetUsd' | 'ablation'>,
    plan: (model: string) => { options: PipelineOptions; asked: number },
  ): Promise<void> {
    const { scan, neuron } = this.state.get();
    const record = this.readyRecord();
    if (this.state.get().job) return;
    if (!scan || !neuron || !record) {
      this.state.patch({ outcome: { kind: 'error', text: 'There is no record of this neuron to explain.' } });
      return;
    }
    const settings = this.deps.llm();
    const problem = this.llmProblem(settings);
    if (problem) {
      this.state.patch({ outcome: { kind: 'error', text: problem } });
      return;
    }
    const ticket = this.jobs.begin();
    this.job = ticket;
    const model = settings.model.trim();
    const baseUrl = settings.baseUrl.trim();
    const { options, asked } = plan(model);
    const notices: string[] = [];
    this.state.patch({ job, outcome: null, notices: [] });
    try {
      const store = await this.deps.store;
      const jobId = await neuronJobId(scan.id, neuron, options, baseUrl);
      if (job.fresh) await store.deleteJob(jobId);
      const priced = defaultPricingFor(model) !== undefined;
      const cache = job.fresh ? refreshingCache(store.responseCache()) : store.responseCache();
      const client = this.client(settings, cache, call.budgetUsd ?? null, ticket.signal, priced);
      const ablation = call.ablation === false ? undefined : this.ablationScorer(notices);
      const result = await runExplainJob(client, { jobId, records: [record], options }, store.jobStore() as JobStore, {
        signal: ticket.signal,
        ablation,
        onProgress: (p) =>
          ticket.apply(() =>
            this.state.patch({ job: { ...job, progress: p.step ? { stage: p.step.stage, done: p.step.done, total: p.step.total } : { stage: 'recalled', done: 1, total: 1 } } }),
          ),
      });
      const neuronResult = result.neurons[0];
      // Stored under its own neuron, even if the user has moved on meanwhile.
      await store.putPipelineResult(scan.id, neuronResult, llmSource(settings));
      notices.push(...resultNotices(neuronResult, asked));
      const usage = client.usage();
      await this.loadExplanationsFor(ticket);
      ticket.apply(() => this.state.patch({ outcome: { kind: 'done', text: usageText(usage, priced) }, notices }));
    } catch (err) {
      ticket.apply(() =>
        this.state.patch({
          outcome: isAbort(err)
            ? { kind: 'stopped', text: 'Stopped. The finished steps are saved: running it again resumes from them.' }
            : { kind: 'error', text: describeError(err) },
          notices,
        }),
      );
    } finally {
      ticket.apply(() => this.state.patch({ job: null }));
      if (this.job === ticket) this.job = undefined;
    }
  }

  private async loadExplanationsFor(ticket: LatestTicket): Promise<void> {
    if (ticket.isLatest) await this.loadExplanations();
  }

  /** Computes (or recomputes) an explanation's ablation score from its stored simulations, with the model. */
  async scoreAblation(explanation: string): Promise<void> {
    const { scan, neuron, explanations } = this.state.get();
    const record = this.readyRecord();
    const entry = explanations.status === 'ready' ? explanations.value.find((e) => e.explanation === explanation) : undefined;
    if (this.state.get().job || !scan || !neuron || !record || !entry?.scored) return;
    const notices: string[] = [];
    const scorer = this.ablationScorer(notices);
    if (!scorer) {
      this.state.patch({ outcome: { kind: 'error', text: notices.join(' ') } });
      return;
    }
    const ticket = this.jobs.begin();
    this.job = ticket;
    const job: JobState = { kind: 'ablation', explanation, fresh: false, progress: { stage: 'ablation', done: 0, total: 1 } };
    this.state.patch({ job, outcome: null, notices: [] });
    try {
      const nTop = entry.scores?.top.per_record_correlation.length ?? 0;
      const input: AblationScoreInput = {
        layer: neuron.layer,
        neuron: neuron.neuron,
        mean: record.mean!,
        excerpts: entry.scored.scored_simulation.scored_sequence_simulations.map((s, i) => ({
          key: entry.scores ? (i < nTop ? `top${i}` : `random${i - nTop}`) : `scored${i}`,
          tokens: s.simulation.tokens,
          activations: s.true_activations,
          expected: s.simulation.expected_activations,
        })),
        ...(entry.scores?.calibrated ? { calibration: entry.scores.calibrated.calibration } : {}),
      };
      let ablation: AblationScore | null;
      try {
        ablation = await scorer(input, ticket.signal);
      } catch (err) {
        if (!(err instanceof AblationScoreError)) throw err;
        ablation = null;
      }
      const store = await this.deps.store;
      if (entry.scores) await store.putScores(scan.id, neuron, { ...entry.scores, ablation });
      const scored: ScoredExplanation = { ...entry.scored, scored_simulation: { ...entry.scored.scored_simulation, ablation_score: ablation?.score ?? null } };
      await store.putSimulationResults(scan.id, [{ dataclass_name: 'NeuronSimulationResults', neuron_id: { dataclass_name: 'NeuronId', layer_index: neuron.layer, neuron_index: neuron.neuron }, scored_explanations: [scored] }]);
      await this.loadExplanationsFor(ticket);
      ticket.apply(() => this.state.patch({ outcome: { kind: 'done', text: 'Ablation score computed with the loaded model (no LLM requests).' } }));
    } catch (err) {
      ticket.apply(() => this.state.patch({ outcome: isAbort(err) ? { kind: 'stopped', text: 'Stopped.' } : { kind: 'error', text: describeError(err) } }));
    } finally {
      ticket.apply(() => this.state.patch({ job: null }));
      if (this.job === ticket) this.job = undefined;
    }
  }

  /**
   * Deletes an explanation with its simulation and scores, and forgets this neuron's saved job
   * steps (so a new run does not bring it back from them).
   */
  async deleteExplanation(explanation: string): Promise<void> {
    const { scan, neuron } = this.state.get();
    if (this.state.get().job || !scan || !neuron) return;
    const ticket = this.lists.begin();
    try {
      const store = await this.deps.store;
      await store.deleteExplanation(scan.id, neuron, explanation);
      await store.deleteJobsStartingWith(neuronJobPrefix(scan.id, neuron));
      ticket.apply(() => this.state.patch({ outcome: { kind: 'done', text: `Deleted “${explanation}”.` }, notices: [] }));
    } catch (err) {
      ticket.apply(() => this.state.patch({ outcome: { kind: 'error', text: describeError(err) } }));
    }
    if (ticket.isLatest) await this.loadExplanations();
  }

  // ---- live views --------------------------------------------------------------------------------

  private loadWeights(): void {
    const { neuron, model } = this.state.get();
    if (!neuron) return;
    if (!model.matches) {
      this.state.patch({ weights: { status: 'unavailable', message: model.note ?? 'No model is loaded.' } });
      return;
    }
    const wrong = this.neuronOk(neuron);
    if (wrong) {
      this.state.patch({ weights: { status: 'unavailable', message: wrong } });
      return;
    }
    const ticket = this.weightRuns.begin();
    this.state.patch({ weights: { status: 'loading' } });
    void ticket.settle(
      this.deps.weights(neuron.layer, neuron.neuron),
      (value) => this.state.patch({ weights: { status: 'ready', value } }),
      (err) => this.state.patch({ weights: { status: 'error', message: describeError(err) } }),
    );
  }

  /** Re-runs the record's excerpts through the loaded model with both GELU variants. */
  compareWithModel(): void {
    const record = this.readyRecord();
    if (!record) return;
    const ticket = this.comparisons.begin();
    this.state.patch({ comparison: { status: 'loading' } });
    // Both GELU variants: the paper's released data used x·σ(1.702x), GPT-2 itself the tanh form.
    const both = (async () => [await this.deps.compare(record, 'tanh'), await this.deps.compare(record, 'sigmoid')])();
    void ticket.settle(
      both,
      (value) => this.state.patch({ comparison: { status: 'ready', value } }),
      (err) => this.state.patch({ comparison: { status: 'error', message: describeError(err) } }),
    );
  }

  /** Asks the probe to ablate this neuron live (it opens the probe). */
  ablateInProbe(mode: 'zero' | 'mean'): void {
    const { neuron } = this.state.get();
    if (!neuron) return;
    const mean = this.readyRecord()?.mean;
    this.deps.requestAblation({ layer: neuron.layer, neuron: neuron.neuron, mode, ...(typeof mean === 'number' && Number.isFinite(mean) ? { mean } : {}) });
  }

  /** The test box's text changed: its live activations follow shortly; an older simulation goes at once. */
  setTestText(text: string): void {
    const test = this.state.get().test;
    if (text === test.text) return;
    this.testRuns.supersede();
    this.liveRuns.supersede();
    clearTimeout(this.liveTimer);
    this.state.patch({ test: { text, live: text.trim() ? { status: 'loading' } : idle, simulation: idle } });
    if (!text.trim()) return;
    this.liveTimer = setTimeout(() => this.runLive(text), this.deps.testDebounceMs ?? 300);
  }

  private runLive(text: string): void {
    const { neuron } = this.state.get();
    if (!neuron) return;
    if (!this.deps.model()) {
      this.patchTest({ live: { status: 'unavailable', message: 'No model is loaded yet.' } });
      return;
    }
    const wrong = this.neuronOk(neuron);
    if (wrong) {
      this.patchTest({ live: { status: 'unavailable', message: wrong } });
      return;
    }
    const ticket = this.liveRuns.begin();
    this.patchTest({ live: { status: 'loading' } });
    void ticket.settle(
      this.deps.capture(text),
      (reply) => {
        const layer = reply.layers.find((l) => l.layer === neuron.layer);
        if (!layer) {
          this.patchTest({ live: { status: 'error', message: `the model gave no activations for layer ${neuron.layer}` } });
          return;
        }
        const values = reply.tokens.map((_, t) => layer.data[t * reply.dMlp + neuron.neuron]);
        this.patchTest({ live: { status: 'ready', value: { text, tokens: reply.tokens, values, max: Math.max(0, ...values) } } });
      },
      (err) => this.patchTest({ live: { status: 'error', message: describeError(err) } }),
    );
  }

  /** Simulates `explanation` on the test text's tokens (the LLM, with the pipeline's simulator). */
  async simulateTest(explanation: string): Promise<void> {
    const { test } = this.state.get();
    const text = explanation.trim();
    if (test.live.status !== 'ready' || test.live.value.text !== test.text) return;
    const settings = this.deps.llm();
    const problem = this.llmProblem(settings) ?? (text ? null : 'Pick or write an explanation to simulate.');
    if (problem) {
      this.patchTest({ simulation: { status: 'error', message: problem } });
      return;
    }
    const live = test.live.value;
    const ticket = this.testRuns.begin();
    this.patchTest({ simulation: { status: 'loading' } });
    const store = await this.deps.store;
    const client = this.client(settings, store.responseCache(), null, ticket.signal, false);
    const simulator = simulatorFor(client, { model: settings.model.trim() });
    await ticket.settle(
      simulator.simulate(text, [live.tokens.map((t) => t.text)], { signal: ticket.signal }),
      ([simulation]) => {
        // Only for the text it was made for (a newer text supersedes this ticket anyway).
        if (this.state.get().test.text !== live.text) return;
        const pair: ScoringPair = { trueActivations: live.values, expected: simulation.expected_activations };
        const scores = scoreSimulation([pair]);
        const modes = simulation.simulation_mode ? [simulation.simulation_mode] : [];
        this.patchTest({
          simulation: {
            status: 'ready',
            value: {
              text: live.text,
              explanation: text,
              expected: simulation.expected_activations,
              modes,
              coverage: scores.coverage,
              correlation: scores.ev_correlation_score,
              reason: correlationUndefinedReason([pair]),
              notice: modes.includes('sampled') ? SAMPLED_NOTICE : null,
            },
          },
        });
      },
      (err) => this.patchTest({ simulation: isAbort(err) ? idle : { status: 'error', message: describeError(err) } }),
    );
  }

  private patchTest(changes: Partial<TestState>): void {
    this.state.patch({ test: { ...this.state.get().test, ...changes } });
  }

  /** Stops everything under way (the page went away for good). */
  dispose(): void {
    for (const guard of [this.records, this.lists, this.jobs, this.weightRuns, this.comparisons, this.liveRuns, this.testRuns]) guard.supersede();
    clearTimeout(this.liveTimer);
  }
}

/** A stored explanation as the page shows it: its scores, each undefined one with its reason. */
export function explanationEntry(stored: Pick<StoredExplanation, 'explanation' | 'source' | 'createdAt'>, scores: ExplanationScores | null, scored: ScoredExplanation | null): ExplanationEntry {
  const sequences = scored?.scored_simulation.scored_sequence_simulations ?? [];
  const nTop = scores?.top.per_record_correlation.length ?? 0;
  const excerpts: ComparedExcerpt[] = sequences.map((s, i) => ({
    kind: scores ? (i < nTop ? 'top' : 'random') : 'scored',
    tokens: s.simulation.tokens,
    real: s.true_activations,
    simulated: s.simulation.expected_activations,
    correlation: s.ev_correlation_score,
  }));
  const pairs = (list: ComparedExcerpt[]) => list.map((e) => ({ trueActivations: e.real, expected: e.simulated }));
  const topPairs = pairs(excerpts.filter((e) => e.kind === 'top'));
  const randomPairs = pairs(excerpts.filter((e) => e.kind === 'random'));
  const allPairs = pairs(excerpts);
  const modes = scores?.simulation_modes ?? [...new Set(sequences.flatMap((s) => (s.simulation.simulation_mode ? [s.simulation.simulation_mode] : [])))];
  const all = scores ? scores.all.ev_correlation_score : (scored?.scored_simulation.ev_correlation_score ?? null);
  const top = scores ? scores.top.ev_correlation_score : undefined;
  const random = scores ? scores.random.ev_correlation_score : undefined;
  // Neurolens' score object when there is one (undefined: never computed; null: could not be).
  const ablationScore = scores?.ablation;
  const ablation = ablationScore !== undefined ? (ablationScore?.score ?? null) : scored?.scored_simulation.ablation_score;
  const coverage = scores ? scores.all.coverage : sequences.length ? scoreSimulation(allPairs).coverage : null;
  const reasonIf = (value: number | null | undefined, list: ScoringPair[]) =>
    value !== null ? null : sequences.length ? correlationUndefinedReason(list) : 'not simulated yet: press “Simulate and score”';
  return {
    explanation: stored.explanation,
    source: stored.source,
    createdAt: stored.createdAt,
    scores,
    scored,
    all,
    top,
    random,
    ablation,
    modes,
    coverage,
    reasons: {
      all: reasonIf(all, allPairs),
      top: reasonIf(top, topPairs),
      random: reasonIf(random, randomPairs),
      ablation: ablation === undefined ? ablationUndefinedReason(undefined) : ablation === null ? ablationUndefinedReason(ablationScore ?? null) : null,
      coverage: coverage === null ? null : coverageNote(coverage),
    },
    excerpts,
  };
}

/** What the user should know about a finished pipeline result. */
function resultNotices(result: NeuronPipelineResult, asked: number): string[] {
  const notices: string[] = [];
  if (result.explanations.length < asked) {
    notices.push(
      `Asked for ${asked} explanations; the LLM gave ${result.explanations.length} distinct one${result.explanations.length === 1 ? '' : 's'} (repeats are dropped and asked for again, a few times).`,
    );
  }
  if (result.scores.some((s) => s.simulation_modes.includes('sampled'))) notices.push(SAMPLED_NOTICE);
  return notices;
}

function usageText(u: UsageTotals, priced: boolean): string {
  const tokens = u.promptTokens + u.completionTokens;
  return `Done: ${u.requests} request${u.requests === 1 ? '' : 's'} sent (${u.cacheHits} answered from the cache) · ${tokens.toLocaleString('en')} tokens${priced ? ` · ≈ $${u.costUsd.toFixed(4)}` : ''}.`;
}
