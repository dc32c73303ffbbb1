/**
 * Explaining and scoring many neurons in one go, under one client (one budget): each neuron runs
 * as its own resumable explain job (job.ts), with the job id the neuron page uses too (neuronJobId), so a neuron explained alone and in a batch shares its finished steps.
 *
 * A neuron that fails is listed with its reason and the batch goes on with the next. What no
 * other neuron could get past stops the batch: the budget is spent, the account's quota is
 * exhausted, the key is refused, the settings are wrong, or the caller stopped it. Neurons that
 * finished before are kept (each result is saved as soon as it is ready).
 */
import type { NeuronRecord } from '../activations/records.ts';
import { isAbortError, LlmAuthError, LlmBudgetExceededError, LlmConfigError, LlmQuotaError } from '../llm/errors.ts';
import type { ChatCompleter } from '../llm/types.ts';
import { estimateNeuronCost, type NeuronCostEstimate } from './estimate-neuron-cost.ts';
import { neuronJobId, runExplainJob, type JobStore } from './job.ts';
import type { NeuronPipelineResult, PipelineOptions, PipelineProgress } from './pipeline.ts';

export interface BatchNeuron {
  layer: number;
  neuron: number;
}

/** Why a batch stopped before its last neuron. */
export type BatchStopReason = 'budget' | 'quota' | 'auth' | 'settings' | 'stopped';

export interface BatchProgress {
  /** Neurons finished (done or failed) so far, of `total`. */
  finished: number;
  total: number;
  current: BatchNeuron | null;
  step?: PipelineProgress;
}

export interface BatchReport {
  done: { neuron: BatchNeuron; result: NeuronPipelineResult }[];
  failed: { neuron: BatchNeuron; message: string }[];
  /** Set when the batch stopped early: why, in words, and at which neuron. */
  stopped: { reason: BatchStopReason; message: string; neuron: BatchNeuron } | null;
}

export interface BatchOptions {
  scanId: string;
  neurons: readonly BatchNeuron[];
  /** A neuron's record (undefined when the dataset has none). */
  readRecord: (neuron: BatchNeuron) => Promise<NeuronRecord | undefined>;
  client: ChatCompleter;
  /** The endpoint the client talks to (part of each neuron's job id). */
  endpoint: string;
  jobStore: JobStore;
  options: PipelineOptions;
  /** Stores a neuron's result (called before the batch moves on). */
  save: (result: NeuronPipelineResult) => Promise<void>;
  signal?: AbortSignal;
  onProgress?: (progress: BatchProgress) => void;
  onNeuron?: (outcome: { neuron: BatchNeuron; result?: NeuronPipelineResult; message?: string }) => void;
}

const name = (n: BatchNeuron) => `${n.layer}:${n.neuron}`;

/** The reason an error stops the whole batch, or null when it concerns this neuron only. */
export function batchStopReason(error: unknown, signal?: AbortSignal): BatchStopReason | null {
  if (signal?.aborted || isAbortError(error)) return 'stopped';
  if (error instanceof LlmBudgetExceededError) return 'budget';
  if (error instanceof LlmQuotaError) return 'quota';
  if (error instanceof LlmAuthError) return 'auth';
  if (error instanceof LlmConfigError) return 'settings';
  return null;
}

function stopMessage(reason: BatchStopReason, error: unknown, at: BatchNeuron): string {
  const detail = (error as Error)?.message ?? String(error);
  switch (reason) {
    case 'budget':
      return `The budget ran out at neuron ${name(at)}: its next request would have gone over it (${detail})`;
    case 'quota':
      return `The LLM account's quota is exhausted (at neuron ${name(at)}): ${detail}`;
    case 'auth':
      return `The endpoint refused the key (at neuron ${name(at)}): ${detail}`;
    case 'settings':
      return `The LLM settings cannot be used: ${detail}`;
    case 'stopped':
      return `Stopped at neuron ${name(at)}`;
  }
}

export async function runExplainBatch(batch: BatchOptions): Promise<BatchReport> {
  const { neurons, signal, options } = batch;
  const report: BatchReport = { done: [], failed: [], stopped: null };
  const progress = (current: BatchNeuron | null, step?: PipelineProgress) =>
    batch.onProgress?.({ finished: report.done.length + report.failed.length, total: neurons.length, current, step });
  for (const neuron of neurons) {
    progress(neuron);
    try {
      signal?.throwIfAborted();
      const record = await batch.readRecord(neuron);
      if (!record) throw new Error('this dataset has no record of it');
      const jobId = await neuronJobId(batch.scanId, neuron, options, batch.endpoint);
      const { neurons: [result] } = await runExplainJob(batch.client, { jobId, records: [record], options }, batch.jobStore, {
        signal,
        onProgress: (p) => progress(neuron, p.step),
      });
      await batch.save(result);
      report.done.push({ neuron, result });
      batch.onNeuron?.({ neuron, result });
    } catch (error) {
      const reason = batchStopReason(error, signal);
      if (reason) {
        report.stopped = { reason, message: stopMessage(reason, error, neuron), neuron };
        break;
      }
      const message = (error as Error)?.message ?? String(error);
      report.failed.push({ neuron, message });
      batch.onNeuron?.({ neuron, message });
    }
  }
  progress(null);
  return report;
}

/** The estimated cost of explaining and scoring these records, summed (costUsd null when the model's price is unknown). */
export function estimateBatchCost(records: readonly NeuronRecord[], model: string, explanations = 1): NeuronCostEstimate {
  const total: NeuronCostEstimate = { requests: 0, promptTokens: 0, completionTokens: 0, costUsd: 0 };
  for (const record of records) {
    const e = estimateNeuronCost(record, model, { explanations });
    total.requests += e.requests;
    total.promptTokens += e.promptTokens;
    total.completionTokens += e.completionTokens;
    total.costUsd = e.costUsd === null || total.costUsd === null ? null : total.costUsd + e.costUsd;
  }
  return total;
}
