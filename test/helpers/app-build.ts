/**
 * The browser tests run what users run: the `vite build` output, served by a plain static server.
 * Builds run as `vite build` in a child process with the environment a user has (no test-runner
 * NODE_ENV, which would make a development build), at most once per change of their inputs: a
 * stamp of the inputs' sizes and modification times is kept beside the output.
 *
 * - `app`: the app, in dist/ (exactly `npm run build`'s output);
 * - `harness`: the test harness pages under test/browser/, built with the same bundling (see
 *   HARNESS_MODE in vite.config.ts), in .cache/test-harness/.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

export const PROJECT_ROOT = join(import.meta.dirname, '../..');
export const APP_DIST = join(PROJECT_ROOT, 'dist');
export const HARNESS_DIST = join(PROJECT_ROOT, '.cache/test-harness');

const INPUTS = ['src', 'public', 'index.html', 'vite.config.ts', 'svelte.config.js', 'package-lock.json', 'test/browser'];

function inputStamp(): string {
  const lines: string[] = [];
  const visit = (path: string) => {
    if (!existsSync(path)) return;
    const info = statSync(path);
    if (info.isDirectory()) {
      for (const name of readdirSync(path).sort()) visit(join(path, name));
    } else {
      lines.push(`${relative(PROJECT_ROOT, path)} ${info.size} ${info.mtimeMs}`);
    }
  };
  for (const input of INPUTS) visit(join(PROJECT_ROOT, input));
  return lines.join('\n');
}

function ensureBuilt(outDir: string, args: string[]): string {
  const stampFile = join(outDir, '.neurolens-build-stamp');
  const stamp = inputStamp();
  if (existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) return outDir;
  const env = { ...process.env };
  delete env.NODE_ENV;
  execFileSync(join(PROJECT_ROOT, 'node_modules/.bin/vite'), ['build', '--logLevel', 'error', ...args], { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'ignore', 'inherit'] });
  writeFileSync(stampFile, stamp);
  return outDir;
}

/** The production app in dist/, built if its sources changed. */
export function ensureAppBuilt(): string {
  return ensureBuilt(APP_DIST, []);
}

/** The harness pages, built like the app, in .cache/test-harness/test/browser/*.html. */
export function ensureHarnessBuilt(): string {
  return ensureBuilt(HARNESS_DIST, ['--mode', 'test-harness']);
}
