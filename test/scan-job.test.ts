/**
 * The scan job (scan, one pass over the sampled excerpts, records), with the deterministic
 * stand-in model: its records equal those built neuron by neuron from the same statistics, each
 * sampled excerpt runs once whatever the number of neurons, the rows go through the spill, an
 * interrupted job resumes to the same records, and shards merge into the records of one scan.
 */
import { describe, expect, it } from 'vitest';
import type { CorpusExcerpt } from '../src/lib/activations/corpus.ts';
import { mergeShards } from '../src/lib/activations/merge-shards.ts';
import type { NeuronRecord } from '../src/lib/activations/records.ts';
import { MemoryRowSpill, type RowSpill } from '../src/lib/activations/row-spill.ts';
import { buildNeuronRecords, buildRecordsInChunks, collectSampleRows, SampleRowPlan, SampleRows } from '../src/lib/activations/sample-rows.ts';
import { runScanJob, type ScanJobProgress, type ScanJobSettings } from '../src/lib/activations/scan-job.ts';
import { ScanAbortedError, scanOrder, SHARD_GROUP_SIZE } from '../src/lib/activations/scan.ts';
import { makeExcerpts, makeSyntheticSource, MemoryCheckpoints, type SourceLog } from './helpers/synthetic-scan.ts';

/** A spill that counts what goes through it. */
class CountingSpill extends MemoryRowSpill {
  written = 0;
  read_ = 0;
  discarded = false;
  write(bytes: Uint8Array, position: number): void {
    this.written += bytes.length;
    super.write(bytes, position);
  }
  read(into: Uint8Array, position: number): void {
    this.read_ += into.length;
    super.read(into, position);
  }
  close(discard: boolean): void {
    this.discarded = discard;
    super.close();
  }
}

const asExcerpts = (ids: number[][]): CorpusExcerpt[] => ids.map((tokenIds, i) => ({ tokenIds, tokens: tokenIds.map((t) => `t${t}`), documentIndex: i }));
const key = (tokens: readonly number[]) => tokens.join(',');

describe('the scan job', () => {
  // 3 tracked layers × 700 neurons: 2,100 neurons, more than four chunks of 512.
  const dMlp = 700;
  const layers = [0, 1, 2];
  const ids = makeExcerpts(120, 4);
  const excerpts = asExcerpts(ids);
  const settings: ScanJobSettings = { layers, dMlp, topK: 4, randomSampleSize: 6, quantileSampleSize: 2, seed: 5, batchSize: 4 };

  async function job(options: { log?: SourceLog; spill?: RowSpill; checkpoints?: MemoryCheckpoints; signal?: AbortSignal; onProgress?: (p: ScanJobProgress) => void; shard?: { index: number; count: number } } = {}) {
    const records: NeuronRecord[] = [];
    const result = await runScanJob({
      excerpts,
      settings: { ...settings, shard: options.shard },
      source: makeSyntheticSource({ dMlp, log: options.log }),
      adapters: { checkpoints: options.checkpoints, openSpill: () => options.spill ?? new MemoryRowSpill(), onProgress: options.onProgress },
      signal: options.signal,
      saveRecords: options.shard
        ? undefined
        : async (chunk) => {
            records.push(...chunk);
          },
    });
    return { ...result, records };
  }

  it('builds every record with one extra forward pass per sampled excerpt, through the spill', async () => {
    const log: SourceLog = { calls: [] };
    const spill = new CountingSpill();
    const { records, stats, summary } = await job({ log, spill });
    expect(records).toHaveLength(2100);
    expect(records.map((r) => `${r.neuron_id.layer_index}:${r.neuron_id.neuron_index}`)).toEqual(layers.flatMap((l) => Array.from({ length: dMlp }, (_, j) => `${l}:${j}`)));

    // The scan runs every excerpt once, then each excerpt some neuron's record needs runs once more.
    const runs = log.calls.flat().map(key);
    const scanned = runs.slice(0, ids.length);
    expect(new Set(scanned)).toEqual(new Set(ids.map(key)));
    const plan = SampleRowPlan.build(stats, 'records');
    const needed = new Set(Array.from({ length: stats.neuronCount }, (_, n) => stats.excerptsToRerun(n)).flat());
    expect([...plan.excerpts].sort((a, b) => a - b)).toEqual([...needed].sort((a, b) => a - b));
    const rerun = runs.slice(ids.length);
    expect(rerun).toHaveLength(needed.size);
    expect(new Set(rerun)).toEqual(new Set([...needed].map((e) => key(ids[e]))));
    expect(summary).toMatchObject({ excerpts: 120, forwardPasses: 120 + needed.size, sampledExcerpts: needed.size, records: 2100 });
    expect(summary.forwardPasses / summary.excerpts).toBeLessThanOrEqual(2);

    // Rows go to the spill (float16: 2 bytes per value), are read back, and the spill is deleted.
    expect(spill.written).toBe(plan.rowCount * 12 * 2);
    expect(spill.read_).toBeGreaterThanOrEqual(spill.written);
    expect(spill.discarded).toBe(true);

    // The same records as built for each neuron on its own.
    const some = [0, 511, 512, 1500, 2099];
    const direct = await buildNeuronRecords({
      stats,
      source: makeSyntheticSource({ dMlp }),
      excerpts: ids,
      tokensOf: (e) => excerpts[e].tokens,
      neurons: some.map((n) => ({ layer: layers[Math.floor(n / dMlp)], neuron: n % dMlp })),
    });
    expect(direct).toEqual(some.map((n) => records[n]));

    // And in small chunks of neurons (a few kilobytes of rows each): still the same records.
    const small = new MemoryRowSpill();
    await collectSampleRows({ stats, plan, source: makeSyntheticSource({ dMlp }), tokenIds: (e) => ids[e], spill: small, batchSize: 3 });
    const rows = new SampleRows([{ plan, spill: small }], 4096);
    expect(rows.chunkNeurons(stats.neuronCount)).toBeLessThan(100);
    const chunks: NeuronRecord[][] = [];
    await buildRecordsInChunks({ stats, rows, tokensOf: (e) => excerpts[e].tokens, saveRecords: (chunk) => void chunks.push(chunk) });
    expect(chunks.length).toBeGreaterThan(20);
    expect(chunks.flat()).toEqual(records);
  });

  it('reports its phases: scanning, sampling, building records', async () => {
    const phases: string[] = [];
    let last: ScanJobProgress | undefined;
    await job({ onProgress: (p) => (last = p) && phases.at(-1) !== p.phase && phases.push(p.phase) });
    expect(phases).toEqual(['scanning', 'sampling', 'building-records']);
    expect(last).toMatchObject({ phase: 'building-records', recordsDone: 2100, recordsTotal: 2100, excerptsDone: 120 });
    expect(last!.sampledDone).toBe(last!.sampledTotal);
  });

  it('resumes after an abort while sampling, to the same records', async () => {
    const { records: uninterrupted } = await job();
    const checkpoints = new MemoryCheckpoints();
    const controller = new AbortController();
    const error = await job({ checkpoints, signal: controller.signal, onProgress: (p) => p.phase === 'sampling' && p.sampledDone > 0 && controller.abort() }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ScanAbortedError);
    expect(error).toMatchObject({ excerptsDone: 120, checkpointSaved: true });
    const log: SourceLog = { calls: [] };
    const resumed = await job({ checkpoints, log });
    expect(resumed.summary.resumedFrom).toBe(120);
    expect(log.calls.flat()).toHaveLength(resumed.summary.sampledExcerpts); // only the sampled excerpts again
    expect(JSON.stringify(resumed.records)).toBe(JSON.stringify(uninterrupted));
  });

  it('runs shards of every third group of excerpts that merge into the records of one scan', async () => {
    const { records: whole } = await job();
    const shards = [];
    const covered: number[] = [];
    for (let index = 0; index < 3; index++) {
      const log: SourceLog = { calls: [] };
      const spill = new CountingSpill();
      const shard = await job({ shard: { index, count: 3 }, log, spill });
      expect(spill.discarded).toBe(false); // kept for the merge
      expect(shard.shardRows).not.toBeNull();
      const order = scanOrder(ids, settings.seed!);
      const mine = order.filter((_, i) => Math.floor(i / SHARD_GROUP_SIZE) % 3 === index);
      covered.push(...mine);
      // Shards other than the first also run the scan's first excerpt, for the moments' shift.
      const scanned = log.calls.flat().slice(0, mine.length + (index > 0 ? 1 : 0)).map(key);
      expect(scanned).toEqual([...(index > 0 ? [key(ids[order[0]])] : []), ...mine.map((e) => key(ids[e]))]);
      shards.push({ stats: shard.stats, plan: shard.shardRows!.plan, spill: shard.shardRows!.spill, tokens: new Map(excerpts.map((e, i) => [i, e.tokens])) });
    }
    expect(covered.sort((a, b) => a - b)).toEqual(ids.map((_, i) => i));
    const merged: NeuronRecord[] = [];
    const { stats } = await mergeShards({ shards, saveRecords: (chunk) => void merged.push(...chunk) });
    expect(stats.excerptCount).toBe(120);
    expect(merged).toHaveLength(whole.length);
    const moments = ['mean', 'variance', 'skewness', 'kurtosis'] as const;
    merged.forEach((record, i) => {
      const { mean, variance, skewness, kurtosis, ...rest } = record;
      const { mean: m, variance: v, skewness: s, kurtosis: k, ...expected } = whole[i];
      expect(rest).toEqual(expected);
      [mean, variance, skewness, kurtosis].forEach((value, j) => {
        const reference = [m, v, s, k][j]!;
        expect(Math.abs(value! - reference), `${moments[j]} of record ${i}`).toBeLessThanOrEqual(1e-9 * Math.abs(reference));
      });
    });
  });
});
