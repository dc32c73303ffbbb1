/**
 * Loads a GPT-2-family model from any ModelSource: config, tokenizer and ONNX graph, checked
 * against each other so a wrong or mismatched file is refused with a clear message.
 */
import type { Gpt2Config } from './gpt2-types.ts';
import { parseModelConfig } from './model-config.ts';
import { ModelNotFoundError, readJson, type ModelSource, type ProgressCallback } from './model-source.ts';
import { chooseVariant, VARIANTS, type ModelDtype, type ModelDtypeChoice } from './model-variants.ts';
import { Gpt2Tokenizer } from './tokenizer.ts';
import { inspectModel, type ModelInfo } from './instrument.ts';

export interface LoadedModel {
  label: string;
  config: Gpt2Config;
  tokenizer: Gpt2Tokenizer;
  /** Which ONNX file of the source was used. */
  onnxPath: string;
  /** Its precision, as read from the graph. */
  dtype: ModelDtype;
  /** Set when the variant loaded is not the one asked for (see chooseVariant). */
  notice?: string;
  /**
   * The graph's bytes. May be emptied (with `externalData`) to save memory once sessions exist;
   * `reload` then reads them again from the source.
   */
  onnxBytes: Uint8Array;
  /** Size of the ONNX file in bytes (stays when onnxBytes is emptied). */
  onnxSize: number;
  externalData: { path: string; data: Uint8Array }[];
  info: ModelInfo;
  /** Reads the ONNX file and its external data again, checked to be the same size as before. */
  reload: () => Promise<{ onnxBytes: Uint8Array; externalData: { path: string; data: Uint8Array }[] }>;
}

export interface LoadModelOptions {
  /** Which precision to load (default `auto`: the most exact the source has; see chooseVariant). */
  dtype?: ModelDtypeChoice;
  /** Load this ONNX file instead of choosing by dtype. */
  onnxPath?: string;
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
}

export async function loadModel(source: ModelSource, options: LoadModelOptions = {}): Promise<LoadedModel> {
  const { onProgress, signal } = options;
  const configJson = await readJson(source, 'config.json', signal);
  if (configJson === undefined) {
    throw new ModelNotFoundError(`no model at ${source.label}: config.json not found (expected the Hugging Face layout: config.json, tokenizer.json, onnx/model.onnx)`);
  }
  const config = parseModelConfig(configJson, `${source.label}/config.json`);
  const tokenizerJson = await readJson(source, 'tokenizer.json', signal);
  if (tokenizerJson === undefined) throw new ModelNotFoundError(`${source.label}: tokenizer.json not found`);
  const tokenizerConfig = await readJson(source, 'tokenizer_config.json', signal);
  const tokenizer = new Gpt2Tokenizer(tokenizerJson, tokenizerConfig);

  let onnxPath = options.onnxPath;
  let notice: string | undefined;
  if (!onnxPath) {
    const choice = await chooseVariant(source, options.dtype ?? 'auto', signal);
    onnxPath = choice.variant.path;
    notice = choice.notice;
  }
  const onnxBytes = await source.read(onnxPath, { onProgress, signal });
  if (!onnxBytes) throw new ModelNotFoundError(`${source.label}: ${onnxPath} not found`);
  const info = inspectModel(onnxBytes, { dModel: config.dModel, sourceName: `${source.label}/${onnxPath}` });
  if (info.nLayer !== config.nLayer || info.dMlp !== config.dMlp) {
    throw new ModelNotFoundError(
      `${source.label}: ${onnxPath} has ${info.nLayer} MLP layers of width ${info.dMlp}, but config.json says ${config.nLayer} of width ${config.dMlp}: the files do not belong together`,
    );
  }
  const dtype: ModelDtype = info.variant.quantized ? 'quantized' : info.variant.float16 ? 'fp16' : 'fp32';
  const path = onnxPath;
  const dir = path.includes('/') ? path.slice(0, path.lastIndexOf('/') + 1) : '';
  const readExternalData = async () => {
    const files: { path: string; data: Uint8Array }[] = [];
    for (const location of info.externalDataFiles) {
      const data = await source.read(dir + location, { onProgress, signal });
      if (!data) throw new ModelNotFoundError(`${source.label}: ${path} stores its weights in ${location}, which is missing`);
      files.push({ path: location, data });
    }
    return files;
  };
  const externalData = await readExternalData();
  const size = onnxBytes.byteLength;
  const reload = async () => {
    const bytes = await source.read(path, { onProgress });
    if (!bytes || bytes.byteLength !== size) throw new ModelNotFoundError(`${source.label}: ${path} is gone or changed since the model was loaded`);
    return { onnxBytes: bytes, externalData: await readExternalData() };
  };
  return { label: source.label, config, tokenizer, onnxPath: path, dtype, notice, onnxBytes, onnxSize: size, externalData, info, reload };
}

/** "int8 · activations within about 0.15 of exact", for a loaded model. */
export function describeVariant(dtype: ModelDtype): string {
  return `${VARIANTS[dtype].label} · ${VARIANTS[dtype].fidelity}`;
}

/** The model's graph and external data, read again from its source if they were let go of (see `onnxBytes`). */
export async function modelGraph(model: LoadedModel): Promise<{ onnxBytes: Uint8Array; externalData: { path: string; data: Uint8Array }[] }> {
  if (model.onnxBytes.byteLength > 0 || model.onnxSize === 0) return { onnxBytes: model.onnxBytes, externalData: model.externalData };
  return model.reload();
}
