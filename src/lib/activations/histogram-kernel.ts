/**
 * The binning half of the scan's quantile tracking, in WebAssembly: for buffered per-excerpt
 * maxima ([excerpt][neuron] float32), finds each one's histogram bin through a table indexed by
 * the float's top 16 bits, counts it, and reports the few (neuron, excerpt) pairs that need more
 * than a count. In JS this loop was about 0.45 ms per excerpt for GPT-2 small's 36,864 neurons,
 * mostly typed-array bookkeeping around one table lookup and one increment.
 *
 * The state it works on (bin table, bin state, buffered maxima, their priorities) lives in the
 * module's memory, and QuantileTracker uses views of it as its own arrays, so nothing is copied in
 * or out. The module's source is wasm/histogram-kernel.wat (assembled by scripts/gen-wasm.ts). The reported pairs ("events"), in the order met (per neuron, excerpt order):
 * - bin ≥ 0: the excerpt was counted in `bin` and may belong in its sample (its bin is not full,
 *   or its priority is not above the bin's threshold); the caller offers it to the sample, which
 *   checks again against the sample as it is by then;
 * - −1 − n: neuron n's max fell in a table entry an edge passes through; the caller bins and
 *   counts it itself.
 * Bin state is 3 uint32 per (neuron, bin): count, threshold priority, held | slot << 8.
 */
import { compileOnce } from './wasm/compile-once.ts';
import { HISTOGRAM_KERNEL_WASM } from './wasm/wasm-modules.generated.ts';

export interface HistogramKernel {
  /** Bin by float32 top-16 bits (65,536 entries; 0xffff for "several bins"). */
  readonly binByBits: Uint16Array;
  /** 3 per (neuron, bin); see the module comment. */
  readonly binState: Uint32Array;
  /** Buffered maxima, [excerpt][neuron]. */
  readonly pendingMax: Float32Array;
  /** Quantile-stream priority of each buffered excerpt. */
  readonly pendingPriority: Uint32Array;
  /** Pairs (bin or −1 − neuron, buffered excerpt) reported by the last `bin` call. */
  readonly events: Int32Array;
  /**
   * Bins buffered excerpts 0 … count−1 of neurons from … to−1 (at most `groupSize` of them);
   * returns how many event pairs it wrote.
   */
  bin(from: number, to: number, count: number, sampleSize: number): number;
}

/** A kernel for `neurons` × `bins`, buffering up to `pending` excerpts; null without WebAssembly. */
export function createHistogramKernel(neurons: number, bins: number, pending: number, groupSize: number): HistogramKernel | null {
  const module = compiledModule();
  if (!module) return null;
  const align = (n: number) => Math.ceil(n / 16) * 16;
  const table = 0;
  const state = align(table + 65536 * 2);
  const maxima = align(state + neurons * bins * 12);
  const priorities = align(maxima + pending * neurons * 4);
  const events = align(priorities + pending * 4);
  const bytes = align(events + groupSize * pending * 8);
  if (bytes > 2 ** 31) return null;
  const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536) });
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  const binPending = instance.exports.binPending as (...args: number[]) => number;
  const buffer = memory.buffer;
  return {
    binByBits: new Uint16Array(buffer, table, 65536),
    binState: new Uint32Array(buffer, state, neurons * bins * 3),
    pendingMax: new Float32Array(buffer, maxima, pending * neurons),
    pendingPriority: new Uint32Array(buffer, priorities, pending),
    events: new Int32Array(buffer, events, groupSize * pending * 2),
    bin: (from, to, count, sampleSize) => binPending(maxima, neurons, from, to, count, bins, sampleSize, table, state, priorities, events),
  };
}

/** The module (wasm/histogram-kernel.wat), compiled once per realm; null without WebAssembly (the caller then bins in JS). */
const compiledModule = compileOnce(HISTOGRAM_KERNEL_WASM);
