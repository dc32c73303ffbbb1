/**
 * `neurolens ablate` and `neurolens weights` as a user runs them (bin/neurolens.mjs in a child
 * process): the documented JSON, agreement with the library, readable text, and one clear line
 * plus a non-zero exit for bad neurons, scales and models.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureModels } from '../scripts/gen-models.ts';
import { ablateText } from '../src/lib/causal/ablation.ts';
import { parseNeuronRecord } from '../src/lib/explain/formats.ts';
import { ActivationCapturer } from '../src/lib/model/capture.ts';
import { dirSource } from '../src/lib/model/dir-source.node.ts';
import { loadModel } from '../src/lib/model/load-model.ts';
import { ModelWeights } from '../src/lib/model/model-weights.ts';
import { loadNodeRuntime } from '../src/lib/model/ort-runtime.node.ts';
import { neuronWeightViews } from '../src/lib/model/weight-views.ts';

const BIN = join(import.meta.dirname, '../bin/neurolens.mjs');
const TOY = join(import.meta.dirname, '../public/models/toy-planted');
const TEXT = 'She said, "the 42 cats," and left.';
const run = promisify(execFile);

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { maxBuffer: 1 << 26, timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

let dir: string;
let capturer: ActivationCapturer;

beforeAll(async () => {
  ensureModels({ log: () => {} });
  dir = mkdtempSync(join(tmpdir(), 'neurolens-cli-ablate-'));
  capturer = new ActivationCapturer(await loadModel(await dirSource(TOY)), await loadNodeRuntime('node'));
}, 60_000);

afterAll(async () => {
  await capturer?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('neurolens ablate', () => {
  it('prints the documented JSON, equal to the library', async () => {
    const { code, stdout, stderr } = await cli(['ablate', '--model', 'toy-planted', '--text', TEXT, '--neurons', '1:91,0:37', '--json']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const out = JSON.parse(stdout);
    expect(Object.keys(out)).toEqual(['model', 'neurons', 'scale', 'tokens', 'positions']);
    expect(out.model).toContain('toy-planted');
    expect(out.neurons).toEqual([{ layer: 1, neuron: 91 }, { layer: 0, neuron: 37 }]);
    expect(out.scale).toBe(0);
    const lib = await ablateText(capturer, TEXT, [{ layer: 1, neuron: 91, scale: 0 }, { layer: 0, neuron: 37, scale: 0 }]);
    expect(out.tokens).toEqual(lib.tokens.map(({ id, text, start, end }) => ({ id, text, start, end })));
    expect(out.positions).toHaveLength(lib.tokens.length);
    out.positions.forEach((p: { kl: number; original: unknown[]; ablated: unknown[] }, i: number) => {
      expect(Object.keys(p)).toEqual(['kl', 'original', 'ablated']);
      expect(p.kl).toBe(lib.positions[i].kl);
      expect(p.original).toEqual(lib.positions[i].original);
      expect(p.ablated).toEqual(lib.positions[i].edited);
      expect(p.original).toHaveLength(10);
    });
    // The digits neuron and the closing-quote neuron matter most where they fire.
    const strongest = out.positions.map((p: { kl: number }, i: number) => [p.kl, out.tokens[i].text]).sort((a: number[], b: number[]) => b[0] - a[0]);
    expect(strongest.slice(0, 2).map((s: [number, string]) => s[1]).sort()).toEqual([' 42', ',"'].sort());
  });

  it('multiplies by K (negative as --scale=-K), and sets means from --mean or a scan folder', async () => {
    const steer = await cli(['ablate', '--model', 'toy-planted', '--text', TEXT, '--neurons', '0:37', '--scale=-2', '--top', '3', '--json']);
    expect(steer.code).toBe(0);
    const steered = JSON.parse(steer.stdout);
    expect(steered.scale).toBe(-2);
    const lib = await ablateText(capturer, TEXT, [{ layer: 0, neuron: 37, scale: -2 }], { top: 3 });
    expect(steered.positions.map((p: { kl: number }) => p.kl)).toEqual(lib.positions.map((p) => p.kl));
    expect(steered.positions[0].original).toHaveLength(3);

    const given = JSON.parse((await cli(['ablate', '--model', 'toy-planted', '--text', TEXT, '--neurons', '0:37,1:91', '--scale', 'mean', '--mean', '0.5,0.25', '--json'])).stdout);
    expect(given.scale).toBe('mean');
    expect(given.neurons).toEqual([{ layer: 0, neuron: 37, mean: 0.5 }, { layer: 1, neuron: 91, mean: 0.25 }]);
    const setLib = await ablateText(capturer, TEXT, [{ layer: 0, neuron: 37, value: 0.5 }, { layer: 1, neuron: 91, value: 0.25 }]);
    expect(given.positions.map((p: { kl: number }) => p.kl)).toEqual(setLib.positions.map((p) => p.kl));

    const scanDir = join(dir, 'scan');
    const scan = await cli(['scan', '--model', 'toy-planted', '--corpus', 'default', '--out', scanDir, '--layers', '1', '--max-excerpts', '12']);
    expect(scan.code).toBe(0);
    const mean = parseNeuronRecord(readFileSync(join(scanDir, '1/91.json'), 'utf8')).mean!;
    const fromScan = JSON.parse((await cli(['ablate', '--model', 'toy-planted', '--text', TEXT, '--neurons', '1:91', '--scale', 'mean', '--scan', scanDir, '--json'])).stdout);
    expect(fromScan.neurons).toEqual([{ layer: 1, neuron: 91, mean }]);
    const scanLib = await ablateText(capturer, TEXT, [{ layer: 1, neuron: 91, value: mean }]);
    expect(fromScan.positions.map((p: { kl: number }) => p.kl)).toEqual(scanLib.positions.map((p) => p.kl));
  }, 120_000);

  it('prints a readable report without --json', async () => {
    const { code, stdout } = await cli(['ablate', '--model', 'toy-planted', '--text', TEXT, '--neurons', '1:91']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/neurons 1:91 zeroed/);
    expect(stdout).toMatch(/where it matters most:\n {2}after #\d+ ",\\"": KL/);
    expect(stdout.split('\n').filter((l) => /^ +\d+ {2}"/.test(l))).toHaveLength(capturer.tokenize(TEXT).length);
  });

  describe('bad input: one clear line and a non-zero exit', () => {
    const base = ['ablate', '--model', 'toy-planted', '--text', TEXT];
    const cases: [string, () => string[], RegExp][] = [
      ['a neuron outside the layer', () => [...base, '--neurons', '0:256'], /neuron 0:256 is out of range: each layer has neurons 0-255/],
      ['a layer the model does not have', () => [...base, '--neurons', '2:1'], /layer 2 is out of range: this model has layers 0-1/],
      ['a malformed neuron', () => [...base, '--neurons', '0-37'], /--neurons: "0-37" is not layer:neuron/],
      ['no neurons', () => [...base], /--neurons is required/],
      ['the same neuron twice', () => [...base, '--neurons', '0:1,0:1'], /neuron 0:1 is edited twice/],
      ['a scale that is not a number', () => [...base, '--neurons', '0:1', '--scale', 'half'], /--scale must be 0, mean or a number K/],
      ['an infinite scale', () => [...base, '--neurons', '0:1', '--scale', 'Infinity'], /--scale must be 0, mean or a number K/],
      ['a negative scale without =', () => [...base, '--neurons', '0:1', '--scale', '-2'], /--scale=-XYZ/],
      ['mean without a source', () => [...base, '--neurons', '0:1', '--scale', 'mean'], /--scale mean needs exactly one of --scan <dir> or --mean <value>/],
      ['--mean without --scale mean', () => [...base, '--neurons', '0:1', '--mean', '1'], /--scan and --mean only go with --scale mean/],
      ['too many means', () => [...base, '--neurons', '0:1', '--scale', 'mean', '--mean', '1,2'], /--mean has 2 values for 1 neurons/],
      ['a scan folder without the neuron', () => [...base, '--neurons', '0:1', '--scale', 'mean', '--scan', join(dir, 'nowhere')], /--scan: no record of neuron 0:1/],
      ['an unknown model', () => ['ablate', '--model', 'no-such-model', '--text', TEXT, '--neurons', '0:1'], /unknown model "no-such-model"/],
      ['a file that is not a model', () => ['ablate', '--model', join(dir, 'notmodel'), '--text', TEXT, '--neurons', '0:1'], /notmodel is a file; pass the model's folder/],
      ['empty text', () => ['ablate', '--model', 'toy-planted', '--text', '', '--neurons', '0:1'], /the text is empty/],
    ];
    it.each(cases)('%s', async (_label, args, message) => {
      writeFileSync(join(dir, 'notmodel'), 'not a model');
      const { code, stdout, stderr } = await cli(args());
      expect(code).not.toBe(0);
      expect(stdout).toBe('');
      expect(stderr.split('\n')[0]).toMatch(message);
      expect(stderr.split('\n')[0]).toMatch(/^neurolens ablate: /);
    });
  });
});

describe('neurolens weights', () => {
  it('prints the documented JSON, equal to the library, in rank order', async () => {
    const { code, stdout, stderr } = await cli(['weights', '--model', 'toy-planted', '--neuron', '0:37', '--json']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const out = JSON.parse(stdout);
    expect(Object.keys(out)).toEqual(['input_tokens', 'output_tokens', 'related']);
    const model = await loadModel(await dirSource(TOY));
    const views = neuronWeightViews(ModelWeights.read(model.onnxBytes, { dModel: 64 }), { layer: 0, neuron: 37 }, (id) => model.tokenizer.tokenText(id));
    expect(out.input_tokens).toEqual(views.inputTokens);
    expect(out.output_tokens).toEqual(views.outputTokens);
    expect(out.related).toEqual(views.related);
    expect(out.input_tokens).toHaveLength(10);
    expect(out.input_tokens.every((t: { token: string }) => /^ ?[0-9]+$/.test(t.token))).toBe(true);
    const values = (list: { value: number }[]) => list.map((t) => t.value);
    expect(values(out.output_tokens.promoted)).toEqual([...values(out.output_tokens.promoted)].sort((a, b) => b - a));
    expect(values(out.output_tokens.suppressed)).toEqual([...values(out.output_tokens.suppressed)].sort((a, b) => a - b));
    expect(out.related.upstream).toEqual([]);
    expect(out.related.downstream.map((r: { layer: number }) => r.layer)).toEqual(Array(10).fill(1));
  });

  it('reads the int8 export, and prints a readable report', async () => {
    const q = await cli(['weights', '--model', 'toy-planted', '--neuron', '1:91', '--dtype', 'quantized', '--top', '3', '--json']);
    expect(q.code).toBe(0);
    const out = JSON.parse(q.stdout);
    expect(out.input_tokens).toHaveLength(3);
    expect(out.input_tokens.every((t: { token: string }) => t.token.includes('"'))).toBe(true);
    const text = await cli(['weights', '--model', 'toy-planted', '--neuron', '1:91']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^neuron 1:91 of .*toy-planted, from the weights alone\ninput tokens/);
    expect(text.stdout).toMatch(/promoted output tokens/);
    expect(text.stdout).toMatch(/downstream neurons \(layer 2\)[^\n]*\n {2}\(none: this is the last layer\)/);
  });

  describe('bad input: one clear line and a non-zero exit', () => {
    const cases: [string, string[], RegExp][] = [
      ['a neuron outside the layer', ['--model', 'toy-planted', '--neuron', '1:300'], /neuron 1:300 is out of range: each layer has neurons 0-255/],
      ['a layer the model does not have', ['--model', 'toy-planted', '--neuron', '7:1'], /layer 7 is out of range: this model has layers 0-1/],
      ['two neurons', ['--model', 'toy-planted', '--neuron', '0:1,0:2'], /--neuron takes one neuron, not 2/],
      ['a malformed neuron', ['--model', 'toy-planted', '--neuron', 'x'], /--neuron: "x" is not layer:neuron/],
      ['no neuron', ['--model', 'toy-planted'], /--neuron is required/],
      ['a bad --top', ['--model', 'toy-planted', '--neuron', '0:1', '--top', '0'], /--top must be a positive whole number/],
      ['an unknown model', ['--model', 'no-such-model', '--neuron', '0:1'], /unknown model "no-such-model"/],
      ['a bad --dtype', ['--model', 'toy-planted', '--neuron', '0:1', '--dtype', 'int4'], /--dtype must be auto, fp32, fp16, quantized \(or int8\), not "int4"/],
      ['a missing variant', ['--model', 'toy-planted', '--neuron', '0:1', '--dtype', 'fp16'], /has no fp16 variant; it has fp32 \(onnx\/model\.onnx\) and int8/],
    ];
    it.each(cases)('%s', async (_label, args, message) => {
      const { code, stdout, stderr } = await cli(['weights', ...args]);
      expect(code).not.toBe(0);
      expect(stdout).toBe('');
      expect(stderr.split('\n')[0]).toMatch(message);
      expect(stderr.split('\n')[0]).toMatch(/^neurolens weights: /);
    });
  });
});
