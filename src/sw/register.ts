/**
 * Page side of the service worker (service-worker.ts): registers it, reloads the page once when
 * that is what makes it cross-origin isolated (static hosts that cannot send COOP/COEP), and asks
 * for persistent storage so stored scans and downloaded models are not evicted under pressure.
 */

export interface OfflineStatus {
  /** The page is cross-origin isolated, so WASM runs on several threads. */
  isolated: boolean;
  /** A service worker controls the page: it reloads offline. */
  offlineReady: boolean;
  /** Why the app is not isolated or not offline-ready, in words for the user; null when both are fine. */
  note: string | null;
}

const RELOAD_FLAG = 'neurolens.isolationReload';
/** How long a first visit waits for the service worker before giving up on isolating the page. */
const ACTIVATION_TIMEOUT_MS = 10_000;

/**
 * Resolves with the page's status, or never when the page is about to reload (do not start the
 * app then: it would be thrown away).
 */
export async function startOfflineSupport(serviceWorkerUrl: URL): Promise<OfflineStatus> {
  const isolated = globalThis.crossOriginIsolated === true;
  const container = navigator.serviceWorker;
  if (!container) {
    return {
      isolated,
      offlineReady: false,
      note: isolated ? 'This browser has no service workers: the app will not work offline.' : singleThreadNote('this browser has no service workers'),
    };
  }
  let registration: ServiceWorkerRegistration;
  try {
    registration = await container.register(serviceWorkerUrl, { type: 'module', scope: './' });
  } catch (err) {
    return { isolated, offlineReady: false, note: `The offline service worker could not start (${(err as Error).message}).${isolated ? '' : ' ' + singleThreadNote('')}` };
  }
  if (isolated) {
    sessionStorage.removeItem(RELOAD_FLAG);
    return { isolated, offlineReady: container.controller !== null, note: null };
  }
  // Not isolated: the host sends no COOP/COEP. Once the worker controls this page, a reload gets
  // them from it. Reload at most once per tab session, so a browser that still refuses isolation
  // (or a hard reload, which bypasses service workers) cannot loop.
  if (sessionStorage.getItem(RELOAD_FLAG)) {
    return { isolated, offlineReady: container.controller !== null, note: singleThreadNote('the page could not be isolated') };
  }
  const controlled = container.controller !== null || (await waitForController(container, registration));
  if (!controlled) return { isolated, offlineReady: false, note: singleThreadNote('the service worker did not start in time') };
  sessionStorage.setItem(RELOAD_FLAG, '1');
  location.reload();
  return new Promise<never>(() => {});
}

function waitForController(container: ServiceWorkerContainer, registration: ServiceWorkerRegistration): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ACTIVATION_TIMEOUT_MS);
    container.addEventListener('controllerchange', () => {
      clearTimeout(timer);
      resolve(true);
    });
    // A worker that fails to install never takes control: stop waiting for it.
    const worker = registration.installing ?? registration.waiting;
    worker?.addEventListener('statechange', () => {
      if (worker.state === 'redundant') {
        clearTimeout(timer);
        resolve(false);
      }
    });
  });
}

function singleThreadNote(reason: string): string {
  return `The model runs on one CPU thread${reason ? ` (${reason})` : ''}: this host does not send the cross-origin isolation headers that WASM threads need. WebGPU is not affected.`;
}

/**
 * Asks the browser to keep this site's storage (scans, probes, downloaded models) under storage
 * pressure. Browsers decide by their own rules, often without asking the user.
 */
export async function requestPersistentStorage(): Promise<boolean> {
  const storage = navigator.storage;
  if (!storage?.persist) return false;
  try {
    return (await storage.persisted()) || (await storage.persist());
  } catch {
    return false;
  }
}
