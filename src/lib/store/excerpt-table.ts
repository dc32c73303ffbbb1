/**
 * Excerpts kept once: every distinct token sequence gets an index, and every distinct token
 * string an id in the table's vocabulary. Records then refer to excerpts by index (see
 * compact-record.ts) instead of repeating their token strings.
 *
 * An excerpt is identified by its token strings, which is all a NeuronRecord knows of it: two
 * excerpts with the same strings are one. A scan's records share excerpts (the random sample is
 * the same for every neuron; top-K and quantile samples overlap between neurons), and the scan
 * hands the same token array to every record that shows an excerpt, so the table first looks the
 * array itself up and only hashes the strings of arrays it has not seen.
 */

/** A 32-bit FNV-1a hash of an excerpt's token strings (lengths included, so token boundaries count). */
export function excerptHash(tokens: readonly string[]): number {
  let h = 0x811c9dc5;
  for (const token of tokens) {
    h = Math.imul(h ^ token.length, 0x01000193);
    for (let i = 0; i < token.length; i++) h = Math.imul(h ^ token.charCodeAt(i), 0x01000193);
  }
  return h >>> 0;
}

export type IndexArray = Uint8Array | Uint16Array | Uint32Array;

/** The smallest unsigned array type that holds `values` (all non-negative integers). */
export function narrowIndices(values: ArrayLike<number>): IndexArray {
  let max = 0;
  for (let i = 0; i < values.length; i++) max = Math.max(max, values[i]);
  if (max <= 0xff) return Uint8Array.from(values);
  return max <= 0xffff ? Uint16Array.from(values) : Uint32Array.from(values);
}

function sameTokens(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class ExcerptTable {
  /** Token strings by id. */
  readonly vocabulary: string[] = [];
  private readonly idOf = new Map<string, number>();
  /** Token ids of each excerpt, by index. */
  private readonly excerpts: Uint32Array[] = [];
  private readonly hashes: number[] = [];
  /** Excerpt indices by hash (collisions share a list). */
  private readonly byHash = new Map<number, number[]>();
  /** Token arrays already seen, to skip hashing the same array again. */
  private readonly byArray = new WeakMap<readonly string[], number>();

  /** Number of distinct excerpts. */
  get size(): number {
    return this.excerpts.length;
  }

  /** The index of the excerpt with these token strings, adding it if it is new. */
  intern(tokens: readonly string[]): number {
    const seen = this.byArray.get(tokens);
    if (seen !== undefined) return seen;
    const hash = excerptHash(tokens);
    const candidates = this.byHash.get(hash);
    let index = candidates?.find((c) => sameTokens(this.tokens(c), tokens));
    if (index === undefined) {
      index = this.excerpts.length;
      const ids = new Uint32Array(tokens.length);
      for (let i = 0; i < tokens.length; i++) ids[i] = this.tokenId(tokens[i]);
      this.excerpts.push(ids);
      this.hashes.push(hash);
      if (candidates) candidates.push(index);
      else this.byHash.set(hash, [index]);
    }
    this.byArray.set(tokens, index);
    return index;
  }

  private tokenId(token: string): number {
    let id = this.idOf.get(token);
    if (id === undefined) {
      id = this.vocabulary.length;
      this.vocabulary.push(token);
      this.idOf.set(token, id);
    }
    return id;
  }

  /** The token strings of excerpt `index` (a new array). */
  tokens(index: number): string[] {
    return Array.from(this.excerpts[index], (id) => this.vocabulary[id]);
  }

  /** The token ids of excerpt `index` in this table's vocabulary. */
  tokenIds(index: number): Uint32Array {
    return this.excerpts[index];
  }

  hash(index: number): number {
    return this.hashes[index];
  }
}
