/**
 * How a dataset built from part of a scan says what it covers, in one wording everywhere (the
 * dataset's name, the Datasets list, the Explorer, neuron pages): "1,200 of 5,283 excerpts (23%)".
 */
import type { ScanCoverage } from './store-types.ts';

/** The share covered in whole percent, never 0 when something is covered nor 100 when something is not. */
export function coveragePercent({ excerptsDone, excerptsTotal }: Pick<ScanCoverage, 'excerptsDone' | 'excerptsTotal'>): number {
  if (excerptsTotal <= 0) return 0;
  const percent = Math.round((100 * excerptsDone) / excerptsTotal);
  if (excerptsDone > 0 && percent === 0) return 1;
  if (excerptsDone < excerptsTotal && percent === 100) return 99;
  return percent;
}

/** "1,200 of 5,283 excerpts (23%)". */
export function coverageText(coverage: Pick<ScanCoverage, 'excerptsDone' | 'excerptsTotal'>): string {
  const n = (x: number) => x.toLocaleString('en');
  return `${n(coverage.excerptsDone)} of ${n(coverage.excerptsTotal)} excerpts (${coveragePercent(coverage)}%)`;
}
