/**
 * A stand-in for the Hugging Face hub on 127.0.0.1, speaking the part of its protocol the app
 * uses: `/<owner>/<name>/resolve/<revision>/<path>` with GET, HEAD, Range requests (206), ETags
 * (If-None-Match → 304) and CORS (preflight, exposed ETag/Content-Range). Repositories are folders
 * on disk; a file can be overridden to simulate a new commit on a branch.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { join, normalize, relative, sep } from 'node:path';

export interface HubRequest {
  method: string;
  url: string;
  range?: string;
  authorization?: string;
  ifNoneMatch?: string;
}

export interface FakeHub {
  url: string;
  server: Server;
  requests: HubRequest[];
  /** Replace a file's bytes (all revisions), as a new commit on the branch would. */
  override(repo: string, path: string, bytes: Uint8Array): void;
  /**
   * A file of `size` zero bytes that exists only as a size: HEAD answers it, GET streams zeros
   * slowly (1 MB per 10 ms). For large-download paths without large test files.
   */
  virtual(repo: string, path: string, size: number): void;
  /** Slow every body down: at most this many bytes per 10 ms (undefined: full speed). */
  throttle(bytesPer10ms: number | undefined): void;
  close(): Promise<void>;
}

export interface FakeHubOptions {
  /** Repository id → folder. */
  repos: Record<string, string>;
  /** When set, every request must carry `Authorization: Bearer <token>` (401 otherwise). */
  token?: string;
  /** Answer the hub's tree listing API (`/api/models/<repo>/tree/<revision>`); default true. */
  treeApi?: boolean;
}

/** The hub's tree listing of a folder: files with their sizes, as `?recursive=true` gives it. */
function treeListing(root: string, overrides: Map<string, Uint8Array>, virtual: Map<string, number>, repo: string) {
  const entries: { type: string; path: string; size: number }[] = [];
  const visit = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const full = join(dir, name);
      const path = relative(root, full).split(sep).join('/');
      if (statSync(full).isDirectory()) {
        entries.push({ type: 'directory', path, size: 0 });
        visit(full);
      } else entries.push({ type: 'file', path, size: overrides.get(`${repo}/${path}`)?.length ?? statSync(full).size });
    }
  };
  if (root) visit(root);
  for (const [key, size] of virtual) if (key.startsWith(`${repo}/`)) entries.push({ type: 'file', path: key.slice(repo.length + 1), size });
  return entries;
}

export async function startFakeHub(options: FakeHubOptions): Promise<FakeHub> {
  const requests: HubRequest[] = [];
  const overrides = new Map<string, Uint8Array>();
  const virtualFiles = new Map<string, number>();
  let throttle: number | undefined;
  const cors = {
    'access-control-allow-origin': '*',
    'access-control-allow-headers': 'authorization, range, if-none-match',
    'access-control-allow-methods': 'GET, HEAD, OPTIONS',
    'access-control-expose-headers': 'etag, content-range, content-length, accept-ranges',
  };
  /** "owner/name/path" of a resolve URL. */
  const resolvedKey = (req: IncomingMessage): string | undefined => {
    const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(new URL(req.url!, 'http://x').pathname);
    return m ? `${m[1]}/${decodeURIComponent(m[3])}` : undefined;
  };
  const fileOf = (req: IncomingMessage): Uint8Array | undefined => {
    const key = resolvedKey(req);
    if (!key) return undefined;
    const [owner, name, ...rest] = key.split('/');
    const repo = `${owner}/${name}`;
    const path = rest.join('/');
    const override = overrides.get(key);
    if (override) return override;
    const root = options.repos[repo];
    if (!root) return undefined;
    const file = normalize(join(root, path));
    if (!file.startsWith(normalize(root) + sep)) return undefined;
    try {
      if (!statSync(file).isFile()) return undefined;
      return readFileSync(file);
    } catch {
      return undefined;
    }
  };
  const server = createServer((req, res) => {
    if (req.method === 'OPTIONS') {
      res.writeHead(204, cors).end();
      return;
    }
    requests.push({
      method: req.method!,
      url: req.url!,
      range: req.headers.range,
      authorization: req.headers.authorization,
      ifNoneMatch: req.headers['if-none-match'] as string | undefined,
    });
    if (options.token && req.headers.authorization !== `Bearer ${options.token}`) {
      res.writeHead(401, cors).end('unauthorized');
      return;
    }
    const tree = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/[^/?]+/.exec(req.url!);
    if (tree) {
      const repo = tree[1];
      const known = repo in options.repos || [...virtualFiles.keys()].some((k) => k.startsWith(`${repo}/`));
      if (options.treeApi === false || !known) {
        res.writeHead(404, cors).end('not found');
        return;
      }
      res.writeHead(200, { ...cors, 'content-type': 'application/json' }).end(JSON.stringify(treeListing(options.repos[repo] ?? '', overrides, virtualFiles, repo)));
      return;
    }
    const virtualSize = virtualFiles.get(resolvedKey(req) ?? '');
    if (virtualSize !== undefined) {
      const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      const length = range ? Math.min(virtualSize, Number(range[2]) + 1) - Number(range[1]) : virtualSize;
      const headers: Record<string, string> = { ...cors, etag: `"virtual-${virtualSize}"`, 'content-length': String(length), 'accept-ranges': 'bytes' };
      if (range) headers['content-range'] = `bytes ${range[1]}-${Number(range[1]) + length - 1}/${virtualSize}`;
      res.writeHead(range ? 206 : 200, headers);
      if (req.method === 'HEAD') return void res.end();
      const chunk = new Uint8Array(1 << 20);
      let sent = 0;
      const timer = setInterval(() => {
        if (res.destroyed || sent >= length) {
          clearInterval(timer);
          res.end();
          return;
        }
        const n = Math.min(chunk.length, length - sent);
        res.write(chunk.subarray(0, n));
        sent += n;
      }, 10);
      res.on('close', () => clearInterval(timer));
      return;
    }
    const body = fileOf(req);
    if (!body) {
      res.writeHead(404, cors).end('Entry not found');
      return;
    }
    const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"`;
    const headers: Record<string, string> = { ...cors, etag, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, headers).end();
      return;
    }
    let start = 0;
    let end = body.length;
    let status = 200;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range) {
      start = Number(range[1]);
      end = range[2] ? Math.min(body.length, Number(range[2]) + 1) : body.length;
      status = 206;
      headers['content-range'] = `bytes ${start}-${end - 1}/${body.length}`;
    }
    headers['content-length'] = String(end - start);
    res.writeHead(status, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const slice = body.subarray(start, end);
    if (!throttle) {
      res.end(slice);
      return;
    }
    const step = throttle;
    let offset = 0;
    const timer = setInterval(() => {
      if (res.destroyed) return clearInterval(timer);
      res.write(slice.subarray(offset, offset + step));
      offset += step;
      if (offset >= slice.length) {
        clearInterval(timer);
        res.end();
      }
    }, 10);
    res.on('close', () => clearInterval(timer));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    server,
    requests,
    override: (repo, path, bytes) => overrides.set(`${repo}/${path}`, bytes),
    virtual: (repo, path, size) => virtualFiles.set(`${repo}/${path}`, size),
    throttle: (b) => (throttle = b),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
