/**
 * One runtime's capture benchmark, run in its own process so peak memory is its own.
 * Usage: tsx bench/capture-bench.ts <model-dir> <node|wasm> [wasmThreads]
 * Prints one JSON object on stdout.
 */
import { performance } from 'node:perf_hooks';
import { dirSource } from '../src/lib/model/dir-source.node.ts';
import { loadModel } from '../src/lib/model/load-model.ts';
import { loadNodeRuntime } from '../src/lib/model/ort-runtime.node.ts';
import { ActivationCapturer } from '../src/lib/model/capture.ts';
import { MemorySampler } from './memory-sampler.ts';

const [modelDir, runtimeName, threadsArg] = process.argv.slice(2);
const threads = Number(threadsArg ?? 2);
const EXCERPT = 64;

async function loadOnce() {
  const t0 = performance.now();
  const model = await loadModel(await dirSource(modelDir));
  const runtime = await loadNodeRuntime(runtimeName === 'node' ? 'node' : 'wasm', threads);
  const capturer = new ActivationCapturer(model, runtime);
  const backend = await capturer.warmUp();
  return { capturer, backend, ms: performance.now() - t0 };
}

function excerpts(count: number, vocab: number, seed: number): number[][] {
  let s = seed >>> 0;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  return Array.from({ length: count }, () => Array.from({ length: EXCERPT }, () => Math.floor(next() * vocab)));
}

async function throughput(capturer: ActivationCapturer, batch: number, batches: number) {
  const vocab = capturer.model.config.vocabSize;
  await capturer.runTokens(excerpts(batch, vocab, 99)); // warm-up: first run allocates and plans
  const inputs = Array.from({ length: batches }, (_, i) => excerpts(batch, vocab, i + 1));
  let neurons = 0;
  const t0 = performance.now();
  for (const b of inputs) {
    const out = await capturer.runTokens(b);
    neurons = [...out.layers.values()].reduce((n, a) => n + a.length / (batch * EXCERPT), 0);
  }
  const seconds = (performance.now() - t0) / 1000;
  return { batch, excerpts: batch * batches, tokens: batch * batches * EXCERPT, seconds: +seconds.toFixed(3), tokensPerSecond: +((batch * batches * EXCERPT) / seconds).toFixed(1), neuronsPerToken: neurons };
}

const memory = new MemorySampler();
const first = await loadOnce();
await first.capturer.dispose();
// Second load: files in the OS cache and the runtime initialised, as on a repeat visit.
const warm = await loadOnce();
const heavy = runtimeName === 'node';
const results = [await throughput(warm.capturer, 1, heavy ? 24 : 8), await throughput(warm.capturer, 8, heavy ? 4 : 2)];
await warm.capturer.dispose();
memory.stop();
process.stdout.write(
  `${JSON.stringify({
    runtime: runtimeName === 'node' ? 'onnxruntime-node' : 'onnxruntime-web',
    backend: warm.backend,
    wasmThreads: runtimeName === 'node' ? undefined : threads,
    loadMs: { first: Math.round(first.ms), warm: Math.round(warm.ms) },
    capture: results,
    peakRssMB: memory.peakMB(),
  })}\n`,
);
