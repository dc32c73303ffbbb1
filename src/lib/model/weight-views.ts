/**
 * What a neuron reads and writes according to the weights alone (the direct path), for neuron n
 * of layer L:
 *
 * - Output tokens: score_t = Σ_d W_out[n, d] · γ_f[d] · W_U[d, t] (W_U as the LM head's
 *   [d_model, vocab] weight: the transpose of the embedding in GPT-2). The most positive are the
 *   tokens the neuron promotes, the most negative those it suppresses. ln_f's bias and centring
 *   are left out, as in the usual direct-logit view.
 * - Input tokens: score_t = Σ_d LN₂(W_E[t])_d · W_in[d, n], with layer L's ln_2 in full
 *   (γ₂ ⊙ (x − mean(x)) / sqrt(var(x) + ε) + β₂, biased variance) applied to the token embedding
 *   alone (no position, no earlier layers) and the up-projection's bias left out.
 * - Related neurons: cosine similarity of this neuron's W_out row with the W_in columns of the next
 *   layer's neurons (downstream), and of the previous layer's W_out rows with this neuron's W_in
 *   column (upstream). Ranked by absolute value, since a strongly negative cosine (one neuron
 *   writes against what the other reads) is as strong a connection; the signed cosine is reported.
 *
 * Everything is float64, streaming over the weights one row or column at a time (model-weights.ts).
 */
import type { ModelWeights, WeightMatrix } from './model-weights.ts';
import { checkNeuronRef } from './neuron-edits.ts';
import { topIndexes } from './top-indexes.ts';

export interface TokenScore {
  id: number;
  /** Display string of the token. */
  token: string;
  value: number;
}

export interface RelatedNeuron {
  layer: number;
  neuron: number;
  /** Cosine similarity of the writer's W_out row and the reader's W_in column. */
  value: number;
}

export interface NeuronWeightViews {
  layer: number;
  neuron: number;
  /** Tokens whose embedding most excites the neuron, largest first. */
  inputTokens: TokenScore[];
  outputTokens: {
    /** Largest direct effect on the logits first. */
    promoted: TokenScore[];
    /** Most negative first. */
    suppressed: TokenScore[];
  };
  related: {
    /** Neurons of layer L − 1 (none for layer 0), strongest first. */
    upstream: RelatedNeuron[];
    /** Neurons of layer L + 1 (none for the last layer), strongest first. */
    downstream: RelatedNeuron[];
  };
}

export interface WeightViewOptions {
  /** Entries per list (default 10). */
  top?: number;
}

/** Per line (row or column) of a matrix: its dot product with a vector, its sum and its sum of squares. */
export interface LineSums {
  dot: Float64Array;
  sum: Float64Array;
  sumSquares: Float64Array;
}

/**
 * For every row (`along` 'rows', v of length cols) or every column ('columns', v of length rows)
 * of `m`: dot(line, v), Σ line, Σ line². One pass over the matrix in its storage order.
 */
export function lineSums(m: WeightMatrix, v: Float64Array, along: 'rows' | 'columns'): LineSums {
  const lines = along === 'rows' ? m.rows : m.cols;
  const length = along === 'rows' ? m.cols : m.rows;
  if (v.length !== length) throw new RangeError(`vector of ${v.length} values for lines of ${length}`);
  const dot = new Float64Array(lines);
  const sum = new Float64Array(lines);
  const sumSquares = new Float64Array(lines);
  const contiguous = (along === 'rows') === m.rowMajor;
  if (contiguous) {
    const line = new Float64Array(length);
    for (let l = 0; l < lines; l++) {
      if (along === 'rows') m.readRow(l, line);
      else m.readColumn(l, line);
      let d = 0;
      let s = 0;
      let q = 0;
      for (let k = 0; k < length; k++) {
        const x = line[k];
        d += x * v[k];
        s += x;
        q += x * x;
      }
      dot[l] = d;
      sum[l] = s;
      sumSquares[l] = q;
    }
  } else {
    // Read across: each stored line holds element k of every wanted line.
    const across = new Float64Array(lines);
    for (let k = 0; k < length; k++) {
      if (along === 'rows') m.readColumn(k, across);
      else m.readRow(k, across);
      const vk = v[k];
      for (let l = 0; l < lines; l++) {
        const x = across[l];
        dot[l] += x * vk;
        sum[l] += x;
        sumSquares[l] += x * x;
      }
    }
  }
  return { dot, sum, sumSquares };
}

function row(m: WeightMatrix, i: number): Float64Array {
  const out = new Float64Array(m.cols);
  m.readRow(i, out);
  return out;
}

function column(m: WeightMatrix, j: number): Float64Array {
  const out = new Float64Array(m.rows);
  m.readColumn(j, out);
  return out;
}

function norm(v: Float64Array): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}

/** score_t = Σ_d W_out[n, d] · γ_f[d] · W_U[d, t] for every token t. */
export function outputTokenScores(weights: ModelWeights, layer: number, neuron: number): Float64Array {
  const writes = row(weights.mlp(layer).wOut, neuron);
  const { gamma } = weights.finalLayerNorm();
  const direction = writes.map((w, d) => w * gamma[d]);
  return lineSums(weights.unembedding(), direction, 'columns').dot;
}

/** score_t = Σ_d LN₂(W_E[t])_d · W_in[d, n] for every token t (see the module comment). */
export function inputTokenScores(weights: ModelWeights, layer: number, neuron: number): Float64Array {
  const mlp = weights.mlp(layer);
  const reads = column(mlp.wIn, neuron);
  const { gamma, beta, epsilon } = mlp.ln2;
  const d = reads.length;
  // LN₂(e)·w = Σ_d ((e_d − μ)/σ · γ_d + β_d) w_d = (Σ e_d g_d − μ Σ g_d)/σ + Σ β_d w_d, with g = γ ⊙ w.
  const g = reads.map((w, k) => w * gamma[k]);
  const gSum = g.reduce((a, b) => a + b, 0);
  const betaDot = reads.reduce((a, w, k) => a + w * beta[k], 0);
  const { dot, sum, sumSquares } = lineSums(weights.embedding(), g, 'rows');
  const scores = new Float64Array(dot.length);
  for (let t = 0; t < dot.length; t++) {
    const mean = sum[t] / d;
    const variance = Math.max(0, sumSquares[t] / d - mean * mean);
    scores[t] = (dot[t] - mean * gSum) / Math.sqrt(variance + epsilon) + betaDot;
  }
  return scores;
}

/** Cosines of this neuron's W_out row with every W_in column of layer + 1 (empty for the last layer). */
export function downstreamCosines(weights: ModelWeights, layer: number, neuron: number): Float64Array {
  if (layer + 1 >= weights.nLayer) return new Float64Array(0);
  const writes = row(weights.mlp(layer).wOut, neuron);
  const { dot, sumSquares } = lineSums(weights.mlp(layer + 1).wIn, writes, 'columns');
  return cosines(dot, sumSquares, norm(writes));
}

/** Cosines of every W_out row of layer − 1 with this neuron's W_in column (empty for layer 0). */
export function upstreamCosines(weights: ModelWeights, layer: number, neuron: number): Float64Array {
  if (layer === 0) return new Float64Array(0);
  const reads = column(weights.mlp(layer).wIn, neuron);
  const { dot, sumSquares } = lineSums(weights.mlp(layer - 1).wOut, reads, 'rows');
  return cosines(dot, sumSquares, norm(reads));
}

/** dot / (|line| · |v|), 0 where either is zero. */
function cosines(dot: Float64Array, sumSquares: Float64Array, vNorm: number): Float64Array {
  return dot.map((x, i) => {
    const denominator = Math.sqrt(sumSquares[i]) * vNorm;
    return denominator > 0 ? x / denominator : 0;
  });
}

/** The three views of one neuron (see the module comment). */
export function neuronWeightViews(
  weights: ModelWeights,
  ref: { layer: number; neuron: number },
  tokenText: (id: number) => string,
  options: WeightViewOptions = {},
): NeuronWeightViews {
  const top = options.top ?? 10;
  if (!Number.isInteger(top) || top < 1) throw new RangeError(`top must be a positive whole number, not ${top}`);
  checkNeuronRef(ref, weights);
  const { layer, neuron } = ref;
  const tokens = (scores: Float64Array, sign: 1 | -1): TokenScore[] =>
    topIndexes((i) => sign * scores[i], scores.length, top).map((id) => ({ id, token: tokenText(id), value: scores[id] }));
  const neurons = (scores: Float64Array, inLayer: number): RelatedNeuron[] =>
    topIndexes((i) => Math.abs(scores[i]), scores.length, top).map((n) => ({ layer: inLayer, neuron: n, value: scores[n] }));
  const output = outputTokenScores(weights, layer, neuron);
  return {
    layer,
    neuron,
    inputTokens: tokens(inputTokenScores(weights, layer, neuron), 1),
    outputTokens: { promoted: tokens(output, 1), suppressed: tokens(output, -1) },
    related: {
      upstream: neurons(upstreamCosines(weights, layer, neuron), layer - 1),
      downstream: neurons(downstreamCosines(weights, layer, neuron), layer + 1),
    },
  };
}
