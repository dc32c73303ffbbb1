/** `neurolens capture`: activations of MLP neurons on one text, as JSON or a readable table. */
import { BACKEND_OPTION, MODEL_OPTIONS, OUTPUT_OPTIONS, parseCommandArgs } from '../cli-args.ts';
import { readFile } from 'node:fs/promises';
import { mlpHookName } from '../../lib/model/gpt2-types.ts';
import type { TextCapture } from '../../lib/model/capture.ts';
import { CliError } from '../cli-error.ts';
import { openCapturer, parseLayerList, parseNeuronList } from '../resolve-model.ts';

const HELP = `usage: neurolens capture --model <dir|hub-id|bundled-name> (--text <text> | --file <path>)
                         [--layers 0,5] [--neurons 5:131,7:2] [--top K] [--json]
                         [--dtype auto|fp32|fp16|int8] [--backend auto|node|wasm] [--windowed]

  --model     a model folder in the Hugging Face layout, a hub id (Xenova/gpt2), or a bundled
              model name (toy-planted, tiny-random); default toy-planted
  --layers    only these layers (default: all)
  --neurons   only these neurons, as layer:neuron pairs
  --top K     list the K most active neurons of each token
  --json      print one JSON object instead of a table
  --windowed  analyse text longer than the context window in consecutive windows`;

/** Shortest decimal that reads back as the same float32. */
function f32(x: number): number {
  return Number(x.toPrecision(9));
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
          file: { type: 'string' },
          layers: { type: 'string' },
          neurons: { type: 'string' },
          top: { type: 'string' },
          windowed: { type: 'boolean', default: false },
      },
    },
    HELP,
  );
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  if ((values.text === undefined) === (values.file === undefined)) throw new CliError('give exactly one of --text or --file', 2);
  let text = values.text;
  if (values.file !== undefined) {
    try {
      text = await readFile(values.file, 'utf8');
    } catch (err) {
      throw new CliError(`cannot read ${values.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  const layers = parseLayerList(values.layers);
  const neurons = parseNeuronList(values.neurons);
  if (layers && neurons) throw new CliError('give --layers or --neurons, not both', 2);
  let top: number | undefined;
  if (values.top !== undefined) {
    top = Number(values.top);
    if (!Number.isInteger(top) || top <= 0) throw new CliError(`--top must be a positive whole number, not "${values.top}"`, 2);
  }

  const { model, capturer } = await openCapturer(values);
  try {
    const capture = await capturer.captureText(text!, { layers, neurons, windowed: values.windowed });
    if (values.json) process.stdout.write(`${JSON.stringify(toJson(model.label, capture, top))}\n`);
    else process.stdout.write(toTable(model.label, capture, top ?? (neurons ? undefined : 5)));
  } finally {
    await capturer.dispose();
  }
}

/** The neurons behind each layer's columns: all of them, or the ones `--neurons` chose. */
function columnNames(capture: TextCapture): Map<number, string[]> {
  const names = new Map<number, string[]>();
  for (const [layer, rows] of capture.layers) {
    const chosen = capture.neurons?.filter((n) => n.layer === layer);
    names.set(layer, chosen ? chosen.map((n) => `${n.layer}:${n.neuron}`) : Array.from({ length: rows[0]?.length ?? 0 }, (_, i) => `${layer}:${i}`));
  }
  return names;
}

function topNeurons(capture: TextCapture, names: Map<number, string[]>, t: number, k: number): { neuron: string; value: number }[] {
  const best: { neuron: string; value: number }[] = [];
  for (const [layer, rows] of capture.layers) {
    const row = rows[t];
    const layerNames = names.get(layer)!;
    for (let i = 0; i < row.length; i++) {
      if (best.length < k || row[i] > best[best.length - 1].value) {
        best.push({ neuron: layerNames[i], value: row[i] });
        best.sort((a, b) => b.value - a.value);
        if (best.length > k) best.pop();
      }
    }
  }
  return best;
}

export function toJson(label: string, capture: TextCapture, top?: number): unknown {
  const activations: Record<string, number[][] | number[]> = {};
  if (capture.neurons) {
    for (const n of capture.neurons) {
      const rows = capture.layers.get(n.layer)!;
      const col = capture.neurons.filter((m) => m.layer === n.layer).indexOf(n);
      activations[`${n.layer}:${n.neuron}`] = rows.map((r) => f32(r[col]));
    }
  } else {
    for (const [layer, rows] of capture.layers) activations[mlpHookName(layer)] = rows.map((r) => Array.from(r, f32));
  }
  const out: Record<string, unknown> = {
    model: label,
    backend: capture.backend,
    tokens: capture.tokens.map((t) => ({ id: t.id, text: t.text, start: t.start, end: t.end, ...(t.fragment ? { fragment: true } : {}) })),
    activations,
  };
  if (capture.windows > 1) out.windows = capture.windows;
  if (top) {
    const names = columnNames(capture);
    out.top = capture.tokens.map((_, t) => topNeurons(capture, names, t, top).map((b) => ({ ...b, value: f32(b.value) })));
  }
  return out;
}

function toTable(label: string, capture: TextCapture, top?: number): string {
  const lines = [`model ${label} · backend ${capture.backend} · ${capture.tokens.length} tokens${capture.windows > 1 ? ` in ${capture.windows} windows` : ''}`];
  const show = (s: string) => JSON.stringify(s);
  const tokenWidth = Math.min(24, Math.max(5, ...capture.tokens.map((t) => show(t.text).length)));
  if (capture.neurons) {
    const heads = capture.neurons.map((n) => `${n.layer}:${n.neuron}`);
    lines.push(['  #', 'token'.padEnd(tokenWidth), ...heads.map((h) => h.padStart(10))].join('  '));
    capture.tokens.forEach((tok, t) => {
      const cells = capture.neurons!.map((n) => {
        const col = capture.neurons!.filter((m) => m.layer === n.layer).indexOf(n);
        return capture.layers.get(n.layer)![t][col].toFixed(4).padStart(10);
      });
      lines.push([String(t).padStart(3), show(tok.text).slice(0, 24).padEnd(tokenWidth), ...cells].join('  '));
    });
  }
  if (top) {
    lines.push(`most active neurons per token (layer:neuron=value), top ${top}:`);
    const names = columnNames(capture);
    capture.tokens.forEach((tok, t) => {
      const best = topNeurons(capture, names, t, top).map((b) => `${b.neuron}=${b.value.toFixed(3)}`).join('  ');
      lines.push(`${String(t).padStart(3)}  ${show(tok.text).slice(0, 24).padEnd(tokenWidth)}  ${best}`);
    });
  }
  return `${lines.join('\n')}\n`;
}
