/**
 * Node-only: a ResponseCache on disk, one JSON file per key in a directory. Writes go to a
 * temporary file that is then renamed over the target, so a crash or a concurrent writer never
 * leaves a half-written entry; an unreadable or malformed entry reads as a miss.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { normalizeChatResponse } from './chat-response.ts';
import type { ResponseCache } from './response-cache.ts';
import type { ChatResponse } from './types.ts';

/** Keys become file names, so only plain, short names are accepted (no path traversal). */
const SAFE_KEY = /^[A-Za-z0-9_-]{1,128}$/;

export class FileResponseCacheKeyError extends Error {
  constructor(key: string) {
    super(`Invalid response-cache key ${JSON.stringify(key.slice(0, 80))}: expected 1-128 characters of [A-Za-z0-9_-]`);
    this.name = 'FileResponseCacheKeyError';
  }
}

export class FileResponseCache implements ResponseCache {
  private ready: Promise<unknown> | undefined;

  constructor(readonly directory: string) {}

  async get(key: string): Promise<ChatResponse | undefined> {
    let text: string;
    try {
      text = await readFile(this.pathOf(key), 'utf8');
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    try {
      return normalizeChatResponse(JSON.parse(text));
    } catch {
      return undefined; // Corrupt entry (e.g. edited by hand): a miss; the next set overwrites it.
    }
  }

  async set(key: string, value: ChatResponse): Promise<void> {
    const target = this.pathOf(key);
    this.ready ??= mkdir(this.directory, { recursive: true }).catch((err: unknown) => {
      this.ready = undefined; // Let a later call try again (e.g. after the user fixed permissions).
      throw err;
    });
    await this.ready;
    const temp = `${target}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    try {
      await writeFile(temp, JSON.stringify(value), 'utf8');
      await rename(temp, target);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }

  private pathOf(key: string): string {
    if (!SAFE_KEY.test(key)) throw new FileResponseCacheKeyError(key);
    return join(this.directory, `${key}.json`);
  }
}

function isMissing(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'ENOENT';
}
