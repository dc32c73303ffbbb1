/**
 * GPT-2 byte-level BPE tokenizer that also reports, for every token, where it came from in the
 * input text — needed to highlight activations on the characters that produced them.
 *
 * Why our own: no JavaScript tokenizer library gives character offsets or marks tokens that hold
 * part of a character (`@huggingface/tokenizers` and transformers.js return ids and token strings
 * only), and every activation is shown on its characters. The ids are checked against
 * `@huggingface/tokenizers` on the whole bundled corpus and a Unicode fuzz set
 * (test/tokenizer-parity.test.ts, which lists the intended differences).
 *
 * Built from a Hugging Face `tokenizer.json` (everything — vocabulary, merges, special tokens —
 * is read from the file, nothing about GPT-2's sizes is hard-coded), so it works for any
 * GPT-2-family vocabulary.
 *
 * Semantics follow the original OpenAI encoder (and Hugging Face `tokenizers`), which is what
 * the models were trained with:
 *  - pre-tokenisation with GPT-2's regex; its `\s` is Unicode White_Space, as in Python's
 *    `regex` module and Oniguruma. (The `gpt-3-encoder` npm port uses JavaScript's `\s`, which
 *    differs on U+0085 and U+FEFF only, so ids differ from that port on texts containing those
 *    next to other characters.)
 *  - text is UTF-8 encoded and BPE-merged by merge rank, all occurrences of the best pair at once,
 *    left to right.
 *  - added/special tokens such as `<|endoftext|>` are plain text by default (like the original
 *    encoder and `gpt-3-encoder`): the string "<|endoftext|>" becomes "<", "|", "end", "of", ….
 *    Pass `{ allowSpecial: true }` to turn literal occurrences into their single ids.
 *  - no BOS/EOS is ever added.
 */
import {
  byteToChar,
  bytesToVocabString,
  decodeUtf8,
  decodeUtf8WithEscapes,
  utf8EncodeWithOffsets,
  vocabStringToBytes,
} from './byte-level.ts';

/** A tokenizer file we cannot use, or bad input to the tokenizer. */
export class TokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenizerError';
  }
}

/**
 * One token of an encoded text.
 *
 * `start`/`end` are UTF-16 code-unit offsets into the input (JS string indices).
 *
 * A token may hold only part of a multi-byte UTF-8 character (emoji and CJK characters are often
 * split over two or more tokens). Such a token is marked `fragment: true`, and `text` and
 * `start`/`end` then describe the whole character(s) its bytes belong to — so both halves of a
 * split "🦊" display as "🦊" and point at the same span — instead of a meaningless U+FFFD.
 * A token with whole characters plus a fragment likewise shows all characters it overlaps.
 * For tokens that are not fragments, `text` is the token decoded on its own, without any
 * clean-up (" ." stays " ."), and equals `input.slice(start, end)`.
 */
export interface Token {
  id: number;
  text: string;
  start: number;
  end: number;
  fragment?: boolean;
}

export interface EncodeOptions {
  /**
   * When true, literal occurrences of the file's added tokens (e.g. "<|endoftext|>") become
   * their single ids (longest match first). Default false: they are tokenised as plain text.
   */
  allowSpecial?: boolean;
}

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
}

/** A word after BPE: token ids and where each token ends, in bytes from the word's start. */
interface MergedWord {
  ids: Int32Array;
  byteEnds: Int32Array;
}

/**
 * GPT-2's pre-tokenisation pattern, with `\s` spelled as \p{White_Space} (see the file comment).
 * Every character is matched by some alternative, so the matches tile the text.
 */
const PRE_TOKEN_PATTERN =
  /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+/gu;

/** Words longer than this are not cached (rare, and they would bloat the cache). */
const MAX_CACHED_WORD_LENGTH = 256;
/** The cache is dropped wholesale when it reaches this many words, bounding memory. */
const MAX_CACHE_ENTRIES = 100_000;

type JsonObject = Record<string, unknown>;

function isObject(x: unknown): x is JsonObject {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function isNonNegativeInteger(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0;
}

/** Collects the ByteLevel pre-tokenizer, rejecting anything that would change GPT-2's splitting. */
function readByteLevelPreTokenizer(preTokenizer: unknown): JsonObject {
  if (!isObject(preTokenizer)) {
    throw new TokenizerError(
      'tokenizer.json has no pre_tokenizer; a GPT-2-style byte-level BPE tokenizer needs a "ByteLevel" pre_tokenizer',
    );
  }
  const parts: unknown[] =
    preTokenizer.type === 'Sequence' && Array.isArray(preTokenizer.pretokenizers)
      ? preTokenizer.pretokenizers
      : [preTokenizer];
  let byteLevel: JsonObject | null = null;
  for (const part of parts) {
    const type = isObject(part) ? part.type : undefined;
    if (type === 'ByteLevel' && isObject(part)) {
      if (byteLevel) throw new TokenizerError('tokenizer.json has more than one ByteLevel pre_tokenizer');
      byteLevel = part;
    } else {
      throw new TokenizerError(
        `pre_tokenizer "${String(type)}" is not supported: only GPT-2's ByteLevel pre-tokenization is`,
      );
    }
  }
  if (!byteLevel) {
    throw new TokenizerError('tokenizer.json pre_tokenizer is not ByteLevel; this is not a byte-level BPE tokenizer');
  }
  if (byteLevel.use_regex === false) {
    throw new TokenizerError('ByteLevel pre_tokenizer with use_regex=false is not supported');
  }
  return byteLevel;
}

function readMerges(raw: unknown): Array<[string, string]> {
  if (!Array.isArray(raw)) throw new TokenizerError('tokenizer.json model.merges must be an array');
  return raw.map((m, i): [string, string] => {
    if (typeof m === 'string') {
      const parts = m.split(' ');
      if (parts.length === 2 && parts[0] && parts[1]) return [parts[0], parts[1]];
    } else if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') {
      if (m[0] && m[1]) return [m[0], m[1]];
    }
    throw new TokenizerError(
      `tokenizer.json model.merges[${i}] must be "a b" or ["a", "b"], got ${JSON.stringify(m)?.slice(0, 80)}`,
    );
  });
}

function readAddedTokens(raw: unknown): AddedToken[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new TokenizerError('tokenizer.json added_tokens must be an array');
  return raw.map((t, i) => {
    if (!isObject(t) || !isNonNegativeInteger(t.id) || typeof t.content !== 'string' || t.content === '') {
      throw new TokenizerError(`tokenizer.json added_tokens[${i}] needs a non-negative integer id and a content string`);
    }
    return { id: t.id, content: t.content, special: t.special === true };
  });
}

/** Reads a token name from tokenizer_config.json: either a string or an AddedToken object. */
function readConfigTokenName(x: unknown): string | null {
  if (typeof x === 'string') return x;
  if (isObject(x) && typeof x.content === 'string') return x.content;
  return null;
}

/** Minimal binary min-heap of numbers (keys encode rank and position of a symbol pair). */
class NumberHeap {
  private items: number[] = [];
  get size(): number {
    return this.items.length;
  }
  peek(): number {
    return this.items[0];
  }
  clear(): void {
    this.items.length = 0;
  }
  push(x: number): void {
    const a = this.items;
    let i = a.length;
    a.push(x);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent] <= x) break;
      a[i] = a[parent];
      i = parent;
    }
    a[i] = x;
  }
  pop(): number {
    const a = this.items;
    const top = a[0];
    const last = a.pop() as number;
    if (a.length > 0) {
      let i = 0;
      const n = a.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && a[r] < a[l] ? r : l;
        if (a[c] >= last) break;
        a[i] = a[c];
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}

export class Gpt2Tokenizer {
  /** One past the largest id in the vocabulary and added tokens. */
  readonly vocabSize: number;
  /** Id of the end-of-text token (tokenizer_config `eos_token`, else "<|endoftext|>"), or null if none. */
  readonly eosTokenId: number | null;

  /** Bytes of every id (undefined for ids the file does not define). */
  private readonly idBytes: Array<Uint8Array | undefined>;
  /** Vocabulary string (byte-level alphabet) → id, for BPE symbols. */
  private readonly vocab: Map<string, number>;
  /** Id of the single-byte token of each byte. */
  private readonly byteIds: Int32Array;
  /** (left id · vocabSize + right id) → merge rank. */
  private readonly mergeRanks: Map<number, number>;
  /** Id produced by the merge of each rank. */
  private readonly mergeResults: Int32Array;
  private readonly addedTokens: AddedToken[];
  private readonly addedTokenPattern: RegExp | null;
  private readonly addPrefixSpace: boolean;
  /** Llama-3-style option: a word that is itself in the vocabulary is taken whole. */
  private readonly ignoreMerges: boolean;
  private readonly cache = new Map<string, MergedWord>();
  private readonly heap = new NumberHeap();

  /**
   * @param tokenizerJson parsed `tokenizer.json` (Hugging Face `tokenizers` format)
   * @param tokenizerConfig parsed `tokenizer_config.json`, optional; `eos_token` and
   *   `add_prefix_space` are honoured
   */
  constructor(tokenizerJson: unknown, tokenizerConfig?: unknown) {
    if (!isObject(tokenizerJson)) throw new TokenizerError('tokenizer.json must be a JSON object');
    const model = tokenizerJson.model;
    if (!isObject(model)) throw new TokenizerError('tokenizer.json has no "model" object');
    if (model.type !== undefined && model.type !== 'BPE') {
      throw new TokenizerError(
        `tokenizer.json model.type is ${JSON.stringify(model.type)}; only byte-level BPE (GPT-2 family) is supported`,
      );
    }
    if (!isObject(model.vocab)) throw new TokenizerError('tokenizer.json model.vocab must be an object of token → id');
    if (typeof model.continuing_subword_prefix === 'string' && model.continuing_subword_prefix !== '') {
      throw new TokenizerError('BPE with continuing_subword_prefix is not a GPT-2-style tokenizer');
    }
    if (typeof model.end_of_word_suffix === 'string' && model.end_of_word_suffix !== '') {
      throw new TokenizerError('BPE with end_of_word_suffix is not a GPT-2-style tokenizer');
    }
    if (typeof model.dropout === 'number' && model.dropout > 0) {
      throw new TokenizerError('BPE dropout makes tokenisation random; set dropout to null');
    }
    if (model.byte_fallback === true) {
      throw new TokenizerError('BPE with byte_fallback is a SentencePiece-style tokenizer, not byte-level BPE');
    }
    const normalizer = tokenizerJson.normalizer;
    if (
      normalizer !== undefined &&
      normalizer !== null &&
      !(isObject(normalizer) && normalizer.type === 'Sequence' && Array.isArray(normalizer.normalizers) && normalizer.normalizers.length === 0)
    ) {
      const type = isObject(normalizer) ? normalizer.type : normalizer;
      throw new TokenizerError(`normalizer ${JSON.stringify(type)} is not supported (GPT-2 tokenizers have none)`);
    }
    const byteLevel = readByteLevelPreTokenizer(tokenizerJson.pre_tokenizer);
    const config = tokenizerConfig === undefined || tokenizerConfig === null ? {} : tokenizerConfig;
    if (!isObject(config)) throw new TokenizerError('tokenizer_config.json must be a JSON object');
    this.addPrefixSpace =
      typeof config.add_prefix_space === 'boolean' ? config.add_prefix_space : byteLevel.add_prefix_space === true;
    this.ignoreMerges = model.ignore_merges === true;

    this.addedTokens = readAddedTokens(tokenizerJson.added_tokens);
    const addedById = new Map(this.addedTokens.map((t) => [t.id, t]));

    // Vocabulary: every entry must be written in the byte-level alphabet, except entries that are
    // added tokens (whose bytes are their content's UTF-8).
    this.vocab = new Map();
    let maxId = -1;
    const vocabEntries = Object.entries(model.vocab);
    for (const [token, id] of vocabEntries) {
      if (!isNonNegativeInteger(id)) {
        throw new TokenizerError(`tokenizer.json model.vocab[${JSON.stringify(token)}] must be a non-negative integer id`);
      }
      this.vocab.set(token, id);
      if (id > maxId) maxId = id;
    }
    for (const t of this.addedTokens) if (t.id > maxId) maxId = t.id;
    if (maxId < 0) throw new TokenizerError('tokenizer.json model.vocab is empty');
    this.vocabSize = maxId + 1;

    this.idBytes = new Array<Uint8Array | undefined>(this.vocabSize);
    const encoder = new TextEncoder();
    for (const [token, id] of vocabEntries as Array<[string, number]>) {
      if (this.idBytes[id] !== undefined && !addedById.has(id)) {
        throw new TokenizerError(`tokenizer.json model.vocab gives id ${id} to more than one token`);
      }
      const added = addedById.get(id);
      const bytes = added ? encoder.encode(added.content) : vocabStringToBytes(token);
      if (!bytes) {
        throw new TokenizerError(
          `vocabulary entry ${JSON.stringify(token)} (id ${id}) is not in GPT-2's byte-level alphabet; this is not a byte-level BPE tokenizer`,
        );
      }
      this.idBytes[id] = bytes;
    }
    for (const t of this.addedTokens) this.idBytes[t.id] = encoder.encode(t.content);

    this.byteIds = new Int32Array(256);
    for (let b = 0; b < 256; b++) {
      const id = this.vocab.get(byteToChar[b]);
      if (id === undefined) {
        throw new TokenizerError(
          `vocabulary lacks the single-byte token ${JSON.stringify(byteToChar[b])} (byte 0x${b.toString(16)}); not a complete byte-level vocabulary`,
        );
      }
      this.byteIds[b] = id;
    }

    const merges = readMerges(model.merges);
    this.mergeRanks = new Map();
    this.mergeResults = new Int32Array(merges.length);
    merges.forEach(([a, b], rank) => {
      const left = this.vocab.get(a);
      const right = this.vocab.get(b);
      const result = this.vocab.get(a + b);
      if (left === undefined || right === undefined || result === undefined) {
        const missing = left === undefined ? a : right === undefined ? b : a + b;
        throw new TokenizerError(`merge #${rank} "${a} ${b}" uses ${JSON.stringify(missing)}, which is not in the vocabulary`);
      }
      // A repeated pair keeps its last rank, as the original encoder's dict(zip(merges, ranks)) does.
      this.mergeRanks.set(left * this.vocabSize + right, rank);
      this.mergeResults[rank] = result;
    });

    this.addedTokenPattern =
      this.addedTokens.length === 0
        ? null
        : new RegExp(
            [...this.addedTokens]
              .sort((x, y) => y.content.length - x.content.length)
              .map((t) => t.content.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
              .join('|'),
            'gu',
          );

    this.eosTokenId = this.findEosTokenId(config);
  }

  private findEosTokenId(config: JsonObject): number | null {
    const lookup = (name: string): number | undefined =>
      this.addedTokens.find((t) => t.content === name)?.id ?? this.vocab.get(name);
    if (config.eos_token !== undefined && config.eos_token !== null) {
      const name = readConfigTokenName(config.eos_token);
      const id = name === null ? undefined : lookup(name);
      if (id === undefined) {
        throw new TokenizerError(
          `tokenizer_config.json eos_token ${JSON.stringify(config.eos_token)} is not a token of this tokenizer`,
        );
      }
      return id;
    }
    return lookup('<|endoftext|>') ?? null;
  }

  /** Splits `text` into tokens with their spans (see `Token`). */
  encode(text: string, options: EncodeOptions = {}): Token[] {
    if (typeof text !== 'string') throw new TokenizerError(`encode() needs a string, got ${typeof text}`);
    const tokens: Token[] = [];
    if (options.allowSpecial && this.addedTokenPattern) {
      let last = 0;
      for (const m of text.matchAll(this.addedTokenPattern)) {
        const at = m.index ?? 0;
        if (at > last) this.encodeOrdinary(text, last, at, tokens);
        const added = this.addedTokens.find((t) => t.content === m[0]) as AddedToken;
        tokens.push({ id: added.id, text: added.content, start: at, end: at + m[0].length });
        last = at + m[0].length;
      }
      if (last < text.length) this.encodeOrdinary(text, last, text.length, tokens);
    } else if (text.length > 0) {
      this.encodeOrdinary(text, 0, text.length, tokens);
    }
    return tokens;
  }

  /** Just the ids of `encode(text, options)`. */
  encodeIds(text: string, options: EncodeOptions = {}): number[] {
    return this.encode(text, options).map((t) => t.id);
  }

  /** Tokenises text[from, to) (no added tokens inside), appending to `out`. */
  private encodeOrdinary(input: string, from: number, to: number, out: Token[]): void {
    // add_prefix_space (not used by GPT-2 itself) prepends a space that is not in the input:
    // its bytes get the empty span at `from`.
    const prefix = this.addPrefixSpace && input[from] !== ' ' ? ' ' : '';
    const segment = prefix + input.slice(from, to);
    const utf8 = utf8EncodeWithOffsets(segment);
    const toInput = (unit: number) => from + Math.max(0, unit - prefix.length);
    for (const m of segment.matchAll(PRE_TOKEN_PATTERN)) {
      const wordStartUnit = m.index ?? 0;
      const wordByteStart = utf8.byteOffset[wordStartUnit];
      const wordByteEnd = utf8.byteOffset[wordStartUnit + m[0].length];
      const merged = this.mergeWord(m[0], utf8.bytes.subarray(wordByteStart, wordByteEnd));
      let b0 = wordByteStart;
      for (let k = 0; k < merged.ids.length; k++) {
        const b1 = wordByteStart + merged.byteEnds[k];
        const startUnit = utf8.charStart[b0];
        const endUnit = utf8.charEnd[b1 - 1];
        const start = toInput(startUnit);
        const end = toInput(endUnit);
        const id = merged.ids[k];
        if (!utf8.isCharFirst[b0] || !utf8.isCharLast[b1 - 1]) {
          out.push({ id, text: input.slice(start, end), start, end, fragment: true });
        } else {
          // With an unpaired surrogate the bytes are U+FFFD's, so decode them rather than slice.
          const text = utf8.hasLoneSurrogate
            ? decodeUtf8(utf8.bytes.subarray(b0, b1))
            : segment.slice(startUnit, endUnit);
          out.push({ id, text, start, end });
        }
        b0 = b1;
      }
    }
  }

  /** BPE of one pre-token, cached by its text. */
  private mergeWord(word: string, bytes: Uint8Array): MergedWord {
    const cached = this.cache.get(word);
    if (cached) return cached;
    const merged = this.bpe(bytes);
    if (word.length <= MAX_CACHED_WORD_LENGTH) {
      if (this.cache.size >= MAX_CACHE_ENTRIES) this.cache.clear();
      this.cache.set(word, merged);
    }
    return merged;
  }

  /**
   * Byte-pair merging with the original encoder's semantics: repeatedly take the adjacent pair
   * with the lowest merge rank and merge every occurrence of it, left to right, before looking
   * at pairs that those merges create. A heap keyed by (rank, position) keeps long words (e.g. a
   * page of CJK text with no spaces) near-linear instead of quadratic.
   */
  private bpe(bytes: Uint8Array): MergedWord {
    const n = bytes.length;
    const sym = new Int32Array(n);
    for (let i = 0; i < n; i++) sym[i] = this.byteIds[bytes[i]];
    if (this.ignoreMerges && n > 1) {
      const whole = this.vocab.get(bytesToVocabString(bytes));
      if (whole !== undefined) return { ids: Int32Array.of(whole), byteEnds: Int32Array.of(n) };
    }
    if (n === 1) return { ids: sym, byteEnds: Int32Array.of(1) };

    // Doubly linked list of symbols over the initial byte positions; a symbol lives at the
    // position of its first byte, `end` is one past its last byte.
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const end = new Int32Array(n);
    const alive = new Uint8Array(n).fill(1);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
      end[i] = i + 1;
    }
    const V = this.vocabSize;
    const rankOf = (pos: number): number => {
      const right = next[pos];
      if (right < 0) return -1;
      return this.mergeRanks.get(sym[pos] * V + sym[right]) ?? -1;
    };
    // Keys are rank·n + position: ordered by rank, then left to right. Exact while rank·n < 2^53.
    const heap = this.heap;
    heap.clear();
    const pushPair = (pos: number) => {
      const r = rankOf(pos);
      if (r >= 0) heap.push(r * n + pos);
    };
    for (let i = 0; i < n - 1; i++) pushPair(i);

    const mergedAt: number[] = [];
    while (heap.size > 0) {
      const rank = Math.floor(heap.peek() / n);
      // Merge every occurrence of this pair that exists now, left to right (a merged pair may
      // invalidate an overlapping one, e.g. "a a a" → "aa a").
      mergedAt.length = 0;
      let lastPos = -1;
      while (heap.size > 0 && Math.floor(heap.peek() / n) === rank) {
        const pos = heap.pop() - rank * n;
        if (pos === lastPos || !alive[pos] || rankOf(pos) !== rank) continue; // stale entry
        lastPos = pos;
        const right = next[pos];
        sym[pos] = this.mergeResults[rank];
        end[pos] = end[right];
        alive[right] = 0;
        next[pos] = next[right];
        if (next[right] >= 0) prev[next[right]] = pos;
        mergedAt.push(pos);
      }
      // Only now offer the pairs the merges created, so they cannot jump ahead of this rank.
      for (const pos of mergedAt) {
        if (prev[pos] >= 0) pushPair(prev[pos]);
        pushPair(pos);
      }
    }

    const ids: number[] = [];
    const byteEnds: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) {
      ids.push(sym[i]);
      byteEnds.push(end[i]);
    }
    return { ids: Int32Array.from(ids), byteEnds: Int32Array.from(byteEnds) };
  }

  /** Bytes of one token id (a copy). */
  tokenBytes(id: number): Uint8Array {
    return this.bytesOf(id).slice();
  }

  /**
   * Display string of one id on its own. Bytes that do not form whole UTF-8 characters (a
   * fragment of an emoji, say) are written as `\xNN` escapes, never U+FFFD, so published
   * records stay exact. (A token whose own text is a backslash-x sequence looks the same.)
   */
  tokenText(id: number): string {
    return decodeUtf8WithEscapes(this.bytesOf(id));
  }

  /** Text of a sequence of ids: their bytes joined, then UTF-8 decoded (invalid bytes → U+FFFD). */
  decode(ids: readonly number[]): string {
    if (!Array.isArray(ids)) throw new TokenizerError('decode() needs an array of token ids');
    const parts = ids.map((id) => this.bytesOf(id));
    const joined = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
    let at = 0;
    for (const p of parts) {
      joined.set(p, at);
      at += p.length;
    }
    return decodeUtf8(joined);
  }

  private bytesOf(id: number): Uint8Array {
    const bytes = Number.isInteger(id) && id >= 0 && id < this.vocabSize ? this.idBytes[id] : undefined;
    if (!bytes) throw new TokenizerError(`token id ${String(id)} is not in this tokenizer's vocabulary`);
    return bytes;
  }
}
