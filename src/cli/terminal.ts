/** Terminal output shared by the long-running commands (scan, merge): durations, counts, a status line, Ctrl-C. */

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 10) return `${seconds.toFixed(1)}s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export const count = (n: number) => n.toLocaleString('en-US');

/** Rewrites one status line on a terminal; silent otherwise. */
export class StatusLine {
  private last = 0;
  private shown = false;
  constructor(private readonly enabled = process.stderr.isTTY === true) {}

  update(text: string, force = false): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.last < 250) return;
    this.last = now;
    this.shown = true;
    process.stderr.write(`\r\x1b[2K${text}`);
  }

  clear(): void {
    if (this.enabled && this.shown) process.stderr.write('\r\x1b[2K');
    this.shown = false;
  }
}

/**
 * Handles Ctrl-C (and SIGTERM): the first aborts `controller` (the command then stops and saves),
 * the second quits at once. Returns a function that removes the handlers.
 */
export function interruptHandler(command: string, action: string, controller: AbortController): () => void {
  const onSignal = () => {
    // On a terminal, end the progress line first.
    const lead = process.stderr.isTTY ? '\n' : '';
    if (controller.signal.aborted) {
      process.stderr.write(`${lead}${command}: quitting without saving\n`);
      process.exit(130);
    }
    process.stderr.write(`${lead}${command}: ${action} (Ctrl-C again to quit at once)…\n`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}
