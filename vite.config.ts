import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { defineConfig, defaultClientConditions, type Plugin } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { VitePWA } from 'vite-plugin-pwa';
import { CONTENT_SECURITY_POLICY, ISOLATION_HEADERS } from './src/sw/policies.ts';
import { ORT_RUNTIME_FILES, ortAssetFolder } from './src/lib/model/ort-assets.ts';

const require = createRequire(import.meta.url);
// The package exports no package.json; its main entry sits in dist/.
const ortPackage = dirname(dirname(require.resolve('onnxruntime-web')));
const ortVersion: string = JSON.parse(readFileSync(join(ortPackage, 'package.json'), 'utf8')).version;
const ORT_FOLDER = ortAssetFolder(ortVersion);

/**
 * onnxruntime-web's WASM glue (.mjs) and binary (.wasm), served as files of their own under
 * `ort/<version>/` instead of being bundled. Bundled, the glue starts its pthread workers from
 * `import.meta.url`, which is then our model worker's chunk: the threads run our worker code and
 * never start, so the production build hung on "Loading…". Served apart, the threads start from
 * the glue's own URL. The version in the path lets the service worker cache them for good.
 */
function ortRuntimeFiles(): Plugin {
  return {
    name: 'neurolens-ort-runtime-files',
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        const url = new URL(req.url ?? '/', 'http://localhost');
        const prefix = `${server.config.base}${ORT_FOLDER}`;
        const file = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) : '';
        if (!ORT_RUNTIME_FILES.includes(file)) return next();
        res.setHeader('content-type', file.endsWith('.wasm') ? 'application/wasm' : 'text/javascript');
        for (const [name, value] of Object.entries(ISOLATION_HEADERS)) res.setHeader(name, value);
        res.end(readFileSync(join(ortPackage, 'dist', file)));
      });
    },
    generateBundle() {
      for (const file of ORT_RUNTIME_FILES) {
        this.emitFile({ type: 'asset', fileName: `${ORT_FOLDER}${file}`, source: readFileSync(join(ortPackage, 'dist', file)) });
      }
    },
  };
}

/** The production page's Content-Security-Policy, as a <meta> tag (static hosts cannot set headers). */
function contentSecurityPolicy(): Plugin {
  return {
    name: 'neurolens-content-security-policy',
    apply: 'build',
    transformIndexHtml: () => [{ tag: 'meta', attrs: { 'http-equiv': 'Content-Security-Policy', content: CONTENT_SECURITY_POLICY }, injectTo: 'head' }],
  };
}

/**
 * `--mode test-harness` builds the browser tests' harness pages (test/browser/*.html) instead of
 * the app, with the same bundling, so library code is tested as users get it; no service worker.
 */
export const HARNESS_MODE = 'test-harness';
const HARNESS_PAGES = 'test/browser';

function harnessBuild() {
  const pages = readdirSync(HARNESS_PAGES).filter((f) => f.endsWith('.html'));
  return {
    outDir: '.cache/test-harness',
    emptyOutDir: true,
    rollupOptions: { input: Object.fromEntries(pages.map((p) => [p.replace(/\.html$/, ''), join(HARNESS_PAGES, p)])) },
  };
}

export default defineConfig(({ mode }) => ({
  // Relative asset URLs: the same dist/ works at a domain's root and under a sub-path (GitHub Pages).
  base: './',
  plugins: [
    svelte(),
    ortRuntimeFiles(),
    contentSecurityPolicy(),
    mode !== HARNESS_MODE &&
      VitePWA({
        strategies: 'injectManifest',
        srcDir: 'src/sw',
        filename: 'service-worker.ts',
        // Registered by src/sw/register.ts, which also handles cross-origin isolation.
        injectRegister: false,
        manifest: {
          name: 'Neurolens',
          short_name: 'Neurolens',
          description: 'What does each neuron of GPT-2 do? Capture, explain and score MLP neurons in your browser.',
          theme_color: '#27325f',
          background_color: '#f6f7fb',
          display: 'standalone',
          icons: [{ src: 'favicon.svg', sizes: 'any', type: 'image/svg+xml', purpose: 'any' }],
        },
        injectManifest: {
          // The app shell only: onnxruntime's wasm (27 MB) and the models are cached at run time.
          globPatterns: ['**/*.{js,css,html,svg,webmanifest}'],
          globIgnores: ['ort/**', 'models/**', 'corpus/**'],
        },
        devOptions: { enabled: false },
      }),
  ],
  resolve: {
    // onnxruntime-web without its bundled wasm glue: it loads the files under ort/ instead (above).
    conditions: ['onnxruntime-web-use-extern-wasm', ...defaultClientConditions],
  },
  server: { headers: ISOLATION_HEADERS, host: '127.0.0.1' },
  preview: { headers: ISOLATION_HEADERS, host: '127.0.0.1' },
  worker: { format: 'es' },
  optimizeDeps: { exclude: ['onnxruntime-web'] },
  build: { target: 'es2022', chunkSizeWarningLimit: 2000, ...(mode === HARNESS_MODE ? harnessBuild() : {}) },
}));
