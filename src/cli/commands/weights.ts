/**
 * `neurolens weights`: what one neuron reads and writes according to the model's weights alone
 * (src/lib/model/weight-views.ts): the tokens whose embeddings excite it, the tokens it promotes
 * and suppresses, and the most connected neurons of the layers before and after it.
 */
import { MODEL_OPTIONS, OUTPUT_OPTIONS, parseCommandArgs } from '../cli-args.ts';
import { ModelWeights } from '../../lib/model/model-weights.ts';
import { neuronWeightViews, type NeuronWeightViews, type RelatedNeuron, type TokenScore } from '../../lib/model/weight-views.ts';
import { CliError } from '../cli-error.ts';
import { openModel, parseNeuronList } from '../resolve-model.ts';

const HELP = `usage: neurolens weights --model <dir|hub-id|bundled-name> --neuron L:N [--top 10] [--json]
                        [--dtype fp32|fp16|quantized]

  --neuron  the neuron, as layer:neuron
  --top     entries per list (default 10)
  --json    print {input_tokens: [{id, token, value}], output_tokens: {promoted, suppressed},
            related: {upstream: [{layer, neuron, value}], downstream}}, each list in rank order

  input tokens    Σ_d LN₂(W_E[t])_d · W_in[d, n]: the token embedding through the layer's ln_2,
                  read by the neuron (no positions, no earlier layers, no bias)
  output tokens   Σ_d W_out[n, d] · γ_f[d] · W_U[d, t]: the neuron's direct effect on each logit
  related         cosine of W_out of one neuron and W_in of the other, by absolute value`;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(
    {
      args: argv,
      options: {
          ...MODEL_OPTIONS,
          ...OUTPUT_OPTIONS,
          neuron: { type: 'string' },
          top: { type: 'string' },
      },
    },
    HELP,
  );
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const neurons = parseNeuronList(values.neuron, '--neuron');
  if (!neurons) throw new CliError('--neuron is required: layer:neuron, such as 0:37', 2);
  if (neurons.length !== 1) throw new CliError(`--neuron takes one neuron, not ${neurons.length}`, 2);
  let top = 10;
  if (values.top !== undefined) {
    top = Number(values.top);
    if (!Number.isInteger(top) || top <= 0) throw new CliError(`--top must be a positive whole number, not "${values.top}"`, 2);
  }

  const model = await openModel(values);
  const weights = await ModelWeights.of(model);
  const views = neuronWeightViews(weights, neurons[0], (id) => model.tokenizer.tokenText(id), { top });
  if (values.json) process.stdout.write(`${JSON.stringify(toJson(views))}\n`);
  else process.stdout.write(toReport(model.label, views));
}

export function toJson(views: NeuronWeightViews): unknown {
  const tokens = (list: TokenScore[]) => list.map(({ id, token, value }) => ({ id, token, value }));
  const neurons = (list: RelatedNeuron[]) => list.map(({ layer, neuron, value }) => ({ layer, neuron, value }));
  return {
    input_tokens: tokens(views.inputTokens),
    output_tokens: { promoted: tokens(views.outputTokens.promoted), suppressed: tokens(views.outputTokens.suppressed) },
    related: { upstream: neurons(views.related.upstream), downstream: neurons(views.related.downstream) },
  };
}

function toReport(label: string, views: NeuronWeightViews): string {
  const { layer, neuron } = views;
  const tokenLines = (list: TokenScore[]) => list.map((t, i) => `  ${String(i + 1).padStart(3)}  ${JSON.stringify(t.token).padEnd(22)} ${t.value.toFixed(4).padStart(10)}   (id ${t.id})`);
  const neuronLines = (list: RelatedNeuron[], none: string) =>
    list.length === 0 ? [`  (${none})`] : list.map((n, i) => `  ${String(i + 1).padStart(3)}  ${`${n.layer}:${n.neuron}`.padEnd(10)} cosine ${n.value.toFixed(4).padStart(8)}`);
  const lines = [
    `neuron ${layer}:${neuron} of ${label}, from the weights alone`,
    'input tokens (token embedding through ln_2, read by the neuron):',
    ...tokenLines(views.inputTokens),
    'promoted output tokens (direct effect on the logits):',
    ...tokenLines(views.outputTokens.promoted),
    'suppressed output tokens:',
    ...tokenLines(views.outputTokens.suppressed),
    `upstream neurons (layer ${layer - 1}) whose output this neuron reads most:`,
    ...neuronLines(views.related.upstream, 'none: this is the first layer'),
    `downstream neurons (layer ${layer + 1}) that read this neuron's output most:`,
    ...neuronLines(views.related.downstream, 'none: this is the last layer'),
  ];
  return `${lines.join('\n')}\n`;
}
