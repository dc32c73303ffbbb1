/**
 * The binary layout of the scan statistics' state (checkpoints and shard files): a UTF-8 JSON
 * header, then one buffer per typed array. The header names the format, its version, the
 * configuration and, per tracker, a section with its counters and the names and lengths of its
 * arrays, so each tracker writes and checks its own part.
 */

export type StateArray = Float64Array | Float32Array | Int32Array | Uint32Array | Uint16Array | Uint8Array;

/** One tracker's part of the state. */
export interface StateSection {
  name: string;
  /** Small values (counts, flags); JSON. */
  counters: Record<string, number | boolean>;
  arrays: [string, StateArray][];
}

/** A section as read back: its counters, and its arrays' bytes by name (checked by the tracker). */
export interface LoadedSection {
  counters: Record<string, unknown>;
  arrays: Map<string, ArrayBuffer>;
}

/** State that cannot be read or does not fit. */
export class StateFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StateFormatError';
  }
}

interface Header {
  format: string;
  version: number;
  [key: string]: unknown;
  sections: { name: string; counters: Record<string, unknown>; arrays: { name: string; bytes: number }[] }[];
}

/** The parts: the header, then every array of every section, in order. The arrays are copied. */
export function encodeState(format: string, version: number, extra: Record<string, unknown>, sections: readonly StateSection[]): ArrayBuffer[] {
  const header: Header = {
    ...extra,
    format,
    version,
    sections: sections.map((s) => ({ name: s.name, counters: s.counters, arrays: s.arrays.map(([name, a]) => ({ name, bytes: a.byteLength })) })),
  };
  const headerBytes = new TextEncoder().encode(JSON.stringify(header));
  const parts: ArrayBuffer[] = [headerBytes.buffer.slice(0, headerBytes.byteLength)];
  for (const section of sections) for (const [, array] of section.arrays) parts.push(array.slice().buffer as ArrayBuffer);
  return parts;
}

/**
 * Reads the header and splits the parts into sections; `olderVersions` explains a known older
 * format (e.g. "an older Neurolens") instead of calling it unsupported.
 */
export function decodeState(
  parts: readonly ArrayBuffer[],
  format: string,
  version: number,
  olderFormats: Record<string, string> = {},
): { header: Record<string, unknown>; sections: Map<string, LoadedSection> } {
  const bad = (why: string): never => {
    throw new StateFormatError(`not a valid scan statistics state: ${why}`);
  };
  if (!Array.isArray(parts) || parts.length === 0 || !(parts[0] instanceof ArrayBuffer)) bad('expected a list of ArrayBuffers');
  let header: Partial<Header> = {};
  try {
    header = JSON.parse(new TextDecoder().decode(parts[0]));
  } catch {
    bad('unreadable header');
  }
  const older = olderFormats[`${String(header.format)}@${String(header.version)}`];
  if (older) throw new StateFormatError(older);
  if (header.format !== format) bad('wrong format');
  if (header.version !== version) bad(`unsupported version ${String(header.version)}`);
  if (!Array.isArray(header.sections)) bad('header lacks sections');
  const sections = new Map<string, LoadedSection>();
  let at = 1;
  for (const section of header.sections!) {
    if (typeof section?.name !== 'string' || !Array.isArray(section.arrays) || typeof section.counters !== 'object' || section.counters === null) bad('a section is malformed');
    const arrays = new Map<string, ArrayBuffer>();
    for (const { name, bytes } of section.arrays) {
      const buffer = parts[at++];
      if (!(buffer instanceof ArrayBuffer)) bad('wrong number of arrays');
      if (buffer.byteLength !== bytes) bad(`${section.name}.${name} has ${buffer.byteLength} bytes, expected ${bytes}`);
      arrays.set(name, buffer);
    }
    sections.set(section.name, { counters: section.counters, arrays });
  }
  if (at !== parts.length) bad('wrong number of arrays');
  return { header: header as Record<string, unknown>, sections };
}

/**
 * Copies a loaded section's arrays into a tracker's own, checking names and sizes, and returns its
 * counters. `expected` lists the tracker's arrays in order.
 */
export function restoreSection(sections: Map<string, LoadedSection>, name: string, expected: readonly [string, StateArray][]): Record<string, unknown> {
  const bad = (why: string): never => {
    throw new StateFormatError(`not a valid scan statistics state: ${why}`);
  };
  const section = sections.get(name) ?? bad(`no ${name} section`);
  if (section.arrays.size !== expected.length) bad(`the ${name} section has ${section.arrays.size} arrays, expected ${expected.length}`);
  for (const [arrayName, target] of expected) {
    const buffer = section.arrays.get(arrayName) ?? bad(`the ${name} section lacks ${arrayName}`);
    if (buffer.byteLength !== target.byteLength) bad(`${name}.${arrayName} has ${buffer.byteLength} bytes, expected ${target.byteLength}`);
    const Kind = target.constructor as { new (b: ArrayBuffer): StateArray };
    target.set(new Kind(buffer));
  }
  return section.counters;
}

/** A non-negative integer counter, or a StateFormatError naming it. */
export function counter(counters: Record<string, unknown>, name: string, max = Number.MAX_SAFE_INTEGER): number {
  const value = counters[name];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new StateFormatError(`not a valid scan statistics state: bad counter ${name}`);
  }
  return value;
}
