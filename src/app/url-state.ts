/**
 * What the address bar holds: the view, the model, the dataset, the neuron and the probed text,
 * so that Back and Forward work and a shared link opens the same view on another machine that has
 * the same model. Never a key or a token.
 *
 * The app is a static site, so everything lives in the query string and the fragment of its one
 * page: `?view=neuron&model=toy-planted&dataset=…&neuron=0:37&text=…`. A text up to
 * INLINE_TEXT_LIMIT characters is kept inline; a longer one is compressed into the fragment
 * (`#text=<deflate, base64url>`), which browsers never send to the server.
 */

export const VIEWS = ['probe', 'neuron', 'explorer', 'datasets', 'settings'] as const;
export type ViewName = (typeof VIEWS)[number];

export interface NeuronRef {
  layer: number;
  neuron: number;
}

export interface AppRoute {
  view: ViewName;
  /** The model's label: a bundled model's name or a hub repository id. */
  model?: string;
  /** The model's variant, when it is not the default one. */
  dtype?: string;
  /** A dataset (scan or import) id in this browser's storage. */
  dataset?: string;
  neuron?: NeuronRef;
  text?: string;
}

export const INLINE_TEXT_LIMIT = 300;

export function parseNeuronRef(value: string | null | undefined): NeuronRef | undefined {
  const m = /^(\d+):(\d+)$/.exec(value?.trim() ?? '');
  return m ? { layer: Number(m[1]), neuron: Number(m[2]) } : undefined;
}

export const formatNeuronRef = (n: NeuronRef): string => `${n.layer}:${n.neuron}`;

/** The route an address describes (unknown or missing parts fall back to the probe view). */
export async function parseRoute(href: string): Promise<AppRoute> {
  const url = new URL(href);
  const q = url.searchParams;
  const view = (VIEWS as readonly string[]).includes(q.get('view') ?? '') ? (q.get('view') as ViewName) : 'probe';
  const route: AppRoute = { view };
  const model = q.get('model');
  if (model) route.model = model;
  const dtype = q.get('dtype');
  if (dtype) route.dtype = dtype;
  const dataset = q.get('dataset');
  if (dataset) route.dataset = dataset;
  const neuron = parseNeuronRef(q.get('neuron'));
  if (neuron) route.neuron = neuron;
  const fragment = new URLSearchParams(url.hash.slice(1));
  const packed = fragment.get('text');
  if (packed) route.text = await unpackText(packed).catch(() => undefined);
  else if (q.has('text')) route.text = q.get('text')!;
  return route;
}

/** The address of a route, relative to the app's page `base` (query and fragment replaced). */
export async function routeHref(route: AppRoute, base: string): Promise<string> {
  const url = new URL(base);
  url.search = '';
  url.hash = '';
  const q = url.searchParams;
  q.set('view', route.view);
  if (route.model) q.set('model', route.model);
  if (route.dtype) q.set('dtype', route.dtype);
  if (route.dataset) q.set('dataset', route.dataset);
  if (route.neuron) q.set('neuron', formatNeuronRef(route.neuron));
  if (route.text !== undefined && route.text !== '') {
    if (route.text.length <= INLINE_TEXT_LIMIT) q.set('text', route.text);
    else url.hash = `text=${await packText(route.text)}`;
  }
  return url.href;
}

/** Two routes that give the same address. */
export function sameRoute(a: AppRoute, b: AppRoute): boolean {
  return (
    a.view === b.view &&
    a.model === b.model &&
    a.dtype === b.dtype &&
    a.dataset === b.dataset &&
    a.neuron?.layer === b.neuron?.layer &&
    a.neuron?.neuron === b.neuron?.neuron &&
    (a.text ?? '') === (b.text ?? '')
  );
}

async function packText(text: string): Promise<string> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream('deflate-raw'));
  const bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

async function unpackText(packed: string): Promise<string> {
  const binary = atob(packed.replace(/-/g, '+').replace(/_/g, '/'));
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate-raw'));
  return new Response(stream).text();
}
