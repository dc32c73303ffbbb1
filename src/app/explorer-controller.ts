/**
 * The Explorer: every neuron of a dataset in one list that can be sorted, filtered and searched
 * (explorer-table.ts), with a selection that can be explained and scored in one batch under a
 * budget (lib/explain/batch.ts).
 *
 * A dataset is read as its per-layer summaries and its explanations (two reads, no records), so
 * opening a GPT-2-small scan of 36,864 neurons is quick; sorting and filtering run on typed arrays
 * and stay far below the 100 ms a main-thread task may take. The component shows the rows on
 * screen only (`rowAt`), and re-reads them when `state.version` changes.
 *
 * A batch first reads the selected neurons' records to estimate its cost; it then runs neuron
 * after neuron with one LLM client (one budget), stores each neuron's results as a single
 * explanation's are stored, and updates its row as soon as it is done.
 */
import type { NeuronRecord } from '../lib/activations/records.ts';
import type { NeuronCostEstimate } from '../lib/explain/estimate-neuron-cost.ts';
import { estimateBatchCost, runExplainBatch, type BatchNeuron, type BatchProgress, type BatchStopReason } from '../lib/explain/batch.ts';
import type { JobStore } from '../lib/explain/job.ts';
import type { NeuronPipelineResult } from '../lib/explain/pipeline.ts';
import { LatestOnly } from '../lib/latest-only.ts';
import { createChatClient, type ChatClient, type ChatClientOptions } from '../lib/llm/client.ts';
import { explainOptions, llmSource } from './explain-neuron.ts';
import { defaultPricingFor } from '../lib/llm/cost.ts';
import type { ResponseCache } from '../lib/llm/response-cache.ts';
import type { LlmSettings } from '../lib/llm/settings.ts';
import type { NeuronSummaryColumns } from '../lib/store/neuron-summaries.ts';
import type { NeuronKey, StoredExplanation } from '../lib/store/store-types.ts';
import {
  buildColumns,
  DEFAULT_QUERY,
  filterOrder,
  rowAt,
  rowOfNeuron,
  setRowExplanations,
  sortedOrder,
  type ExplorerColumns,
  type ExplorerQuery,
  type ExplorerRow,
} from './explorer-table.ts';
import { Observable } from './observable.ts';

/** What the Explorer needs of the store (NeurolensStore has it all). */
export interface ExplorerStore {
  listNeuronSummaries(scanId: string): Promise<NeuronSummaryColumns[]>;
  listAllExplanations(scanId: string): Promise<StoredExplanation[]>;
  listExplanations(scanId: string, neuron: NeuronKey): Promise<StoredExplanation[]>;
  getNeuronRecords(scanId: string, neurons: readonly NeuronKey[]): Promise<NeuronRecord[]>;
  putPipelineResult(scanId: string, result: NeuronPipelineResult, source?: string): Promise<void>;
  responseCache(): ResponseCache;
  jobStore(): JobStore;
}

export interface ExplorerDeps {
  store: Promise<ExplorerStore>;
  /** The shared LLM settings, read when a batch is estimated. */
  llm: () => LlmSettings;
  /** Makes the batch's LLM client (default createChatClient). */
  createClient?: (options: ChatClientOptions) => ChatClient;
}

/** Neurons a batch takes at most: its records are read for the estimate, and it is spent neuron by neuron. */
export const MAX_BATCH = 1000;
/** Records read at a time while estimating. */
const ESTIMATE_CHUNK = 50;

export interface BatchState {
  /** idle → estimating → ready (estimate shown) → running → finished. */
  phase: 'idle' | 'estimating' | 'ready' | 'running' | 'finished';
  neurons: BatchNeuron[];
  /** Records read for the estimate so far. */
  estimated: number;
  estimate: (NeuronCostEstimate & { model: string; endpoint: string }) | null;
  progress: BatchProgress | null;
  done: { neuron: BatchNeuron; explanation: string; score: number | null }[];
  failed: { neuron: BatchNeuron; message: string }[];
  usage: { costUsd: number; requests: number; cacheHits: number; tokens: number; priced: boolean } | null;
  /** How the batch ended: all neurons went through, or why it stopped. */
  outcome: { kind: 'complete' | BatchStopReason; message: string } | null;
  /** Why the batch cannot be prepared or started. */
  error: string | null;
}

export interface ExplorerState {
  datasetId: string | null;
  status: 'idle' | 'loading' | 'ready' | 'error';
  error: string | null;
  /** Neurons in the dataset, and those the filters let through. */
  total: number;
  shown: number;
  layers: number[];
  query: ExplorerQuery;
  /** Changes whenever the rows shown, their order or their contents change. */
  version: number;
  selected: number;
  /** Milliseconds the last sort and filter took (main thread). */
  lastUpdateMs: number;
  batch: BatchState;
}

/** Lets the browser render and handle input before going on. */
const nextTask = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

const IDLE_BATCH: BatchState = {
  phase: 'idle',
  neurons: [],
  estimated: 0,
  estimate: null,
  progress: null,
  done: [],
  failed: [],
  usage: null,
  outcome: null,
  error: null,
};

export class ExplorerController {
  readonly state = new Observable<ExplorerState>({
    datasetId: null,
    status: 'idle',
    error: null,
    total: 0,
    shown: 0,
    layers: [],
    query: DEFAULT_QUERY,
    version: 0,
    selected: 0,
    lastUpdateMs: 0,
    batch: IDLE_BATCH,
  });

  private columns: ExplorerColumns | null = null;
  /** The rows in the query's sort order, before filtering (kept while only filters change). */
  private sorted: { key: string; order: Uint32Array } | null = null;
  private order: Uint32Array = new Uint32Array(0);
  private selection: Uint8Array = new Uint8Array(0);
  private readonly loads = new LatestOnly();
  private batchRun: AbortController | null = null;

  constructor(private readonly deps: ExplorerDeps) {}

  // ---- the dataset -----------------------------------------------------------------------------

  /** Shows a dataset (again: re-reads it); the query stays, the selection goes with another dataset. */
  async open(datasetId: string): Promise<void> {
    const ticket = this.loads.begin();
    const same = this.state.get().datasetId === datasetId;
    if (!same && this.state.get().batch.phase === 'running') this.stopBatch();
    this.state.patch({ datasetId, status: 'loading', error: null, ...(same ? {} : { batch: IDLE_BATCH }) });
    const read = (async () => {
      const store = await this.deps.store;
      const [summaries, explanations] = await Promise.all([store.listNeuronSummaries(datasetId), store.listAllExplanations(datasetId)]);
      // Each step in a task of its own: reading, building the columns, then sorting and showing them.
      await nextTask();
      const columns = buildColumns(summaries, explanations);
      await nextTask();
      return columns;
    })();
    await ticket.settle(
      read,
      (columns) => {
        this.columns = columns;
        this.sorted = null;
        if (!same || this.selection.length !== columns.count) this.selection = new Uint8Array(columns.count);
        this.state.patch({ status: 'ready', total: columns.count, layers: columns.layers, selected: this.countSelected() });
        this.update();
      },
      (error) => this.state.patch({ status: 'error', error: (error as Error).message }),
    );
  }

  /** Forgets the dataset (none to show). */
  close(): void {
    this.loads.supersede();
    this.columns = null;
    this.order = new Uint32Array(0);
    this.selection = new Uint8Array(0);
    this.state.patch({ datasetId: null, status: 'idle', total: 0, shown: 0, layers: [], selected: 0, version: this.state.get().version + 1 });
  }

  // ---- sorting, filtering, search ----------------------------------------------------------------

  setQuery(changes: Partial<ExplorerQuery>): void {
    this.state.patch({ query: { ...this.state.get().query, ...changes } });
    this.update();
  }

  /** Sorts by `key`; the same key again flips the direction. Numbers sort largest first at first. */
  sortBy(key: ExplorerQuery['sort']): void {
    const { sort, descending } = this.state.get().query;
    this.setQuery(sort === key ? { descending: !descending } : { sort: key, descending: key !== 'neuron' });
  }

  private update(): void {
    const columns = this.columns;
    if (!columns) return;
    const started = performance.now();
    const { query } = this.state.get();
    const key = `${query.sort}/${query.descending}`;
    if (this.sorted?.key !== key) this.sorted = { key, order: sortedOrder(columns, query.sort, query.descending) };
    this.order = filterOrder(columns, this.sorted.order, query);
    this.state.patch({ shown: this.order.length, version: this.state.get().version + 1, lastUpdateMs: performance.now() - started });
  }

  /** The row at `position` (0 ≤ position < state.shown) of the list as sorted and filtered. */
  rowAt(position: number): ExplorerRow & { selected: boolean } {
    const index = this.order[position];
    return { ...rowAt(this.columns!, index), selected: this.selection[index] === 1 };
  }

  // ---- selection -------------------------------------------------------------------------------

  setSelected(index: number, selected: boolean): void {
    if (index < 0 || index >= this.selection.length || (this.selection[index] === 1) === selected) return;
    this.selection[index] = selected ? 1 : 0;
    this.selectionChanged();
  }

  /** Selects every row the filters let through (adding to what is selected). */
  selectShown(): void {
    for (const index of this.order) this.selection[index] = 1;
    this.selectionChanged();
  }

  clearSelection(): void {
    this.selection.fill(0);
    this.selectionChanged();
  }

  /** The selected neurons: those shown in the list's order, then the others in layer and neuron order. */
  selectedNeurons(): BatchNeuron[] {
    const columns = this.columns;
    if (!columns) return [];
    const seen = new Uint8Array(columns.count);
    const out: BatchNeuron[] = [];
    const add = (index: number) => {
      if (this.selection[index] !== 1 || seen[index] === 1) return;
      seen[index] = 1;
      out.push({ layer: columns.layer[index], neuron: columns.neuron[index] });
    };
    for (const index of this.order) add(index);
    for (let index = 0; index < columns.count; index++) add(index);
    return out;
  }

  private countSelected(): number {
    let n = 0;
    for (const s of this.selection) n += s;
    return n;
  }

  private selectionChanged(): void {
    const batch = this.state.get().batch;
    // An estimate belongs to the neurons it was made for.
    const stale = batch.phase === 'ready' || batch.phase === 'finished' || batch.error !== null;
    this.state.patch({ selected: this.countSelected(), version: this.state.get().version + 1, ...(stale ? { batch: IDLE_BATCH } : {}) });
  }

  // ---- the batch -------------------------------------------------------------------------------

  private patchBatch(changes: Partial<BatchState>): void {
    this.state.patch({ batch: { ...this.state.get().batch, ...changes } });
  }

  /** Reads the selected neurons' records and estimates what explaining and scoring them costs. */
  async estimateBatch(): Promise<void> {
    const datasetId = this.state.get().datasetId;
    const phase = this.state.get().batch.phase;
    if (!datasetId || phase === 'running' || phase === 'estimating') return;
    const neurons = this.selectedNeurons();
    if (neurons.length === 0) return this.patchBatch({ ...IDLE_BATCH, error: 'select the neurons to explain first' });
    if (neurons.length > MAX_BATCH) {
      return this.patchBatch({ ...IDLE_BATCH, error: `a batch takes at most ${MAX_BATCH.toLocaleString('en')} neurons; ${neurons.length.toLocaleString('en')} are selected` });
    }
    const llm = this.deps.llm();
    const model = llm.model.trim();
    if (!model || !llm.baseUrl.trim()) return this.patchBatch({ ...IDLE_BATCH, error: 'set the LLM endpoint and model first' });
    this.patchBatch({ ...IDLE_BATCH, phase: 'estimating', neurons });
    try {
      const store = await this.deps.store;
      const records: NeuronRecord[] = [];
      for (let i = 0; i < neurons.length; i += ESTIMATE_CHUNK) {
        records.push(...(await store.getNeuronRecords(datasetId, neurons.slice(i, i + ESTIMATE_CHUNK))));
        if (this.state.get().batch.neurons !== neurons) return; // superseded
        this.patchBatch({ estimated: records.length });
      }
      this.patchBatch({ phase: 'ready', estimate: { ...estimateBatchCost(records, model), model, endpoint: llm.baseUrl.trim() } });
    } catch (error) {
      if (this.state.get().batch.neurons === neurons) this.patchBatch({ ...IDLE_BATCH, error: (error as Error).message });
    }
  }

  /**
   * Runs the estimated batch. `budgetUsd` caps what it may spend when the model's price is known
   * (else there is nothing to check it against, and it runs without one: say so before).
   */
  async runBatch(budgetUsd: number | null): Promise<void> {
    const { datasetId, batch } = this.state.get();
    if (!datasetId || batch.phase !== 'ready' || !batch.estimate) return;
    const llm = this.deps.llm();
    const model = batch.estimate.model;
    const priced = defaultPricingFor(model) !== undefined;
    if (budgetUsd !== null && !(budgetUsd >= 0)) return this.patchBatch({ error: 'the budget must be a number of dollars, 0 or more' });
    const run = new AbortController();
    this.batchRun = run;
    this.patchBatch({ phase: 'running', progress: null, done: [], failed: [], usage: null, outcome: null, error: null });
    const store = await this.deps.store;
    let client: ChatClient;
    try {
      client = (this.deps.createClient ?? createChatClient)({
        baseUrl: batch.estimate.endpoint,
        apiKey: llm.apiKey.trim() || undefined,
        cache: store.responseCache(),
        budget: budgetUsd !== null && priced ? { maxCostUsd: budgetUsd } : undefined,
        signal: run.signal,
      });
    } catch (error) {
      this.batchRun = null;
      return this.patchBatch({ phase: 'ready', error: (error as Error).message });
    }
    const usage = () => {
      const u = client.usage();
      return { costUsd: u.costUsd, requests: u.requests, cacheHits: u.cacheHits, tokens: u.totalTokens, priced };
    };
    const source = llmSource({ model, baseUrl: batch.estimate.endpoint });
    try {
      const report = await runExplainBatch({
        scanId: datasetId,
        neurons: batch.neurons,
        readRecord: async (n) => (await store.getNeuronRecords(datasetId, [n]))[0],
        client,
        endpoint: batch.estimate.endpoint,
        jobStore: store.jobStore(),
        options: explainOptions(model, 1),
        save: (result) => store.putPipelineResult(datasetId, result, source),
        signal: run.signal,
        onProgress: (progress) => this.patchBatch({ progress, usage: usage() }),
        onNeuron: ({ neuron, result, message }) => {
          const current = this.state.get().batch;
          if (result) {
            const best = [...result.scores].sort((a, b) => (b.all.ev_correlation_score ?? -Infinity) - (a.all.ev_correlation_score ?? -Infinity))[0];
            this.patchBatch({ done: [...current.done, { neuron, explanation: best?.explanation ?? result.explanations[0] ?? '', score: best?.all.ev_correlation_score ?? null }] });
            void this.refreshNeuron(datasetId, neuron);
          } else {
            this.patchBatch({ failed: [...current.failed, { neuron, message: message ?? 'failed' }] });
          }
        },
      });
      const total = batch.neurons.length;
      const finished = `${report.done.length} of ${total} neuron${total === 1 ? '' : 's'} explained and scored${report.failed.length ? `, ${report.failed.length} failed` : ''}`;
      const outcome = report.stopped
        ? { kind: report.stopped.reason, message: `${report.stopped.message}. ${finished}; their results are kept.` }
        : { kind: 'complete' as const, message: `${finished}.` };
      this.patchBatch({ phase: 'finished', outcome, usage: usage(), progress: null });
    } finally {
      this.batchRun = null;
    }
  }

  /** Stops a running batch (or an estimate under way); finished neurons stay stored. */
  stopBatch(): void {
    this.batchRun?.abort(new DOMException('stopped', 'AbortError'));
    if (this.state.get().batch.phase === 'estimating') this.patchBatch(IDLE_BATCH);
  }

  /** Leaves a finished batch (or an estimate) for a new one. */
  dismissBatch(): void {
    if (this.state.get().batch.phase !== 'running') this.patchBatch(IDLE_BATCH);
  }

  /** Re-reads one neuron's explanations into its row (a batch just stored them). */
  private async refreshNeuron(datasetId: string, neuron: BatchNeuron): Promise<void> {
    const store = await this.deps.store;
    const list = await store.listExplanations(datasetId, neuron);
    const columns = this.columns;
    if (this.state.get().datasetId !== datasetId || !columns) return;
    const row = rowOfNeuron(columns, neuron.layer, neuron.neuron);
    if (row < 0) return;
    setRowExplanations(columns, row, list);
    if (this.state.get().query.sort === 'score') this.sorted = null;
    this.update();
  }
}
