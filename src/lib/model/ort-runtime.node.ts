/**
 * Node-only: picks onnxruntime-node when it is installed (native CPU, several times faster
 * than WASM) and falls back to onnxruntime-web's WASM build otherwise.
 *
 * With onnxruntime-node, instrumented models are handed over as temporary files (stageModel), so
 * the JavaScript side can let go of its copy before onnxruntime builds its own; the memory peak
 * of loading a model is then about twice the weights (onnxruntime's parse and its tensors) rather
 * than four times. The files go to the system's temporary folder (TMPDIR) and are removed once the
 * session exists; where that folder is in memory (tmpfs), the saving is the process's, not the
 * machine's.
 */
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { makeOrtRuntime, type OrtModule, type OrtRuntime, type RuntimeSessionSettings, type StagedModel } from './ort-runtime.ts';

export type NodeRuntimeChoice = 'auto' | 'node' | 'wasm';

/**
 * onnxruntime-node settings, measured on the GPT-2-small-shaped bench model (2 cores, 400-excerpt
 * scan, two runs each; see bench/scan-bench.ts):
 * - no spinning: idle intra-op threads otherwise compete for the cores with the JavaScript thread
 *   between runs (scan bookkeeping 11.5 → 10.2 ms per excerpt) without a faster forward pass;
 * - no memory patterns: about 100 MB lower peak (1,217 → 1,115 MB), forward pass as fast;
 * - the CPU arena stays on: turning it off saved ~10 MB and slowed the forward pass ~9%.
 */
export const NODE_SESSION_SETTINGS: RuntimeSessionSettings = { allowSpinning: false, enableMemPattern: false };

export async function loadNodeRuntime(choice: NodeRuntimeChoice = 'auto', wasmThreads?: number, session: RuntimeSessionSettings = NODE_SESSION_SETTINGS): Promise<OrtRuntime> {
  if (choice !== 'wasm') {
    try {
      const ort = (await import('onnxruntime-node')) as unknown as OrtModule;
      return makeOrtRuntime(ort, ['onnxruntime-node'], { stageModel, reclaimMemory: fullGarbageCollection(), session });
    } catch (err) {
      if (choice === 'node') throw new Error(`onnxruntime-node is not usable here: ${(err as Error).message}`);
    }
  }
  const ort = (await import('onnxruntime-web')) as unknown as OrtModule;
  if (ort.env.wasm) ort.env.wasm.numThreads = wasmThreads ?? Math.min(4, cpus().length);
  return makeOrtRuntime(ort, ['wasm']);
}

/** Folders staged and not yet removed, removed at exit at the latest. */
const stagedFolders = new Set<string>();
let exitHookInstalled = false;

/** Writes the model (and its external-data files, where the graph expects them) to a new temporary folder. */
async function stageModel(model: Uint8Array, externalData: readonly { path: string; data: Uint8Array }[] = []): Promise<StagedModel> {
  const folder = await mkdtemp(join(tmpdir(), 'neurolens-model-'));
  stagedFolders.add(folder);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const f of stagedFolders) rmSync(f, { recursive: true, force: true });
    });
  }
  const dispose = async () => {
    if (!stagedFolders.delete(folder)) return;
    await rm(folder, { recursive: true, force: true });
  };
  try {
    const path = join(folder, 'model.onnx');
    await writeFile(path, model);
    for (const file of externalData) {
      const target = resolve(folder, file.path);
      if (!target.startsWith(folder + sep)) throw new Error(`the model refers to external data outside its folder: ${file.path}`);
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, file.data);
    }
    return { path, dispose };
  } catch (err) {
    await dispose();
    throw err;
  }
}

/**
 * A full garbage collection. Node does not expose one without --expose-gc; the flag only matters
 * when a context is created, so it is set just for one new context that hands out its `gc`.
 */
function fullGarbageCollection(): (() => void) | undefined {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (typeof existing === 'function') return existing;
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    setFlagsFromString('--no-expose-gc');
    return typeof gc === 'function' ? (gc as () => void) : undefined;
  } catch {
    return undefined;
  }
}
