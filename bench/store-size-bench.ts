/**
 * Bytes the IndexedDB store writes for a GPT-2-small scan of the default corpus (12 layers ×
 * 3,072 neurons; public/corpus/default.jsonl cut into 64-token excerpts as the scan cuts it).
 * Usage: tsx bench/store-size-bench.ts [--quick]
 *
 * What is real and what is modelled:
 * - Real: the corpus, its excerpts and token strings (the GPT-2 tokenizer), the store's own code
 *   from records to rows (compactRecords, excerptRowsToAdd, recordRow: the rows putNeuronRecords
 *   writes, chunk by chunk as the worker writes them), and each row's size as V8's structured
 *   clone serialiser writes it (node:v8 serialize: the same ValueSerializer Chromium uses for
 *   IndexedDB values), plus its key as Chromium's IndexedDB encodes keys (and the byHash index
 *   entry of each excerpt).
 * - Modelled: which excerpts each neuron samples and its activations, since no GPT-2 weights are
 *   on this machine. Each neuron ranks the excerpts in its own random order; its top-K are the
 *   first K ranks, its quantile bins are rank ranges (levels 0.5, 0.9, 0.99, 0.999, so the top
 *   bins overlap the top-K as in a real scan), and the random sample is one seeded set shared by
 *   every neuron. Activations are GELU(pre-activation) rounded to float16, pre-activations normal
 *   with a per-neuron mean in [-2, -0.5] and deviation in [0.6, 1.4], plus a few peaks in highly
 *   ranked excerpts. Their entropy decides what the float16 coding saves (about a fifth here); on
 *   real activations it may differ, so `floatBytesPerNeuron` also gives the uncoded float16 size.
 * - Projected: record rows are measured for a sample of neurons (all 36,864 take minutes) and
 *   scaled to 36,864; the excerpt table is measured whole (the excerpts all 36,864 neurons sample).
 * - Not counted: what the browser's storage engine adds or saves on disk (page overhead,
 *   compression); `navigator.storage.estimate()` would include it.
 * Prints one JSON object on stdout.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { serialize } from 'node:v8';
import { buildExcerpts, parseCorpusFile } from '../src/lib/activations/corpus.ts';
import type { ActivationRecord, NeuronRecord } from '../src/lib/activations/records.ts';
import { createSeededRandom } from '../src/lib/activations/seeded-random.ts';
import { Gpt2Tokenizer } from '../src/lib/model/tokenizer.ts';
import { roundToFloat16 } from '../src/lib/store/compact-activations.ts';
import { compactRecords, recordRow } from '../src/lib/store/compact-record.ts';
import { excerptHash } from '../src/lib/store/excerpt-table.ts';
import { decodeFloat16Stream } from '../src/lib/store/float16-coding.ts';
import { excerptRowsToAdd } from '../src/lib/store/stored-excerpts.ts';
import { DEFAULT_CORPUS_FILE, prepareDefaultCorpus } from '../src/lib/activations/default-corpus.node.ts';

const quick = process.argv.includes('--quick');
const root = join(import.meta.dirname, '..');
const LAYERS = 12;
const D_MLP = 3072;
const NEURONS = LAYERS * D_MLP;
/** Neurons per putNeuronRecords call (as the worker writes them). */
const CHUNK = 512;
const QUANTILE_LEVELS = [0.5, 0.9, 0.99, 0.999];
const SCAN_ID = '0f8fad5b-d9cb-469f-a165-70867728950e'; // a crypto.randomUUID()-shaped id, as the app makes them

interface Setting {
  name: string;
  topK: number;
  randomSampleSize: number;
  quantileSampleSize: number;
}
const SETTINGS: Setting[] = [
  // Today's library and CLI defaults (neuron-stats.ts, src/cli/commands/scan.ts).
  { name: 'current defaults (top 20, random 50, 5 quantile bins × 5)', topK: 20, randomSampleSize: 50, quantileSampleSize: 5 },
  // The released GPT-2 XL records' settings.
  { name: 'paper (top 50, random 50, 5 quantile bins × 20)', topK: 50, randomSampleSize: 50, quantileSampleSize: 20 },
];

// ---- the corpus ----------------------------------------------------------------------------

if (!existsSync(DEFAULT_CORPUS_FILE)) prepareDefaultCorpus({ log: () => {} });
const tokenizer = new Gpt2Tokenizer(JSON.parse(readFileSync(join(root, 'public/models/tiny-random/tokenizer.json'), 'utf8')));
const excerpts = buildExcerpts(parseCorpusFile('default.jsonl', readFileSync(DEFAULT_CORPUS_FILE, 'utf8')), tokenizer);
const N = excerpts.length;

// ---- sizes as IndexedDB writes them --------------------------------------------------------

/** Bytes of a key as Chromium's IndexedDB encodes it: a type byte, numbers as doubles, strings as UTF-16 with a length. */
function keyBytes(key: unknown): number {
  if (typeof key === 'number') return 9;
  if (typeof key === 'string') return 1 + varintBytes(key.length) + 2 * key.length;
  if (Array.isArray(key)) return 1 + varintBytes(key.length) + key.reduce((n: number, k) => n + keyBytes(k), 0);
  throw new Error(`not a key: ${String(key)}`);
}
const varintBytes = (n: number) => Math.max(1, Math.ceil(Math.log2(n + 1) / 7));
/** Per-entry prefix (database, object store and index ids) of Chromium's IndexedDB keys. */
const KEY_PREFIX = 4;
const entryBytes = (key: unknown, value: unknown) => KEY_PREFIX + keyBytes(key) + serialize(value).length;

// ---- a modelled scan -------------------------------------------------------------------------

const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

/** Rank ranges [start, end) of the quantile bins, lowest bin first (rank 0 = the highest excerpt). */
function binRanks(): [number, number][] {
  const edges = [N, ...QUANTILE_LEVELS.map((q) => Math.ceil((1 - q) * N)), 0];
  return edges.slice(1).map((end, i) => [end, edges[i]]);
}

/** Which excerpts each neuron samples: its random ranking, drawn lazily for the ranks that matter. */
function sampleExcerpts(setting: Setting, random: () => number, randomSample: number[]) {
  const taken = new Map<number, number>(); // rank → excerpt
  const used = new Set<number>();
  const excerptAt = (rank: number) => {
    let e = taken.get(rank);
    if (e === undefined) {
      do e = Math.floor(random() * N);
      while (used.has(e));
      used.add(e);
      taken.set(rank, e);
    }
    return e;
  };
  const top = Array.from({ length: Math.min(setting.topK, N) }, (_, rank) => ({ rank, excerpt: excerptAt(rank) }));
  const bins = binRanks().map(([start, end]) => {
    const ranks = new Set<number>();
    const want = Math.min(setting.quantileSampleSize, end - start);
    while (ranks.size < want) ranks.add(start + Math.floor(random() * (end - start)));
    return [...ranks].map((rank) => ({ rank, excerpt: excerptAt(rank) }));
  });
  // The shared random sample: its excerpts sit at ranks of this neuron's ranking too (unknown, so drawn).
  const randomPart = randomSample.map((excerpt) => ({ rank: top.length + Math.floor(random() * (N - top.length)), excerpt }));
  return { top, bins, random: randomPart };
}

function modelledRecord(layer: number, neuron: number, setting: Setting, randomSample: number[]): NeuronRecord {
  const random = createSeededRandom(layer * D_MLP + neuron + 1);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const mean = -2 + 1.5 * random();
  const deviation = 0.6 + 0.8 * random();
  const picked = sampleExcerpts(setting, random, randomSample);
  // One activation row per excerpt: an excerpt the neuron shows twice has the same values both times.
  const rows = new Map<number, number[]>();
  const recordOf = ({ rank, excerpt }: { rank: number; excerpt: number }): ActivationRecord => {
    let values = rows.get(excerpt);
    if (!values) {
      const length = excerpts[excerpt].tokens.length;
      const pre = Array.from({ length }, () => mean + deviation * gauss());
      // Highly ranked excerpts peak: the top 1% at 1–3 places, well above the neuron's spread.
      if (rank < N / 100) for (let p = 0; p < 1 + Math.floor(random() * 3); p++) pre[Math.floor(random() * length)] = 1 + 4 * random() + (4 * (N / 100 - rank)) / (N / 100);
      values = pre.map((x) => roundToFloat16(gelu(x)));
      rows.set(excerpt, values);
    }
    return { dataclass_name: 'ActivationRecord', tokens: excerpts[excerpt].tokens, activations: values };
  };
  return {
    dataclass_name: 'NeuronRecord',
    neuron_id: { dataclass_name: 'NeuronId', layer_index: layer, neuron_index: neuron },
    random_sample: picked.random.map(recordOf),
    random_sample_by_quantile: picked.bins.map((bin) => bin.map(recordOf)),
    quantile_boundaries: [null, ...QUANTILE_LEVELS.map((q) => roundToFloat16(gelu(mean + deviation * (q * 3 - 1)))), null],
    mean: gelu(mean) + 0.01 * random(),
    variance: 0.01 + 0.05 * random(),
    skewness: 2 + 10 * random(),
    kurtosis: 20 + 200 * random(),
    most_positive_activation_records: picked.top.map(recordOf),
  };
}

// ---- the measurement -------------------------------------------------------------------------

function measure(setting: Setting, sampleNeurons: number) {
  const seeded = createSeededRandom(2024);
  const randomSample = new Set<number>();
  while (randomSample.size < Math.min(setting.randomSampleSize, N)) randomSample.add(Math.floor(seeded() * N));
  const shared = [...randomSample];
  // Sampled neurons spread over all layers (every sampleStep-th neuron).
  const sampleStep = Math.max(1, Math.floor(NEURONS / sampleNeurons));
  const sample = Array.from({ length: Math.ceil(NEURONS / sampleStep) }, (_, i) => i * sampleStep);

  // The scan's stored excerpts and vocabulary, as excerptRowsToAdd sees them write after write.
  const vocabulary: string[] = [];
  const stored = new Map<number, number[]>(); // excerptHash → indices
  const storedTokens: string[][] = [];
  let excerptBytes = 0;
  let vocabularyBytes = 0;
  let recordBytes = 0;
  let recordValues = 0;
  let activationBytes = 0;
  let floatBytes = 0;
  let excerptRefs = 0;
  let started = performance.now();
  for (let start = 0; start < sample.length; start += CHUNK) {
    const chunk = sample.slice(start, start + CHUNK).map((n) => modelledRecord(Math.floor(n / D_MLP), n % D_MLP, setting, shared));
    const compact = compactRecords(chunk, 'float16');
    const rows = excerptRowsToAdd(SCAN_ID, compact.excerpts, {
      vocabulary,
      nextIndex: storedTokens.length,
      find: (i) => {
        const tokens = compact.excerpts.tokens(i);
        return stored.get(excerptHash(tokens))?.find((s) => storedTokens[s].join('\u0000') === tokens.join('\u0000'));
      },
    });
    for (const row of rows.excerpts) {
      // The row, its key [scanId, index] and its byHash index entry ([scanId, hash] → primary key).
      excerptBytes += entryBytes([row.scanId, row.index], row) + KEY_PREFIX + keyBytes([row.scanId, row.hash]) + keyBytes([row.scanId, row.index]);
      const tokens = Array.from(row.tokenIds, (id) => vocabulary[id] ?? rows.page!.tokens[id - vocabulary.length]);
      storedTokens.push(tokens);
      const list = stored.get(row.hash) ?? [];
      stored.set(row.hash, [...list, row.index]);
    }
    if (rows.page) {
      vocabularyBytes += entryBytes([rows.page.scanId, rows.page.firstId], rows.page);
      vocabulary.push(...rows.page.tokens);
    }
    compact.records.forEach((record, i) => {
      const row = recordRow(SCAN_ID, record, rows.scanIndex);
      recordBytes += entryBytes([SCAN_ID, row.layer, row.neuron], row);
      excerptRefs += row.excerpts.length;
      const values = [chunk[i].random_sample, ...(chunk[i].random_sample_by_quantile ?? []), chunk[i].most_positive_activation_records]
        .flat()
        .reduce((n, e) => n + e.activations.length, 0);
      recordValues += values;
      activationBytes += row.activations.byteLength;
      floatBytes += 2 * (row.activations instanceof Uint8Array ? decodeFloat16Stream(row.activations).length : row.activations.length);
    });
  }
  const seconds = (performance.now() - started) / 1000;

  // The excerpts all 36,864 neurons sample (selection only, no activations), to scale the excerpt table.
  const sampled = new Set<number>(shared);
  for (let n = 0; n < NEURONS; n++) {
    const picked = sampleExcerpts(setting, createSeededRandom(n + 1), shared);
    for (const { excerpt } of [...picked.top, ...picked.bins.flat()]) sampled.add(excerpt);
  }
  const allTokens = new Set([...sampled].flatMap((e) => excerpts[e].tokens));
  const scale = NEURONS / sample.length;
  const projectedTable = excerptBytes * (sampled.size / storedTokens.length) + vocabularyBytes * (allTokens.size / vocabulary.length);
  const projected = recordBytes * scale + projectedTable;
  const uncoded = projected + (floatBytes - activationBytes) * scale;
  const mb = (bytes: number) => Number((bytes / 1e6).toFixed(1));
  return {
    setting: setting.name,
    measured: {
      neurons: sample.length,
      seconds: Number(seconds.toFixed(1)),
      recordRowBytes: recordBytes,
      excerptRows: storedTokens.length,
      excerptRowBytes: excerptBytes,
      vocabularyStrings: vocabulary.length,
      vocabularyBytes,
      perNeuron: {
        recordRowBytes: Math.round(recordBytes / sample.length),
        excerptsListed: Math.round(excerptRefs / sample.length),
        activationValues: Math.round(recordValues / sample.length),
        distinctValueBytesAsFloat16: Math.round(floatBytes / sample.length),
        codedActivationBytes: Math.round(activationBytes / sample.length),
      },
    },
    projected: {
      neurons: NEURONS,
      excerptTable: { excerpts: sampled.size, strings: allTokens.size, MB: mb(projectedTable) },
      MB: mb(projected),
      bytesPerNeuron: Math.round(projected / NEURONS),
      /** The same with the float16 values left uncoded (2 bytes each, rows still shared). */
      uncodedMB: mb(uncoded),
      targetMB: 400,
    },
  };
}

const sampleNeurons = quick ? 512 : 3072;
const report = {
  corpus: { excerpts: N, tokens: excerpts.reduce((n, e) => n + e.tokens.length, 0) },
  model: 'GPT-2 small: 12 layers × 3,072 neurons',
  method:
    'node:v8 serialize of the rows putNeuronRecords writes (the structured-clone format Chromium stores) plus Chromium-encoded keys; records measured for a sample of neurons spread over all layers and scaled to 36,864; real corpus and tokens, modelled activations (see bench/store-size-bench.ts)',
  settings: SETTINGS.map((setting) => measure(setting, sampleNeurons)),
};
process.stdout.write(`${JSON.stringify(report)}\n`);
