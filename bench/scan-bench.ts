/**
 * One scan measurement, run in its own process so its peak memory is its own.
 * Usage: tsx bench/scan-bench.ts <model-dir> <scan|records> <excerpts> [batch]
 *   scan     the model alone on the excerpts (what a scan cannot go below), then the scan as
 *            `neurolens scan` runs it on the same excerpts (the same activation source and
 *            runScan over all layers: 36,864 neurons for GPT-2 small, default settings), then the
 *            model alone again. The end-to-end overhead compares the scan with the mean of the two
 *            model-only passes, which brackets slow drifts of the machine's speed (runs of the
 *            same pass differ by several per cent here). The bookkeeping is also timed directly,
 *            from the moment runScan asks for the next batch (just before it digests the current
 *            one) to its progress report after it, and set against the rest of the same run (the
 *            model's share), which no drift between passes can skew.
 *   records  the scan job of one layer as the CLI runs it: the scan, the pass over the sampled
 *            excerpts (rows spilled to a file), and the NeuronRecords written as files
 * Excerpts are 64-token pieces of the default corpus (public/corpus/default.jsonl), cut as the
 * CLI cuts them. Prints one JSON object on stdout.
 * NEUROLENS_BENCH_SESSION='{"enableCpuMemArena":false}' (JSON, RuntimeSessionSettings) replaces
 * the onnxruntime-node session settings the CLI uses, to measure their effect.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { buildExcerpts, parseCorpusFile } from '../src/lib/activations/corpus.ts';
import { runScan } from '../src/lib/activations/scan.ts';
import { runScanJob } from '../src/lib/activations/scan-job.ts';
import { createScanSource } from '../src/lib/activations/scan-source.ts';
import { FileRowSpill, recordFileWriter } from '../src/lib/activations/scan-files.node.ts';
import { DEFAULT_CORPUS_FILE as DEFAULT_CORPUS, prepareDefaultCorpus } from '../src/lib/activations/default-corpus.node.ts';
import { ActivationCapturer } from '../src/lib/model/capture.ts';
import { dirSource } from '../src/lib/model/dir-source.node.ts';
import { loadModel } from '../src/lib/model/load-model.ts';
import { loadNodeRuntime, NODE_SESSION_SETTINGS } from '../src/lib/model/ort-runtime.node.ts';
import type { RuntimeSessionSettings } from '../src/lib/model/ort-runtime.ts';
import { createMomentKernel } from '../src/lib/activations/moment-kernel.ts';
import { MemorySampler } from './memory-sampler.ts';

const [modelDir, mode, excerptsArg, batchArg] = process.argv.slice(2);
if (!modelDir || !['scan', 'records'].includes(mode) || !(Number(excerptsArg) > 0)) {
  console.error('usage: tsx bench/scan-bench.ts <model-dir> <scan|records> <excerpts> [batch]');
  process.exit(2);
}
const wanted = Number(excerptsArg);
const sessionSettings: RuntimeSessionSettings = process.env.NEUROLENS_BENCH_SESSION ? JSON.parse(process.env.NEUROLENS_BENCH_SESSION) : NODE_SESSION_SETTINGS;
const batchSize = Number(batchArg ?? 8);

const memory = new MemorySampler();
// Garbage-collection pauses, to tell apart from the bookkeeping: collecting the model's output
// arrays (75 MB per batch of 8) happens in model-only passes as well, and during a scan some of
// it can fall inside the bookkeeping's timed window.
const gcPauses: PerformanceEntry[] = [];
const gcObserver = new PerformanceObserver((list) => gcPauses.push(...list.getEntries()));
gcObserver.observe({ entryTypes: ['gc'] });
/** Milliseconds of GC pause that began inside [from, to). */
const gcBetween = (from: number, to: number) => gcPauses.reduce((sum, e) => (e.startTime >= from && e.startTime < to ? sum + e.duration : sum), 0);
/** Lets the observer deliver the entries queued so far. */
const settleGcEntries = () => new Promise((resolve) => setTimeout(resolve, 10));
const rssMB = () => Math.round(process.memoryUsage().rss / 2 ** 20);
/** Linux's resident high-water mark, in MB (null elsewhere). */
function highWaterMB(): number | null {
  try {
    const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return hwm ? Math.round(Number(hwm[1]) / 1024) : null;
  } catch {
    return null;
  }
}
/** Restarts the high-water mark from the current RSS (Linux), so a phase's own peak can be read. */
function resetHighWater(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

let peakBeforeScanMB: number | null = null;
if (!existsSync(DEFAULT_CORPUS)) prepareDefaultCorpus({ outFile: DEFAULT_CORPUS, log: () => {} });
const t0 = performance.now();
const model = await loadModel(await dirSource(modelDir));
const capturer = new ActivationCapturer(model, await loadNodeRuntime('node', undefined, sessionSettings));
const layers = capturer.resolveLayers();
// As `neurolens scan` does: one graph, and the model file's bytes let go once it is built.
const source = await createScanSource(capturer, layers, { releaseModelBytes: true });
const loadSeconds = (performance.now() - t0) / 1000;
const afterLoadMB = rssMB();

// Full 64-token excerpts only, so every batch has the same shape in both modes.
const documents = parseCorpusFile('default.jsonl', readFileSync(DEFAULT_CORPUS, 'utf8'));
const excerpts = buildExcerpts(documents, model.tokenizer).filter((e) => e.tokenIds.length === 64).slice(0, wanted);
if (excerpts.length < wanted) throw new Error(`the default corpus has only ${excerpts.length} full 64-token excerpts`);
const ids = excerpts.map((e) => e.tokenIds);
const tokens = ids.length * 64;
await source(ids.slice(0, batchSize)); // first run plans and allocates

const result: Record<string, unknown> = {
  mode,
  excerpts: ids.length,
  tokens,
  batch: batchSize,
  neurons: layers.length * capturer.dMlp,
  sessionSettings,
  momentKernel: createMomentKernel(capturer.dMlp, 64).kind,
  loadSeconds: +loadSeconds.toFixed(2),
  rssAfterLoadMB: afterLoadMB,
};

if (mode === 'scan') {
  const forwardPass = async () => {
    const started = performance.now();
    for (let i = 0; i < ids.length; i += batchSize) await source(ids.slice(i, i + batchSize));
    return (performance.now() - started) / 1000;
  };
  const forwardBeforeAt = performance.now();
  const forwardBefore = await forwardPass();
  const forwardBeforeEnd = performance.now();

  // Bookkeeping of batch i: from runScan's call for batch i + 1 (made right before it digests
  // batch i) to its progress report after digesting it.
  let askedAt = 0;
  let bookkeeping = 0;
  const windows: [number, number][] = [];
  const timedSource: typeof source = (batch, signal) => {
    askedAt = performance.now();
    return source(batch, signal);
  };
  let reports = 0;
  const beforeScanMB = rssMB();
  peakBeforeScanMB = highWaterMB();
  const phasePeak = resetHighWater();
  const started = performance.now();
  await runScan({
    source: timedSource,
    excerpts: ids,
    layers,
    dMlp: capturer.dMlp,
    batchSize,
    onProgress: () => {
      // The first report comes before any batch; the last batch has no next call to time from.
      if (reports++ > 0 && askedAt > 0) {
        const now = performance.now();
        bookkeeping += now - askedAt;
        windows.push([askedAt, now]);
      }
      askedAt = 0;
    },
  });
  const seconds = (performance.now() - started) / 1000;
  const peakDuringScan = phasePeak ? highWaterMB() : null;
  const rssAfterScan = rssMB();
  const scanEnd = started + seconds * 1000;
  const forwardAfterAt = performance.now();
  const forwardAfter = await forwardPass();
  const forwardAfterEnd = performance.now();
  await settleGcEntries();
  const gcForward = gcBetween(forwardBeforeAt, forwardBeforeEnd) + gcBetween(forwardAfterAt, forwardAfterEnd);
  const gcScan = gcBetween(started, scanEnd);
  const gcInBookkeeping = windows.reduce((sum, [from, to]) => sum + gcBetween(from, to), 0);
  const forwardSeconds = (forwardBefore + forwardAfter) / 2;
  const bookkeepingSeconds = bookkeeping / 1000;
  Object.assign(result, {
    forwardSeconds: +forwardSeconds.toFixed(2),
    forwardPassesSeconds: [+forwardBefore.toFixed(2), +forwardAfter.toFixed(2)],
    forwardTokensPerSecond: Math.round(tokens / forwardSeconds),
    scanSeconds: +seconds.toFixed(2),
    scanTokensPerSecond: Math.round(tokens / seconds),
    overheadPercent: +((100 * (seconds - forwardSeconds)) / forwardSeconds).toFixed(1),
    bookkeepingSeconds: +bookkeepingSeconds.toFixed(2),
    bookkeepingMsPerExcerpt: +(bookkeeping / ids.length).toFixed(2),
    bookkeepingPercentOfForward: +((100 * bookkeepingSeconds) / forwardSeconds).toFixed(1),
    bookkeepingPercentOfRunForward: +((100 * bookkeepingSeconds) / (seconds - bookkeepingSeconds)).toFixed(1),
    // GC pauses per excerpt: in the model-only passes, in the whole scan, and inside the
    // bookkeeping's timed windows; then the timed bookkeeping without those pauses.
    gcMsPerExcerpt: {
      forwardOnly: +(gcForward / (2 * ids.length)).toFixed(2),
      scan: +(gcScan / ids.length).toFixed(2),
      insideBookkeeping: +(gcInBookkeeping / ids.length).toFixed(2),
    },
    bookkeepingWithoutGcMsPerExcerpt: +((bookkeeping - gcInBookkeeping) / ids.length).toFixed(2),
    bookkeepingWithoutGcPercentOfRunForward: +((100 * (bookkeeping - gcInBookkeeping)) / (seconds * 1000 - bookkeeping + gcInBookkeeping)).toFixed(1),
    rssBeforeScanMB: beforeScanMB,
    peakRssDuringScanMB: peakDuringScan,
    rssAfterScanMB: rssAfterScan,
  });
} else {
  // One layer's records (3,072 for GPT-2 small), as the CLI writes them, to time the record phases.
  const out = mkdtempSync(join(tmpdir(), 'neurolens-scan-bench-'));
  try {
    const { summary } = await runScanJob({
      excerpts,
      settings: { layers: [layers[0]], dMlp: capturer.dMlp, batchSize },
      source,
      adapters: { openSpill: () => new FileRowSpill(join(out, 'sample-rows')) },
      saveRecords: recordFileWriter(out),
    });
    const seconds = summary.seconds - summary.scanSeconds;
    Object.assign(result, {
      records: summary.records,
      excerptsRerun: summary.sampledExcerpts,
      recordSeconds: +seconds.toFixed(2),
      recordsPerSecond: Math.round(summary.records / seconds),
    });
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}
await capturer.dispose();
memory.stop();
gcObserver.disconnect();
// The whole process, model loading included (the high-water mark may have been reset for the scan).
result.peakRssMB = Math.max(memory.peakMB(), peakBeforeScanMB ?? 0);
process.stdout.write(`${JSON.stringify(result)}\n`);
