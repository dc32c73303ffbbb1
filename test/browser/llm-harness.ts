/**
 * Page used by test/browser-llm.test.ts: the real LLM client and logprob simulator running in the
 * browser against a loopback OpenAI-compatible server, with plain results handed back through
 * window.neurolensLlmHarness. The key lives only in this call's client (the harness never stores
 * it), so the test can check that nothing of it is left in the page's storage.
 */
import { createChatClient } from '../../src/lib/llm/client.ts';
import { LogprobSimulator } from '../../src/lib/explain/simulator-logprob.ts';

interface SimulateArgs {
  baseUrl: string;
  apiKey?: string;
  model: string;
  explanation: string;
  tokens: string[];
}

function storageEntries(storage: Storage): [string, string][] {
  return Array.from({ length: storage.length }, (_, i) => {
    const key = storage.key(i)!;
    return [key, storage.getItem(key) ?? ''];
  });
}

/** What the page keeps where scripts could read it later. */
function pageStorage() {
  return { local: storageEntries(localStorage), session: storageEntries(sessionStorage), cookie: document.cookie };
}

async function simulate(args: SimulateArgs) {
  const client = createChatClient({ baseUrl: args.baseUrl, apiKey: args.apiKey, maxRetries: 0 });
  const simulator = new LogprobSimulator(client, { model: args.model });
  const [simulation] = await simulator.simulate(args.explanation, [args.tokens]);
  return { simulation, usage: client.usage(), storage: pageStorage() };
}

/** One plain completion, reporting a failure as {name, message} instead of throwing. */
async function tryComplete(args: { baseUrl: string; apiKey?: string }) {
  const client = createChatClient({ baseUrl: args.baseUrl, apiKey: args.apiKey, maxRetries: 0, timeoutMs: 10_000 });
  try {
    await client.complete({ model: 'fake-model', messages: [{ role: 'user', content: 'hello' }], max_tokens: 5 });
    return { ok: true as const };
  } catch (err) {
    const e = err as Error;
    return { ok: false as const, name: e.name, message: e.message };
  }
}

/** A bare fetch with the given headers (no client), to see what a server's CORS policy lets through. */
async function rawPost(args: { url: string; headers: Record<string, string> }) {
  try {
    const response = await fetch(args.url, { method: 'POST', headers: args.headers, body: '{}' });
    return { ok: true as const, status: response.status };
  } catch (err) {
    return { ok: false as const, name: (err as Error).name, message: (err as Error).message };
  }
}

(window as unknown as { neurolensLlmHarness: unknown }).neurolensLlmHarness = { simulate, tryComplete, rawPost, storage: pageStorage };
document.getElementById('status')!.textContent = 'ready';
