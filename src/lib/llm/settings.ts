/**
 * The LLM endpoint the app talks to, the presets for common servers, and how the settings are
 * kept in the browser. The API key stays in the page: it is saved (in this browser's
 * localStorage) only when the user asks, and is only ever sent to the configured endpoint.
 */
import { SCRIPTED_ENDPOINT, SCRIPTED_MODEL } from '../explain/scripted-llm.ts';

export interface LlmSettings {
  /** Server root including the API version, e.g. https://api.openai.com/v1. */
  baseUrl: string;
  model: string;
  apiKey: string;
  /** Keep the key in this browser across visits. */
  rememberKey: boolean;
}

export interface LlmPreset {
  label: string;
  baseUrl: string;
  /** A model to start from, where the server has a usual one; '' leaves the field to the user. */
  model: string;
  /** What the server needs before a web page may call it, shown with the preset. */
  note: string;
}

export const LLM_PRESETS: readonly LlmPreset[] = [
  {
    label: 'OpenAI',
    baseUrl: 'https://api.openai.com/v1',
    model: 'gpt-4o-mini',
    note: 'needs your API key; gpt-4o and gpt-4.1 models return logprobs, reasoning models do not',
  },
  {
    label: 'Ollama',
    baseUrl: 'http://localhost:11434/v1',
    model: 'llama3.1:8b',
    note: 'start it with OLLAMA_ORIGINS set to this page’s origin; no key needed',
  },
  {
    label: 'vLLM',
    baseUrl: 'http://localhost:8000/v1',
    model: '',
    note: 'start it with --allowed-origins for this page; the model is the one it serves',
  },
  {
    label: 'LM Studio',
    baseUrl: 'http://localhost:1234/v1',
    model: '',
    note: 'turn on CORS in its server settings; the model is the one loaded',
  },
  {
    label: 'Built-in scripted (toy model only)',
    baseUrl: SCRIPTED_ENDPOINT,
    model: SCRIPTED_MODEL,
    note: 'no language model and no network: scripted answers, made from the rules planted in the toy model, for its planted neurons only (to try the steps, and for teaching)',
  },
];

const KEYS = { baseUrl: 'neurolens.llm.baseUrl', model: 'neurolens.llm.model', apiKey: 'neurolens.llm.key' } as const;

/** The saved settings, or OpenAI's preset when nothing is saved. */
export function loadLlmSettings(storage: Storage | undefined = globalThis.localStorage): LlmSettings {
  const savedKey = storage?.getItem(KEYS.apiKey) ?? '';
  return {
    baseUrl: storage?.getItem(KEYS.baseUrl) ?? LLM_PRESETS[0].baseUrl,
    model: storage?.getItem(KEYS.model) ?? LLM_PRESETS[0].model,
    apiKey: savedKey,
    rememberKey: savedKey !== '',
  };
}

/** Saves endpoint and model; the key only when `rememberKey` (otherwise a saved one is removed). */
export function saveLlmSettings(settings: LlmSettings, storage: Storage | undefined = globalThis.localStorage): void {
  storage?.setItem(KEYS.baseUrl, settings.baseUrl.trim());
  storage?.setItem(KEYS.model, settings.model.trim());
  if (settings.rememberKey) storage?.setItem(KEYS.apiKey, settings.apiKey);
  else storage?.removeItem(KEYS.apiKey);
}

/**
 * The settings with `preset`'s endpoint and model. A key belongs to its server: moving to another
 * origin clears it, so that, say, an OpenAI key is never sent to a local server.
 */
export function applyPreset(settings: LlmSettings, preset: LlmPreset): LlmSettings {
  const sameServer = originOf(settings.baseUrl) === originOf(preset.baseUrl);
  return { ...settings, baseUrl: preset.baseUrl, model: preset.model, apiKey: sameServer ? settings.apiKey : '' };
}

function originOf(url: string): string | null {
  try {
    return new URL(url.trim()).origin;
  } catch {
    return null;
  }
}
