/**
 * Writes a model directory laid out like a Hugging Face hub repository of a GPT-2 ONNX export:
 * config.json, tokenizer.json, tokenizer_config.json, onnx/*.onnx and (for planted models)
 * planted.json. Node-only.
 */
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Gpt2Config } from '../../src/lib/model/gpt2-types.ts';
import { GPT2_EOS_TOKEN, loadGpt2Encoder, loadGpt2Merges } from './gpt2-vocab.ts';
import type { PlantedNeuronInfo } from './planted-model.ts';

export const GPT2_EOS_TOKEN_ID = 50256;

/** GPT-2 style config.json (the keys transformers' GPT2Config writes that loaders look at). */
export function gpt2ConfigJson(config: Gpt2Config): Record<string, unknown> {
  return {
    model_type: 'gpt2',
    architectures: ['GPT2LMHeadModel'],
    n_layer: config.nLayer,
    n_head: config.nHead,
    n_embd: config.dModel,
    n_inner: config.dMlp === 4 * config.dModel ? null : config.dMlp,
    n_positions: config.nCtx,
    n_ctx: config.nCtx,
    vocab_size: config.vocabSize,
    layer_norm_epsilon: config.layerNormEps,
    activation_function: 'gelu_new',
    bos_token_id: GPT2_EOS_TOKEN_ID,
    eos_token_id: GPT2_EOS_TOKEN_ID,
    tie_word_embeddings: true,
  };
}

/** tokenizer.json in the Hugging Face tokenizers format for GPT-2's byte-level BPE. */
export function gpt2TokenizerJson(): Record<string, unknown> {
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      {
        id: GPT2_EOS_TOKEN_ID,
        content: GPT2_EOS_TOKEN,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: true,
        special: true,
      },
    ],
    normalizer: null,
    pre_tokenizer: byteLevel,
    // As in Hugging Face's own gpt2 tokenizer.json (the post-processor and decoder ignore the prefix flag).
    post_processor: { ...byteLevel, add_prefix_space: true, trim_offsets: false },
    decoder: { ...byteLevel, add_prefix_space: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab: loadGpt2Encoder(),
      merges: loadGpt2Merges(),
    },
  };
}

export function gpt2TokenizerConfigJson(config: Gpt2Config): Record<string, unknown> {
  return {
    model_max_length: config.nCtx,
    bos_token: GPT2_EOS_TOKEN,
    eos_token: GPT2_EOS_TOKEN,
    unk_token: GPT2_EOS_TOKEN,
    clean_up_tokenization_spaces: false,
    tokenizer_class: 'GPT2Tokenizer',
  };
}

/** Streams serialised chunks to a file; returns the number of bytes written. */
export function writeChunks(path: string, chunks: Uint8Array[]): number {
  mkdirSync(dirname(path), { recursive: true });
  const fd = openSync(path, 'w');
  let total = 0;
  try {
    for (const c of chunks) {
      let at = 0;
      while (at < c.byteLength) at += writeSync(fd, c, at, c.byteLength - at);
      total += c.byteLength;
    }
  } finally {
    closeSync(fd);
  }
  return total;
}

export interface HubModelContents {
  config: Gpt2Config;
  /** Relative path (e.g. "onnx/model.onnx") → a function producing that file's chunks. */
  onnx: Record<string, () => Uint8Array[]>;
  planted?: PlantedNeuronInfo[];
  /** Extra JSON files to write (relative path → value). */
  extraJson?: Record<string, unknown>;
}

/** Writes every file of a hub-layout model directory into `dir`; returns each file's size. */
export function writeHubModelDir(dir: string, contents: HubModelContents): Record<string, number> {
  const sizes: Record<string, number> = {};
  const json = (rel: string, value: unknown): void => {
    const text = JSON.stringify(value, null, rel === 'tokenizer.json' ? undefined : 2) + '\n';
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), text);
    sizes[rel] = Buffer.byteLength(text);
  };
  json('config.json', gpt2ConfigJson(contents.config));
  json('tokenizer.json', gpt2TokenizerJson());
  json('tokenizer_config.json', gpt2TokenizerConfigJson(contents.config));
  if (contents.planted) json('planted.json', { neurons: contents.planted });
  for (const [rel, value] of Object.entries(contents.extraJson ?? {})) json(rel, value);
  for (const [rel, chunks] of Object.entries(contents.onnx)) sizes[rel] = writeChunks(join(dir, rel), chunks());
  return sizes;
}
