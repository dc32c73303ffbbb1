/**
 * Node's adapters for the scan job (scan-job.ts) and the files of a scan on disk:
 * - FileCheckpointStore: checkpoints in one file, replaced atomically;
 * - FileRowSpill: the sampled rows in a file;
 * - recordFileWriter: `<out>/<layer>/<neuron>.json`, one NeuronRecord per neuron as the paper's files;
 * - shard folders (`neurolens scan --shard`): a shard's statistics, sampled rows and excerpt
 *   tokens, which `neurolens merge` reads back (merge-shards.ts).
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { open, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { serializeNeuronRecord } from '../explain/formats.ts';
import type { NeuronRecord } from './records.ts';
import type { RowSpill } from './row-spill.ts';
import { SampleRowPlan } from './sample-rows.ts';
import type { ScanCheckpoint, ScanCheckpointStore, ShardSpec } from './scan.ts';
import { ScanStatistics } from './scan-statistics.ts';

/** A scan file that cannot be used; the message names the file and what to do. */
export class ScanFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScanFileError';
  }
}

// ---- files of binary parts -------------------------------------------------------------------

/**
 * A 4-byte header length, a JSON header (with `parts`, the byte length of each part), then the
 * parts. Written to a temporary file and renamed over the old one, so a crash mid-write keeps the
 * previous one.
 */
async function writePartsFile(path: string, header: Record<string, unknown>, parts: readonly ArrayBuffer[]): Promise<void> {
  const headerBytes = new TextEncoder().encode(JSON.stringify({ ...header, parts: parts.map((p) => p.byteLength) }));
  const temporary = `${path}.tmp`;
  const file = await open(temporary, 'w');
  try {
    const length = new Uint8Array(4);
    new DataView(length.buffer).setUint32(0, headerBytes.byteLength, true);
    await file.write(length);
    await file.write(headerBytes);
    for (const part of parts) await file.write(new Uint8Array(part));
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temporary, path);
}

async function readPartsFile(path: string, bad: (why: string) => Error): Promise<{ header: Record<string, unknown>; parts: ArrayBuffer[] }> {
  const bytes = await readFile(path);
  if (bytes.byteLength < 4) throw bad('truncated');
  const headerLength = bytes.readUInt32LE(0);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(bytes.subarray(4, 4 + headerLength).toString('utf8'));
  } catch {
    throw bad('unreadable header');
  }
  if (!Array.isArray(header.parts)) throw bad('no parts');
  let at = 4 + headerLength;
  const parts: ArrayBuffer[] = [];
  for (const size of header.parts as number[]) {
    if (!Number.isInteger(size) || at + size > bytes.byteLength) throw bad('truncated');
    parts.push(bytes.buffer.slice(bytes.byteOffset + at, bytes.byteOffset + at + size) as ArrayBuffer);
    at += size;
  }
  return { header, parts };
}

// ---- checkpoints -------------------------------------------------------------------------------

const CHECKPOINT_FORMAT = 'neurolens.scan-checkpoint';

/** What a scan ran on beyond its excerpts and settings (which runScan's fingerprint covers). */
export type ScanIdentity = Record<string, unknown>;

function describeIdentity(identity: unknown): string {
  const id = (identity ?? {}) as Record<string, unknown>;
  return `model ${String(id.model)}, gelu ${String(id.gelu)}, corpus ${String(id.corpus)}`;
}

/** Checkpoints in one file; `identity` (model, GELU, corpus) is checked on load. */
export class FileCheckpointStore implements ScanCheckpointStore {
  constructor(
    readonly path: string,
    private readonly identity: ScanIdentity,
  ) {}

  async save(checkpoint: ScanCheckpoint): Promise<void> {
    await writePartsFile(
      this.path,
      { format: CHECKPOINT_FORMAT, version: 1, identity: this.identity, fingerprint: checkpoint.fingerprint, excerptsDone: checkpoint.excerptsDone },
      checkpoint.state,
    );
  }

  async load(): Promise<ScanCheckpoint | null> {
    if (!existsSync(this.path)) return null;
    const bad = (why: string) => new ScanFileError(`the checkpoint ${this.path} is unusable (${why}); delete it to start over`);
    const { header, parts } = await readPartsFile(this.path, bad);
    if (header.format !== CHECKPOINT_FORMAT || typeof header.fingerprint !== 'string') throw bad('not a scan checkpoint');
    if (JSON.stringify(header.identity) !== JSON.stringify(this.identity)) {
      throw new ScanFileError(
        `the checkpoint ${this.path} belongs to a different scan (${describeIdentity(header.identity)}; now ${describeIdentity(this.identity)}); delete it to start over`,
      );
    }
    return { fingerprint: header.fingerprint, excerptsDone: Number(header.excerptsDone), state: parts };
  }
}

// ---- sampled rows ------------------------------------------------------------------------------

/** The sampled rows in a file: created empty, or an existing one opened to read (a shard's rows). */
export class FileRowSpill implements RowSpill {
  private fd: number | null;

  constructor(
    readonly path: string,
    mode: 'create' | 'read' = 'create',
  ) {
    this.fd = openSync(path, mode === 'create' ? 'w+' : 'r');
  }

  private handle(): number {
    if (this.fd === null) throw new ScanFileError(`the sampled rows file ${this.path} is closed`);
    return this.fd;
  }

  write(bytes: Uint8Array, position: number): void {
    const fd = this.handle();
    for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done, position + done);
  }

  read(into: Uint8Array, position: number): void {
    const fd = this.handle();
    let done = 0;
    while (done < into.length) {
      const n = readSync(fd, into, done, into.length - done, position + done);
      if (n === 0) break;
      done += n;
    }
    into.fill(0, done);
  }

  close(discard: boolean): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    if (discard) rmSync(this.path, { force: true });
  }
}

// ---- records -----------------------------------------------------------------------------------

/**
 * The record as `serializeNeuronRecord` writes it. Records built by ScanStatistics are valid and
 * already in the paper's key order, so plain JSON.stringify gives the same text about three times
 * faster; except that the paper's format writes −0 as -0.0, so those take the slow path.
 */
export function recordJson(record: NeuronRecord): string {
  const negativeZero = (v: number | null) => v === 0 && Object.is(v, -0);
  const lists = [record.most_positive_activation_records, record.random_sample, ...(record.random_sample_by_quantile ?? [])];
  const hasNegativeZero =
    lists.some((list) => list.some((r) => r.activations.some(negativeZero))) ||
    (record.quantile_boundaries ?? []).some(negativeZero) ||
    [record.mean, record.variance, record.skewness, record.kurtosis].some(negativeZero);
  return hasNegativeZero ? serializeNeuronRecord(record) : JSON.stringify(record);
}

/** A saveRecords for the scan job: writes `<outDir>/<layer>/<neuron>.json`, one compact line each. */
export function recordFileWriter(outDir: string): (records: NeuronRecord[]) => Promise<void> {
  const made = new Set<number>();
  return async (records) => {
    for (const record of records) {
      const { layer_index: layer, neuron_index: neuron } = record.neuron_id;
      if (!made.has(layer)) {
        mkdirSync(join(outDir, String(layer)), { recursive: true });
        made.add(layer);
      }
      // Synchronous: one small file after another, nothing else to overlap with.
      writeFileSync(join(outDir, String(layer), `${neuron}.json`), `${recordJson(record)}\n`);
    }
    // Let signal handlers (Ctrl-C) run between chunks.
    await new Promise((resolveTurn) => setImmediate(resolveTurn));
  };
}

// ---- shard folders -----------------------------------------------------------------------------

export const SHARD_FILES = {
  meta: 'shard.json',
  statistics: 'statistics.bin',
  rows: 'sample-rows.bin',
  excerpts: 'excerpts.jsonl',
} as const;
const SHARD_FORMAT = 'neurolens.scan-shard';
const STATISTICS_FORMAT = 'neurolens.scan-statistics-file';

/** What shard.json holds. */
export interface ShardMeta {
  format: typeof SHARD_FORMAT;
  version: 1;
  shard: ShardSpec;
  /** The same for all shards of one scan: model, GELU, corpus, excerpts and settings. */
  scan: { fingerprint: string; identity: ScanIdentity; excerpts: number };
  /** This shard's part. */
  excerpts: number;
  tokens: number;
  /** Anything else to carry into the merged scan.json. */
  details: Record<string, unknown>;
}

/**
 * Writes a finished shard into `dir`: its metadata, its statistics, and the tokens of every
 * excerpt its records could show (its top excerpts and sampled ones). The sampled rows are already
 * in `dir`'s rows file (the job's spill).
 */
export async function saveShard(dir: string, meta: Omit<ShardMeta, 'format' | 'version'>, stats: ScanStatistics, tokensOf: (excerpt: number) => readonly string[]): Promise<void> {
  await writePartsFile(join(dir, SHARD_FILES.statistics), { format: STATISTICS_FORMAT, version: 1 }, stats.serialize());
  const referenced = new Set<number>(SampleRowPlan.build(stats, 'merge').excerpts);
  for (let n = 0; n < stats.neuronCount; n++) for (const t of stats.topExcerpts(n)) referenced.add(t.excerptIndex);
  const lines = [...referenced].sort((a, b) => a - b).map((e) => JSON.stringify({ excerpt: e, tokens: tokensOf(e) }));
  await writeFile(join(dir, SHARD_FILES.excerpts), lines.length ? `${lines.join('\n')}\n` : '');
  // Last: a shard folder with shard.json is complete.
  await writeFile(join(dir, SHARD_FILES.meta), `${JSON.stringify({ format: SHARD_FORMAT, version: 1, ...meta }, null, 2)}\n`);
}

export interface LoadedShard {
  dir: string;
  meta: ShardMeta;
  stats: ScanStatistics;
  plan: SampleRowPlan;
  spill: FileRowSpill;
  tokens: Map<number, string[]>;
}

/** Reads a shard folder written by saveShard (its rows stay in the file, opened for reading). */
export async function loadShard(dir: string): Promise<LoadedShard> {
  const metaPath = join(dir, SHARD_FILES.meta);
  if (!existsSync(metaPath)) throw new ScanFileError(`${dir} is not a finished shard (no ${SHARD_FILES.meta}): run its scan to the end first`);
  let meta: ShardMeta;
  try {
    meta = JSON.parse(readFileSync(metaPath, 'utf8'));
  } catch (err) {
    throw new ScanFileError(`${metaPath} is unreadable: ${(err as Error).message}`);
  }
  if (meta.format !== SHARD_FORMAT || meta.version !== 1) throw new ScanFileError(`${metaPath} is not a Neurolens shard (format ${String(meta.format)} ${String(meta.version)})`);
  const statisticsPath = join(dir, SHARD_FILES.statistics);
  const { header, parts } = await readPartsFile(statisticsPath, (why) => new ScanFileError(`${statisticsPath} is unusable (${why})`));
  if (header.format !== STATISTICS_FORMAT) throw new ScanFileError(`${statisticsPath} is not a shard's statistics`);
  const stats = ScanStatistics.deserialize(parts);
  const tokens = new Map<number, string[]>();
  const excerptsPath = join(dir, SHARD_FILES.excerpts);
  for (const line of readFileSync(excerptsPath, 'utf8').split('\n')) {
    if (!line) continue;
    const { excerpt, tokens: list } = JSON.parse(line) as { excerpt: number; tokens: string[] };
    tokens.set(excerpt, list);
  }
  return { dir, meta, stats, plan: SampleRowPlan.build(stats, 'merge'), spill: new FileRowSpill(join(dir, SHARD_FILES.rows), 'read'), tokens };
}
