/**
 * Browser/worker runtime: onnxruntime-web with WebGPU when the browser has an adapter and
 * WASM otherwise. WASM threads need a cross-origin-isolated page (COOP/COEP headers, or the
 * service worker that adds them: src/sw/service-worker.ts).
 */
import * as ortWeb from 'onnxruntime-web/webgpu';
import { makeOrtRuntime, type BackendName, type OrtModule, type OrtRuntime } from './ort-runtime.ts';
import { ortAssetFolder } from './ort-assets.ts';

export type WebBackendChoice = 'auto' | 'webgpu' | 'wasm';

type GpuAdapterLike = { isFallbackAdapter?: boolean; info?: { isFallbackAdapter?: boolean } };

/**
 * What WebGPU this browser offers: a real GPU, only a software (fallback) adapter such as
 * SwiftShader, or none.
 */
export async function webGpuAdapterKind(): Promise<'hardware' | 'software' | 'none'> {
  const gpu = (globalThis.navigator as { gpu?: { requestAdapter(): Promise<GpuAdapterLike | null> } } | undefined)?.gpu;
  if (!gpu) return 'none';
  try {
    const adapter = await gpu.requestAdapter();
    if (!adapter) return 'none';
    return adapter.info?.isFallbackAdapter || adapter.isFallbackAdapter ? 'software' : 'hardware';
  } catch {
    return 'none';
  }
}

/** True when navigator.gpu hands out an adapter (a software one counts). */
export async function hasWebGpuAdapter(): Promise<boolean> {
  return (await webGpuAdapterKind()) !== 'none';
}

/** WASM threads: up to 4 where the page is cross-origin isolated (SharedArrayBuffer), else 1. */
export function wasmThreadCount(): number {
  const cores = globalThis.navigator?.hardwareConcurrency ?? 1;
  return globalThis.crossOriginIsolated ? Math.max(1, Math.min(4, cores)) : 1;
}

/**
 * `appRoot`: the app's root URL; onnxruntime's WASM files are served under it (vite.config.ts
 * explains why they are not bundled).
 */
export async function loadWebRuntime(choice: WebBackendChoice, appRoot: string | URL): Promise<OrtRuntime> {
  const ort = ortWeb as unknown as OrtModule;
  if (ort.env.wasm) {
    ort.env.wasm.numThreads = wasmThreadCount();
    ort.env.wasm.wasmPaths = new URL(ortAssetFolder(ortWeb.env.versions.web!), appRoot).href;
  }
  ort.env.logLevel = 'error';
  const providers: BackendName[] = [];
  // `auto` skips a software-only adapter: WebGPU emulated on the CPU runs many times slower than
  // WASM (a 16-excerpt scan of a GPT-2-small-shaped model: 301 s against 26.8 s).
  const kind = choice === 'wasm' ? 'none' : await webGpuAdapterKind();
  if (kind === 'hardware' || (kind === 'software' && choice === 'webgpu')) providers.push('webgpu');
  if (choice === 'webgpu' && providers.length === 0) throw new Error('WebGPU was requested but this browser has no WebGPU adapter');
  if (choice !== 'webgpu') providers.push('wasm');
  return makeOrtRuntime(ort, providers);
}
