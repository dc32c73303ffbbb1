/**
 * The GPT-2 family on the Hugging Face hub, as the model picker offers it. Download sizes are
 * those of the hub's listings where known, otherwise estimated from the parameter count (marked
 * `estimated`); the picker asks the hub for the exact sizes before it downloads anything.
 */
import type { ModelDtype } from './model-variants.ts';

export interface CatalogVariant {
  /** Bytes to download (graph and external data). */
  bytes: number;
  /** True when `bytes` is worked out from the parameter count rather than read off the hub. */
  estimated?: boolean;
}

export interface CatalogModel {
  repoId: string;
  name: string;
  parameters: string;
  nLayer: number;
  dMlp: number;
  variants: Partial<Record<ModelDtype, CatalogVariant>>;
}

const MB = 1e6;
const GB = 1e9;

/** Sizes from parameter counts: 4 bytes per weight in fp32, 2 in fp16, about 1 in int8. */
function estimated(parameters: number): Partial<Record<ModelDtype, CatalogVariant>> {
  return {
    fp32: { bytes: 4 * parameters, estimated: true },
    fp16: { bytes: 2 * parameters, estimated: true },
    quantized: { bytes: 1.05 * parameters, estimated: true },
  };
}

export const GPT2_CATALOG: readonly CatalogModel[] = [
  {
    repoId: 'Xenova/distilgpt2',
    name: 'DistilGPT-2',
    parameters: '82 M',
    nLayer: 6,
    dMlp: 3072,
    variants: { ...estimated(82e6), fp32: { bytes: 328 * MB } },
  },
  {
    repoId: 'Xenova/gpt2',
    name: 'GPT-2 small',
    parameters: '124 M',
    nLayer: 12,
    dMlp: 3072,
    variants: { fp32: { bytes: 501 * MB }, fp16: { bytes: 251 * MB }, quantized: { bytes: 127 * MB } },
  },
  {
    repoId: 'Xenova/gpt2-medium',
    name: 'GPT-2 medium',
    parameters: '355 M',
    nLayer: 24,
    dMlp: 4096,
    variants: { ...estimated(355e6), fp32: { bytes: 1.63 * GB } },
  },
  {
    repoId: 'Xenova/gpt2-large',
    name: 'GPT-2 large',
    parameters: '774 M',
    nLayer: 36,
    dMlp: 5120,
    variants: { fp32: { bytes: 3.1 * GB }, fp16: { bytes: 1.55 * GB }, quantized: { bytes: 1.03 * GB } },
  },
  {
    repoId: 'Xenova/gpt2-xl',
    name: 'GPT-2 XL',
    parameters: '1.5 B',
    nLayer: 48,
    dMlp: 6400,
    variants: { fp32: { bytes: 6.23 * GB }, fp16: { bytes: 3.12 * GB }, quantized: { bytes: 1.88 * GB } },
  },
];

/** Downloads above this size are confirmed first. */
export const LARGE_DOWNLOAD_BYTES = 1 * GB;

/** "501 MB", "3.1 GB". */
export function formatBytes(bytes: number): string {
  if (bytes >= GB) return `${trimZeros((bytes / GB).toFixed(bytes >= 10 * GB ? 0 : 2))} GB`;
  if (bytes >= MB) return `${Math.round(bytes / MB)} MB`;
  return `${Math.max(1, Math.round(bytes / 1e3))} kB`;
}

/** "1.50" → "1.5", "2.00" → "2", "10" → "10". */
function trimZeros(fixed: string): string {
  return fixed.includes('.') ? fixed.replace(/0+$/, '').replace(/\.$/, '') : fixed;
}
