/**
 * Edits of MLP neurons for a model instrumented with `edits` (instrument.ts): which neurons to
 * multiply by a factor or set to a value, checked against the model, and turned into the
 * per-layer edit tensors the graph reads (`mlpEditInputNames`): the edited activation is
 * Where(mask, value, activation · scale).
 *
 * - Zero ablation: `{ value: 0 }`. Mean ablation: `{ value: mean }`. Steering: `{ scale: K }`.
 * - Per-token values (e.g. substituting simulated activations): `value` as an array over the
 *   batch's tokens; NaN entries leave that token to `scale` (default 1, i.e. unchanged).
 * - An edit that changes nothing (scale 1, no value) gives the unedited model's outputs bit for bit.
 */
import { OutOfRangeError } from './text-errors.ts';

export interface NeuronEdit {
  layer: number;
  neuron: number;
  /** Multiplies the activation (default 1: unchanged). Tokens that `value` sets ignore it. */
  scale?: number;
  /**
   * Sets the activation: one number for every token, or one per token of the batch as
   * [batch, seq] row-major over the batch's (padded) length; NaN leaves that token to `scale`.
   */
  value?: number | ArrayLike<number>;
}

/** A tensor for an edit input: its data and dims ([1, 1, dMlp] or [batch, seq, dMlp]). */
export interface EditTensor<T> {
  data: T;
  dims: [number, number, number];
}

export interface LayerEditTensors {
  scale: EditTensor<Float32Array>;
  /** bool as bytes (0 or 1), as onnxruntime takes bool tensors. */
  mask: EditTensor<Uint8Array>;
  value: EditTensor<Float32Array>;
}

/** Shapes the edits are checked against. */
export interface EditShape {
  nLayer: number;
  dMlp: number;
  batch: number;
  seq: number;
}

/** Throws OutOfRangeError unless `ref` names a neuron of the model. */
export function checkNeuronRef(ref: { layer: number; neuron: number }, shape: { nLayer: number; dMlp: number }): void {
  checkLayerIndex(ref.layer, shape.nLayer);
  if (!Number.isInteger(ref.neuron) || ref.neuron < 0 || ref.neuron >= shape.dMlp) {
    throw new OutOfRangeError(`neuron ${ref.layer}:${ref.neuron} is out of range: each layer has neurons 0-${shape.dMlp - 1}`);
  }
}

/** Throws OutOfRangeError unless `layer` is a layer of the model. */
export function checkLayerIndex(layer: number, nLayer: number): void {
  if (!Number.isInteger(layer) || layer < 0 || layer >= nLayer) {
    throw new OutOfRangeError(`layer ${layer} is out of range: this model has layers 0-${nLayer - 1}`);
  }
}

/** Checks edits against the model and the batch: neurons in range, one edit per neuron, finite numbers. */
export function checkNeuronEdits(edits: readonly NeuronEdit[], shape: EditShape): void {
  if (!Array.isArray(edits)) throw new TypeError('edits must be an array of neuron edits');
  const seen = new Set<string>();
  const tokens = shape.batch * shape.seq;
  for (const edit of edits) {
    if (typeof edit !== 'object' || edit === null) throw new TypeError('each edit must be an object {layer, neuron, scale?, value?}');
    checkNeuronRef(edit, shape);
    const { layer, neuron } = edit;
    const key = `${layer}:${neuron}`;
    if (seen.has(key)) throw new RangeError(`neuron ${key} is edited twice; give each neuron one edit`);
    seen.add(key);
    if (edit.scale !== undefined && !(typeof edit.scale === 'number' && Number.isFinite(edit.scale))) {
      throw new RangeError(`neuron ${key}: the scale must be a finite number, not ${String(edit.scale)}`);
    }
    const { value } = edit;
    if (value === undefined) continue;
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw new RangeError(`neuron ${key}: the value must be a finite number, not ${value}`);
      continue;
    }
    if (typeof value !== 'object' || value === null || typeof value.length !== 'number') {
      throw new TypeError(`neuron ${key}: the value must be a number or one number per token`);
    }
    if (value.length !== tokens) {
      throw new RangeError(`neuron ${key}: ${value.length} values for ${shape.batch} × ${shape.seq} = ${tokens} tokens`);
    }
    for (let i = 0; i < value.length; i++) {
      const v = value[i];
      if (typeof v !== 'number' || !(Number.isFinite(v) || Number.isNaN(v))) {
        throw new RangeError(`neuron ${key}: value[${i}] must be a finite number (or NaN to leave the token alone), not ${String(v)}`);
      }
    }
  }
}

/** The edit tensors of one layer (identity tensors when no edit touches it). */
export function layerEditTensors(edits: readonly NeuronEdit[], layer: number, shape: EditShape): LayerEditTensors {
  const { dMlp, batch, seq } = shape;
  const mine = edits.filter((e) => e.layer === layer);
  const scale = new Float32Array(dMlp).fill(1);
  for (const e of mine) if (e.scale !== undefined) scale[e.neuron] = e.scale;
  const perToken = mine.some((e) => e.value !== undefined && typeof e.value !== 'number');
  const rows = perToken ? batch * seq : 1;
  const mask = new Uint8Array(rows * dMlp);
  const value = new Float32Array(rows * dMlp);
  for (const e of mine) {
    if (e.value === undefined) continue;
    for (let r = 0; r < rows; r++) {
      const v = typeof e.value === 'number' ? e.value : e.value[r];
      if (Number.isNaN(v)) continue;
      mask[r * dMlp + e.neuron] = 1;
      value[r * dMlp + e.neuron] = v;
    }
  }
  const dims: [number, number, number] = perToken ? [batch, seq, dMlp] : [1, 1, dMlp];
  return { scale: { data: scale, dims: [1, 1, dMlp] }, mask: { data: mask, dims }, value: { data: value, dims } };
}

/** Whether an edit can change anything (a scale other than 1, or a value set somewhere). */
export function editChangesSomething(edit: NeuronEdit): boolean {
  if (edit.scale !== undefined && edit.scale !== 1) return true;
  if (edit.value === undefined) return false;
  if (typeof edit.value === 'number') return true;
  for (let i = 0; i < edit.value.length; i++) if (!Number.isNaN(edit.value[i])) return true;
  return false;
}
