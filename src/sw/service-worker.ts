/// <reference lib="webworker" />
/**
 * The app's service worker. It does two jobs:
 *
 * - **Offline.** The app shell (HTML, scripts, styles: the list vite-plugin-pwa injects as
 *   `self.__WB_MANIFEST`) is cached at install. onnxruntime's 27 MB wasm, the bundled models and
 *   the corpus are too large to precache; they are cached the first time the app uses them. So
 *   after one visit the app, its bundled model and its stored data work without a network.
 * - **Cross-origin isolation on any static host.** Hosts such as GitHub Pages cannot send the
 *   COOP/COEP headers that WASM threads need, so every same-origin response passes through here
 *   and gets them (src/sw/register.ts reloads the page once when that is what isolates it).
 *
 * Cross-origin requests (the Hugging Face hub, LLM endpoints) are never touched: their caching is
 * the app's own business (hub-source.ts), and the API key must not pass through any cache.
 */
import { ISOLATION_HEADERS } from './policies.ts';

declare const self: ServiceWorkerGlobalScope & { __WB_MANIFEST: { url: string; revision: string | null }[] };

const MANIFEST = self.__WB_MANIFEST;
const SHELL_PREFIX = 'neurolens-shell-';
const SHELL_CACHE = SHELL_PREFIX + shellVersion(MANIFEST);
/** onnxruntime's files: their path holds the version, so a cached copy is never stale. */
const RUNTIME_CACHE = 'neurolens-runtime-v1';
/** Bundled models and corpus: revalidated against the server whenever it answers. */
const DATA_CACHE = 'neurolens-data-v1';
/** How long a navigation waits for the network before the cached page is used. */
const NAVIGATION_TIMEOUT_MS = 4000;

const scope = new URL(self.registration.scope);
const shellUrls = new Set(MANIFEST.map((entry) => new URL(entry.url, scope).href));
const INDEX_URL = new URL('index.html', scope).href;

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(SHELL_CACHE);
      // `reload`: the shell must come from the server, not from a stale HTTP cache entry.
      await cache.addAll([...shellUrls].map((url) => new Request(url, { cache: 'reload' })));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      const names = await caches.keys();
      await Promise.all(names.filter((n) => n.startsWith(SHELL_PREFIX) && n !== SHELL_CACHE).map((n) => caches.delete(n)));
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (url.origin !== scope.origin) return;
  if (request.method === 'GET') event.respondWith(respond(request, url).then(withIsolation));
  else if (request.method === 'HEAD') event.respondWith(headOffline(request, url));
});

/**
 * The app asks for files' sizes with HEAD before it downloads (to choose a model's variant). Offline,
 * a cached file's headers answer; a file never cached is absent.
 */
async function headOffline(request: Request, url: URL): Promise<Response> {
  try {
    return await fetch(request);
  } catch (err) {
    const cached = await caches.match(url.href, { ignoreMethod: true });
    if (cached) return new Response(null, { status: cached.status, headers: cached.headers });
    if (isDataPath(url)) return new Response(null, { status: 404 });
    throw err;
  }
}

function isDataPath(url: URL): boolean {
  const path = url.href.slice(scope.href.length);
  return path.startsWith('models/') || path.startsWith('corpus/');
}

async function respond(request: Request, url: URL): Promise<Response> {
  if (request.mode === 'navigate') return navigation(request);
  const shell = shellUrls.has(url.href) ? await caches.match(url.href, { cacheName: SHELL_CACHE }) : undefined;
  if (shell) return shell;
  const path = url.href.slice(scope.href.length);
  if (path.startsWith('ort/')) return cacheFirst(request, RUNTIME_CACHE);
  if (isDataPath(url)) return revalidated(request, DATA_CACHE);
  return fetch(request);
}

/** The page: from the network when it answers in time (so updates arrive), else the cached shell. */
async function navigation(request: Request): Promise<Response> {
  const cached = () => caches.match(INDEX_URL, { cacheName: SHELL_CACHE });
  try {
    const response = await withTimeout(fetch(request), NAVIGATION_TIMEOUT_MS);
    if (response.ok || !(await cached())) return response;
    return (await cached())!;
  } catch (err) {
    const fallback = await cached();
    if (fallback) return fallback;
    throw err;
  }
}

async function cacheFirst(request: Request, cacheName: string): Promise<Response> {
  const cache = await caches.open(cacheName);
  const hit = await cache.match(request);
  if (hit) return hit;
  const response = await fetch(request);
  if (response.ok && response.status === 200) await cache.put(request, response.clone()).catch(() => {});
  return response;
}

/**
 * A cached copy, checked with the server by its ETag when the server can be reached: a 304 keeps
 * the copy, a new version replaces it, no network serves the copy. Range requests (none today)
 * would bypass the cache.
 */
async function revalidated(request: Request, cacheName: string): Promise<Response> {
  if (request.headers.has('range')) return fetch(request);
  const cache = await caches.open(cacheName);
  const hit = await cache.match(request);
  const etag = hit?.headers.get('etag');
  let response: Response;
  try {
    response = await fetch(request, etag ? { headers: { 'if-none-match': etag }, cache: 'no-store' } : { cache: 'no-store' });
  } catch (err) {
    if (hit) return hit;
    throw err;
  }
  if (response.status === 304 && hit) return hit;
  if (response.status === 200) await cache.put(request, response.clone()).catch(() => {});
  else if (!response.ok && hit && response.status >= 500) return hit;
  return response;
}

/** The response with the cross-origin-isolation headers added (see the module comment). */
function withIsolation(response: Response): Response {
  if (response.type === 'opaque' || response.type === 'opaqueredirect' || response.status === 0) return response;
  const headers = new Headers(response.headers);
  for (const [name, value] of Object.entries(ISOLATION_HEADERS)) headers.set(name, value);
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out')), ms);
    promise.then(
      (v) => (clearTimeout(timer), resolve(v)),
      (e) => (clearTimeout(timer), reject(e)),
    );
  });
}

/** A short hash of the shell's file list and revisions: a new build gets a new shell cache. */
function shellVersion(manifest: readonly { url: string; revision: string | null }[]): string {
  let h = 0x811c9dc5;
  for (const { url, revision } of manifest) {
    for (const ch of `${url}\n${revision ?? ''}\n`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}
