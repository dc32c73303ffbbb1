/**
 * The few pieces of the WebAssembly binary format the scan's hand-assembled modules need
 * (moment-kernel.ts, histogram-kernel.ts): LEB128 integers, vectors, names and sections, and
 * compiling a module once.
 */
/** Unsigned LEB128 (counts, indices, sizes, memory offsets). */
export const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return out;
};
/** Signed LEB128 (i32.const immediates). */
export const sleb = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
};
export const vector = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
export const name = (s: string): number[] => vector([...s].map((c) => [c.charCodeAt(0)]));
export const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];

/**
 * Compiles the module `bytes()` builds the first time it is asked for, and keeps it for the realm;
 * null where WebAssembly is missing, disabled by policy, or lacks a feature the module uses.
 */
export function compileOnce(bytes: () => Uint8Array<ArrayBuffer>): () => WebAssembly.Module | null {
  let compiled: WebAssembly.Module | null | undefined;
  return () => {
    if (compiled !== undefined) return compiled;
    compiled = null;
    try {
      const module = bytes();
      if (typeof WebAssembly === 'object' && WebAssembly.validate(module)) compiled = new WebAssembly.Module(module);
    } catch {
      // No WebAssembly: the callers have JS versions of the same work.
    }
    return compiled;
  };
}
