/**
 * Page used by test/browser-opfs.test.ts: starts opfs-worker.ts (the origin private file system's
 * synchronous handles exist only in workers) and hands its report to the test.
 */
(window as unknown as { opfsOutcome: Promise<unknown> }).opfsOutcome = new Promise((resolve) => {
  const worker = new Worker(new URL('./opfs-worker.ts', import.meta.url), { type: 'module' });
  worker.onmessage = (event) => resolve(event.data);
  worker.onerror = (event) => resolve({ error: event.message });
});
document.getElementById('status')!.textContent = 'ready';
