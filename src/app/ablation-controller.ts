/**
 * Causal evidence in the probe: what the chosen neurons do to the model's next-token predictions
 * on the probed text when they are zeroed, set to their mean, or scaled. Runs in the worker
 * (ablation.ts), live: a change of text, neurons or edit runs again; at most one run is in flight
 * and a result for settings that have since changed is dropped.
 */
import type { AblationResult } from '../lib/causal/ablation.ts';
import type { NeuronEdit } from '../lib/model/neuron-edits.ts';
import { Observable } from './observable.ts';
import type { NeuronRef } from './url-state.ts';

/** How the chosen neurons are edited. */
export type EditMode = { kind: 'zero' } | { kind: 'mean' } | { kind: 'scale'; factor: number };

export interface AblationTarget extends NeuronRef {
  /** The neuron's mean activation over a scanned corpus, when a dataset has it (for `mean`). */
  mean?: number;
}

export interface AblationState {
  enabled: boolean;
  neurons: AblationTarget[];
  mode: EditMode;
  status: 'idle' | 'running';
  result: AblationResult | null;
  /** The text and edit the result is for. */
  resultFor: { text: string; edits: NeuronEdit[] } | null;
  error: string | null;
  /** The position whose predictions are listed. */
  position: number | null;
}

export interface AblationDeps {
  ablate(text: string, edits: NeuronEdit[], signal: AbortSignal): Promise<AblationResult>;
  debounceMs?: number;
}

/** The worker's edits for a mode, or why they cannot be made. */
export function editsFor(neurons: readonly AblationTarget[], mode: EditMode): { edits: NeuronEdit[] } | { error: string } {
  if (neurons.length === 0) return { error: 'choose a neuron to edit' };
  if (mode.kind === 'zero') return { edits: neurons.map(({ layer, neuron }) => ({ layer, neuron, value: 0 })) };
  if (mode.kind === 'scale') {
    if (!Number.isFinite(mode.factor)) return { error: 'the factor must be a number, e.g. 2 or -1' };
    return { edits: neurons.map(({ layer, neuron }) => ({ layer, neuron, scale: mode.factor })) };
  }
  const missing = neurons.filter((n) => n.mean === undefined);
  if (missing.length) {
    return { error: `the mean of ${missing.map((n) => `${n.layer}:${n.neuron}`).join(', ')} is not known: scan a corpus with this model first (Datasets)` };
  }
  return { edits: neurons.map(({ layer, neuron, mean }) => ({ layer, neuron, value: mean! })) };
}

export class AblationController {
  readonly state = new Observable<AblationState>({ enabled: false, neurons: [], mode: { kind: 'zero' }, status: 'idle', result: null, resultFor: null, error: null, position: null });
  private text = '';
  private timer: ReturnType<typeof setTimeout> | undefined;
  private inFlight: AbortController | null = null;
  private again = false;

  constructor(private readonly deps: AblationDeps) {}

  setEnabled(enabled: boolean): void {
    this.state.patch({ enabled });
    if (enabled) this.schedule(0);
    else {
      this.inFlight?.abort();
      this.state.patch({ result: null, resultFor: null, error: null, status: 'idle' });
    }
  }

  setNeurons(neurons: AblationTarget[]): void {
    this.state.patch({ neurons });
    this.schedule();
  }

  setMode(mode: EditMode): void {
    this.state.patch({ mode });
    this.schedule();
  }

  setText(text: string): void {
    if (text === this.text) return;
    this.text = text;
    this.state.patch({ position: null });
    this.schedule();
  }

  selectPosition(position: number | null): void {
    this.state.patch({ position });
  }

  private schedule(delay = this.deps.debounceMs ?? 300): void {
    if (!this.state.get().enabled) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.run(), delay);
  }

  private async run(): Promise<void> {
    const { neurons, mode, enabled } = this.state.get();
    if (!enabled) return;
    if (this.inFlight) {
      // One run at a time: this one's settings are already stale; run again when it ends.
      this.again = true;
      this.inFlight.abort();
      return;
    }
    const text = this.text;
    if (text.trim() === '') {
      this.state.patch({ result: null, resultFor: null, error: null });
      return;
    }
    const planned = editsFor(neurons, mode);
    if ('error' in planned) {
      this.state.patch({ result: null, resultFor: null, error: planned.error });
      return;
    }
    const controller = new AbortController();
    this.inFlight = controller;
    this.state.patch({ status: 'running' });
    try {
      const result = await this.deps.ablate(text, planned.edits, controller.signal);
      if (!this.again && text === this.text) this.state.patch({ result, resultFor: { text, edits: planned.edits }, error: null });
    } catch (err) {
      if (!controller.signal.aborted && text === this.text) this.state.patch({ result: null, resultFor: null, error: (err as Error).message });
    } finally {
      this.inFlight = null;
      this.state.patch({ status: 'idle' });
      if (this.again) {
        this.again = false;
        void this.run();
      }
    }
  }
}
