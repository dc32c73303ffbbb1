/** `neurolens <command> ...`: dispatches to one module per command. */
import { CliError } from './cli-error.ts';

const COMMANDS: Record<string, { summary: string; load: () => Promise<{ run(argv: string[]): Promise<void> }> }> = {
  capture: { summary: 'activations of every MLP neuron on a text', load: () => import('./commands/capture.ts') },
  scan: { summary: 'build neuron records (top excerpts, samples, statistics) from a corpus', load: () => import('./commands/scan.ts') },
  merge: { summary: 'merge the shards of a scan (scan --shard) into its records', load: () => import('./commands/merge.ts') },
  explain: { summary: 'explain a neuron from its record with an LLM', load: () => import('./commands/explain.ts') },
  simulate: { summary: "simulate a neuron's activations from an explanation", load: () => import('./commands/simulate.ts') },
  score: { summary: 'score an explanation (simulate and correlate)', load: () => import('./commands/score.ts') },
  rescore: { summary: 'recompute scores of stored simulation results (no LLM)', load: () => import('./commands/rescore.ts') },
  compare: { summary: "compare a record's stored activations with the model's own", load: () => import('./commands/compare.ts') },
  ablate: { summary: "what zeroing, mean-ablating or scaling neurons does to the model's predictions", load: () => import('./commands/ablate.ts') },
  weights: { summary: "a neuron's input and output tokens and related neurons, from the weights", load: () => import('./commands/weights.ts') },
};

export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    'usage: neurolens <command> [options]    (neurolens <command> --help for its options)',
    '',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`neurolens: unknown command "${name}"\n${usage()}\n`);
    return 2;
  }
  try {
    const module = await command.load();
    await module.run(rest);
    return 0;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`neurolens ${name}: ${message}\n`);
    if (process.env.NEUROLENS_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return err instanceof CliError ? err.exitCode : 1;
  }
}
