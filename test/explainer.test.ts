import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChatClient } from '../src/lib/llm/client.ts';
import { ExplanationError, generateExplanations, parseExplanation } from '../src/lib/explain/explainer.ts';
import {
  formatHighlightedExcerpt,
  formatRecordsForExplainer,
  formatTokensForSimulation,
  PromptFormatError,
} from '../src/lib/explain/prompt-format.ts';
import { reply, startFakeOpenAiServer, type FakeOpenAiServer } from './helpers/fake-openai-server.ts';

describe('prompt formatting', () => {
  it('writes token<TAB>value lines normalised 0-10 over all records shown, each record delimited', () => {
    const text = formatRecordsForExplainer([
      { tokens: ['a', ' b', ' c'], activations: [0, 5, 2.6] },
      { tokens: ['d', '\te'], activations: [-1, 4] },
    ]);
    // Max over both records is 5: 2.6 -> floor(5.2) = 5, 4 -> 8, negative -> 0.
    expect(text).toBe(['<start>', 'a\t0', ' b\t10', ' c\t5', '<end>', '', '<start>', 'd\t0', '\\te\t8', '<end>'].join('\n'));
  });

  it('repeats the non-zero pairs after the full list when fewer than 20% are non-zero', () => {
    const tokens = Array.from({ length: 10 }, (_, i) => ` t${i}`);
    const sparse = formatRecordsForExplainer([{ tokens, activations: tokens.map((_, i) => (i === 3 ? 2 : 0)) }]);
    const lines = sparse.split('\n');
    expect(lines.slice(0, 12)).toEqual(['<start>', ...tokens.map((t, i) => `${t}\t${i === 3 ? 10 : 0}`), '<end>']);
    expect(lines.slice(13)).toEqual(['<start>', ' t3\t10', '<end>']);
    // Two of ten non-zero is exactly 20%: no repetition.
    const dense = formatRecordsForExplainer([{ tokens, activations: tokens.map((_, i) => (i < 2 ? 1 : 0)) }]);
    expect(dense.split('\n')).toHaveLength(12);
  });

  it('formats simulator lines with index and JSON-quoted tokens, and highlighted excerpts', () => {
    expect(formatTokensForSimulation([' a', '\n', '"q"'])).toBe('0\t" a"\n1\t"\\n"\n2\t"\\"q\\""');
    expect(formatHighlightedExcerpt(['The', ' big', ' cat', ' sat'], [false, true, true, false])).toBe('The<< big cat>> sat');
    expect(() => formatRecordsForExplainer([{ tokens: ['a'], activations: [] }])).toThrow(PromptFormatError);
  });
});

describe('parseExplanation', () => {
  it('keeps the phrase and strips the prefix, labels, quotes and the final period', () => {
    expect(parseExplanation('words about cooking')).toBe('words about cooking');
    expect(parseExplanation('The main thing this neuron does is find words about cooking.')).toBe('words about cooking');
    expect(parseExplanation('"the main thing this neuron does is find: plural nouns."')).toBe('plural nouns');
    expect(parseExplanation('Explanation: “closing brackets”.')).toBe('closing brackets');
    expect(parseExplanation('... numbers in dates\nBecause the excerpts show years.')).toBe('numbers in dates');
    expect(parseExplanation('  \n\nthe word "not"  ')).toBe('the word "not"');
  });

  it('rejects empty, overlong, echoed and refusing replies', () => {
    expect(parseExplanation('')).toBeNull();
    expect(parseExplanation(null)).toBeNull();
    expect(parseExplanation('"."')).toBeNull();
    expect(parseExplanation('the main thing this neuron does is find')).toBeNull();
    expect(parseExplanation('x'.repeat(400))).toBeNull();
    expect(parseExplanation('<start>\n cat\t10')).toBeNull();
    expect(parseExplanation(' cat\t10')).toBeNull();
    expect(parseExplanation("I'm sorry, I can't help with that")).toBeNull();
  });
});

describe('generateExplanations', () => {
  let server: FakeOpenAiServer;
  const records = [
    { tokens: ['The', ' cat', ' sat'], activations: [0, 3, 0] },
    { tokens: ['A', ' dog', ' ran'], activations: [0, 6, 0.5] },
  ];
  beforeAll(async () => {
    server = await startFakeOpenAiServer();
  });
  afterAll(async () => {
    await server.close();
  });
  const client = () => createChatClient({ baseUrl: server.baseUrl, maxRetries: 0 });

  it('sends a few-shot prompt ending with the records and returns n candidates from one request', async () => {
    server.reset();
    server.setHandler((body) =>
      reply.completion(null, {
        choices: ['pets', 'The main thing this neuron does is find animals.', '"domestic animals"'].slice(0, body.n ?? 1).map((c) => ({ content: c })),
      }),
    );
    const explanations = await generateExplanations(client(), records, { model: 'm', n: 3 });
    expect(explanations).toEqual(['pets', 'animals', 'domestic animals']);
    expect(server.chatRequests).toHaveLength(1);
    const body = server.chatRequests[0].body!;
    expect(body.n).toBe(3);
    expect(body.temperature).toBe(1);
    expect(body.messages[0].role).toBe('system');
    // Worked examples come as user/assistant pairs before the neuron to explain.
    expect(body.messages.filter((m) => m.role === 'assistant').length).toBeGreaterThanOrEqual(2);
    const last = body.messages.at(-1)!;
    expect(last.role).toBe('user');
    expect(last.content).toContain('<start>\nThe\t0\n cat\t5\n sat\t0\n<end>');
    expect(last.content).toContain('<start>\nA\t0\n dog\t10\n ran\t0\n<end>');
    expect(last.content).toContain('the main thing this neuron does is find');
  });

  it('makes further requests when the server ignores n, each different from the first', async () => {
    server.reset();
    server.setHandler((_body, i) => reply.completion(`candidate ${i}`));
    const explanations = await generateExplanations(client(), records, { model: 'm', n: 3 });
    expect(explanations).toEqual(['candidate 0', 'candidate 1', 'candidate 2']);
    expect(server.chatRequests).toHaveLength(3);
    expect(new Set(server.chatRequests.map((r) => r.rawBody)).size).toBe(3);
  });

  it('with distinct: a server that ignores n and repeats itself is asked again until there are n different explanations', async () => {
    server.reset();
    // One choice whatever n is; the same phrase twice before another one.
    server.setHandler((_body, i) => reply.completion(i < 2 ? 'animal nouns' : 'pets'));
    const explanations = await generateExplanations(client(), records, { model: 'm', n: 2, distinct: true });
    expect(explanations).toEqual(['animal nouns', 'pets']);
    expect(server.chatRequests.map((r) => r.body!.n)).toEqual([2, undefined, undefined]);
    expect(new Set(server.chatRequests.map((r) => r.rawBody)).size).toBe(3);

    // Always the same answer: never a failure, the one explanation there is (after 2n + 2 requests).
    server.reset();
    server.setHandler(() => reply.completion('animal nouns'));
    expect(await generateExplanations(client(), records, { model: 'm', n: 2, distinct: true })).toEqual(['animal nouns']);
    expect(server.chatRequests).toHaveLength(6);
    // Without distinct, repeats are kept, as the CLI has always done.
    server.reset();
    expect(await generateExplanations(client(), records, { model: 'm', n: 2 })).toEqual(['animal nouns', 'animal nouns']);
  });

  it('asks again after an unusable reply, restating the format', async () => {
    server.reset();
    server.setHandler((_body, i) => reply.completion(i === 0 ? "I'm sorry, I cannot do that." : 'animal nouns'));
    const explanations = await generateExplanations(client(), records, { model: 'm' });
    expect(explanations).toEqual(['animal nouns']);
    expect(server.chatRequests).toHaveLength(2);
    expect(server.chatRequests[0].body!.temperature).toBe(0);
    expect(server.chatRequests[1].body!.messages.at(-1)!.content).toMatch(/one short phrase only/);
  });

  it('gives up with a clear error after a bounded number of unusable replies', async () => {
    server.reset();
    server.setHandler(() => reply.completion(''));
    await expect(generateExplanations(client(), records, { model: 'm', n: 2 })).rejects.toThrow(ExplanationError);
    expect(server.chatRequests).toHaveLength(4); // n + 2
    await expect(generateExplanations(client(), [], { model: 'm' })).rejects.toThrow(/without any activation records/);
    await expect(generateExplanations(client(), records, { model: 'm', n: 0 })).rejects.toThrow(/positive integer/);
  });

  it('uses max_completion_tokens and no temperature for reasoning models', async () => {
    server.reset();
    server.setHandler(() => reply.completion('animals'));
    await generateExplanations(client(), records, { model: 'o-model', reasoningModel: true });
    const body = server.chatRequests[0].body!;
    expect(body.max_tokens).toBeUndefined();
    expect(body.temperature).toBeUndefined();
    expect(body.max_completion_tokens).toBeGreaterThan(1000);
  });
});
