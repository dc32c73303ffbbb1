/**
 * Parity of our GPT-2 tokenizer (src/lib/model/tokenizer.ts, kept for the character offsets and
 * fragment marks no library gives) with Hugging Face's `@huggingface/tokenizers` (the tokenizer of
 * transformers.js), both reading the same GPT-2 tokenizer.json that scripts/gen-models.ts writes:
 * identical ids on the whole bundled corpus and on a seeded Unicode fuzz set.
 *
 * Intended differences, each checked below:
 *  1. `<|endoftext|>` (and any added token) in the text. Hugging Face always turns a literal
 *     occurrence into its single id. Ours does so only with `{ allowSpecial: true }`; by default it
 *     is plain text ("<", "|", "end", …), like OpenAI's original encoder, so that a corpus or a
 *     user's text that merely mentions the marker is not read as an end-of-text by the model.
 *     The parity runs therefore use `allowSpecial: true` on our side.
 *  2. U+FEFF and U+0085 next to some characters. The library's ByteLevel pre-tokenizer hard-codes
 *     GPT-2's pattern with JavaScript's `\s`, which counts U+FEFF as white space and U+0085 not
 *     (its own regex translator says so: "JS \s wrongly adds U+FEFF and misses \x85"). Hugging
 *     Face's reference, the Rust `tokenizers` (Oniguruma), and OpenAI's encoder read `\s` as
 *     Unicode White_Space, the other way round, and so do we: "\uFEFF's" is "\uFEFF'" + "s" for
 *     them and us, "\uFEFF" + "'s" for the JS library. Texts without those two characters are
 *     compared with the library as published; every text is also compared with the library whose
 *     pattern reads `\s` as White_Space (derived from its own pattern below).
 *  Hugging Face's `add_special_tokens` adds nothing for GPT-2 (its ByteLevel post-processor adds no
 *  BOS/EOS), and ours never adds any, so it is no difference; both sides are called without.
 */
import { readFileSync } from 'node:fs';
import { Tokenizer } from '@huggingface/tokenizers';
import { describe, expect, it } from 'vitest';
import { createSeededRandom } from '../src/lib/activations/seeded-random.ts';
import { Gpt2Tokenizer } from '../src/lib/model/tokenizer.ts';

const root = new URL('../', import.meta.url);
const read = (path: string) => {
  try {
    return readFileSync(new URL(path, root), 'utf8');
  } catch {
    throw new Error(`${path} is missing: run \`npm run assets\` first`);
  }
};
const tokenizerJson = JSON.parse(read('public/models/toy-planted/tokenizer.json'));
const tokenizerConfig = JSON.parse(read('public/models/toy-planted/tokenizer_config.json'));
const huggingFace = new Tokenizer(tokenizerJson, tokenizerConfig);
const ours = new Gpt2Tokenizer(tokenizerJson, tokenizerConfig);
const EOT = '<|endoftext|>';
const EOT_ID = 50256;

/** The library with `\s` read as Unicode White_Space in its ByteLevel pattern (difference 2). */
const huggingFaceWhiteSpace = new Tokenizer(tokenizerJson, tokenizerConfig);
const byteLevel = huggingFaceWhiteSpace.pre_tokenizer as unknown as { pattern: RegExp };
if (!byteLevel.pattern?.source.includes('\\s')) throw new Error('@huggingface/tokenizers: the ByteLevel pattern moved; update this test');
byteLevel.pattern = new RegExp(byteLevel.pattern.source.replaceAll('\\s', '\\p{White_Space}').replaceAll('\\S', '\\P{White_Space}'), 'gu');

const theirIds = (text: string, library = huggingFace) => library.encode(text, { add_special_tokens: false }).ids;
const ourIds = (text: string) => ours.encodeIds(text, { allowSpecial: true });
const JS_WHITE_SPACE_DISAGREES = /[\uFEFF\u0085]/;

/** The texts whose ids differ, each with the first differing position (empty when all agree). */
function mismatches(texts: readonly string[], library = huggingFace) {
  const found: { text: string; at: number; theirs: number[]; ours: number[] }[] = [];
  for (const text of texts) {
    const theirs = theirIds(text, library);
    const mine = ourIds(text);
    if (theirs.length === mine.length && theirs.every((id, i) => id === mine[i])) continue;
    let at = 0;
    while (theirs[at] === mine[at]) at++;
    found.push({ text: text.slice(0, 200), at, theirs: theirs.slice(at, at + 8), ours: mine.slice(at, at + 8) });
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// A seeded fuzz set: random sequences of pieces that stress pre-tokenisation and UTF-8 handling.

const PIECES: readonly string[] = [
  // emoji: ZWJ sequences, skin-tone modifiers, flags, keycaps, variation selectors
  '👨‍👩‍👧‍👦', '🏳️‍🌈', '👩🏽‍💻', '🧑🏿‍🤝‍🧑🏻', '👍🏽', '👋🏻', '🇯🇵', '🇺🇦', '1️⃣', '❤️', '🦊', '🙂',
  // combining marks (decomposed accents, stacked marks, Devanagari, Thai, Zalgo-like)
  'e\u0301', 'a\u0308\u0323', 'Ångstro\u0308m', 'n\u0303o', 'क्षि', 'ภาษาไทย', 'Z\u0351\u0348\u0316a\u0310l\u0357g\u035ao',
  // CJK and Hangul, full-width forms
  '漢字', '日本語のテキスト', '中文，标点。', '한국어 문장', 'ＡＢＣ１２３', '𠜎𠜱', // (astral CJK)
  // right-to-left: Arabic (with harakat), Hebrew (with niqqud), bidi controls
  'مرحبا بالعالم', 'اَلْعَرَبِيَّةُ', 'שָׁלוֹם עולם', '\u202Eevil\u202C', '\u200F', '\u200E',
  // Unicode whitespace and format characters that regex engines disagree on
  '\u0085', '\uFEFF', '\u2028', '\u2029', '\u00A0', '\u3000', '\u200B', '\u1680', '\u202F', '\u180E',
  // lone surrogates (UTF-8 encoding turns them into U+FFFD)
  '\uD800', '\uDBFF', '\uDC00', '\uDFFF',
  // the special token, and near misses
  EOT, '<|endoftext|', '<|endoftext|><|endoftext|>', '<|im_start|>',
  // whitespace runs, CRLF, tabs
  ' ', '  ', '   ', '\n', '\n\n', '\n\n\n', '\t', '\t\t', '\r\n', '\r\n\r\n', '\r', ' \n ', '\f', '\v', ' \t\n',
  // digits and numbers
  '0', '7', '42', '123', '1234', '12345678901234567890', '3.14159', '-1e10', '٣٤٥', '１２３',
  // contractions, in both cases and with other apostrophes
  "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "’s", "don't", "I'M", "we've", "''",
  // ASCII words, punctuation and code
  'the', ' the', 'The', ' quick', ' brown', 'fox', 'Hello', ',', '.', '...', '!?', '--', '();', '{}', '=>',
  '<div class="x">', 'x += 1', '#include', '@user', 'https://example.com/a?b=c', '\\n', '"', '“quoted”',
];

/** Random code points from blocks the pieces don't cover, astral planes included. */
const BLOCKS: readonly [number, number][] = [
  [0x20, 0x7e], [0xa0, 0x24f], [0x370, 0x52f], [0x590, 0x6ff], [0x900, 0xdff], [0x1100, 0x11ff],
  [0x2000, 0x2bff], [0x3000, 0x30ff], [0x4e00, 0x9fff], [0xac00, 0xd7a3], [0xe000, 0xe0ff], [0xfe00, 0xffff],
  [0x10000, 0x1034f], [0x1d400, 0x1d7ff], [0x1f300, 0x1faff], [0x20000, 0x2a6df], [0xe0000, 0xe007f],
];

function fuzzTexts(seed: number, count: number): string[] {
  const random = createSeededRandom(seed);
  const pick = <T,>(items: readonly T[]) => items[Math.floor(random() * items.length)];
  const texts: string[] = [];
  for (let i = 0; i < count; i++) {
    let text = '';
    const parts = 1 + Math.floor(random() * 14);
    for (let p = 0; p < parts; p++) {
      if (random() < 0.8) text += pick(PIECES);
      else {
        const [lo, hi] = pick(BLOCKS);
        text += String.fromCodePoint(lo + Math.floor(random() * (hi - lo + 1)));
      }
    }
    texts.push(text);
  }
  return texts;
}

describe('tokenizer parity with @huggingface/tokenizers (GPT-2 tokenizer.json)', () => {
  it('gives identical ids on the whole default corpus (more than a million characters)', () => {
    const texts = read('public/corpus/default.jsonl')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => (JSON.parse(line) as { text: string }).text);
    const characters = texts.reduce((sum, text) => sum + text.length, 0);
    expect(characters).toBeGreaterThan(1_000_000);
    expect(mismatches(texts)).toEqual([]);
  });

  it('gives identical ids on a seeded Unicode fuzz set, piece by piece and joined', () => {
    const texts = fuzzTexts(20261203, 4000);
    // The set really holds what it is meant to stress.
    const all = texts.join('');
    for (const needle of ['\u200D', '\u{1F3FD}', '\u0301', '漢', 'م', 'ש', '\u0085', '\uFEFF', '\u2028', '\r\n', EOT, "'ll"]) {
      expect(all, JSON.stringify(needle)).toContain(needle);
    }
    expect(texts.some((t) => /[\uD800-\uDBFF](?![\uDC00-\uDFFF])/.test(t))).toBe(true);

    const plain = [...PIECES, ...texts].filter((t) => !JS_WHITE_SPACE_DISAGREES.test(t));
    expect(plain.length).toBeGreaterThan(2000);
    expect(mismatches(plain)).toEqual([]);
    expect(mismatches([...PIECES, ...texts], huggingFaceWhiteSpace)).toEqual([]);
    // Joined, so whitespace runs and words cross the pieces' boundaries too.
    expect(mismatches([plain.join('')])).toEqual([]);
    expect(mismatches([all], huggingFaceWhiteSpace)).toEqual([]);
  });

  it('differs, as intended, from the JS library on U+FEFF and U+0085 (see the file comment)', () => {
    for (const text of ["\uFEFF's", "x\uFEFF'll", "x\u0085'll"]) {
      expect(ourIds(text)).toEqual(theirIds(text, huggingFaceWhiteSpace));
      expect(ourIds(text)).not.toEqual(theirIds(text));
    }
    expect(ours.encode("\uFEFF's").map((t) => t.text)).toEqual(['\uFEFF', '\uFEFF', '\uFEFF', "'", 's']); // 3 byte fragments, then "'"
    expect(huggingFace.tokenize("\uFEFF's")).toEqual(['ï', '»', '¿', "'s"]);
  });

  it('differs, as intended, on literal special tokens in the default mode (see the file comment)', () => {
    const text = `a${EOT}b <|endoftext|>\n`;
    expect(theirIds(text)).toEqual(ourIds(text));
    expect(theirIds(text).filter((id) => id === EOT_ID)).toHaveLength(2);
    const plain = ours.encodeIds(text);
    expect(plain).not.toContain(EOT_ID);
    expect(ours.decode(plain)).toBe(text);
    // Outside the marker, the default mode is the same tokenisation.
    expect(ours.encodeIds('a b\n')).toEqual(theirIds('a b\n'));
  });
});
