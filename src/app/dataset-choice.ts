/** Which datasets a view can show, and which one it shows when the address names none. */
import type { ScanMeta } from '../lib/store/store-types.ts';

/** A dataset with its records: a finished scan, an import, or the records of a paused scan so far. */
export const hasRecords = (scan: ScanMeta): boolean => scan.status === 'done' || scan.status === 'imported';

/** A scan that stopped before its records were built (it has a checkpoint, and can be resumed). */
export const isUnfinishedScan = (scan: ScanMeta): boolean => (scan.status === 'paused' || scan.status === 'running') && !scan.coverage;

/**
 * The dataset to show among `candidates`: the one the address names, else the newest made with the
 * loaded model, else the newest.
 */
export function datasetToShow(candidates: readonly ScanMeta[], wanted: string | undefined, modelLabel: string | undefined): ScanMeta | undefined {
  const named = candidates.find((s) => s.id === wanted);
  if (named) return named;
  const newest = (list: readonly ScanMeta[]) => list.reduce<ScanMeta | undefined>((best, s) => (!best || s.createdAt > best.createdAt ? s : best), undefined);
  return newest(candidates.filter((s) => hasRecords(s) && s.model.label === modelLabel)) ?? newest(candidates.filter(hasRecords));
}
