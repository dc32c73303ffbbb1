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
 * they are recomputed in as few passes over those excerpts as a fixed memory budget allows,
 * every pass running each needed excerpt once for all neurons of the pass (a per-neuron pass
 * would run the model once per few neurons).
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
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
                      [--dtype fp32|fp16|quantized] [--backend auto|node|wasm]

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

/** Memory for recomputed sample activations per pass of the record phase (float32 values). */
const RECORD_ROWS_BUDGET_BYTES = 192 * 2 ** 20;

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
  /** Bytes of recomputed activations held at once (default 192 MiB). */
  rowsBudgetBytes?: number;
}

/**
 * Writes `<outDir>/<layer>/<neuron>.json` for every neuron of the statistics (see the module
 * comment for the passes). Returns the number of passes over the corpus it needed.
 */
export async function writeNeuronRecords(options: RecordWriterOptions): Promise<{ records: number; passes: number; excerptsRun: number }> {
  const { stats, source, excerpts, outDir, batchSize, signal, onProgress } = options;
  const { layers, dMlp, excerptLength: L } = stats.config;
  const total = stats.neuronCount;
  const budgetRows = Math.max(1, Math.floor((options.rowsBudgetBytes ?? RECORD_ROWS_BUDGET_BYTES) / (4 * L)));
  for (const layer of layers) mkdirSync(join(outDir, String(layer)), { recursive: true });

  let written = 0;
  let passes = 0;
  let excerptsRun = 0;
  for (let first = 0; first < total; ) {
    // One pass: as many neurons (in index order) as fit in the budget.
    const lists: number[][] = [];
    let rows = 0;
    while (first + lists.length < total) {
      const list = stats.excerptsToRerun(first + lists.length);
      if (lists.length > 0 && rows + list.length > budgetRows) break;
      lists.push(list);
      rows += list.length;
    }
    const slotBase = new Int32Array(lists.length + 1);
    lists.forEach((list, k) => (slotBase[k + 1] = slotBase[k] + list.length));
    const readers = new Map<number, number[]>(); // excerpt → flat [k, slot, k, slot, ...]
    lists.forEach((list, k) =>
      list.forEach((e, i) => {
        const pairs = readers.get(e);
        if (pairs) pairs.push(k, slotBase[k] + i);
        else readers.set(e, [k, slotBase[k] + i]);
      }),
    );
    const arena = new Float32Array(rows * L);

    // Run each needed excerpt once, equally long ones together.
    const order = [...readers.keys()].sort((a, b) => excerpts[a].tokenIds.length - excerpts[b].tokenIds.length || a - b);
    for (let i = 0; i < order.length; ) {
      if (signal?.aborted) throw new ScanAbortedError(stats.excerptCount, true);
      const length = excerpts[order[i]].tokenIds.length;
      const batch: number[] = [];
      while (i < order.length && batch.length < batchSize && excerpts[order[i]].tokenIds.length === length) batch.push(order[i++]);
      const activations = await source(batch.map((e) => [...excerpts[e].tokenIds]), signal);
      batch.forEach((e, b) => {
        const pairs = readers.get(e)!;
        for (let p = 0; p < pairs.length; p += 2) {
          const neuron = first + pairs[p];
          const layer = layers[Math.floor(neuron / dMlp)];
          const data = activations.get(layer);
          if (!data) throw new ScanError(`the model returned no activations for layer ${layer}`);
          const from = b * length * dMlp + (neuron % dMlp);
          const to = pairs[p + 1] * L;
          for (let t = 0; t < length; t++) arena[to + t] = data[from + t * dMlp];
        }
      });
      excerptsRun += batch.length;
    }

    for (let k = 0; k < lists.length; k++) {
      if (signal?.aborted) throw new ScanAbortedError(stats.excerptCount, true);
      const neuron = first + k;
      const slotOf = new Map(lists[k].map((e, i) => [e, slotBase[k] + i]));
      const record: NeuronRecord = stats.buildRecord(
        neuron,
        (e) => excerpts[e].tokens,
        (e) => {
          const slot = slotOf.get(e);
          return slot === undefined ? undefined : arena.subarray(slot * L, slot * L + excerpts[e].tokenIds.length);
        },
      );
      const { layer_index: layer, neuron_index: index } = record.neuron_id;
      await writeFile(join(outDir, String(layer), `${index}.json`), `${serializeNeuronRecord(record)}\n`);
      written++;
      onProgress?.(written, total);
    }
    first += lists.length;
    passes++;
  }
  return { records: written, passes, excerptsRun };
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
    if (controller.signal.aborted) {
      process.stderr.write('\nneurolens scan: quitting without saving\n');
      process.exit(130);
    }
    process.stderr.write('\nneurolens scan: stopping after the current batch and saving a checkpoint (Ctrl-C again to quit at once)…\n');
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
    const source = activationSource(capturer, layers, options.gelu);
    const identity = { model: model.label, onnx: model.onnxPath, onnxBytes: model.onnxBytes.byteLength, gelu: options.gelu, corpus: corpusPath };
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
        recordPasses: written.passes,
        excerptsRerunForRecords: written.excerptsRun,
      },
      files: { records: '<layer>/<neuron>.json', meanTokens: MEAN_TOKENS_FILE },
      finishedAt: new Date().toISOString(),
    };
    await writeFile(join(options.out, SCAN_METADATA_FILE), `${JSON.stringify(metadata, null, 2)}\n`);
    await rm(checkpointPath, { force: true });
    process.stderr.write(
      `scanned ${count(summary.excerpts)} excerpts (${count(tokensTotal)} tokens${summary.resumedFrom ? `, resumed at excerpt ${count(summary.resumedFrom)}` : ''}) in ${formatDuration(scanSeconds)}` +
        ` at ${count(Math.round(summary.tokensPerSecond))} tokens/s; wrote ${count(written.records)} records in ${formatDuration(recordSeconds)} to ${options.out}\n`,
    );
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
