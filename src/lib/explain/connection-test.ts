/**
 * "Test connection" for an LLM endpoint: one tiny chat request asking for logprobs tells whether
 * the endpoint answers at all, whether it returns logprobs, and so which simulation mode the
 * explain pipeline will run on it. The judgement is the simulator's own (`requireLogprobs`,
 * `isLogprobsUnavailable`, `plannedSimulationMode`), so this report cannot disagree with what a
 * run then does.
 */
import type { SimulationMode } from './explanation-types.ts';
import { CONNECTION_TEST_PROMPT } from './prompt-format.ts';
import { isLogprobsUnavailable, plannedSimulationMode, type SimulatorOptions } from './simulator.ts';
import { requireLogprobs } from './simulator-logprob.ts';
import { createChatClient } from '../llm/client.ts';
import { isAbortError } from '../llm/errors.ts';

export interface ConnectionSettings {
  baseUrl: string;
  model: string;
  apiKey?: string;
}

export type ConnectionReport =
  | {
      ok: true;
      /** Whether the answer carried logprobs (false: refused, or silently left out). */
      logprobs: boolean;
      /** The mode simulations will run in with the pipeline's default simulation options. */
      mode: SimulationMode;
      /** Why logprobs are unavailable, in the server's words where it gave any. */
      detail?: string;
      latencyMs: number;
    }
  | { ok: false; error: string };

/** Seconds to wait for the answer: a cold local model may take a while to load. */
const TIMEOUT_MS = 60_000;

/**
 * Sends the probe and reports; never throws except when `signal` aborts. `simulation` is the
 * simulator configuration whose mode is reported (default: the pipeline's default).
 */
export async function testConnection(
  settings: ConnectionSettings,
  signal?: AbortSignal,
  simulation: Pick<SimulatorOptions, 'mode' | 'fallbackToSampled' | 'reasoningModel'> = {},
): Promise<ConnectionReport> {
  const model = settings.model.trim();
  if (model === '') return { ok: false, error: 'enter the name of a model the server serves' };
  const started = performance.now();
  let logprobs = true;
  let detail: string | undefined;
  try {
    const client = createChatClient({ baseUrl: settings.baseUrl, apiKey: settings.apiKey, maxRetries: 0, timeoutMs: TIMEOUT_MS });
    const response = await client.complete(
      {
        model,
        messages: [{ role: 'user', content: CONNECTION_TEST_PROMPT }],
        max_tokens: 1,
        temperature: 0,
        logprobs: true,
        top_logprobs: 5,
      },
      { signal },
    );
    requireLogprobs(response, model);
  } catch (err) {
    if (signal?.aborted || isAbortError(err)) throw err;
    if (!isLogprobsUnavailable(err)) return { ok: false, error: (err as Error).message };
    logprobs = false;
    detail = (err as Error).message;
  }
  const latencyMs = performance.now() - started;
  return { ok: true, logprobs, mode: plannedSimulationMode(simulation, logprobs), detail, latencyMs };
}
