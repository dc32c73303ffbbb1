/**
 * `neurolens scan`: runs a corpus through a model and writes a NeuronRecord (the paper's format)
 * for every tracked neuron, with the same excerpts, statistics and samples the browser builds
 * (corpus.ts, neuron-stats.ts and scan.ts with their defaults; same seed → same records).
 *
 * Output in --out:
 *   <layer>/<neuron>.json     one NeuronRecord per neuron, one compact line as the paper's files
 *   top-mean-tokens.jsonl     per neuron, the tokens with the highest mean activation (approximate)
 *   scan.json                 what was scanned, with which settings, and how long it took
 *   .checkpoint               the scan state while unfinished; --resume continues from it
 *
 * Records need the activations of sampled excerpts the statistics do not keep (neuron-stats.ts):
 * they are recomputed in one pass that runs each needed excerpt once for all neurons (see
 * writeNeuronRecords).
 */
import { closeSync, existsSync, mkdirSync, openSync, readSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { access, open, readFile, rename, rm, writeFile, constants as fsConstants } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildExcerpts, CorpusFormatError, parseCorpusFile, type CorpusDocument, type CorpusExcerpt } from '../../lib/activations/corpus.ts';
import type { NeuronStatsAccumulator } from '../../lib/activations/neuron-stats.ts';
import type { NeuronRecord } from '../../lib/activations/records.ts';
import {
  runScan,
  ScanAbortedError,
  ScanError,
  type ActivationSource,
  type ScanCheckpoint,
  type ScanCheckpointStore,
  type ScanProgress,
} from '../../lib/activations/scan.ts';
import { serializeNeuronRecord } from '../../lib/explain/formats.ts';
import { GELU_CHOICES, type ActivationCapturer, type GeluChoice } from '../../lib/model/capture.ts';
import { CliError } from '../cli-error.ts';
import { openCapturer, parseLayerList, PROJECT_ROOT } from '../resolve-model.ts';

const HELP = `usage: neurolens scan --model <dir|hub-id|bundled-name> --corpus <file.txt|file.jsonl|default> --out <dir>
                      [--layers 0,5] [--top 20] [--random 50] [--seed 0] [--batch 8] [--max-excerpts N]
                      [--gelu model|tanh|sigmoid] [--resume] [--checkpoint-every 512]
                      [--dtype auto|fp32|fp16|int8] [--backend auto|node|wasm]

  --corpus        a .txt file (one document) or .jsonl file (one {"text": ...} per line), or
                  "default" for the bundled corpus (public/corpus/default.jsonl)
  --out           folder for <layer>/<neuron>.json records, top-mean-tokens.jsonl and scan.json
  --layers        only these layers (default: all)
  --top           most-activating excerpts per neuron (default 20)
  --random        excerpts in the shared random sample (default 50)
  --seed          seed of the random and quantile samples (default 0)
  --batch         excerpts per model run (default 8)
  --max-excerpts  use only the first N excerpts of the corpus
  --gelu          the MLPs' GELU: the model's own (default), GPT-2's tanh, or x·σ(1.702x), with which
                  the activations published with Bills et al. (2023) were computed
  --resume        continue an interrupted scan from <out>/.checkpoint
  --checkpoint-every  save the scan state after every N excerpts (default 512; Ctrl-C always saves)`;

export const DEFAULT_CORPUS = join(PROJECT_ROOT, 'public/corpus/default.jsonl');
export const CHECKPOINT_FILE = '.checkpoint';
export const SCAN_METADATA_FILE = 'scan.json';
export const MEAN_TOKENS_FILE = 'top-mean-tokens.jsonl';

export interface ScanCommandOptions {
  model: string;
  corpus: string;
  out: string;
  layers?: number[];
  topK?: number;
  randomSampleSize?: number;
  seed?: number;
  batchSize: number;
  maxExcerpts?: number;
  checkpointEvery?: number;
  gelu: GeluChoice;
  resume: boolean;
  dtype?: string;
  backend?: string;
}

function positiveInteger(name: string, value: string | undefined, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min) {
    throw new CliError(`--${name} must be a whole number${min > 0 ? ` of at least ${min}` : min === 0 ? ' (0 or more)' : ''}, not "${value}"`, 2);
  }
  return n;
}

export function parseScanArgs(argv: string[]): ScanCommandOptions | null {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        model: { type: 'string' },
        corpus: { type: 'string' },
        out: { type: 'string' },
        layers: { type: 'string' },
        top: { type: 'string' },
        random: { type: 'string' },
        seed: { type: 'string' },
        batch: { type: 'string' },
        'max-excerpts': { type: 'string' },
        'checkpoint-every': { type: 'string' },
        gelu: { type: 'string' },
        resume: { type: 'boolean', default: false },
        dtype: { type: 'string' },
        backend: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
  } catch (err) {
    throw new CliError(`${(err as Error).message}\n${HELP}`, 2);
  }
  if (values.help) return null;
  if (!values.model) throw new CliError('--model is required (a model folder, a hub id like Xenova/gpt2, or toy-planted)', 2);
  if (!values.corpus) throw new CliError('--corpus is required (a .txt or .jsonl file, or "default")', 2);
  if (!values.out) throw new CliError('--out is required: the folder to write the records to', 2);
  const gelu = (values.gelu ?? 'model') as GeluChoice;
  if (!GELU_CHOICES.includes(gelu)) throw new CliError(`--gelu must be ${GELU_CHOICES.join(', ')}, not "${values.gelu}"`, 2);
  return {
    model: values.model,
    corpus: values.corpus,
    out: resolve(values.out),
    layers: parseLayerList(values.layers),
    topK: positiveInteger('top', values.top),
    randomSampleSize: positiveInteger('random', values.random, 0),
    seed: positiveInteger('seed', values.seed, Number.MIN_SAFE_INTEGER),
    batchSize: positiveInteger('batch', values.batch) ?? 8,
    maxExcerpts: positiveInteger('max-excerpts', values['max-excerpts']),
    checkpointEvery: positiveInteger('checkpoint-every', values['checkpoint-every']),
    gelu,
    resume: values.resume,
    dtype: values.dtype,
    backend: values.backend,
  };
}

export async function run(argv: string[]): Promise<void> {
  const options = parseScanArgs(argv);
  if (!options) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  await scanCommand(options);
}

// ---------------------------------------------------------------------------------------------
// Corpus and output folder

/** The corpus file for `--corpus`; "default" is prepared from the bundled Brown corpus when missing. */
export async function resolveCorpusPath(spec: string): Promise<string> {
  if (spec !== 'default') return resolve(spec);
  if (!existsSync(DEFAULT_CORPUS)) {
    process.stderr.write(`preparing the default corpus (${DEFAULT_CORPUS})…\n`);
    const { prepareDefaultCorpus } = await import('../../../scripts/prepare-corpus.ts');
    try {
      prepareDefaultCorpus({ outFile: DEFAULT_CORPUS, log: (line) => process.stderr.write(`${line}\n`) });
    } catch (err) {
      throw new CliError(`cannot prepare the default corpus: ${(err as Error).message}`);
    }
  }
  return DEFAULT_CORPUS;
}

async function readCorpus(path: string): Promise<{ name: string; content: string }> {
  try {
    if (statSync(path).isDirectory()) throw new CliError(`--corpus ${path} is a folder; give a .txt or .jsonl file`, 2);
    return { name: basename(path), content: await readFile(path, 'utf8') };
  } catch (err) {
    if (err instanceof CliError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(code === 'ENOENT' ? `corpus file not found: ${path}` : `cannot read the corpus ${path}: ${code ?? (err as Error).message}`, 2);
  }
}

async function prepareOutDir(out: string): Promise<void> {
  try {
    mkdirSync(out, { recursive: true });
    await access(out, fsConstants.W_OK);
    const probe = join(out, `.write-test-${process.pid}`);
    await writeFile(probe, '');
    await rm(probe);
  } catch (err) {
    throw new CliError(`cannot write to --out ${out}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

const CHECKPOINT_FORMAT = 'neurolens.scan-checkpoint';

/**
 * A checkpoint in one file: a 4-byte header length, a JSON header, then the state parts. Written
 * to a temporary file and renamed over the old one, so a crash mid-write keeps the previous one.
 * `identity` (model, GELU, corpus) is checked on load: runScan's own fingerprint covers the
 * excerpts and settings, not which model produced the activations.
 */
export class FileCheckpointStore implements ScanCheckpointStore {
  constructor(
    readonly path: string,
    private readonly identity: Record<string, unknown>,
  ) {}

  async save(checkpoint: ScanCheckpoint): Promise<void> {
    const header = new TextEncoder().encode(
      JSON.stringify({
        format: CHECKPOINT_FORMAT,
        version: 1,
        identity: this.identity,
        fingerprint: checkpoint.fingerprint,
        excerptsDone: checkpoint.excerptsDone,
        parts: checkpoint.state.map((p) => p.byteLength),
      }),
    );
    const temporary = `${this.path}.tmp`;
    const file = await open(temporary, 'w');
    try {
      const length = new Uint8Array(4);
      new DataView(length.buffer).setUint32(0, header.byteLength, true);
      await file.write(length);
      await file.write(header);
      for (const part of checkpoint.state) await file.write(new Uint8Array(part));
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temporary, this.path);
  }

  async load(): Promise<ScanCheckpoint | null> {
    if (!existsSync(this.path)) return null;
    const bad = (why: string) => new CliError(`the checkpoint ${this.path} is unusable (${why}); delete it to start over`);
    const bytes = await readFile(this.path);
    if (bytes.byteLength < 4) throw bad('truncated');
    const headerLength = bytes.readUInt32LE(0);
    let header: { format?: string; identity?: unknown; fingerprint?: string; excerptsDone?: number; parts?: number[] };
    try {
      header = JSON.parse(bytes.subarray(4, 4 + headerLength).toString('utf8'));
    } catch {
      throw bad('unreadable header');
    }
    if (header.format !== CHECKPOINT_FORMAT || !Array.isArray(header.parts) || typeof header.fingerprint !== 'string') throw bad('not a scan checkpoint');
    if (JSON.stringify(header.identity) !== JSON.stringify(this.identity)) {
      throw new CliError(
        `the checkpoint ${this.path} belongs to a different scan (${describeIdentity(header.identity)}; now ${describeIdentity(this.identity)}); delete it to start over`,
      );
    }
    let at = 4 + headerLength;
    const state: ArrayBuffer[] = [];
    for (const size of header.parts) {
      if (at + size > bytes.byteLength) throw bad('truncated');
      state.push(bytes.buffer.slice(bytes.byteOffset + at, bytes.byteOffset + at + size) as ArrayBuffer);
      at += size;
    }
    return { fingerprint: header.fingerprint, excerptsDone: Number(header.excerptsDone), state };
  }
}

function describeIdentity(identity: unknown): string {
  const id = (identity ?? {}) as Record<string, unknown>;
  return `model ${String(id.model)}, gelu ${String(id.gelu)}, corpus ${String(id.corpus)}`;
}

// ---------------------------------------------------------------------------------------------
// Progress

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 10) return `${seconds.toFixed(1)}s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

const count = (n: number) => n.toLocaleString('en-US');

/** Rewrites one status line on a terminal; silent otherwise. */
class StatusLine {
  private last = 0;
  private shown = false;
  constructor(private readonly enabled = process.stderr.isTTY === true) {}

  update(text: string, force = false): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.last < 250) return;
    this.last = now;
    this.shown = true;
    process.stderr.write(`\r\x1b[2K${text}`);
  }

  clear(): void {
    if (this.enabled && this.shown) process.stderr.write('\r\x1b[2K');
    this.shown = false;
  }
}

function scanStatus(p: ScanProgress): string {
  const eta = p.etaSeconds === null ? '' : ` · ETA ${formatDuration(p.etaSeconds)}`;
  return `scan: ${count(p.excerptsDone)}/${count(p.excerptsTotal)} excerpts · ${count(p.tokensDone)} tokens · ${count(Math.round(p.tokensPerSecond))} tokens/s${eta}`;
}

// ---------------------------------------------------------------------------------------------
// Records

export interface RecordWriterOptions {
  stats: NeuronStatsAccumulator;
  source: ActivationSource;
  excerpts: readonly CorpusExcerpt[];
  outDir: string;
  batchSize: number;
  signal?: AbortSignal;
  onProgress?: (written: number, total: number) => void;
}

export const RECORD_ROWS_FILE = '.record-rows';

/**
 * Writes `<outDir>/<layer>/<neuron>.json` for every neuron of the statistics. The activations the
 * statistics do not keep (random and quantile samples) are recomputed in one pass over the
 * excerpts any neuron needs; the rows are spilled to a temporary file (`.record-rows`, laid out
 * excerpt by excerpt) rather than held in memory, because all neurons' rows together are large
 * (~70 rows of 64 floats per neuron: 660 MB for GPT-2 small) and a pass per memory-sized group of
 * neurons would run the model over nearly the whole corpus each time.
 */
export async function writeNeuronRecords(options: RecordWriterOptions): Promise<{ records: number; excerptsRun: number }> {
  const { stats, source, excerpts, outDir, batchSize, signal, onProgress } = options;
  const { layers, dMlp, excerptLength: L } = stats.config;
  const total = stats.neuronCount;
  for (const layer of layers) mkdirSync(join(outDir, String(layer)), { recursive: true });

  // Which excerpts each neuron needs (CSR: needStart[n] .. needStart[n + 1]), and the neuron's rank
  // among the readers of each, which is its row within that excerpt's region of the file.
  const needStart = new Int32Array(total + 1);
  const lists: Int32Array[] = [];
  for (let n = 0; n < total; n++) {
    const list = Int32Array.from(stats.excerptsToRerun(n));
    lists.push(list);
    needStart[n + 1] = needStart[n] + list.length;
  }
  const readerCount = new Int32Array(excerpts.length);
  const needExcerpt = new Int32Array(needStart[total]);
  const needRank = new Int32Array(needStart[total]);
  for (let n = 0; n < total; n++) {
    lists[n].forEach((e, i) => {
      needExcerpt[needStart[n] + i] = e;
      needRank[needStart[n] + i] = readerCount[e]++;
    });
  }
  lists.length = 0;
  // Readers of each excerpt, in neuron order (CSR again), and where its region starts (in rows).
  const readerStart = new Int32Array(excerpts.length + 1);
  for (let e = 0; e < excerpts.length; e++) readerStart[e + 1] = readerStart[e] + readerCount[e];
  const readers = new Int32Array(readerStart[excerpts.length]);
  for (let n = 0; n < total; n++) {
    for (let k = needStart[n]; k < needStart[n + 1]; k++) readers[readerStart[needExcerpt[k]] + needRank[k]] = n;
  }

  const rowsPath = join(outDir, RECORD_ROWS_FILE);
  const fd = openSync(rowsPath, 'w+');
  let written = 0;
  let excerptsRun = 0;
  try {
    const order = [...Array(excerpts.length).keys()]
      .filter((e) => readerCount[e] > 0)
      .sort((a, b) => excerpts[a].tokenIds.length - excerpts[b].tokenIds.length || a - b);
    for (let i = 0; i < order.length; ) {
      if (signal?.aborted) throw new ScanAbortedError(stats.excerptCount, true);
      const length = excerpts[order[i]].tokenIds.length;
      const batch: number[] = [];
      while (i < order.length && batch.length < batchSize && excerpts[order[i]].tokenIds.length === length) batch.push(order[i++]);
      const activations = await source(batch.map((e) => [...excerpts[e].tokenIds]), signal);
      for (const layer of layers) {
        if (!activations.get(layer)) throw new ScanError(`the model returned no activations for layer ${layer}`);
      }
      batch.forEach((e, b) => {
        const region = new Float32Array(readerCount[e] * L);
        for (let r = 0; r < readerCount[e]; r++) {
          const n = readers[readerStart[e] + r];
          const data = activations.get(layers[Math.floor(n / dMlp)])!;
          const from = b * length * dMlp + (n % dMlp);
          for (let t = 0; t < length; t++) region[r * L + t] = data[from + t * dMlp];
        }
        writeSync(fd, region, 0, region.byteLength, readerStart[e] * L * 4);
      });
      excerptsRun += batch.length;
    }

    const row = new Float32Array(L);
    for (let n = 0; n < total; n++) {
      // Let signal handlers (Ctrl-C) run now and then: nothing below waits on the event loop.
      if (n % 64 === 0) await new Promise((resolveTurn) => setImmediate(resolveTurn));
      if (signal?.aborted) throw new ScanAbortedError(stats.excerptCount, true);
      const slot = new Map<number, number>();
      for (let k = needStart[n]; k < needStart[n + 1]; k++) slot.set(needExcerpt[k], readerStart[needExcerpt[k]] + needRank[k]);
      const record: NeuronRecord = stats.buildRecord(
        n,
        (e) => excerpts[e].tokens,
        (e) => {
          const at = slot.get(e);
          if (at === undefined) return undefined;
          const length = excerpts[e].tokenIds.length;
          readSync(fd, row, 0, length * 4, at * L * 4);
          return row.slice(0, length);
        },
      );
      const { layer_index: layer, neuron_index: index } = record.neuron_id;
      // Synchronous: one small file after another, nothing else to overlap with.
      writeFileSync(join(outDir, String(layer), `${index}.json`), `${recordJson(record)}\n`);
      written++;
      onProgress?.(written, total);
    }
  } finally {
    closeSync(fd);
    rmSync(rowsPath, { force: true });
  }
  return { records: written, excerptsRun };
}

/**
 * The record as `serializeNeuronRecord` writes it. Records built by NeuronStatsAccumulator are
 * valid and already in the paper's key order, so plain JSON.stringify gives the same text about
 * three times faster; except that the paper's format writes −0 as -0.0, so those take the slow path.
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

/** One JSON line per neuron: its tokens with the highest mean activation (see NeuronStatsAccumulator.topMeanTokens). */
async function writeMeanTokens(path: string, stats: NeuronStatsAccumulator, tokenText: (id: number) => string): Promise<void> {
  const file = await open(path, 'w');
  try {
    let chunk = '';
    for (let n = 0; n < stats.neuronCount; n++) {
      const { layer_index: layer, neuron_index: neuron } = stats.neuronId(n);
      const tokens = stats.topMeanTokens(n).map((t) => ({ token: tokenText(t.tokenId), id: t.tokenId, mean: Number(t.meanActivation.toPrecision(6)), count: t.count }));
      chunk += `${JSON.stringify({ layer, neuron, tokens })}\n`;
      if (chunk.length > 1 << 20) {
        await file.write(chunk);
        chunk = '';
      }
    }
    await file.write(chunk);
  } finally {
    await file.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The command

export interface ScanSummary {
  excerpts: number;
  tokens: number;
  records: number;
  scanSeconds: number;
  recordSeconds: number;
  tokensPerSecond: number;
  resumedFrom: number;
}

/** Handles Ctrl-C: the first asks the scan to stop and save, the second quits at once. */
function interruptHandler(controller: AbortController): () => void {
  const onSignal = () => {
    // On a terminal, end the progress line first.
    const lead = process.stderr.isTTY ? '\n' : '';
    if (controller.signal.aborted) {
      process.stderr.write(`${lead}neurolens scan: quitting without saving\n`);
      process.exit(130);
    }
    process.stderr.write(`${lead}neurolens scan: stopping and saving a checkpoint (Ctrl-C again to quit at once)…\n`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

export async function scanCommand(options: ScanCommandOptions): Promise<ScanSummary> {
  const corpusPath = await resolveCorpusPath(options.corpus);
  const corpus = await readCorpus(corpusPath);
  let documents;
  try {
    documents = parseCorpusFile(corpus.name, corpus.content);
  } catch (err) {
    if (err instanceof CorpusFormatError) throw new CliError(`corpus ${corpusPath}: ${err.message}`, 2);
    throw err;
  }
  await prepareOutDir(options.out);
  const checkpointPath = join(options.out, CHECKPOINT_FILE);
  if (existsSync(checkpointPath) && !options.resume) {
    throw new CliError(
      `${options.out} holds an unfinished scan (${checkpointPath}): run again with --resume to continue it, or delete that file to start over`,
    );
  }

  const controller = new AbortController();
  const stopHandling = interruptHandler(controller);
  try {
    return await scanWithModel(options, corpusPath, documents, checkpointPath, controller.signal);
  } finally {
    stopHandling();
  }
}

async function scanWithModel(
  options: ScanCommandOptions,
  corpusPath: string,
  documents: CorpusDocument[],
  checkpointPath: string,
  signal: AbortSignal,
): Promise<ScanSummary> {
  const { model, capturer } = await openCapturer({ model: options.model, dtype: options.dtype, backend: options.backend });
  const status = new StatusLine();
  try {
    const layers = capturer.resolveLayers(options.layers);
    const excerpts = buildExcerpts(documents, model.tokenizer, { maxExcerpts: options.maxExcerpts });
    if (excerpts.length === 0) throw new CliError(`corpus ${corpusPath} has no excerpt of at least 16 tokens`, 2);
    const identity = { model: model.label, onnx: model.onnxPath, onnxBytes: model.onnxSize, gelu: options.gelu, corpus: corpusPath };
    const source = await prepareScanSource(capturer, layers, options.gelu);
    const checkpoint = new FileCheckpointStore(checkpointPath, identity);
    if (options.resume && !existsSync(checkpointPath)) process.stderr.write('neurolens scan: no checkpoint to resume from; starting from the beginning\n');

    const tokensTotal = excerpts.reduce((s, e) => s + e.tokenIds.length, 0);
    const scanStarted = performance.now();
    let result;
    try {
      result = await runScan({
        source,
        excerpts: excerpts.map((e) => e.tokenIds),
        layers,
        dMlp: capturer.dMlp,
        topK: options.topK,
        randomSampleSize: options.randomSampleSize,
        seed: options.seed,
        batchSize: options.batchSize,
        checkpoint,
        checkpointEvery: options.checkpointEvery,
        signal,
        onProgress: (p) => status.update(scanStatus(p)),
      });
    } catch (err) {
      status.clear();
      if (err instanceof ScanAbortedError) {
        throw new CliError(
          `interrupted after ${count(err.excerptsDone)} of ${count(excerpts.length)} excerpts; ${err.checkpointSaved ? `progress saved in ${checkpointPath}` : 'nothing new to save'}: run the same command with --resume to continue`,
          130,
        );
      }
      if (err instanceof ScanError && /checkpoint/.test(err.message)) throw new CliError(`${err.message} (${checkpointPath})`);
      throw err;
    }
    const scanSeconds = (performance.now() - scanStarted) / 1000;
    status.clear();

    const recordsStarted = performance.now();
    let written;
    try {
      written = await writeNeuronRecords({
        stats: result.stats,
        source,
        excerpts,
        outDir: options.out,
        batchSize: options.batchSize,
        signal,
        onProgress: (n, total) => status.update(`records: ${count(n)}/${count(total)} written`, n === total),
      });
    } catch (err) {
      status.clear();
      if (err instanceof ScanAbortedError) {
        throw new CliError(`interrupted while writing records; the scan itself is saved in ${checkpointPath}: run the same command with --resume to write them`, 130);
      }
      throw err;
    }
    await writeMeanTokens(join(options.out, MEAN_TOKENS_FILE), result.stats, (id) => model.tokenizer.tokenText(id));
    const recordSeconds = (performance.now() - recordsStarted) / 1000;
    status.clear();

    const tokensThisRun = result.tokensDone - excerpts.slice(0, result.resumedFrom).reduce((s, e) => s + e.tokenIds.length, 0);
    const summary: ScanSummary = {
      excerpts: result.excerptsDone,
      tokens: tokensTotal,
      records: written.records,
      scanSeconds,
      recordSeconds,
      tokensPerSecond: scanSeconds > 0 ? tokensThisRun / scanSeconds : 0,
      resumedFrom: result.resumedFrom,
    };
    const config = result.stats.config;
    const metadata = {
      format: 'neurolens.scan',
      version: 1,
      model: { label: model.label, onnx: model.onnxPath, nLayer: model.config.nLayer, dModel: model.config.dModel, dMlp: model.config.dMlp },
      backend: capturer.backend,
      gelu: options.gelu,
      corpus: { path: corpusPath, documents: documents.length },
      layers,
      neurons: result.stats.neuronCount,
      excerpts: { count: excerpts.length, tokens: tokensTotal, length: config.excerptLength, maxExcerpts: options.maxExcerpts ?? null },
      settings: {
        topK: config.topK,
        randomSampleSize: config.randomSampleSize,
        quantiles: config.quantiles,
        quantileSampleSize: config.quantileSampleSize,
        topTokenCandidates: config.topTokenCandidates,
        rowPrecision: config.rowPrecision,
        seed: config.seed,
        batchSize: options.batchSize,
      },
      timing: {
        scanSeconds: round(scanSeconds),
        tokensPerSecond: round(summary.tokensPerSecond),
        resumedFromExcerpt: result.resumedFrom,
        recordSeconds: round(recordSeconds),
        excerptsRerunForRecords: written.excerptsRun,
      },
      files: { records: '<layer>/<neuron>.json', meanTokens: MEAN_TOKENS_FILE },
      finishedAt: new Date().toISOString(),
    };
    await writeFile(join(options.out, SCAN_METADATA_FILE), `${JSON.stringify(metadata, null, 2)}\n`);
    await rm(checkpointPath, { force: true });
    const scanned =
      summary.resumedFrom === summary.excerpts
        ? `scanned ${count(summary.excerpts)} excerpts (${count(tokensTotal)} tokens, all from the checkpoint)`
        : `scanned ${count(summary.excerpts)} excerpts (${count(tokensTotal)} tokens${summary.resumedFrom ? `, resumed at excerpt ${count(summary.resumedFrom)}` : ''}) in ${formatDuration(scanSeconds)}` +
          ` at ${count(Math.round(summary.tokensPerSecond))} tokens/s`;
    process.stderr.write(`${scanned}; wrote ${count(written.records)} records in ${formatDuration(recordSeconds)} to ${options.out}\n`);
    return summary;
  } finally {
    status.clear();
    await capturer.dispose();
  }
}

function round(x: number): number {
  return Number(x.toFixed(3));
}

/**
 * The model as the scan's activation source. It always returns every scanned layer: a request
 * for fewer (as when building records) would otherwise compile a second pruned graph.
 */
export function activationSource(capturer: ActivationCapturer, layers: number[], gelu: GeluChoice): ActivationSource {
  return async (batch) => (await capturer.runTokens(batch, { layers, gelu })).layers;
}

/**
 * Creates the one graph a scan runs, then lets go of the model file's bytes: onnxruntime holds
 * its own copy of the weights, and the ~0.5 GB (GPT-2 small) would otherwise stay in memory for
 * the whole scan. (With onnxruntime-node the capturer has already let go of them, before the
 * session was created.) Asking the capturer for another graph reads the file again.
 */
export async function prepareScanSource(capturer: ActivationCapturer, layers: number[], gelu: GeluChoice): Promise<ActivationSource> {
  await capturer.warmUp(layers, false, { gelu });
  const model = capturer.model;
  model.onnxBytes = new Uint8Array(0);
  model.externalData = [];
  return activationSource(capturer, layers, gelu);
}
