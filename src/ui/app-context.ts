/** The app controller, handed to every component through Svelte's context (it never changes). */
import { getContext, setContext } from 'svelte';
import type { AppController } from '../app/app-controller.ts';

const KEY = Symbol('neurolens-app');

export function provideApp(app: AppController): void {
  setContext(KEY, app);
}

export function useApp(): AppController {
  const app = getContext<AppController | undefined>(KEY);
  if (!app) throw new Error('useApp() outside the Neurolens app');
  return app;
}
