/**
 * `neurolens explain --record <NeuronRecord.json>`: explains a neuron with an LLM, then simulates
 * and scores each explanation, and prints the NeuronSimulationResults line (the paper's format) on
 * stdout, with a one-line summary per explanation on stderr. `--no-score` only explains.
 */
import { generateExplanations } from '../../lib/explain/explainer.ts';
import { serializeNeuronSimulationResults } from '../../lib/explain/formats.ts';
import { selectRecords } from '../../lib/explain/pipeline.ts';
import { parseCommandArgs } from '../cli-args.ts';
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

const HELP = `usage: neurolens explain --record <NeuronRecord.json> [options]

Explains a neuron with an LLM from its top-activating records (5, interleaved with the 5 scored
ones), simulates each explanation on 5 other top records and 5 random records, and prints the
NeuronSimulationResults (the paper's JSON format, one line) on stdout; a summary line per
explanation goes to stderr.

  --n N             candidate explanations (default 1)
  --no-score        only explain: print {"neuron_id": ..., "explanations": [...]}
  --model M         LLM model (default ${DEFAULT_MODEL})
  --base-url URL    OpenAI-compatible server (default ${DEFAULT_BASE_URL}; key from OPENAI_API_KEY)
  --mode M          simulation: logprob (default; falls back to sampled without logprobs),
                    sampled, or prompt-logprob (vLLM only)
  --samples K       sampled mode: samples averaged per excerpt (default 1)
  --reasoning       the model is a reasoning model (no temperature, max_completion_tokens)
  --calibrate       also report scores after a linear calibration on separate records
  --detection       also run the detection scorer (balanced accuracy)
  --fuzzing         also run the fuzzing scorer (balanced accuracy)
  --budget-usd X    refuse requests beyond this estimated spend
  --cache-dir DIR   cache LLM answers on disk (reruns cost nothing)
  --job-dir DIR     keep finished steps on disk; rerunning the same command resumes
  --concurrency N   LLM requests in flight at once (default 4)`;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(
    {
      args: argv,
      options: {
        ...LLM_OPTIONS,
        'no-score': { type: 'boolean' },
        samples: { type: 'string' },
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
  const n = integerFlag(values, 'n', 1);
  const options = pipelineOptionsFromFlags(values, { explanations: n });
  const record = await readNeuronRecord(values);
  const client = clientFromFlags(values);
  try {
    if (values['no-score'] === true) {
      const selected = selectRecords(record, options.records);
      const explanations = await generateExplanations(client, selected.explain, {
        model: options.model,
        n,
        reasoningModel: options.reasoningModel,
      });
      process.stdout.write(`${JSON.stringify({ neuron_id: record.neuron_id, explanations })}\n`);
      return;
    }
    const result = await runPipelineFromFlags(client, record, options, stringFlag(values, 'job-dir'));
    process.stdout.write(`${serializeNeuronSimulationResults(result.simulation_results)}\n`);
    writeScoreSummary(result);
  } catch (err) {
    throw toCliError(err);
  }
}
