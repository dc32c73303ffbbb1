/**
 * `neurolens simulate --record <NeuronRecord.json> --explanation "<text>"`: predicts the neuron's
 * activations on the record's scoring excerpts (the same 5 top + 5 random ones `explain` scores
 * on) from the explanation alone, and prints one SequenceSimulation per line (the paper's format,
 * plus Neurolens' `simulation_mode` and `coverage`).
 */
import { serializeJsonl } from '../../lib/explain/formats.ts';
import { selectRecords } from '../../lib/explain/pipeline.ts';
import { createSimulator } from '../../lib/explain/simulator.ts';
import { parseCommandArgs } from '../cli-args.ts';
import { CliError } from '../cli-error.ts';
import {
  clientFromFlags,
  DEFAULT_BASE_URL,
  DEFAULT_MODEL,
  integerFlag,
  LLM_OPTIONS,
  modeFlag,
  readNeuronRecord,
  stringFlag,
  toCliError,
  type FlagValues,
} from '../llm-options.ts';

const HELP = `usage: neurolens simulate --record <NeuronRecord.json> --explanation "<text>" [options]

Simulates the neuron from the explanation on the record's scoring excerpts (5 top-activating
records not used for explaining, and 5 random records) and prints one SequenceSimulation per line.

  --explanation E   the explanation to simulate (required)
  --model M         LLM model (default ${DEFAULT_MODEL})
  --base-url URL    OpenAI-compatible server (default ${DEFAULT_BASE_URL}; key from OPENAI_API_KEY)
  --mode M          logprob (default; falls back to sampled without logprobs), sampled, prompt-logprob
  --n K             sampled mode: samples averaged per excerpt (default 1)
  --reasoning       the model is a reasoning model (no temperature, max_completion_tokens)
  --budget-usd X    refuse requests beyond this estimated spend
  --cache-dir DIR   cache LLM answers on disk
  --concurrency N   LLM requests in flight at once (default 4)`;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs({ args: argv, options: { ...LLM_OPTIONS, explanation: { type: 'string' } } }, HELP) as { values: FlagValues };
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const explanation = stringFlag(values, 'explanation');
  if (explanation === undefined || explanation.trim() === '') {
    throw new CliError('--explanation "<text>" is required', 2);
  }
  const mode = modeFlag(values);
  const samples = integerFlag(values, 'n', 1);
  const record = await readNeuronRecord(values);
  const client = clientFromFlags(values);
  try {
    const selected = selectRecords(record);
    const records = [...selected.scoreTop, ...selected.scoreRandom];
    if (records.length === 0) throw new CliError('the record has no excerpts to simulate on');
    const simulator = createSimulator(client, {
      model: stringFlag(values, 'model') ?? DEFAULT_MODEL,
      mode,
      samples,
      reasoningModel: values.reasoning === true,
    });
    const simulations = await simulator.simulate(
      explanation,
      records.map((r) => r.tokens),
    );
    process.stdout.write(serializeJsonl(simulations, 'SequenceSimulation'));
  } catch (err) {
    throw toCliError(err);
  }
}
