/**
 * A value that changes and tells its subscribers: the app controllers' state. It follows Svelte's
 * store contract (`subscribe` calls back at once and returns an unsubscribe function), so
 * components read it as `$store`, while the controllers stay framework-free and testable in Node.
 */
export interface Readable<T> {
  subscribe(run: (value: T) => void): () => void;
}

export class Observable<T> implements Readable<T> {
  private readonly subscribers = new Set<(value: T) => void>();

  constructor(private value: T) {}

  get(): T {
    return this.value;
  }

  set(value: T): void {
    if (Object.is(value, this.value)) return;
    this.value = value;
    for (const run of [...this.subscribers]) run(value);
  }

  /** Replaces some fields of an object value (a new object, so `$store` consumers update). */
  patch(this: Observable<T & object>, changes: Partial<T>): void {
    this.set({ ...this.value, ...changes });
  }

  subscribe(run: (value: T) => void): () => void {
    this.subscribers.add(run);
    run(this.value);
    return () => this.subscribers.delete(run);
  }
}
