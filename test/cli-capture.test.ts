/**
 * `neurolens capture` as a user runs it (bin/neurolens.mjs in a child process): JSON shape,
 * layer and neuron selection, and one clear line plus a non-zero exit for every kind of bad input.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, mkdirSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensureModels } from '../scripts/gen-models.ts';
import { referenceForward } from '../src/lib/model/reference-forward.ts';
import { tinyRandomModel } from '../scripts/toy/models.ts';
import { buildNoMlpModel } from './helpers/mini-graphs.ts';
import { startFakeHub, type FakeHub } from './helpers/fake-hub-server.ts';

const BIN = join(import.meta.dirname, '../bin/neurolens.mjs');
const TINY = join(import.meta.dirname, '../public/models/tiny-random');
const run = promisify(execFile);

let hubUrl = '';

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const env = { ...process.env, HF_ENDPOINT: hubUrl };
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { maxBuffer: 1 << 26, timeout: 60_000, env });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('neurolens capture', () => {
  let dir: string;
  let hub: FakeHub;
  beforeAll(async () => {
    ensureModels({ log: () => {} });
    dir = mkdtempSync(join(tmpdir(), 'neurolens-cli-'));
    hub = await startFakeHub({ repos: { 'test-org/tiny': TINY } });
    hubUrl = hub.url;
    return () => hub.close();
  });

  it('loads a model by hub id (from a local hub mirror named by HF_ENDPOINT)', async () => {
    const { code, stdout, stderr } = await cli(['capture', '--model', 'test-org/tiny', '--text', 'Hello hub', '--layers', '0', '--json']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const out = JSON.parse(stdout);
    expect(out.model).toBe('test-org/tiny');
    expect(out.activations['blocks.0.mlp.hook_post'][0]).toHaveLength(128);
    expect(hub.requests.filter((r) => r.method === 'GET').map((r) => r.url)).toContain('/test-org/tiny/resolve/main/onnx/model.onnx');
  });

  it('a folder holding a single variant loads it, whatever --dtype asks, and says which one on stderr', async () => {
    const onlyInt8 = join(dir, 'only-int8');
    mkdirSync(join(onlyInt8, 'onnx'), { recursive: true });
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'onnx/model_quantized.onnx']) cpSync(join(TINY, f), join(onlyInt8, f));
    const auto = await cli(['capture', '--model', onlyInt8, '--text', 'Hello', '--json']);
    expect(auto.code).toBe(0);
    expect(auto.stderr).toBe(`${onlyInt8}: using onnx/model_quantized.onnx (int8 · 99.9% of activations within 0.13 of exact (largest difference 0.26))\n`);
    const asked = await cli(['capture', '--model', onlyInt8, '--text', 'Hello', '--dtype', 'fp32', '--json']);
    expect(asked.code).toBe(0);
    expect(asked.stderr).toMatch(/has no fp32 variant, only int8 \(onnx\/model_quantized\.onnx\): using it/);
    expect(JSON.parse(asked.stdout).activations).toEqual(JSON.parse(auto.stdout).activations);

    // Several variants, none of them the one asked for: the choice is the user's.
    const two = join(dir, 'fp16-and-int8');
    cpSync(onlyInt8, two, { recursive: true });
    cpSync(join(TINY, 'onnx/model_fp16.onnx'), join(two, 'onnx/model_fp16.onnx'));
    const refused = await cli(['capture', '--model', two, '--text', 'Hello', '--dtype', 'fp32']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/has no fp32 variant; it has fp16 \(onnx\/model_fp16\.onnx\) and int8 \(onnx\/model_quantized\.onnx\)/);
    const fp16 = await cli(['capture', '--model', two, '--text', 'Hello', '--json']);
    expect(fp16.stderr).toMatch(/using onnx\/model_fp16\.onnx \(fp16 · /);
  });

  it('prints the documented JSON for all neurons, matching the reference', async () => {
    const text = 'Tabs\tand emoji 🦊 here.';
    const { code, stdout } = await cli(['capture', '--model', TINY, '--text', text, '--json']);
    expect(code).toBe(0);
    const out = JSON.parse(stdout);
    expect(out.model).toContain('tiny-random');
    expect(out.backend).toBe('onnxruntime-node');
    // Spans cover the text in order; byte fragments of one emoji share (part of) that emoji's span.
    let covered = 0;
    let lastStart = 0;
    for (const t of out.tokens as { start: number; end: number; text: string; fragment?: boolean }[]) {
      expect(t.start).toBeGreaterThanOrEqual(lastStart);
      expect(t.start).toBeLessThanOrEqual(covered);
      if (!t.fragment) expect(text.slice(t.start, t.end)).toBe(t.text);
      lastStart = t.start;
      covered = Math.max(covered, t.end);
    }
    expect(covered).toBe(text.length);
    const fox = out.tokens.filter((t: { fragment?: boolean }) => t.fragment);
    expect(fox.length).toBeGreaterThan(1);
    for (const t of fox) expect(t.text.trim()).toBe('🦊');
    expect(Object.keys(out.activations)).toEqual(['blocks.0.mlp.hook_post', 'blocks.1.mlp.hook_post']);
    const { config, weights } = tinyRandomModel();
    const ref = referenceForward(config, weights, out.tokens.map((t: { id: number }) => t.id));
    for (const layer of [0, 1]) {
      const rows: number[][] = out.activations[`blocks.${layer}.mlp.hook_post`];
      expect(rows.length).toBe(out.tokens.length);
      rows.forEach((row, t) => {
        expect(row.length).toBe(128);
        row.forEach((v, n) => expect(Math.abs(v - ref.mlpPost[layer][t * 128 + n])).toBeLessThanOrEqual(1e-4));
      });
    }
  });

  it('--layers keeps only those layers; --neurons keeps only those columns keyed "L:N"; reads --file', async () => {
    const file = join(dir, 'text.txt');
    writeFileSync(file, 'One two three.\r\nFour.');
    const layers = JSON.parse((await cli(['capture', '--model', TINY, '--file', file, '--layers', '1', '--json'])).stdout);
    expect(Object.keys(layers.activations)).toEqual(['blocks.1.mlp.hook_post']);
    const neurons = JSON.parse((await cli(['capture', '--model', TINY, '--file', file, '--neurons', '1:5,0:127', '--json'])).stdout);
    expect(Object.keys(neurons.activations)).toEqual(['1:5', '0:127']);
    expect(neurons.activations['1:5']).toEqual(layers.activations['blocks.1.mlp.hook_post'].map((r: number[]) => r[5]));
  });

  it('--top K lists the K most active neurons per token, and the table is readable', async () => {
    const json = JSON.parse((await cli(['capture', '--model', 'toy-planted', '--text', 'In 1999 the', '--top', '3', '--json'])).stdout);
    expect(json.top).toHaveLength(json.tokens.length);
    expect(json.top[1].map((x: { neuron: string }) => x.neuron)).toContain('0:37'); // " 1999" lights the planted digit neuron
    const table = await cli(['capture', '--model', 'toy-planted', '--text', 'In 1999 the', '--top', '2']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/" 1999"/);
    expect(table.stdout).toMatch(/0:37=/);
  });

  const badCases: [string, string[], RegExp][] = [
    ['empty text', ['--text', ''], /the text is empty/],
    ['text longer than the context', ['--text', 'word '.repeat(200)], /longer than this model's 128-token context.*windows/],
    ['unknown hub id', ['--model', 'nobody/no-such-model', '--text', 'hi'], /no model at nobody\/no-such-model: config.json not found/],
    ['missing folder', ['--model', '/nonexistent/dir', '--text', 'hi'], /unknown model|no model/i],
    ['layer out of range', ['--text', 'hi', '--layers', '2'], /layer 2 .*(out of range|does not exist).*0/],
    ['neuron out of range', ['--text', 'hi', '--neurons', '0:128'], /neuron 0:128 is out of range: each layer has neurons 0-127/],
    ['malformed neuron list', ['--text', 'hi', '--neurons', '5-131'], /not layer:neuron/],
    ['both --text and --file', ['--text', 'a', '--file', 'b'], /exactly one of --text or --file/],
    ['unreadable --file', ['--file', '/nonexistent.txt'], /cannot read \/nonexistent.txt/],
  ];
  for (const [name, args, message] of badCases) {
    it(`bad input: ${name} → one clear line, non-zero exit`, async () => {
      const withModel = args.includes('--model') ? args : ['--model', TINY, ...args];
      const { code, stdout, stderr } = await cli(['capture', ...withModel]);
      expect(code).not.toBe(0);
      expect(stdout).toBe('');
      expect(stderr).toMatch(message);
      expect(stderr.trim().split('\n').length).toBeLessThanOrEqual(2);
    });
  }

  it('bad model files: a file that is not ONNX, and an ONNX graph with no MLP', async () => {
    const notOnnx = join(dir, 'not-onnx');
    mkdirSync(join(notOnnx, 'onnx'), { recursive: true });
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) cpSync(join(TINY, f), join(notOnnx, f));
    writeFileSync(join(notOnnx, 'onnx/model.onnx'), 'this is a text file, not a model\n'.repeat(10));
    const a = await cli(['capture', '--model', notOnnx, '--text', 'hi']);
    expect(a.code).not.toBe(0);
    expect(a.stderr).toMatch(/not an ONNX model/);

    const noMlp = join(dir, 'no-mlp');
    cpSync(notOnnx, noMlp, { recursive: true });
    writeFileSync(join(noMlp, 'onnx/model.onnx'), buildNoMlpModel().bytes);
    const b = await cli(['capture', '--model', noMlp, '--text', 'hi']);
    expect(b.code).not.toBe(0);
    expect(b.stderr).toMatch(/no GPT-2 MLP found/i);
    expect(readFileSync(join(TINY, 'onnx/model.onnx')).length).toBeGreaterThan(0);
  });

  it('--windowed analyses over-long text in windows', async () => {
    const out = JSON.parse((await cli(['capture', '--model', TINY, '--text', 'word '.repeat(200).trim(), '--windowed', '--layers', '0', '--json'])).stdout);
    expect(out.tokens).toHaveLength(200);
    expect(out.windows).toBe(2);
    expect(out.activations['blocks.0.mlp.hook_post']).toHaveLength(200);
  });
});
