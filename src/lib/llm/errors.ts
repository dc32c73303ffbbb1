/**
 * Typed errors of the LLM client. Every error is an `LlmError` with a one-line, human-readable
 * message (HTTP status and the server's own message included where there was one), plus
 * machine-readable fields so callers can decide what to do (retry, fall back, ask for a key).
 * The `openai` SDK's errors are mapped onto these in `transport.ts`.
 *
 * No error message or field ever contains the API key: messages from the server are scrubbed
 * of it before they are stored (see `redactSecret`).
 */

export interface LlmErrorDetails {
  /** HTTP status, when the server answered. */
  status?: number;
  /** The server's machine-readable code, e.g. `insufficient_quota`, `unsupported_parameter`. */
  code?: string;
  /** The server's error type, e.g. `invalid_request_error`. */
  type?: string;
  /** The request parameter the server complained about, e.g. `max_tokens`. */
  param?: string;
  /** Whether trying the same request again later may succeed. */
  retryable?: boolean;
  cause?: unknown;
}

export class LlmError extends Error {
  readonly status: number | undefined;
  readonly code: string | undefined;
  readonly type: string | undefined;
  readonly param: string | undefined;
  readonly retryable: boolean;
  /** How many HTTP attempts were made before giving up (set by the client). */
  attempts = 0;

  constructor(message: string, details: LlmErrorDetails = {}) {
    super(oneLine(message), details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'LlmError';
    this.status = details.status;
    this.code = details.code;
    this.type = details.type;
    this.param = details.param;
    this.retryable = details.retryable ?? false;
  }
}

/** 401/403: the key is missing, wrong, or lacks access to the model. */
export class LlmAuthError extends LlmError {
  constructor(message: string, details: LlmErrorDetails = {}) {
    super(message, { ...details, retryable: false });
    this.name = 'LlmAuthError';
  }
}

/** 429 `insufficient_quota`: the account is out of credit. Not retried: waiting won't fix it. */
export class LlmQuotaError extends LlmError {
  constructor(message: string, details: LlmErrorDetails = {}) {
    super(message, { ...details, retryable: false });
    this.name = 'LlmQuotaError';
  }
}

/** 429 rate limit: too many requests or tokens per minute. Retried with backoff. */
export class LlmRateLimitError extends LlmError {
  constructor(message: string, details: LlmErrorDetails = {}) {
    super(message, { ...details, retryable: true });
    this.name = 'LlmRateLimitError';
  }
}

/** 400 (and 422): the server rejected the request itself, e.g. an unsupported parameter. */
export class LlmBadRequestError extends LlmError {
  constructor(message: string, details: LlmErrorDetails = {}) {
    super(message, { ...details, retryable: false });
    this.name = 'LlmBadRequestError';
  }
}

/** 5xx: the server failed. Retried. */
export class LlmServerError extends LlmError {
  constructor(message: string, details: LlmErrorDetails = {}) {
    super(message, { ...details, retryable: true });
    this.name = 'LlmServerError';
  }
}

/** A 200 whose body is not a chat completion: non-JSON, truncated JSON, no `choices`, ... */
export class LlmResponseError extends LlmError {
  constructor(message: string, details: LlmErrorDetails = {}) {
    super(message, { retryable: false, ...details });
    this.name = 'LlmResponseError';
  }
}

/** The server did not answer (fully) within the per-request timeout. Retried. */
export class LlmTimeoutError extends LlmError {
  constructor(message: string, details: LlmErrorDetails = {}) {
    super(message, { ...details, retryable: true });
    this.name = 'LlmTimeoutError';
  }
}

/** The connection failed: refused, reset, DNS, CORS (browsers report all of these alike). Retried. */
export class LlmNetworkError extends LlmError {
  constructor(message: string, details: LlmErrorDetails = {}) {
    super(message, { ...details, retryable: true });
    this.name = 'LlmNetworkError';
  }
}

/**
 * The caller cancelled (per-call signal, job signal or `cancelAll()`). Named `AbortError` like
 * the DOMException fetch throws, so `err.name === 'AbortError'` checks keep working.
 */
export class LlmAbortError extends LlmError {
  constructor(message = 'LLM request cancelled', details: LlmErrorDetails = {}) {
    super(message, { ...details, retryable: false });
    this.name = 'AbortError';
  }
}

/** Sending the request would exceed the configured budget; nothing was sent. */
export class LlmBudgetExceededError extends LlmError {
  constructor(
    message: string,
    readonly limit: { kind: 'cost' | 'tokens'; max: number; spent: number; reserved: number; thisRequest: number },
  ) {
    super(message, { retryable: false });
    this.name = 'LlmBudgetExceededError';
  }
}

/** The client was configured or called wrongly (bad base URL, empty messages, ...). */
export class LlmConfigError extends LlmError {
  constructor(message: string) {
    super(message, { retryable: false });
    this.name = 'LlmConfigError';
  }
}

/** Our cancellation error for an abort `reason` of any shape (a string, an Error, ours, none). */
export function abortErrorFrom(reason: unknown): LlmAbortError {
  if (reason instanceof LlmAbortError) return new LlmAbortError(reason.message, { cause: reason });
  const why = typeof reason === 'string' ? reason : reason instanceof Error && reason.name !== 'AbortError' ? reason.message : '';
  return new LlmAbortError(why ? `LLM request cancelled: ${why}` : 'LLM request cancelled', { cause: reason });
}

/** True for any cancellation error: ours, fetch's DOMException, or an abort reason we were handed. */
export function isAbortError(err: unknown): boolean {
  return err instanceof LlmAbortError || (err instanceof Error && err.name === 'AbortError');
}

/**
 * Whether the server rejected the request because of parameter `param` (e.g. `temperature`,
 * `logprobs`, `max_tokens`), judged from the structured `param`/`code` fields when the server
 * sends them and from the wording of the message otherwise.
 */
export function isParameterUnsupported(err: unknown, param: string): boolean {
  if (!(err instanceof LlmBadRequestError)) return false;
  if (err.param === param && (err.code === 'unsupported_parameter' || err.code === 'unsupported_value')) return true;
  const message = err.message.toLowerCase();
  const mentions = new RegExp(`(^|[^a-z_])'?${escapeRegExp(param.toLowerCase())}'?([^a-z_]|$)`).test(message);
  return mentions && /not supported|unsupported|does not support|not allowed|not available/.test(message);
}

/**
 * Whether the model refused logprobs (reasoning models: "logprobs are not supported with
 * reasoning models"), so the caller should fall back to a sampling-based method.
 */
export function isLogprobsUnsupported(err: unknown): boolean {
  return isParameterUnsupported(err, 'logprobs') || isParameterUnsupported(err, 'top_logprobs');
}

/** Whether the model refused `max_tokens`, so the caller should send `max_completion_tokens`. */
export function isMaxTokensUnsupported(err: unknown): boolean {
  return isParameterUnsupported(err, 'max_tokens');
}

/** Replaces every occurrence of `secret` in `text`, so server messages can't leak the key. */
export function redactSecret(text: string, secret: string | undefined): string {
  if (!secret) return text;
  return text.split(secret).join('[redacted]');
}

function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
