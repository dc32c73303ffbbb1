/**
 * Records of a paused scan (runPartialRecords): built from the checkpoint's statistics by the scan
 * job's own sampling and record steps, they cover exactly the excerpts scanned so far (each
 * neuron's maximum and mean equal brute force over those excerpts), leave the checkpoint as it
 * was, and the job then resumes to the records of an uninterrupted run.
 */
import { describe, expect, it } from 'vitest';
import type { CorpusExcerpt } from '../src/lib/activations/corpus.ts';
import type { NeuronRecord } from '../src/lib/activations/records.ts';
import { MemoryRowSpill } from '../src/lib/activations/row-spill.ts';
import { runPartialRecords, runScanJob, type ScanJobProgress, type ScanJobSettings } from '../src/lib/activations/scan-job.ts';
import { ScanAbortedError, scanOrder, ScanError } from '../src/lib/activations/scan.ts';
import { makeExcerpts, makeSyntheticSource, MemoryCheckpoints, syntheticActivation, type SourceLog } from './helpers/synthetic-scan.ts';

const asExcerpts = (ids: number[][]): CorpusExcerpt[] => ids.map((tokenIds, i) => ({ tokenIds, tokens: tokenIds.map((t) => `t${t}`), documentIndex: i }));

describe('records of a paused scan', () => {
  const dMlp = 40;
  const layers = [0, 2];
  const ids = makeExcerpts(96, 11);
  const excerpts = asExcerpts(ids);
  const settings: ScanJobSettings = { layers, dMlp, topK: 4, randomSampleSize: 6, quantileSampleSize: 2, seed: 3, batchSize: 4, checkpointEvery: 8 };

  async function job(options: { checkpoints?: MemoryCheckpoints; signal?: AbortSignal; onProgress?: (p: ScanJobProgress) => void } = {}) {
    const records: NeuronRecord[] = [];
    await runScanJob({
      excerpts,
      settings,
      source: makeSyntheticSource({ dMlp }),
      adapters: { checkpoints: options.checkpoints, openSpill: () => new MemoryRowSpill(), onProgress: options.onProgress },
      signal: options.signal,
      saveRecords: async (chunk) => void records.push(...chunk),
    });
    return records;
  }

  it('cover the excerpts scanned so far, keep the checkpoint, and the scan then resumes to the full records', async () => {
    const checkpoints = new MemoryCheckpoints();
    const controller = new AbortController();
    const stopped = await job({ checkpoints, signal: controller.signal, onProgress: (p) => p.phase === 'scanning' && p.excerptsDone >= 40 && controller.abort() }).catch((e: unknown) => e);
    expect(stopped).toBeInstanceOf(ScanAbortedError);
    const saved = checkpoints.saved!;
    const done = saved.excerptsDone;
    expect(done).toBeGreaterThanOrEqual(40);
    expect(done).toBeLessThan(96);
    const savedBytes = saved.state.map((b) => Array.from(new Uint8Array(b)));

    const log: SourceLog = { calls: [] };
    const partial: NeuronRecord[] = [];
    const phases: string[] = [];
    const result = await runPartialRecords({
      excerpts,
      settings,
      source: makeSyntheticSource({ dMlp, log }),
      adapters: { checkpoints, openSpill: () => new MemoryRowSpill(), onProgress: (p) => phases.at(-1) !== p.phase && phases.push(p.phase) },
      saveRecords: async (chunk) => void partial.push(...chunk),
    });
    expect(result).toMatchObject({ excerptsDone: done, excerptsTotal: 96, records: layers.length * dMlp });
    expect(phases).toEqual(['sampling', 'building-records']);
    expect(partial).toHaveLength(layers.length * dMlp);

    // Only excerpts scanned before the checkpoint appear, and only those are run again (once each).
    const scanned = scanOrder(ids, settings.seed!).slice(0, done);
    const scannedKeys = new Set(scanned.map((e) => excerpts[e].tokens.join(' ')));
    for (const record of partial) {
      for (const list of [record.random_sample, ...(record.random_sample_by_quantile ?? []), record.most_positive_activation_records]) {
        for (const excerpt of list) expect(scannedKeys.has(excerpt.tokens.join(' '))).toBe(true);
      }
    }
    const rerun = log.calls.flat().map((t) => t.join(','));
    expect(new Set(rerun).size).toBe(rerun.length);
    expect(rerun.length).toBe(result.sampledExcerpts);

    // Each neuron's maximum and mean are those of the scanned excerpts (brute force over the stand-in model).
    for (const record of [partial[0], partial[17], partial[dMlp + 5], partial.at(-1)!]) {
      const { layer_index: layer, neuron_index: neuron } = record.neuron_id;
      const values = scanned.flatMap((e) => ids[e].map((_, t) => syntheticActivation(layer, neuron, t, ids[e])));
      const max = Math.max(...record.most_positive_activation_records.flatMap((r) => r.activations));
      expect(max).toBeCloseTo(Math.max(...values), 2); // float16-rounded rows
      expect(record.mean!).toBeCloseTo(values.reduce((a, b) => a + b, 0) / values.length, 5);
    }

    // The checkpoint is untouched, and the paused scan resumes to the uninterrupted result.
    expect(checkpoints.saved!.excerptsDone).toBe(done);
    expect(checkpoints.saved!.state.map((b) => Array.from(new Uint8Array(b)))).toEqual(savedBytes);
    expect(await job({ checkpoints })).toEqual(await job());
  });

  it('refuses a scan with nothing saved yet, or a checkpoint of other settings', async () => {
    const options = { excerpts, settings, source: makeSyntheticSource({ dMlp }), saveRecords: async () => {} };
    const empty = new MemoryCheckpoints();
    await expect(runPartialRecords({ ...options, adapters: { checkpoints: empty, openSpill: () => new MemoryRowSpill() } })).rejects.toThrow(
      /no saved progress yet/,
    );
    const other = new MemoryCheckpoints();
    const controller = new AbortController();
    await job({ checkpoints: other, signal: controller.signal, onProgress: (p) => p.excerptsDone >= 16 && controller.abort() }).catch(() => undefined);
    const error = await runPartialRecords({ ...options, settings: { ...settings, seed: 4 }, adapters: { checkpoints: other, openSpill: () => new MemoryRowSpill() } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ScanError);
    expect((error as Error).message).toMatch(/belongs to a different scan/);
  });
});
