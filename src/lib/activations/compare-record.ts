/**
 * Compares a NeuronRecord (ours or a published one) with what a loaded model computes: every
 * excerpt of the record is run through the model, and the neuron's activations there are set
 * against the record's stored ones (max / median / p99 of |difference|, Pearson correlation).
 *
 * Records store token *strings*, not ids. Each string is mapped back to the one id whose display
 * string (`tokenText`, the byte-level decoding) it is. Strings that name no id, or more than one,
 * are reported and their excerpts skipped — never guessed: a wrong id would change every later
 * activation of the excerpt. (Tokens holding part of a multi-byte character are the usual case:
 * published data shows them as U+FFFD, Neurolens as the whole character; neither names one id.)
 */
import type { ActivationRecord, NeuronRecord } from './records.ts';
import type { ActivationCapturer, GeluChoice } from '../model/capture.ts';

/** Wrong input to the comparison (a record for a neuron the model does not have, ...). */
export class RecordComparisonError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecordComparisonError';
  }
}

/** What the lookup needs from a tokenizer (Gpt2Tokenizer has it). */
export interface TokenVocabulary {
  readonly vocabSize: number;
  tokenText(id: number): string;
}

export type TokenMapping = { id: number } | { id: null; reason: 'unknown' | 'ambiguous'; candidates: number };

/** Token display string → id, the inverse of `tokenText` over the whole vocabulary. */
export class TokenLookup {
  private readonly ids = new Map<string, number>();
  /** Display strings several ids share, with how many. */
  private readonly shared = new Map<string, number>();

  constructor(vocabulary: TokenVocabulary) {
    for (let id = 0; id < vocabulary.vocabSize; id++) {
      let text: string;
      try {
        text = vocabulary.tokenText(id);
      } catch {
        continue; // an id the tokenizer file leaves undefined
      }
      if (this.shared.has(text)) this.shared.set(text, this.shared.get(text)! + 1);
      else if (this.ids.has(text)) {
        this.ids.delete(text);
        this.shared.set(text, 2);
      } else this.ids.set(text, id);
    }
  }

  map(token: string): TokenMapping {
    const id = this.ids.get(token);
    if (id !== undefined) return { id };
    const candidates = this.shared.get(token);
    return candidates ? { id: null, reason: 'ambiguous', candidates } : { id: null, reason: 'unknown', candidates: 0 };
  }
}

export interface UnmappedToken {
  token: string;
  /** Occurrences in the record. */
  count: number;
  reason: 'unknown' | 'ambiguous';
  /** For 'ambiguous': how many ids have this display string. */
  candidates: number;
}

export interface DiffStats {
  /** Token activations compared. */
  count: number;
  maxAbsDiff: number;
  medianAbsDiff: number;
  p99AbsDiff: number;
  meanAbsDiff: number;
  /** Pearson correlation of stored and recomputed activations; null when either is constant. */
  correlation: number | null;
}

export interface ExcerptComparison {
  /** Where the excerpt sits in the record, e.g. `random_sample[3]`. */
  path: string;
  tokens: number;
  /** Set when the excerpt could not be compared. */
  skipped?: string;
  stats?: DiffStats;
}

export interface RecordComparison {
  neuron: { layer: number; neuron: number };
  gelu: GeluChoice;
  excerpts: { total: number; compared: number; skipped: number };
  /** Distinct token strings that map to no single id. */
  unmappedTokens: UnmappedToken[];
  /** Distinct token strings in the record. */
  distinctTokens: number;
  overall: DiffStats | null;
  /** Per list of the record: most_positive_activation_records, random_sample, random_sample_by_quantile. */
  byList: Record<string, DiffStats | null>;
  /** Every excerpt, in record order. */
  perExcerpt: ExcerptComparison[];
  /** All compared activations in order, stored and recomputed, for statistics across records. */
  series: { stored: Float32Array; computed: Float32Array };
}

/** |a − b| statistics and correlation of two equally long series. */
export function diffStats(stored: ArrayLike<number>, computed: ArrayLike<number>): DiffStats | null {
  const n = stored.length;
  if (computed.length !== n) throw new RangeError(`cannot compare ${n} values with ${computed.length}`);
  if (n === 0) return null;
  const diffs = new Float64Array(n);
  let sumA = 0;
  let sumB = 0;
  for (let i = 0; i < n; i++) {
    diffs[i] = Math.abs(stored[i] - computed[i]);
    sumA += stored[i];
    sumB += computed[i];
  }
  const meanA = sumA / n;
  const meanB = sumB / n;
  let cov = 0;
  let varA = 0;
  let varB = 0;
  for (let i = 0; i < n; i++) {
    const a = stored[i] - meanA;
    const b = computed[i] - meanB;
    cov += a * b;
    varA += a * a;
    varB += b * b;
  }
  const sorted = diffs.slice().sort();
  // Nearest-rank quantiles: each is one of the observed differences.
  const quantile = (q: number) => sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))];
  return {
    count: n,
    maxAbsDiff: sorted[n - 1],
    medianAbsDiff: quantile(0.5),
    p99AbsDiff: quantile(0.99),
    meanAbsDiff: diffs.reduce((s, d) => s + d, 0) / n,
    correlation: varA > 0 && varB > 0 ? cov / Math.sqrt(varA * varB) : null,
  };
}

/** Every ActivationRecord of a NeuronRecord with its path and list name, in record order. */
export function recordExcerpts(record: NeuronRecord): { path: string; list: string; excerpt: ActivationRecord }[] {
  const out: { path: string; list: string; excerpt: ActivationRecord }[] = [];
  record.most_positive_activation_records.forEach((excerpt, i) =>
    out.push({ path: `most_positive_activation_records[${i}]`, list: 'most_positive_activation_records', excerpt }),
  );
  record.random_sample.forEach((excerpt, i) => out.push({ path: `random_sample[${i}]`, list: 'random_sample', excerpt }));
  (record.random_sample_by_quantile ?? []).forEach((bin, q) =>
    bin.forEach((excerpt, i) => out.push({ path: `random_sample_by_quantile[${q}][${i}]`, list: 'random_sample_by_quantile', excerpt })),
  );
  return out;
}

export interface CompareRecordOptions {
  /** Which GELU the model runs with (default 'model'). */
  gelu?: GeluChoice;
  /** Excerpts per model run (default 8); only equally long excerpts share a run. */
  batchSize?: number;
  /** Reuse a lookup across records (building one reads the whole vocabulary). */
  lookup?: TokenLookup;
  signal?: AbortSignal;
}

/** Re-runs a record's excerpts through the model and compares (see the module comment). */
export async function compareRecordWithModel(
  record: NeuronRecord,
  capturer: ActivationCapturer,
  options: CompareRecordOptions = {},
): Promise<RecordComparison> {
  const gelu = options.gelu ?? 'model';
  const batchSize = options.batchSize ?? 8;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RecordComparisonError(`batchSize must be a positive integer, got ${batchSize}`);
  const { layer_index: layer, neuron_index: neuron } = record.neuron_id;
  const { nLayer, dMlp, nCtx } = capturer.model.config;
  if (!Number.isInteger(layer) || layer < 0 || layer >= nLayer || !Number.isInteger(neuron) || neuron < 0 || neuron >= dMlp) {
    throw new RecordComparisonError(
      `the record is for layer ${layer} neuron ${neuron}, but the model has layers 0-${nLayer - 1} of ${dMlp} neurons`,
    );
  }
  const lookup = options.lookup ?? new TokenLookup(capturer.model.tokenizer);

  // Map tokens; collect what does not map.
  const unmapped = new Map<string, UnmappedToken>();
  const distinct = new Set<string>();
  const items = recordExcerpts(record).map(({ path, list, excerpt }) => {
    const ids: number[] = [];
    let skipped: string | undefined;
    if (excerpt.tokens.length !== excerpt.activations.length) {
      skipped = `${excerpt.tokens.length} tokens but ${excerpt.activations.length} activations`;
    }
    for (const token of excerpt.tokens) {
      distinct.add(token);
      const m = lookup.map(token);
      if (m.id !== null) {
        ids.push(m.id);
        continue;
      }
      const seen = unmapped.get(token);
      if (seen) seen.count++;
      else unmapped.set(token, { token, count: 1, reason: m.reason, candidates: m.candidates });
      skipped ??= `token ${JSON.stringify(token)} ${m.reason === 'ambiguous' ? `is the display string of ${m.candidates} ids` : 'is not in the vocabulary'}`;
    }
    if (!skipped && ids.length === 0) skipped = 'no tokens';
    if (!skipped && ids.length > nCtx) skipped = `${ids.length} tokens, longer than the model's ${nCtx}-token context`;
    return { path, list, excerpt, ids, skipped };
  });

  // Run each distinct excerpt once, equally long ones together.
  const computed = new Map<string, Float32Array>();
  const runnable = [...new Map(items.filter((x) => !x.skipped).map((x) => [x.ids.join(','), x.ids])).values()].sort(
    (a, b) => a.length - b.length,
  );
  for (let i = 0; i < runnable.length; ) {
    if (options.signal?.aborted) throw options.signal.reason ?? new Error('aborted');
    const length = runnable[i].length;
    const batch: number[][] = [];
    while (i < runnable.length && batch.length < batchSize && runnable[i].length === length) batch.push(runnable[i++]);
    const result = await capturer.runTokens(batch, { layers: [layer], gelu });
    const data = result.layers.get(layer)!;
    batch.forEach((ids, b) => {
      const column = new Float32Array(length);
      for (let t = 0; t < length; t++) column[t] = data[(b * length + t) * dMlp + neuron];
      computed.set(ids.join(','), column);
    });
  }

  const perExcerpt: ExcerptComparison[] = [];
  const all: { stored: number[]; computed: number[] } = { stored: [], computed: [] };
  const lists = new Map<string, { stored: number[]; computed: number[] }>();
  for (const item of items) {
    if (item.skipped) {
      perExcerpt.push({ path: item.path, tokens: item.excerpt.tokens.length, skipped: item.skipped });
      continue;
    }
    const mine = computed.get(item.ids.join(','))!;
    perExcerpt.push({ path: item.path, tokens: item.ids.length, stats: diffStats(item.excerpt.activations, mine)! });
    let list = lists.get(item.list);
    if (!list) lists.set(item.list, (list = { stored: [], computed: [] }));
    for (const target of [all, list]) {
      target.stored.push(...item.excerpt.activations);
      target.computed.push(...mine);
    }
  }
  const byList: Record<string, DiffStats | null> = {};
  for (const name of ['most_positive_activation_records', 'random_sample', 'random_sample_by_quantile']) {
    const list = lists.get(name);
    byList[name] = list ? diffStats(list.stored, list.computed) : null;
  }
  const skipped = perExcerpt.filter((e) => e.skipped).length;
  return {
    neuron: { layer, neuron },
    gelu,
    excerpts: { total: items.length, compared: items.length - skipped, skipped },
    unmappedTokens: [...unmapped.values()].sort((a, b) => b.count - a.count),
    distinctTokens: distinct.size,
    overall: diffStats(all.stored, all.computed),
    byList,
    perExcerpt,
    series: { stored: Float32Array.from(all.stored), computed: Float32Array.from(all.computed) },
  };
}
