/**
 * Files of a Hugging Face hub repository (or a mirror with the same URLs).
 *
 * In the browser, files are kept in Cache Storage so later visits load offline. Large files are
 * fetched in parts (HTTP Range requests) and each part is cached as it arrives, so a download that
 * a reload, a cancel or a lost connection interrupts continues where it stopped; files already
 * cached are not fetched again. Files of a branch (a revision that is not a commit id) are
 * revalidated by their ETag when the hub can be reached; a commit's files never change.
 */
import { contentLength, ModelNotFoundError, readResponseWithProgress, type ModelSource, type ReadOptions } from './model-source.ts';

const HUB_CACHE = 'neurolens-hub-v2';
/** Bytes per cached part: small enough to lose little to an interruption, large enough to be few. */
export const HUB_PART_BYTES = 32 * 1024 * 1024;

/** True for strings shaped like a hub repo id ("Xenova/gpt2", "onnx-community/gpt2"). */
export function isHubRepoId(s: string): boolean {
  return /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(s) && !s.startsWith('.') && !s.includes('..');
}

/** The hub did not answer at all (no network, DNS, CORS): not the same as a missing file. */
export class HubUnreachableError extends ModelNotFoundError {}

export interface HubSourceOptions {
  /** Branch, tag or commit id (default `main`). */
  revision?: string;
  /** The hub or a mirror (default https://huggingface.co). */
  endpoint?: string;
  /** An access token for private or gated repositories; sent only to the endpoint. */
  token?: string;
  fetch?: typeof fetch;
  /** Where parts are kept; default the browser's Cache Storage where there is one. */
  cacheStorage?: CacheStorage | null;
  /** Bytes per part of a new download (default HUB_PART_BYTES). */
  partBytes?: number;
}

/** What is known about a cached file: stored beside its parts. */
interface CachedFileInfo {
  size: number;
  etag: string | null;
  partBytes: number;
  complete: boolean;
}

export function hubSource(repoId: string, options: HubSourceOptions = {}): ModelSource {
  if (!isHubRepoId(repoId)) throw new ModelNotFoundError(`"${repoId}" is not a hub repository id (expected owner/name)`);
  const endpoint = (options.endpoint || 'https://huggingface.co').replace(/\/$/, '');
  const revision = options.revision || 'main';
  const immutable = /^[0-9a-f]{40}$/.test(revision);
  const fetchImpl = options.fetch ?? fetch;
  const cacheStorage = options.cacheStorage !== undefined ? options.cacheStorage : ((globalThis as { caches?: CacheStorage }).caches ?? null);
  const auth: Record<string, string> = options.token ? { authorization: `Bearer ${options.token}` } : {};
  const urlOf = (path: string) => `${endpoint}/${repoId}/resolve/${encodeURIComponent(revision)}/${path}`;

  async function hubFetch(path: string, init: RequestInit & { headers?: Record<string, string> }): Promise<Response> {
    let response: Response;
    try {
      response = await fetchImpl(urlOf(path), { ...init, headers: { ...auth, ...init.headers } });
    } catch (err) {
      if (init.signal?.aborted) throw init.signal.reason;
      throw new HubUnreachableError(`${repoId}: could not reach the hub for ${path} (${(err as Error).message}); offline?`);
    }
    if (response.status === 401 || response.status === 403) {
      const hint = options.token ? 'check the access token' : 'a private or gated repository needs an access token';
      throw new ModelNotFoundError(`${repoId}: the hub refused ${path} (HTTP ${response.status}); ${hint}`);
    }
    return response;
  }

  /**
   * The repository's files and sizes from the hub's tree listing (one request instead of a HEAD
   * per candidate file, and no 404s in the console); null where the endpoint has no such API or
   * cannot be reached, and files are then asked for one by one.
   */
  let listing: Promise<Map<string, number> | null> | undefined;
  function listFiles(signal?: AbortSignal): Promise<Map<string, number> | null> {
    listing ??= (async () => {
      try {
        const response = await fetchImpl(`${endpoint}/api/models/${repoId}/tree/${encodeURIComponent(revision)}?recursive=true`, { headers: auth, signal });
        if (!response.ok) return null;
        const entries = (await response.json()) as { type?: string; path?: string; size?: number; lfs?: { size?: number } }[];
        if (!Array.isArray(entries)) return null;
        const files = new Map<string, number>();
        for (const e of entries) if (e.type === 'file' && typeof e.path === 'string') files.set(e.path, e.lfs?.size ?? e.size ?? 0);
        return files;
      } catch {
        return null;
      }
    })();
    return listing;
  }

  /** Size and ETag from a HEAD request; undefined when the file does not exist. */
  async function head(path: string, signal?: AbortSignal, etag?: string | null): Promise<{ status: number; size: number | null; etag: string | null } | undefined> {
    const response = await hubFetch(path, { method: 'HEAD', signal, headers: etag ? { 'if-none-match': etag } : {}, cache: 'no-store' });
    if (response.status === 404) return undefined;
    if (!response.ok && response.status !== 304) throw new ModelNotFoundError(`${repoId}: ${path} answered HTTP ${response.status}`);
    const linked = response.headers.get('x-linked-size');
    return { status: response.status, size: linked && /^\d+$/.test(linked) ? Number(linked) : contentLength(response), etag: response.headers.get('etag') };
  }

  return {
    label: repoId,
    async size(path: string, signal?: AbortSignal) {
      const files = await listFiles(signal);
      if (files) return files.get(path);
      const cache = cacheStorage ? await cacheStorage.open(HUB_CACHE) : null;
      const info = cache ? await readInfo(cache, urlOf(path)) : undefined;
      if (info?.complete) return info.size;
      try {
        return (await head(path, signal))?.size;
      } catch (err) {
        // Offline, a file this browser does not hold is as good as absent.
        if (err instanceof HubUnreachableError && !signal?.aborted) return info?.size;
        throw err;
      }
    },
    async read(path: string, readOptions: ReadOptions = {}) {
      const { onProgress, signal } = readOptions;
      const files = await listFiles(signal);
      if (files && !files.has(path)) return undefined;
      const url = urlOf(path);
      const cache = cacheStorage ? await cacheStorage.open(HUB_CACHE) : null;
      if (!cache) {
        const response = await hubFetch(path, { signal });
        if (response.status === 404) return undefined;
        if (!response.ok) throw new ModelNotFoundError(`${repoId}: ${path} answered HTTP ${response.status}`);
        return readResponseWithProgress(response, path, { onProgress });
      }
      let info = await readInfo(cache, url);
      if (!(info?.complete && (immutable || (await unchanged(path, info, signal))))) {
        const remote = await head(path, signal);
        if (!remote) {
          await forget(cache, url, info);
          return undefined;
        }
        if (info && (info.complete || info.size !== remote.size || info.etag !== remote.etag)) {
          await forget(cache, url, info);
          info = undefined;
        }
        if (remote.size === null) {
          // No size announced: no parts to resume, one plain download.
          const response = await hubFetch(path, { signal });
          if (!response.ok) throw new ModelNotFoundError(`${repoId}: ${path} answered HTTP ${response.status}`);
          return readResponseWithProgress(response, path, { onProgress });
        }
        info ??= { size: remote.size, etag: remote.etag, partBytes: options.partBytes ?? HUB_PART_BYTES, complete: false };
        await writeInfo(cache, url, info);
      }
      const fileInfo = info;
      const bytes = await assemble(cache, url, path, fileInfo, readOptions, async (_part, start, end, done) => {
        const ranged = fileInfo.size > fileInfo.partBytes;
        const response = await hubFetch(path, { signal, headers: ranged ? { range: `bytes=${start}-${end - 1}` } : {} });
        if (!response.ok) throw new ModelNotFoundError(`${repoId}: ${path} answered HTTP ${response.status}`);
        if (ranged && response.status !== 206) {
          throw new ModelNotFoundError(`${repoId}: the hub ignored a range request for ${path}; cannot download it in parts`);
        }
        const data = await readResponseWithProgress(response, path, { onProgress, reportedFrom: done, total: fileInfo.size });
        if (data.byteLength !== end - start) throw new ModelNotFoundError(`${repoId}: ${path} came back with ${data.byteLength} bytes where ${end - start} were expected`);
        return data;
      });
      if (!fileInfo.complete) await writeInfo(cache, url, { ...fileInfo, complete: true }).catch(() => {});
      return bytes;
    },
  };

  /** A branch's cached file is still current, or the hub cannot be asked (offline: keep the copy). */
  async function unchanged(path: string, info: CachedFileInfo, signal?: AbortSignal): Promise<boolean> {
    if (!info.etag || (globalThis.navigator && globalThis.navigator.onLine === false)) return true;
    try {
      const remote = await head(path, signal, info.etag);
      return remote !== undefined && (remote.status === 304 || (remote.etag === info.etag && remote.size === info.size));
    } catch (err) {
      if (signal?.aborted) throw err;
      return true;
    }
  }
}

type FetchPart = (part: number, start: number, end: number, bytesDone: number) => Promise<Uint8Array>;

/**
 * The whole file. Missing parts are fetched first, one at a time, each into the cache as it
 * arrives (so only one part is in memory during a download, and an interruption loses at most
 * one); then the file is put together from the cache. A part the cache would not take (quota)
 * is kept in memory instead.
 */
async function assemble(cache: Cache, url: string, path: string, info: CachedFileInfo, options: ReadOptions, fetchPart: FetchPart): Promise<Uint8Array> {
  const parts = Math.max(1, Math.ceil(info.size / info.partBytes));
  const bounds = (part: number) => [part * info.partBytes, Math.min(info.size, (part + 1) * info.partBytes)] as const;
  const uncached = new Map<number, Uint8Array>();
  for (let part = 0; part < parts; part++) {
    if (options.signal?.aborted) throw options.signal.reason;
    const [start, end] = bounds(part);
    if (await cache.match(partUrl(url, part))) {
      options.onProgress?.({ file: path, loaded: end, total: info.size });
      continue;
    }
    const data = await fetchPart(part, start, end, start);
    const kept = await cache.put(partUrl(url, part), new Response(data as Uint8Array<ArrayBuffer>)).then(
      () => true,
      () => false,
    );
    if (!kept) uncached.set(part, data);
  }
  const out = new Uint8Array(info.size);
  for (let part = 0; part < parts; part++) {
    const [start, end] = bounds(part);
    const cached = uncached.get(part) ?? (await cache.match(partUrl(url, part)).then((r) => (r ? r.arrayBuffer().then((b) => new Uint8Array(b)) : undefined)));
    if (!cached || cached.byteLength !== end - start) {
      await forget(cache, url, info);
      throw new ModelNotFoundError(`${path}: the cached copy is damaged or was evicted (part ${part}); load again to download it afresh`);
    }
    out.set(cached, start);
  }
  return out;
}

function partUrl(url: string, part: number): string {
  return `${url}?neurolens-part=${part}`;
}

function infoUrl(url: string): string {
  return `${url}?neurolens-info`;
}

async function readInfo(cache: Cache, url: string): Promise<CachedFileInfo | undefined> {
  const response = await cache.match(infoUrl(url));
  if (!response) return undefined;
  try {
    const info = (await response.json()) as CachedFileInfo;
    return Number.isSafeInteger(info.size) && Number.isSafeInteger(info.partBytes) && info.partBytes > 0 ? info : undefined;
  } catch {
    return undefined;
  }
}

async function writeInfo(cache: Cache, url: string, info: CachedFileInfo): Promise<void> {
  await cache.put(infoUrl(url), new Response(JSON.stringify(info), { headers: { 'content-type': 'application/json' } }));
}

async function forget(cache: Cache, url: string, info: CachedFileInfo | undefined): Promise<void> {
  await cache.delete(infoUrl(url));
  const parts = info ? Math.max(1, Math.ceil(info.size / info.partBytes)) : 0;
  for (let part = 0; part < parts; part++) await cache.delete(partUrl(url, part));
}

/** How much of a repository's files this browser holds, for the model picker. */
export async function cachedHubBytes(files: { repoId: string; path: string; revision?: string; endpoint?: string }[]): Promise<number> {
  const storage = (globalThis as { caches?: CacheStorage }).caches;
  if (!storage) return 0;
  const cache = await storage.open(HUB_CACHE);
  let total = 0;
  for (const f of files) {
    const url = `${(f.endpoint || 'https://huggingface.co').replace(/\/$/, '')}/${f.repoId}/resolve/${encodeURIComponent(f.revision || 'main')}/${f.path}`;
    const info = await readInfo(cache, url);
    if (!info) continue;
    const parts = Math.max(1, Math.ceil(info.size / info.partBytes));
    for (let part = 0; part < parts; part++) {
      if (await cache.match(partUrl(url, part))) total += Math.min(info.partBytes, info.size - part * info.partBytes);
    }
  }
  return total;
}
