/**
 * A NeuronRecord in the form it is stored in: the record's JSON with every excerpt's
 * `activations` list replaced by its length (the "skeleton", which keeps every other field,
 * unknown ones included, and the key order), plus all activations in one packed array. One typed
 * array per record keeps IndexedDB's structured clone cheap and the bytes small.
 *
 * Excerpts are packed in a fixed order: random_sample, random_sample_by_quantile (bin by bin),
 * most_positive_activation_records. Expanding walks the skeleton in the same order, so
 * expand(compact(r)) deep-equals r whenever the encoding keeps the values (always for `lossless`).
 */
import type { ActivationRecord, NeuronRecord } from '../activations/records.ts';
import {
  type ActivationEncoding,
  type EncodingChoice,
  encodingOf,
  losslessEncoding,
  packValues,
  type PackedArray,
  resolveEncoding,
  StoreCodecError,
  unpackValues,
} from './compact-activations.ts';

/** An ActivationRecord as stored: `activations` holds the count of its values in the packed array. */
type SkeletonActivationRecord = Omit<ActivationRecord, 'activations'> & { activations: number };

export type NeuronRecordSkeleton = Omit<
  NeuronRecord,
  'random_sample' | 'random_sample_by_quantile' | 'most_positive_activation_records'
> & {
  random_sample: SkeletonActivationRecord[];
  random_sample_by_quantile: SkeletonActivationRecord[][] | null;
  most_positive_activation_records: SkeletonActivationRecord[];
};

export interface CompactNeuronRecord {
  layer: number;
  neuron: number;
  encoding: ActivationEncoding;
  skeleton: NeuronRecordSkeleton;
  activations: PackedArray;
}

/** Every excerpt list of a record, in packing order, with its path in the record. */
function excerptLists<T>(record: {
  random_sample: T[];
  random_sample_by_quantile: T[][] | null;
  most_positive_activation_records: T[];
}): { path: string; list: T[] }[] {
  return [
    { path: 'random_sample', list: record.random_sample },
    ...(record.random_sample_by_quantile ?? []).map((list, q) => ({ path: `random_sample_by_quantile[${q}]`, list })),
    { path: 'most_positive_activation_records', list: record.most_positive_activation_records },
  ];
}

/** Refuses values the encoding cannot hold, naming the value's place in the record. */
function checkValues(lists: { path: string; list: ActivationRecord[] }[], encoding: ActivationEncoding, neuron: string): void {
  for (const { path, list } of lists) {
    list.forEach((excerpt, i) => {
      const where = `neuron ${neuron} ${path}[${i}].activations`;
      packValues(excerpt.activations, encoding, where); // throws StoreCodecError with the position
    });
  }
}

/**
 * The stored form of a (validated) record. `lossless` keeps every number exactly; float16 or
 * float32 round (see compact-activations.ts for the error bound).
 */
export function compactNeuronRecord(record: NeuronRecord, choice: EncodingChoice = 'lossless'): CompactNeuronRecord {
  const lists = excerptLists(record);
  let total = 0;
  for (const { list } of lists) for (const excerpt of list) total += excerpt.activations.length;
  const all = new Array<number>(total);
  let at = 0;
  for (const { list } of lists) for (const excerpt of list) for (const v of excerpt.activations) all[at++] = v;
  const layer = record.neuron_id.layer_index;
  const neuron = record.neuron_id.neuron_index;
  const encoding = choice === 'lossless' ? losslessEncoding(all) : resolveEncoding(all, choice);
  let activations: PackedArray;
  try {
    activations = packValues(all, encoding);
  } catch (error) {
    checkValues(lists, encoding, `${layer}:${neuron}`); // rethrows with the value's path
    throw error;
  }
  const skeletonOf = (excerpt: ActivationRecord): SkeletonActivationRecord => ({
    ...excerpt,
    activations: excerpt.activations.length,
  });
  const skeleton: NeuronRecordSkeleton = {
    ...record,
    random_sample: record.random_sample.map(skeletonOf),
    random_sample_by_quantile:
      record.random_sample_by_quantile === null ? null : record.random_sample_by_quantile.map((bin) => bin.map(skeletonOf)),
    most_positive_activation_records: record.most_positive_activation_records.map(skeletonOf),
  };
  return { layer, neuron, encoding, skeleton, activations };
}

/** The record back from its stored form. Throws StoreCodecError if the stored form is inconsistent. */
export function expandNeuronRecord(compact: CompactNeuronRecord): NeuronRecord {
  const { skeleton, activations } = compact;
  if (encodingOf(activations) !== compact.encoding) {
    throw new StoreCodecError(`stored record ${compact.layer}:${compact.neuron} says ${compact.encoding} but holds ${encodingOf(activations)}`);
  }
  let at = 0;
  const expand = (excerpt: SkeletonActivationRecord): ActivationRecord => {
    const count = excerpt.activations;
    if (!Number.isInteger(count) || count < 0 || at + count > activations.length) {
      throw new StoreCodecError(`stored record ${compact.layer}:${compact.neuron} is inconsistent (activation counts exceed the stored values)`);
    }
    const values = unpackValues(activations, at, at + count);
    at += count;
    return { ...excerpt, activations: values } as ActivationRecord;
  };
  // Expanded in packing order (the order excerptLists gives), whatever order the keys are in.
  const randomSample = skeleton.random_sample.map(expand);
  const byQuantile = skeleton.random_sample_by_quantile === null ? null : skeleton.random_sample_by_quantile.map((bin) => bin.map(expand));
  const mostPositive = skeleton.most_positive_activation_records.map(expand);
  if (at !== activations.length) {
    throw new StoreCodecError(`stored record ${compact.layer}:${compact.neuron} is inconsistent (${activations.length - at} unused values)`);
  }
  return {
    ...skeleton,
    random_sample: randomSample,
    random_sample_by_quantile: byQuantile,
    most_positive_activation_records: mostPositive,
  } as NeuronRecord;
}
