/**
 * A cache of chat completions keyed by (base URL, request body), so re-running an explanation
 * or a score costs nothing. Only successful, well-formed answers are stored (the client checks
 * them before `set`). The API key is never part of a key: two keys for the same server share
 * answers, and a key cannot be recovered from a cache.
 *
 * Note: a request with temperature > 0 is cached like any other; the same request returns the
 * same stored sample. Vary the request (e.g. `seed`) or bypass the cache to draw new samples.
 */
import { sha256Hex } from './sha256.ts';
import type { ChatRequest, ChatResponse } from './types.ts';

export interface ResponseCache {
  get(key: string): Promise<ChatResponse | undefined>;
  set(key: string, value: ChatResponse): Promise<void>;
}

/** An in-memory cache, optionally bounded (oldest entries evicted first). */
export class MemoryResponseCache implements ResponseCache {
  private readonly entries = new Map<string, string>();

  constructor(private readonly maxEntries = Infinity) {}

  get size(): number {
    return this.entries.size;
  }

  async get(key: string): Promise<ChatResponse | undefined> {
    const stored = this.entries.get(key);
    // Stored as JSON so callers mutating a returned response can't corrupt the cache.
    return stored === undefined ? undefined : (JSON.parse(stored) as ChatResponse);
  }

  async set(key: string, value: ChatResponse): Promise<void> {
    this.entries.delete(key);
    this.entries.set(key, JSON.stringify(value));
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  clear(): void {
    this.entries.clear();
  }
}

/** The cache key of a request: SHA-256 hex of the canonical JSON of {baseUrl, request}. */
export async function requestCacheKey(baseUrl: string, request: ChatRequest): Promise<string> {
  return sha256Hex(canonicalJson({ baseUrl: normalizeBaseUrl(baseUrl), request }));
}

/** Base URL without trailing slashes, so `…/v1` and `…/v1/` name the same server. */
export function normalizeBaseUrl(baseUrl: string): string {
  return baseUrl.trim().replace(/\/+$/, '');
}

/**
 * JSON with object keys sorted at every depth (array order kept), so logically equal requests
 * serialise identically. Undefined members are dropped, as JSON.stringify does.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (typeof value !== 'object' || value === null) return value;
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    const member = (value as Record<string, unknown>)[key];
    if (member !== undefined) sorted[key] = sortKeys(member);
  }
  return sorted;
}

/**
 * A view of `cache` that never answers but still stores: for a re-run that must ask the LLM
 * afresh (a cached answer may be the bad one) while keeping the new answers for later runs.
 */
export function refreshingCache(cache: ResponseCache): ResponseCache {
  return { get: async () => undefined, set: (key, value) => cache.set(key, value) };
}
