/**
 * Excerpt heatmaps as a figure: one row per excerpt (or per series of an excerpt, e.g. real and
 * simulated activations), its tokens in a monospace grid shaded by activation, with a second
 * channel (a bar under each token, or its value written under it) so the figure reads without
 * colour, wrapped to the figure's width. The colours are the ones the page uses.
 */
import type { ActivationRecord } from '../activations/records.ts';
import { FIRING_FRACTION } from '../activations/record-stats.ts';
import { activationStrength, excerptView, formatActivation, inlineText, type ExcerptPiece } from '../activations/excerpt-display.ts';
import { textColumns, type Figure, type Shape } from './figure.ts';

export type HeatPalette = 'real' | 'simulated';

const PALETTES: Record<HeatPalette, [number, number, number]> = {
  // Orange for the neuron's activations (as the probe draws them), teal for simulated ones; both
  // keep dark text above 4.5:1 contrast at full strength.
  real: [255, 136, 0],
  simulated: [0, 178, 202],
};

/** The colour of a token at `strength` (0…1): the palette's colour blended over white. */
export function heatColour(strength: number, palette: HeatPalette = 'real'): string {
  const s = Math.max(0, Math.min(1, strength));
  const [r, g, b] = PALETTES[palette].map((c) => Math.round(255 - s * (255 - c)));
  return `rgb(${r}, ${g}, ${b})`;
}

/** Bars below this strength are not drawn: a hair-thin line under every token reads as an underline. */
export const MIN_BAR_STRENGTH = 0.05;

/** The colour of the bar under a token (darker, so it shows on any shade). */
export const BAR_COLOURS: Record<HeatPalette, string> = { real: '#7a3d00', simulated: '#00525e' };

export interface HeatmapRow {
  /** Shown left of the row, e.g. "max 4.02" or "simulated". */
  label: string;
  pieces: ExcerptPiece[];
  /** One value per token of the excerpt (indexed by the pieces' token indices); null = none. */
  values: readonly (number | null)[];
  /** The value drawn at full strength. */
  max: number;
  palette?: HeatPalette;
  /** Token index to outline (the peak). */
  mark?: number;
  hiddenBefore?: number;
  hiddenAfter?: number;
  /** Starts a new excerpt: a rule is drawn above it. */
  groupStart?: boolean;
}

export interface HeatmapOptions {
  title: string;
  description?: string;
  /** Second channel: a bar under each token, or its value. */
  display?: 'bars' | 'numbers';
  /** Figure width in pixels (default 860). */
  width?: number;
  fontSize?: number;
}

/**
 * One row per excerpt, centred on its peak (`context` tokens either side; null: whole), shaded on
 * one scale. Only a peak where the neuron fires (FIRING_FRACTION of `scaleMax`) is centred on and
 * outlined: the max of an excerpt where it stays silent is just noise.
 */
export function excerptRows(excerpts: readonly ActivationRecord[], context: number | null, scaleMax: number): HeatmapRow[] {
  return excerpts.map((e) => {
    const view = excerptView(e.tokens, e.activations, context, FIRING_FRACTION * scaleMax);
    return {
      label: `max ${formatActivation(view.max)}`,
      pieces: view.pieces,
      values: e.activations,
      max: scaleMax,
      mark: view.centred ? view.peak : undefined,
      hiddenBefore: view.hiddenBefore,
      hiddenAfter: view.hiddenAfter,
    };
  });
}

/** An excerpt's real and simulated activations, for rows side by side. */
export interface ComparedSeries {
  tokens: readonly string[];
  real: readonly number[];
  simulated: readonly (number | null)[];
  /** Shown with the simulated row (e.g. "r 0.98"). */
  note?: string;
}

/**
 * Two rows per excerpt, the same window of it (centred on the real peak): the neuron's
 * activations on `scaleMax`, and the simulated ones on the simulator's 0–10 scale.
 */
export function comparisonRows(excerpts: readonly ComparedSeries[], context: number | null, scaleMax: number): HeatmapRow[] {
  return excerpts.flatMap((e) => {
    const view = excerptView(e.tokens, e.real, context, FIRING_FRACTION * scaleMax);
    const shared = { pieces: view.pieces, mark: view.centred ? view.peak : undefined, hiddenBefore: view.hiddenBefore, hiddenAfter: view.hiddenAfter };
    return [
      { ...shared, label: `real ${formatActivation(view.max)}`, values: e.real, max: scaleMax, palette: 'real' as const, groupStart: true },
      { ...shared, label: `simulated${e.note ? ` ${e.note}` : ''}`, values: e.simulated, max: 10, palette: 'simulated' as const },
    ];
  });
}

const PAD = 12;
const LABEL_WIDTH = 96;

export function heatmapFigure(rows: readonly HeatmapRow[], options: HeatmapOptions): Figure {
  const width = options.width ?? 860;
  const size = options.fontSize ?? 13;
  const numbers = options.display === 'numbers';
  const charWidth = size * 0.6;
  const lineHeight = Math.round(size * (numbers ? 2.5 : 1.9));
  const left = PAD + LABEL_WIDTH;
  const right = width - PAD;
  const shapes: Shape[] = [];
  let y = PAD + size + 4;
  shapes.push({ kind: 'text', x: PAD, y, text: options.title, size: size + 2, bold: true });
  y += 10;

  for (const row of rows) {
    if (row.groupStart && y > PAD + size + 20) shapes.push({ kind: 'line', x1: PAD, y1: y + 2, x2: right, y2: y + 2, stroke: '#dde1ec' });
    y += 6;
    const palette = row.palette ?? 'real';
    shapes.push({ kind: 'text', x: PAD, y: y + size, text: row.label, size: size - 2, fill: '#4a5266' });
    let x = left;
    let top = y;
    const newLine = () => {
      x = left;
      top += lineHeight;
    };
    const ellipsis = () => {
      if (x + 2 * charWidth > right) newLine();
      shapes.push({ kind: 'text', x, y: top + size, text: '…', size, fill: '#6b7285', mono: true });
      x += 2 * charWidth;
    };
    if (row.hiddenBefore) ellipsis();
    for (const piece of row.pieces) {
      const text = inlineText(piece.text);
      const w = Math.max(charWidth, textColumns(text) * charWidth);
      if (x + w > right && x > left) newLine();
      const partWidth = w / piece.tokens.length;
      piece.tokens.forEach((t, k) => {
        const value = row.values[t];
        const strength = activationStrength(value, row.max);
        const px0 = x + k * partWidth;
        shapes.push({ kind: 'rect', x: px0, y: top, width: partWidth, height: size + 6, fill: heatColour(strength, palette) });
        if (numbers) {
          shapes.push({ kind: 'text', x: px0 + partWidth / 2, y: top + size + 6 + size * 0.7, text: formatActivation(value), size: size * 0.62, fill: '#3b4256', anchor: 'middle' });
        } else if (strength >= MIN_BAR_STRENGTH) {
          const h = 3 * strength;
          shapes.push({ kind: 'rect', x: px0 + 0.5, y: top + size + 6 - h, width: Math.max(0.5, partWidth - 1), height: h, fill: BAR_COLOURS[palette] });
        }
        if (row.mark === t) shapes.push({ kind: 'rect', x: px0, y: top, width: partWidth, height: size + 6, fill: 'none', stroke: '#1d2330' });
      });
      shapes.push({ kind: 'text', x, y: top + size, text, size, mono: true });
      x += w;
    }
    if (row.hiddenAfter) ellipsis();
    y = top + lineHeight;
  }
  const height = y + PAD;
  return {
    width,
    height,
    title: options.title,
    description:
      options.description ??
      `${rows.length} rows of tokens shaded by activation (darker is stronger)${numbers ? ', each value written under its token' : ', with a bar under each token as tall as its activation'}.`,
    shapes,
  };
}
