/**
 * Corpus preparation for the neuron scan: reading a corpus file into documents and cutting the
 * tokenised documents into fixed-length excerpts.
 *
 * Decisions:
 * - Each document is tokenised on its own and cut into consecutive, non-overlapping excerpts of
 *   `length` tokens (64, as in Bills et al. 2023). Each excerpt is later run as its own sequence,
 *   so a record's activations can be reproduced from its tokens alone.
 * - A document's final piece shorter than `length` is kept when it has at least `minLength`
 *   tokens (default 16) and dropped otherwise: short documents (tweets, single paragraphs) still
 *   contribute, while tiny tails that carry almost no context do not. Excerpts may therefore be
 *   shorter than `length`; the scan batches only excerpts of equal length together.
 * - A `.txt` file is one document (excerpts are consecutive tokens anyway, and a blank-line
 *   convention would chop prose into paragraphs too short to keep).
 * - A `.jsonl` file has one JSON object per line with a string `text` field; blank lines are
 *   skipped, and so are documents whose text is only whitespace. Other fields are ignored.
 */

import { SCAN_DEFAULTS } from './scan-defaults.ts';

export const DEFAULT_EXCERPT_LENGTH: number = SCAN_DEFAULTS.excerptLength;
export const DEFAULT_MIN_EXCERPT_LENGTH: number = SCAN_DEFAULTS.minExcerptLength;

/** A corpus file that cannot be read as documents. */
export class CorpusFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CorpusFormatError';
  }
}

export interface CorpusDocument {
  text: string;
  /** Where the document came from, for messages: "corpus.jsonl line 3" or "notes.txt". */
  source: string;
}

/** The little the corpus needs from a tokenizer; `text` is the token's display string. */
export interface CorpusTokenizer {
  encode(text: string): { id: number; text: string }[];
}

export interface CorpusExcerpt {
  tokenIds: number[];
  /** Display strings of the tokens (what a NeuronRecord shows). */
  tokens: string[];
  /** Index of the document it was cut from. */
  documentIndex: number;
}

export interface ExcerptOptions {
  /** Tokens per excerpt (default 64). */
  length?: number;
  /** A document's shorter final piece is kept when it has at least this many tokens (default 16, at most `length`). */
  minLength?: number;
  /** Stop after this many excerpts (default: all). */
  maxExcerpts?: number;
}

function checkLengths(length: number, minLength: number): void {
  if (!Number.isInteger(length) || length < 1) {
    throw new RangeError(`excerpt length must be a positive integer, got ${length}`);
  }
  if (!Number.isInteger(minLength) || minLength < 1 || minLength > length) {
    throw new RangeError(`minimum excerpt length must be an integer from 1 to ${length}, got ${minLength}`);
  }
}

function splitIntoPieces<T>(items: readonly T[], length: number, minLength: number): T[][] {
  const pieces: T[][] = [];
  for (let start = 0; start < items.length; start += length) {
    const piece = items.slice(start, start + length);
    if (piece.length === length || piece.length >= minLength) pieces.push(piece);
  }
  return pieces;
}

/**
 * Cuts one document's token ids into consecutive excerpts of `length` tokens; a final shorter
 * piece is kept only if it has at least `minLength` tokens.
 */
export function splitIntoExcerpts(
  tokenIds: readonly number[],
  length = DEFAULT_EXCERPT_LENGTH,
  minLength = Math.min(DEFAULT_MIN_EXCERPT_LENGTH, length),
): number[][] {
  checkLengths(length, minLength);
  return splitIntoPieces(tokenIds, length, minLength);
}

function normaliseNewlines(content: string): string {
  return content.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n');
}

function describeJsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function parseJsonl(name: string, content: string): CorpusDocument[] {
  const documents: CorpusDocument[] = [];
  const lines = content.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === '') continue;
    const where = `${name} line ${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw new CorpusFormatError(`${where}: not valid JSON (${(error as Error).message})`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new CorpusFormatError(`${where}: expected a JSON object with a "text" field, got ${describeJsonType(value)}`);
    }
    if (!('text' in value)) throw new CorpusFormatError(`${where}: no "text" field`);
    const text = (value as { text: unknown }).text;
    if (typeof text !== 'string') {
      throw new CorpusFormatError(`${where}: "text" must be a string, got ${describeJsonType(text)}`);
    }
    if (text.trim() !== '') documents.push({ text, source: where });
  }
  return documents;
}

/**
 * Reads a corpus file: `.txt` (the whole file is one document) or `.jsonl` (one
 * `{"text": ...}` object per line). `name` is the file name, used for the format and in messages.
 */
export function parseCorpusFile(name: string, content: string): CorpusDocument[] {
  const extension = /\.([^./\\]+)$/.exec(name)?.[1]?.toLowerCase();
  const text = normaliseNewlines(content);
  let documents: CorpusDocument[];
  if (extension === 'txt') {
    documents = text.trim() === '' ? [] : [{ text, source: name }];
  } else if (extension === 'jsonl') {
    documents = parseJsonl(name, text);
  } else {
    throw new CorpusFormatError(`unsupported corpus file "${name}": expected a .txt or .jsonl file`);
  }
  if (documents.length === 0) throw new CorpusFormatError(`${name} contains no text`);
  return documents;
}

/** Tokenises each document separately and cuts it into excerpts (see the module comment). */
export function buildExcerpts(
  documents: readonly CorpusDocument[],
  tokenizer: CorpusTokenizer,
  options: ExcerptOptions = {},
): CorpusExcerpt[] {
  const length = options.length ?? DEFAULT_EXCERPT_LENGTH;
  const minLength = options.minLength ?? Math.min(DEFAULT_MIN_EXCERPT_LENGTH, length);
  checkLengths(length, minLength);
  const maxExcerpts = options.maxExcerpts ?? Infinity;
  if (!(maxExcerpts >= 0)) throw new RangeError(`maxExcerpts must be a non-negative number, got ${maxExcerpts}`);
  const excerpts: CorpusExcerpt[] = [];
  for (let d = 0; d < documents.length && excerpts.length < maxExcerpts; d++) {
    const tokens = tokenizer.encode(documents[d].text);
    for (const piece of splitIntoPieces(tokens, length, minLength)) {
      if (excerpts.length >= maxExcerpts) break;
      excerpts.push({ tokenIds: piece.map((t) => t.id), tokens: piece.map((t) => t.text), documentIndex: d });
    }
  }
  return excerpts;
}
