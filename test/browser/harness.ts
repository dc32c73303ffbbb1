/**
 * Page used by the browser tests: runs the real core (urlSource → loadModel → onnxruntime-web)
 * and hands plain arrays back to the test through window.neurolensHarness.
 */
import { ActivationCapturer } from '../../src/lib/model/capture.ts';
import { loadModel } from '../../src/lib/model/load-model.ts';
import { hasWebGpuAdapter, loadWebRuntime } from '../../src/lib/model/ort-runtime.web.ts';
import { urlSource } from '../../src/lib/model/url-source.ts';

async function capture(modelName: string, backend: 'webgpu' | 'wasm', texts: string[], onnxPath?: string) {
  const model = await loadModel(urlSource(`/models/${modelName}/`, modelName), { onnxPath });
  const capturer = new ActivationCapturer(model, await loadWebRuntime(backend, location.origin));
  try {
    const results = [];
    for (const text of texts) {
      const c = await capturer.captureText(text);
      results.push({
        backend: c.backend,
        ids: c.tokens.map((t) => t.id),
        layers: [...c.layers].map(([layer, rows]) => ({ layer, rows: rows.map((r) => Array.from(r)) })),
      });
    }
    return results;
  } finally {
    await capturer.dispose();
  }
}

(window as unknown as { neurolensHarness: unknown }).neurolensHarness = {
  capture,
  hasWebGpu: hasWebGpuAdapter,
  crossOriginIsolated: () => globalThis.crossOriginIsolated,
};
document.getElementById('status')!.textContent = 'ready';
