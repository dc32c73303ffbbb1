/**
 * Turns a non-2xx HTTP answer from an OpenAI-compatible server into the matching typed error.
 * Servers disagree on the error body: OpenAI and llama.cpp send `{error: {message, type, code,
 * param}}`, vLLM `{object: "error", message, type, code}`, Ollama sometimes `{error: "text"}`,
 * FastAPI-based proxies `{detail: ...}`; anything else is quoted (shortened) as plain text.
 */
import {
  LlmAuthError,
  LlmBadRequestError,
  LlmError,
  LlmQuotaError,
  LlmRateLimitError,
  LlmServerError,
  redactSecret,
  type LlmErrorDetails,
} from './errors.ts';
import { isRetryableStatus } from './retry-policy.ts';

export interface ServerErrorInfo {
  message?: string;
  code?: string;
  type?: string;
  param?: string;
}

const MAX_QUOTED_BODY_CHARS = 300;

/** Reads whatever error information the body holds; never throws. */
export function parseServerError(bodyText: string): ServerErrorInfo {
  let body: unknown;
  try {
    body = JSON.parse(bodyText);
  } catch {
    const text = stripHtml(bodyText).trim();
    return text ? { message: shorten(text) } : {};
  }
  if (!isRecord(body)) return {};
  const source = isRecord(body.error) ? body.error : body;
  const info: ServerErrorInfo = {
    message: asText(source.message) ?? asText(body.error) ?? detailText(body.detail),
    code: asText(source.code),
    type: asText(source.type),
    param: asText(source.param),
  };
  if (info.message === undefined && info.code === undefined && info.type === undefined) {
    info.message = shorten(bodyText.trim());
  }
  return info;
}

/** The typed error for one HTTP failure. `apiKey` is only used to scrub it out of the message. */
export function errorFromHttpStatus(
  status: number,
  statusText: string,
  bodyText: string,
  retryAfterMs: number | undefined,
  apiKey: string | undefined,
): LlmError {
  const info = parseServerError(bodyText);
  const details: LlmErrorDetails = {
    status,
    code: info.code,
    type: info.type,
    param: info.param,
    retryAfterMs,
    retryable: isRetryableStatus(status),
  };
  const head = `HTTP ${status}${statusText ? ` ${statusText}` : ''}`;
  const serverSays = info.message ? `: ${info.message}` : '';
  const codeNote = info.code && !(info.message ?? '').includes(info.code) ? ` [${info.code}]` : '';
  // A 404 means a wrong model name or a wrong base URL (often a missing /v1); say so.
  const hint = status === 404 ? ' (check the model name, and the base URL: most servers expect it to end in /v1)' : '';
  const message = redactSecret(`LLM request failed with ${head}${serverSays}${codeNote}${hint}`, apiKey);

  if (status === 401 || status === 403) return new LlmAuthError(message, details);
  if (status === 429) {
    return info.code === 'insufficient_quota' || info.type === 'insufficient_quota'
      ? new LlmQuotaError(message, details)
      : new LlmRateLimitError(message, details);
  }
  if (status === 400 || status === 422) return new LlmBadRequestError(message, details);
  if (status >= 500) return new LlmServerError(message, details);
  return new LlmError(message, details);
}

function detailText(detail: unknown): string | undefined {
  if (typeof detail === 'string') return detail;
  if (detail === undefined) return undefined;
  try {
    return shorten(JSON.stringify(detail));
  } catch {
    return undefined;
  }
}

function asText(value: unknown): string | undefined {
  if (typeof value === 'string' && value.trim() !== '') return value;
  if (typeof value === 'number') return String(value);
  return undefined;
}

function stripHtml(text: string): string {
  return text.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ');
}

function shorten(text: string): string {
  return text.length > MAX_QUOTED_BODY_CHARS ? `${text.slice(0, MAX_QUOTED_BODY_CHARS)}…` : text;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
