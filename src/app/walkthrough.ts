/**
 * The guided walkthrough: the paper's method (probe → scan → explain → simulate → score) run for
 * real in the app, on the toy model's planted digit neuron 0:37, where the right answer is known.
 * Each step drives the app through its controllers (the router, the probe, the datasets, the
 * explain job) and says what is happening and what to notice; the overlay
 * (src/ui/Walkthrough.svelte) only renders this state and sends next/back/close.
 *
 * The LLM: the user's endpoint when one is set up and answers "Test connection"; otherwise the
 * built-in scripted LLM (src/lib/explain/scripted-llm.ts), and the state says so plainly, with the
 * reason, so the panel can mark every answer as scripted.
 *
 * Tasks that take time (the scan, the explain job) run when their step is entered, once: going
 * back and forth shows their result again. Closing stops the explain job (its finished steps are
 * kept and a reopened walkthrough resumes from them); the scan is a dataset like any other and
 * goes on in the Datasets view.
 */
import type { NeuronRecord } from '../lib/activations/records.ts';
import { SCAN_DEFAULTS } from '../lib/activations/scan-defaults.ts';
import type { ConnectionReport, ConnectionSettings } from '../lib/explain/connection-test.ts';
import type { JobProgress } from '../lib/explain/job.ts';
import { selectRecords, type ExplanationScores, type NeuronPipelineResult } from '../lib/explain/pipeline.ts';
import { isScriptedEndpoint, SCRIPTED_ENDPOINT, SCRIPTED_MODEL } from '../lib/explain/scripted-llm.ts';
import type { LlmSettings } from '../lib/llm/settings.ts';
import { PLANTED_NEURON_RULES, type PlantedNeuronRule } from '../lib/model/planted-neurons.ts';
import type { ScanMeta } from '../lib/store/store-types.ts';
import type { ModelSummary, ScanProgressInfo } from '../worker/protocol.ts';
import type { ScanRequest } from './datasets-controller.ts';
import type { ExplainNeuronRequest, ExplainNeuronResult } from './explain-neuron.ts';
import { Observable, type Readable } from './observable.ts';
import type { AppRoute, NeuronRef } from './url-state.ts';

export const WALKTHROUGH_MODEL = 'toy-planted';
/** The neuron followed: planted to fire on tokens made only of digits. */
export const WALKTHROUGH_NEURON: NeuronRef = { layer: 0, neuron: 37 };
/** The explanation scored for contrast: another planted neuron's rule, wrong for 0:37. */
export const WRONG_RULE_ID = 'capitalised';
export const WALKTHROUGH_TEXT = 'In 1969, 3 astronauts flew 384400 km to the Moon. "One small step," Armstrong said at 10:56 pm.';
export const WALKTHROUGH_SCAN_EXCERPTS = 96;
export const WALKTHROUGH_SCAN_NAME = `Walkthrough · ${WALKTHROUGH_MODEL} · Brown corpus, first ${WALKTHROUGH_SCAN_EXCERPTS} excerpts`;
/** How long the user's endpoint gets to answer "Test connection" before the scripted LLM is used. */
export const CONNECTION_WAIT_MS = 15_000;

export type WalkthroughStepId = 'welcome' | 'probe' | 'scan' | 'explain' | 'simulate' | 'score' | 'done';

export interface WalkthroughStep {
  id: WalkthroughStepId;
  title: string;
  /** What is happening and what to notice, in two or three sentences. */
  text: string;
}

const followed = `${WALKTHROUGH_NEURON.layer}:${WALKTHROUGH_NEURON.neuron}`;

export const WALKTHROUGH_STEPS: readonly WalkthroughStep[] = [
  {
    id: 'welcome',
    title: 'A toy model whose answers are known',
    text:
      `This walkthrough runs the whole method of Bills et al. (2023), probe, scan, explain, simulate and score, on ${WALKTHROUGH_MODEL}: a tiny GPT-2 ` +
      `in which five neurons were wired by hand to follow exact rules. Because the right answers are known, you can check every step. We follow neuron ${followed}, planted to fire on numbers.`,
  },
  {
    id: 'probe',
    title: 'Probe: one neuron on one text',
    text:
      `A sentence is now in the Probe view and has run through the model. Every token is coloured, with a bar under it, by how strongly neuron ${followed} fires on it. ` +
      'Notice that only the number tokens light up: that is the planted rule at work.',
  },
  {
    id: 'scan',
    title: 'Scan: gather evidence from a corpus',
    text:
      `One sentence is thin evidence. The scan runs the model over the first ${WALKTHROUGH_SCAN_EXCERPTS} excerpts of the bundled Brown corpus and keeps, for every neuron, ` +
      'the excerpts where it fires most (its top-activating excerpts) and a random sample. Its progress shows here and in the Datasets view.',
  },
  {
    id: 'explain',
    title: 'Explain: an LLM reads the top excerpts',
    text:
      `The neuron's page is open behind this panel. The explainer is shown ${followed}'s top-activating excerpts, with activations scaled from 0 to 10, ` +
      'and completes the sentence "the main thing this neuron does is find …". Compare its answer with the planted rule.',
  },
  {
    id: 'simulate',
    title: 'Simulate: predict activations from the explanation',
    text:
      'To test the explanation, a simulator that sees only the explanation predicts, token by token, how strongly the neuron fires (0 to 10) on excerpts the explainer never saw. ' +
      'Below, the real activation and the simulated one on one of those excerpts, around its peak: where the explanation is right, they rise together.',
  },
  {
    id: 'score',
    title: 'Score: do simulation and reality agree?',
    text:
      'The score is the correlation between simulated and real activations over held-out top excerpts and random ones: 1 means the explanation predicts the neuron perfectly, 0 not at all. ' +
      'Notice the gap between the explanation and a wrong one, scored the same way.',
  },
  {
    id: 'done',
    title: 'Your turn',
    text:
      `The explanation and its scores are stored with the walkthrough's dataset and shown on neuron ${followed}'s page. Try the other planted neurons (0:150, 0:203, 1:91, 1:222) ` +
      'in the Probe view, or rank every neuron in the Explorer. With an LLM endpoint set in Settings, the same steps work on any neuron of any GPT-2 model.',
  },
];

export type TaskStatus = 'idle' | 'running' | 'done' | 'failed';

/** The LLM the walkthrough explains with, and why that one. */
export interface WalkthroughLlm {
  settings: Pick<LlmSettings, 'baseUrl' | 'model' | 'apiKey'>;
  scripted: boolean;
  /** e.g. "gpt-4o-mini at https://api.openai.com/v1", or "the built-in scripted LLM". */
  label: string;
  /** Why this one, in a sentence. */
  reason: string;
}

/** One held-out excerpt around its peak: the real activation (scaled 0–10) and the simulated one. */
export interface SimulatedExcerpt {
  tokens: string[];
  real: number[];
  simulated: (number | null)[];
}

export interface WalkthroughResult {
  explanation: string;
  rule: Pick<PlantedNeuronRule, 'description' | 'rule'>;
  scores: ExplanationScores;
  /** A wrong explanation (another planted neuron's rule), scored for contrast. */
  wrong: { explanation: string; scores: ExplanationScores } | null;
  example: SimulatedExcerpt | null;
  /** The neuron never fires on the scored random excerpts (so their correlation is undefined). */
  silentOnRandom: boolean;
  source: string;
  scripted: boolean;
  requests: number;
}

export interface WalkthroughState {
  open: boolean;
  /** Index into WALKTHROUGH_STEPS. */
  step: number;
  /** The toy model is loaded (with its planted neurons). */
  modelReady: boolean;
  modelLabel: string | null;
  scan: { status: TaskStatus; scanId?: string; reused?: boolean; progress?: string; error?: string };
  explain: { status: TaskStatus; llm?: WalkthroughLlm; progress?: string; error?: string; result?: WalkthroughResult };
}

/** The datasets' state, as far as the walkthrough reads it. */
export interface WalkthroughDatasets {
  scans: ScanMeta[];
  runningScanId: string | null;
  progress: ScanProgressInfo | null;
  scanError: string | null;
}

/** What the walkthrough drives; the app wires it to its controllers (see `walkthroughDeps`). */
export interface WalkthroughDeps {
  model: Readable<ModelSummary | null>;
  loadToyModel(): void;
  navigate(changes: Partial<AppRoute>): void;
  probeText(text: string): void;
  datasets: Readable<WalkthroughDatasets>;
  /** Starts a scan and resolves when it is done, paused or failed. */
  startScan(request: ScanRequest, model: ModelSummary): Promise<void>;
  /** Runs (resumes) a stored scan; resolves when it is done, paused or failed. */
  runScan(scanId: string): Promise<void>;
  neuronRecord(scanId: string, layer: number, neuron: number): Promise<NeuronRecord | undefined>;
  llm(): LlmSettings;
  testConnection(settings: ConnectionSettings, signal: AbortSignal): Promise<ConnectionReport>;
  explain(request: ExplainNeuronRequest, call: { signal: AbortSignal; onProgress: (p: JobProgress) => void }): Promise<ExplainNeuronResult>;
}

const SCRIPTED: WalkthroughLlm['settings'] = { baseUrl: SCRIPTED_ENDPOINT, model: SCRIPTED_MODEL, apiKey: '' };
const SCRIPTED_LABEL = 'the built-in scripted LLM';

/**
 * An endpoint counts as set up when it has a model and either a key or a plain-http address (local
 * and LAN servers need no key; the default OpenAI endpoint without a key is not set up).
 */
export function llmIsSetUp(settings: Pick<LlmSettings, 'baseUrl' | 'model' | 'apiKey'>): boolean {
  if (settings.model.trim() === '' || isScriptedEndpoint(settings.baseUrl)) return false;
  if (settings.apiKey.trim() !== '') return true;
  try {
    return new URL(settings.baseUrl.trim()).protocol === 'http:';
  } catch {
    return false;
  }
}

/** The user's endpoint when it is set up and answers in time, else the scripted LLM, with the reason. */
export async function chooseWalkthroughLlm(
  settings: LlmSettings,
  test: WalkthroughDeps['testConnection'],
  signal: AbortSignal,
  waitMs = CONNECTION_WAIT_MS,
): Promise<WalkthroughLlm> {
  const scripted = (reason: string): WalkthroughLlm => ({ settings: SCRIPTED, scripted: true, label: SCRIPTED_LABEL, reason });
  if (isScriptedEndpoint(settings.baseUrl)) return scripted('You chose the built-in scripted LLM in Settings.');
  if (!llmIsSetUp(settings)) return scripted('No LLM endpoint is set up in Settings, so the built-in scripted LLM answers instead.');
  const own = { baseUrl: settings.baseUrl.trim(), model: settings.model.trim(), apiKey: settings.apiKey };
  const label = `${own.model} at ${own.baseUrl}`;
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new DOMException('no answer in time', 'TimeoutError')), waitMs);
  const stop = () => deadline.abort(signal.reason);
  signal.addEventListener('abort', stop, { once: true });
  let report: ConnectionReport;
  try {
    report = await test(own, deadline.signal);
  } catch (err) {
    signal.throwIfAborted();
    report = { ok: false, error: deadline.signal.aborted ? `no answer within ${Math.round(waitMs / 1000)} s` : (err as Error).message };
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', stop);
  }
  if (!report.ok) return scripted(`Your endpoint (${label}) could not be used: ${report.error}. The built-in scripted LLM answers instead.`);
  return { settings: own, scripted: false, label, reason: `Your LLM endpoint from Settings answers (${label}).` };
}

/**
 * One held-out excerpt of the simulation: of every scored excerpt's windows of `size` tokens, the
 * one where the neuron fires on the most tokens (its real activation at least half the record's
 * maximum), the earliest on a tie.
 */
export function simulatedExcerpt(result: NeuronPipelineResult, record: NeuronRecord, size = 9): SimulatedExcerpt | null {
  const sequences = result.simulation_results.scored_explanations[0]?.scored_simulation.scored_sequence_simulations ?? [];
  const max = Math.max(0, ...record.most_positive_activation_records.flatMap((r) => r.activations));
  if (max <= 0) return null;
  let best: { sequence: (typeof sequences)[number]; from: number; firing: number } | undefined;
  for (const sequence of sequences) {
    const fires = sequence.true_activations.map((a) => (a >= max / 2 ? 1 : 0));
    for (let from = 0; from + size <= Math.max(size, fires.length); from++) {
      const firing = fires.slice(from, from + size).reduce<number>((a, b) => a + b, 0);
      if (!best || firing > best.firing) best = { sequence, from, firing };
    }
  }
  if (!best) return null;
  const { sequence, from } = best;
  const to = from + size;
  return {
    tokens: sequence.simulation.tokens.slice(from, to),
    real: sequence.true_activations.slice(from, to).map((a) => Math.round(Math.max(0, (a / max) * 10) * 10) / 10),
    simulated: sequence.simulation.expected_activations.slice(from, to).map((v) => (v === null ? null : Math.round(v * 10) / 10)),
  };
}

/** Whether the neuron stays silent (under a tenth of its maximum) on every scored random excerpt. */
function silentOnRandom(record: NeuronRecord): boolean {
  const max = Math.max(0, ...record.most_positive_activation_records.flatMap((r) => r.activations));
  return selectRecords(record).scoreRandom.every((r) => Math.max(...r.activations) < max / 10);
}

export class WalkthroughController {
  readonly state = new Observable<WalkthroughState>({
    open: false,
    step: 0,
    modelReady: false,
    modelLabel: null,
    scan: { status: 'idle' },
    explain: { status: 'idle' },
  });
  private datasets: WalkthroughDatasets = { scans: [], runningScanId: null, progress: null, scanError: null };
  private model: ModelSummary | null = null;
  private explainRun: AbortController | null = null;
  private preferScripted = false;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(private readonly deps: WalkthroughDeps) {
    this.unsubscribe.push(
      deps.model.subscribe((model) => {
        this.model = model;
        const ready = model?.label === WALKTHROUGH_MODEL && model.planted.some((p) => p.layer === WALKTHROUGH_NEURON.layer && p.neuron === WALKTHROUGH_NEURON.neuron);
        const label = model?.label ?? null;
        const state = this.state.get();
        if (state.modelReady !== ready || state.modelLabel !== label) this.state.patch({ modelReady: ready, modelLabel: label });
      }),
      deps.datasets.subscribe((datasets) => {
        this.datasets = datasets;
        const scan = this.state.get().scan;
        if (scan.status === 'running' && datasets.progress) this.state.patch({ scan: { ...scan, progress: describeScanProgress(datasets.progress) } });
      }),
    );
  }

  get step(): WalkthroughStep {
    return WALKTHROUGH_STEPS[this.state.get().step];
  }

  /** Whether Next may be pressed now (the step's task is done), and if not, why. */
  blockedBy(state = this.state.get()): string | null {
    switch (WALKTHROUGH_STEPS[state.step].id) {
      case 'welcome':
        return state.modelReady ? null : `waiting for the ${WALKTHROUGH_MODEL} model to load`;
      case 'scan':
        return state.scan.status === 'done' ? null : state.scan.status === 'failed' ? 'the scan did not finish' : 'waiting for the scan to finish';
      case 'explain':
        return state.explain.status === 'done' ? null : state.explain.status === 'failed' ? 'the explanation did not finish' : 'waiting for the explanation and its score';
      case 'done':
        return 'this is the last step';
      default:
        return null;
    }
  }

  open(): void {
    this.state.patch({ open: true });
    this.enter();
  }

  /** Closes the panel; a running explain job stops (a reopened walkthrough resumes it). */
  close(): void {
    this.explainRun?.abort(new DOMException('the walkthrough was closed', 'AbortError'));
    this.state.patch({ open: false });
  }

  next(): void {
    if (this.blockedBy() !== null) return;
    this.state.patch({ step: this.state.get().step + 1 });
    this.enter();
  }

  back(): void {
    const step = this.state.get().step;
    if (step === 0) return;
    this.state.patch({ step: step - 1 });
    this.enter();
  }

  /** Runs the current step's task again after a failure (or the scripted LLM instead of the user's). */
  retry(options: { scripted?: boolean } = {}): void {
    if (options.scripted) this.preferScripted = true;
    const id = this.step.id;
    if (id === 'scan') this.state.patch({ scan: { status: 'idle' } });
    if (id === 'explain') this.state.patch({ explain: { status: 'idle' } });
    this.enter();
  }

  /** Opens the neuron's page with the walkthrough's dataset. */
  openNeuronPage(): void {
    this.deps.navigate({ view: 'neuron', dataset: this.state.get().scan.scanId, neuron: WALKTHROUGH_NEURON });
  }

  dispose(): void {
    this.close();
    for (const stop of this.unsubscribe.splice(0)) stop();
  }

  /** Does what entering the current step does: show the right view, start the step's task once. */
  private enter(): void {
    const state = this.state.get();
    if (!state.open) return;
    switch (this.step.id) {
      case 'welcome':
        if (!state.modelReady && this.model?.label !== WALKTHROUGH_MODEL) this.deps.loadToyModel();
        break;
      case 'probe':
        this.deps.navigate({ view: 'probe', neuron: WALKTHROUGH_NEURON });
        this.deps.probeText(WALKTHROUGH_TEXT);
        break;
      case 'scan':
        this.deps.navigate({ view: 'datasets' });
        if (state.scan.status === 'idle' || state.scan.status === 'failed') void this.runScan();
        break;
      case 'explain':
        this.openNeuronPage();
        if (state.explain.status === 'idle' || state.explain.status === 'failed') void this.runExplain();
        break;
      default:
        break;
    }
  }

  private async runScan(): Promise<void> {
    const model = this.model;
    if (!model || !this.state.get().modelReady) {
      this.state.patch({ scan: { status: 'failed', error: `the ${WALKTHROUGH_MODEL} model is not loaded: go back to the first step` } });
      return;
    }
    const ours = (s: ScanMeta) => s.name === WALKTHROUGH_SCAN_NAME && s.model.label === model.label;
    const done = this.datasets.scans.find((s) => ours(s) && s.status === 'done');
    if (done) {
      this.state.patch({ scan: { status: 'done', scanId: done.id, reused: true } });
      return;
    }
    this.state.patch({ scan: { status: 'running', progress: 'starting…' } });
    try {
      if (this.datasets.runningScanId) {
        this.state.patch({ scan: { status: 'running', progress: 'waiting for the scan under way to finish…' } });
        await this.scanIdle();
      }
      // A walkthrough scan left unfinished (paused, interrupted, failed) is resumed rather than started over.
      const unfinished = this.datasets.scans.find((s) => ours(s) && s.status !== 'done');
      const before = new Set(this.datasets.scans.map((s) => s.id));
      if (unfinished) await this.deps.runScan(unfinished.id);
      else {
        await this.deps.startScan(
          { corpus: 'default', layers: null, topK: SCAN_DEFAULTS.topK, seed: SCAN_DEFAULTS.seed, maxExcerpts: WALKTHROUGH_SCAN_EXCERPTS, name: WALKTHROUGH_SCAN_NAME },
          model,
        );
      }
      const scan = this.datasets.scans.find((s) => ours(s) && (s.id === unfinished?.id || !before.has(s.id)));
      if (scan?.status === 'done') this.state.patch({ scan: { status: 'done', scanId: scan.id, reused: false } });
      else {
        const why = this.datasets.scanError ?? (scan ? `the scan is ${scan.status}` : 'the scan was not created');
        this.state.patch({ scan: { status: 'failed', scanId: scan?.id, error: why } });
      }
    } catch (err) {
      this.state.patch({ scan: { status: 'failed', error: (err as Error).message } });
    }
  }

  /** Resolves once no scan is running. */
  private scanIdle(): Promise<void> {
    return new Promise((resolve) => {
      let stop: (() => void) | undefined;
      let idle = false;
      stop = this.deps.datasets.subscribe((d) => {
        if (d.runningScanId !== null) return;
        idle = true;
        stop?.();
        resolve();
      });
      if (idle) stop();
    });
  }

  private async runExplain(): Promise<void> {
    const scanId = this.state.get().scan.scanId;
    if (!scanId) {
      this.state.patch({ explain: { status: 'failed', error: 'there is no scan to explain from: go back one step' } });
      return;
    }
    this.explainRun?.abort();
    const run = new AbortController();
    this.explainRun = run;
    const patch = (changes: Partial<WalkthroughState['explain']>) => {
      if (this.explainRun === run) this.state.patch({ explain: { ...this.state.get().explain, ...changes } });
    };
    patch({ status: 'running', progress: 'choosing the LLM…', error: undefined, result: undefined, llm: undefined });
    try {
      const llm = this.preferScripted
        ? { settings: SCRIPTED, scripted: true, label: SCRIPTED_LABEL, reason: 'You asked for the built-in scripted LLM.' }
        : await chooseWalkthroughLlm(this.deps.llm(), this.deps.testConnection, run.signal);
      patch({ llm, progress: 'reading the neuron\'s record…' });
      const { layer, neuron } = WALKTHROUGH_NEURON;
      const record = await this.deps.neuronRecord(scanId, layer, neuron);
      if (!record) throw new Error(`the scan has no record of neuron ${followed}`);
      const onProgress = (label: string) => (p: JobProgress) =>
        patch({ progress: p.step ? `${label}: ${p.step.stage}, step ${p.step.done} of ${p.step.total}` : `${label}: recalled from storage` });
      const main = await this.deps.explain({ scanId, record, llm: llm.settings, explanations: 1, budgetUsd: 0.5 }, { signal: run.signal, onProgress: onProgress('the explanation') });
      const rule = PLANTED_NEURON_RULES.find((r) => r.layer === layer && r.neuron === neuron)!;
      const wrongRule = PLANTED_NEURON_RULES.find((r) => r.id === WRONG_RULE_ID)!;
      const explanation = main.result.explanations[0];
      const scores = main.result.scores.find((s) => s.explanation === explanation) ?? main.result.scores[0];
      let wrong: WalkthroughResult['wrong'] = null;
      let requests = main.usage.requests;
      if (comparable(explanation) !== comparable(wrongRule.description)) {
        const contrast = await this.deps.explain(
          { scanId, record, llm: llm.settings, givenExplanations: [wrongRule.description], budgetUsd: 0.5, keep: false },
          { signal: run.signal, onProgress: onProgress('a wrong explanation') },
        );
        wrong = { explanation: wrongRule.description, scores: contrast.result.scores[0] };
        requests += contrast.usage.requests;
      }
      const result: WalkthroughResult = {
        explanation,
        rule: { description: rule.description, rule: rule.rule },
        scores,
        wrong,
        example: simulatedExcerpt(main.result, record),
        silentOnRandom: silentOnRandom(record),
        source: main.source,
        scripted: main.scripted,
        requests,
      };
      patch({ status: 'done', progress: undefined, result });
    } catch (err) {
      if (run.signal.aborted) {
        // Closed or superseded: nothing failed; entering the step again resumes the job.
        if (this.explainRun === run) this.state.patch({ explain: { status: 'idle' } });
        return;
      }
      patch({ status: 'failed', progress: undefined, error: (err as Error).message });
    } finally {
      if (this.explainRun === run) this.explainRun = null;
    }
  }
}

const comparable = (text: string) => text.trim().replace(/\.+$/, '').toLowerCase();

function describeScanProgress(p: ScanProgressInfo): string {
  switch (p.phase) {
    case 'preparing':
      return 'preparing the corpus…';
    case 'scanning':
      return `scanning: ${p.excerptsDone} of ${p.excerptsTotal} excerpts`;
    case 'sampling':
      return `sampling: ${p.sampledDone} of ${p.sampledTotal} excerpts`;
    default:
      return `building records: ${p.recordsDone} of ${p.recordsTotal} neurons`;
  }
}
