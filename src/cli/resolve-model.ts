/** Turns a `--model` argument into a model source: a folder, a bundled model name, or a hub id. */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dirSource } from '../lib/model/dir-source.node.ts';
import { hubSource, isHubRepoId } from '../lib/model/hub-source.ts';
import { ModelNotFoundError, type ModelSource } from '../lib/model/model-source.ts';
import { loadModel, type LoadedModel } from '../lib/model/load-model.ts';
import { loadNodeRuntime, type NodeRuntimeChoice } from '../lib/model/ort-runtime.node.ts';
import { ActivationCapturer, type NeuronRef } from '../lib/model/capture.ts';
import { describeVariant } from '../lib/model/load-model.ts';
import { MODEL_DTYPE_CHOICES, parseDtypeChoice } from '../lib/model/model-variants.ts';
import { CliError } from './cli-error.ts';

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const BUNDLED_MODELS_DIR = join(PROJECT_ROOT, 'public/models');
export const DEFAULT_MODEL = 'toy-planted';

export async function resolveModelSource(spec: string): Promise<ModelSource> {
  if (existsSync(spec)) return dirSource(spec);
  const bundled = join(BUNDLED_MODELS_DIR, spec);
  if (/^[\w.-]+$/.test(spec) && existsSync(bundled)) return dirSource(bundled);
  // HF_ENDPOINT is the Hugging Face tools' own variable for a mirror of the hub.
  if (isHubRepoId(spec)) return hubSource(spec, { endpoint: process.env.HF_ENDPOINT });
  throw new ModelNotFoundError(
    `unknown model "${spec}": not a folder, not a bundled model (${BUNDLED_MODELS_DIR}), and not a hub id like Xenova/gpt2`,
  );
}

export interface OpenModelOptions {
  model?: string;
  dtype?: string;
  backend?: string;
  onnx?: string;
}

/** Loads a model and its capturer for a CLI command, with progress on stderr for downloads. */
export async function openCapturer(options: OpenModelOptions): Promise<{ model: LoadedModel; capturer: ActivationCapturer }> {
  const backend = (options.backend ?? 'auto') as NodeRuntimeChoice;
  if (!['auto', 'node', 'wasm'].includes(backend)) throw new CliError(`--backend must be auto, node or wasm, not "${backend}"`, 2);
  const model = await openModel(options);
  const runtime = await loadNodeRuntime(backend);
  return { model, capturer: new ActivationCapturer(model, runtime) };
}

/** Loads a model (config, tokenizer, graph) for a CLI command, with progress on stderr for downloads. */
export async function openModel(options: Omit<OpenModelOptions, 'backend'>): Promise<LoadedModel> {
  const dtype = parseDtypeChoice(options.dtype ?? 'auto');
  if (!dtype) throw new CliError(`--dtype must be ${MODEL_DTYPE_CHOICES.join(', ')} (or int8), not "${options.dtype}"`, 2);
  const source = await resolveModelSource(options.model ?? DEFAULT_MODEL);
  let lastReport = 0;
  const model = await loadModel(source, {
    dtype,
    onnxPath: options.onnx,
    onProgress: ({ file, loaded, total }) => {
      const now = Date.now();
      if (!process.stderr.isTTY || now - lastReport < 200) return;
      lastReport = now;
      const pct = total ? ` ${((100 * loaded) / total).toFixed(0)}%` : '';
      process.stderr.write(`\rdownloading ${file}: ${(loaded / 1e6).toFixed(1)} MB${pct}   `);
    },
  });
  // Say which variant runs whenever it is not the one asked for (a folder with a single variant).
  if (model.notice) process.stderr.write(`${model.notice}\n`);
  else if (dtype === 'auto' && model.dtype !== 'fp32') process.stderr.write(`${model.label}: using ${model.onnxPath} (${describeVariant(model.dtype)})\n`);
  return model;
}

/** Parses "0,5,7" into layer numbers. */
export function parseLayerList(value: string | undefined): number[] | undefined {
  if (value === undefined) return undefined;
  const parts = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (parts.length === 0) throw new CliError('--layers needs a comma-separated list such as 0,5', 2);
  return parts.map((p) => {
    if (!/^\d+$/.test(p)) throw new CliError(`--layers: "${p}" is not a layer number`, 2);
    return Number(p);
  });
}

/** Parses "5:131,7:2" into neurons (syntax only; the model checks the ranges). */
export function parseNeuronList(value: string | undefined, option = '--neurons'): NeuronRef[] | undefined {
  if (value === undefined) return undefined;
  const parts = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (parts.length === 0) throw new CliError(`${option} needs pairs such as 5:131,7:2`, 2);
  return parts.map((p) => {
    const m = /^(\d+):(\d+)$/.exec(p);
    if (!m) throw new CliError(`${option}: "${p}" is not layer:neuron (e.g. 5:131)`, 2);
    return { layer: Number(m[1]), neuron: Number(m[2]) };
  });
}
