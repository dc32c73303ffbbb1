/**
 * The activation histogram of a neuron record, as a figure: how the maximum activation of each
 * excerpt in the record's random sample is distributed, with the scan's quantile boundaries of
 * excerpt maxima drawn over it (the bins the "by quantile" excerpts were sampled from). Both are
 * maxima per excerpt, so they share the axis.
 */
import type { NeuronRecord } from '../activations/records.ts';
import { formatActivation } from '../activations/excerpt-display.ts';
import type { Figure, Shape } from './figure.ts';

export interface Histogram {
  /** Bin edges, one more than `counts`. */
  edges: number[];
  counts: number[];
  /** Values counted. */
  total: number;
}

/** Counts `values` in `bins` equal bins over [lo, hi] (the last bin includes hi). */
export function histogram(values: readonly number[], lo: number, hi: number, bins: number): Histogram {
  if (!(hi > lo)) hi = lo + 1;
  const width = (hi - lo) / bins;
  const counts = new Array<number>(bins).fill(0);
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    counts[Math.max(0, Math.min(bins - 1, Math.floor((v - lo) / width)))]++;
  }
  return { edges: Array.from({ length: bins + 1 }, (_, i) => lo + i * width), counts, total: values.length };
}

export interface RecordHistogram extends Histogram {
  /** The record's quantile boundaries (open ends resolved to the data's range), or none. */
  boundaries: number[];
  excerpts: number;
}

/** The histogram of a record's random-sample excerpt maxima over the range of the boundaries and the data. */
export function recordHistogram(record: NeuronRecord, bins = 24): RecordHistogram {
  const maxima = record.random_sample.filter((r) => r.activations.length > 0).map((r) => Math.max(...r.activations));
  const given = (record.quantile_boundaries ?? []).filter((b): b is number => typeof b === 'number' && Number.isFinite(b));
  const all = [...maxima, ...given];
  const lo = all.length ? Math.min(...all) : 0;
  const hi = all.length ? Math.max(...all) : 1;
  // Open ends (null in the released records) are the data's range.
  const boundaries = (record.quantile_boundaries ?? []).map((b, i, list) =>
    typeof b === 'number' && Number.isFinite(b) ? b : i === 0 ? lo : i === list.length - 1 ? hi : NaN,
  ).filter((b) => Number.isFinite(b));
  return { ...histogram(maxima, lo, hi, bins), boundaries, excerpts: maxima.length };
}

export interface HistogramFigureOptions {
  title: string;
  width?: number;
  height?: number;
}

const BAR = '#3653d6';
const AXIS = '#4a5266';
const BOUNDARY = '#b3261e';

export function histogramFigure(h: RecordHistogram, options: HistogramFigureOptions): Figure {
  const width = options.width ?? 480;
  const height = options.height ?? 290;
  const margin = { left: 44, right: 16, top: 48, bottom: 46 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const lo = h.edges[0];
  const hi = h.edges[h.edges.length - 1];
  const xOf = (v: number) => margin.left + ((v - lo) / (hi - lo)) * plotW;
  const top = Math.max(1, ...h.counts);
  const yOf = (c: number) => margin.top + plotH - (c / top) * plotH;
  const shapes: Shape[] = [{ kind: 'text', x: margin.left, y: 18, text: options.title, size: 14, bold: true }];

  h.counts.forEach((c, i) => {
    if (c === 0) return;
    const x0 = xOf(h.edges[i]);
    const x1 = xOf(h.edges[i + 1]);
    shapes.push({ kind: 'rect', x: x0 + 0.5, y: yOf(c), width: Math.max(1, x1 - x0 - 1), height: margin.top + plotH - yOf(c), fill: BAR });
  });
  // Axes, with the count scale and the activation range.
  shapes.push({ kind: 'line', x1: margin.left, y1: margin.top + plotH, x2: margin.left + plotW, y2: margin.top + plotH, stroke: AXIS });
  shapes.push({ kind: 'line', x1: margin.left, y1: margin.top, x2: margin.left, y2: margin.top + plotH, stroke: AXIS });
  shapes.push({ kind: 'text', x: margin.left - 6, y: margin.top + 4, text: String(top), size: 12, fill: AXIS, anchor: 'end' });
  shapes.push({ kind: 'text', x: margin.left - 6, y: margin.top + plotH, text: '0', size: 12, fill: AXIS, anchor: 'end' });
  shapes.push({ kind: 'text', x: xOf(lo), y: margin.top + plotH + 14, text: formatActivation(lo), size: 12, fill: AXIS, anchor: 'start' });
  shapes.push({ kind: 'text', x: xOf(hi), y: margin.top + plotH + 14, text: formatActivation(hi), size: 12, fill: AXIS, anchor: 'end' });
  shapes.push({ kind: 'text', x: margin.left + plotW / 2, y: height - 10, text: `max activation of each of ${h.excerpts} random excerpts`, size: 12, fill: AXIS, anchor: 'middle' });

  // Quantile boundaries: the interior ones as dashed lines, each bin named as in the excerpt tabs.
  const interior = h.boundaries.slice(1, -1);
  interior.forEach((b) => shapes.push({ kind: 'line', x1: xOf(b), y1: margin.top - 4, x2: xOf(b), y2: margin.top + plotH, stroke: BOUNDARY, dashed: true, width: 1.2 }));
  const edges = h.boundaries;
  for (let q = 0; q + 1 < edges.length; q++) {
    const mid = (xOf(edges[q]) + xOf(edges[q + 1])) / 2;
    // Bins narrower than their label are named only when they have room.
    if (xOf(edges[q + 1]) - xOf(edges[q]) < 18) continue;
    shapes.push({ kind: 'text', x: mid, y: margin.top - 8, text: `Q${q + 1}`, size: 11, fill: BOUNDARY, anchor: 'middle' });
  }
  const binsText = h.boundaries.length > 1 ? ` Dashed lines: the ${h.boundaries.length - 2} interior quantile boundaries of excerpt maxima over the whole scan (${h.boundaries.map(formatActivation).join(', ')}), bins Q1–Q${h.boundaries.length - 1}.` : '';
  return {
    width,
    height,
    title: options.title,
    description: `Histogram of the maximum activation of each of the ${h.excerpts} excerpts in the record's random sample, ${h.counts.length} bins from ${formatActivation(lo)} to ${formatActivation(hi)}; the tallest bin holds ${top}.${binsText}`,
    shapes,
  };
}
