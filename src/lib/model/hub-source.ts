import { ModelNotFoundError, readResponseWithProgress, type ModelSource, type ProgressCallback } from './model-source.ts';

const HUB_CACHE = 'neurolens-hub-v1';

/** True for strings shaped like a hub repo id ("Xenova/gpt2", "onnx-community/gpt2"). */
export function isHubRepoId(s: string): boolean {
  return /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(s) && !s.startsWith('.') && !s.includes('..');
}

/**
 * Files of a Hugging Face hub repository. Responses are kept in the browser's Cache Storage
 * (when there is one) so a second visit loads offline without downloading again.
 */
export function hubSource(
  repoId: string,
  options: { revision?: string; endpoint?: string; fetch?: typeof fetch } = {},
): ModelSource {
  if (!isHubRepoId(repoId)) throw new ModelNotFoundError(`"${repoId}" is not a hub repository id (expected owner/name)`);
  const endpoint = (options.endpoint ?? 'https://huggingface.co').replace(/\/$/, '');
  const revision = options.revision ?? 'main';
  const fetchImpl = options.fetch ?? fetch;
  const cacheStorage = (globalThis as { caches?: CacheStorage }).caches;
  return {
    label: repoId,
    async read(path: string, onProgress?: ProgressCallback) {
      const url = `${endpoint}/${repoId}/resolve/${encodeURIComponent(revision)}/${path}`;
      const cache = cacheStorage ? await cacheStorage.open(HUB_CACHE) : undefined;
      const cached = await cache?.match(url);
      if (cached) return readResponseWithProgress(cached, path, onProgress);
      let response: Response;
      try {
        response = await fetchImpl(url);
      } catch (err) {
        throw new ModelNotFoundError(`${repoId}: could not reach the hub for ${path} (${(err as Error).message}); offline?`);
      }
      if (response.status === 404) return undefined;
      if (response.status === 401 || response.status === 403) {
        throw new ModelNotFoundError(`${repoId}: the hub refused ${path} (HTTP ${response.status}); unknown or private repository`);
      }
      if (!response.ok) throw new ModelNotFoundError(`${repoId}: ${path} answered HTTP ${response.status}`);
      const bytes = await readResponseWithProgress(response, path, onProgress);
      await cache?.put(url, new Response(bytes as Uint8Array<ArrayBuffer>, { headers: { 'content-length': String(bytes.byteLength) } })).catch(() => {
        // A full quota only costs the offline copy; the model still loads now.
      });
      return bytes;
    },
  };
}
