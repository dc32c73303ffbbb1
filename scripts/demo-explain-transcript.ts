/**
 * `npx tsx scripts/demo-explain-transcript.ts [neuron-id]`: the explain → simulate → score loop
 * for one planted neuron of the toy model (default "after-the"), run for real except for the LLM:
 * the records are captured with onnxruntime-node, and the "LLM" is the scripted loopback server of
 * test/fixtures/planted-llm.ts, which reads the real prompts and answers like a perfect model.
 * Prints a human-readable transcript: prompt sizes, token usage counted by the client, the
 * explanation, per-record correlations and the top / random / all scores, then the same scores
 * for a wrong explanation (another planted neuron's) as a control. Deterministic: no timings,
 * ports or random ids are printed.
 *
 * Token counts: the scripted server reports `usage` counted with GPT-2's BPE (the toy model's
 * tokenizer), a stand-in for a real server's tokenizer; the client's own pre-send estimate
 * (characters / 4) is shown next to it. Costs are priced as gpt-4o-mini (approximate list price).
 */
import { explainAndScoreNeuron, selectRecords, type NeuronPipelineResult } from '../src/lib/explain/pipeline.ts';
import { createChatClient } from '../src/lib/llm/client.ts';
import { estimateRequestTokens } from '../src/lib/llm/cost.ts';
import type { ChatCompleter, ChatRequest, ChatResponse } from '../src/lib/llm/types.ts';
import { capturePlantedRecords, neuronKey } from '../test/fixtures/planted-records.ts';
import { parseSimulationPrompt, plantedNeuronLlm } from '../test/fixtures/planted-llm.ts';
import { startFakeOpenAiServer } from '../test/helpers/fake-openai-server.ts';

const MODEL = 'gpt-4o-mini';

interface Exchange {
  request: ChatRequest;
  response: ChatResponse;
}

const fixed = (x: number | null | undefined, digits = 3) => (typeof x === 'number' ? x.toFixed(digits) : 'n/a');
const chars = (request: ChatRequest) => request.messages.reduce((sum, m) => sum + m.content.length, 0);
/** A prompt or answer line with its tabs made visible. */
const shown = (line: string) => `    | ${line.replace(/\t/g, '\\t')}`;

function requestLine(label: string, { request, response }: Exchange): string {
  const estimate = estimateRequestTokens(request).promptTokens;
  const usage = response.usage;
  return (
    `  ${label.padEnd(10)} ${String(request.messages.length).padStart(2)} messages, ${String(chars(request)).padStart(6)} chars, ` +
    `~${String(estimate).padStart(5)} tokens estimated, ${String(usage?.prompt_tokens ?? '?').padStart(5)} counted in, ` +
    `${String(usage?.completion_tokens ?? '?').padStart(4)} out`
  );
}

async function main(): Promise<void> {
  const wanted = process.argv[2] ?? 'after-the';
  const capture = await capturePlantedRecords();
  const neuron = capture.planted.find((p) => p.id === wanted);
  if (!neuron) {
    throw new Error(`unknown planted neuron "${wanted}" (known: ${capture.planted.map((p) => p.id).join(', ')})`);
  }
  const wrong = capture.planted[(capture.planted.indexOf(neuron) + 1) % capture.planted.length];
  const record = capture.records.get(neuronKey(neuron))!;
  const countTokens = (text: string) => capture.tokenizer.encode(text).length;
  const server = await startFakeOpenAiServer(plantedNeuronLlm({ planted: capture.planted, countTokens }));
  const out: string[] = [];
  const say = (line = '') => out.push(line);

  try {
    const first = record.most_positive_activation_records[0];
    say(`Neuron ${neuron.layer}:${neuron.neuron} of the toy model "toy-planted" (planted rule "${neuron.id}": ${neuron.description})`);
    say(
      `Captured ${capture.excerpts.length} excerpts x ${first.tokens.length} tokens of generated English on ${capture.backend}; ` +
        `record: ${record.most_positive_activation_records.length} top + ${record.random_sample.length} random excerpts, ` +
        `max ${fixed(Math.max(...first.activations))}, mean ${fixed(record.mean, 4)}, variance ${fixed(record.variance, 4)}, ` +
        `skewness ${fixed(record.skewness, 2)}, excess kurtosis ${fixed(record.kurtosis, 2)}`,
    );
    say();

    const selected = selectRecords(record);
    const labelOf = new Map<string, string>();
    selected.scoreTop.forEach((r, i) => labelOf.set(JSON.stringify(r.tokens), `top ${i}`));
    selected.scoreRandom.forEach((r, i) => labelOf.set(JSON.stringify(r.tokens), `random ${i}`));
    const order = [...selected.scoreTop, ...selected.scoreRandom].map((r) => labelOf.get(JSON.stringify(r.tokens))!);

    const runLoop = async (givenExplanations?: string[]) => {
      const client = createChatClient({ baseUrl: server.baseUrl, concurrency: 4 });
      const exchanges: Exchange[] = [];
      const logged: ChatCompleter = {
        async complete(request, options) {
          const response = await client.complete(request, options);
          exchanges.push({ request, response });
          return response;
        },
      };
      const result = await explainAndScoreNeuron(record, logged, { model: MODEL, givenExplanations });
      return { result, exchanges, usage: client.usage() };
    };

    const printScores = (result: NeuronPipelineResult) => {
      for (const s of result.scores) {
        say(`  explanation: "${s.explanation}"`);
        say('  per-record correlation (simulated vs true activations):');
        s.all.per_record_correlation.forEach((r, i) => say(`    ${order[i].padEnd(9)} ${fixed(r)}`));
        say(
          `  scores: top ${fixed(s.top.ev_correlation_score)}, random ${fixed(s.random.ev_correlation_score)}, ` +
            `all ${fixed(s.all.ev_correlation_score)} (headline), coverage ${fixed(s.all.coverage, 2)}`,
        );
      }
    };

    const printRequests = (exchanges: Exchange[]) => {
      const explainer = exchanges.filter((e) => e.request.messages[0].content.includes('interpret single neurons'));
      const simulations = exchanges
        .filter((e) => e.request.logprobs === true)
        .map((e) => ({ label: labelOf.get(JSON.stringify(parseSimulationPrompt(e.request.messages.at(-1)!.content).tokens))!, e }))
        .sort((a, b) => order.indexOf(a.label) - order.indexOf(b.label));
      for (const e of explainer) say(requestLine('explainer', e));
      for (const { label, e } of simulations) say(requestLine(label, e));
    };

    const printUsage = (usage: ReturnType<ReturnType<typeof createChatClient>['usage']>) => {
      say(
        `  usage counted by the client: ${usage.requests} requests, ${usage.promptTokens} prompt + ${usage.completionTokens} completion = ` +
          `${usage.totalTokens} tokens, ~$${usage.costUsd.toFixed(5)} at ${MODEL} prices (${usage.estimatedResponses} answers without usage)`,
      );
    };

    say('1. Explain, simulate and score (the explainer answers with the neuron\'s true description)');
    const truth = await runLoop();
    printRequests(truth.exchanges);
    printUsage(truth.usage);
    const explainerTurn = truth.exchanges[0].request.messages.at(-1)!.content.split('\n');
    say('  explainer prompt, last turn (first lines):');
    for (const line of explainerTurn.slice(0, 6)) say(shown(line));
    const sample = truth.exchanges.find((e) => e.request.logprobs === true)!;
    say('  a simulation answer (first lines):');
    for (const line of (sample.response.choices[0].message.content ?? '').split('\n').slice(0, 4)) say(shown(line));
    printScores(truth.result);
    say();

    say(`2. Control: scoring a wrong explanation (planted rule "${wrong.id}") on the same records`);
    const control = await runLoop([wrong.description]);
    printUsage(control.usage);
    printScores(control.result);
  } finally {
    await server.close();
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`demo-explain-transcript: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
