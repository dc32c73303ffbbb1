/**
 * A scan's excerpts and vocabulary in IndexedDB, read and written inside the caller's transaction
 * (so they land, or fail, together with the records that refer to them).
 *
 * - `vocabulary` rows are pages of the scan's token strings: {scanId, firstId, tokens}, ids
 *   firstId, firstId+1, … Pages are only appended (one per write that brings new strings), so an
 *   id never changes.
 * - `excerpts` rows are {scanId, index, hash, tokenIds}: the token ids (Uint16Array while the
 *   vocabulary has at most 65,536 strings; Uint8Array while 256) of one excerpt, numbered from 0
 *   in order of arrival.
 *   `hash` (excerptHash of the strings) is indexed (`byHash`), so a write finds the excerpts that
 *   are already stored without reading all of them.
 *
 * Excerpts are not reference-counted: replacing a record with one that shows other excerpts
 * leaves the old excerpts stored (deleting the scan removes everything).
 */
import type { IDBPTransaction } from 'idb';
import { StoreCodecError } from './compact-activations.ts';
import type { NeurolensSchema, StoreName } from './db.ts';
import { type ExcerptTable, narrowIndices } from './excerpt-table.ts';
import { scanRange } from './key-ranges.ts';
import type { ExcerptRow, VocabularyRow } from './store-types.ts';

type Tx<Mode extends IDBTransactionMode> = IDBPTransaction<NeurolensSchema, ArrayLike<StoreName>, Mode>;
/** Puts a row of the excerpt tables (the caller counts it and checks it in). */
export type PutExcerptRow = (name: 'excerpts' | 'vocabulary', row: ExcerptRow | VocabularyRow) => Promise<unknown>;

/** The scan's token strings by id. */
export async function loadVocabulary(tx: Tx<IDBTransactionMode>, scanId: string): Promise<string[]> {
  const pages = await tx.objectStore('vocabulary').getAll(scanRange(scanId));
  const vocabulary: string[] = [];
  for (const page of pages) {
    if (page.firstId !== vocabulary.length) throw new StoreCodecError(`the vocabulary of scan ${scanId} is damaged (a page is missing)`);
    for (const token of page.tokens) vocabulary.push(token);
  }
  return vocabulary;
}

/** Token strings of the given excerpts of a scan, by excerpt index. */
export async function readExcerptTokens(tx: Tx<IDBTransactionMode>, scanId: string, indices: Iterable<number>): Promise<Map<number, string[]>> {
  const wanted = [...new Set(indices)];
  const store = tx.objectStore('excerpts');
  const [vocabulary, rows] = await Promise.all([loadVocabulary(tx, scanId), Promise.all(wanted.map((i) => store.get([scanId, i])))]);
  const tokens = new Map<number, string[]>();
  wanted.forEach((index, i) => {
    const row = rows[i];
    if (!row) throw new StoreCodecError(`excerpt ${index} of scan ${scanId} is missing`);
    tokens.set(
      index,
      Array.from(row.tokenIds, (id) => {
        const token = vocabulary[id];
        if (token === undefined) throw new StoreCodecError(`excerpt ${index} of scan ${scanId} refers to a token the vocabulary lacks`);
        return token;
      }),
    );
  });
  return tokens;
}

/** What a scan already stores, as far as adding excerpts needs it. */
export interface StoredExcerptsView {
  /** The scan's vocabulary. */
  vocabulary: readonly string[];
  /** The number the next new excerpt gets. */
  nextIndex: number;
  /** The index of the stored excerpt equal to table excerpt `i`, if there is one. */
  find(i: number): number | undefined;
}

/**
 * The rows that add the excerpts of `table` to a scan, each once: an excerpt already stored keeps
 * its index, a new one is numbered after the last, and its new token strings go to one new
 * vocabulary page. Also gives the scan's index of each table index.
 */
export function excerptRowsToAdd(
  scanId: string,
  table: ExcerptTable,
  stored: StoredExcerptsView,
): { scanIndex: Uint32Array; excerpts: ExcerptRow[]; page: VocabularyRow | undefined } {
  const known = stored.vocabulary.length;
  const idOf = new Map<string, number>();
  stored.vocabulary.forEach((token, id) => idOf.set(token, id));
  const newTokens: string[] = [];
  let next = stored.nextIndex;
  const scanIndex = new Uint32Array(table.size);
  const excerpts: ExcerptRow[] = [];
  for (let i = 0; i < table.size; i++) {
    const found = stored.find(i);
    if (found !== undefined) {
      scanIndex[i] = found;
      continue;
    }
    const ids = table.tokens(i).map((token) => {
      let id = idOf.get(token);
      if (id === undefined) {
        id = known + newTokens.length;
        newTokens.push(token);
        idOf.set(token, id);
      }
      return id;
    });
    scanIndex[i] = next;
    excerpts.push({ scanId, index: next++, hash: table.hash(i), tokenIds: narrowIndices(ids) });
  }
  return { scanIndex, excerpts, page: newTokens.length > 0 ? { scanId, firstId: known, tokens: newTokens } : undefined };
}

/**
 * Adds the excerpts of `table` to the scan's stored ones (see excerptRowsToAdd), finding those
 * already stored through the `byHash` index. Returns the scan's index of each table index.
 */
export async function storeExcerpts(tx: Tx<'readwrite' | 'versionchange'>, scanId: string, table: ExcerptTable, put: PutExcerptRow): Promise<Uint32Array> {
  const store = tx.objectStore('excerpts');
  const byHash = store.index('byHash');
  const [vocabulary, candidates, last] = await Promise.all([
    loadVocabulary(tx, scanId),
    Promise.all(Array.from({ length: table.size }, (_, i) => byHash.getAll([scanId, table.hash(i)]))),
    store.openKeyCursor(scanRange(scanId), 'prev'),
  ]);
  const rows = excerptRowsToAdd(scanId, table, {
    vocabulary,
    nextIndex: last ? (last.key as [string, number])[1] + 1 : 0,
    find: (i) => {
      const tokens = table.tokens(i);
      const equal = (row: ExcerptRow) =>
        row.tokenIds.length === tokens.length && row.tokenIds.every((id, k) => vocabulary[id] === tokens[k]);
      return candidates[i].find(equal)?.index;
    },
  });
  await Promise.all([...rows.excerpts.map((row) => put('excerpts', row)), ...(rows.page ? [put('vocabulary', rows.page)] : [])]);
  return rows.scanIndex;
}
