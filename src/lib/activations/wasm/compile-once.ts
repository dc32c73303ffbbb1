/**
 * Compiles a WebAssembly module the first time it is asked for, and keeps it for the realm; null
 * where WebAssembly is missing, disabled by policy, or lacks a feature the module uses (the
 * callers then do the same work in JS).
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
