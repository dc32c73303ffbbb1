/**
 * One explain → simulate → score run of one neuron of a dataset, with the LLM settings the user
 * chose: a chat client made from them (the store's response cache, an optional budget), the
 * resumable explain job (its steps kept in the store's job store, so an interrupted run resumes),
 * and the result stored with the dataset under a source naming the model and the endpoint (a
 * scripted endpoint's source says "scripted", see src/lib/explain/scripted-llm.ts).
 */
import type { NeuronRecord } from '../lib/activations/records.ts';
import { neuronJobId, runExplainJob, type JobProgress, type JobStore } from '../lib/explain/job.ts';
import type { NeuronPipelineResult, PipelineOptions } from '../lib/explain/pipeline.ts';
import { isScriptedEndpoint } from '../lib/explain/scripted-llm.ts';
import { createChatClient, type UsageTotals } from '../lib/llm/client.ts';
import { defaultPricingFor } from '../lib/llm/cost.ts';
import type { ResponseCache } from '../lib/llm/response-cache.ts';
import type { LlmSettings } from '../lib/llm/settings.ts';

/** What a run needs of the store (NeurolensStore has all of it). */
export interface ExplainStore {
  responseCache(): ResponseCache;
  jobStore(): JobStore;
  putPipelineResult(scanId: string, result: NeuronPipelineResult, source?: string): Promise<void>;
}

export interface ExplainNeuronRequest {
  /** The dataset the record comes from (and where the result is stored). */
  scanId: string;
  record: NeuronRecord;
  llm: Pick<LlmSettings, 'baseUrl' | 'model' | 'apiKey'>;
  /** Candidate explanations to ask for (default 1). */
  explanations?: number;
  /** Score these explanations instead of asking for new ones. */
  givenExplanations?: string[];
  /** Most to spend, in US dollars; applied where the model's price is known. */
  budgetUsd?: number;
  /** Store the result with the dataset (default true). */
  keep?: boolean;
}

export interface ExplainNeuronResult {
  result: NeuronPipelineResult;
  usage: UsageTotals;
  /** `<model> @ <endpoint>`, as stored with the explanations. */
  source: string;
  /** The answers came from the built-in scripted LLM, not a language model. */
  scripted: boolean;
}

/**
 * What the app asks when it explains a neuron: n distinct explanations (the store keys explanations
 * by their text, so a repeat would add nothing). The same everywhere, so jobs are shared.
 */
export const explainOptions = (model: string, explanations: number): PipelineOptions => ({ model, explanations, explainer: { distinct: true } });

/** How a result's origin is recorded: the model and the endpoint that answered. */
export const llmSource = (llm: Pick<LlmSettings, 'baseUrl' | 'model'>): string => `${llm.model.trim()} @ ${llm.baseUrl.trim()}`;

export async function explainNeuron(
  store: ExplainStore,
  request: ExplainNeuronRequest,
  call: { signal?: AbortSignal; onProgress?: (progress: JobProgress) => void } = {},
): Promise<ExplainNeuronResult> {
  const model = request.llm.model.trim();
  const baseUrl = request.llm.baseUrl.trim();
  const client = createChatClient({
    baseUrl,
    apiKey: request.llm.apiKey.trim() || undefined,
    cache: store.responseCache(),
    // A cost limit needs a known price (the client refuses to guess one).
    budget: request.budgetUsd && defaultPricingFor(model) ? { maxCostUsd: request.budgetUsd } : undefined,
    signal: call.signal,
  });
  const options = request.givenExplanations ? { model, givenExplanations: request.givenExplanations } : explainOptions(model, request.explanations ?? 1);
  const { layer_index: layer, neuron_index: neuron } = request.record.neuron_id;
  const jobId = await neuronJobId(request.scanId, { layer, neuron }, options, baseUrl);
  const job = await runExplainJob(client, { jobId, records: [request.record], options }, store.jobStore(), call);
  const result = job.neurons[0];
  const source = llmSource(request.llm);
  if (request.keep !== false) await store.putPipelineResult(request.scanId, result, source);
  return { result, usage: client.usage(), source, scripted: isScriptedEndpoint(baseUrl) };
}
