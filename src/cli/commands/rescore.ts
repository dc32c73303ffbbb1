/**
 * `neurolens rescore <results.jsonl|json>`: recomputes every explanation score from the stored
 * `true_activations` and `expected_activations` of NeuronSimulationResults (no LLM involved) and
 * prints one JSON line per scored explanation. Useful to check files written by other tools, or
 * by older Neurolens versions, against the current scoring rules.
 */
import { readFile } from 'node:fs/promises';
import { CliError } from '../cli-error.ts';
import { FormatError, parseAllNeuronSimulationResults } from '../../lib/explain/formats.ts';
import { rescoreScoredSimulation, ScoringError } from '../../lib/explain/scoring.ts';

const USAGE = `usage: neurolens rescore <NeuronSimulationResults.jsonl|.json|->

Recomputes ev_correlation_score, rsquared_score and absolute_dev_explained_score of every scored
explanation from the stored true and expected activations, and prints one JSON line each:
  {"explanation": ..., "ev_correlation_score": ..., "rsquared_score": ...,
   "absolute_dev_explained_score": ..., "layer_index": ..., "neuron_index": ...}
Undefined scores (e.g. a constant series) are printed as null. "-" reads standard input.`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString('utf8');
}

async function readInput(file: string): Promise<string> {
  if (file === '-') return readStdin();
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new CliError(`${file}: no such file`);
    if (code === 'EISDIR') throw new CliError(`${file}: is a directory, expected a .json or .jsonl file`);
    throw new CliError(`${file}: cannot read (${error instanceof Error ? error.message : String(error)})`);
  }
}

export async function run(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const unknownOption = argv.find((a) => a.startsWith('-') && a !== '-');
  if (unknownOption) throw new CliError(`unknown option "${unknownOption}" (see neurolens rescore --help)`, 2);
  if (argv.length !== 1) {
    throw new CliError(`expected one results file, got ${argv.length === 0 ? 'none' : argv.length} (see neurolens rescore --help)`, 2);
  }
  const file = argv[0];
  const text = await readInput(file);
  let documents;
  try {
    documents = parseAllNeuronSimulationResults(text);
  } catch (error) {
    if (error instanceof FormatError) throw new CliError(`${file}: ${error.message}`);
    throw error;
  }
  const lines: string[] = [];
  documents.forEach((results, d) => {
    results.scored_explanations.forEach((scored, e) => {
      let rescored;
      try {
        rescored = rescoreScoredSimulation(scored.scored_simulation);
      } catch (error) {
        if (error instanceof ScoringError) {
          throw new CliError(`${file}: document ${d + 1}, scored_explanations[${e}]: ${error.message}`);
        }
        throw error;
      }
      lines.push(
        JSON.stringify({
          explanation: scored.explanation,
          ev_correlation_score: rescored.ev_correlation_score,
          rsquared_score: rescored.rsquared_score ?? null,
          absolute_dev_explained_score: rescored.absolute_dev_explained_score ?? null,
          layer_index: results.neuron_id.layer_index,
          neuron_index: results.neuron_id.neuron_index,
        }),
      );
    });
  });
  if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`);
}
