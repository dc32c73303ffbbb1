/**
 * The app's wiring: the worker, the store, the address bar, and one controller per concern (the
 * model, the live probe, the datasets, how things are shown). Components render their state and
 * call their methods; the rules of how these concerns follow one another live here:
 * - a new model clears what the probe showed and re-runs its text, resumes scans a reload
 *   interrupted, and is written into the address;
 * - the probed text and the current neuron are written into the address, and Back/Forward bring
 *   them back;
 * - a shared address for a bundled model loads that model; for a hub model it is offered, never
 *   downloaded unasked.
 */
import { loadLlmSettings, saveLlmSettings, type LlmSettings } from '../lib/llm/settings.ts';
import { NeurolensStore } from '../lib/store/neurolens-store.ts';
import { ModelClient } from '../worker/model-client.ts';
import { partialDatasetId, type ModelSummary } from '../worker/protocol.ts';
import { AblationController, type AblationTarget, type EditMode } from './ablation-controller.ts';
import { NeuronPageController } from './neuron-controller.ts';
import { datasetToShow, hasRecords } from './dataset-choice.ts';
import { DatasetsController } from './datasets-controller.ts';
import { ExplorerController } from './explorer-controller.ts';
import { displaySettings, type DisplaySettings } from './display-settings.ts';
import { hubDownloadBytes, ModelLoader, type RememberedRequest } from './model-loader.ts';
import { Observable } from './observable.ts';
import { ProbeController } from './probe-controller.ts';
import { Router } from './router.ts';
import type { NeuronRef } from './url-state.ts';
import type { OfflineStatus } from '../sw/register.ts';
import { requestPersistentStorage } from '../sw/register.ts';
import { testConnection } from '../lib/explain/connection-test.ts';
import { explainNeuron } from './explain-neuron.ts';
import { WalkthroughController } from './walkthrough.ts';

export const DEFAULT_MODEL: RememberedRequest = { kind: 'bundled', name: 'toy-planted' };
const BUNDLED = new Set(['toy-planted', 'tiny-random']);
const HUB_TOKEN_KEY = 'neurolens.hubToken';
const RECENT_KEY = 'neurolens.recentNeurons';

function readRecent(): NeuronRef[] {
  try {
    const list = JSON.parse(globalThis.localStorage?.getItem(RECENT_KEY) ?? '[]') as NeuronRef[];
    return Array.isArray(list) ? list.filter((n) => Number.isInteger(n?.layer) && Number.isInteger(n?.neuron)).slice(0, 12) : [];
  } catch {
    return [];
  }
}

export class AppController {
  readonly client = new ModelClient();
  readonly store = NeurolensStore.open();
  readonly display: Observable<DisplaySettings> = displaySettings();
  readonly loader: ModelLoader;
  readonly probe: ProbeController;
  readonly datasets: DatasetsController;
  /** Every neuron of a dataset: sorting, filtering, search, batch explanations (explorer-controller.ts). */
  readonly explorer: ExplorerController;
  /** The guided walkthrough on the toy model's planted neurons (src/app/walkthrough.ts). */
  readonly walkthrough: WalkthroughController;
  /** A model the address asks for that is not loaded, offered to the user. */
  readonly requestedModel = new Observable<{ label: string; dtype?: string } | null>(null);
  /** The LLM endpoint, shared by every place that explains or simulates; saved as the user chose. */
  readonly llm = new Observable<LlmSettings>(loadLlmSettings());
  /** Neurons looked at lately, newest first, kept in this browser. */
  readonly recentNeurons = new Observable<NeuronRef[]>(readRecent());
  /** Editing neurons in the probe: what they do to the predictions (ablation-controller.ts). */
  readonly ablation: AblationController;
  /** The neuron page (the Neuron view). */
  readonly neuronPage: NeuronPageController;

  private constructor(
    readonly router: Router,
    readonly offline: OfflineStatus,
  ) {
    const storage = globalThis.localStorage;
    this.loader = new ModelLoader({
      load: (request, backend, options) => this.client.load(request, backend, options),
      downloadBytes: hubDownloadBytes,
      storage,
      hubToken: () => storage?.getItem(HUB_TOKEN_KEY) ?? undefined,
    });
    this.probe = new ProbeController({
      capture: (text, windowed) => this.client.capture(text, windowed),
      model: () => this.loader.state.get().summary?.label ?? null,
      history: {
        put: async (probe) => (await this.store).putProbe(probe),
        list: async () => (await this.store).listProbes(),
        delete: async (id) => (await this.store).deleteProbe(id),
      },
    });
    this.ablation = new AblationController({ ablate: (text, edits, signal) => this.client.ablate(text, edits, undefined, signal) });
    this.datasets = new DatasetsController({
      store: this.store,
      scan: (id, onProgress) => this.client.scan(id, onProgress),
      stopScan: (id, reason) => this.client.stopScan(id, reason),
      partialDataset: (id, onProgress) => this.client.partialDataset(id, onProgress),
      partialDatasetId,
      defaultCorpusUrl: new URL(`${import.meta.env.BASE_URL}corpus/default.jsonl`, document.baseURI).href,
      persistent: requestPersistentStorage(),
    });
    this.explorer = new ExplorerController({ store: this.store, llm: () => this.llm.get() });
    this.neuronPage = new NeuronPageController({
      store: this.store,
      llm: () => this.llm.get(),
      model: () => this.model,
      capture: (text) => this.client.capture(text),
      weights: (layer, neuron) => this.client.weights(layer, neuron),
      ablationScore: (input, signal) => this.client.ablationScore(input, signal),
      compare: (record, gelu) => this.client.compare(record, gelu),
      requestAblation: (request) => this.ablateInProbe({ layer: request.layer, neuron: request.neuron }, { kind: request.mode }),
    });
    this.walkthrough = new WalkthroughController({
      model: { subscribe: (run) => this.loader.state.subscribe((s) => run(s.summary)) },
      loadToyModel: () => void this.loader.request(DEFAULT_MODEL, 'auto'),
      navigate: (changes) => this.router.navigate(changes),
      probeText: (text) => this.probe.runText(text),
      datasets: this.datasets.state,
      startScan: (request, model) => this.datasets.startScan(request, model),
      runScan: (id) => this.datasets.run(id),
      neuronRecord: async (scanId, layer, neuron) => (await this.store).getNeuronRecord(scanId, layer, neuron),
      llm: () => this.llm.get(),
      testConnection: (settings, signal) => testConnection(settings, signal),
      explain: async (request, call) => explainNeuron(await this.store, request, call),
    });
  }

  static async start(offline: OfflineStatus): Promise<AppController> {
    const app = new AppController(await Router.start(), offline);
    app.wire();
    return app;
  }

  /** The loaded model, or null. */
  get model(): ModelSummary | null {
    return this.loader.state.get().summary;
  }

  /** Remembers (or forgets) the hub token in this browser, as the user chose. */
  rememberHubToken(token: string | null): void {
    if (token) localStorage.setItem(HUB_TOKEN_KEY, token);
    else localStorage.removeItem(HUB_TOKEN_KEY);
  }

  savedHubToken(): string | null {
    return globalThis.localStorage?.getItem(HUB_TOKEN_KEY) ?? null;
  }

  /** Shows a neuron: in the view given, or the neuron page. */
  openNeuron(neuron: NeuronRef, view: 'neuron' | 'probe' = 'neuron'): void {
    this.router.navigate({ view, neuron });
  }

  /** Opens the probe with the neuron edited live (from a neuron's page, say). */
  ablateInProbe(neuron: NeuronRef, mode: EditMode = { kind: 'zero' }): void {
    this.router.navigate({ view: 'probe', neuron });
    this.ablation.setMode(mode);
    this.ablation.setEnabled(true);
  }

  /** The neuron's mean activation from the newest dataset of the loaded model that has its record. */
  async meanOf(neuron: NeuronRef): Promise<number | undefined> {
    const label = this.model?.label;
    const store = await this.store;
    for (const scan of this.datasets.state.get().scans) {
      if (scan.model.label !== label || (scan.status !== 'done' && scan.status !== 'imported')) continue;
      const record = await store.getNeuronRecord(scan.id, neuron.layer, neuron.neuron).catch(() => undefined);
      if (record && typeof record.mean === 'number') return record.mean;
    }
    return undefined;
  }

  /** Checks a neuron typed by the user against the loaded model; an error message, or null. */
  neuronError(neuron: NeuronRef | undefined, text: string): string | null {
    const model = this.model;
    if (!neuron) return `"${text}" is not a neuron: type it as layer:neuron, for example 0:37`;
    if (!model) return 'no model is loaded yet';
    if (neuron.layer >= model.nLayer) return `layer ${neuron.layer} does not exist: ${model.label} has layers 0–${model.nLayer - 1}`;
    if (neuron.neuron >= model.dMlp) return `neuron ${neuron.layer}:${neuron.neuron} is out of range: each layer of ${model.label} has neurons 0–${model.dMlp - 1}`;
    return null;
  }

  private wire(): void {
    const initial = this.router.route.get();
    // The model: the address's, when it names a bundled one; else the one remembered from the last visit.
    const wanted = initial.model;
    const bundled = wanted && BUNDLED.has(wanted) ? ({ kind: 'bundled', name: wanted } as const) : undefined;
    void this.loader.restore(DEFAULT_MODEL, 'auto', bundled);
    if (wanted && !bundled && wanted !== this.loader.rememberedLabel()) this.requestedModel.set({ label: wanted, dtype: initial.dtype });

    let modelLabel: string | null = null;
    this.loader.state.subscribe((state) => {
      const summary = state.summary;
      if (!summary || summary.label === modelLabel) return;
      modelLabel = summary.label;
      if (this.requestedModel.get()?.label === summary.label) this.requestedModel.set(null);
      this.router.replace({ model: summary.label, dtype: summary.dtype === 'fp32' ? undefined : summary.dtype });
      const text = this.router.route.get().text;
      if (text && text !== this.probe.state.get().text) this.probe.runText(text);
      else this.probe.modelChanged();
      void this.datasets.resumeInterrupted(summary);
    });

    // The probed text follows the address (Back/Forward), and the address follows the text.
    this.router.route.subscribe((route) => {
      if (route.text !== undefined && route.text !== this.probe.state.get().text) this.probe.setText(route.text);
    });
    this.probe.state.subscribe((state) => {
      if (state.text !== (this.router.route.get().text ?? '')) this.router.replace({ text: state.text || undefined });
    });

    // The probe's edit follows the probed text and the current neuron (with its mean, when known).
    this.probe.state.subscribe((state) => this.ablation.setText(state.result?.text ?? ''));
    let editing: string | null = null;
    const editCurrent = async () => {
      const n = this.router.route.get().neuron ?? this.model?.planted[0];
      const key = n && this.model ? `${this.model.label}/${n.layer}:${n.neuron}` : null;
      if (!n || key === editing) return;
      editing = key;
      const target: AblationTarget = { layer: n.layer, neuron: n.neuron, mean: await this.meanOf(n) };
      if (editing === key) this.ablation.setNeurons([target]);
    };
    this.router.route.subscribe(() => void editCurrent());
    this.loader.state.subscribe(() => void editCurrent());
    let datasetsKey = '';
    this.datasets.state.subscribe(({ scans }) => {
      // A new or finished dataset may give the neuron's mean; progress ticks do not.
      const key = scans.map((s) => `${s.id}:${s.status}`).join();
      if (key === datasetsKey) return;
      datasetsKey = key;
      editing = null;
      void editCurrent();
    });

    // The current neuron joins the recent ones.
    this.router.route.subscribe((route) => {
      const n = route.neuron;
      if (!n) return;
      const recent = [n, ...this.recentNeurons.get().filter((r) => r.layer !== n.layer || r.neuron !== n.neuron)].slice(0, 12);
      this.recentNeurons.set(recent);
      try {
        localStorage.setItem(RECENT_KEY, JSON.stringify(recent));
      } catch {
        // Not kept: fine.
      }
    });
    this.llm.subscribe((settings) => saveLlmSettings(settings));

    // The neuron page follows the address, the datasets and the model while it is the view shown.
    const showNeuronPage = () => {
      const route = this.router.route.get();
      if (route.view !== 'neuron') return;
      this.neuronPage.show(datasetToShow(this.datasets.state.get().scans.filter(hasRecords), route.dataset, this.model?.label) ?? null, route.neuron ?? null);
    };
    this.router.route.subscribe(showNeuronPage);
    this.datasets.state.subscribe(showNeuronPage);
    this.loader.state.subscribe(showNeuronPage);

    void this.datasets.start().catch((err) => this.datasets.state.patch({ message: { kind: 'error', text: `browser storage is unavailable: ${(err as Error).message}` } }));
    void this.probe.loadHistory().catch(() => {});
  }
}
