/**
 * Loads a GPT-2-family model from any ModelSource: config, tokenizer and ONNX graph, checked
 * against each other so a wrong or mismatched file is refused with a clear message.
 */
import type { Gpt2Config } from './gpt2-types.ts';
import { parseModelConfig } from './model-config.ts';
import { ModelNotFoundError, ONNX_CANDIDATES, readJson, type ModelDtype, type ModelSource, type ProgressCallback } from './model-source.ts';
import { Gpt2Tokenizer } from './tokenizer.ts';
import { inspectModel, type ModelInfo } from './instrument.ts';

export interface LoadedModel {
  label: string;
  config: Gpt2Config;
  tokenizer: Gpt2Tokenizer;
  /** Which ONNX file of the source was used. */
  onnxPath: string;
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
  dtype?: ModelDtype;
  /** Load this ONNX file instead of choosing by dtype. */
  onnxPath?: string;
  onProgress?: ProgressCallback;
}

export async function loadModel(source: ModelSource, options: LoadModelOptions = {}): Promise<LoadedModel> {
  const configJson = await readJson(source, 'config.json');
  if (configJson === undefined) {
    throw new ModelNotFoundError(`no model at ${source.label}: config.json not found (expected the Hugging Face layout: config.json, tokenizer.json, onnx/model.onnx)`);
  }
  const config = parseModelConfig(configJson, `${source.label}/config.json`);
  const tokenizerJson = await readJson(source, 'tokenizer.json');
  if (tokenizerJson === undefined) throw new ModelNotFoundError(`${source.label}: tokenizer.json not found`);
  const tokenizerConfig = await readJson(source, 'tokenizer_config.json');
  const tokenizer = new Gpt2Tokenizer(tokenizerJson, tokenizerConfig);

  const candidates = options.onnxPath ? [options.onnxPath] : ONNX_CANDIDATES[options.dtype ?? 'fp32'];
  let onnxPath: string | undefined;
  let onnxBytes: Uint8Array | undefined;
  for (const path of candidates) {
    onnxBytes = await source.read(path, options.onProgress);
    if (onnxBytes) {
      onnxPath = path;
      break;
    }
  }
  if (!onnxBytes || !onnxPath) {
    throw new ModelNotFoundError(`${source.label}: no ONNX graph found (tried ${candidates.join(', ')})`);
  }
  const info = inspectModel(onnxBytes, { dModel: config.dModel, sourceName: `${source.label}/${onnxPath}` });
  if (info.nLayer !== config.nLayer || info.dMlp !== config.dMlp) {
    throw new ModelNotFoundError(
      `${source.label}: ${onnxPath} has ${info.nLayer} MLP layers of width ${info.dMlp}, but config.json says ${config.nLayer} of width ${config.dMlp}: the files do not belong together`,
    );
  }
  const dir = onnxPath.includes('/') ? onnxPath.slice(0, onnxPath.lastIndexOf('/') + 1) : '';
  const readExternalData = async () => {
    const files: { path: string; data: Uint8Array }[] = [];
    for (const location of info.externalDataFiles) {
      const data = await source.read(dir + location, options.onProgress);
      if (!data) throw new ModelNotFoundError(`${source.label}: ${onnxPath} stores its weights in ${location}, which is missing`);
      files.push({ path: location, data });
    }
    return files;
  };
  const externalData = await readExternalData();
  const path = onnxPath;
  const size = onnxBytes.byteLength;
  const reload = async () => {
    const bytes = await source.read(path, options.onProgress);
    if (!bytes || bytes.byteLength !== size) throw new ModelNotFoundError(`${source.label}: ${path} is gone or changed since the model was loaded`);
    return { onnxBytes: bytes, externalData: await readExternalData() };
  };
  return { label: source.label, config, tokenizer, onnxPath, onnxBytes, onnxSize: size, externalData, info, reload };
}

/** The model's graph and external data, read again from its source if they were let go of (see `onnxBytes`). */
export async function modelGraph(model: LoadedModel): Promise<{ onnxBytes: Uint8Array; externalData: { path: string; data: Uint8Array }[] }> {
  if (model.onnxBytes.byteLength > 0 || model.onnxSize === 0) return { onnxBytes: model.onnxBytes, externalData: model.externalData };
  return model.reload();
}
