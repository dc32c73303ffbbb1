/**
 * Node-only: picks onnxruntime-node when it is installed (native CPU, several times faster
 * than WASM) and falls back to onnxruntime-web's WASM build otherwise.
 */
import { cpus } from 'node:os';
import { makeOrtRuntime, type OrtModule, type OrtRuntime } from './ort-runtime.ts';

export type NodeRuntimeChoice = 'auto' | 'node' | 'wasm';

export async function loadNodeRuntime(choice: NodeRuntimeChoice = 'auto', wasmThreads?: number): Promise<OrtRuntime> {
  if (choice !== 'wasm') {
    try {
      const ort = (await import('onnxruntime-node')) as unknown as OrtModule;
      return makeOrtRuntime(ort, ['onnxruntime-node']);
    } catch (err) {
      if (choice === 'node') throw new Error(`onnxruntime-node is not usable here: ${(err as Error).message}`);
    }
  }
  const ort = (await import('onnxruntime-web')) as unknown as OrtModule;
  if (ort.env.wasm) ort.env.wasm.numThreads = wasmThreads ?? Math.min(4, cpus().length);
  return makeOrtRuntime(ort, ['wasm']);
}
