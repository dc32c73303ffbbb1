/** Small analyses of one capture that the UI shows; framework-free so they can be tested. */

export interface LayerRows {
  layer: number;
  /** [tokens, dMlp] row-major. */
  data: Float32Array;
}

export interface NeuronPeak {
  layer: number;
  neuron: number;
  max: number;
  /** Token index of the max. */
  at: number;
}

/** The neurons with the largest single-token activation on this text, largest first. */
export function topNeuronsOfText(layers: LayerRows[], dMlp: number, k: number): NeuronPeak[] {
  const best: NeuronPeak[] = [];
  let floor = -Infinity;
  for (const { layer, data } of layers) {
    const nTokens = data.length / dMlp;
    for (let n = 0; n < dMlp; n++) {
      let max = -Infinity;
      let at = 0;
      for (let t = 0; t < nTokens; t++) {
        const v = data[t * dMlp + n];
        if (v > max) {
          max = v;
          at = t;
        }
      }
      if (best.length < k || max > floor) {
        best.push({ layer, neuron: n, max, at });
        best.sort((a, b) => b.max - a.max);
        if (best.length > k) best.pop();
        floor = best[best.length - 1].max;
      }
    }
  }
  return best;
}

/** The neurons most active on one token, largest first. */
export function topNeuronsOfToken(layers: LayerRows[], dMlp: number, token: number, k: number): { layer: number; neuron: number; value: number }[] {
  const all: { layer: number; neuron: number; value: number }[] = [];
  for (const { layer, data } of layers) {
    for (let n = 0; n < dMlp; n++) all.push({ layer, neuron: n, value: data[token * dMlp + n] });
  }
  return all.sort((a, b) => b.value - a.value).slice(0, k);
}

/** One neuron's activation on every token. */
export function neuronColumn(layers: LayerRows[], dMlp: number, layer: number, neuron: number): Float32Array {
  const rows = layers.find((l) => l.layer === layer);
  if (!rows) return new Float32Array(0);
  const nTokens = rows.data.length / dMlp;
  return Float32Array.from({ length: nTokens }, (_, t) => rows.data[t * dMlp + neuron]);
}
