/**
 * The option handling shared by the LLM-using commands (explain, simulate, score): the LLM client
 * flags, reading a NeuronRecord file, pipeline options and the score summary, and turning library
 * errors into one-line CLI errors.
 */
import { readFile } from 'node:fs/promises';
import type { ParseArgsConfig } from 'node:util';
import { HELP_OPTION } from './cli-args.ts';
import type { NeuronRecord } from '../lib/activations/records.ts';
import { BinaryScorerError } from '../lib/explain/detection-scorer.ts';
import type { SimulationMode } from '../lib/explain/explanation-types.ts';
import { ExplanationError } from '../lib/explain/explainer.ts';
import { FormatError, parseNeuronRecord } from '../lib/explain/formats.ts';
import { JobError, jobFingerprint, runExplainJob } from '../lib/explain/job.ts';
import { FileJobStore, JobStoreError } from '../lib/explain/job-store.node.ts';
import { explainAndScoreNeuron, PipelineError, type NeuronPipelineResult, type PipelineOptions } from '../lib/explain/pipeline.ts';
import { PromptFormatError } from '../lib/explain/prompt-format.ts';
import { SimulationError } from '../lib/explain/simulator.ts';
import { LogprobsMissingError } from '../lib/explain/simulator-logprob.ts';
import { PromptLogprobsMissingError } from '../lib/explain/simulator-prompt-logprob.ts';
import { ScoringError } from '../lib/explain/scoring.ts';
import { CalibrationError } from '../lib/explain/calibration.ts';
import { NormalizeError } from '../lib/explain/normalize.ts';
import { createChatClient, type ChatClient } from '../lib/llm/client.ts';
import { LlmError } from '../lib/llm/errors.ts';
import { FileResponseCache } from '../lib/llm/response-cache.node.ts';
import { CliError } from './cli-error.ts';

export const DEFAULT_BASE_URL = 'https://api.openai.com/v1';
export const DEFAULT_MODEL = 'gpt-4o-mini';
const MODES: readonly SimulationMode[] = ['logprob', 'sampled', 'prompt-logprob'];

/** Flags every LLM-using command accepts. */
export const LLM_OPTIONS = {
  record: { type: 'string' },
  'base-url': { type: 'string' },
  model: { type: 'string' },
  mode: { type: 'string' },
  n: { type: 'string' },
  'budget-usd': { type: 'string' },
  'cache-dir': { type: 'string' },
  concurrency: { type: 'string' },
  reasoning: { type: 'boolean' },
  ...HELP_OPTION,
} as const satisfies ParseArgsConfig['options'];

export type FlagValues = Record<string, string | boolean | string[] | undefined>;

/** A positive integer flag, or `fallback` when absent. */
export function integerFlag(values: FlagValues, name: string, fallback: number): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (typeof raw !== 'string' || !Number.isInteger(n) || n < 1) {
    throw new CliError(`--${name} must be a positive integer, got "${String(raw)}"`, 2);
  }
  return n;
}

export function stringFlag(values: FlagValues, name: string): string | undefined {
  const raw = values[name];
  return typeof raw === 'string' ? raw : undefined;
}

/** The simulation mode flag, checked. */
export function modeFlag(values: FlagValues): SimulationMode {
  const mode = stringFlag(values, 'mode') ?? 'logprob';
  if (!MODES.includes(mode as SimulationMode)) {
    throw new CliError(`--mode must be one of ${MODES.join(', ')}, got "${mode}"`, 2);
  }
  return mode as SimulationMode;
}

/** The LLM client described by the flags and OPENAI_API_KEY. */
export function clientFromFlags(values: FlagValues, env: NodeJS.ProcessEnv = process.env): ChatClient {
  const baseUrl = stringFlag(values, 'base-url') ?? DEFAULT_BASE_URL;
  let host: string;
  try {
    host = new URL(baseUrl).hostname;
  } catch {
    throw new CliError(`--base-url "${baseUrl}" is not a URL (e.g. http://127.0.0.1:8000/v1)`, 2);
  }
  const apiKey = env.OPENAI_API_KEY?.trim() || undefined;
  if (!apiKey && host === 'api.openai.com') {
    throw new CliError(
      'OPENAI_API_KEY is not set; it is needed for api.openai.com (or use --base-url for a local server)',
    );
  }
  const budgetRaw = stringFlag(values, 'budget-usd');
  let budget: { maxCostUsd: number } | undefined;
  if (budgetRaw !== undefined) {
    const max = Number(budgetRaw);
    if (!Number.isFinite(max) || max <= 0) throw new CliError(`--budget-usd must be a positive number, got "${budgetRaw}"`, 2);
    budget = { maxCostUsd: max };
  }
  const cacheDir = stringFlag(values, 'cache-dir');
  try {
    return createChatClient({
      baseUrl,
      apiKey,
      concurrency: integerFlag(values, 'concurrency', 4),
      budget,
      cache: cacheDir ? new FileResponseCache(cacheDir) : undefined,
    });
  } catch (err) {
    throw toCliError(err);
  }
}

/** Reads and validates a NeuronRecord JSON file. */
export async function readNeuronRecord(values: FlagValues): Promise<NeuronRecord> {
  const file = stringFlag(values, 'record');
  if (file === undefined) throw new CliError('--record <NeuronRecord.json> is required', 2);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new CliError(`${file}: no such file`);
    throw new CliError(`${file}: cannot read (${err instanceof Error ? err.message : String(err)})`);
  }
  try {
    return parseNeuronRecord(text);
  } catch (err) {
    if (err instanceof FormatError) throw new CliError(`${file}: not a NeuronRecord: ${err.message}`);
    throw err;
  }
}

const LIBRARY_ERRORS = [
  LlmError,
  ExplanationError,
  SimulationError,
  LogprobsMissingError,
  PromptLogprobsMissingError,
  PipelineError,
  BinaryScorerError,
  JobError,
  JobStoreError,
  ScoringError,
  CalibrationError,
  NormalizeError,
  PromptFormatError,
  FormatError,
];

/** Library errors become one-line CLI errors; anything else (a bug) is passed on unchanged. */
export function toCliError(err: unknown): unknown {
  if (err instanceof CliError) return err;
  if (LIBRARY_ERRORS.some((type) => err instanceof type)) {
    return new CliError((err as Error).message.replace(/\s*\n\s*/g, ' '));
  }
  return err;
}

/** Pipeline options from the flags shared by explain and score. */
export function pipelineOptionsFromFlags(values: FlagValues, extra: Partial<PipelineOptions> = {}): PipelineOptions {
  const mode = modeFlag(values);
  return {
    model: stringFlag(values, 'model') ?? DEFAULT_MODEL,
    reasoningModel: values.reasoning === true,
    simulation: { mode, samples: integerFlag(values, 'samples', 1) },
    calibration: values.calibrate === true,
    detection: values.detection === true,
    fuzzing: values.fuzzing === true,
    ...extra,
  };
}

function formatScore(score: number | null | undefined): string {
  return typeof score === 'number' ? score.toFixed(3) : 'n/a';
}

/** One stderr line per explanation: headline score, top/random split, modes, coverage. */
export function writeScoreSummary(result: NeuronPipelineResult): void {
  for (const s of result.scores) {
    const extras = [
      s.calibrated ? `calibrated r2=${formatScore(s.calibrated.scores.rsquared_score)}` : '',
      s.detection ? `detection=${formatScore(s.detection.balanced_accuracy)}` : '',
      s.fuzzing ? `fuzzing=${formatScore(s.fuzzing.balanced_accuracy)}` : '',
    ].filter(Boolean);
    process.stderr.write(
      `score ${formatScore(s.all.ev_correlation_score)} (top ${formatScore(s.top.ev_correlation_score)}, random ${formatScore(
        s.random.ev_correlation_score,
      )}, ${s.simulation_modes.join('+') || 'no simulation'}, coverage ${s.all.coverage.toFixed(2)}${
        extras.length ? `, ${extras.join(', ')}` : ''
      }): ${s.explanation}\n`,
    );
  }
}

/** Runs the pipeline, through a file job store when --job-dir is given (resumable). */
export async function runPipelineFromFlags(
  client: ChatClient,
  record: NeuronRecord,
  options: PipelineOptions,
  jobDir: string | undefined,
): Promise<NeuronPipelineResult> {
  if (jobDir === undefined) return explainAndScoreNeuron(record, client, options);
  // The job id is derived from the inputs, so rerunning the same command resumes it.
  const jobId = `cli-${(await jobFingerprint([record], options)).slice(0, 24)}`;
  const result = await runExplainJob(client, { jobId, records: [record], options }, new FileJobStore(jobDir));
  return result.neurons[0];
}
