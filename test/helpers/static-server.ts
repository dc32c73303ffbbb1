/**
 * A plain static file server on 127.0.0.1, as a user would serve `dist/`: files from one folder,
 * under a base path (like GitHub Pages' /<repo>/), with ETags and HEAD. With `isolationHeaders`
 * it sends COOP/COEP like a configurable host; without, it behaves like GitHub Pages, where the
 * app's service worker must add them.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { ISOLATION_HEADERS } from '../../src/sw/policies.ts';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.css': 'text/css',
  '.json': 'application/json',
  '.jsonl': 'application/jsonl',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.webmanifest': 'application/manifest+json',
  '.onnx': 'application/octet-stream',
  '.txt': 'text/plain; charset=utf-8',
};

export interface StaticServer {
  url: string;
  server: Server;
  /** Paths requested, in order (after the base path). */
  requests: string[];
  close(): Promise<void>;
}

export async function startStaticServer(root: string, options: { basePath?: string; isolationHeaders?: boolean; port?: number } = {}): Promise<StaticServer> {
  const basePath = options.basePath ?? '/';
  const requests: string[] = [];
  const etags = new Map<string, string>();
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const headers: Record<string, string> = options.isolationHeaders ? { ...ISOLATION_HEADERS } : {};
    if (!url.pathname.startsWith(basePath)) {
      res.writeHead(404, headers).end('not found');
      return;
    }
    let rel = decodeURIComponent(url.pathname.slice(basePath.length));
    requests.push(rel);
    if (rel === '' || rel.endsWith('/')) rel += 'index.html';
    const file = normalize(join(root, rel));
    let size: number;
    try {
      if (!file.startsWith(normalize(root) + sep)) throw new Error('outside');
      const info = statSync(file);
      if (!info.isFile()) throw new Error('not a file');
      size = info.size;
    } catch {
      res.writeHead(404, { ...headers, 'content-type': 'text/plain' }).end('not found');
      return;
    }
    let etag = etags.get(file);
    if (!etag) {
      etag = `"${createHash('sha1').update(readFileSync(file)).digest('hex')}"`;
      etags.set(file, etag);
    }
    Object.assign(headers, { etag, 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-cache' });
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, headers).end();
      return;
    }
    res.writeHead(200, { ...headers, 'content-length': String(size) });
    if (req.method === 'HEAD') res.end();
    else res.end(readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}${basePath}`,
    server,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
