/**
 * The `neuronSummaries` object store: every record's NeuronSummary (neuron-summary.ts), written
 * with the record, so that a list of all of a scan's neurons needs no record at all.
 *
 * Rows are columns, one row per (scan, layer): a GPT-2-small scan is 12 rows of typed arrays,
 * read with one getAll, where 36,864 small objects would cost the page far longer to deserialise.
 * A neuron's entry is at its index in each column; `present` says which neurons have a record.
 * Peak tokens are kept as JSON text per neuron and parsed only for the rows on screen.
 */
import type { NeuronSummary } from '../activations/neuron-summary.ts';
import type { PeakToken } from '../activations/peak-tokens.ts';

export interface NeuronSummaryColumns {
  layer: number;
  /** 1 where the neuron (the index) has a record. */
  present: Uint8Array;
  /** NaN where unknown (see NeuronSummary for what each means). */
  maxActivation: Float64Array;
  mean: Float64Array;
  firesOn: Float64Array;
  sampledTokens: Uint32Array;
  topExcerpts: Uint32Array;
  /** PeakToken[] as JSON `[[token, count, maxActivation], …]`; '' where there are none. */
  peaks: string[];
}

export interface NeuronSummaryRow extends NeuronSummaryColumns {
  scanId: string;
}

const orNaN = (value: number | null) => (value === null ? NaN : value);
const orNull = (value: number) => (Number.isNaN(value) ? null : value);

function grown<T extends Uint8Array | Uint32Array | Float64Array>(array: T | undefined, length: number, fill = 0): T {
  if (array && array.length >= length) return array.slice() as T;
  const Type = (array?.constructor ?? Float64Array) as new (n: number) => T;
  const out = new Type(length);
  out.fill(fill as never);
  if (array) out.set(array as never);
  return out;
}

/** `row` (or a new row of this layer) with these summaries set, as a new row. All must be of `layer`. */
export function withSummaries(row: NeuronSummaryRow | undefined, scanId: string, layer: number, summaries: readonly NeuronSummary[]): NeuronSummaryRow {
  const length = summaries.reduce((n, s) => Math.max(n, s.neuron + 1), row?.present.length ?? 0);
  const next: NeuronSummaryRow = {
    scanId,
    layer,
    present: grown(row?.present ?? new Uint8Array(0), length),
    maxActivation: grown(row?.maxActivation ?? new Float64Array(0), length, NaN),
    mean: grown(row?.mean ?? new Float64Array(0), length, NaN),
    firesOn: grown(row?.firesOn ?? new Float64Array(0), length, NaN),
    sampledTokens: grown(row?.sampledTokens ?? new Uint32Array(0), length),
    topExcerpts: grown(row?.topExcerpts ?? new Uint32Array(0), length),
    peaks: Array.from({ length }, (_, i) => row?.peaks[i] ?? ''),
  };
  for (const s of summaries) {
    if (s.layer !== layer) throw new Error(`internal: a summary of layer ${s.layer} in the row of layer ${layer}`);
    const n = s.neuron;
    next.present[n] = 1;
    next.maxActivation[n] = orNaN(s.maxActivation);
    next.mean[n] = orNaN(s.mean);
    next.firesOn[n] = orNaN(s.firesOn);
    next.sampledTokens[n] = s.sampledTokens;
    next.topExcerpts[n] = s.topExcerpts;
    next.peaks[n] = s.peaks.length === 0 ? '' : JSON.stringify(s.peaks.map((p) => [p.token, p.count, p.maxActivation]));
  }
  return next;
}

/** The peak tokens of a `peaks` entry. */
export function parsePeaks(text: string): PeakToken[] {
  if (text === '') return [];
  return (JSON.parse(text) as [string, number, number][]).map(([token, count, maxActivation]) => ({ token, count, maxActivation }));
}

/** Neuron `neuron`'s summary in a row, or undefined when it has none. */
export function summaryAt(row: NeuronSummaryColumns, neuron: number): NeuronSummary | undefined {
  if (!(neuron < row.present.length && row.present[neuron] === 1)) return undefined;
  return {
    layer: row.layer,
    neuron,
    maxActivation: orNull(row.maxActivation[neuron]),
    mean: orNull(row.mean[neuron]),
    firesOn: orNull(row.firesOn[neuron]),
    sampledTokens: row.sampledTokens[neuron],
    topExcerpts: row.topExcerpts[neuron],
    peaks: parsePeaks(row.peaks[neuron]),
  };
}

/** The summaries grouped by layer, in layer order. */
export function summariesByLayer(summaries: readonly NeuronSummary[]): Map<number, NeuronSummary[]> {
  const byLayer = new Map<number, NeuronSummary[]>();
  for (const s of [...summaries].sort((a, b) => a.layer - b.layer)) {
    const list = byLayer.get(s.layer);
    if (list) list.push(s);
    else byLayer.set(s.layer, [s]);
  }
  return byLayer;
}
