import { contentLength, ModelNotFoundError, readResponseWithProgress, type ModelSource, type ReadOptions } from './model-source.ts';

/** Files under a base URL: `public/models/<name>/` served on the same origin, or any mirror. */
export function urlSource(baseUrl: string, label = baseUrl, fetchImpl: typeof fetch = fetch): ModelSource {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const urlOf = (path: string) => new URL(path, new URL(base, globalThis.location?.href ?? 'http://127.0.0.1/')).href;
  const request = async (path: string, init: RequestInit): Promise<Response | undefined> => {
    let response: Response;
    try {
      response = await fetchImpl(urlOf(path), init);
    } catch (err) {
      if (init.signal?.aborted) throw init.signal.reason;
      throw new ModelNotFoundError(`${label}: could not fetch ${path} (${(err as Error).message})`);
    }
    if (response.status === 404) return undefined;
    if (!response.ok) throw new ModelNotFoundError(`${label}: ${path} answered HTTP ${response.status}`);
    // Dev servers and single-page hosts answer unknown paths with index.html: that is "absent".
    if ((response.headers.get('content-type') ?? '').includes('text/html')) return undefined;
    return response;
  };
  return {
    label,
    async read(path: string, options: ReadOptions = {}) {
      const response = await request(path, { signal: options.signal });
      return response && readResponseWithProgress(response, path, { onProgress: options.onProgress });
    },
    async size(path: string, signal?: AbortSignal) {
      const response = await request(path, { method: 'HEAD', signal });
      return response && contentLength(response);
    },
  };
}
