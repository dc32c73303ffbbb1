/**
 * How the app shows things, kept in this browser: activation as colour with a bar of its height
 * (`bars`, the default) or also as a number (`numbers`), and presentation mode (large type, for a
 * projector).
 */
import { Observable } from './observable.ts';

export type ActivationDisplay = 'bars' | 'numbers';

export interface DisplaySettings {
  activations: ActivationDisplay;
  presentation: boolean;
}

const KEY = 'neurolens.display';

export function displaySettings(storage: Pick<Storage, 'getItem' | 'setItem'> | undefined = globalThis.localStorage): Observable<DisplaySettings> {
  let saved: Partial<DisplaySettings> = {};
  try {
    saved = JSON.parse(storage?.getItem(KEY) ?? '{}') as Partial<DisplaySettings>;
  } catch {
    // A damaged entry: start from the defaults.
  }
  const settings = new Observable<DisplaySettings>({
    activations: saved.activations === 'numbers' ? 'numbers' : 'bars',
    presentation: saved.presentation === true,
  });
  settings.subscribe((s) => {
    try {
      storage?.setItem(KEY, JSON.stringify(s));
    } catch {
      // Storage unavailable: the setting lasts for this visit.
    }
  });
  return settings;
}
