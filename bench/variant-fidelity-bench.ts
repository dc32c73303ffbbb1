/**
 * How far each precision variant's MLP activations are from the exact (fp32) model's, on real text.
 * Usage: tsx bench/variant-fidelity-bench.ts <model-dir> [excerpts]
 * Runs every excerpt through every variant on onnxruntime-node and compares all neurons of all
 * layers token by token. Prints one JSON object on stdout.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildExcerpts, parseCorpusFile } from '../src/lib/activations/corpus.ts';
import { dirSource } from '../src/lib/model/dir-source.node.ts';
import { loadModel } from '../src/lib/model/load-model.ts';
import { MODEL_DTYPES, type ModelDtype } from '../src/lib/model/model-variants.ts';
import { loadNodeRuntime } from '../src/lib/model/ort-runtime.node.ts';
import { ActivationCapturer } from '../src/lib/model/capture.ts';

const [modelDir, excerptsArg] = process.argv.slice(2);
const count = Number(excerptsArg ?? 32);
const root = join(import.meta.dirname, '..');

async function activations(dtype: ModelDtype, excerpts: number[][]): Promise<Float32Array[]> {
  const model = await loadModel(await dirSource(modelDir), { dtype });
  if (model.dtype !== dtype) throw new Error(`${modelDir} has no ${dtype} variant`);
  const capturer = new ActivationCapturer(model, await loadNodeRuntime('node'));
  const out: Float32Array[] = [];
  for (const ids of excerpts) {
    const run = await capturer.runTokens([ids]);
    for (const layer of [...run.layers.keys()].sort((a, b) => a - b)) out.push(run.layers.get(layer)!.slice());
  }
  await capturer.dispose();
  return out;
}

const reference = await loadModel(await dirSource(modelDir));
const corpus = parseCorpusFile('default.jsonl', readFileSync(join(root, 'public/corpus/default.jsonl'), 'utf8'));
const excerpts = buildExcerpts(corpus, reference.tokenizer, { maxExcerpts: count }).map((e) => [...e.tokenIds]);
const exact = await activations('fp32', excerpts);

let sumSq = 0;
let n = 0;
for (const a of exact) for (const v of a) (sumSq += v * v), n++;
const report: Record<string, unknown> = { model: modelDir, excerpts: excerpts.length, values: n, exactRms: +Math.sqrt(sumSq / n).toPrecision(4) };
for (const dtype of MODEL_DTYPES.filter((d) => d !== 'fp32')) {
  const approx = await activations(dtype, excerpts);
  const diffs = new Float32Array(n);
  let k = 0;
  exact.forEach((a, i) => a.forEach((v, j) => (diffs[k++] = Math.abs(v - approx[i][j]))));
  diffs.sort();
  const q = (p: number) => +diffs[Math.min(n - 1, Math.floor(p * n))].toPrecision(3);
  report[dtype] = { median: q(0.5), p99: q(0.99), p999: q(0.999), max: +diffs[n - 1].toPrecision(3) };
}
process.stdout.write(`${JSON.stringify(report)}\n`);
