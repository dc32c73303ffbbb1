/**
 * Generates the project's GPT-2 ONNX models (see public/models/README.md):
 *   npx tsx scripts/gen-models.ts            toy-planted and tiny-random into public/models/
 *   npx tsx scripts/gen-models.ts --bench    also gpt2-small-random into .cache/models/ (~1 GB)
 *   --all is the same as --bench; --force regenerates even up-to-date models.
 * Deterministic and idempotent: a model whose directory holds a stamp matching the generator's
 * version, its config and the generator's source is left alone. Each model is written into a
 * temporary sibling directory and renamed into place, so an interrupted run never leaves half a model.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildGpt2OnnxChunks } from './toy/gpt2-graph.ts';
import { writeHubModelDir } from './toy/hub-files.ts';
import { MODEL_SPECS, type ModelSpec } from './toy/models.ts';
import { plantedNeuronInfos } from './toy/planted-model.ts';
import { MODEL_MANIFEST_FILE } from '../src/lib/model/model-source.ts';

/** Bump when the output changes in a way the source hash would not show. */
export const GENERATOR_VERSION = 1;
// The stamp doubles as the folder's manifest, which the app reads to know a bundled model's files.
export const STAMP_FILE = MODEL_MANIFEST_FILE;

const SCRIPTS_DIR = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = resolve(SCRIPTS_DIR, '..');

export interface EnsureModelsOptions {
  /** Where public models go (default <repo>/public/models). */
  publicDir?: string;
  /** Where benchmark models go (default <repo>/.cache/models). */
  cacheDir?: string;
  /** Also generate the benchmark models. */
  bench?: boolean;
  /** Regenerate even when the stamp matches. */
  force?: boolean;
  /** Only these model names (default: all selected by `bench`). */
  only?: string[];
  /** Progress lines (default: console.log). */
  log?: (line: string) => void;
}

export interface EnsuredModel {
  name: string;
  dir: string;
  status: 'generated' | 'up to date';
  /** Total bytes of the model's files. */
  bytes: number;
  ms: number;
}

export class GenModelsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GenModelsError';
  }
}

interface Stamp {
  generatorVersion: number;
  hash: string;
  files: Record<string, number>;
}

let cachedSourceHash: string | null = null;

/** Hash of the generator's own code, so editing it regenerates the models. */
function generatorSourceHash(): string {
  if (cachedSourceHash) return cachedSourceHash;
  const h = createHash('sha256');
  const toyDir = join(SCRIPTS_DIR, 'toy');
  const files = [join(SCRIPTS_DIR, 'gen-models.ts'), ...readdirSync(toyDir).sort().map((f) => join(toyDir, f))];
  for (const f of files.filter((f) => f.endsWith('.ts'))) h.update(f.slice(SCRIPTS_DIR.length)).update(readFileSync(f));
  // The planted rules the toy generator wires (shared with the app's scripted LLM).
  h.update('planted-neurons.ts').update(readFileSync(join(SCRIPTS_DIR, '../src/lib/model/planted-neurons.ts')));
  cachedSourceHash = h.digest('hex');
  return cachedSourceHash;
}

export function modelStampHash(spec: ModelSpec): string {
  return createHash('sha256')
    .update(JSON.stringify({
      generatorVersion: GENERATOR_VERSION,
      name: spec.name,
      config: spec.config,
      recipe: spec.recipe,
      files: spec.files,
      source: generatorSourceHash(),
    }))
    .digest('hex');
}

function readStamp(dir: string): Stamp | null {
  try {
    return JSON.parse(readFileSync(join(dir, STAMP_FILE), 'utf8')) as Stamp;
  } catch {
    return null;
  }
}

/** True when `dir` holds a complete model generated from this exact spec and code. */
function isUpToDate(dir: string, spec: ModelSpec): boolean {
  const stamp = readStamp(dir);
  if (!stamp || stamp.generatorVersion !== GENERATOR_VERSION || stamp.hash !== modelStampHash(spec)) return false;
  return Object.entries(stamp.files).every(([rel, size]) => {
    try {
      return statSync(join(dir, rel)).size === size;
    } catch {
      return false;
    }
  });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes temporary directories left by generator runs that died (their pid no longer exists). */
function removeStaleTemps(parent: string, name: string): void {
  if (!existsSync(parent)) return;
  for (const entry of readdirSync(parent)) {
    const m = new RegExp(`^\\.(?:tmp|old)-${name}-(\\d+)-`).exec(entry);
    if (m && !processAlive(Number(m[1]))) rmSync(join(parent, entry), { recursive: true, force: true });
  }
}

function formatBytes(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(1)} kB`;
}

/** The doc_string written into a model's .onnx files. */
export function modelDescription(spec: ModelSpec): string {
  return `neurolens ${spec.name}: GPT-2 (${spec.config.nLayer} layers, d_model ${spec.config.dModel}), ${spec.recipe}`;
}

function generate(spec: ModelSpec, dir: string): Record<string, number> {
  const parent = dirname(dir);
  mkdirSync(parent, { recursive: true });
  removeStaleTemps(parent, spec.name);
  const unique = `${process.pid}-${Date.now().toString(36)}`;
  const tmp = join(parent, `.tmp-${spec.name}-${unique}`);
  try {
    const { config, weights, planted } = spec.build();
    const onnx: Record<string, () => Uint8Array[]> = {};
    for (const [rel, variant] of Object.entries(spec.files)) {
      onnx[rel] = () => buildGpt2OnnxChunks(config, weights, { variant, description: modelDescription(spec) });
    }
    const files = writeHubModelDir(tmp, {
      config,
      onnx,
      planted: planted ? plantedNeuronInfos() : undefined,
    });
    const stamp: Stamp = { generatorVersion: GENERATOR_VERSION, hash: modelStampHash(spec), files };
    writeFileSync(join(tmp, STAMP_FILE), JSON.stringify(stamp, null, 2) + '\n');

    // Swap into place: move any old directory aside first (rename cannot replace a non-empty dir).
    const old = join(parent, `.old-${spec.name}-${unique}`);
    if (existsSync(dir)) renameSync(dir, old);
    try {
      renameSync(tmp, dir);
    } catch (e) {
      // Another generator run may have just put an identical model in place; keep theirs.
      if (!isUpToDate(dir, spec)) throw e;
    }
    rmSync(old, { recursive: true, force: true });
    return files;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Generates every selected model that is missing or stale; returns one entry per model. */
export function ensureModels(options: EnsureModelsOptions = {}): EnsuredModel[] {
  const publicDir = options.publicDir ?? join(REPO_ROOT, 'public', 'models');
  const cacheDir = options.cacheDir ?? join(REPO_ROOT, '.cache', 'models');
  const log = options.log ?? ((line: string) => console.log(line));
  const known = new Set(MODEL_SPECS.map((s) => s.name));
  for (const name of options.only ?? []) {
    if (!known.has(name)) throw new GenModelsError(`unknown model "${name}" (known: ${[...known].join(', ')})`);
  }
  const selected = MODEL_SPECS.filter((s) =>
    options.only ? options.only.includes(s.name) : !s.bench || options.bench === true,
  );
  const results: EnsuredModel[] = [];
  for (const spec of selected) {
    const dir = join(spec.location === 'public' ? publicDir : cacheDir, spec.name);
    const started = performance.now();
    let status: EnsuredModel['status'] = 'up to date';
    let files: Record<string, number>;
    if (!options.force && isUpToDate(dir, spec)) {
      files = readStamp(dir)!.files;
    } else {
      files = generate(spec, dir);
      status = 'generated';
    }
    const bytes = Object.values(files).reduce((a, b) => a + b, 0);
    const ms = performance.now() - started;
    results.push({ name: spec.name, dir, status, bytes, ms });
    log(`${spec.name.padEnd(18)} ${status.padEnd(10)} ${formatBytes(bytes).padStart(9)}  ${(ms / 1000).toFixed(2)} s  ${dir}`);
  }
  return results;
}

function main(argv: string[]): void {
  const usage = 'usage: npx tsx scripts/gen-models.ts [--bench|--all] [--force]';
  let bench = false;
  let force = false;
  for (const a of argv) {
    if (a === '--bench' || a === '--all') bench = true;
    else if (a === '--force') force = true;
    else if (a === '--help' || a === '-h') {
      console.log(usage);
      return;
    } else {
      console.error(`gen-models: unknown argument "${a}"\n${usage}`);
      process.exitCode = 2;
      return;
    }
  }
  try {
    ensureModels({ bench, force });
  } catch (e) {
    console.error(`gen-models: ${(e as Error).message}`);
    process.exitCode = 1;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main(process.argv.slice(2));
