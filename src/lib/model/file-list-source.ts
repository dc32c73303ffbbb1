import type { ModelSource } from './model-source.ts';

export interface ListedFile {
  name: string;
  path?: string;
  size: number;
  bytes(): Promise<Uint8Array>;
}

/**
 * Files the user dropped or picked. Paths are matched on their tail, so dropping the model's
 * folder, its `onnx/` subfolder or loose files all work ("onnx/model.onnx" matches a dropped
 * "gpt2/onnx/model.onnx" and, failing that, any file named "model.onnx").
 */
export function fileListSource(files: ListedFile[], label = 'dropped files'): ModelSource {
  const normalised = files.map((f) => ({ file: f, path: (f.path ?? f.name).replace(/\\/g, '/').replace(/^\/+/, '') }));
  const find = (path: string) => {
    const exact = normalised.find((f) => f.path === path || f.path.endsWith(`/${path}`));
    const base = path.split('/').pop()!;
    return (exact ?? normalised.find((f) => f.path.split('/').pop() === base))?.file;
  };
  return {
    label,
    async read(path: string) {
      return find(path)?.bytes();
    },
    async size(path: string) {
      return find(path)?.size;
    },
  };
}
