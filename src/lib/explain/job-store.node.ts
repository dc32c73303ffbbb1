/**
 * Node-only: a JobStore on disk. Each job is a directory, each step one JSON file in it. A value
 * is written to a temporary file and renamed over the target, so a crash mid-write never leaves a
 * half-written step (it reads as not done, and is redone).
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../llm/sha256.ts';
import type { JobStore } from './job.ts';

export class JobStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JobStoreError';
  }
}

/** Longest encoded name used as is; longer ones are replaced by their hash. */
const MAX_NAME_LENGTH = 150;

/**
 * A file-system-safe, collision-free name for any string: characters outside [A-Za-z0-9._-] are
 * percent-encoded (so "/" cannot escape the directory); overlong names become a hash.
 */
async function safeName(text: string): Promise<string> {
  const encoded = Array.from(new TextEncoder().encode(text), (b) =>
    /[A-Za-z0-9_-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, '0')}`,
  ).join('');
  return encoded.length <= MAX_NAME_LENGTH ? encoded : `h-${await sha256Hex(text)}`;
}

function isMissing(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'ENOENT';
}

export class FileJobStore implements JobStore {
  constructor(readonly directory: string) {
    if (typeof directory !== 'string' || directory === '') throw new JobStoreError('the job store needs a directory');
  }

  private async pathOf(jobId: string, key: string): Promise<{ dir: string; file: string }> {
    const dir = join(this.directory, await safeName(jobId));
    return { dir, file: join(dir, `${await safeName(key)}.json`) };
  }

  async get(jobId: string, key: string): Promise<unknown | undefined> {
    const { file } = await this.pathOf(jobId, key);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw new JobStoreError(`cannot read job step ${file}: ${(err as Error).message}`);
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      // Only a hand-edited file can be malformed (writes are atomic): treat the step as not done.
      return undefined;
    }
  }

  async put(jobId: string, key: string, value: unknown): Promise<void> {
    const { dir, file } = await this.pathOf(jobId, key);
    const text = JSON.stringify(value);
    if (text === undefined) throw new JobStoreError(`job step "${key}" has no JSON value`);
    const temporary = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    try {
      await mkdir(dir, { recursive: true });
      await writeFile(temporary, text, 'utf8');
      await rename(temporary, file);
    } catch (err) {
      await rm(temporary, { force: true }).catch(() => undefined);
      throw new JobStoreError(`cannot write job step ${file}: ${(err as Error).message}`);
    }
  }
}
