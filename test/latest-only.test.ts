import { describe, expect, it } from 'vitest';
import { LatestOnly, SupersededError } from '../src/lib/latest-only.ts';

/** A promise settled from outside, to let answers arrive in any order. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

describe('LatestOnly', () => {
  it('shows only the latest answer, whatever order the answers arrive in', async () => {
    const latest = new LatestOnly();
    const shown: string[] = [];
    const first = deferred<string>();
    const second = deferred<string>();
    const a = latest.begin().settle(first.promise, (v) => shown.push(v));
    const b = latest.begin().settle(second.promise, (v) => shown.push(v));
    second.resolve('neuron 2');
    first.resolve('neuron 1'); // late: the user has moved on
    await Promise.all([a, b]);
    expect(shown).toEqual(['neuron 2']);
  });

  it("drops a superseded request's error too, and aborts its signal with SupersededError", async () => {
    const latest = new LatestOnly();
    const errors: unknown[] = [];
    const old = latest.begin();
    const work = deferred<string>();
    const settled = old.settle(work.promise, () => {}, (e) => errors.push(e));
    expect(old.signal.aborted).toBe(false);
    const next = latest.begin();
    expect(old.signal.aborted).toBe(true);
    expect(old.signal.reason).toBeInstanceOf(SupersededError);
    expect((old.signal.reason as Error).name).toBe('AbortError');
    expect(old.isLatest).toBe(false);
    expect(next.isLatest).toBe(true);
    work.reject(new Error('cancelled'));
    await settled;
    expect(errors).toEqual([]);
  });

  it('a stopped request stays the latest, so its outcome still shows; supersede() drops it', async () => {
    const latest = new LatestOnly();
    const ticket = latest.begin();
    ticket.abort('user pressed stop');
    expect(ticket.signal.aborted).toBe(true);
    expect(ticket.isLatest).toBe(true);
    const errors: unknown[] = [];
    await ticket.settle(Promise.reject(new Error('stopped')), () => {}, (e) => errors.push((e as Error).message));
    expect(errors).toEqual(['stopped']);

    latest.supersede();
    expect(ticket.isLatest).toBe(false);
    expect(ticket.apply(() => errors.push('late'))).toBe(false);
    expect(errors).toEqual(['stopped']);
  });
});
