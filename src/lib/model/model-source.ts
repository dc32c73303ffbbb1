/**
 * Where a model's files come from. A source only knows how to read files in the Hugging Face
 * hub layout (config.json, tokenizer.json, tokenizer_config.json, onnx/*.onnx); it never
 * interprets them.
 */
export type ProgressCallback = (p: { file: string; loaded: number; total: number | null }) => void;

export interface ModelSource {
  /** What to show users: a hub id, a path, "dropped files". */
  readonly label: string;
  /** The file's bytes, or undefined when the source has no such file. */
  read(path: string, onProgress?: ProgressCallback): Promise<Uint8Array | undefined>;
}

/** No model at that place: an unknown hub id, a missing folder. */
export class ModelNotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelNotFoundError';
  }
}

export type ModelDtype = 'fp32' | 'fp16' | 'quantized';

/** ONNX files to try for each precision, in the order exporters commonly name them. */
export const ONNX_CANDIDATES: Record<ModelDtype, string[]> = {
  fp32: ['onnx/model.onnx', 'onnx/decoder_model.onnx', 'model.onnx', 'decoder_model.onnx', 'onnx/decoder_model_merged.onnx'],
  fp16: ['onnx/model_fp16.onnx', 'onnx/decoder_model_fp16.onnx', 'model_fp16.onnx', 'onnx/decoder_model_merged_fp16.onnx'],
  quantized: [
    'onnx/model_quantized.onnx',
    'onnx/decoder_model_quantized.onnx',
    'model_quantized.onnx',
    'onnx/decoder_model_merged_quantized.onnx',
  ],
};

/** Reads a JSON file from a source, with errors that name the file. */
export async function readJson(source: ModelSource, path: string): Promise<unknown | undefined> {
  const bytes = await source.read(path);
  if (!bytes) return undefined;
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new ModelNotFoundError(`${source.label}: ${path} is not valid JSON (${(err as Error).message})`);
  }
}

/** Reads a fetch Response body with progress reports. */
export async function readResponseWithProgress(
  response: Response,
  file: string,
  onProgress?: ProgressCallback,
): Promise<Uint8Array> {
  const header = response.headers.get('content-length');
  const total = header ? Number(header) : null;
  if (!response.body || !onProgress) return new Uint8Array(await response.arrayBuffer());
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  onProgress({ file, loaded, total });
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.byteLength;
    onProgress({ file, loaded, total });
  }
  const out = new Uint8Array(loaded);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}
