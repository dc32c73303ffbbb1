import { ModelNotFoundError, readResponseWithProgress, type ModelSource, type ProgressCallback } from './model-source.ts';

/** Files under a base URL: `public/models/<name>/` served on the same origin, or any mirror. */
export function urlSource(baseUrl: string, label = baseUrl, fetchImpl: typeof fetch = fetch): ModelSource {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  return {
    label,
    async read(path: string, onProgress?: ProgressCallback) {
      let response: Response;
      try {
        response = await fetchImpl(new URL(path, new URL(base, globalThis.location?.href ?? 'http://127.0.0.1/')).href);
      } catch (err) {
        throw new ModelNotFoundError(`${label}: could not fetch ${path} (${(err as Error).message})`);
      }
      if (response.status === 404) return undefined;
      if (!response.ok) throw new ModelNotFoundError(`${label}: ${path} answered HTTP ${response.status}`);
      // Dev servers answer unknown paths with index.html: that is "absent", not a model file.
      const type = response.headers.get('content-type') ?? '';
      if (type.includes('text/html')) return undefined;
      return readResponseWithProgress(response, path, onProgress);
    },
  };
}
