/**
 * Lossless entropy coding of float16 bit patterns, to store a record's activations in fewer than
 * 2 bytes each.
 *
 * Why: a neuron's activations cluster in a few binades (GELU outputs are mostly small negative
 * numbers), so the 6 sign-and-exponent bits carry about 3 bits of information, while the 10
 * mantissa bits are close to uniform. Each value is written as a Huffman code of its sign and
 * exponent (built per stream from its own counts) followed by its 10 mantissa bits as they are.
 * On GELU outputs that saves about a fifth; on other data it may save nothing, and the caller
 * keeps the raw Uint16Array then.
 *
 * Stream layout (bytes):
 *   0      format tag (1)
 *   1–4    number of values, uint32 little-endian
 *   5–36   code length of each of the 64 sign-and-exponent symbols, 4 bits each (symbol 2i in
 *          the low nibble of byte 5+i), 0 for symbols that do not occur; at most MAX_CODE_LENGTH
 *   37–    the values: code, then mantissa, bits packed least significant first (as in deflate)
 *
 * Codes are canonical (ordered by length, then symbol), so the lengths define them.
 */
import { StoreCodecError } from './compact-activations.ts';

const FORMAT_TAG = 1;
const SYMBOLS = 64;
const MANTISSA_BITS = 10;
/** Longest code; it also sets the decoder's lookup table size (2^12 entries). */
const MAX_CODE_LENGTH = 12;
const HEADER_BYTES = 1 + 4 + SYMBOLS / 2;

/** Huffman code lengths for `counts`, none longer than MAX_CODE_LENGTH. */
function codeLengths(counts: Uint32Array): Uint8Array {
  const lengths = new Uint8Array(SYMBOLS);
  const used = [...counts.keys()].filter((s) => counts[s] > 0);
  if (used.length === 1) lengths[used[0]] = 1;
  if (used.length <= 1) return lengths;
  let weights = used.map((s) => counts[s]);
  for (;;) {
    // Huffman's construction: merge the two lightest subtrees until one is left. Nodes 0…n-1 are
    // the symbols, later ones the merged subtrees; a symbol's depth is its code length.
    const n = weights.length;
    const weight = new Float64Array(2 * n - 1);
    const parent = new Int32Array(2 * n - 1).fill(-1);
    weight.set(weights);
    for (let next = n; next < 2 * n - 1; next++) {
      let a = -1;
      let b = -1;
      for (let i = 0; i < next; i++) {
        if (parent[i] !== -1) continue;
        if (a === -1 || weight[i] < weight[a]) [a, b] = [i, a];
        else if (b === -1 || weight[i] < weight[b]) b = i;
      }
      weight[next] = weight[a] + weight[b];
      parent[a] = parent[b] = next;
    }
    let deepest = 0;
    used.forEach((s, i) => {
      let depth = 0;
      for (let node = i; parent[node] !== -1; node = parent[node]) depth++;
      lengths[s] = depth;
      deepest = Math.max(deepest, depth);
    });
    if (deepest <= MAX_CODE_LENGTH) return lengths;
    // Too deep (very skewed counts): flatten the counts and build again.
    weights = weights.map((w) => (w + 1) >>> 1);
  }
}

/** Canonical codes of the given lengths, bit-reversed for least-significant-first output. */
function canonicalCodes(lengths: Uint8Array): Uint16Array {
  const codes = new Uint16Array(SYMBOLS);
  let code = 0;
  for (let length = 1; length <= MAX_CODE_LENGTH; length++) {
    for (let s = 0; s < SYMBOLS; s++) {
      if (lengths[s] !== length) continue;
      let reversed = 0;
      for (let b = 0; b < length; b++) reversed |= ((code >> b) & 1) << (length - 1 - b);
      codes[s] = reversed;
      code++;
    }
    code <<= 1;
  }
  return codes;
}

function countSymbols(bits: Uint16Array): Uint32Array {
  const counts = new Uint32Array(SYMBOLS);
  for (let i = 0; i < bits.length; i++) counts[bits[i] >>> MANTISSA_BITS]++;
  return counts;
}

/** The coded stream of float16 bit patterns. */
export function encodeFloat16Stream(bits: Uint16Array): Uint8Array {
  const counts = countSymbols(bits);
  const lengths = codeLengths(counts);
  const codes = canonicalCodes(lengths);
  let totalBits = 0;
  for (let s = 0; s < SYMBOLS; s++) totalBits += counts[s] * (lengths[s] + MANTISSA_BITS);
  const out = new Uint8Array(HEADER_BYTES + Math.ceil(totalBits / 8));
  out[0] = FORMAT_TAG;
  new DataView(out.buffer).setUint32(1, bits.length, true);
  for (let s = 0; s < SYMBOLS; s += 2) out[5 + s / 2] = lengths[s] | (lengths[s + 1] << 4);
  let at = HEADER_BYTES;
  let buffer = 0; // pending bits, least significant first; never more than 7 + 22 of them
  let pending = 0;
  for (let i = 0; i < bits.length; i++) {
    const symbol = bits[i] >>> MANTISSA_BITS;
    const length = lengths[symbol];
    buffer |= (codes[symbol] | ((bits[i] & 0x3ff) << length)) << pending;
    pending += length + MANTISSA_BITS;
    while (pending >= 8) {
      out[at++] = buffer & 0xff;
      buffer >>>= 8;
      pending -= 8;
    }
  }
  if (pending > 0) out[at++] = buffer & 0xff;
  return out;
}

/** The float16 bit patterns of a coded stream. Throws StoreCodecError if the stream is damaged. */
export function decodeFloat16Stream(data: Uint8Array): Uint16Array {
  if (!(data instanceof Uint8Array) || data.length < HEADER_BYTES || data[0] !== FORMAT_TAG) {
    throw new StoreCodecError('stored activations are not a coded float16 stream');
  }
  const count = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(1, true);
  const lengths = new Uint8Array(SYMBOLS);
  for (let s = 0; s < SYMBOLS; s += 2) {
    lengths[s] = data[5 + s / 2] & 0x0f;
    lengths[s + 1] = data[5 + s / 2] >>> 4;
  }
  // Code lengths of a prefix code satisfy Kraft's inequality: sum of 2^-length ≤ 1.
  const kraft = lengths.reduce((sum, l) => sum + (l === 0 ? 0 : 1 << (MAX_CODE_LENGTH - l)), 0);
  if (lengths.some((l) => l > MAX_CODE_LENGTH) || kraft > 1 << MAX_CODE_LENGTH) {
    throw new StoreCodecError('coded float16 stream is damaged (impossible code lengths)');
  }
  const codes = canonicalCodes(lengths);
  // table[next 12 bits] = symbol << 4 | code length (0: no code starts with these bits)
  const table = new Uint16Array(1 << MAX_CODE_LENGTH);
  for (let s = 0; s < SYMBOLS; s++) {
    const length = lengths[s];
    if (length === 0) continue;
    for (let rest = codes[s]; rest < table.length; rest += 1 << length) table[rest] = (s << 4) | length;
  }
  const out = new Uint16Array(count);
  let at = HEADER_BYTES;
  let buffer = 0;
  let available = 0;
  for (let i = 0; i < count; i++) {
    while (available <= 24 && at < data.length) {
      buffer |= data[at++] << available;
      available += 8;
    }
    const entry = table[buffer & ((1 << MAX_CODE_LENGTH) - 1)];
    const length = entry & 0x0f;
    if (length === 0 || length + MANTISSA_BITS > available) {
      throw new StoreCodecError(`coded float16 stream is damaged (value ${i} of ${count})`);
    }
    out[i] = ((entry >>> 4) << MANTISSA_BITS) | ((buffer >>> length) & 0x3ff);
    buffer >>>= length + MANTISSA_BITS;
    available -= length + MANTISSA_BITS;
  }
  if (at !== data.length || available >= 8) throw new StoreCodecError('coded float16 stream is damaged (bytes left over)');
  return out;
}
