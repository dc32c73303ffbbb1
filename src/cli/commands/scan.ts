/**
 * `neurolens scan`: runs a corpus through a model and writes a NeuronRecord (the paper's format)
 * for every tracked neuron: the scan job the browser runs (scan-job.ts), with Node's adapters
 * (scan-files.node.ts), so the same model, corpus and seed give the same records in both.
 *
 * Output in --out:
 *   <layer>/<neuron>.json     one NeuronRecord per neuron, one compact line as the paper's files
 *   scan.json                 what was scanned, with which settings, and how long it took
 *   .checkpoint               the scan state while unfinished; --resume continues from it
 * With --shard, a shard folder instead (shard.json, statistics.bin, sample-rows.bin,
 * excerpts.jsonl), which `neurolens merge` turns into the records of the whole scan.
 */
import { BACKEND_OPTION, HELP_OPTION, MODEL_OPTIONS, parseCommandArgs } from '../cli-args.ts';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { access, readFile, rm, writeFile, constants as fsConstants } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { buildExcerpts, CorpusFormatError, parseCorpusFile, type CorpusDocument } from '../../lib/activations/corpus.ts';
import { DEFAULT_CORPUS_FILE, prepareDefaultCorpus } from '../../lib/activations/default-corpus.node.ts';
import { SCAN_DEFAULTS } from '../../lib/activations/scan-defaults.ts';
import { FileCheckpointStore, FileRowSpill, recordFileWriter, saveShard, SHARD_FILES } from '../../lib/activations/scan-files.node.ts';
import { runScanJob, type ScanJobPhase, type ScanJobProgress } from '../../lib/activations/scan-job.ts';
import { createScanSource } from '../../lib/activations/scan-source.ts';
import { ScanAbortedError, ScanError, scanFingerprint, type ShardSpec } from '../../lib/activations/scan.ts';
import { GELU_CHOICES, type GeluChoice } from '../../lib/model/capture.ts';
import { CliError } from '../cli-error.ts';
import { openCapturer, parseLayerList } from '../resolve-model.ts';
import { count, formatDuration, interruptHandler, StatusLine } from '../terminal.ts';

const HELP = `usage: neurolens scan --model <dir|hub-id|bundled-name> --corpus <file.txt|file.jsonl|default> --out <dir>
                      [--layers 0,5] [--top ${SCAN_DEFAULTS.topK}] [--random ${SCAN_DEFAULTS.randomSampleSize}] [--seed ${SCAN_DEFAULTS.seed}] [--batch ${SCAN_DEFAULTS.batchSize}] [--max-excerpts N]
                      [--shard i/N | --shard auto/N] [--gelu model|tanh|sigmoid] [--resume] [--checkpoint-every 512]
                      [--dtype auto|fp32|fp16|int8] [--onnx file] [--backend auto|node|wasm]

  --corpus        a .txt file (one document) or .jsonl file (one {"text": ...} per line), or
                  "default" for the bundled corpus (public/corpus/default.jsonl)
  --out           folder for <layer>/<neuron>.json records and scan.json (with --shard: the shard's files)
  --layers        only these layers (default: all)
  --top           most-activating excerpts per neuron (default ${SCAN_DEFAULTS.topK})
  --random        excerpts in the shared random sample (default ${SCAN_DEFAULTS.randomSampleSize})
  --seed          seed of the scan order and the random and quantile samples (default ${SCAN_DEFAULTS.seed})
  --batch         excerpts per model run (default ${SCAN_DEFAULTS.batchSize})
  --max-excerpts  use only the first N excerpts of the corpus
  --shard         scan only shard i of N (every N-th group of excerpts; i from 0), for \`neurolens merge\`;
                  auto/N takes i from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) or
                  SLURM_ARRAY_TASK_ID (a Slurm array, less SLURM_ARRAY_TASK_MIN)
  --gelu          the MLPs' GELU: the model's own (default), GPT-2's tanh, or x·σ(1.702x), with which
                  the activations published with Bills et al. (2023) were computed
  --resume        continue an interrupted scan from <out>/.checkpoint
  --checkpoint-every  save the scan state after every N excerpts (default 512; Ctrl-C always saves)`;

export const CHECKPOINT_FILE = '.checkpoint';
export const SCAN_METADATA_FILE = 'scan.json';
/** The sampled excerpts' rows while the records are built (removed after). */
export const RECORD_ROWS_FILE = '.sample-rows';

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
  shard?: ShardSpec;
  gelu: GeluChoice;
  resume: boolean;
  dtype?: string;
  onnx?: string;
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

/**
 * `--shard i/N` or `--shard auto/N`: with auto, the index comes from JOB_COMPLETION_INDEX
 * (Kubernetes Indexed Jobs count from 0) or SLURM_ARRAY_TASK_ID less SLURM_ARRAY_TASK_MIN (so
 * `--array=1-N` works as well as `--array=0-(N-1)`).
 */
export function parseShard(value: string, env: NodeJS.ProcessEnv = process.env): ShardSpec {
  const match = /^(\d+|auto)\/(\d+)$/.exec(value.trim());
  if (!match) throw new CliError(`--shard must be i/N (e.g. 0/4) or auto/N, not "${value}"`, 2);
  const total = Number(match[2]);
  if (total < 1) throw new CliError(`--shard ${value}: the number of shards must be at least 1`, 2);
  let index: number;
  if (match[1] !== 'auto') {
    index = Number(match[1]);
  } else if (env.JOB_COMPLETION_INDEX !== undefined) {
    index = Number(env.JOB_COMPLETION_INDEX);
  } else if (env.SLURM_ARRAY_TASK_ID !== undefined) {
    index = Number(env.SLURM_ARRAY_TASK_ID) - Number(env.SLURM_ARRAY_TASK_MIN ?? 0);
  } else {
    throw new CliError(`--shard auto/${total} needs JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or SLURM_ARRAY_TASK_ID (Slurm array) in the environment`, 2);
  }
  if (!Number.isInteger(index) || index < 0 || index >= total) throw new CliError(`--shard ${value}: shard index ${index} is not between 0 and ${total - 1}`, 2);
  return { index, count: total };
}

export function parseScanArgs(argv: string[]): ScanCommandOptions | null {
  const { values } = parseCommandArgs(
    {
      args: argv,
      options: {
          ...MODEL_OPTIONS,
          ...BACKEND_OPTION,
          corpus: { type: 'string' },
          out: { type: 'string' },
          layers: { type: 'string' },
          top: { type: 'string' },
          random: { type: 'string' },
          seed: { type: 'string' },
          batch: { type: 'string' },
          'max-excerpts': { type: 'string' },
          'checkpoint-every': { type: 'string' },
          shard: { type: 'string' },
          gelu: { type: 'string' },
          resume: { type: 'boolean', default: false },
          ...HELP_OPTION,
      },
    },
    HELP,
  );
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
    batchSize: positiveInteger('batch', values.batch) ?? SCAN_DEFAULTS.batchSize,
    maxExcerpts: positiveInteger('max-excerpts', values['max-excerpts']),
    checkpointEvery: positiveInteger('checkpoint-every', values['checkpoint-every']),
    shard: values.shard === undefined ? undefined : parseShard(values.shard),
    gelu,
    resume: values.resume,
    dtype: values.dtype,
    onnx: values.onnx,
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
export function resolveCorpusPath(spec: string): string {
  if (spec !== 'default') return resolve(spec);
  if (!existsSync(DEFAULT_CORPUS_FILE)) {
    process.stderr.write(`preparing the default corpus (${DEFAULT_CORPUS_FILE})…\n`);
    try {
      prepareDefaultCorpus({ outFile: DEFAULT_CORPUS_FILE, log: (line) => process.stderr.write(`${line}\n`) });
    } catch (err) {
      throw new CliError(`cannot prepare the default corpus: ${(err as Error).message}`);
    }
  }
  return DEFAULT_CORPUS_FILE;
}

async function readCorpus(path: string): Promise<CorpusDocument[]> {
  let content: string;
  try {
    if (statSync(path).isDirectory()) throw new CliError(`--corpus ${path} is a folder; give a .txt or .jsonl file`, 2);
    content = await readFile(path, 'utf8');
  } catch (err) {
    if (err instanceof CliError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(code === 'ENOENT' ? `corpus file not found: ${path}` : `cannot read the corpus ${path}: ${code ?? (err as Error).message}`, 2);
  }
  try {
    return parseCorpusFile(basename(path), content);
  } catch (err) {
    if (err instanceof CorpusFormatError) throw new CliError(`corpus ${path}: ${err.message}`, 2);
    throw err;
  }
}

export async function prepareOutDir(out: string): Promise<void> {
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

function progressLine(p: ScanJobProgress): string {
  if (p.phase === 'sampling') return `sampled excerpts: ${count(p.sampledDone)}/${count(p.sampledTotal)} run again`;
  if (p.phase === 'building-records') return `records: ${count(p.recordsDone)}/${count(p.recordsTotal)} written`;
  const eta = p.etaSeconds === null ? '' : ` · ETA ${formatDuration(p.etaSeconds)}`;
  return `scan: ${count(p.excerptsDone)}/${count(p.excerptsTotal)} excerpts · ${count(p.tokensDone)} tokens · ${count(Math.round(p.tokensPerSecond))} tokens/s${eta}`;
}

export async function scanCommand(options: ScanCommandOptions): Promise<ScanSummary> {
  const corpusPath = resolveCorpusPath(options.corpus);
  const documents = await readCorpus(corpusPath);
  await prepareOutDir(options.out);
  const checkpointPath = join(options.out, CHECKPOINT_FILE);
  if (existsSync(checkpointPath) && !options.resume) {
    throw new CliError(`${options.out} holds an unfinished scan (${checkpointPath}): run again with --resume to continue it, or delete that file to start over`);
  }
  const controller = new AbortController();
  const stopHandling = interruptHandler('neurolens scan', 'stopping and saving a checkpoint', controller);
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
  const { model, capturer } = await openCapturer({ model: options.model, dtype: options.dtype, onnx: options.onnx, backend: options.backend });
  const status = new StatusLine();
  try {
    const layers = capturer.resolveLayers(options.layers);
    const excerpts = buildExcerpts(documents, model.tokenizer, { maxExcerpts: options.maxExcerpts });
    if (excerpts.length === 0) throw new CliError(`corpus ${corpusPath} has no excerpt of at least ${SCAN_DEFAULTS.minExcerptLength} tokens`, 2);
    const identity = { model: model.label, onnx: model.onnxPath, onnxBytes: model.onnxSize, gelu: options.gelu, corpus: corpusPath };
    const source = await createScanSource(capturer, layers, { gelu: options.gelu, releaseModelBytes: true });
    if (options.resume && !existsSync(checkpointPath)) process.stderr.write('neurolens scan: no checkpoint to resume from; starting from the beginning\n');
    const { shard } = options;
    const settings = {
      layers,
      dMlp: capturer.dMlp,
      topK: options.topK,
      randomSampleSize: options.randomSampleSize,
      seed: options.seed,
      batchSize: options.batchSize,
      checkpointEvery: options.checkpointEvery,
      shard,
    };
    let phase: ScanJobPhase = 'scanning';
    let job;
    try {
      job = await runScanJob({
        excerpts,
        settings,
        source,
        adapters: {
          checkpoints: new FileCheckpointStore(checkpointPath, identity),
          openSpill: () => new FileRowSpill(join(options.out, shard ? SHARD_FILES.rows : RECORD_ROWS_FILE)),
          onProgress: (p) => {
            const force = p.phase !== phase;
            phase = p.phase;
            status.update(progressLine(p), force);
          },
        },
        signal,
        saveRecords: shard ? undefined : recordFileWriter(options.out),
      });
    } catch (err) {
      status.clear();
      if (err instanceof ScanAbortedError) {
        if (phase !== 'scanning') {
          throw new CliError(`interrupted while writing records; the scan itself is saved in ${checkpointPath}: run the same command with --resume to write them`, 130);
        }
        const total = shard ? '' : ` of ${count(excerpts.length)}`;
        throw new CliError(
          `interrupted after ${count(err.excerptsDone)}${total} excerpts; ${err.checkpointSaved ? `progress saved in ${checkpointPath}` : 'nothing new to save'}: run the same command with --resume to continue`,
          130,
        );
      }
      if (err instanceof ScanError && /checkpoint/.test(err.message)) throw new CliError(`${err.message} (${checkpointPath})`);
      throw err;
    }
    status.clear();
    const { summary, stats } = job;
    const recordSeconds = summary.seconds - summary.scanSeconds;
    const result: ScanSummary = {
      excerpts: summary.excerpts,
      tokens: summary.tokens,
      records: summary.records,
      scanSeconds: summary.scanSeconds,
      recordSeconds,
      tokensPerSecond: summary.scanSeconds > 0 ? summary.tokensScanned / summary.scanSeconds : 0,
      resumedFrom: summary.resumedFrom,
    };
    const config = stats.config;
    const description = {
      model: { label: model.label, onnx: model.onnxPath, nLayer: model.config.nLayer, dModel: model.config.dModel, dMlp: model.config.dMlp },
      backend: capturer.backend,
      gelu: options.gelu,
      corpus: { path: corpusPath, documents: documents.length },
      layers,
      neurons: stats.neuronCount,
      settings: {
        topK: config.topK,
        randomSampleSize: config.randomSampleSize,
        quantiles: config.quantiles,
        quantileSampleSize: config.quantileSampleSize,
        rowPrecision: config.rowPrecision,
        seed: config.seed,
        excerptLength: config.excerptLength,
        batchSize: options.batchSize,
      },
    };
    const timing = {
      scanSeconds: round(summary.scanSeconds),
      tokensPerSecond: round(result.tokensPerSecond),
      resumedFromExcerpt: summary.resumedFrom,
      recordSeconds: round(recordSeconds),
      sampledExcerptsRerun: summary.sampledExcerpts,
      forwardPasses: summary.forwardPasses,
    };
    const scanned =
      summary.resumedFrom === summary.excerpts
        ? `scanned ${count(summary.excerpts)} excerpts (${count(summary.tokens)} tokens, all from the checkpoint)`
        : `scanned ${count(summary.excerpts)} excerpts (${count(summary.tokens)} tokens${summary.resumedFrom ? `, resumed at excerpt ${count(summary.resumedFrom)}` : ''}) in ${formatDuration(summary.scanSeconds)}` +
          ` at ${count(Math.round(result.tokensPerSecond))} tokens/s`;
    if (shard) {
      await saveShard(
        options.out,
        {
          shard,
          scan: { fingerprint: scanFingerprint({ config, shard: null }, excerpts.map((e) => e.tokenIds)), identity, excerpts: excerpts.length },
          excerpts: summary.excerpts,
          tokens: summary.tokens,
          details: { ...description, maxExcerpts: options.maxExcerpts ?? null, timing },
        },
        stats,
        (e) => excerpts[e].tokens,
      );
      job.shardRows?.spill.close(false);
      await rm(checkpointPath, { force: true });
      process.stderr.write(`shard ${shard.index}/${shard.count}: ${scanned}; kept ${count(summary.sampledExcerpts)} sampled excerpts for \`neurolens merge\` in ${options.out}\n`);
      return result;
    }
    const metadata = {
      format: 'neurolens.scan',
      version: 2,
      ...description,
      excerpts: { count: excerpts.length, tokens: summary.tokens, length: config.excerptLength, maxExcerpts: options.maxExcerpts ?? null },
      timing,
      files: { records: '<layer>/<neuron>.json' },
      finishedAt: new Date().toISOString(),
    };
    await writeFile(join(options.out, SCAN_METADATA_FILE), `${JSON.stringify(metadata, null, 2)}\n`);
    await rm(checkpointPath, { force: true });
    process.stderr.write(`${scanned}; wrote ${count(summary.records)} records in ${formatDuration(recordSeconds)} to ${options.out}\n`);
    return result;
  } finally {
    status.clear();
    await capturer.dispose();
  }
}

export function round(x: number): number {
  return Number(x.toFixed(3));
}
