/** Errors about the text a user asked to analyse. */
export class EmptyTextError extends Error {
  constructor() {
    super('the text is empty: type or paste some text to analyse');
    this.name = 'EmptyTextError';
  }
}

export class TextTooLongError extends Error {
  constructor(
    readonly tokenCount: number,
    readonly contextSize: number,
  ) {
    super(
      `the text is ${tokenCount} tokens, longer than this model's ${contextSize}-token context window; ` +
        `analyse it in windows of ${contextSize} tokens instead (${Math.ceil(tokenCount / contextSize)} windows)`,
    );
    this.name = 'TextTooLongError';
  }
}

/** A layer or neuron outside the model. */
export class OutOfRangeError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = 'OutOfRangeError';
  }
}
