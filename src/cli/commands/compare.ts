/**
 * `neurolens compare`: re-runs a NeuronRecord's excerpts (ours or a published one) through a model
 * and reports how far the stored activations are from the model's own, for each GELU variant —
 * the published GPT-2 activations were computed with x·σ(1.702x) rather than GPT-2's tanh GELU.
 */
import { BACKEND_OPTION, MODEL_OPTIONS, OUTPUT_OPTIONS, parseCommandArgs } from '../cli-args.ts';
import { readFile } from 'node:fs/promises';
import {
  compareRecordWithModel,
  diffStats,
  RecordComparisonError,
  TokenLookup,
  type DiffStats,
  type RecordComparison,
} from '../../lib/activations/compare-record.ts';
import type { NeuronRecord } from '../../lib/activations/records.ts';
import { FormatError, parseAllNeuronRecords } from '../../lib/explain/formats.ts';
import { GELU_CHOICES, type GeluChoice } from '../../lib/model/capture.ts';
import { CliError } from '../cli-error.ts';
import { openCapturer } from '../resolve-model.ts';

const HELP = `usage: neurolens compare --record <NeuronRecord.json> --model <dir|hub-id|bundled-name>
                         [--gelu tanh|sigmoid|model] [--json] [--batch 8] [--dtype auto|fp32|fp16|int8] [--onnx file] [--backend auto|node|wasm]

  --record  a NeuronRecord in the paper's JSON format (a JSON array or JSON Lines of several works too)
  --gelu    compare with this GELU only (default: both tanh, GPT-2's own, and sigmoid, x·σ(1.702x),
            which the activations published with Bills et al. (2023) were computed with)
  --json    print one JSON object instead of a table`;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(
    {
      args: argv,
      options: {
          ...MODEL_OPTIONS,
          ...BACKEND_OPTION,
          ...OUTPUT_OPTIONS,
          record: { type: 'string' },
          gelu: { type: 'string' },
          batch: { type: 'string' },
      },
    },
    HELP,
  );
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  if (!values.record) throw new CliError('--record is required: a NeuronRecord JSON file', 2);
  if (!values.model) throw new CliError('--model is required (a model folder, a hub id like Xenova/gpt2, or toy-planted)', 2);
  let variants: GeluChoice[] = ['tanh', 'sigmoid'];
  if (values.gelu !== undefined) {
    if (!GELU_CHOICES.includes(values.gelu as GeluChoice)) throw new CliError(`--gelu must be ${GELU_CHOICES.join(', ')}, not "${values.gelu}"`, 2);
    variants = [values.gelu as GeluChoice];
  }
  const batchSize = values.batch === undefined ? 8 : Number(values.batch);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new CliError(`--batch must be a positive whole number, not "${values.batch}"`, 2);

  let records: NeuronRecord[];
  try {
    records = parseAllNeuronRecords(await readFile(values.record, 'utf8'));
  } catch (err) {
    if (err instanceof FormatError) throw new CliError(`${values.record} is not a NeuronRecord file: ${err.message}`, 2);
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(code === 'ENOENT' ? `record file not found: ${values.record}` : `cannot read ${values.record}: ${code ?? (err as Error).message}`, 2);
  }

  const { model, capturer } = await openCapturer({ model: values.model, dtype: values.dtype, onnx: values.onnx, backend: values.backend });
  try {
    const lookup = new TokenLookup(model.tokenizer);
    const results: Record<GeluChoice, RecordComparison>[] = [];
    for (const record of records) {
      const byVariant = {} as Record<GeluChoice, RecordComparison>;
      for (const gelu of variants) {
        try {
          byVariant[gelu] = await compareRecordWithModel(record, capturer, { gelu, batchSize, lookup });
        } catch (err) {
          if (err instanceof RecordComparisonError) throw new CliError(err.message, 2);
          throw err;
        }
      }
      results.push(byVariant);
    }
    const overall = {} as Record<GeluChoice, DiffStats | null>;
    for (const gelu of variants) {
      const stored = concat(results.map((r) => r[gelu].series.stored));
      const computed = concat(results.map((r) => r[gelu].series.computed));
      overall[gelu] = diffStats(stored, computed);
    }
    if (values.json) {
      const report = {
        model: model.label,
        backend: capturer.backend,
        records: results.map((byVariant) => {
          const first = byVariant[variants[0]];
          const withoutSeries = (c: RecordComparison) => {
            const { series: _series, unmappedTokens: _u, distinctTokens: _d, neuron: _n, ...rest } = c;
            return rest;
          };
          return {
            neuron: first.neuron,
            distinctTokens: first.distinctTokens,
            unmappedTokens: first.unmappedTokens,
            comparisons: Object.fromEntries(variants.map((g) => [g, withoutSeries(byVariant[g])])),
          };
        }),
        overall,
      };
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    } else {
      process.stdout.write(toTable(model.label, capturer.backend ?? '?', results, variants, overall));
    }
  } finally {
    await capturer.dispose();
  }
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const fmt = (x: number | null | undefined, width = 10) => (x === null || x === undefined ? '—' : x < 1e-3 && x > 0 ? x.toExponential(1) : x.toFixed(4)).padStart(width);

function statsRow(label: string, compared: string, s: DiffStats | null): string {
  return [label.padEnd(9), compared.padStart(9), fmt(s?.maxAbsDiff), fmt(s?.medianAbsDiff), fmt(s?.p99AbsDiff), fmt(s?.meanAbsDiff), fmt(s?.correlation, 8)].join('  ');
}

const HEADER = ['gelu'.padEnd(9), 'excerpts'.padStart(9), 'max|diff|'.padStart(10), 'median'.padStart(10), 'p99'.padStart(10), 'mean'.padStart(10), 'corr'.padStart(8)].join('  ');

function closest(stats: [GeluChoice, DiffStats | null][]): string | null {
  const usable = stats.filter((s): s is [GeluChoice, DiffStats] => s[1] !== null);
  if (usable.length < 2) return null;
  usable.sort((a, b) => a[1].medianAbsDiff - b[1].medianAbsDiff || a[1].maxAbsDiff - b[1].maxAbsDiff);
  return `closest to the stored activations: ${usable[0][0]} (median |diff| ${usable.map(([g, s]) => `${g} ${s.medianAbsDiff.toPrecision(3)}`).join(', ')})`;
}

function toTable(label: string, backend: string, results: Record<GeluChoice, RecordComparison>[], variants: GeluChoice[], overall: Record<GeluChoice, DiffStats | null>): string {
  const lines = [`model ${label} · backend ${backend}`];
  for (const byVariant of results) {
    const first = byVariant[variants[0]];
    const { layer, neuron } = first.neuron;
    lines.push('', `record layer ${layer} neuron ${neuron}: ${first.excerpts.total} excerpts, ${first.distinctTokens.toLocaleString('en-US')} distinct token strings`);
    if (first.unmappedTokens.length === 0) lines.push('  every token string maps to one id of the model\'s vocabulary');
    else {
      const shown = first.unmappedTokens
        .slice(0, 8)
        .map((u) => `${JSON.stringify(u.token)} ×${u.count} (${u.reason === 'ambiguous' ? `display string of ${u.candidates} ids` : 'not in the vocabulary'})`);
      lines.push(
        `  ${first.unmappedTokens.length} token string(s) map to no single id: ${shown.join(', ')}${first.unmappedTokens.length > 8 ? ', …' : ''}`,
        `  ${first.excerpts.skipped} excerpt(s) containing them were skipped`,
      );
    }
    lines.push(`  ${HEADER}`);
    for (const g of variants) lines.push(`  ${statsRow(g, String(byVariant[g].excerpts.compared), byVariant[g].overall)}`);
    const verdict = closest(variants.map((g) => [g, byVariant[g].overall]));
    if (verdict) lines.push(`  ${verdict}`);
  }
  if (results.length > 1) {
    lines.push('', `all ${results.length} records:`, `  ${HEADER}`);
    for (const g of variants) lines.push(`  ${statsRow(g, String(results.reduce((n, r) => n + r[g].excerpts.compared, 0)), overall[g])}`);
    const verdict = closest(variants.map((g) => [g, overall[g]]));
    if (verdict) lines.push(`  ${verdict}`);
  }
  return `${lines.join('\n')}\n`;
}
