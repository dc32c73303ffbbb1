/**
 * A resumable explain-and-score job over many neurons. Every finished step (a neuron's
 * explanations, one simulation of one explanation on one record, a binary score, a neuron's final
 * result) is written to a `JobStore` before the job moves on, keyed by job id and step key.
 * Running the job again with the same id and inputs (after a crash, a cancel, a closed tab) recalls
 * the stored steps instead of asking the LLM again, and yields the same final result.
 *
 * The store also keeps a fingerprint of the inputs (records and options); reusing a job id with
 * different inputs is refused rather than silently mixing results.
 *
 * Neurons run one after another (their simulations run concurrently, bounded by the client).
 */
import type { NeuronRecord } from '../activations/records.ts';
import { canonicalJson } from '../llm/response-cache.ts';
import { sha256Hex } from '../llm/sha256.ts';
import type { ChatCompleter } from '../llm/types.ts';
import {
  checkNeuronRecord,
  explainAndScoreNeuron,
  type NeuronPipelineResult,
  type PipelineCallOptions,
  type PipelineOptions,
  type PipelineProgress,
  simulatorFor,
  type StepRunner,
} from './pipeline.ts';

/**
 * Where a job keeps its finished steps. Values are plain JSON data. `get` resolves undefined for a
 * step never stored. A store must not report a `put` done before the value is durable.
 */
/**
 * The jobs of one neuron of a dataset share this prefix (deleting the neuron's explanations deletes
 * its jobs by it).
 */
export const neuronJobPrefix = (scanId: string, neuron: { layer: number; neuron: number }): string => `neuron/${scanId}/${neuron.layer}:${neuron.neuron}/`;

/**
 * The id of one neuron's explain job: the neuron page, an Explorer batch and the walkthrough all
 * use it, so a neuron explained in one place recalls (or resumes) its finished steps in another.
 * Everything that decides the answers is in it (the options and the endpoint); a hash keeps it short.
 */
export async function neuronJobId(scanId: string, neuron: { layer: number; neuron: number }, options: PipelineOptions, endpoint: string): Promise<string> {
  return `${neuronJobPrefix(scanId, neuron)}${(await sha256Hex(canonicalJson({ options, endpoint: endpoint.trim() }))).slice(0, 24)}`;
}

export interface JobStore {
  get(jobId: string, key: string): Promise<unknown | undefined>;
  put(jobId: string, key: string, value: unknown): Promise<void>;
}

/** A JobStore in memory (tests, and jobs that need not survive a reload). */
export class MemoryJobStore implements JobStore {
  private readonly entries = new Map<string, string>();

  /** Number of stored steps over all jobs. */
  get size(): number {
    return this.entries.size;
  }

  async get(jobId: string, key: string): Promise<unknown | undefined> {
    const stored = this.entries.get(JSON.stringify([jobId, key]));
    // Stored as JSON text, as a persistent store would, so callers can't mutate stored results.
    return stored === undefined ? undefined : JSON.parse(stored);
  }

  async put(jobId: string, key: string, value: unknown): Promise<void> {
    this.entries.set(JSON.stringify([jobId, key]), JSON.stringify(value));
  }
}

export class JobError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JobError';
  }
}

export interface ExplainJobSpec {
  /** Names the job in the store; reuse it to resume. */
  jobId: string;
  records: NeuronRecord[];
  options: PipelineOptions;
}

export interface JobProgress {
  /** Position of the neuron in the job's records. */
  neuron: number;
  neurons: number;
  /** Progress inside the current neuron (absent when its result was recalled whole). */
  step?: PipelineProgress;
  /** True when the neuron's result came from the store. */
  recalled?: boolean;
}

export interface ExplainJobCallOptions {
  signal?: AbortSignal;
  onProgress?: (progress: JobProgress) => void;
  /** Called with each neuron's result as soon as it is stored. */
  onNeuronDone?: (result: NeuronPipelineResult, neuron: number) => void;
  /** Also compute ablation scores with a model (see PipelineCallOptions.ablation). */
  ablation?: PipelineCallOptions['ablation'];
}

export interface ExplainJobResult {
  jobId: string;
  neurons: NeuronPipelineResult[];
}

const MANIFEST_KEY = 'manifest';
const JOB_FORMAT_VERSION = 1;

interface JobManifest {
  version: number;
  fingerprint: string;
  neurons: number;
}

/** A stable hash of everything that decides a job's results (callbacks are not inputs). */
export async function jobFingerprint(records: readonly NeuronRecord[], options: PipelineOptions): Promise<string> {
  return sha256Hex(canonicalJson({ version: JOB_FORMAT_VERSION, records, options }));
}

function neuronPrefix(position: number, record: NeuronRecord): string {
  return `neuron/${position}-L${record.neuron_id.layer_index}N${record.neuron_id.neuron_index}`;
}

/** Step persistence for one neuron: recall a stored step, or compute it and store it first. */
function storedSteps(store: JobStore, jobId: string, prefix: string): StepRunner {
  return {
    async run<T>(key: string, compute: () => Promise<T>): Promise<T> {
      const fullKey = `${prefix}/${key}`;
      const stored = await store.get(jobId, fullKey);
      if (stored !== undefined) return stored as T;
      const value = await compute();
      await store.put(jobId, fullKey, value);
      return value;
    },
  };
}

/** Runs (or resumes) an explain-and-score job; see the file comment. */
export async function runExplainJob(
  client: ChatCompleter,
  spec: ExplainJobSpec,
  store: JobStore,
  call: ExplainJobCallOptions = {},
): Promise<ExplainJobResult> {
  if (typeof spec?.jobId !== 'string' || spec.jobId.trim() === '') throw new JobError('jobId must be a non-empty string');
  if (!Array.isArray(spec.records)) throw new JobError('records must be an array of neuron records');
  spec.records.forEach((record, i) => {
    try {
      checkNeuronRecord(record);
    } catch (err) {
      throw new JobError(`records[${i}]: ${err instanceof Error ? err.message : String(err)}`);
    }
  });
  const { jobId, records, options } = spec;
  const fingerprint = await jobFingerprint(records, options);
  const manifest = (await store.get(jobId, MANIFEST_KEY)) as JobManifest | undefined;
  if (manifest === undefined) {
    await store.put(jobId, MANIFEST_KEY, { version: JOB_FORMAT_VERSION, fingerprint, neurons: records.length });
  } else if (manifest.fingerprint !== fingerprint || manifest.version !== JOB_FORMAT_VERSION) {
    throw new JobError(
      `job "${jobId}" was started with different records or options; use a new job id (or the original inputs to resume it)`,
    );
  }

  const notify = (progress: JobProgress) => {
    try {
      call.onProgress?.(progress);
    } catch {
      // A faulty progress display must not break the job.
    }
  };
  const simulator = simulatorFor(client, options);
  const results: NeuronPipelineResult[] = [];
  for (const [position, record] of records.entries()) {
    call.signal?.throwIfAborted();
    const prefix = neuronPrefix(position, record);
    const resultKey = `${prefix}/result`;
    let result = (await store.get(jobId, resultKey)) as NeuronPipelineResult | undefined;
    if (result !== undefined) {
      notify({ neuron: position, neurons: records.length, recalled: true });
    } else {
      result = await explainAndScoreNeuron(record, client, options, {
        signal: call.signal,
        steps: storedSteps(store, jobId, prefix),
        simulator,
        ...(call.ablation ? { ablation: call.ablation } : {}),
        onProgress: (step) => notify({ neuron: position, neurons: records.length, step }),
      });
      // Through JSON, so a fresh result is exactly what a resumed run would read back.
      result = JSON.parse(JSON.stringify(result)) as NeuronPipelineResult;
      await store.put(jobId, resultKey, result);
    }
    results.push(result);
    call.onNeuronDone?.(result, position);
  }
  return { jobId, neurons: results };
}
