/**
 * onnxruntime-web's WASM runtime files, which the app serves as files of their own (see
 * vite.config.ts for why they are not bundled). The `onnxruntime-web/webgpu` entry uses the
 * asyncify build for both WebGPU and WASM.
 */
export const ORT_RUNTIME_FILES: readonly string[] = ['ort-wasm-simd-threaded.asyncify.mjs', 'ort-wasm-simd-threaded.asyncify.wasm'];

/** Where they live under the app's root: versioned, so a cached copy never outlives its release. */
export function ortAssetFolder(version: string): string {
  return `ort/${version}/`;
}
