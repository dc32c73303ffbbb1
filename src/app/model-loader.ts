/**
 * Loading a model, as the app does it: the exact download size is checked first and a download
 * over 1 GB waits for the user's confirmation; the download shows its progress and can be
 * cancelled; the model last loaded is remembered, so a reload brings it back (from the browser's
 * cache, offline too), and a download a reload interrupted is offered for resuming (the parts
 * already cached are not fetched again: see hub-source.ts).
 *
 * Framework-free: the UI renders `state` (an Observable) and calls the methods.
 */
import { hubSource } from '../lib/model/hub-source.ts';
import { LARGE_DOWNLOAD_BYTES } from '../lib/model/hub-catalog.ts';
import { chooseVariant } from '../lib/model/model-variants.ts';
import type { BackendChoice, DownloadProgress, ModelRequest, ModelSummary } from '../worker/protocol.ts';
import { Observable } from './observable.ts';

export type LoadPhase = 'idle' | 'checking' | 'confirm' | 'loading' | 'ready' | 'failed';

/** A model request that can be kept across reloads (dropped files cannot). */
export type RememberedRequest = Exclude<ModelRequest, { kind: 'files' }>;

export interface RememberedModel {
  request: RememberedRequest;
  backend: BackendChoice;
}

export interface ModelLoaderState {
  phase: LoadPhase;
  /** The request being checked, confirmed or loaded. */
  request: ModelRequest | null;
  progress: DownloadProgress | null;
  /** The model in use: stays while another loads, and when that fails. */
  summary: ModelSummary | null;
  error: string | null;
  /** Set in the `confirm` phase: what the download would cost. */
  confirm: { label: string; bytes: number } | null;
  /** A download that a reload interrupted, offered for resuming. */
  interrupted: RememberedModel | null;
}

export interface ModelLoaderDeps {
  load(request: ModelRequest, backend: BackendChoice, options: { onProgress: (p: DownloadProgress) => void; signal: AbortSignal }): Promise<ModelSummary>;
  /** Bytes the request will download; null when unknown or nothing to download. */
  downloadBytes?(request: ModelRequest, signal: AbortSignal): Promise<number | null>;
  storage?: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'> | null;
  /** The hub access token the user chose to remember, added to a remembered hub model's request. */
  hubToken?(): string | undefined;
}

/** The model last loaded, brought back at the next visit. */
const MODEL_KEY = 'neurolens.model';
/** A load in progress: still there at start-up means a reload interrupted it. */
const DOWNLOAD_KEY = 'neurolens.download';

/** The bytes a hub request downloads: its variant's graph and weights, as the hub reports them. */
export async function hubDownloadBytes(request: ModelRequest, signal: AbortSignal): Promise<number | null> {
  if (request.kind !== 'hub') return null;
  const source = hubSource(request.repoId, { endpoint: request.endpoint, revision: request.revision, token: request.token });
  return (await chooseVariant(source, request.dtype, signal)).variant.bytes;
}

export class ModelLoader {
  readonly state = new Observable<ModelLoaderState>({ phase: 'idle', request: null, progress: null, summary: null, error: null, confirm: null, interrupted: null });
  private controller: AbortController | null = null;
  private pending: { request: ModelRequest; backend: BackendChoice } | null = null;
  /** Counts the user's requests, so that start-up restoring gives way to one made meanwhile. */
  private requests = 0;

  constructor(private readonly deps: ModelLoaderDeps) {}

  private set(patch: Partial<ModelLoaderState>): void {
    this.state.patch(patch);
  }

  /**
   * At start-up: loads `preferred` (a model the address names), else the model remembered from the
   * last visit, else `fallback`. An unfinished download is offered, not restarted.
   */
  async restore(fallback: RememberedRequest, backend: BackendChoice, preferred?: RememberedRequest): Promise<void> {
    const requestsBefore = this.requests;
    const interrupted = this.remembered(DOWNLOAD_KEY);
    if (interrupted) this.set({ interrupted });
    const last = preferred ? { request: preferred, backend } : this.remembered(MODEL_KEY);
    if (last) {
      await this.load(last.request, last.backend);
      if (this.state.get().phase === 'ready' || this.requests !== requestsBefore) return;
    }
    await this.load(fallback, backend, { remember: false });
  }

  /** Loads a model; a download over 1 GB first waits for `confirmDownload()`. */
  async request(request: ModelRequest, backend: BackendChoice): Promise<void> {
    this.requests++;
    this.cancel();
    const controller = new AbortController();
    this.controller = controller;
    this.set({ phase: 'checking', request, error: null, confirm: null, progress: null });
    let bytes: number | null = null;
    try {
      bytes = (await this.deps.downloadBytes?.(request, controller.signal)) ?? null;
    } catch (err) {
      if (controller.signal.aborted) return;
      this.set({ phase: 'failed', error: (err as Error).message });
      return;
    }
    if (controller.signal.aborted) return;
    if (bytes !== null && bytes > LARGE_DOWNLOAD_BYTES) {
      this.pending = { request, backend };
      this.set({ phase: 'confirm', confirm: { label: request.kind === 'hub' ? request.repoId : request.kind, bytes } });
      return;
    }
    await this.load(request, backend);
  }

  async confirmDownload(): Promise<void> {
    const pending = this.pending;
    this.pending = null;
    if (pending) await this.load(pending.request, pending.backend);
  }

  /** Stops a check, a confirmation or a download; the model in use stays. */
  cancel(): void {
    this.pending = null;
    this.forget(DOWNLOAD_KEY);
    this.controller?.abort(new DOMException('cancelled', 'AbortError'));
    this.controller = null;
    if (this.state.get().phase === 'checking' || this.state.get().phase === 'confirm' || this.state.get().phase === 'loading') {
      this.set({ phase: this.state.get().summary ? 'ready' : 'idle', request: null, progress: null, confirm: null });
    }
  }

  /** Forgets an interrupted download (its cached parts stay until the browser evicts them). */
  dismissInterrupted(): void {
    this.forget(DOWNLOAD_KEY);
    this.set({ interrupted: null });
  }

  async resumeInterrupted(): Promise<void> {
    const interrupted = this.state.get().interrupted;
    this.set({ interrupted: null });
    if (interrupted) await this.request(interrupted.request, interrupted.backend);
  }

  private async load(request: ModelRequest, backend: BackendChoice, options: { remember?: boolean } = {}): Promise<void> {
    this.controller?.abort(new DOMException('cancelled', 'AbortError'));
    const controller = new AbortController();
    this.controller = controller;
    const remember = options.remember !== false && request.kind !== 'files';
    if (remember && request.kind === 'hub') this.remember(DOWNLOAD_KEY, { request, backend });
    this.set({ phase: 'loading', request, error: null, confirm: null, progress: null });
    try {
      const summary = await this.deps.load(request, backend, { signal: controller.signal, onProgress: (progress) => this.controller === controller && this.set({ progress }) });
      if (this.controller !== controller) return;
      if (remember) this.remember(MODEL_KEY, { request: request as RememberedRequest, backend });
      this.forget(DOWNLOAD_KEY);
      this.set({ phase: 'ready', summary, request: null, progress: null });
    } catch (err) {
      if (this.controller !== controller) return;
      if (controller.signal.aborted) return;
      // The model that was in use stays in use, and the next visit starts from it.
      this.forget(DOWNLOAD_KEY);
      this.set({ phase: 'failed', error: (err as Error).message, request: null, progress: null });
    } finally {
      if (this.controller === controller) this.controller = null;
    }
  }

  /** The label of the model remembered from the last visit (the one `restore` loads). */
  rememberedLabel(): string | undefined {
    const request = this.remembered(MODEL_KEY)?.request;
    return request?.kind === 'hub' ? request.repoId : request?.name;
  }

  private remember(key: string, model: RememberedModel): void {
    // An access token is a secret: it is never written down here (see deps.hubToken).
    const request = model.request.kind === 'hub' ? { ...model.request, token: undefined } : model.request;
    try {
      this.deps.storage?.setItem(key, JSON.stringify({ ...model, request }));
    } catch {
      // Storage full or disabled: the app still works, it just forgets.
    }
  }

  private forget(key: string): void {
    this.deps.storage?.removeItem(key);
  }

  private remembered(key: string): RememberedModel | null {
    try {
      const raw = this.deps.storage?.getItem(key);
      const parsed = raw ? (JSON.parse(raw) as RememberedModel) : null;
      if (parsed?.request?.kind === 'hub') return { ...parsed, request: { ...parsed.request, token: this.deps.hubToken?.() } };
      return parsed?.request?.kind === 'bundled' ? parsed : null;
    } catch {
      return null;
    }
  }
}
