/**
 * Every way Neurolens turns activation records and token lists into prompt text, kept in one
 * place so the explainer, the simulators and the binary scorers show the LLM the same layout.
 *
 * - Explainer records: one `token<TAB>value` line per token, values normalised to 0..10 over all
 *   records shown, each record between `<start>` and `<end>`. When fewer than 20% of the values
 *   are non-zero, the non-zero pairs are listed again after the full list (sparse neurons would
 *   otherwise drown in zeros).
 * - Simulator lines: `<index><TAB>"<token as a JSON string>"<TAB><value>`. The explicit index lets
 *   answers be aligned without re-tokenising, and JSON quoting keeps tabs, newlines and leading
 *   spaces of tokens visible and unambiguous.
 */
import type { ActivationRecord } from '../activations/records.ts';
import { maxActivation, nonZeroPairs, normalizeRecords, shouldRepeatNonZero } from './normalize.ts';

export const RECORD_START = '<start>';
export const RECORD_END = '<end>';

/** Shown before the repeated non-zero pairs of a record. */
export const NON_ZERO_REPEAT_HEADING = 'Same excerpt, non-zero activations only:';

export class PromptFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PromptFormatError';
  }
}

function checkRecord(record: ActivationRecord, where: string): void {
  if (!record || !Array.isArray(record.tokens) || !Array.isArray(record.activations)) {
    throw new PromptFormatError(`${where}: expected an object with "tokens" and "activations" arrays`);
  }
  if (record.tokens.length !== record.activations.length) {
    throw new PromptFormatError(
      `${where}: ${record.tokens.length} tokens but ${record.activations.length} activations`,
    );
  }
  record.tokens.forEach((t, i) => {
    if (typeof t !== 'string') throw new PromptFormatError(`${where}.tokens[${i}]: expected a string`);
  });
}

/**
 * A token as it appears in a `token<TAB>value` line: tabs and newlines inside the token would
 * break the line structure, so they are written as the visible escapes `\t` and `\n`.
 */
export function displayToken(token: string): string {
  return token.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\r/g, '\\r').replace(/\n/g, '\\n');
}

/** The token a `displayToken` line shows (its escapes undone). */
export function undisplayToken(shown: string): string {
  return shown.replace(/\\([\\tnr])/g, (_, c: string) => ({ t: '\t', n: '\n', r: '\r', '\\': '\\' })[c]!);
}

/** The one-line question "Test connection" asks an endpoint (answered "7", with logprobs if it has them). */
export const CONNECTION_TEST_PROMPT = 'Reply with the single digit 7.';

export interface ExplainerRecordsOptions {
  /** Normalise against this maximum instead of the largest activation shown. */
  maxActivation?: number;
}

/** The records block of an explainer prompt (see the file comment for the layout). */
export function formatRecordsForExplainer(
  records: readonly ActivationRecord[],
  options: ExplainerRecordsOptions = {},
): string {
  records.forEach((r, i) => checkRecord(r, `records[${i}]`));
  const max = options.maxActivation ?? maxActivation(records);
  const normalized = normalizeRecords(records, max);
  const repeat = shouldRepeatNonZero(normalized);
  const pairs = repeat ? nonZeroPairs(records, normalized) : [];
  const blocks = records.map((record, r) => {
    const lines = [RECORD_START];
    record.tokens.forEach((token, t) => lines.push(`${displayToken(token)}\t${normalized[r][t]}`));
    lines.push(RECORD_END);
    if (repeat && pairs[r].length > 0) {
      lines.push(NON_ZERO_REPEAT_HEADING, RECORD_START);
      for (const pair of pairs[r]) lines.push(`${displayToken(pair.token)}\t${pair.activation}`);
      lines.push(RECORD_END);
    }
    return lines.join('\n');
  });
  return blocks.join('\n\n');
}

/** `<index><TAB>"<token>"` — a token line the simulator is asked to complete. */
export function formatSimulationTokenLine(index: number, token: string): string {
  return `${index}\t${JSON.stringify(token)}`;
}

/** `<index><TAB>"<token>"<TAB><value>` — a completed simulator line. */
export function formatSimulationAnswerLine(index: number, token: string, value: number | string): string {
  return `${formatSimulationTokenLine(index, token)}\t${value}`;
}

/** All token lines of one sequence, for the simulator to complete. */
export function formatTokensForSimulation(tokens: readonly string[]): string {
  return tokens.map((t, i) => formatSimulationTokenLine(i, t)).join('\n');
}

/** The completed answer for one sequence; `values[i]` may be a placeholder string. */
export function formatSimulationAnswer(tokens: readonly string[], values: readonly (number | string)[]): string {
  if (values.length !== tokens.length) {
    throw new PromptFormatError(`${tokens.length} tokens but ${values.length} values`);
  }
  return tokens.map((t, i) => formatSimulationAnswerLine(i, t, values[i])).join('\n');
}

/** An excerpt as plain text (tokens concatenated), for the detection scorer. */
export function formatExcerptText(tokens: readonly string[]): string {
  return tokens.join('');
}

export const HIGHLIGHT_OPEN = '<<';
export const HIGHLIGHT_CLOSE = '>>';

/**
 * An excerpt as plain text with some tokens marked `<<like this>>`, for the fuzzing scorer.
 * Adjacent highlighted tokens are merged into one marked span so multi-token words read naturally.
 */
export function formatHighlightedExcerpt(tokens: readonly string[], highlighted: readonly boolean[]): string {
  if (highlighted.length !== tokens.length) {
    throw new PromptFormatError(`${tokens.length} tokens but ${highlighted.length} highlight flags`);
  }
  let text = '';
  let open = false;
  tokens.forEach((token, i) => {
    if (highlighted[i] && !open) {
      text += HIGHLIGHT_OPEN;
      open = true;
    } else if (!highlighted[i] && open) {
      text += HIGHLIGHT_CLOSE;
      open = false;
    }
    text += token;
  });
  if (open) text += HIGHLIGHT_CLOSE;
  return text;
}

/** How to ask for output length and randomness, which differs for reasoning models. */
export interface GenerationSettings {
  /** Reasoning models reject `temperature` and `max_tokens` (they want `max_completion_tokens`). */
  reasoningModel?: boolean;
}

/**
 * The length/temperature fields of a request. Reasoning models spend hidden tokens thinking, so
 * their limit is raised to leave room for that; their temperature is left at the server default.
 */
export function generationFields(
  settings: GenerationSettings,
  maxOutputTokens: number,
  temperature: number,
): { max_tokens?: number; max_completion_tokens?: number; temperature?: number } {
  if (settings.reasoningModel) return { max_completion_tokens: maxOutputTokens + REASONING_TOKEN_ALLOWANCE };
  return { max_tokens: maxOutputTokens, temperature };
}

/** Extra completion tokens granted to reasoning models for their hidden reasoning. */
export const REASONING_TOKEN_ALLOWANCE = 8000;
