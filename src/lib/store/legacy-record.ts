/**
 * Reading the record rows of schema versions 1 and 2, for the migration to version 3 (db.ts).
 *
 * Those rows kept the whole record as its "skeleton" (the record's JSON with each
 * ActivationRecord's `activations` replaced by its count of values, token strings included) plus
 * all activations in one packed array, in the order random_sample, random_sample_by_quantile (bin
 * by bin), most_positive_activation_records.
 */
import type { ActivationRecord, NeuronRecord } from '../activations/records.ts';
import { type ActivationEncoding, encodingOf, type PackedArray, StoreCodecError, unpackValues } from './compact-activations.ts';

type LegacyActivationRecord = Omit<ActivationRecord, 'activations'> & { activations: number };

export interface LegacyNeuronRecordRow {
  scanId: string;
  layer: number;
  neuron: number;
  encoding: ActivationEncoding;
  skeleton: Omit<NeuronRecord, 'random_sample' | 'random_sample_by_quantile' | 'most_positive_activation_records'> & {
    random_sample: LegacyActivationRecord[];
    random_sample_by_quantile: LegacyActivationRecord[][] | null;
    most_positive_activation_records: LegacyActivationRecord[];
  };
  activations: PackedArray;
}

/** The record a version 1 or 2 row holds. Throws StoreCodecError if the row is inconsistent. */
export function expandLegacyRecord(row: LegacyNeuronRecordRow): NeuronRecord {
  const { skeleton, activations } = row;
  const where = `stored record ${row.layer}:${row.neuron}`;
  if (encodingOf(activations) !== row.encoding) throw new StoreCodecError(`${where} says ${row.encoding} but holds ${encodingOf(activations)}`);
  let at = 0;
  const expand = (excerpt: LegacyActivationRecord): ActivationRecord => {
    const count = excerpt.activations;
    if (!Number.isInteger(count) || count < 0 || at + count > activations.length) {
      throw new StoreCodecError(`${where} is inconsistent (activation counts exceed the stored values)`);
    }
    at += count;
    return { ...excerpt, activations: unpackValues(activations, at - count, at) };
  };
  const randomSample = skeleton.random_sample.map(expand);
  const byQuantile = skeleton.random_sample_by_quantile === null ? null : skeleton.random_sample_by_quantile.map((bin) => bin.map(expand));
  const mostPositive = skeleton.most_positive_activation_records.map(expand);
  if (at !== activations.length) throw new StoreCodecError(`${where} is inconsistent (${activations.length - at} unused values)`);
  return { ...skeleton, random_sample: randomSample, random_sample_by_quantile: byQuantile, most_positive_activation_records: mostPositive };
}
