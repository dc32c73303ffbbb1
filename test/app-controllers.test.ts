/**
 * The app's framework-free controllers in Node: the address-bar state (round trips, long texts
 * packed into the fragment, no secrets) and the live probe's scheduling (debounce, at most one run
 * in flight, stale results dropped, history kept once a text settles). The capture function here is
 * a deterministic stand-in for the worker, which the browser tests exercise for real.
 */
import { describe, expect, it, vi } from 'vitest';
import { INLINE_TEXT_LIMIT, parseRoute, routeHref, type AppRoute } from '../src/app/url-state.ts';
import { ProbeController } from '../src/app/probe-controller.ts';
import { ModelLoader } from '../src/app/model-loader.ts';
import type { CaptureReply } from '../src/worker/protocol.ts';
import type { Probe, ProbeInput } from '../src/lib/store/store-types.ts';

const BASE = 'https://example.org/neurolens/';

describe('address-bar state', () => {
  it('round-trips every field, with short text inline and long text packed into the fragment', async () => {
    const short: AppRoute = { view: 'neuron', model: 'Xenova/gpt2', dtype: 'fp16', dataset: 'scan-1', neuron: { layer: 5, neuron: 1234 }, text: 'In 1999 "cats" & dogs 🦊' };
    const href = await routeHref(short, BASE);
    expect(href.startsWith(`${BASE}?view=neuron&model=Xenova%2Fgpt2&dtype=fp16&dataset=scan-1&neuron=5%3A1234&text=`)).toBe(true);
    expect(await parseRoute(href)).toEqual(short);

    const long = 'The quick brown fox jumps over the lazy dog. '.repeat(200) + '日本語のテキスト';
    expect(long.length).toBeGreaterThan(INLINE_TEXT_LIMIT);
    const packed = await routeHref({ view: 'probe', text: long }, BASE);
    const url = new URL(packed);
    expect(url.searchParams.has('text')).toBe(false);
    expect(url.hash).toMatch(/^#text=[A-Za-z0-9_-]+$/);
    expect(packed.length).toBeLessThan(long.length / 10);
    expect((await parseRoute(packed)).text).toBe(long);
  });

  it('falls back to the probe view on unknown views and ignores malformed neurons and fragments', async () => {
    expect(await parseRoute(`${BASE}?view=nonsense&neuron=5-3`)).toEqual({ view: 'probe' });
    expect(await parseRoute(`${BASE}?view=explorer#text=%%%`)).toEqual({ view: 'explorer' });
  });
});

function fakeReply(text: string): CaptureReply {
  const words = text.split(/(?=\s)/);
  let at = 0;
  const tokens = words.map((w, i) => ({ id: i, text: w, start: at, end: (at += w.length) }));
  return { tokens, backend: 'wasm', windows: 1, dMlp: 2, layers: [{ layer: 0, data: new Float32Array(tokens.length * 2).fill(text.length) }], runMs: 1 };
}

function harness(options: { runMs?: number; failOn?: string } = {}) {
  const runs: string[] = [];
  const stored: Probe[] = [];
  let release: (() => void) | undefined;
  const controller = new ProbeController({
    model: () => 'toy-planted',
    debounceMs: 30,
    settleMs: 60,
    capture: async (text) => {
      runs.push(text);
      await new Promise<void>((resolve) => {
        release = resolve;
        setTimeout(resolve, options.runMs ?? 20);
      });
      if (text === options.failOn) throw Object.assign(new Error('too long for this model'), { name: 'TextTooLongError' });
      return fakeReply(text);
    },
    history: {
      put: async (input: ProbeInput) => {
        const probe = { ...input, id: `p${stored.length}`, createdAt: stored.length } as Probe;
        stored.push(probe);
        return probe;
      },
      list: async () => [...stored],
      delete: async (id) => stored.splice(stored.findIndex((p) => p.id === id), 1).length === 1,
    },
  });
  return { controller, runs, stored, release: () => release?.() };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('live probe', () => {
  it('runs once typing pauses, not on every keystroke', async () => {
    const { controller, runs } = harness();
    for (const prefix of ['I', 'In', 'In 1', 'In 19', 'In 1999']) {
      controller.setText(prefix);
      await sleep(5);
    }
    expect(controller.state.get().status).toBe('waiting');
    await vi.waitFor(() => expect(controller.state.get().status).toBe('idle'));
    expect(runs).toEqual(['In 1999']);
    expect(controller.state.get().result?.text).toBe('In 1999');
  });

  it('keeps one run in flight, drops a result whose text has changed, and runs the newest text next', async () => {
    const { controller, runs } = harness({ runMs: 150 });
    controller.setText('first text');
    controller.runNow();
    await sleep(20);
    controller.setText('second');
    await sleep(50);
    controller.setText('second text');
    await sleep(50); // the first run is still going: nothing else has started
    expect(runs).toEqual(['first text']);
    // The first run's result is stale and dropped; the newest text runs next.
    await vi.waitFor(() => expect(runs).toEqual(['first text', 'second text']));
    expect(controller.state.get().result).toBeNull();
    await vi.waitFor(() => expect(controller.state.get().result?.text).toBe('second text'));
  });

  it('clears the selected token when the tokens change, keeps it when they do not', async () => {
    const { controller } = harness();
    const idle = () => vi.waitFor(() => expect(controller.state.get().status).toBe('idle'));
    controller.runText('one two three');
    await idle();
    controller.selectToken(2);
    controller.runText('one two three');
    await idle();
    expect(controller.state.get().selectedToken).toBe(2);
    controller.runText('four');
    await idle();
    expect(controller.state.get().selectedToken).toBeNull();
  });

  it('says an explicit run of empty text is empty, and offers windows for over-long text; old results go', async () => {
    const { controller } = harness({ failOn: 'far too long' });
    controller.runText('fine');
    await vi.waitFor(() => expect(controller.state.get().result?.text).toBe('fine'));
    controller.runText('far too long');
    await vi.waitFor(() => expect(controller.state.get().error).not.toBeNull());
    expect(controller.state.get().result).toBeNull();
    expect(controller.state.get().error).toEqual({ message: 'too long for this model', tooLong: true });
    controller.setText('  ');
    expect(controller.state.get().error).toBeNull();
    controller.runNow();
    expect(controller.state.get().error?.message).toMatch(/the text is empty/);
  });

  it('keeps a probe in the history once its text settles, once per text, and shows it again without a run', async () => {
    const { controller, runs, stored } = harness();
    controller.setText('settled text');
    await vi.waitFor(() => expect(stored.map((p) => p.text)).toEqual(['settled text']));
    expect(stored[0]).toMatchObject({ model: 'toy-planted', tokens: ['settled', ' text'], tokenIds: [0, 1], spans: [{ start: 0, end: 7 }, { start: 7, end: 12 }] });
    controller.runNow();
    await sleep(100);
    expect(stored).toHaveLength(1);
    controller.setText('other');
    await vi.waitFor(() => expect(stored).toHaveLength(2));
    const before = runs.length;
    controller.showHistory(stored[0]);
    expect(controller.state.get().result).toMatchObject({ text: 'settled text', historyId: 'p0' });
    expect(controller.state.get().result?.layers[0].data[0]).toBe(12);
    await sleep(100);
    expect(runs.length).toBe(before);
    await controller.deleteHistory('p0');
    expect(controller.state.get().history.map((p) => p.id)).toEqual(['p1']);
  });
});

describe('model loader', () => {
  type Req = import('../src/worker/protocol.ts').ModelRequest;
  const summaryOf = (label: string) => ({ label }) as unknown as import('../src/worker/protocol.ts').ModelSummary;
  function setup(bytes: (r: Req) => number | null = () => null) {
    const storage = new Map<string, string>();
    const loads: string[] = [];
    const gates = new Map<string, () => void>();
    const loader = new ModelLoader({
      storage: { getItem: (k) => storage.get(k) ?? null, setItem: (k, v) => void storage.set(k, v), removeItem: (k) => void storage.delete(k) },
      downloadBytes: async (r) => bytes(r),
      load: (request, _backend, { signal }) => {
        const label = request.kind === 'hub' ? request.repoId : request.kind === 'bundled' ? request.name : 'files';
        loads.push(label);
        return new Promise((resolve, reject) => {
          gates.set(label, () => resolve(summaryOf(label)));
          signal.addEventListener('abort', () => reject(signal.reason));
        });
      },
    });
    return { loader, storage, loads, open: (label: string) => gates.get(label)?.() };
  }
  const hub = (repoId: string): Req => ({ kind: 'hub', repoId, dtype: 'auto', token: 'hf_secret' });

  it('remembers the model last loaded (never its token) and brings it back at the next start', async () => {
    const first = setup();
    const done = first.loader.request(hub('Xenova/gpt2'), 'auto');
    await vi.waitFor(() => expect(first.loads).toEqual(['Xenova/gpt2']));
    first.open('Xenova/gpt2');
    await done;
    expect([...first.storage.values()].join()).not.toContain('hf_secret');
    const next = setup();
    for (const [k, v] of first.storage) next.storage.set(k, v);
    const restoring = next.loader.restore({ kind: 'bundled', name: 'toy-planted' }, 'auto');
    await vi.waitFor(() => expect(next.loads).toEqual(['Xenova/gpt2']));
    next.open('Xenova/gpt2');
    await restoring;
    expect(next.loader.state.get().summary?.label).toBe('Xenova/gpt2');
  });

  it('offers a download a reload interrupted, and a request made while restoring is not overridden', async () => {
    const first = setup();
    void first.loader.request(hub('Xenova/gpt2-large'), 'auto');
    await vi.waitFor(() => expect(first.loads).toEqual(['Xenova/gpt2-large']));
    // The page goes away here: the next start finds the download unfinished.
    const next = setup((r) => (r.kind === 'hub' ? 3.1e9 : null));
    for (const [k, v] of first.storage) next.storage.set(k, v);
    next.storage.set('neurolens.model', JSON.stringify({ request: { kind: 'bundled', name: 'tiny-random' }, backend: 'auto' }));
    const restoring = next.loader.restore({ kind: 'bundled', name: 'toy-planted' }, 'auto');
    await vi.waitFor(() => expect(next.loads).toEqual(['tiny-random']));
    expect(next.loader.state.get().interrupted?.request).toMatchObject({ kind: 'hub', repoId: 'Xenova/gpt2-large' });
    // Resumed while the last model is still loading: that load stops, and restoring gives way.
    await next.loader.resumeInterrupted();
    await restoring;
    expect(next.loads).toEqual(['tiny-random']);
    expect(next.loader.state.get().phase).toBe('confirm');
    expect(next.loader.state.get().confirm).toEqual({ label: 'Xenova/gpt2-large', bytes: 3.1e9 });
    next.loader.cancel();
    expect(next.loader.state.get().phase).toBe('idle');
    expect([...next.storage.keys()]).not.toContain('neurolens.download');
  });
});
