/** Checking scan metadata before it is stored (from the app, or from a bundle's header). */
import { StoreError } from './store-errors.ts';
import { SCAN_STATUSES, type NeuronKey, type ScanInit, type ScanInputs, type ScanMeta, type ScanPatch } from './store-types.ts';

type Fail = (message: string) => never;

const defaultFail: Fail = (message) => {
  throw new StoreError(message);
};

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

function checkString(value: unknown, name: string, fail: Fail, allowEmpty = false): void {
  if (typeof value !== 'string' || (!allowEmpty && value.trim() === '')) fail(`${name} must be a ${allowEmpty ? '' : 'non-empty '}string`);
}

function checkModel(model: unknown, fail: Fail): void {
  if (typeof model !== 'object' || model === null) return fail('scan model must be an object with a label');
  const m = model as Record<string, unknown>;
  checkString(m.label, 'scan model.label', fail);
  for (const key of ['nLayer', 'dModel', 'dMlp', 'nCtx', 'vocabSize']) {
    if (m[key] !== undefined && !isCount(m[key])) fail(`scan model.${key} must be a non-negative integer`);
  }
}

function checkCorpus(corpus: unknown, fail: Fail): void {
  if (typeof corpus !== 'object' || corpus === null) return fail('scan corpus must be an object with a name and a fingerprint');
  const c = corpus as Record<string, unknown>;
  checkString(c.name, 'scan corpus.name', fail);
  checkString(c.fingerprint, 'scan corpus.fingerprint', fail, true);
}

/** Checks the fields a patch (or a whole scan) sets. */
function checkFields(fields: Record<string, unknown>, fail: Fail): void {
  const has = (key: string) => fields[key] !== undefined;
  if (has('name')) checkString(fields.name, 'scan name', fail);
  if (has('model')) checkModel(fields.model, fail);
  if (has('corpus')) checkCorpus(fields.corpus, fail);
  if (has('layers')) {
    const layers = fields.layers;
    if (!Array.isArray(layers) || !layers.every(isCount)) fail('scan layers must be an array of layer indices');
    if (new Set(layers as number[]).size !== (layers as number[]).length) fail('scan layers contains a duplicate');
  }
  if (has('topK') && !isCount(fields.topK)) fail('scan topK must be a non-negative integer');
  if (has('seed') && !Number.isInteger(fields.seed)) fail('scan seed must be an integer');
  if (has('excerptCount') && !isCount(fields.excerptCount)) fail('scan excerptCount must be a non-negative integer');
  if (has('status') && !SCAN_STATUSES.includes(fields.status as ScanMeta['status'])) {
    fail(`scan status must be one of ${SCAN_STATUSES.join(', ')}, got ${JSON.stringify(fields.status)}`);
  }
  if (has('progress')) {
    const p = fields.progress;
    if (typeof p !== 'number' || !(p >= 0 && p <= 1)) fail(`scan progress must be a fraction from 0 to 1, got ${String(p)}`);
  }
  if (has('error') && typeof fields.error !== 'string') fail('scan error must be a string');
  if (has('coverage')) {
    const c = fields.coverage as Record<string, unknown>;
    if (typeof c !== 'object' || c === null || !isCount(c.excerptsDone) || !isCount(c.excerptsTotal) || c.excerptsDone > c.excerptsTotal) {
      fail('scan coverage must give excerptsDone and excerptsTotal, with excerptsDone ≤ excerptsTotal');
    }
    if (c.fromScan !== undefined) checkString(c.fromScan, 'scan coverage.fromScan', fail);
  }
}

/** Checks a scan's inputs (corpus documents and run settings). */
export function checkScanInputs(inputs: ScanInputs, fail: Fail = defaultFail): void {
  if (typeof inputs !== 'object' || inputs === null) return fail('scan inputs must be an object');
  if (!Array.isArray(inputs.documents)) return fail('scan inputs.documents must be an array of {text, source}');
  inputs.documents.forEach((d, i) => {
    if (typeof d !== 'object' || d === null || typeof d.text !== 'string' || typeof d.source !== 'string') {
      fail(`scan inputs.documents[${i}] must be {text, source} strings`);
    }
  });
  for (const key of ['randomSampleSize', 'batchSize', 'maxExcerpts'] as const) {
    if (inputs[key] !== undefined && !isCount(inputs[key])) fail(`scan inputs.${key} must be a non-negative integer`);
  }
}

/** A complete ScanMeta (without inputs, which are stored apart) from what createScan was given. */
export function scanFromInit(init: ScanInit, id: string, now: number, fail: Fail = defaultFail): ScanMeta {
  if (typeof init !== 'object' || init === null) return fail('a scan needs its metadata object');
  for (const key of ['name', 'model', 'corpus', 'layers', 'topK', 'seed', 'excerptCount'] as const) {
    if (init[key] === undefined) fail(`scan ${key} is missing`);
  }
  checkFields(init as unknown as Record<string, unknown>, fail);
  checkString(id, 'scan id', fail);
  const scan: ScanMeta = {
    id,
    name: init.name,
    model: { ...init.model },
    corpus: { name: init.corpus.name, fingerprint: init.corpus.fingerprint },
    layers: [...init.layers],
    topK: init.topK,
    seed: init.seed,
    excerptCount: init.excerptCount,
    status: init.status ?? 'running',
    progress: init.progress ?? 0,
    createdAt: now,
    updatedAt: now,
    bytes: 0,
  };
  if (init.error !== undefined) scan.error = init.error;
  if (init.coverage !== undefined) scan.coverage = { ...init.coverage };
  return scan;
}

const PATCHABLE = ['name', 'status', 'progress', 'error', 'excerptCount', 'layers', 'topK', 'seed', 'model', 'corpus'];

/** Checks an updateScan patch. */
export function checkScanPatch(patch: ScanPatch, fail: Fail = defaultFail): void {
  if (typeof patch !== 'object' || patch === null) return fail('a scan update must be an object');
  for (const key of Object.keys(patch)) {
    if (!PATCHABLE.includes(key)) fail(`scan field "${key}" cannot be changed (changeable: ${PATCHABLE.join(', ')})`);
  }
  checkFields(patch as Record<string, unknown>, fail);
}

export function checkScanId(scanId: unknown): asserts scanId is string {
  if (typeof scanId !== 'string' || scanId === '') throw new StoreError(`a scan id must be a non-empty string, got ${JSON.stringify(scanId)}`);
}

export function checkNeuronKey(key: NeuronKey): void {
  if (typeof key !== 'object' || key === null || !isCount(key.layer) || !isCount(key.neuron)) {
    throw new StoreError(`a neuron is named by non-negative integers {layer, neuron}, got ${JSON.stringify(key)}`);
  }
}
