/** Node-only: a model folder on disk in the hub layout. */
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ModelNotFoundError, type ModelSource } from './model-source.ts';

export async function dirSource(dir: string): Promise<ModelSource> {
  const root = resolve(dir);
  const info = await stat(root).catch(() => undefined);
  if (!info) throw new ModelNotFoundError(`no model at ${dir}: no such file or directory`);
  if (!info.isDirectory()) throw new ModelNotFoundError(`${dir} is a file; pass the model's folder (with config.json, tokenizer.json and onnx/)`);
  const absent = (err: unknown) => ['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '');
  return {
    label: dir,
    async read(path: string) {
      try {
        const buf = await readFile(join(root, path));
        return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
      } catch (err) {
        if (absent(err)) return undefined;
        throw err;
      }
    },
    async size(path: string) {
      try {
        const file = await stat(join(root, path));
        return file.isFile() ? file.size : undefined;
      } catch (err) {
        if (absent(err)) return undefined;
        throw err;
      }
    },
  };
}
