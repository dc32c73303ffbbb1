/**
 * Errors raised while reading, analysing or rewriting a model file.
 * Each carries a message meant to be shown to the user as is.
 */

/** Base class of every model-related error, so callers can catch them as one family. */
export class ModelError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The bytes are not an ONNX model at all (wrong file, truncated download, text file...). */
export class NotOnnxError extends ModelError {}

/** The file is ONNX, but its structure is inconsistent or uses something we cannot handle. */
export class ModelFormatError extends ModelError {}

/** The file is ONNX, but no GPT-2-style MLP (up-projection → GELU → down-projection) was found. */
export class NoMlpFoundError extends ModelError {}

/** A requested layer index does not exist in the model. */
export class LayerOutOfRangeError extends RangeError {
  readonly layer: number;
  readonly nLayer: number;

  constructor(layer: number, nLayer: number) {
    super(
      nLayer > 0
        ? `layer ${layer} does not exist: the model has ${nLayer} layer${nLayer === 1 ? '' : 's'} (valid layers: 0..${nLayer - 1})`
        : `layer ${layer} does not exist: the model has no layers`,
    );
    this.name = 'LayerOutOfRangeError';
    this.layer = layer;
    this.nLayer = nLayer;
  }
}
