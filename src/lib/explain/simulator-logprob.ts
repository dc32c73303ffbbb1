/**
 * Logprob simulation: the LLM rewrites each token line as `<index>\t"<token>"\t<value>` and the
 * value is read not from the text but from the log-probabilities of the generated value token,
 * giving a distribution over 0..10 per token (its mean is the expected activation).
 *
 * Reading the values:
 * 1. The generated text is rebuilt from the generated tokens' `bytes` (or the token string when a
 *    server sends no bytes), so a multi-byte character split over two tokens decodes correctly and
 *    every character has a known byte offset.
 * 2. Each line is parsed; its value's first byte locates the generated token that starts the value.
 *    Lines are matched to the excerpt by the index the LLM wrote (never by re-tokenising), and the
 *    quoted token is checked against the excerpt's token.
 * 3. At that token the alternatives in `top_logprobs` (and the sampled token itself) that read as
 *    "0".."10" are kept and renormalised. If the generated token also carries text before the
 *    value (e.g. a tab merged into it), alternatives must start with the same text.
 * 4. "10" split over two tokens: when the token sampled at the value position is "1" and it ends
 *    there, the next position's probability q of "0" splits the mass p of "1": p·q counts as 10 and
 *    p·(1−q) as 1 (the next position is conditioned on "1" whichever token followed). When the
 *    sampled token is anything else, the continuation after an alternative "1" is unknown and its
 *    mass counts as 1 (tokenizers that split "10" usually sample "1" for high values, so this is
 *    rare).
 * 5. A line that is missing, repeated, unparsable, has the wrong token, or has no "0".."10"
 *    alternative leaves that token without a value. The sequence is then asked for once more (with
 *    a reminder, so a response cache can't return the same answer) and the gaps are filled from the
 *    second answer; what is still missing stays `null` and lowers `coverage`.
 */
import type { ChatCompleter, ChatRequest, ChatResponse, TokenLogprob, TopLogprob } from '../llm/types.ts';
import type { SequenceSimulation, SimulationMode } from './explanation-types.ts';
import { valueDistributionFromTopLogprobs, type ValueDistribution } from './expected-value.ts';
import { generationFields } from './prompt-format.ts';
import type { SimulateCallOptions, Simulator, SimulatorOptions } from './simulator.ts';
import { sequenceSimulationFromDistributions, simulateEachSequence } from './simulator.ts';
import { buildLogprobSimulationMessages, retryReminder } from './simulator-prompt.ts';

/** The server answered without logprobs although they were asked for. */
export class LogprobsMissingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LogprobsMissingError';
  }
}

const utf8 = new TextEncoder();

/** Output tokens allowed per excerpt token (index, tab, quotes, token, value, newline). */
const OUTPUT_TOKENS_PER_LINE = 16;

function bytesOf(token: TopLogprob): Uint8Array {
  return token.bytes ? Uint8Array.from(token.bytes) : utf8.encode(token.token);
}

function isContinuation(byte: number | undefined): boolean {
  return byte !== undefined && (byte & 0xc0) === 0x80;
}

/**
 * UTF-8 decoding that also returns, for each UTF-16 code unit of the text, the byte offset it
 * came from (plus one final entry: the total length). Invalid bytes decode to U+FFFD, one each.
 */
export function decodeUtf8WithOffsets(bytes: Uint8Array): { text: string; byteOffsets: number[] } {
  let text = '';
  const byteOffsets: number[] = [];
  let i = 0;
  while (i < bytes.length) {
    const b0 = bytes[i];
    let codePoint = 0xfffd;
    let length = 1;
    if (b0 < 0x80) {
      codePoint = b0;
    } else if (b0 >= 0xc2 && b0 < 0xe0 && isContinuation(bytes[i + 1])) {
      codePoint = ((b0 & 0x1f) << 6) | (bytes[i + 1] & 0x3f);
      length = 2;
    } else if (b0 >= 0xe0 && b0 < 0xf0 && isContinuation(bytes[i + 1]) && isContinuation(bytes[i + 2])) {
      const cp = ((b0 & 0x0f) << 12) | ((bytes[i + 1] & 0x3f) << 6) | (bytes[i + 2] & 0x3f);
      if (cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff)) {
        codePoint = cp;
        length = 3;
      }
    } else if (
      b0 >= 0xf0 &&
      b0 < 0xf5 &&
      isContinuation(bytes[i + 1]) &&
      isContinuation(bytes[i + 2]) &&
      isContinuation(bytes[i + 3])
    ) {
      const cp =
        ((b0 & 0x07) << 18) | ((bytes[i + 1] & 0x3f) << 12) | ((bytes[i + 2] & 0x3f) << 6) | (bytes[i + 3] & 0x3f);
      if (cp >= 0x10000 && cp <= 0x10ffff) {
        codePoint = cp;
        length = 4;
      }
    }
    const chars = String.fromCodePoint(codePoint);
    for (let u = 0; u < chars.length; u++) byteOffsets.push(i);
    text += chars;
    i += length;
  }
  byteOffsets.push(bytes.length);
  return { text, byteOffsets };
}

function decodeText(bytes: Uint8Array): string {
  return decodeUtf8WithOffsets(bytes).text;
}

/** One answer line as parsed: where its value starts in the generated text. */
interface ParsedLine {
  index: number;
  token: string;
  valueCharOffset: number;
}

// index, whitespace, a JSON string literal, whitespace, the value digits, optional trailing space.
const LINE_PATTERN = /^[ \t]*(\d+)[ \t]+("(?:[^"\\]|\\.)*")[ \t]+(\d{1,3})[ \t]*\r?$/d;

/** The answer lines that parse; others (preambles, broken lines) are skipped. */
export function parseAnswerLines(text: string): ParsedLine[] {
  const lines: ParsedLine[] = [];
  let lineStart = 0;
  for (const line of text.split('\n')) {
    const match = LINE_PATTERN.exec(line);
    if (match?.indices) {
      let token: unknown;
      try {
        token = JSON.parse(match[2]);
      } catch {
        token = undefined;
      }
      if (typeof token === 'string') {
        lines.push({ index: Number(match[1]), token, valueCharOffset: lineStart + match.indices[3][0] });
      }
    }
    lineStart += line.length + 1;
  }
  return lines;
}

/**
 * Whether the token the LLM wrote is the excerpt's token. Tolerates what copying through an LLM
 * commonly loses without changing which token is meant: surrounding whitespace, U+FFFD stand-ins
 * for partial characters, Unicode normalisation form.
 */
export function sameToken(expected: string, written: string): boolean {
  if (expected === written) return true;
  const loose = (s: string) => s.replace(/\uFFFD/g, '').trim().normalize('NFC');
  return loose(expected) === loose(written);
}

const VALUE_TEXT = /^(?:10|[0-9])$/;

function probabilityOf(logprob: number): number {
  return Number.isFinite(logprob) ? Math.exp(logprob) : 0;
}

/** The sampled token and its alternatives, each text once (the first occurrence wins). */
function candidatesAt(position: TokenLogprob): { text: string; probability: number }[] {
  const seen = new Set<string>();
  const out: { text: string; probability: number }[] = [];
  for (const candidate of [position, ...position.top_logprobs]) {
    const text = decodeText(bytesOf(candidate));
    if (seen.has(text)) continue;
    seen.add(text);
    out.push({ text, probability: probabilityOf(candidate.logprob) });
  }
  return out;
}

/**
 * Distribution over 0..10 at the value starting at byte `valueByte` of the generated stream, or
 * null when no alternative there reads as a value.
 */
function distributionAt(
  content: readonly TokenLogprob[],
  tokenStarts: readonly number[],
  streamBytes: Uint8Array,
  valueByte: number,
): ValueDistribution | null {
  // The generated token containing the value's first byte.
  let k = tokenStarts.length - 1;
  while (k > 0 && tokenStarts[k] > valueByte) k--;
  if (k < 0 || tokenStarts[k] > valueByte) return null;
  const prefix = decodeText(streamBytes.subarray(tokenStarts[k], valueByte));
  const mass = new Map<number, number>();
  for (const { text, probability } of candidatesAt(content[k])) {
    if (!text.startsWith(prefix)) continue;
    const rest = text.slice(prefix.length).trim();
    if (!VALUE_TEXT.test(rest)) continue;
    const value = Number(rest);
    mass.set(value, (mass.get(value) ?? 0) + probability);
  }
  const sampledRest = decodeText(bytesOf(content[k])).slice(prefix.length);
  const next = content[k + 1];
  if (sampledRest === '1' && next !== undefined && (mass.get(1) ?? 0) > 0) {
    // "10" may be "1" then "0": split the mass of "1" by the next position's chance of "0".
    let zero = 0;
    for (const { text, probability } of candidatesAt(next)) if (text.trimEnd() === '0') zero += probability;
    zero = Math.min(1, zero);
    const one = mass.get(1) ?? 0;
    mass.set(1, one * (1 - zero));
    mass.set(10, (mass.get(10) ?? 0) + one * zero);
  }
  const logprobs: Record<string, number> = {};
  for (const [value, probability] of [...mass.entries()].sort((a, b) => a[0] - b[0])) {
    logprobs[String(value)] = Math.log(probability);
  }
  return valueDistributionFromTopLogprobs(logprobs);
}

/**
 * Per excerpt token, the distribution read from a generated answer (null where none could be
 * read), following steps 1–4 of the file comment.
 */
export function readDistributionsFromLogprobs(
  tokens: readonly string[],
  content: readonly TokenLogprob[],
): (ValueDistribution | null)[] {
  const pieces = content.map(bytesOf);
  const tokenStarts: number[] = [];
  let length = 0;
  for (const piece of pieces) {
    tokenStarts.push(length);
    length += piece.length;
  }
  const streamBytes = new Uint8Array(length);
  pieces.forEach((piece, i) => streamBytes.set(piece, tokenStarts[i]));
  const { text, byteOffsets } = decodeUtf8WithOffsets(streamBytes);

  const byIndex = new Map<number, ParsedLine | 'repeated'>();
  for (const line of parseAnswerLines(text)) {
    if (line.index >= tokens.length) continue;
    byIndex.set(line.index, byIndex.has(line.index) ? 'repeated' : line);
  }
  return tokens.map((token, i) => {
    const line = byIndex.get(i);
    // A repeated index means the LLM lost its place: neither copy can be trusted.
    if (line === undefined || line === 'repeated' || !sameToken(token, line.token)) return null;
    return distributionAt(content, tokenStarts, streamBytes, byteOffsets[line.valueCharOffset]);
  });
}

export interface LogprobSimulatorOptions extends Pick<
  SimulatorOptions,
  'model' | 'topLogprobs' | 'retries' | 'reasoningModel'
> {}

export class LogprobSimulator implements Simulator {
  readonly mode: SimulationMode = 'logprob';

  constructor(
    private readonly client: ChatCompleter,
    private readonly options: LogprobSimulatorOptions,
  ) {}

  async simulate(
    explanation: string,
    tokens: readonly (readonly string[])[],
    options: SimulateCallOptions = {},
  ): Promise<SequenceSimulation[]> {
    return simulateEachSequence(explanation, tokens, this.mode, (sequence) => this.simulateSequence(explanation, sequence, options.signal));
  }

  private async simulateSequence(
    explanation: string,
    tokens: readonly string[],
    signal: AbortSignal | undefined,
  ): Promise<SequenceSimulation> {
    let distributions = await this.ask(explanation, tokens, undefined, signal);
    const retries = this.options.retries ?? 1;
    for (let r = 0; r < retries && distributions.includes(null); r++) {
      const again = await this.ask(explanation, tokens, retryReminder(tokens.length), signal);
      distributions = distributions.map((d, i) => d ?? again[i]);
    }
    return sequenceSimulationFromDistributions(tokens, distributions, this.mode);
  }

  private async ask(
    explanation: string,
    tokens: readonly string[],
    reminder: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<(ValueDistribution | null)[]> {
    const request: ChatRequest = {
      model: this.options.model,
      messages: buildLogprobSimulationMessages(explanation, tokens, reminder),
      ...generationFields(this.options, OUTPUT_TOKENS_PER_LINE * tokens.length + 32, 0),
      logprobs: true,
      top_logprobs: this.options.topLogprobs ?? 20,
    };
    const response = await this.client.complete(request, { signal });
    return readDistributionsFromLogprobs(tokens, requireLogprobs(response, this.options.model));
  }
}

/** The logprobs of the first choice, or a `LogprobsMissingError` when the server sent none. */
export function requireLogprobs(response: ChatResponse, model: string): TokenLogprob[] {
  const content = response.choices[0]?.logprobs?.content;
  if (content === null || content === undefined) {
    throw new LogprobsMissingError(`the LLM server returned no logprobs for model "${model}" although they were requested`);
  }
  return content;
}
