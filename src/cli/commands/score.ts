/**
 * `neurolens score --record <NeuronRecord.json> --explanation "<text>"`: simulates the given
 * explanation(s) on the record's scoring excerpts, scores them, and prints the
 * NeuronSimulationResults line (the paper's format) on stdout, with a summary per explanation
 * (all / top / random correlation, optional calibrated, detection and fuzzing scores) on stderr.
 */
import { serializeNeuronSimulationResults } from '../../lib/explain/formats.ts';
import { parseCommandArgs } from '../cli-args.ts';
import { CliError } from '../cli-error.ts';
import {
  clientFromFlags,
  DEFAULT_BASE_URL,
  DEFAULT_MODEL,
  integerFlag,
  LLM_OPTIONS,
  pipelineOptionsFromFlags,
  readNeuronRecord,
  runPipelineFromFlags,
  stringFlag,
  toCliError,
  writeScoreSummary,
  type FlagValues,
} from '../llm-options.ts';

const HELP = `usage: neurolens score --record <NeuronRecord.json> --explanation "<text>" [options]

Simulates each explanation on 5 top-activating records (not the ones an explanation would be
written from) and 5 random records, scores it (correlation of simulated and true activations),
and prints the NeuronSimulationResults line on stdout and a summary per explanation on stderr.

  --explanation E   an explanation to score (required; repeat the flag to score several)
  --model M         LLM model (default ${DEFAULT_MODEL})
  --base-url URL    OpenAI-compatible server (default ${DEFAULT_BASE_URL}; key from OPENAI_API_KEY)
  --mode M          logprob (default; falls back to sampled without logprobs), sampled, prompt-logprob
  --n K             sampled mode: samples averaged per excerpt (default 1)
  --reasoning       the model is a reasoning model (no temperature, max_completion_tokens)
  --calibrate       also report scores after a linear calibration on separate records
  --detection       also run the detection scorer (balanced accuracy)
  --fuzzing         also run the fuzzing scorer (balanced accuracy)
  --budget-usd X    refuse requests beyond this estimated spend
  --cache-dir DIR   cache LLM answers on disk
  --job-dir DIR     keep finished steps on disk; rerunning the same command resumes
  --concurrency N   LLM requests in flight at once (default 4)`;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(
    {
      args: argv,
      options: {
        ...LLM_OPTIONS,
        explanation: { type: 'string', multiple: true },
        calibrate: { type: 'boolean' },
        detection: { type: 'boolean' },
        fuzzing: { type: 'boolean' },
        'job-dir': { type: 'string' },
      },
    },
    HELP,
  ) as { values: FlagValues };
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const explanations = (values.explanation as string[] | undefined) ?? [];
  if (explanations.length === 0 || explanations.some((e) => e.trim() === '')) {
    throw new CliError('--explanation "<text>" is required (and must not be empty)', 2);
  }
  const samples = integerFlag(values, 'n', 1);
  const base = pipelineOptionsFromFlags(values, { givenExplanations: explanations });
  const options = { ...base, simulation: { ...base.simulation, samples } };
  const record = await readNeuronRecord(values);
  const client = clientFromFlags(values);
  try {
    const result = await runPipelineFromFlags(client, record, options, stringFlag(values, 'job-dir'));
    process.stdout.write(`${serializeNeuronSimulationResults(result.simulation_results)}\n`);
    writeScoreSummary(result);
  } catch (err) {
    throw toCliError(err);
  }
}
