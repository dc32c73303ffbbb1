/**
 * Response headers and the page policy of the production app, in one place: the Vite servers
 * (vite.config.ts), the service worker (which adds them on hosts that cannot) and the tests read
 * them from here.
 */

/**
 * Cross-origin isolation: onnxruntime-web's threaded WASM needs SharedArrayBuffer, which browsers
 * give only to isolated pages. `require-corp` still allows CORS fetches (the hub, LLM endpoints).
 */
export const ISOLATION_HEADERS: Readonly<Record<string, string>> = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

/**
 * The built page's Content-Security-Policy. Scripts come only from the app's own origin (no
 * inline script anywhere); 'wasm-unsafe-eval' lets onnxruntime and the scan kernels compile
 * WebAssembly. The LLM endpoint is chosen at run time, so connect-src cannot name it: any https
 * server, or a local one (Ollama, vLLM, LM Studio, llama.cpp).
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  'connect-src \'self\' https: http://localhost:* http://127.0.0.1:*',
].join('; ');
