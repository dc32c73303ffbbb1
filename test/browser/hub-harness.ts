/**
 * Page used by test/browser-hub.test.ts: the real hub source (Cache Storage, parts, ETags) in the
 * browser against a loopback hub, with plain results handed back through window.neurolensHub.
 */
import { hubSource, type HubSourceOptions } from '../../src/lib/model/hub-source.ts';
import { loadModel } from '../../src/lib/model/load-model.ts';
import type { ModelDtypeChoice } from '../../src/lib/model/model-variants.ts';

type Options = Omit<HubSourceOptions, 'fetch' | 'cacheStorage'>;

async function digest(bytes: Uint8Array): Promise<string> {
  const hash = await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, '0')).join('');
}

function errorOf(err: unknown) {
  return { ok: false as const, name: (err as Error).name, message: (err as Error).message };
}

(window as unknown as { neurolensHub: unknown }).neurolensHub = {
  /** Reads a file; with `abortAt`, cancels once that fraction of it has arrived. */
  async read(repo: string, path: string, options: Options, abortAt?: number) {
    const controller = new AbortController();
    const progress: [number, number | null][] = [];
    try {
      const bytes = await hubSource(repo, options).read(path, {
        signal: controller.signal,
        onProgress: ({ loaded, total }) => {
          progress.push([loaded, total]);
          if (abortAt !== undefined && total && loaded >= abortAt * total) controller.abort(new DOMException('cancelled', 'AbortError'));
        },
      });
      return { ok: true as const, found: bytes !== undefined, length: bytes?.byteLength ?? 0, sha256: bytes ? await digest(bytes) : null, progress };
    } catch (err) {
      return { ...errorOf(err), progress };
    }
  },
  async size(repo: string, path: string, options: Options) {
    try {
      return { ok: true as const, size: await hubSource(repo, options).size(path) };
    } catch (err) {
      return errorOf(err);
    }
  },
  async load(repo: string, dtype: ModelDtypeChoice, options: Options) {
    try {
      const model = await loadModel(hubSource(repo, options), { dtype });
      return { ok: true as const, onnxPath: model.onnxPath, dtype: model.dtype, notice: model.notice ?? null };
    } catch (err) {
      return errorOf(err);
    }
  },
  async clear() {
    for (const name of await caches.keys()) await caches.delete(name);
  },
};
document.getElementById('status')!.textContent = 'ready';
