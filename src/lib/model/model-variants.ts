/**
 * The precision variants a GPT-2 export comes in, how to find each in a model's files, how
 * faithful each is to the exact model, and which one to load.
 */
import { ModelNotFoundError, type ModelSource } from './model-source.ts';

export type ModelDtype = 'fp32' | 'fp16' | 'quantized';
/** What a user or command asks for: one variant, or `auto` (the most exact one the model has). */
export type ModelDtypeChoice = ModelDtype | 'auto';

export const MODEL_DTYPES: readonly ModelDtype[] = ['fp32', 'fp16', 'quantized'];
export const MODEL_DTYPE_CHOICES: readonly ModelDtypeChoice[] = ['auto', ...MODEL_DTYPES];

export interface VariantDescription {
  /** Short name users know it by. */
  label: string;
  /** ONNX files to try, in the order exporters commonly name them. */
  candidates: string[];
  /**
   * How far an MLP activation may be from the exact (fp32) model's: 99.9% of them are within this.
   * Measured with `npm run bench variant-fidelity`: 75.5 million activations (32 excerpts of the
   * default corpus, all 36,864 neurons) of the GPT-2-small-shaped generated model, its fp16 and
   * int8 exports against fp32. 0 for the exact model itself.
   */
  typicalError: number;
  /** One line for users. */
  fidelity: string;
}

export const VARIANTS: Readonly<Record<ModelDtype, VariantDescription>> = {
  fp32: {
    label: 'fp32',
    candidates: ['onnx/model.onnx', 'onnx/decoder_model.onnx', 'model.onnx', 'decoder_model.onnx', 'onnx/decoder_model_merged.onnx'],
    typicalError: 0,
    fidelity: 'exact',
  },
  fp16: {
    label: 'fp16',
    candidates: ['onnx/model_fp16.onnx', 'onnx/decoder_model_fp16.onnx', 'model_fp16.onnx', 'onnx/decoder_model_merged_fp16.onnx'],
    typicalError: 0.003,
    fidelity: '99.9% of activations within 0.003 of exact (largest difference 0.007)',
  },
  quantized: {
    label: 'int8',
    candidates: ['onnx/model_quantized.onnx', 'onnx/decoder_model_quantized.onnx', 'model_quantized.onnx', 'onnx/decoder_model_merged_quantized.onnx'],
    typicalError: 0.13,
    fidelity: '99.9% of activations within 0.13 of exact (largest difference 0.26)',
  },
};

/** A variant a model actually has. */
export interface AvailableVariant {
  dtype: ModelDtype;
  /** The ONNX file. */
  path: string;
  /** Bytes to download: the file plus its external-data file where the exporter wrote one; null if unknown. */
  bytes: number | null;
}

/** The variant of one precision a source has (the first of its candidate files that exists), if any. */
export async function findVariant(source: ModelSource, dtype: ModelDtype, signal?: AbortSignal): Promise<AvailableVariant | undefined> {
  const sizes = await Promise.all(VARIANTS[dtype].candidates.map((path) => source.size(path, signal)));
  const index = sizes.findIndex((s) => s !== undefined);
  if (index < 0) return undefined;
  const path = VARIANTS[dtype].candidates[index];
  // Exporters write weights over 2 GB to an external-data file beside the graph: count it.
  const data = await source.size(`${path}_data`, signal);
  const size = sizes[index]!;
  return { dtype, path, bytes: size === null || data === null ? null : size + (data ?? 0) };
}

/** Every variant a source has, most exact first, found without downloading any graph. */
export async function listVariants(source: ModelSource, signal?: AbortSignal): Promise<AvailableVariant[]> {
  const found = await Promise.all(MODEL_DTYPES.map((dtype) => findVariant(source, dtype, signal)));
  return found.filter((v): v is AvailableVariant => v !== undefined);
}

export interface VariantChoice {
  variant: AvailableVariant;
  /** Set when the variant is not the one asked for: says which one is used and why. */
  notice?: string;
}

/**
 * Picks the variant to load, asking the source about as few files as it can. `auto` takes the most
 * exact one. A variant asked for by name that the model lacks is replaced only when the model has
 * a single variant (the usual state of a downloaded export); otherwise the choice is the user's,
 * so it is refused with the list of what there is.
 */
export async function chooseVariant(source: ModelSource, choice: ModelDtypeChoice, signal?: AbortSignal): Promise<VariantChoice> {
  for (const dtype of choice === 'auto' ? MODEL_DTYPES : [choice]) {
    const variant = await findVariant(source, dtype, signal);
    if (variant) return { variant };
  }
  const others = choice === 'auto' ? [] : await listVariants(source, signal);
  if (others.length === 0) {
    const tried = MODEL_DTYPES.flatMap((d) => VARIANTS[d].candidates);
    throw new ModelNotFoundError(`${source.label}: no ONNX graph found (tried ${tried.join(', ')})`);
  }
  const wanted = VARIANTS[choice as ModelDtype].label;
  const names = others.map((v) => `${VARIANTS[v.dtype].label} (${v.path})`);
  if (others.length > 1) throw new ModelNotFoundError(`${source.label} has no ${wanted} variant; it has ${names.join(' and ')}`);
  const only = others[0];
  return { variant: only, notice: `${source.label} has no ${wanted} variant, only ${names[0]}: using it (${VARIANTS[only.dtype].fidelity})` };
}

/** "fp16" → 'fp16', "int8" → 'quantized', …; undefined for anything else. */
export function parseDtypeChoice(value: string): ModelDtypeChoice | undefined {
  if (value === 'int8' || value === 'q8') return 'quantized';
  return (MODEL_DTYPE_CHOICES as readonly string[]).includes(value) ? (value as ModelDtypeChoice) : undefined;
}
