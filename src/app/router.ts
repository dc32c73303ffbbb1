/**
 * The route in the address bar, kept in step with the app: `navigate` records a new history entry
 * (a change of view, dataset or neuron: Back returns to it), `replace` amends the current one (the
 * probed text as it is typed), and Back/Forward update the route.
 */
import { Observable } from './observable.ts';
import { parseRoute, routeHref, sameRoute, type AppRoute } from './url-state.ts';

export class Router {
  readonly route: Observable<AppRoute>;
  private writing: Promise<void> = Promise.resolve();

  private constructor(initial: AppRoute) {
    this.route = new Observable(initial);
    addEventListener('popstate', () => {
      void parseRoute(location.href).then((route) => this.route.set(route));
    });
  }

  static async start(): Promise<Router> {
    return new Router(await parseRoute(location.href));
  }

  /** Goes to a route (fields not given stay as they are), as a new history entry. */
  navigate(changes: Partial<AppRoute>): void {
    this.write({ ...this.route.get(), ...changes }, 'push');
  }

  /** Amends the current history entry. */
  replace(changes: Partial<AppRoute>): void {
    this.write({ ...this.route.get(), ...changes }, 'replace');
  }

  /** The address of a route, for links and sharing. */
  href(changes: Partial<AppRoute> = {}): Promise<string> {
    return routeHref({ ...this.route.get(), ...changes }, location.href);
  }

  private write(next: AppRoute, mode: 'push' | 'replace'): void {
    const current = this.route.get();
    if (sameRoute(current, next)) return;
    this.route.set(next);
    // Addresses are written in order (packing a long text is asynchronous).
    this.writing = this.writing.then(async () => {
      const href = await routeHref(next, location.href);
      if (href === location.href) return;
      if (mode === 'push') history.pushState(null, '', href);
      else history.replaceState(null, '', href);
    });
  }
}
