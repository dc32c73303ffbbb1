/**
 * Loading models with less memory in Node: onnxruntime-node reads instrumented models from
 * temporary files, the capturer lets go of the graph's bytes and reads them again when it needs
 * another graph; results are the same as from bytes kept in memory.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { ActivationCapturer } from '../src/lib/model/capture.ts';
import { dirSource } from '../src/lib/model/dir-source.node.ts';
import { loadModel } from '../src/lib/model/load-model.ts';
import { loadNodeRuntime } from '../src/lib/model/ort-runtime.node.ts';
import type { OrtRuntime, StagedModel } from '../src/lib/model/ort-runtime.ts';
import { ensureModels } from '../scripts/gen-models.ts';

/** Largest |a[i] − b[i]|; the arrays must be equally long. */
function maxDifference(a: Float32Array, b: Float32Array): number {
  expect(b.length).toBe(a.length);
  let worst = 0;
  a.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - b[i]))));
  return worst;
}

const { onnx } = onnxProto;
const TINY = join(import.meta.dirname, '../public/models/tiny-random');
const IDS = [[464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13]];

/** The runtime, with every staged model recorded. */
function recording(runtime: OrtRuntime): { runtime: OrtRuntime; staged: StagedModel[] } {
  const staged: StagedModel[] = [];
  const stageModel = runtime.stageModel!;
  return {
    staged,
    runtime: {
      ...runtime,
      stageModel: async (model, externalData) => {
        const s = await stageModel(model, externalData);
        staged.push(s);
        return s;
      },
    },
  };
}

/** A copy of the tiny model whose weights are in an external-data file next to the graph. */
function externalDataCopy(dir: string): void {
  for (const f of readdirSync(TINY)) if (f.endsWith('.json')) copyFileSync(join(TINY, f), join(dir, f));
  mkdirSync(join(dir, 'onnx'));
  const model = onnx.ModelProto.decode(readFileSync(join(TINY, 'onnx/model.onnx')));
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const t of model.graph!.initializer!) {
    if (!t.rawData || t.rawData.length < 64) continue;
    const data = Uint8Array.from(t.rawData);
    chunks.push(data);
    t.rawData = new Uint8Array(0);
    t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
    t.externalData = [
      { key: 'location', value: 'weights.bin' },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(data.length) },
    ];
    offset += data.length;
  }
  writeFileSync(join(dir, 'onnx/model.onnx'), onnx.ModelProto.encode(model).finish());
  writeFileSync(join(dir, 'onnx/weights.bin'), Buffer.concat(chunks));
}

describe('staged model loading (onnxruntime-node)', () => {
  let node: OrtRuntime;
  let reference: ActivationCapturer;
  const folders: string[] = [];

  beforeAll(async () => {
    ensureModels({ log: () => {} });
    node = await loadNodeRuntime('node');
    // Bytes kept in memory, as in the browser: the WASM runtime has no staging.
    const wasm = await loadNodeRuntime('wasm', 1);
    expect(wasm.stageModel).toBeUndefined();
    reference = new ActivationCapturer(await loadModel(await dirSource(TINY)), wasm);
  });

  afterAll(async () => {
    await reference.dispose();
    for (const f of folders) rmSync(f, { recursive: true, force: true });
  });

  it('stages to a file that a session reads, and removes it afterwards', async () => {
    expect(node.stageModel).toBeTypeOf('function');
    expect(node.reclaimMemory).toBeTypeOf('function');
    const bytes = new Uint8Array(readFileSync(join(TINY, 'onnx/model.onnx')));
    const staged = await node.stageModel!(bytes);
    expect(readFileSync(staged.path).equals(Buffer.from(bytes))).toBe(true);
    const { session, backend } = await node.createSession(staged.path);
    expect(backend).toBe('onnxruntime-node');
    expect(session.inputNames).toContain('input_ids');
    await session.release();
    await staged.dispose();
    await staged.dispose();
    expect(existsSync(staged.path)).toBe(false);
  });

  it('lets go of the graph after building a session, reads it again for another, and matches bytes kept in memory', async () => {
    const model = await loadModel(await dirSource(TINY));
    const size = model.onnxBytes.byteLength;
    expect(model.onnxSize).toBe(size);
    const { runtime, staged } = recording(node);
    const capturer = new ActivationCapturer(model, runtime);
    try {
      const first = await capturer.runTokens(IDS, { layers: [0] });
      expect(model.onnxBytes.byteLength).toBe(0);
      expect(model.onnxSize).toBe(size);
      // Another graph (another layer and GELU) needs the file again.
      const second = await capturer.runTokens(IDS, { layers: [1], gelu: 'tanh' });
      expect(staged.length).toBe(2);
      for (const s of staged) expect(existsSync(s.path)).toBe(false);
      const expected0 = await reference.runTokens(IDS, { layers: [0] });
      const expected1 = await reference.runTokens(IDS, { layers: [1], gelu: 'tanh' });
      expect(maxDifference(expected0.layers.get(0)!, first.layers.get(0)!)).toBeLessThan(1e-5);
      expect(maxDifference(expected1.layers.get(1)!, second.layers.get(1)!)).toBeLessThan(1e-5);
    } finally {
      await capturer.dispose();
    }
  });

  it('stages external-data files where the graph expects them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'neurolens-external-'));
    folders.push(dir);
    externalDataCopy(dir);
    const model = await loadModel(await dirSource(dir));
    expect(model.externalData.map((f) => f.path)).toEqual(['weights.bin']);
    const { runtime, staged } = recording(node);
    const capturer = new ActivationCapturer(model, runtime);
    try {
      const got = await capturer.runTokens(IDS, { layers: [1] });
      expect(model.externalData).toEqual([]);
      const again = await capturer.runTokens(IDS, { layers: [0, 1] });
      expect(staged.length).toBe(2);
      const expected = await reference.runTokens(IDS, { layers: [0, 1] });
      for (const [layer, values] of [
        [1, got.layers.get(1)!],
        [0, again.layers.get(0)!],
        [1, again.layers.get(1)!],
      ] as const) {
        expect(maxDifference(expected.layers.get(layer)!, values)).toBeLessThan(1e-5);
      }
    } finally {
      await capturer.dispose();
    }
  });

  it('keeps the bytes in memory when the model cannot be staged', async () => {
    const model = await loadModel(await dirSource(TINY));
    const failing: OrtRuntime = { ...node, stageModel: async () => Promise.reject(new Error('ENOSPC: no space left on device')) };
    const capturer = new ActivationCapturer(model, failing);
    try {
      const got = await capturer.runTokens(IDS, { layers: [0] });
      expect(model.onnxBytes.byteLength).toBe(model.onnxSize);
      const expected = await reference.runTokens(IDS, { layers: [0] });
      expect(maxDifference(expected.layers.get(0)!, got.layers.get(0)!)).toBeLessThan(1e-5);
    } finally {
      await capturer.dispose();
    }
  });

  it('says clearly when the model file changed before it could be read again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'neurolens-changing-'));
    folders.push(dir);
    for (const f of readdirSync(TINY)) if (f.endsWith('.json')) copyFileSync(join(TINY, f), join(dir, f));
    mkdirSync(join(dir, 'onnx'));
    copyFileSync(join(TINY, 'onnx/model.onnx'), join(dir, 'onnx/model.onnx'));
    const model = await loadModel(await dirSource(dir));
    const capturer = new ActivationCapturer(model, node);
    try {
      await capturer.runTokens(IDS, { layers: [0] });
      writeFileSync(join(dir, 'onnx/model.onnx'), 'not the model any more');
      await expect(capturer.runTokens(IDS, { layers: [1] })).rejects.toThrow(/gone or changed since the model was loaded/);
    } finally {
      await capturer.dispose();
    }
  });
});
