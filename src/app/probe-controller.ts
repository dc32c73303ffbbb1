/**
 * The live probe: the text being typed is run through the model (in the worker) shortly after
 * typing pauses, so tokens recolour as you type without the page ever waiting on the model. At
 * most one run is in flight; newer text waits for it and replaces any text that was waiting
 * before, and a result for text that has since changed is dropped, never shown. `runNow` (Ctrl+Enter,
 * an example) skips the pause.
 *
 * Settled probes (the text and every neuron's activations) are kept in the store's history, so a
 * reload or an offline visit shows them again without running the model.
 */
import type { Probe, ProbeInput } from '../lib/store/store-types.ts';
import type { CaptureReply } from '../worker/protocol.ts';
import { Observable } from './observable.ts';

/** One probed text and its activations, fresh from the model or from the history. */
export interface ProbeResult {
  text: string;
  model: string;
  tokens: { id: number; text: string; start: number; end: number; fragment?: boolean }[];
  dMlp: number;
  /** Per layer, [tokens, dMlp] row-major. */
  layers: { layer: number; data: Float32Array }[];
  backend: string;
  windows: number;
  /** Milliseconds the model took; absent for a probe from the history. */
  runMs?: number;
  /** Set when it came from the history. */
  historyId?: string;
}

export interface ProbeState {
  text: string;
  /** `waiting`: typing paused for less than the debounce; `running`: the model has it. */
  status: 'idle' | 'waiting' | 'running';
  result: ProbeResult | null;
  error: { message: string; tooLong: boolean } | null;
  /** The token whose most active neurons are listed; cleared when the tokens change. */
  selectedToken: number | null;
  history: Probe[];
}

export interface ProbeDeps {
  capture(text: string, windowed: boolean): Promise<CaptureReply>;
  /** The loaded model's label, or null while none is. */
  model(): string | null;
  history?: {
    put(probe: ProbeInput): Promise<Probe>;
    list(): Promise<Probe[]>;
    delete(id: string): Promise<boolean>;
  };
  /** Pause after the last keystroke before running (default 250 ms). */
  debounceMs?: number;
  /** A probe is kept in the history once its text has stayed this long (default 1.5 s). */
  settleMs?: number;
  /** History kept: newest first while under this many values (default 64 M, 256 MB of float32). */
  historyValueBudget?: number;
}

export class ProbeController {
  readonly state = new Observable<ProbeState>({ text: '', status: 'idle', result: null, error: null, selectedToken: null, history: [] });
  private debounce: ReturnType<typeof setTimeout> | undefined;
  private settle: ReturnType<typeof setTimeout> | undefined;
  private inFlight = false;
  /** Text to run once the run in flight ends; `explicit` runs are kept in the history at once. */
  private queued: { text: string; windowed: boolean; explicit: boolean } | null = null;

  constructor(private readonly deps: ProbeDeps) {}

  /** The text changed (typing): run it once typing pauses. */
  setText(text: string): void {
    this.state.patch({ text });
    clearTimeout(this.debounce);
    clearTimeout(this.settle);
    this.debounce = undefined;
    if (text.trim() === '') {
      // An emptied box is not an error while typing; it just has nothing to show.
      this.queued = null;
      this.state.patch({ result: null, error: null, selectedToken: null });
      this.refreshStatus();
      return;
    }
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.enqueue({ text, windowed: false, explicit: false });
    }, this.deps.debounceMs ?? 250);
    this.refreshStatus();
  }

  /** Runs the current text at once (Ctrl+Enter, the Analyse button); `windowed` for over-long text. */
  runNow(windowed = false): void {
    clearTimeout(this.debounce);
    this.debounce = undefined;
    const text = this.state.get().text;
    if (text.trim() === '') {
      this.state.patch({ result: null, error: { message: 'the text is empty: type or paste some text to analyse', tooLong: false }, selectedToken: null });
      return;
    }
    this.enqueue({ text, windowed, explicit: true });
  }

  /** Puts a text in the box and runs it at once (an example, a history entry's text). */
  runText(text: string): void {
    this.state.patch({ text });
    this.runNow();
  }

  selectToken(index: number | null): void {
    this.state.patch({ selectedToken: index });
  }

  /** Shows a probe from the history, without running the model. */
  showHistory(probe: Probe): void {
    clearTimeout(this.debounce);
    this.debounce = undefined;
    this.queued = null;
    this.state.patch({ text: probe.text, result: resultFromProbe(probe), error: null, selectedToken: null });
    this.refreshStatus();
  }

  async loadHistory(): Promise<void> {
    if (!this.deps.history) return;
    const all = await this.deps.history.list();
    this.state.patch({ history: all.reverse() });
  }

  async deleteHistory(id: string): Promise<void> {
    await this.deps.history?.delete(id);
    this.state.patch({ history: this.state.get().history.filter((p) => p.id !== id) });
  }

  /** The model changed: what is on screen belongs to the old one. */
  modelChanged(): void {
    this.queued = null;
    this.state.patch({ result: null, error: null, selectedToken: null });
    if (this.state.get().text.trim()) this.enqueue({ text: this.state.get().text, windowed: false, explicit: false });
  }

  private refreshStatus(): void {
    const status = this.inFlight || this.queued ? 'running' : this.debounce !== undefined ? 'waiting' : 'idle';
    if (this.state.get().status !== status) this.state.patch({ status });
  }

  private enqueue(job: { text: string; windowed: boolean; explicit: boolean }): void {
    // A newer text replaces one still waiting; an explicit run stays explicit.
    this.queued = { ...job, explicit: job.explicit || (this.queued?.explicit === true && this.queued.text === job.text) };
    this.refreshStatus();
    if (!this.inFlight) void this.drain();
  }

  private async drain(): Promise<void> {
    while (this.queued) {
      const job = this.queued;
      this.queued = null;
      if (!this.deps.model()) break;
      this.inFlight = true;
      this.refreshStatus();
      try {
        const reply = await this.deps.capture(job.text, job.windowed);
        // Dropped: the text changed while the model ran; the newer text is queued or waiting.
        if (job.text !== this.state.get().text) continue;
        const previous = this.state.get().result;
        const result = resultFromReply(job.text, this.deps.model() ?? '', reply);
        const sameTokens = previous && previous.tokens.length === result.tokens.length && previous.tokens.every((t, i) => t.id === result.tokens[i].id);
        this.state.patch({ result, error: null, selectedToken: sameTokens ? this.state.get().selectedToken : null });
        this.scheduleKeep(result, job.explicit);
      } catch (err) {
        if (job.text !== this.state.get().text) continue;
        const e = err as Error;
        this.state.patch({ result: null, error: { message: e.message, tooLong: e.name === 'TextTooLongError' }, selectedToken: null });
      } finally {
        this.inFlight = false;
      }
    }
    this.refreshStatus();
  }

  /** Keeps a probe in the history once its text has settled (at once for an explicit run). */
  private scheduleKeep(result: ProbeResult, explicit: boolean): void {
    if (!this.deps.history) return;
    clearTimeout(this.settle);
    const keep = async () => {
      if (this.state.get().text !== result.text) return;
      const history = this.state.get().history;
      if (history[0]?.text === result.text && history[0]?.model === result.model) return;
      try {
        // The same text probed again with the same model moves to the top, once.
        const older = history.filter((p) => p.text === result.text && p.model === result.model);
        for (const p of older) await this.deps.history!.delete(p.id);
        const stored = await this.deps.history!.put(probeFromResult(result));
        this.state.patch({ history: [stored, ...this.state.get().history.filter((p) => p.id !== stored.id && !older.includes(p))] });
        await this.prune();
      } catch {
        // A full storage only costs the history entry; the probe itself is on screen.
      }
    };
    this.settle = setTimeout(() => void keep(), explicit ? 0 : (this.deps.settleMs ?? 1500));
  }

  /** Drops the oldest probes beyond the history's budget. */
  private async prune(): Promise<void> {
    const budget = this.deps.historyValueBudget ?? 64 * 1024 * 1024;
    let values = 0;
    const keep: Probe[] = [];
    for (const p of this.state.get().history) {
      values += p.layers.reduce((n, l) => n + l.data.length, 0);
      if (values > budget && keep.length > 0) await this.deps.history!.delete(p.id);
      else keep.push(p);
    }
    this.state.patch({ history: keep });
  }
}

function resultFromReply(text: string, model: string, reply: CaptureReply): ProbeResult {
  return { text, model, tokens: reply.tokens, dMlp: reply.dMlp, layers: reply.layers, backend: reply.backend, windows: reply.windows, runMs: reply.runMs };
}

function probeFromResult(r: ProbeResult): ProbeInput {
  return {
    text: r.text,
    model: r.model,
    tokens: r.tokens.map((t) => t.text),
    tokenIds: r.tokens.map((t) => t.id),
    spans: r.tokens.map((t) => ({ start: t.start, end: t.end, ...(t.fragment ? { fragment: true } : {}) })),
    dMlp: r.dMlp,
    layers: r.layers,
  };
}

export function resultFromProbe(p: Probe): ProbeResult {
  return {
    text: p.text,
    model: p.model ?? '',
    tokens: p.tokens.map((text, i) => ({ id: p.tokenIds?.[i] ?? -1, text, start: p.spans?.[i]?.start ?? 0, end: p.spans?.[i]?.end ?? 0, ...(p.spans?.[i]?.fragment ? { fragment: true } : {}) })),
    dMlp: p.dMlp,
    layers: p.layers,
    backend: 'stored',
    windows: 1,
    historyId: p.id,
  };
}
