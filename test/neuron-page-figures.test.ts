/**
 * What the neuron page draws, in Node: record tokens with byte fragments joined into characters
 * (our scans' and the released records' `\xNN` escapes alike), excerpts centred on their peak,
 * the heatmap and histogram figures and their SVG (escaped, self-contained), and the reasons given
 * for undefined scores.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { excerptPieces, excerptView, peakIndex, textPieces } from '../src/lib/activations/excerpt-display.ts';
import type { NeuronRecord } from '../src/lib/activations/records.ts';
import { recordStatistics } from '../src/lib/activations/record-stats.ts';
import { ablationUndefinedReason, correlationUndefinedReason, coverageNote } from '../src/lib/explain/score-reasons.ts';
import { figureToSvg, textColumns, xmlText } from '../src/lib/figures/figure.ts';
import { comparisonRows, excerptRows, heatColour, heatmapFigure } from '../src/lib/figures/heatmap-figure.ts';
import { histogram, histogramFigure, recordHistogram } from '../src/lib/figures/histogram-figure.ts';
import { escapedTextToBytes } from '../src/lib/model/byte-level.ts';
import { Gpt2Tokenizer } from '../src/lib/model/tokenizer.ts';

/** The real GPT-2 tokenizer, as the bundled toy model ships it (npm run assets writes it). */
function gpt2Tokenizer(): Gpt2Tokenizer {
  return new Gpt2Tokenizer(JSON.parse(readFileSync(join(import.meta.dirname, '../public/models/toy-planted/tokenizer.json'), 'utf8')));
}

describe('record tokens on screen', () => {
  const tok = gpt2Tokenizer();
  const text = 'A fox 🦊 and 日本語, ok';
  const tokens = tok.encode(text);
  const strings = tokens.map((t) => tok.tokenText(t.id));

  it('joins the byte fragments of a split character into one piece, drawn once', () => {
    // The tokenizer really splits these characters (else the test proves nothing).
    expect(strings.some((s) => s.includes('\\x'))).toBe(true);
    const pieces = excerptPieces(strings);
    expect(pieces.map((p) => p.text).join('')).toBe(text);
    const fox = pieces.find((p) => p.text.includes('🦊'))!;
    expect(fox.tokens.length).toBeGreaterThan(1);
    expect(pieces.flatMap((p) => p.tokens)).toEqual(strings.map((_, i) => i));
    expect(pieces.map((p) => p.text).join('')).not.toMatch(/\\x/);
  });

  it('reads the released records’ lower-case escapes too, and leaves a literal backslash-x token alone', () => {
    expect(Array.from(escapedTextToBytes(' \\xf0\\x9f')!)).toEqual([0x20, 0xf0, 0x9f]);
    expect(excerptPieces([' \\xf0\\x9f', '\\xa6\\x8a', ' ok']).map((p) => p.text)).toEqual([' 🦊', ' ok']);
    expect(excerptPieces(['\\x41', '\\x42']).map((p) => p.text)).toEqual(['\\x41', '\\x42']);
    // A fragment with no continuation stays visible as escapes.
    expect(excerptPieces(['\\xe6', ' x']).map((p) => p.text)).toEqual(['\\xe6', ' x']);
  });

  it('groups a capture’s tokens by their character spans', () => {
    const pieces = textPieces(text, tokens);
    expect(pieces.map((p) => p.text).join('')).toBe(text);
    expect(pieces.find((p) => p.text.includes('🦊'))!.tokens.length).toBeGreaterThan(1);
  });
});

describe('excerpts centred on their peak', () => {
  const tokens = Array.from({ length: 64 }, (_, i) => ` t${i}`);
  const activations = tokens.map((_, i) => (i === 40 ? 5 : i === 50 ? 5 : 0.1));

  it('keeps context tokens either side of the first maximum and counts what it leaves out', () => {
    expect(peakIndex(activations)).toBe(40);
    const view = excerptView(tokens, activations, 6);
    expect(view.peak).toBe(40);
    expect(view.max).toBe(5);
    expect(view.pieces.map((p) => p.tokens[0])).toEqual([34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46]);
    expect(view.hiddenBefore).toBe(34);
    expect(view.hiddenAfter).toBe(64 - 47);
    expect(excerptView(tokens, activations, null).pieces).toHaveLength(64);
    // Near an end the window is cut by the excerpt, not shifted.
    const early = excerptView(tokens, tokens.map((_, i) => (i === 1 ? 3 : 0)), 6);
    expect(early.hiddenBefore).toBe(0);
    expect(early.pieces).toHaveLength(8);
  });

  it('does not centre on the max of an excerpt where the neuron stays silent', () => {
    const quiet = excerptView(tokens, tokens.map((_, i) => (i === 40 ? 0.02 : 0)), 6, 0.4);
    expect(quiet.centred).toBe(false);
    expect(quiet.pieces.map((p) => p.tokens[0])).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(quiet.hiddenAfter).toBe(64 - 13);
    const rows = excerptRows([{ tokens, activations: tokens.map((_, i) => (i === 40 ? 0.02 : 0)) }], 6, 4);
    expect(rows[0].mark).toBeUndefined();
  });

  it('never cuts a split character at the window’s edge', () => {
    const split = [' a', ' b', ' \\xf0\\x9f', '\\xa6\\x8a', ' c', ' d', ' e', ' f'];
    const view = excerptView(split, [0, 0, 0, 0, 0, 0, 9, 0], 3);
    // The window starts at token 3, inside the fox: the whole fox (tokens 2 and 3) is kept.
    expect(view.pieces[0]).toEqual({ text: ' 🦊', tokens: [2, 3] });
    expect(view.hiddenBefore).toBe(2);
  });
});

describe('figures', () => {
  const record: NeuronRecord = {
    neuron_id: { layer_index: 0, neuron_index: 37 },
    most_positive_activation_records: [
      { tokens: [' <b>', ' &', ' "q"', ' 12', '\u0001', '\n'], activations: [0, 0.5, 0, 4, 0, 0] },
      { tokens: [' x', ' 7'], activations: [0, 3.9] },
    ],
    random_sample: Array.from({ length: 10 }, (_, i) => ({ tokens: [' a', ' b'], activations: [i < 8 ? 0 : 4, -0.01] })),
    random_sample_by_quantile: null,
    quantile_boundaries: [null, 0, 0, 2, null],
    mean: 0.1,
    variance: 0.5,
    skewness: 3,
    kurtosis: 12,
  };

  it('writes a heatmap as SVG with every token, escaped, and colours from white to the palette', () => {
    const rows = excerptRows(record.most_positive_activation_records, null, 4);
    expect(rows[0].label).toBe('max 4.00');
    expect(rows[0].mark).toBe(3);
    const figure = heatmapFigure(rows, { title: 'Neuron 0:37 <top>', display: 'numbers' });
    const svg = figureToSvg(figure);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).toContain('<title>Neuron 0:37 &lt;top&gt;</title>');
    expect(svg).toContain('&lt;b&gt;');
    expect(svg).toContain('&amp;');
    expect(svg).toContain('&quot;q&quot;');
    expect(svg).not.toMatch(/[\u0000-\u0008]/);
    // Numbers mode writes each value under its token.
    expect(figure.shapes.some((s) => s.kind === 'text' && s.text === '4.00')).toBe(true);
    expect(heatColour(0)).toBe('rgb(255, 255, 255)');
    expect(heatColour(1)).toBe('rgb(255, 136, 0)');
    expect(heatColour(1, 'simulated')).toBe('rgb(0, 178, 202)');
    // Every excerpt's text is in the figure, wrapped within its width.
    for (const s of figure.shapes) if (s.kind === 'rect') expect(s.x + s.width).toBeLessThanOrEqual(figure.width);
  });

  it('puts real and simulated activations of an excerpt on rows of the same window', () => {
    const rows = comparisonRows([{ tokens: [' a', ' 1', ' b'], real: [0, 4, 0], simulated: [0, 9.5, null], note: 'r 1.00' }], null, 4);
    expect(rows.map((r) => [r.label, r.palette, r.max])).toEqual([
      ['real 4.00', 'real', 4],
      ['simulated r 1.00', 'simulated', 10],
    ]);
    expect(rows[1].pieces).toEqual(rows[0].pieces);
  });

  it('histograms the random excerpts’ maxima with the quantile boundaries, open ends resolved', () => {
    expect(histogram([0, 1, 2, 2, 4], 0, 4, 4).counts).toEqual([1, 1, 2, 1]);
    const h = recordHistogram(record, 8);
    expect(h.excerpts).toBe(10);
    expect(h.counts.reduce((a, b) => a + b, 0)).toBe(10);
    expect(h.counts[0]).toBe(8);
    expect(h.boundaries).toEqual([0, 0, 0, 2, 4]);
    const figure = histogramFigure(h, { title: 'Neuron 0:37' });
    expect(figure.description).toMatch(/maximum activation of each of the 10 excerpts/);
    expect(figure.shapes.filter((s) => s.kind === 'line' && s.dashed)).toHaveLength(3);
    expect(figureToSvg(figure)).toContain('stroke-dasharray');
  });

  it('counts wide characters as two columns and strips characters XML forbids', () => {
    expect(textColumns('ab日🦊')).toBe(6);
    expect(xmlText('a\u0000b\uFFFEc<')).toBe('a\uFFFDb\uFFFDc&lt;');
  });

  it('states how often the neuron fires in the random sample', () => {
    const stats = recordStatistics(record);
    expect(stats.max).toBe(4);
    expect(stats.sample).toEqual({ excerpts: 10, tokens: 20, threshold: 0.4, firing: 2, positive: 2 });
  });
});

describe('reasons for undefined scores', () => {
  it('names the cause in words', () => {
    const real = [0, 4, 0];
    expect(correlationUndefinedReason([])).toBe('no excerpts were scored');
    expect(correlationUndefinedReason([{ trueActivations: real, expected: [null, null, null] }])).toMatch(/^the simulator returned no values: check the endpoint's answers/);
    expect(correlationUndefinedReason([{ trueActivations: real, expected: [0, 0, 0] }])).toMatch(/^the simulation is 0\.00 on every token.*predicted nothing/);
    expect(correlationUndefinedReason([{ trueActivations: [0, 0, 0], expected: [0, 5, 0] }])).toMatch(/^the neuron's activation is 0\.00 on every scored token/);
    expect(correlationUndefinedReason([{ trueActivations: [0, 0, 0], expected: [0.24, 0.24, 0.24] }])).toMatch(/^neither the neuron \(0\.00 on every scored token\) nor the simulation \(0\.24 throughout\) varies/);
    expect(correlationUndefinedReason([{ trueActivations: real, expected: [0, 9, 1] }])).toBeNull();
    expect(correlationUndefinedReason([{ trueActivations: real, expected: [null, 9, null] }])).toMatch(/only 1 of 3 tokens/);
    expect(coverageNote(0.5)).toMatch(/50% of the tokens/);
    expect(coverageNote(1)).toBeNull();
  });

  it('says why an ablation score is missing', () => {
    expect(ablationUndefinedReason(undefined)).toMatch(/^not computed yet/);
    expect(ablationUndefinedReason(null)).toMatch(/^could not be computed/);
    const base = { calibration: { slope: 1, intercept: 0, count: 3 }, mean_activation: 0, max_activation_difference: null };
    expect(ablationUndefinedReason({ ...base, score: null, excerpts: [{ key: 'top0', jsd_substituted: null, jsd_mean_ablated: null, score: null, skipped: 'the token "x" does not name exactly one token id of this model' }] })).toMatch(/^every excerpt was skipped: the token/);
    expect(ablationUndefinedReason({ ...base, score: null, excerpts: [{ key: 'top0', jsd_substituted: 0, jsd_mean_ablated: 0, score: null }] })).toMatch(/changes none of the model's predictions/);
    expect(ablationUndefinedReason({ ...base, score: 0.5, excerpts: [] })).toBeNull();
  });
});
