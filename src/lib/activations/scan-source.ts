/**
 * The loaded model as a scan's activation source (scan.ts), for the worker and the CLI alike.
 */
import type { ActivationCapturer, GeluChoice } from '../model/capture.ts';
import type { ActivationSource } from './scan.ts';

/**
 * A source that always returns every scanned layer: a request for fewer (as when collecting the
 * sampled rows) would otherwise compile a second pruned graph. With `releaseModelBytes`, the one
 * graph the scan runs is created first and the model file's bytes are then let go: onnxruntime
 * holds its own copy of the weights, and the ~0.5 GB (GPT-2 small) would otherwise stay in memory
 * for the whole scan; only where the file can be read again (a folder in Node), since asking the
 * capturer for another graph later needs it.
 */
export async function createScanSource(
  capturer: ActivationCapturer,
  layers: number[],
  options: { gelu?: GeluChoice; releaseModelBytes?: boolean } = {},
): Promise<ActivationSource> {
  const gelu = options.gelu ?? 'model';
  await capturer.warmUp(layers, false, { gelu });
  if (options.releaseModelBytes) {
    const model = capturer.model;
    model.onnxBytes = new Uint8Array(0);
    model.externalData = [];
  }
  return async (batch) => (await capturer.runTokens(batch, { layers, gelu })).layers;
}
