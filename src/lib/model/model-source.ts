/**
 * Where a model's files come from. A source only knows how to read files in the Hugging Face
 * hub layout (config.json, tokenizer.json, tokenizer_config.json, onnx/*.onnx); it never
 * interprets them.
 */
export type ProgressCallback = (p: { file: string; loaded: number; total: number | null }) => void;

export interface ReadOptions {
  onProgress?: ProgressCallback;
  /** Cancels a download; the read then rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface ModelSource {
  /** What to show users: a hub id, a path, "dropped files". */
  readonly label: string;
  /** The file's bytes, or undefined when the source has no such file. */
  read(path: string, options?: ReadOptions): Promise<Uint8Array | undefined>;
  /**
   * The file's size in bytes without reading it: undefined when the source has no such file, null
   * when it has one of unknown size. Lets a loader see which variants a model has, and how large
   * they are, before downloading one.
   */
  size(path: string, signal?: AbortSignal): Promise<number | null | undefined>;
}

/** No model at that place: an unknown hub id, a missing folder. */
export class ModelNotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelNotFoundError';
  }
}

/**
 * A source whose file list is known (a folder's manifest, the hub's tree listing): sizes come from
 * the list and absent files are not asked for, so choosing a variant costs no request and a
 * browser logs no 404s.
 */
export function withListing(source: ModelSource, listing: ReadonlyMap<string, number>): ModelSource {
  return {
    label: source.label,
    read: async (path, options) => (listing.has(path) ? source.read(path, options) : undefined),
    size: async (path) => listing.get(path),
  };
}

/**
 * The manifest the project's model generator writes in each bundled model folder; its `files`
 * maps each file's path to its size. Folders without one still load (files are then probed).
 * Not a dot-file: some static hosts (and GitHub's Pages artifact upload) leave those out.
 */
export const MODEL_MANIFEST_FILE = 'neurolens-model.json';

/** The `files` of a model folder's manifest, if it has a valid one. */
export async function readManifestListing(source: ModelSource, signal?: AbortSignal): Promise<Map<string, number> | undefined> {
  const manifest = (await readJson(source, MODEL_MANIFEST_FILE, signal).catch(() => undefined)) as { files?: Record<string, unknown> } | undefined;
  const files = manifest?.files;
  if (!files || typeof files !== 'object') return undefined;
  const entries = Object.entries(files).filter((e): e is [string, number] => typeof e[1] === 'number');
  return new Map([[MODEL_MANIFEST_FILE, 0], ...entries]);
}

/** Reads a JSON file from a source, with errors that name the file. */
export async function readJson(source: ModelSource, path: string, signal?: AbortSignal): Promise<unknown | undefined> {
  const bytes = await source.read(path, { signal });
  if (!bytes) return undefined;
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new ModelNotFoundError(`${source.label}: ${path} is not valid JSON (${(err as Error).message})`);
  }
}

/** The size a response announces, or null. */
export function contentLength(response: Response): number | null {
  const header = response.headers.get('content-length');
  return header !== null && /^\d+$/.test(header) ? Number(header) : null;
}

/**
 * Reads a fetch Response body into `out` from `offset` (or into a new array), with progress reports
 * counted from `reportedFrom` bytes already done. Returns the bytes read.
 */
export async function readResponseWithProgress(
  response: Response,
  file: string,
  options: { onProgress?: ProgressCallback; reportedFrom?: number; total?: number | null } = {},
): Promise<Uint8Array> {
  const { onProgress, reportedFrom = 0 } = options;
  const total = options.total !== undefined ? options.total : contentLength(response);
  if (!response.body || !onProgress) return new Uint8Array(await response.arrayBuffer());
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  onProgress({ file, loaded: reportedFrom, total });
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.byteLength;
    onProgress({ file, loaded: reportedFrom + loaded, total });
  }
  const out = new Uint8Array(loaded);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}
