/**
 * The scan's WebAssembly kernels are written as .wat source and assembled at build time
 * (scripts/gen-wasm.ts); the committed module of bytes must be what the source assembles to.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { assembleKernels, GENERATED_MODULE, generatedModuleText } from '../scripts/gen-wasm.ts';
import { HISTOGRAM_KERNEL_WASM, MOMENT_KERNEL_WASM } from '../src/lib/activations/wasm/wasm-modules.generated.ts';

describe('WebAssembly kernels', () => {
  it('the generated module holds exactly the bytes the .wat files assemble to', async () => {
    const modules = await assembleKernels();
    expect([...modules.keys()]).toEqual(['histogram-kernel.wat', 'moment-kernel.wat']);
    expect(readFileSync(GENERATED_MODULE, 'utf8')).toBe(generatedModuleText(modules));
    expect(MOMENT_KERNEL_WASM()).toEqual(modules.get('moment-kernel.wat'));
    expect(HISTOGRAM_KERNEL_WASM()).toEqual(modules.get('histogram-kernel.wat'));
    for (const bytes of modules.values()) expect(WebAssembly.validate(bytes as Uint8Array<ArrayBuffer>)).toBe(true);
  });
});
