/**
 * `neurolens merge <shard dirs...> --out <dir>`: the records of a scan run as shards
 * (`neurolens scan --shard i/N`, e.g. a Kubernetes Indexed Job or a Slurm array), the same as one
 * scan of the whole corpus would write (merge-shards.ts).
 */
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { mergeShards } from '../../lib/activations/merge-shards.ts';
import { loadShard, recordFileWriter, type LoadedShard } from '../../lib/activations/scan-files.node.ts';
import { ScanAbortedError } from '../../lib/activations/scan.ts';
import { HELP_OPTION, parseCommandArgs } from '../cli-args.ts';
import { CliError } from '../cli-error.ts';
import { count, formatDuration, interruptHandler, StatusLine } from '../terminal.ts';
import { prepareOutDir, round, SCAN_METADATA_FILE } from './scan.ts';

const HELP = `usage: neurolens merge <shard dir> <shard dir> ... --out <dir>

  Merges the shards of one scan (each written by \`neurolens scan ... --shard i/N --out <shard dir>\`)
  into <dir>/<layer>/<neuron>.json records and <dir>/scan.json: the records one scan of the whole
  corpus writes. Every shard 0 … N−1 must be given, all of the same model, corpus and settings.`;

export interface MergeCommandOptions {
  shards: string[];
  out: string;
}

export function parseMergeArgs(argv: string[]): MergeCommandOptions | null {
  const parsed = parseCommandArgs({ args: argv, options: { out: { type: 'string' }, ...HELP_OPTION }, allowPositionals: true }, HELP);
  if (parsed.values.help) return null;
  if (!parsed.values.out) throw new CliError('--out is required: the folder to write the merged records to', 2);
  if (parsed.positionals.length === 0) throw new CliError('give the shard folders to merge', 2);
  return { shards: parsed.positionals.map((d) => resolve(d)), out: resolve(parsed.values.out) };
}

export async function run(argv: string[]): Promise<void> {
  const options = parseMergeArgs(argv);
  if (!options) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  await mergeCommand(options);
}

/** Every shard of one scan, each once. */
function checkShards(shards: LoadedShard[]): void {
  const [first] = shards;
  const total = first.meta.shard.count;
  const seen = new Map<number, string>();
  for (const { dir, meta } of shards) {
    if (meta.scan.fingerprint !== first.meta.scan.fingerprint || JSON.stringify(meta.scan.identity) !== JSON.stringify(first.meta.scan.identity)) {
      throw new CliError(`${dir} is a shard of another scan than ${first.dir} (model, corpus or settings differ)`);
    }
    if (meta.shard.count !== total) throw new CliError(`${dir} is shard ${meta.shard.index}/${meta.shard.count}, but ${first.dir} is one of ${total}`);
    const twin = seen.get(meta.shard.index);
    if (twin) throw new CliError(`${dir} and ${twin} are both shard ${meta.shard.index}/${total}`);
    seen.set(meta.shard.index, dir);
  }
  const missing = Array.from({ length: total }, (_, i) => i).filter((i) => !seen.has(i));
  if (missing.length > 0) throw new CliError(`shard${missing.length > 1 ? 's' : ''} ${missing.map((i) => `${i}/${total}`).join(', ')} missing: give all ${total} shard folders`);
}

export async function mergeCommand(options: MergeCommandOptions): Promise<{ records: number; excerpts: number }> {
  const started = performance.now();
  const shards: LoadedShard[] = [];
  try {
    for (const dir of options.shards) {
      try {
        shards.push(await loadShard(dir));
      } catch (err) {
        throw new CliError((err as Error).message, 2);
      }
    }
    checkShards(shards);
    await prepareOutDir(options.out);
    const controller = new AbortController();
    const stopHandling = interruptHandler('neurolens merge', 'stopping', controller);
    const status = new StatusLine();
    let merged;
    try {
      merged = await mergeShards({
        shards: shards.map((s) => ({ stats: s.stats, plan: s.plan, spill: s.spill, tokens: s.tokens })),
        saveRecords: recordFileWriter(options.out),
        signal: controller.signal,
        onProgress: (done, total) => status.update(`records: ${count(done)}/${count(total)} written`, done === total),
      });
    } catch (err) {
      if (err instanceof ScanAbortedError) throw new CliError('interrupted; run the same command again to merge', 130);
      throw err;
    } finally {
      status.clear();
      stopHandling();
    }
    const sorted = [...shards].sort((a, b) => a.meta.shard.index - b.meta.shard.index);
    const excerpts = sorted.reduce((sum, s) => sum + s.meta.excerpts, 0);
    const tokens = sorted.reduce((sum, s) => sum + s.meta.tokens, 0);
    const seconds = (performance.now() - started) / 1000;
    const { timing: _timing, maxExcerpts, ...description } = sorted[0].meta.details as Record<string, unknown>;
    const metadata = {
      format: 'neurolens.scan',
      version: 2,
      ...description,
      excerpts: { count: excerpts, tokens, length: merged.stats.config.excerptLength, maxExcerpts },
      shards: sorted.map((s) => ({ dir: s.dir, shard: s.meta.shard, excerpts: s.meta.excerpts, timing: (s.meta.details as { timing?: unknown }).timing })),
      timing: { mergeSeconds: round(seconds) },
      files: { records: '<layer>/<neuron>.json' },
      finishedAt: new Date().toISOString(),
    };
    await writeFile(join(options.out, SCAN_METADATA_FILE), `${JSON.stringify(metadata, null, 2)}\n`);
    process.stderr.write(
      `merged ${shards.length} shards (${count(excerpts)} excerpts, ${count(tokens)} tokens): wrote ${count(merged.records)} records in ${formatDuration(seconds)} to ${options.out}\n`,
    );
    return { records: merged.records, excerpts };
  } finally {
    for (const shard of shards) shard.spill.close(false);
  }
}
