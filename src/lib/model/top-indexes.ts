/** Picking the few largest of many scores (top tokens of a vocabulary, top neurons of a layer). */

/**
 * Indexes of the k largest values of `score`, largest first; ties go to the smaller index, so the
 * order is fully determined. Runs in one pass with a small sorted buffer (k is small).
 */
export function topIndexes(score: (i: number) => number, n: number, k: number): number[] {
  const best: number[] = [];
  const bestScore: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = score(i);
    if (Number.isNaN(s)) continue;
    if (best.length === k && !(s > bestScore[k - 1])) continue;
    let at = best.length;
    // Strictly greater moves ahead: an equal score keeps the earlier (smaller) index first.
    while (at > 0 && s > bestScore[at - 1]) at--;
    best.splice(at, 0, i);
    bestScore.splice(at, 0, s);
    if (best.length > k) {
      best.pop();
      bestScore.pop();
    }
  }
  return best;
}
