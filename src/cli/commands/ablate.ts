/**
 * `neurolens ablate`: what zeroing, mean-ablating or scaling some MLP neurons does to the model's
 * next-token predictions on a text (src/lib/causal/ablation.ts), as JSON or a readable report.
 */
import { BACKEND_OPTION, MODEL_OPTIONS, OUTPUT_OPTIONS, parseCommandArgs } from '../cli-args.ts';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ablateText, type AblationResult, type ProbabilityShift, type TokenProbability } from '../../lib/causal/ablation.ts';
import { FormatError, parseNeuronRecord } from '../../lib/explain/formats.ts';
import type { NeuronRef } from '../../lib/model/capture.ts';
import type { NeuronEdit } from '../../lib/model/neuron-edits.ts';
import { CliError } from '../cli-error.ts';
import { openCapturer, parseNeuronList } from '../resolve-model.ts';

const HELP = `usage: neurolens ablate --model <dir|hub-id|bundled-name> --text <text> --neurons L:N[,L:N...]
                       [--scale 0|mean|K] [--scan <dir> | --mean V[,V...]] [--top 10] [--json]
                       [--dtype fp32|fp16|quantized] [--backend auto|node|wasm]

  --neurons  the neurons to edit, as layer:neuron pairs
  --scale    0 (default) zeroes the neurons; K multiplies them by K (write a negative factor as
             --scale=-2); mean sets each to its mean activation, read from a scan (--scan) or given
  --scan     a folder written by \`neurolens scan\` (its <layer>/<neuron>.json records hold the means)
  --mean     the mean to set instead: one value for every neuron, or one per neuron in order
  --top      tokens listed per position (default 10)
  --json     print one JSON object: {model, neurons, scale, tokens, positions: [{kl, original, ablated}]}
             where positions[i] is the next-token distribution after token i and kl is
             KL(original ‖ ablated) in nats`;

type Scale = { kind: 'factor'; factor: number } | { kind: 'mean' };

function parseScale(value: string | undefined): Scale {
  if (value === undefined) return { kind: 'factor', factor: 0 };
  if (value === 'mean') return { kind: 'mean' };
  const factor = Number(value);
  if (value.trim() === '' || !Number.isFinite(factor)) {
    throw new CliError(`--scale must be 0, mean or a number K (write a negative factor as --scale=-2), not "${value}"`, 2);
  }
  return { kind: 'factor', factor };
}

function parseMeans(value: string, count: number): number[] {
  const parts = value.split(',').map((s) => s.trim());
  const means = parts.map((p) => {
    const v = Number(p);
    if (p === '' || !Number.isFinite(v)) throw new CliError(`--mean: "${p}" is not a number`, 2);
    return v;
  });
  if (means.length === 1) return Array(count).fill(means[0]);
  if (means.length !== count) throw new CliError(`--mean has ${means.length} values for ${count} neurons: give one, or one per neuron`, 2);
  return means;
}

/** Each neuron's mean activation from the scan folder's NeuronRecord. */
async function meansFromScan(dir: string, neurons: NeuronRef[]): Promise<number[]> {
  const means: number[] = [];
  for (const n of neurons) {
    const path = join(dir, String(n.layer), `${n.neuron}.json`);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      throw new CliError(`--scan: no record of neuron ${n.layer}:${n.neuron} (${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    let mean: number | null;
    try {
      mean = parseNeuronRecord(text).mean;
    } catch (err) {
      if (err instanceof FormatError) throw new CliError(`--scan: ${path} is not a neuron record: ${err.message}`);
      throw err;
    }
    if (mean === null || !Number.isFinite(mean)) throw new CliError(`--scan: the record ${path} has no mean activation`);
    means.push(mean);
  }
  return means;
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(
    {
      args: argv,
      options: {
          ...MODEL_OPTIONS,
          ...BACKEND_OPTION,
          ...OUTPUT_OPTIONS,
          text: { type: 'string' },
          neurons: { type: 'string' },
          scale: { type: 'string' },
          scan: { type: 'string' },
          mean: { type: 'string' },
          top: { type: 'string' },
      },
    },
    HELP,
  );
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  if (values.text === undefined) throw new CliError('--text is required', 2);
  const neurons = parseNeuronList(values.neurons);
  if (!neurons) throw new CliError('--neurons is required: layer:neuron pairs such as 0:37,1:91', 2);
  const scale = parseScale(values.scale);
  if (scale.kind === 'mean') {
    if ((values.scan === undefined) === (values.mean === undefined)) throw new CliError('--scale mean needs exactly one of --scan <dir> or --mean <value>', 2);
  } else if (values.scan !== undefined || values.mean !== undefined) {
    throw new CliError('--scan and --mean only go with --scale mean', 2);
  }
  const means = values.mean !== undefined ? parseMeans(values.mean, neurons.length) : undefined;
  let top = 10;
  if (values.top !== undefined) {
    top = Number(values.top);
    if (!Number.isInteger(top) || top <= 0) throw new CliError(`--top must be a positive whole number, not "${values.top}"`, 2);
  }

  const { model, capturer } = await openCapturer(values);
  try {
    neurons.forEach((n) => capturer.checkNeuron(n));
    let edits: NeuronEdit[];
    let meanValues: number[] | undefined;
    if (scale.kind === 'mean') {
      meanValues = means ?? (await meansFromScan(values.scan!, neurons));
      edits = neurons.map((n, i) => ({ ...n, value: meanValues![i] }));
    } else {
      edits = neurons.map((n) => ({ ...n, scale: scale.factor }));
    }
    const result = await ablateText(capturer, values.text, edits, { top });
    const neuronsOut = neurons.map((n, i) => ({ layer: n.layer, neuron: n.neuron, ...(meanValues ? { mean: meanValues[i] } : {}) }));
    const scaleOut = scale.kind === 'mean' ? 'mean' : scale.factor;
    if (values.json) {
      process.stdout.write(`${JSON.stringify(toJson(model.label, neuronsOut, scaleOut, result))}\n`);
    } else {
      process.stdout.write(toReport(model.label, capturer.backend ?? '', neuronsOut, scaleOut, result));
    }
  } finally {
    await capturer.dispose();
  }
}

export function toJson(label: string, neurons: object[], scale: number | 'mean', result: AblationResult): unknown {
  const probabilities = (list: TokenProbability[]) => list.map(({ id, token, p }) => ({ id, token, p }));
  return {
    model: label,
    neurons,
    scale,
    tokens: result.tokens.map((t) => ({ id: t.id, text: t.text, start: t.start, end: t.end, ...(t.fragment ? { fragment: true } : {}) })),
    positions: result.positions.map((p) => ({ kl: p.kl, original: probabilities(p.original), ablated: probabilities(p.edited) })),
  };
}

const show = (s: string) => JSON.stringify(s);
const num = (x: number) => (x === 0 ? '0' : Math.abs(x) >= 0.001 && Math.abs(x) < 1000 ? x.toFixed(4) : x.toExponential(2));
const signed = (x: number) => `${x >= 0 ? '+' : ''}${num(x)}`;
const shift = (s: ProbabilityShift | null | undefined) => (s ? `${show(s.token)} ${signed(s.after - s.before)}` : '-');

function toReport(label: string, backend: string, neurons: { layer: number; neuron: number; mean?: number }[], scale: number | 'mean', result: AblationResult): string {
  const what = neurons
    .map((n) => `${n.layer}:${n.neuron}${n.mean !== undefined ? ` → ${num(n.mean)}` : ''}`)
    .join(', ');
  const how = scale === 'mean' ? 'set to their means' : scale === 0 ? 'zeroed' : `multiplied by ${scale}`;
  const lines = [
    `model ${label} · backend ${backend} · ${result.tokens.length} tokens · neurons ${what} ${how}`,
    `KL(original ‖ ablated) in nats: mean ${num(result.summary.meanKl)}, max ${num(result.summary.maxKl)}`,
    'where it matters most:',
  ];
  for (const t of result.summary.top) {
    lines.push(`  after #${t.position} ${show(t.token)}: KL ${num(t.kl)}; gains ${shift(t.gained)}; loses ${shift(t.lost)}`);
  }
  lines.push('per position (the prediction after each token):');
  const width = Math.min(20, Math.max(5, ...result.tokens.map((t) => show(t.text).length)));
  result.tokens.forEach((tok, i) => {
    const p = result.positions[i];
    const best = (list: TokenProbability[]) => (list[0] ? `${show(list[0].token)} ${list[0].p.toFixed(3)}` : '-');
    lines.push(
      `  ${String(i).padStart(3)}  ${show(tok.text).slice(0, 20).padEnd(width)}  KL ${num(p.kl).padStart(9)}  ${best(p.original)} → ${best(p.edited)}  gains ${shift(p.gained[0])}  loses ${shift(p.lost[0])}`,
    );
  });
  return `${lines.join('\n')}\n`;
}
