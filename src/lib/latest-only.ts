/**
 * Requests that replace one another — loading the record of the neuron on screen, explaining
 * it, comparing it with the model — where only the latest may show its outcome. A result (or an
 * error) that arrives after a newer request began is dropped, so it can never appear under the
 * neuron the user has switched to. Beginning a request also aborts the previous one's signal, so
 * work that can stop (LLM calls, a running explain job) does, instead of spending on a neuron no
 * longer shown.
 *
 * Components keep one `LatestOnly` per kind of request and route every asynchronous update
 * through its tickets; the rule lives here, not in each component.
 */

/** The reason a superseded request's signal aborts with. */
export class SupersededError extends Error {
  constructor() {
    super('superseded by a newer request');
    // Named like fetch's cancellation, so code that treats AbortError as "cancelled" does here too.
    this.name = 'AbortError';
  }
}

export class LatestOnly {
  private latest: LatestTicket | undefined;

  /** Starts a request, superseding the previous one (its signal aborts; its outcome is dropped). */
  begin(): LatestTicket {
    this.supersede();
    const ticket = new LatestTicket(this);
    this.latest = ticket;
    return ticket;
  }

  /** Supersedes the latest request without starting another (e.g. the view went away). */
  supersede(): void {
    const previous = this.latest;
    this.latest = undefined;
    previous?.abort(new SupersededError());
  }

  /** Whether `ticket` is the latest request. */
  isLatest(ticket: LatestTicket): boolean {
    return this.latest === ticket;
  }
}

export class LatestTicket {
  private readonly controller = new AbortController();

  constructor(private readonly owner: LatestOnly) {}

  /** Aborts when this request is superseded or stopped; hand it to the work. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** True while no newer request has begun and the owner has not superseded this one. */
  get isLatest(): boolean {
    return this.owner.isLatest(this);
  }

  /**
   * Stops this request's work (its signal aborts) but keeps it the latest, so its outcome (such
   * as "stopped") still shows: what a Stop button does.
   */
  abort(reason?: unknown): void {
    this.controller.abort(reason);
  }

  /** Runs `update` only while this is the latest request; returns whether it ran. */
  apply(update: () => void): boolean {
    if (!this.isLatest) return false;
    update();
    return true;
  }

  /**
   * Waits for `work` and hands its value to `onValue`, or its error to `onError`, only while this
   * is the latest request. Never rejects: a superseded request's outcome, failure included, is
   * dropped; a failure without `onError` is dropped too.
   */
  async settle<T>(work: Promise<T>, onValue: (value: T) => void, onError?: (error: unknown) => void): Promise<void> {
    let value: T;
    try {
      value = await work;
    } catch (error) {
      if (onError) this.apply(() => onError(error));
      return;
    }
    this.apply(() => onValue(value));
  }
}
