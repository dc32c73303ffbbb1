import type { ModelSource } from './model-source.ts';

/**
 * Files the user dropped or picked. Paths are matched on their tail, so dropping the model's
 * folder, its `onnx/` subfolder or loose files all work ("onnx/model.onnx" matches a dropped
 * "gpt2/onnx/model.onnx" and, failing that, any file named "model.onnx").
 */
export function fileListSource(files: { name: string; path?: string; bytes(): Promise<Uint8Array> }[], label = 'dropped files'): ModelSource {
  const normalised = files.map((f) => ({ file: f, path: (f.path ?? f.name).replace(/\\/g, '/').replace(/^\/+/, '') }));
  return {
    label,
    async read(path: string) {
      const exact = normalised.find((f) => f.path === path || f.path.endsWith(`/${path}`));
      const base = path.split('/').pop()!;
      const loose = exact ?? normalised.find((f) => f.path.split('/').pop() === base);
      return loose ? loose.file.bytes() : undefined;
    },
  };
}
