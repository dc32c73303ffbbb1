/** Samples the process's resident memory to report its peak (the OS's own high-water mark when available). */
import { readFileSync } from 'node:fs';

export class MemorySampler {
  private peak = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(intervalMs = 25) {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  private sample(): void {
    this.peak = Math.max(this.peak, process.memoryUsage().rss);
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }

  /** Peak resident set in MB: Linux's VmHWM when readable, else the sampled maximum. */
  peakMB(): number {
    try {
      const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
      if (hwm) return Math.round(Number(hwm[1]) / 1024);
    } catch {
      // not Linux
    }
    return Math.round(this.peak / 2 ** 20);
  }
}
