/**
 * The scan's default settings, in one place: the app, the worker, the CLI and the library all
 * read them from here, so a scan of the same model, corpus and seed gives the same records
 * wherever it runs.
 *
 * The records released with Bills et al. (2023) for GPT-2 XL hold 50 top-activating excerpts, 50
 * random ones and 5 quantile bins of 20 (`PUBLISHED_RECORD_SHAPE`). The defaults keep fewer top
 * excerpts and quantile samples: a neuron's state during a scan and its stored record grow with
 * them (top-K rows are kept for every neuron while scanning: 20 × 64 float16 values are 2.5 KB per
 * neuron, 94 MB for GPT-2 small), and 20 top excerpts are more than an explanation prompt uses.
 */
export const SCAN_DEFAULTS = {
  /** Most-activating excerpts kept per neuron. */
  topK: 20,
  /** Excerpts in the random sample, shared by all neurons (as in the released records). */
  randomSampleSize: 50,
  /**
   * Interior quantile levels of the per-excerpt max: 5 bins. Inferred from the released GPT-2 XL
   * records, whose random sample has 48% and 92% of its excerpt maxima below the first two boundaries.
   */
  quantiles: [0.5, 0.9, 0.99, 0.999] as readonly number[],
  /** Excerpts sampled per quantile bin. */
  quantileSampleSize: 5,
  /** Tokens per excerpt, as in the paper. */
  excerptLength: 64,
  /** A document's shorter final piece is kept from this many tokens on (see corpus.ts). */
  minExcerptLength: 16,
  /** Seed of the random and quantile samples and of the scan order. */
  seed: 0,
  /** Excerpts per model run. */
  batchSize: 8,
} as const;

/** What each released GPT-2 XL NeuronRecord holds, for comparison with the defaults. */
export const PUBLISHED_RECORD_SHAPE = { topK: 50, randomSampleSize: 50, quantileBins: 5, quantileSampleSize: 20, excerptLength: 64 } as const;
