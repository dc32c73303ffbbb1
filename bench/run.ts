/**
 * `npm run bench`: prints one JSON object with Neurolens's speed and memory numbers.
 * Each measurement runs in its own process so that peak memory is attributable.
 */
import { execFileSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const tsx = join(root, 'node_modules/.bin/tsx');
// `--quick`: smaller workloads (a short scan instead of a 100k-token one); other arguments pick sections.
const quick = process.argv.includes('--quick');
const only = process.argv.slice(2).filter((a) => a !== '--quick');
const wanted = (name: string) => only.length === 0 || only.includes(name);

function runJson(script: string, args: string[]): unknown {
  const out = execFileSync(tsx, [join(root, script), ...args], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 });
  const line = out.trim().split('\n').pop()!;
  return JSON.parse(line);
}

// The GPT-2-small-shaped model (12 × 768, random weights: the same compute as GPT-2 small).
execFileSync(tsx, [join(root, 'scripts/gen-models.ts'), '--bench'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
const smallDir = join(root, '.cache/models/gpt2-small-random');

const report: Record<string, unknown> = {
  machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGB: Math.round(totalmem() / 2 ** 30), node: process.version },
  model: 'gpt2-small-random (12 layers, d_model 768, d_mlp 3072: 36,864 neurons; 64-token excerpts)',
};
if (wanted('app-load')) {
  // The production app in headless Chromium: first visit, repeat visit, offline (toy model).
  report.appLoad = [runJson('bench/app-load-bench.ts', [quick ? '1' : '3']), runJson('bench/app-load-bench.ts', [quick ? '1' : '3', '--pages-host'])];
}
if (wanted('variant-fidelity')) {
  // How far the fp16 and int8 exports' activations are from fp32 (the model picker's fidelity figures).
  report.variantFidelity = runJson('bench/variant-fidelity-bench.ts', [smallDir, String(quick ? 8 : 32)]);
}
if (wanted('capture')) {
  report.capture = [runJson('bench/capture-bench.ts', [smallDir, 'wasm', '2']), runJson('bench/capture-bench.ts', [smallDir, 'node'])];
}
/** The speed figures of one scan-bench scan run. */
function scanSpeed(scan: Record<string, number>) {
  return {
    tokensPerSecond: scan.scanTokensPerSecond,
    forwardOnlyTokensPerSecond: scan.forwardTokensPerSecond,
    // endToEnd: the scan against the mean of model-only passes before and after it; bookkeepingTimed:
    // the timed bookkeeping against the model's time in the same run (see bench/scan-bench.ts).
    overheadPercent: { endToEnd: scan.overheadPercent, bookkeepingTimed: scan.bookkeepingPercentOfRunForward, target: 15 },
    bookkeepingMsPerExcerpt: scan.bookkeepingMsPerExcerpt,
  };
}

if (wanted('scan')) {
  // 1,563 excerpts × 64 tokens ≈ 100k tokens: the memory target is stated for that size.
  const excerpts = quick ? 250 : 1563;
  const scan = runJson('bench/scan-bench.ts', [smallDir, 'scan', String(excerpts)]) as Record<string, number>;
  const records = runJson('bench/scan-bench.ts', [smallDir, 'records', String(quick ? 100 : 200)]) as Record<string, number>;
  report.scan = {
    runtime: 'onnxruntime-node',
    neurons: scan.neurons,
    excerpts: scan.excerpts,
    tokens: scan.tokens,
    ...scanSpeed(scan),
    peakRssMB: { process: scan.peakRssMB, duringScan: scan.peakRssDuringScanMB, afterModelLoad: scan.rssAfterLoadMB, target: 1536 },
    records: { neurons: records.records, excerpts: records.excerpts, seconds: records.recordSeconds, perSecond: records.recordsPerSecond },
    details: { scan, records },
  };
}
// Only when asked for (`npm run bench -- browser-scan`): the app's scan in headless Chromium (WASM),
// 128 excerpts over all 36,864 neurons: the whole job (scan, sampled excerpts, records stored in
// IndexedDB) against the model alone on the same excerpts.
if (only.includes('browser-scan')) {
  report.browserScan = runJson('bench/browser-scan-bench.ts', [smallDir, String(quick ? 16 : 128)]);
}
if (wanted('store-size')) {
  // Bytes the IndexedDB store writes for a GPT-2-small scan of the default corpus (no model runs).
  report.storeSize = runJson('bench/store-size-bench.ts', quick ? ['--quick'] : []);
}
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
