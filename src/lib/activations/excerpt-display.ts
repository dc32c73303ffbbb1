/**
 * How a record's excerpts are laid out for reading, on screen and in exported figures alike:
 *
 * - Records keep token strings only. A token holding part of a multi-byte character (an emoji, a
 *   CJK character) is written with `\xNN` escapes for the bytes that are not whole characters, as
 *   the released records and our scans both do. Consecutive tokens whose bytes together make whole
 *   characters are shown as one piece: the characters once, each token a part of it.
 * - An excerpt is centred on its peak: a window of `context` tokens either side of its (first)
 *   maximum, widened so as not to cut a piece, with what was left out counted so it can be shown
 *   as an ellipsis.
 */
import { decodeWholeUtf8, escapedTextToBytes } from '../model/byte-level.ts';
import { groupTokensForDisplay, visibleWhitespace, type TokenSpan } from '../model/token-display.ts';

export interface ExcerptPiece {
  /** What to draw: the token's string, or the characters a run of byte fragments makes. */
  text: string;
  /** Indices of the excerpt's tokens the piece holds, in order (one for an ordinary token). */
  tokens: number[];
}

/** Longest run of tokens searched for the end of a character (UTF-8 has at most 4 bytes). */
const MAX_FRAGMENT_RUN = 4;

/** The excerpt's tokens as pieces to draw (see the file comment). */
export function excerptPieces(tokens: readonly string[]): ExcerptPiece[] {
  const pieces: ExcerptPiece[] = [];
  for (let i = 0; i < tokens.length; ) {
    const first = escapedTextToBytes(tokens[i]);
    let joined: ExcerptPiece | null = null;
    // Only a token that ends inside a character starts a run (a token whose text is a literal
    // backslash-x sequence decodes whole on its own and stays as it is).
    if (first && decodeWholeUtf8(first) === null) {
      let bytes = first;
      for (let j = i + 1; j < Math.min(tokens.length, i + MAX_FRAGMENT_RUN); j++) {
        const next = escapedTextToBytes(tokens[j]);
        if (!next) break;
        bytes = concat(bytes, next);
        const text = decodeWholeUtf8(bytes);
        if (text !== null) {
          joined = { text, tokens: range(i, j + 1) };
          break;
        }
      }
    }
    const piece = joined ?? { text: tokens[i], tokens: [i] };
    pieces.push(piece);
    i += piece.tokens.length;
  }
  return pieces;
}

/** Pieces of a tokenised text (tokens with character spans, e.g. a capture): a split character drawn once. */
export function textPieces(text: string, tokens: readonly TokenSpan[]): ExcerptPiece[] {
  return groupTokensForDisplay(tokens).map((g) => ({ text: text.slice(g.start, g.end), tokens: g.tokens }));
}

/** A piece's text on one line: whitespace made visible, no line breaks. */
export function inlineText(text: string): string {
  return visibleWhitespace(text).replace(/\n/g, '');
}

/** Index of the first maximum (0 for an empty list). */
export function peakIndex(activations: readonly number[]): number {
  let peak = 0;
  for (let t = 1; t < activations.length; t++) if (activations[t] > activations[peak]) peak = t;
  return peak;
}

export interface ExcerptView {
  /** The pieces in the window, in order. */
  pieces: ExcerptPiece[];
  /** Token index of the peak, and its activation (the excerpt's max). */
  peak: number;
  max: number;
  /** Whether the window is centred on the peak (false: the excerpt does not reach `minPeak`, so it starts at its beginning). */
  centred: boolean;
  /** Tokens left out before and after the window. */
  hiddenBefore: number;
  hiddenAfter: number;
}

/**
 * The excerpt centred on the peak of `activations`: `context` tokens either side (null: all of
 * it). An excerpt whose max stays below `minPeak` has no peak worth centring on (the neuron does
 * not fire in it): its window starts at its beginning. `tokens` and `activations` are equally long.
 */
export function excerptView(tokens: readonly string[], activations: readonly number[], context: number | null, minPeak = -Infinity): ExcerptView {
  const all = excerptPieces(tokens);
  const peak = peakIndex(activations);
  const max = activations.length ? activations[peak] : 0;
  const centred = max >= minPeak;
  if (context === null || tokens.length <= 2 * context + 1) {
    return { pieces: all, peak, max, centred, hiddenBefore: 0, hiddenAfter: 0 };
  }
  const from = centred ? Math.max(0, peak - context) : 0;
  const to = centred ? Math.min(tokens.length, peak + context + 1) : 2 * context + 1;
  const pieces = all.filter((p) => p.tokens[p.tokens.length - 1] >= from && p.tokens[0] < to);
  const shownFrom = pieces[0].tokens[0];
  const last = pieces[pieces.length - 1].tokens;
  const shownTo = last[last.length - 1] + 1;
  return { pieces, peak, max, centred, hiddenBefore: shownFrom, hiddenAfter: tokens.length - shownTo };
}

/** `value` as a fraction of `max`, clamped to 0…1 (negative activations draw as none). */
export function activationStrength(value: number | null | undefined, max: number): number {
  if (value === null || value === undefined || !Number.isFinite(value) || !(max > 0)) return 0;
  return Math.max(0, Math.min(1, value / max));
}

/** An activation as shown beside a token: 2 decimals, or none for large values. */
export function formatActivation(value: number | null | undefined): string {
  if (value === null || value === undefined || Number.isNaN(value)) return '—';
  const text = Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(2);
  // No "-0.00" for a value that rounds to zero.
  return /^-0(\.0+)?$/.test(text) ? text.slice(1) : text;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);
