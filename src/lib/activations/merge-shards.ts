/**
 * Merging the shards of one scan (scan.ts `shardExcerpts`, scan-job.ts with `settings.shard`)
 * into the records one scan of the whole corpus gives: the shards' statistics merge exactly
 * (ScanStatistics.merge), and each merged record takes the activations of its sampled excerpts
 * from the shard that scanned them. A shard keeps the rows of every excerpt a merge could put in
 * a record (SampleRowPlan 'merge'): the merged random sample and quantile samples are among the
 * shards' own, since a sample of smallest priorities of a union is among the smallest of its parts.
 */
import type { NeuronRecord } from './records.ts';
import { buildRecordsInChunks, SampleRows, type RowSource } from './sample-rows.ts';
import { ScanError } from './scan.ts';
import { ScanStatistics } from './scan-statistics.ts';

export interface ShardParts extends RowSource {
  stats: ScanStatistics;
  /** Token strings of the excerpts the shard's records could show. */
  tokens: ReadonlyMap<number, readonly string[]>;
}

export interface MergeShardsOptions {
  shards: readonly ShardParts[];
  saveRecords: (records: NeuronRecord[]) => Promise<void> | void;
  signal?: AbortSignal;
  onProgress?: (recordsDone: number, recordsTotal: number) => void;
}

/** Merges the shards' statistics and writes the merged records; returns the merged statistics. */
export async function mergeShards(options: MergeShardsOptions): Promise<{ stats: ScanStatistics; records: number }> {
  const { shards, saveRecords, signal, onProgress } = options;
  if (shards.length === 0) throw new ScanError('no shards to merge');
  const stats = new ScanStatistics(shards[0].stats.config);
  for (const shard of shards) stats.merge(shard.stats);
  const tokensOf = (excerpt: number): readonly string[] => {
    for (const shard of shards) {
      const tokens = shard.tokens.get(excerpt);
      if (tokens) return tokens;
    }
    throw new ScanError(`no shard holds the tokens of excerpt ${excerpt}`);
  };
  const records = await buildRecordsInChunks({ stats, rows: new SampleRows(shards), tokensOf, saveRecords, signal, onProgress });
  return { stats, records };
}
