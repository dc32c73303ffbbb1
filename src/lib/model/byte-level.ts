/**
 * Byte-level helpers for GPT-2's BPE: the byte ↔ printable-character alphabet that vocabulary
 * strings are written in, UTF-8 encoding that remembers which input characters each byte came
 * from, and a UTF-8 decoder that shows invalid bytes as `\xNN` instead of U+FFFD.
 */

/**
 * GPT-2 writes every byte as one printable character so vocabulary entries are readable text:
 * printable Latin-1 bytes stand for themselves, the other 68 bytes (controls, space, NBSP, soft
 * hyphen…) are moved in order to U+0100 onwards (space becomes "Ġ", newline "Ċ").
 */
function buildByteToChar(): string[] {
  const isPrintable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table: string[] = new Array<string>(256);
  let next = 0x100;
  for (let b = 0; b < 256; b++) {
    table[b] = String.fromCharCode(isPrintable(b) ? b : next++);
  }
  return table;
}

/** byteToChar[b] is the vocabulary character that stands for byte b. */
export const byteToChar: readonly string[] = buildByteToChar();

/** Inverse of byteToChar: vocabulary character → byte. */
export const charToByte: ReadonlyMap<string, number> = new Map(byteToChar.map((ch, b) => [ch, b]));

/**
 * Turns a vocabulary string (byte-level alphabet) back into its bytes, or returns null when it
 * contains a character outside the alphabet (so it is not a byte-level token).
 */
export function vocabStringToBytes(s: string): Uint8Array | null {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const b = charToByte.get(s[i]);
    if (b === undefined) return null;
    out[i] = b;
  }
  return out;
}

/** Writes bytes in the byte-level alphabet (the form vocabulary entries and merges use). */
export function bytesToVocabString(bytes: ArrayLike<number>): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += byteToChar[bytes[i]];
  return s;
}

/** UTF-8 bytes of a string plus, for every byte, the UTF-16 span of the character it encodes. */
export interface Utf8WithOffsets {
  bytes: Uint8Array;
  /** charStart[i]: code-unit index (in the encoded string) where byte i's character begins. */
  charStart: Uint32Array;
  /** charEnd[i]: code-unit index just after byte i's character. */
  charEnd: Uint32Array;
  /** isCharFirst[i] = 1 when byte i is the first byte of its character. */
  isCharFirst: Uint8Array;
  /** isCharLast[i] = 1 when byte i is the last byte of its character. */
  isCharLast: Uint8Array;
  /** byteOffset[u]: byte index where code unit u's character starts; byteOffset[length] = bytes.length. */
  byteOffset: Uint32Array;
  /** True when the string held an unpaired surrogate (encoded as U+FFFD, so bytes ≠ string). */
  hasLoneSurrogate: boolean;
}

/**
 * UTF-8 encodes `s`, recording the character span of every byte. A lone surrogate becomes
 * EF BF BD (U+FFFD), exactly as TextEncoder does, so ids match encoders built on TextEncoder.
 */
export function utf8EncodeWithOffsets(s: string): Utf8WithOffsets {
  const n = s.length;
  // At most 3 bytes per UTF-16 code unit (a surrogate pair is 2 units → 4 bytes).
  const bytes = new Uint8Array(n * 3);
  const charStart = new Uint32Array(n * 3);
  const charEnd = new Uint32Array(n * 3);
  const isCharFirst = new Uint8Array(n * 3);
  const isCharLast = new Uint8Array(n * 3);
  const byteOffset = new Uint32Array(n + 1);
  let hasLoneSurrogate = false;
  let len = 0;
  let i = 0;
  while (i < n) {
    let cp = s.charCodeAt(i);
    let units = 1;
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < n) {
      const lo = s.charCodeAt(i + 1);
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        units = 2;
      }
    }
    if (units === 1 && cp >= 0xd800 && cp <= 0xdfff) {
      cp = 0xfffd;
      hasLoneSurrogate = true;
    }
    const first = len;
    byteOffset[i] = len;
    if (units === 2) byteOffset[i + 1] = len; // never a match boundary, but keep it defined
    if (cp < 0x80) {
      bytes[len++] = cp;
    } else if (cp < 0x800) {
      bytes[len++] = 0xc0 | (cp >> 6);
      bytes[len++] = 0x80 | (cp & 0x3f);
    } else if (cp < 0x10000) {
      bytes[len++] = 0xe0 | (cp >> 12);
      bytes[len++] = 0x80 | ((cp >> 6) & 0x3f);
      bytes[len++] = 0x80 | (cp & 0x3f);
    } else {
      bytes[len++] = 0xf0 | (cp >> 18);
      bytes[len++] = 0x80 | ((cp >> 12) & 0x3f);
      bytes[len++] = 0x80 | ((cp >> 6) & 0x3f);
      bytes[len++] = 0x80 | (cp & 0x3f);
    }
    for (let k = first; k < len; k++) {
      charStart[k] = i;
      charEnd[k] = i + units;
    }
    isCharFirst[first] = 1;
    isCharLast[len - 1] = 1;
    i += units;
  }
  byteOffset[n] = len;
  return {
    bytes: bytes.subarray(0, len),
    charStart: charStart.subarray(0, len),
    charEnd: charEnd.subarray(0, len),
    isCharFirst: isCharFirst.subarray(0, len),
    isCharLast: isCharLast.subarray(0, len),
    byteOffset,
    hasLoneSurrogate,
  };
}

/**
 * Length of the well-formed UTF-8 sequence starting at bytes[i], or 0 when the bytes there are
 * not one (bad lead byte, missing/bad continuation, overlong form, surrogate, > U+10FFFF).
 */
function validSequenceLength(bytes: ArrayLike<number>, i: number): number {
  const b0 = bytes[i];
  if (b0 < 0x80) return 1;
  let need: number;
  let lo = 0x80;
  let hi = 0xbf; // allowed range of the second byte
  if (b0 >= 0xc2 && b0 <= 0xdf) need = 1;
  else if (b0 >= 0xe0 && b0 <= 0xef) {
    need = 2;
    if (b0 === 0xe0) lo = 0xa0; // no overlong 3-byte forms
    if (b0 === 0xed) hi = 0x9f; // no UTF-16 surrogates
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    need = 3;
    if (b0 === 0xf0) lo = 0x90; // no overlong 4-byte forms
    if (b0 === 0xf4) hi = 0x8f; // nothing above U+10FFFF
  } else return 0;
  if (i + need >= bytes.length) return 0;
  const b1 = bytes[i + 1];
  if (b1 < lo || b1 > hi) return 0;
  for (let k = 2; k <= need; k++) {
    const b = bytes[i + k];
    if (b < 0x80 || b > 0xbf) return 0;
  }
  return need + 1;
}

// ignoreBOM keeps a leading U+FEFF: by default TextDecoder would silently drop it.
const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true });

/**
 * Decodes UTF-8, writing every byte that is not part of a well-formed character as `\xNN`
 * (upper-case hex). Used for display strings of single tokens, where a lone fragment of a
 * multi-byte character would otherwise collapse into an uninformative U+FFFD.
 */
export function decodeUtf8WithEscapes(bytes: Uint8Array): string {
  let out = '';
  let runStart = 0; // start of the current run of valid bytes, decoded in one go
  let i = 0;
  while (i < bytes.length) {
    const len = validSequenceLength(bytes, i);
    if (len > 0) {
      i += len;
      continue;
    }
    if (runStart < i) out += utf8Decoder.decode(bytes.subarray(runStart, i));
    out += '\\x' + bytes[i].toString(16).toUpperCase().padStart(2, '0');
    i += 1;
    runStart = i;
  }
  if (runStart < bytes.length) out += utf8Decoder.decode(bytes.subarray(runStart));
  return out;
}

/** Plain UTF-8 decoding (invalid bytes become U+FFFD), as for whole sequences of tokens. */
export function decodeUtf8(bytes: Uint8Array): string {
  return utf8Decoder.decode(bytes);
}

const ESCAPED_BYTE = /\\x([0-9A-Fa-f]{2})/g;
const utf8Encoder = new TextEncoder();

/**
 * The bytes a `decodeUtf8WithEscapes` string stands for: `\xNN` (either case, as the released
 * records write it too) is that byte, everything else its UTF-8. Null when the text holds no
 * escape, so the caller knows it is whole characters.
 */
export function escapedTextToBytes(text: string): Uint8Array | null {
  if (!text.includes('\\x')) return null;
  const parts: number[] = [];
  let at = 0;
  let escaped = false;
  for (const match of text.matchAll(ESCAPED_BYTE)) {
    parts.push(...utf8Encoder.encode(text.slice(at, match.index)));
    parts.push(parseInt(match[1], 16));
    at = match.index + match[0].length;
    escaped = true;
  }
  if (!escaped) return null;
  parts.push(...utf8Encoder.encode(text.slice(at)));
  return Uint8Array.from(parts);
}

const strictUtf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The text of bytes that are whole, well-formed UTF-8; null otherwise. */
export function decodeWholeUtf8(bytes: Uint8Array): string | null {
  try {
    return strictUtf8Decoder.decode(bytes);
  } catch {
    return null;
  }
}
