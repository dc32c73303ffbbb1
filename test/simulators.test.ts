import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChatClient } from '../src/lib/llm/client.ts';
import type { ChatRequest, TokenLogprob } from '../src/lib/llm/types.ts';
import { createSimulator } from '../src/lib/explain/simulator.ts';
import { decodeUtf8WithOffsets } from '../src/lib/explain/simulator-logprob.ts';
import { PromptLogprobsMissingError } from '../src/lib/explain/simulator-prompt-logprob.ts';
import { parseSampledAnswer } from '../src/lib/explain/simulator-sampled.ts';
import {
  logprobTokens,
  reply,
  splitTokens,
  startFakeOpenAiServer,
  type FakeHandler,
  type FakeOpenAiServer,
  type TokenSplit,
} from './helpers/fake-openai-server.ts';

// ---------------------------------------------------------------------------------------------
// What a scripted server needs: read the excerpt from the request, write answers by hand.

/** The excerpt tokens of a simulation request (its last user message lists `i<TAB>"token"`). */
function tokensOf(body: ChatRequest): string[] {
  const last = body.messages.filter((m) => m.role === 'user').at(-1)!.content;
  const tokens: string[] = [];
  for (const line of last.split('\n')) {
    const m = /^(\d+)\t(".*")$/.exec(line);
    if (m) tokens[Number(m[1])] = JSON.parse(m[2]) as string;
  }
  return tokens;
}

interface AnswerLine {
  index: number;
  token: string;
  value: string;
  /** Probabilities of alternatives at the value's first token (default: the value, certain). */
  alternatives?: Record<string, number>;
}

const line = (index: number, token: string, value: number | string, alternatives?: Record<string, number>): AnswerLine => ({
  index,
  token,
  value: String(value),
  alternatives,
});

/** The answer text and `logprobs.content`, with the alternatives placed at each value's first token. */
function linesAnswer(
  lines: AnswerLine[],
  options: { split?: TokenSplit; bytes?: boolean; nextAlternatives?: Map<number, Record<string, number>> } = {},
): { text: string; logprobs: TokenLogprob[] } {
  let text = '';
  const valueStarts = new Map<number, AnswerLine>();
  lines.forEach((l, i) => {
    const head = `${l.index}\t${JSON.stringify(l.token)}\t`;
    valueStarts.set(text.length + head.length, l);
    text += head + l.value + (i < lines.length - 1 ? '\n' : '');
  });
  const tokens = splitTokens(text, options.split ?? 'gpt');
  const starts: number[] = [];
  let at = 0;
  for (const t of tokens) {
    starts.push(at);
    at += t.length;
  }
  const logprobs = logprobTokens(text, {
    split: () => tokens,
    bytes: options.bytes,
    alternatives: (token, i) => {
      const l = valueStarts.get(starts[i]);
      if (l) return toLogprobs(l.alternatives ?? { [token]: 1 });
      return options.nextAlternatives?.get(i) ? toLogprobs(options.nextAlternatives.get(i)!) : undefined;
    },
  });
  return { text, logprobs };
}

function toLogprobs(p: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(p).map(([k, v]) => [k, Math.log(v)]));
}

const mean = (p: Record<number, number>) => {
  const total = Object.values(p).reduce((a, b) => a + b, 0);
  return Object.entries(p).reduce((s, [v, q]) => s + Number(v) * q, 0) / total;
};

let server: FakeOpenAiServer;
const client = () => createChatClient({ baseUrl: server.baseUrl, maxRetries: 0 });

beforeAll(async () => {
  server = await startFakeOpenAiServer();
});
afterAll(async () => {
  await server.close();
});

function serve(handler: FakeHandler) {
  server.reset();
  server.setHandler(handler);
}

describe('logprob simulator', () => {
  it('reads expected values from top_logprobs at each value position, with bytes', async () => {
    const excerpt = ['The', ' cat', '\t', ' sat', '\n'];
    serve((body) => {
      const tokens = tokensOf(body);
      const { text, logprobs } = linesAnswer([
        line(0, tokens[0], 0, { '0': 0.9, '1': 0.1 }),
        line(1, tokens[1], 8, { '8': 0.6, '9': 0.3, ' cat': 0.1 }),
        line(2, tokens[2], 0),
        line(3, tokens[3], 2, { '2': 0.5, '3': 0.25, '4': 0.25 }),
        line(4, tokens[4], 0),
      ]);
      return reply.completion(text, { logprobs });
    });
    const [sim] = await createSimulator(client(), { model: 'm' }).simulate('cats', [excerpt]);
    expect(sim.tokens).toEqual(excerpt);
    expect(sim.simulation_mode).toBe('logprob');
    expect(sim.coverage).toBe(1);
    expect(sim.expected_activations[0]).toBeCloseTo(0.1, 10);
    // " cat" is not a value: the rest is renormalised.
    expect(sim.expected_activations[1]).toBeCloseTo(mean({ 8: 0.6, 9: 0.3 }), 10);
    expect(sim.expected_activations[2]).toBe(0);
    expect(sim.expected_activations[3]).toBeCloseTo(2.75, 10);
    expect(sim.distribution_values[3]).toEqual([2, 3, 4]);
    expect(sim.distribution_probabilities[3]).toEqual([0.5, 0.25, 0.25]);
    // The request asks for logprobs and shows tokens JSON-quoted with their index.
    const sent = server.chatRequests[0].body!;
    expect(sent.logprobs).toBe(true);
    expect(sent.top_logprobs).toBe(20);
    expect(sent.messages.at(-1)!.content).toContain('2\t"\\t"');
    expect(sent.messages.at(-1)!.content).toContain('4\t"\\n"');
  });

  it('decodes a multi-byte character split across tokens from their bytes', async () => {
    const excerpt = [' Tokyo', ' 日本', ' é'];
    const splitCharacter = (logprobs: TokenLogprob[], bytes: boolean) => {
      const i = logprobs.findIndex((t) => t.token === ' 日本');
      const all = Array.from(new TextEncoder().encode(' 日本'));
      // Bytes 0..4 and 5..7: the cut falls inside 本, as byte-level BPE tokens can.
      const first = all.slice(0, 5);
      const second = all.slice(5);
      const piece = (b: number[], token: string): TokenLogprob => ({
        token,
        logprob: 0,
        bytes: bytes ? b : null,
        top_logprobs: [{ token, logprob: 0, bytes: bytes ? b : null }],
      });
      logprobs.splice(i, 1, piece(first, ' 日\\xe6'), piece(second, '\\x9c\\xac'));
      return logprobs;
    };
    for (const bytes of [true, false]) {
      serve((body) => {
        const tokens = tokensOf(body);
        const { text, logprobs } = linesAnswer(
          [line(0, tokens[0], 1, { '1': 1 }), line(1, tokens[1], 7, { '7': 0.5, '9': 0.5 }), line(2, tokens[2], 3, { '3': 1 })],
          { bytes },
        );
        return reply.completion(text, { logprobs: splitCharacter(logprobs, bytes) });
      });
      const [sim] = await createSimulator(client(), { model: 'm' }).simulate('places', [excerpt]);
      expect(sim.expected_activations[0]).toBe(1);
      expect(sim.expected_activations[2]).toBe(3);
      if (bytes) {
        expect(sim.expected_activations[1]).toBeCloseTo(8, 10);
        expect(sim.coverage).toBe(1);
        expect(server.chatRequests).toHaveLength(1);
      } else {
        // Without bytes the split character cannot be rebuilt: the token text does not match, so the
        // value is missing (retried once), never 0.
        expect(sim.expected_activations[1]).toBeNull();
        expect(sim.coverage).toBeCloseTo(2 / 3, 10);
        expect(server.chatRequests).toHaveLength(2);
      }
    }
  });

  it('decodes UTF-8 with per-unit byte offsets and replaces invalid bytes', () => {
    const { text, byteOffsets } = decodeUtf8WithOffsets(Uint8Array.from([0x61, 0xc3, 0xa9, 0xf0, 0x9f, 0x98, 0x80, 0xff, 0x62]));
    expect(text).toBe('aé😀\uFFFDb');
    expect(byteOffsets).toEqual([0, 1, 3, 3, 7, 8, 9]);
  });

  it('combines "1" followed by "0" into 10 when the tokenizer splits numbers into digits', async () => {
    const excerpt = ['a', 'b', 'c'];
    // One token per character: "10" is "1" then "0"; "12" (an index) is split too, harmlessly.
    serve((body) => {
      const tokens = tokensOf(body);
      const lines = [
        line(0, tokens[0], 10, { '1': 0.8, '2': 0.2 }),
        line(1, tokens[1], 1, { '1': 0.5, '0': 0.5 }),
        line(2, tokens[2], 3, { '3': 0.7, '1': 0.3 }),
      ];
      // Find the token positions right after line 0's and line 1's value "1".
      const probe = linesAnswer(lines, { split: 'chars' });
      const after = (l: number) => {
        let offset = 0;
        const texts = probe.text.split('\n');
        for (let k = 0; k < l; k++) offset += texts[k].length + 1;
        return offset + texts[l].lastIndexOf('\t') + 2;
      };
      const next = new Map([
        [after(0), { '0': 0.75, '\n': 0.25 }],
        [after(1), { '\n': 0.9, '0': 0.1 }],
      ]);
      const { text, logprobs } = linesAnswer(lines, { split: 'chars', nextAlternatives: next });
      return reply.completion(text, { logprobs });
    });
    const [sim] = await createSimulator(client(), { model: 'm' }).simulate('letters', [excerpt]);
    // Line 0 sampled "1","0": P(10) = 0.8 * 0.75, P(1) = 0.8 * 0.25, P(2) = 0.2.
    expect(sim.expected_activations[0]).toBeCloseTo(0.6 * 10 + 0.2 * 1 + 0.2 * 2, 10);
    expect(sim.distribution_values[0]).toEqual([1, 2, 10]);
    // Line 1 sampled "1" then newline; the next position still gives P("0" | "1") = 0.1.
    expect(sim.expected_activations[1]).toBeCloseTo(0.5 * 0.1 * 10 + 0.5 * 0.9 * 1 + 0.5 * 0, 10);
    // Line 2 sampled "3": the continuation of an alternative "1" is unknown, so it counts as 1.
    expect(sim.expected_activations[2]).toBeCloseTo(0.7 * 3 + 0.3 * 1, 10);
  });

  it('retries a sequence once when lines are missing or repeated, then reports nulls in coverage', async () => {
    const excerpt = ['x0', 'x1', 'x2', 'x3'];
    serve((body, i) => {
      const t = tokensOf(body);
      const lines =
        i === 0
          ? // Skips line 1, repeats line 2, writes the wrong token on line 3.
            [line(0, t[0], 4), line(2, t[2], 5), line(2, t[2], 6), line(3, 'x9', 7)]
          : // The retry gets lines 0, 2 and 3 right but still skips line 1.
            [line(0, t[0], 1), line(2, t[2], 2), line(3, t[3], 3)];
      const { text, logprobs } = linesAnswer(lines);
      return reply.completion(`Here you go:\n${text}`, {
        logprobs: [...logprobTokens('Here you go:\n'), ...logprobs],
      });
    });
    const [sim] = await createSimulator(client(), { model: 'm' }).simulate('x', [excerpt]);
    expect(server.chatRequests).toHaveLength(2);
    const first = server.chatRequests[0].body!.messages.at(-1)!.content;
    const second = server.chatRequests[1].body!.messages.at(-1)!.content;
    expect(second).not.toBe(first); // so a response cache cannot return the same answer
    // Line 0 from the first answer; 2 and 3 filled from the retry; 1 is still missing.
    expect(sim.expected_activations).toEqual([4, null, 2, 3]);
    expect(sim.coverage).toBe(0.75);
    expect(sim.distribution_values[1]).toEqual([]);
  });

  it('does not retry a complete answer and runs sequences concurrently, one request each', async () => {
    serve(async (body) => {
      const t = tokensOf(body);
      await new Promise((r) => setTimeout(r, 50));
      const { text, logprobs } = linesAnswer(t.map((tok, k) => line(k, tok, k)));
      return reply.completion(text, { logprobs });
    });
    const sims = await createSimulator(createChatClient({ baseUrl: server.baseUrl, concurrency: 3 }), { model: 'm' }).simulate(
      'x',
      [['a', 'b'], ['c'], ['d', 'e', 'f']],
    );
    expect(sims.map((s) => s.expected_activations)).toEqual([[0, 1], [0], [0, 1, 2]]);
    expect(server.chatRequests).toHaveLength(3);
    expect(server.maxInFlight).toBe(3);
  });
});

describe('sampled simulator and fallback', () => {
  const sampledAnswer = (values: number[]) =>
    JSON.stringify({ activations: values.map((value, index) => ({ index, value })) });

  it('falls back to sampled mode when the server returns no logprobs', async () => {
    serve((body) => {
      const t = tokensOf(body);
      if (body.logprobs) return reply.completion(t.map((tok, k) => `${k}\t${JSON.stringify(tok)}\t3`).join('\n'));
      return reply.completion(sampledAnswer(t.map((_, k) => k * 2)));
    });
    const simulator = createSimulator(client(), { model: 'm' });
    expect(simulator.mode).toBe('logprob');
    const [sim] = await simulator.simulate('x', [['a', 'b', 'c']]);
    expect(sim.simulation_mode).toBe('sampled');
    expect(sim.expected_activations).toEqual([0, 2, 4]);
    expect(simulator.mode).toBe('sampled');
    const sampled = server.chatRequests[1].body!;
    expect(sampled.logprobs).toBeUndefined();
    expect(sampled.response_format).toMatchObject({ type: 'json_schema', json_schema: { strict: true } });
    // Later calls go straight to sampled mode.
    server.reset();
    await simulator.simulate('x', [['d']]);
    expect(server.chatRequests).toHaveLength(1);
    expect(server.chatRequests[0].body!.logprobs).toBeUndefined();
  });

  it('falls back when the server rejects logprobs as unsupported', async () => {
    serve((body) => {
      if (body.logprobs) {
        return reply.error(400, 'logprobs are not supported with reasoning models', {
          param: 'logprobs',
          code: 'unsupported_parameter',
        });
      }
      return reply.completion(sampledAnswer(tokensOf(body).map(() => 5)));
    });
    const [sim] = await createSimulator(client(), { model: 'm' }).simulate('x', [['a', 'b']]);
    expect(sim.simulation_mode).toBe('sampled');
    expect(sim.expected_activations).toEqual([5, 5]);
    expect(server.chatRequests.map((r) => r.body!.logprobs)).toEqual([true, undefined]);
    // Other request errors are not a reason to switch modes.
    serve(() => reply.error(400, 'messages too long'));
    await expect(createSimulator(client(), { model: 'm' }).simulate('x', [['a']])).rejects.toThrow(/messages too long/);
    expect(server.chatRequests).toHaveLength(1);
  });

  it('samples directly for reasoning models, with max_completion_tokens and no temperature', async () => {
    serve((body) => reply.completion(sampledAnswer(tokensOf(body).map(() => 4))));
    const simulator = createSimulator(client(), { model: 'o-model', reasoningModel: true });
    expect(simulator.mode).toBe('sampled');
    const [sim] = await simulator.simulate('x', [['a', 'b']]);
    expect(sim.expected_activations).toEqual([4, 4]);
    expect(server.chatRequests).toHaveLength(1);
    const sampled = server.chatRequests[0].body!;
    expect(sampled.logprobs).toBeUndefined();
    expect(sampled.max_tokens).toBeUndefined();
    expect(sampled.temperature).toBeUndefined();
    expect(sampled.max_completion_tokens).toBeGreaterThan(0);
  });

  it('averages several samples into an empirical distribution', async () => {
    serve((body) =>
      reply.completion(null, {
        choices: [
          { content: sampledAnswer([0, 10]) },
          { content: sampledAnswer([2, 10]) },
          { content: sampledAnswer([2, 4]) },
          { content: sampledAnswer([2, 4]) },
        ].slice(0, body.n ?? 1),
      }),
    );
    const [sim] = await createSimulator(client(), { model: 'm', mode: 'sampled', samples: 4 }).simulate('x', [['a', 'b']]);
    expect(server.chatRequests).toHaveLength(1);
    expect(server.chatRequests[0].body!.n).toBe(4);
    expect(sim.expected_activations).toEqual([1.5, 7]);
    expect(sim.distribution_values).toEqual([[0, 2], [4, 10]]);
    expect(sim.distribution_probabilities).toEqual([[0.25, 0.75], [0.5, 0.5]]);
  });

  it('tops up samples with more requests when the server ignores n', async () => {
    serve((_body, i) => reply.completion(sampledAnswer([i * 2])));
    const [sim] = await createSimulator(client(), { model: 'm', mode: 'sampled', samples: 3 }).simulate('x', [['a']]);
    expect(server.chatRequests).toHaveLength(3);
    // Follow-ups differ (seed), so a cache can't hand back the first sample again.
    expect(new Set(server.chatRequests.map((r) => r.rawBody)).size).toBe(3);
    expect(sim.expected_activations).toEqual([2]);
  });

  it('salvages truncated JSON, retries the missing tokens, and reports what stays missing', async () => {
    const full = sampledAnswer([1, 2, 3, 4]);
    const cut = full.slice(0, full.indexOf('{"index":2') + 8); // entries 0 and 1 complete, 2 cut off
    serve((_body, i) => reply.completion(i === 0 ? cut : sampledAnswer([9, 9, 7]), { finishReason: 'length' }));
    const [sim] = await createSimulator(client(), { model: 'm', mode: 'sampled' }).simulate('x', [['a', 'b', 'c', 'd']]);
    expect(server.chatRequests).toHaveLength(2);
    // 0 and 1 from the salvaged first answer, 2 from the retry, 3 missing in both.
    expect(sim.expected_activations).toEqual([1, 2, 7, null]);
    expect(sim.coverage).toBe(0.75);
  });

  it('parses answers leniently but rejects out-of-range, foreign and repeated indexes', () => {
    expect([...parseSampledAnswer('```json\n{"activations":[{"index":0,"value":3}]}\n```', 2)]).toEqual([[0, 3]]);
    expect([...parseSampledAnswer('{"activations":[4, 5]}', 2)]).toEqual([
      [0, 4],
      [1, 5],
    ]);
    const odd = parseSampledAnswer(
      '{"activations":[{"index":0,"value":11},{"index":5,"value":1},{"index":1,"value":2},{"index":1,"value":3},{"value":6,"index":2}]}',
      3,
    );
    expect([...odd]).toEqual([[2, 6]]);
    expect(parseSampledAnswer('not json at all', 3).size).toBe(0);
  });
});

describe('prompt-logprob simulator', () => {
  it('reads distributions at the placeholder positions of the prompt, walking back from the end', async () => {
    // The second token contains the placeholder word itself, which must not be taken for a value slot.
    const excerpt = [' it', 'unknown', ' is'];
    serve((body) => {
      const answer = body.messages.at(-1)!;
      expect(answer.role).toBe('assistant');
      expect(body.continue_final_message).toBe(true);
      expect(body.add_generation_prompt).toBe(false);
      const entry = (actual: string, alternatives: Record<string, number>) =>
        Object.fromEntries(
          Object.entries({ ...alternatives, [actual]: alternatives[actual] ?? 1e-6 }).map(([token, p], k) => [
            String(1000 + k),
            { logprob: Math.log(p), rank: k + 1, decoded_token: token },
          ]),
        );
      // Earlier prompt text (few-shot examples) also mentions the word; it lies before the answer.
      const prompt = [
        null,
        entry('unknown', { unknown: 0.5, the: 0.5 }),
        entry('x', { x: 1 }),
        // The answer: line 0 value, line 1 token, line 1 value, line 2 value.
        entry('unknown', { '2': 0.5, '4': 0.5 }),
        entry('"', { '"': 1 }),
        entry('unknown', { unknown: 0.9, foo: 0.1 }),
        entry('unknown', { '7': 0.25, '8': 0.75 }),
        entry('\t', { '\t': 1 }),
        entry('unknown', { '0': 0.8, '1': 0.2, ' 3': 0.0 + 1e-9 }),
      ];
      return reply.completion('', { promptLogprobs: prompt });
    });
    const [sim] = await createSimulator(client(), { model: 'm', mode: 'prompt-logprob' }).simulate('x', [excerpt]);
    expect(sim.simulation_mode).toBe('prompt-logprob');
    expect(sim.expected_activations[0]).toBeCloseTo(3, 6);
    expect(sim.expected_activations[1]).toBeCloseTo(7.75, 6);
    expect(sim.expected_activations[2]).toBeCloseTo(0.2, 6);
    expect(sim.coverage).toBe(1);
    const sent = server.chatRequests[0].body!;
    expect(sent.prompt_logprobs).toBe(20);
    expect(sent.messages.at(-1)!.content.split('\n')).toEqual([
      '0\t" it"\tunknown',
      '1\t"unknown"\tunknown',
      '2\t" is"\tunknown',
    ]);
  });

  it('gives nulls when the placeholders cannot be located, and a clear error without prompt_logprobs', async () => {
    serve(() => reply.completion('', { promptLogprobs: [null, { '1': { logprob: 0, decoded_token: 'x' } }] }));
    const [sim] = await createSimulator(client(), { model: 'm', mode: 'prompt-logprob' }).simulate('x', [['a', 'b']]);
    expect(sim.expected_activations).toEqual([null, null]);
    expect(sim.coverage).toBe(0);

    serve(() => reply.completion('ok'));
    await expect(
      createSimulator(client(), { model: 'm', mode: 'prompt-logprob' }).simulate('x', [['a']]),
    ).rejects.toThrow(PromptLogprobsMissingError);
  });
});

describe('simulator input checks', () => {
  it('rejects bad input with clear errors', async () => {
    const simulator = createSimulator(client(), { model: 'm' });
    await expect(simulator.simulate('', [['a']])).rejects.toThrow(/non-empty/);
    await expect(simulator.simulate('x', [['a', 3 as unknown as string]])).rejects.toThrow(/tokens\[0\]\[1\]/);
    expect(() => createSimulator(client(), { model: 'm', mode: 'guess' as never })).toThrow(/unknown simulation mode/);
  });
});
