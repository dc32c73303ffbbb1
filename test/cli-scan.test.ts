/**
 * `neurolens scan` as a user runs it (bin/neurolens.mjs in a child process) on the planted toy
 * model: the files it writes, that they are the records the library builds from the same
 * excerpts and seed, that a crash or Ctrl-C followed by --resume gives the same output as an
 * uninterrupted run, and one clear line plus a non-zero exit for bad input.
 */
import { spawn, execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, readdirSync, readFileSync, writeFileSync, openSync, readSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildExcerpts, parseCorpusFile } from '../src/lib/activations/corpus.ts';
import { runScan } from '../src/lib/activations/scan.ts';
import { buildNeuronRecords } from '../src/lib/activations/sample-rows.ts';
import { recordJson } from '../src/lib/activations/scan-files.node.ts';
import { createSeededRandom } from '../src/lib/activations/seeded-random.ts';
import { parseNeuronRecord, serializeNeuronRecord } from '../src/lib/explain/formats.ts';
import { ActivationCapturer } from '../src/lib/model/capture.ts';
import { dirSource } from '../src/lib/model/dir-source.node.ts';
import { loadModel } from '../src/lib/model/load-model.ts';
import { loadNodeRuntime } from '../src/lib/model/ort-runtime.node.ts';
import { ensureModels } from '../scripts/gen-models.ts';
import { parseShard, RECORD_ROWS_FILE } from '../src/cli/commands/scan.ts';

const BIN = join(import.meta.dirname, '../bin/neurolens.mjs');
const TOY = join(import.meta.dirname, '../public/models/toy-planted');
const execFileAsync = promisify(execFile);

interface CliResult {
  code: number | null;
  signal?: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

async function cli(args: string[]): Promise<CliResult> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [BIN, ...args], { maxBuffer: 1 << 26, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function cliWithEnv(args: string[], env: Record<string, string>): Promise<CliResult> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [BIN, ...args], { maxBuffer: 1 << 26, timeout: 60_000, env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Excerpts done according to a checkpoint file's header, or -1 while there is none. */
function checkpointExcerpts(path: string): number {
  if (!existsSync(path)) return -1;
  const fd = openSync(path, 'r');
  try {
    const length = Buffer.alloc(4);
    readSync(fd, length, 0, 4, 0);
    const header = Buffer.alloc(length.readUInt32LE(0));
    readSync(fd, header, 0, header.length, 4);
    return JSON.parse(header.toString('utf8')).excerptsDone;
  } finally {
    closeSync(fd);
  }
}

/**
 * Starts a scan and sends `signal` once its checkpoint shows more than `after` excerpts done
 * (or, with `when`, once that file exists); resolves when the process has exited.
 */
function runAndInterrupt(
  args: string[],
  checkpoint: string,
  after: number,
  signal: NodeJS.Signals,
  when?: string,
): Promise<CliResult & { interruptedAt: number }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    let interruptedAt = -1;
    const poll = setInterval(() => {
      let done = -1;
      try {
        done = checkpointExcerpts(checkpoint);
      } catch {
        return; // being renamed into place
      }
      if ((when ? existsSync(when) : done > after) && interruptedAt < 0) {
        interruptedAt = done;
        child.kill(signal);
      }
    }, 10);
    child.on('error', reject);
    child.on('exit', (code, sig) => {
      clearInterval(poll);
      resolvePromise({ code, signal: sig, stdout, stderr, interruptedAt });
    });
  });
}

function corpusLines(): string {
  const random = createSeededRandom(11);
  const pick = <T>(xs: T[]) => xs[Math.floor(random() * xs.length)];
  const names = ['Alice', 'Boston', 'Maria', 'London', 'Oxford', 'Peter', 'Tuesday', 'Kyoto'];
  const nouns = ['cat', 'house', 'river', 'report', 'engine', 'garden', 'letter', 'bridge', 'song', 'market'];
  const verbs = ['saw', 'built', 'found', 'sold', 'painted', 'opened', 'carried', 'missed'];
  const sentence = () =>
    pick([
      () => `${pick(names)} ${pick(verbs)} the ${pick(nouns)} in ${1900 + Math.floor(random() * 120)}.`,
      () => `A ${pick(nouns)} ${pick(verbs)} a ${pick(nouns)} near some ${pick(nouns)}s.`,
      () => `"We ${pick(verbs)} ${2 + Math.floor(random() * 90)} ${pick(nouns)}s," said ${pick(names)}.`,
      () => `nobody ${pick(verbs)} it, and then ${pick(nouns)}s ${pick(verbs)} every ${pick(nouns)}.`,
    ])();
  // Documents of different lengths, so some excerpts are shorter than 64 tokens.
  return Array.from({ length: 12 }, (_, d) => JSON.stringify({ text: Array.from({ length: 40 + 9 * d }, sentence).join(' '), id: d })).join('\n');
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();
}

describe('neurolens scan', () => {
  let dir: string;
  let corpus: string;
  let reference: string;

  beforeAll(async () => {
    ensureModels({ only: ['toy-planted'], log: () => {} });
    dir = mkdtempSync(join(tmpdir(), 'neurolens-scan-'));
    corpus = join(dir, 'corpus.jsonl');
    writeFileSync(corpus, corpusLines());
    reference = join(dir, 'reference');
    const { code, stderr } = await cli(['scan', '--model', 'toy-planted', '--corpus', corpus, '--out', reference]);
    expect(stderr).toMatch(/^scanned \d+ excerpts \([\d,]+ tokens\) in .* tokens\/s; wrote 512 records in .* to /);
    expect(code).toBe(0);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes one NeuronRecord per neuron and scan.json', () => {
    const files = filesUnder(reference);
    expect(files.filter((f) => /^[01]\/\d+\.json$/.test(f))).toHaveLength(512);
    expect(files).toContain('scan.json');
    expect(files).toHaveLength(513);

    const meta = JSON.parse(readFileSync(join(reference, 'scan.json'), 'utf8'));
    expect(meta).toMatchObject({
      layers: [0, 1],
      neurons: 512,
      gelu: 'model',
      backend: 'onnxruntime-node',
      settings: { topK: 20, randomSampleSize: 50, quantiles: [0.5, 0.9, 0.99, 0.999], quantileSampleSize: 5, excerptLength: 64, seed: 0, batchSize: 8 },
    });
    // One extra pass, over the sampled excerpts only.
    expect(meta.timing.forwardPasses).toBe(meta.excerpts.count + meta.timing.sampledExcerptsRerun);
    expect(meta.timing.sampledExcerptsRerun).toBeLessThanOrEqual(meta.excerpts.count);
    expect(meta.model.label).toContain('toy-planted');
    expect(meta.corpus).toEqual({ path: corpus, documents: 12 });
    expect(meta.timing.scanSeconds).toBeGreaterThan(0);

    const record = parseNeuronRecord(readFileSync(join(reference, '0/203.json'), 'utf8'));
    expect(record.neuron_id).toMatchObject({ layer_index: 0, neuron_index: 203 });
    expect(record.most_positive_activation_records).toHaveLength(20);
    expect(record.random_sample).toHaveLength(50);
    expect(record.random_sample_by_quantile).toHaveLength(5);
    // The planted " the" neuron: every top excerpt peaks on " the".
    for (const r of record.most_positive_activation_records) expect(r.tokens[r.activations.indexOf(Math.max(...r.activations))]).toBe(' the');
    const excerptTokens = record.most_positive_activation_records.reduce((n, r) => n + r.tokens.length, 0);
    expect(meta.excerpts.tokens).toBeGreaterThanOrEqual(excerptTokens);

  });

  it('writes exactly the records the library builds from the same excerpts and seed', async () => {
    const model = await loadModel(await dirSource(TOY));
    const capturer = new ActivationCapturer(model, await loadNodeRuntime('node'));
    try {
      const excerpts = buildExcerpts(parseCorpusFile('corpus.jsonl', readFileSync(corpus, 'utf8')), model.tokenizer);
      const ids = excerpts.map((e) => e.tokenIds);
      const source = async (batch: number[][]) => (await capturer.runTokens(batch, { layers: [0, 1] })).layers;
      const { stats } = await runScan({ source, excerpts: ids, layers: [0, 1], dMlp: capturer.dMlp });
      const neurons = [
        { layer: 0, neuron: 37 },
        { layer: 0, neuron: 150 },
        { layer: 1, neuron: 91 },
        { layer: 1, neuron: 222 },
        { layer: 1, neuron: 255 },
      ];
      const records = await buildNeuronRecords({ stats, source, excerpts: ids, tokensOf: (e) => excerpts[e].tokens, neurons });
      records.forEach((record, i) => {
        const file = readFileSync(join(reference, String(neurons[i].layer), `${neurons[i].neuron}.json`), 'utf8');
        expect(file).toBe(`${serializeNeuronRecord(record)}\n`);
      });
    } finally {
      await capturer.dispose();
    }
  });

  it('writes records exactly as the formats module does, −0 included', () => {
    const record = parseNeuronRecord(readFileSync(join(reference, '1/91.json'), 'utf8'));
    expect(recordJson(record)).toBe(serializeNeuronRecord(record));
    record.random_sample[0].activations[3] = -0;
    expect(recordJson(record)).toBe(serializeNeuronRecord(record));
    expect(recordJson(record)).toContain('-0.0');
  });

  it('after a crash and then Ctrl-C, --resume finishes with the same output as an uninterrupted run', async () => {
    const out = join(dir, 'interrupted');
    const checkpoint = join(out, '.checkpoint');
    const args = ['scan', '--model', 'toy-planted', '--corpus', corpus, '--out', out, '--batch', '1', '--checkpoint-every', '4'];

    const crashed = await runAndInterrupt(args, checkpoint, 0, 'SIGKILL');
    expect(crashed.signal).toBe('SIGKILL');
    const afterCrash = checkpointExcerpts(checkpoint);
    expect(afterCrash).toBeGreaterThan(0);

    const again = await cli(args);
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toMatch(/^neurolens scan: .* holds an unfinished scan .*--resume/);

    const stopped = await runAndInterrupt([...args, '--resume'], checkpoint, afterCrash + 4, 'SIGINT');
    expect(stopped.code).toBe(130);
    expect(stopped.stderr).toMatch(/neurolens scan: interrupted after [\d,]+ of [\d,]+ excerpts; progress saved in .*\.checkpoint: run the same command with --resume to continue/);
    const afterStop = checkpointExcerpts(checkpoint);
    expect(afterStop).toBeGreaterThanOrEqual(stopped.interruptedAt);

    const total = JSON.parse(readFileSync(join(reference, 'scan.json'), 'utf8')).excerpts.count;
    expect(afterStop).toBeLessThan(total);
    const resumed = await cli([...args, '--resume']);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toMatch(new RegExp(`resumed at excerpt ${afterStop}\\)`));
    expect(existsSync(checkpoint)).toBe(false);

    const files = filesUnder(out);
    expect(files).toEqual(filesUnder(reference));
    for (const f of files.filter((name) => name !== 'scan.json')) expect(readFileSync(join(out, f), 'utf8'), f).toBe(readFileSync(join(reference, f), 'utf8'));
    const [a, b] = [out, reference].map((d) => JSON.parse(readFileSync(join(d, 'scan.json'), 'utf8')));
    for (const m of [a, b]) {
      delete m.timing;
      delete m.finishedAt;
      delete m.settings.batchSize;
    }
    expect(a).toEqual(b);
  });

  it('Ctrl-C while the records are written keeps the finished scan; --resume writes them', async () => {
    const out = join(dir, 'records-interrupted');
    const args = ['scan', '--model', 'toy-planted', '--corpus', corpus, '--out', out];
    const stopped = await runAndInterrupt(args, join(out, '.checkpoint'), 0, 'SIGINT', join(out, RECORD_ROWS_FILE));
    expect(stopped.code).toBe(130);
    expect(stopped.stderr).toMatch(/interrupted while writing records; the scan itself is saved in .*\.checkpoint: run the same command with --resume/);
    expect(existsSync(join(out, RECORD_ROWS_FILE))).toBe(false);
    const resumed = await cli([...args, '--resume']);
    expect(resumed.stderr).toMatch(/^scanned 154 excerpts \([\d,]+ tokens, all from the checkpoint\); wrote 512 records/);
    expect(resumed.code).toBe(0);
    for (const f of ['0/0.json', '1/222.json']) expect(readFileSync(join(out, f), 'utf8')).toBe(readFileSync(join(reference, f), 'utf8'));
  });

  it('honours --layers, --top, --random, --seed and --max-excerpts', async () => {
    const out = join(dir, 'options');
    const { code, stderr } = await cli(['scan', '--model', 'toy-planted', '--corpus', corpus, '--out', out, '--layers', '1', '--top', '5', '--random', '7', '--seed', '3', '--max-excerpts', '40']);
    expect(stderr).toMatch(/^scanned 40 excerpts/);
    expect(code).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['1', 'scan.json']);
    expect(readdirSync(join(out, '1'))).toHaveLength(256);
    const record = parseNeuronRecord(readFileSync(join(out, '1/222.json'), 'utf8'));
    expect(record.most_positive_activation_records).toHaveLength(5);
    expect(record.random_sample).toHaveLength(7);
    for (const r of record.most_positive_activation_records) expect(r.tokens[r.activations.indexOf(Math.max(...r.activations)) - 1]).toBe(' the');
    const meta = JSON.parse(readFileSync(join(out, 'scan.json'), 'utf8'));
    expect(meta).toMatchObject({ layers: [1], neurons: 256, excerpts: { count: 40, maxExcerpts: 40 }, settings: { topK: 5, randomSampleSize: 7, seed: 3 } });
    // Another seed samples other excerpts (the first 40 excerpts are the reference's too).
    const seed0 = parseNeuronRecord(readFileSync(join(reference, '1/222.json'), 'utf8'));
    expect(record.random_sample.map((r) => r.tokens.join(''))).not.toEqual(seed0.random_sample.slice(0, 7).map((r) => r.tokens.join('')));
  });

  it('--gelu sigmoid scans with x·σ(1.702x) in every layer, which `neurolens compare` then recognises', async () => {
    const out = join(dir, 'sigmoid');
    const scan = await cli(['scan', '--model', 'toy-planted', '--corpus', corpus, '--out', out, '--layers', '1', '--max-excerpts', '30', '--gelu', 'sigmoid']);
    expect(scan.code).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'scan.json'), 'utf8')).gelu).toBe('sigmoid');
    const compare = await cli(['compare', '--record', join(out, '1/222.json'), '--model', 'toy-planted', '--json']);
    expect(compare.code).toBe(0);
    const { tanh, sigmoid } = JSON.parse(compare.stdout).records[0].comparisons;
    expect(sigmoid.overall.medianAbsDiff).toBeLessThan(tanh.overall.medianAbsDiff / 100);
  });

  it('scans the default corpus', async () => {
    const out = join(dir, 'default');
    const { code, stderr } = await cli(['scan', '--model', 'toy-planted', '--corpus', 'default', '--out', out, '--layers', '0', '--max-excerpts', '12']);
    expect(stderr).toMatch(/scanned 12 excerpts/);
    expect(code).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'scan.json'), 'utf8')).corpus.path).toMatch(/public\/corpus\/default\.jsonl$/);
  });

  describe('shards', () => {
    const shardDirs = [0, 1, 2].map((i) => () => join(dir, `shard-${i}`));

    it('three shards (--shard i/3, and auto/3 from a Kubernetes or Slurm index) merge into the records of one scan', async () => {
      const runs = await Promise.all([
        cli(['scan', '--model', 'toy-planted', '--corpus', corpus, '--out', shardDirs[0](), '--shard', '0/3']),
        cliWithEnv(['scan', '--model', 'toy-planted', '--corpus', corpus, '--out', shardDirs[1](), '--shard', 'auto/3'], { JOB_COMPLETION_INDEX: '1' }),
        cliWithEnv(['scan', '--model', 'toy-planted', '--corpus', corpus, '--out', shardDirs[2](), '--shard', 'auto/3'], { SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_MIN: '1' }),
      ]);
      runs.forEach(({ code, stderr }, i) => {
        expect(stderr).toMatch(new RegExp(`^shard ${i}/3: scanned \\d+ excerpts .*kept \\d+ sampled excerpts for \`neurolens merge\``));
        expect(code).toBe(0);
      });
      for (const d of shardDirs) expect(readdirSync(d()).sort()).toEqual(['excerpts.jsonl', 'sample-rows.bin', 'shard.json', 'statistics.bin']);
      const counts = shardDirs.map((d) => JSON.parse(readFileSync(join(d(), 'shard.json'), 'utf8')).excerpts as number);
      const total = JSON.parse(readFileSync(join(reference, 'scan.json'), 'utf8')).excerpts.count;
      expect(counts.reduce((a, b) => a + b, 0)).toBe(total);

      const out = join(dir, 'merged');
      const merged = await cli(['merge', ...shardDirs.map((d) => d()), '--out', out]);
      expect(merged.stderr).toMatch(new RegExp(`^merged 3 shards \\(${total} excerpts, [\\d,]+ tokens\\): wrote 512 records in .* to `));
      expect(merged.code).toBe(0);
      expect(filesUnder(out)).toEqual(filesUnder(reference));
      const meta = JSON.parse(readFileSync(join(out, 'scan.json'), 'utf8'));
      expect(meta).toMatchObject({ layers: [0, 1], neurons: 512, excerpts: { count: total }, settings: { topK: 20, randomSampleSize: 50, seed: 0 } });
      expect(meta.shards.map((x: { shard: unknown }) => x.shard)).toEqual([0, 1, 2].map((index) => ({ index, count: 3 })));

      // The same excerpts and activations; the moments equal to 1e-9 (sums in another order).
      let momentsDiffer = 0;
      for (const f of filesUnder(reference).filter((name) => name !== 'scan.json')) {
        const a = parseNeuronRecord(readFileSync(join(out, f), 'utf8'));
        const b = parseNeuronRecord(readFileSync(join(reference, f), 'utf8'));
        for (const key of ['mean', 'variance', 'skewness', 'kurtosis'] as const) {
          if (a[key] !== b[key]) momentsDiffer++;
          expect(Math.abs(a[key]! - b[key]!), `${f} ${key}`).toBeLessThanOrEqual(1e-9 * Math.abs(b[key]!));
          a[key] = b[key] = 0;
        }
        expect(a, f).toEqual(b);
      }
      expect(momentsDiffer).toBeLessThan(4 * 512); // most agree to the last bit
    });

    it('refuses a missing, repeated or foreign shard', async () => {
      const [zero, one] = shardDirs.map((d) => d());
      const missing = await cli(['merge', zero, one, '--out', join(dir, 'm1')]);
      expect(missing.code).not.toBe(0);
      expect(missing.stderr.trim()).toMatch(/^neurolens merge: shard 2\/3 missing: give all 3 shard folders$/);
      const twice = await cli(['merge', zero, zero, one, '--out', join(dir, 'm2')]);
      expect(twice.stderr.trim()).toMatch(/^neurolens merge: .* and .* are both shard 0\/3$/);
      const foreign = join(dir, 'shard-other-seed');
      expect((await cli(['scan', '--model', 'toy-planted', '--corpus', corpus, '--out', foreign, '--shard', '2/3', '--seed', '5'])).code).toBe(0);
      const mixed = await cli(['merge', zero, one, foreign, '--out', join(dir, 'm3')]);
      expect(mixed.stderr.trim()).toMatch(/^neurolens merge: .*shard-other-seed is a shard of another scan than .*shard-0 \(model, corpus or settings differ\)$/);
      const notShard = await cli(['merge', reference, '--out', join(dir, 'm4')]);
      expect(notShard.stderr.trim()).toMatch(/is not a finished shard \(no shard\.json\)/);
    });

    it('reads --shard auto/N from JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID, and refuses what does not fit', () => {
      expect(parseShard('2/5', {})).toEqual({ index: 2, count: 5 });
      expect(parseShard('auto/4', { JOB_COMPLETION_INDEX: '3' })).toEqual({ index: 3, count: 4 });
      expect(parseShard('auto/4', { SLURM_ARRAY_TASK_ID: '2' })).toEqual({ index: 2, count: 4 });
      expect(parseShard('auto/4', { SLURM_ARRAY_TASK_ID: '4', SLURM_ARRAY_TASK_MIN: '1' })).toEqual({ index: 3, count: 4 });
      expect(() => parseShard('auto/4', {})).toThrow(/needs JOB_COMPLETION_INDEX .* or SLURM_ARRAY_TASK_ID/);
      expect(() => parseShard('4/4', {})).toThrow(/shard index 4 is not between 0 and 3/);
      expect(() => parseShard('auto/2', { JOB_COMPLETION_INDEX: '7' })).toThrow(/shard index 7 is not between 0 and 1/);
      expect(() => parseShard('1-3', {})).toThrow(/--shard must be i\/N/);
    });
  });

  describe('bad input: one clear line and a non-zero exit', () => {
    const cases: [string, () => string[], RegExp][] = [
      ['a missing corpus', () => ['--corpus', join(dir, 'nope.jsonl'), '--out', join(dir, 'x1')], /corpus file not found: .*nope\.jsonl/],
      ['a malformed JSONL line', () => ['--corpus', join(dir, 'bad.jsonl'), '--out', join(dir, 'x2')], /bad\.jsonl line 2: not valid JSON/],
      ['a JSONL line without text', () => ['--corpus', join(dir, 'notext.jsonl'), '--out', join(dir, 'x3')], /notext\.jsonl line 1: no "text" field/],
      ['a corpus of another format', () => ['--corpus', join(dir, 'corpus.csv'), '--out', join(dir, 'x4')], /expected a \.txt or \.jsonl file/],
      ['a layer the model does not have', () => ['--corpus', corpus, '--out', join(dir, 'x5'), '--layers', '0,5'], /layer 5 is out of range: this model has layers 0-1/],
      ['a layer that is not a number', () => ['--corpus', corpus, '--out', join(dir, 'x6'), '--layers', '0,x'], /--layers: "x" is not a layer number/],
      ['an out dir that cannot be created', () => ['--corpus', corpus, '--out', join(corpus, 'sub')], /cannot write to --out .*corpus\.jsonl\/sub: ENOTDIR/],
      ['a bad --top', () => ['--corpus', corpus, '--out', join(dir, 'x7'), '--top', '0'], /--top must be a whole number of at least 1, not "0"/],
      ['a bad --gelu', () => ['--corpus', corpus, '--out', join(dir, 'x8'), '--gelu', 'erf'], /--gelu must be model, tanh, sigmoid, not "erf"/],
      ['no --out', () => ['--corpus', corpus], /--out is required/],
    ];
    beforeAll(() => {
      writeFileSync(join(dir, 'bad.jsonl'), '{"text": "fine"}\n{"text": "broken\n');
      writeFileSync(join(dir, 'notext.jsonl'), '{"body": "no text"}\n');
      writeFileSync(join(dir, 'corpus.csv'), 'text\nhello\n');
    });
    it.each(cases)('%s', async (_, args, message) => {
      const { code, stdout, stderr } = await cli(['scan', '--model', 'toy-planted', ...args()]);
      expect(code).not.toBe(0);
      expect(stdout).toBe('');
      const lines = stderr.trim().split('\n');
      expect(lines[0]).toMatch(/^neurolens scan: /);
      expect(lines[0]).toMatch(message);
      if (!/required/.test(String(message))) expect(lines).toHaveLength(1);
    });
  });
});
