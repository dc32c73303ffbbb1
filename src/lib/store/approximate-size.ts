/**
 * Approximate bytes a value takes in IndexedDB, for the per-scan usage figures. Counts what the
 * structured-clone serialiser writes, roughly: 1 byte per character of a string (Chromium stores
 * Latin-1 strings one byte per character; others take two, so text in other scripts is
 * undercounted), 8 per number, the byte length of typed arrays and ArrayBuffers, and a few bytes
 * per object, array and key. Ignores compression and index entries, so treat it as a guide, not
 * as what the browser bills (`navigator.storage.estimate()` gives that, for the whole origin).
 */
export function approximateBytes(value: unknown): number {
  switch (typeof value) {
    case 'string':
      return value.length + 2;
    case 'number':
    case 'bigint':
      return 8;
    case 'boolean':
    case 'undefined':
      return 1;
    case 'object':
      break;
    default:
      return 0;
  }
  if (value === null) return 1;
  if (ArrayBuffer.isView(value)) return value.byteLength + 8;
  if (value instanceof ArrayBuffer) return value.byteLength + 8;
  if (Array.isArray(value)) {
    let total = 4;
    for (const item of value) total += approximateBytes(item);
    return total;
  }
  let total = 4;
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) total += key.length + 2 + approximateBytes(item);
  return total;
}
