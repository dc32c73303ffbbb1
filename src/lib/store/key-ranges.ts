/**
 * Key ranges of the scan-keyed object stores, whose keys are arrays that start with the scan id
 * ([scanId, layer, neuron, …]), so everything of one scan is one key range.
 */

/** Every key of a scan-keyed store that starts with `prefix` ([scanId], [scanId, layer, neuron], …). */
export function prefixRange(prefix: (string | number)[]): IDBKeyRange {
  // Arrays sort after every number and string, so [...prefix, []] is above any longer key.
  return IDBKeyRange.bound(prefix, [...prefix, []]);
}

export const scanRange = (scanId: string): IDBKeyRange => prefixRange([scanId]);
