/**
 * Browser/worker runtime: onnxruntime-web with WebGPU when the browser has an adapter and
 * WASM otherwise. WASM threads need a cross-origin-isolated page (COOP/COEP headers).
 */
import * as ortWeb from 'onnxruntime-web/webgpu';
import { makeOrtRuntime, type BackendName, type OrtModule, type OrtRuntime } from './ort-runtime.ts';

export type WebBackendChoice = 'auto' | 'webgpu' | 'wasm';

/** True when navigator.gpu hands out an adapter (a software one counts). */
export async function hasWebGpuAdapter(): Promise<boolean> {
  const gpu = (globalThis.navigator as { gpu?: { requestAdapter(): Promise<unknown> } } | undefined)?.gpu;
  if (!gpu) return false;
  try {
    return (await gpu.requestAdapter()) !== null;
  } catch {
    return false;
  }
}

export async function loadWebRuntime(choice: WebBackendChoice = 'auto'): Promise<OrtRuntime> {
  const ort = ortWeb as unknown as OrtModule;
  if (ort.env.wasm) {
    const cores = globalThis.navigator?.hardwareConcurrency ?? 1;
    ort.env.wasm.numThreads = globalThis.crossOriginIsolated ? Math.max(1, Math.min(4, cores)) : 1;
  }
  const providers: BackendName[] = [];
  if (choice !== 'wasm' && (await hasWebGpuAdapter())) providers.push('webgpu');
  if (choice === 'webgpu' && providers.length === 0) throw new Error('WebGPU was requested but this browser has no WebGPU adapter');
  if (choice !== 'webgpu') providers.push('wasm');
  return makeOrtRuntime(ort, providers);
}
