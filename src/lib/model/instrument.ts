/**
 * Turns a GPT-2 ONNX export into a model whose outputs are the MLP activations we want:
 * merged decoders are specialised to their no-cache branch, the requested activations become
 * outputs under stable hook names, and everything not needed for those outputs is pruned.
 * Bytes in, bytes out; nothing here depends on a runtime.
 */
import { findMlpHooks, findTokenEmbedding, type MlpHook } from './find-mlp-hooks.ts';
import { mlpEditInputNames } from './gpt2-types.ts';
import { LayerOutOfRangeError, ModelFormatError } from './model-errors.ts';
import {
  DataType,
  attrInt,
  constantShape,
  dataTypeName,
  declaredDims,
  decodeModel,
  encodeModel,
  indexGraph,
  isConstantTensor,
  nodeInputNames,
  nodeSubgraphs,
  onnx,
  outerScopeNames,
  type GraphIndex,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from './onnx-graph.ts';

/** A graph input or output: dims are numbers, symbolic names, or '?' when unnamed. */
export interface TensorSpec {
  name: string;
  /** onnxruntime type name: 'float32', 'float16', 'int64', 'bool', ... */
  dtype: string;
  /** Empty when the file declares no shape. */
  dims: (number | string)[];
}

export interface ModelVariant {
  /** The body was wrapped in an If on a boolean input (optimum's decoder_model_merged). */
  merged: boolean;
  /** The model takes past key/value inputs. */
  hasPast: boolean;
  /** Weights or activations go through integer quantisation. */
  quantized: boolean;
  /** Weights or MLP activations are float16. */
  float16: boolean;
}

/** How an If node was replaced by one of its branches. */
export interface IfSpecialisation {
  ifNode: string;
  /** The boolean graph input that selected the branch (e.g. `use_cache_branch`). */
  condition: string;
  /** The value the condition is assumed to have. */
  assumedValue: boolean;
  keptBranch: 'then_branch' | 'else_branch';
  inlinedNodes: number;
  inlinedInitializers: number;
  /** Branch-local names renamed because the outer graph already used them. */
  renamedTensors: number;
}

export interface ModelInfo {
  nLayer: number;
  dModel: number;
  dMlp: number;
  vocabSize?: number;
  hooks: MlpHook[];
  /** Inputs and outputs of the file as given (before any specialisation or pruning). */
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** Name of the output holding the next-token logits, if one was recognised. */
  logitsOutput?: string;
  variant: ModelVariant;
  specialisations: IfSpecialisation[];
  /** Files holding externally stored weights (they must be supplied next to the model). */
  externalDataFiles: string[];
}

export interface InspectOptions {
  /** Residual width, if known; otherwise read from the token embedding. */
  dModel?: number;
  /** Used in error messages, e.g. the file name. */
  sourceName?: string;
}

export interface InstrumentOptions extends InspectOptions {
  /** Layers whose MLP activations to output; default all. */
  layers?: number[];
  /** Also output the logits (default false: the LM head is pruned away). */
  logits?: boolean;
  /** Output the post-GELU activations `blocks.{L}.mlp.hook_post` (default true). */
  post?: boolean;
  /**
   * Also output the MLP pre-activations (the GELU's input) as `blocks.{L}.mlp.hook_pre`
   * (default false). Throws ModelFormatError when the graph does not show where they are.
   */
  pre?: boolean;
  /**
   * Replace every MLP's GELU by this one, so the whole forward pass (not only the exposed
   * activations: later layers read earlier layers' MLP outputs) runs with it. 'model' (default)
   * keeps the graph's own. 'tanh' is GPT-2's GELU; 'sigmoid' is x·σ(1.702x), the approximation
   * the activations published with Bills et al. (2023) were computed with.
   */
  gelu?: 'model' | GeluVariant;
  /**
   * Make MLP activations editable through extra graph inputs (see `mlpEditInputNames`): true for
   * every layer, or a list of layers. Each edited layer's post-GELU activation x becomes
   * Where(mask, value, x · scale) before its down-projection, and `blocks.{L}.mlp.hook_post`
   * exposes the edited activation. With scale 1 and mask false the result is x bit for bit:
   * x · 1 is exact in IEEE arithmetic and Where passes x through untouched. Edits of layers the
   * requested outputs do not depend on are pruned away with their inputs (see `inputs`).
   */
  edits?: boolean | number[];
}

export type GeluVariant = 'tanh' | 'sigmoid';

export interface InstrumentedModel {
  bytes: Uint8Array;
  /** The requested layers' hooks, by layer; each is an output named `hook.hookName` unless `post: false`. */
  hooks: MlpHook[];
  /** Inputs the pruned model still needs (e.g. past_key_values of the kept layers, edit inputs). */
  inputs: TensorSpec[];
  /**
   * Output names in order: post-activation hook names by layer, then pre-activation hook names
   * by layer (with `pre`), then the logits output if asked for.
   */
  outputs: string[];
  info: ModelInfo;
  nodeCount: { before: number; after: number };
  /** External weight files the pruned model still reads. */
  externalDataFiles: string[];
}

/** Describes a model: its layers, MLP hooks, inputs/outputs and export variant. */
export function inspectModel(bytes: Uint8Array, options: InspectOptions = {}): ModelInfo {
  const model = decodeModel(bytes, options.sourceName);
  return analyseModel(model, options).info;
}

/**
 * The decoded model (merged decoders specialised to their no-cache branch), an index over its
 * graph and its description: for reading weights by structure (model-weights.ts).
 */
export function analyseModelGraph(bytes: Uint8Array, options: InspectOptions = {}): { model: ModelProto; index: GraphIndex; info: ModelInfo } {
  const model = decodeModel(bytes, options.sourceName);
  const { info, index } = analyseModel(model, options);
  return { model, index, info };
}

/** Returns a pruned copy of the model whose outputs are the requested MLP activations. */
export function instrumentModel(bytes: Uint8Array, options: InstrumentOptions = {}): InstrumentedModel {
  const model = decodeModel(bytes, options.sourceName);
  const nodesBefore = countNodes(model.graph!);
  const { info, index } = analyseModel(model, options);
  const graph = model.graph!;

  const layers = selectLayers(options.layers, info.nLayer);
  const post = options.post ?? true;
  const pre = options.pre ?? false;
  if ((layers.length === 0 || (!post && !pre)) && !options.logits) {
    throw new RangeError('nothing to compute: ask for at least one layer (post- or pre-activations), or for the logits');
  }
  const geluChoice = options.gelu ?? 'model';
  if (geluChoice !== 'model' && geluChoice !== 'tanh' && geluChoice !== 'sigmoid') {
    throw new RangeError(`gelu must be 'model', 'tanh' or 'sigmoid', not ${JSON.stringify(geluChoice)}`);
  }
  const needPre = (hook: MlpHook): NonNullable<MlpHook['pre']> => {
    if (hook.pre) return hook.pre;
    throw new ModelFormatError(
      `cannot ${pre ? 'expose' : 'replace the GELU of'} layer ${hook.layer}'s MLP${pre ? ' pre-activation' : ''}: the ops between its up-projection and the GELU do not show where the GELU's input is`,
    );
  };
  // With a replaced GELU, the exposed post-activation is the new GELU's output, and the
  // pre-activations already carry their hook names.
  let replaced: GeluReplacement = { activations: new Map(), named: new Set() };
  if (geluChoice !== 'model') {
    replaced = replaceGelus(graph, index, info.hooks.map((h) => ({ hook: h, pre: needPre(h) })), geluChoice);
  }
  const hooks = layers.map((l) => info.hooks[l]);
  const editLayers =
    options.edits === undefined || options.edits === false ? [] : selectLayers(options.edits === true ? undefined : options.edits, info.nLayer);
  const edited = addActivationEdits(
    graph,
    index,
    editLayers.map((l) => ({ hook: info.hooks[l], activation: replaced.activations.get(l) ?? info.hooks[l].tensorName })),
  );

  const newNodes: NodeProto[] = [];
  const outputs: ValueInfoProto[] = [];
  const expose = (exposed: ExposedTensor, dtype: MlpHook['dtype']) => {
    outputs.push(
      onnx.ValueInfoProto.create({
        name: exposed.hookName,
        type: { tensorType: { elemType: dtype === 'float16' ? DataType.FLOAT16 : DataType.FLOAT } },
      }),
    );
    if (replaced.named.has(exposed.hookName)) return;
    const alias = hookAliasNode(index, exposed);
    if (alias) newNodes.push(alias);
  };
  if (post) {
    for (const hook of hooks) {
      const tensorName = edited.get(hook.layer) ?? replaced.activations.get(hook.layer) ?? hook.tensorName;
      expose({ ...hook, tensorName, what: 'MLP activation' }, hook.dtype);
    }
  }
  if (pre) for (const hook of hooks) expose({ layer: hook.layer, what: 'MLP pre-activation', ...needPre(hook) }, needPre(hook).dtype);
  if (options.logits) {
    if (!info.logitsOutput) {
      throw new ModelFormatError('logits were requested, but no output of this model looks like next-token logits');
    }
    const existing = (graph.output ?? []).find((o) => o.name === info.logitsOutput)!;
    outputs.push(existing);
  }

  graph.node = [...(graph.node ?? []), ...newNodes];
  graph.output = outputs;
  pruneGraph(graph);

  return {
    bytes: encodeModel(model),
    hooks,
    inputs: realInputs(graph).map(tensorSpec),
    outputs: outputs.map((o) => o.name!),
    info,
    nodeCount: { before: nodesBefore, after: countNodes(graph) },
    externalDataFiles: externalDataFiles(graph),
  };
}

// ---------------------------------------------------------------------------------------------

interface Analysis {
  info: ModelInfo;
  index: GraphIndex;
}

/** Specialises merged decoders in place, then finds hooks and describes the model. */
function analyseModel(model: ModelProto, options: InspectOptions): Analysis {
  const graph = model.graph!;
  const inputs = realInputs(graph).map(tensorSpec);
  const outputs = (graph.output ?? []).map(tensorSpec);
  const externalFiles = externalDataFiles(graph);
  const specialisations = specialiseMergedDecoder(model);

  const index = indexGraph(graph);
  const hooks = findMlpHooks(index, { dModel: options.dModel });
  const widths = new Set(hooks.map((h) => `${h.dMlp}x${h.dModel}`));
  if (widths.size > 1) {
    throw new ModelFormatError(
      `the MLPs found have different shapes (${[...widths].join(', ')} as d_mlp x d_model); this is not a GPT-2 layout`,
    );
  }
  const embedding = findTokenEmbedding(index);
  const logitsOutput = findLogitsOutput(index, embedding?.vocabSize);
  const vocabSize = embedding?.vocabSize ?? (logitsOutput ? lmHeadVocab(index, logitsOutput, hooks[0].dModel) : undefined);

  const info: ModelInfo = {
    nLayer: hooks.length,
    dModel: hooks[0].dModel,
    dMlp: hooks[0].dMlp,
    ...(vocabSize !== undefined ? { vocabSize } : {}),
    hooks,
    inputs,
    outputs,
    ...(logitsOutput !== undefined ? { logitsOutput } : {}),
    variant: {
      merged: specialisations.length > 0,
      hasPast: inputs.some(isPastInput),
      quantized: isQuantized(graph),
      float16: hooks.some((h) => h.dtype === 'float16') || hasFloat16Weights(graph),
    },
    specialisations,
    externalDataFiles: externalFiles,
  };
  return { info, index };
}

function selectLayers(layers: number[] | undefined, nLayer: number): number[] {
  if (layers === undefined) return Array.from({ length: nLayer }, (_, i) => i);
  if (!Array.isArray(layers)) throw new TypeError('layers must be an array of layer indices');
  for (const l of layers) {
    if (!Number.isInteger(l) || l < 0 || l >= nLayer) throw new LayerOutOfRangeError(l, nLayer);
  }
  return [...new Set(layers)].sort((a, b) => a - b);
}

/** A tensor to expose under a stable name; with `bias`, the exposed value is tensorName + bias. */
interface ExposedTensor {
  layer: number;
  hookName: string;
  tensorName: string;
  bias?: string;
  /** For messages: "MLP activation", "MLP pre-activation". */
  what: string;
}

/**
 * A node exposing the tensor under its stable hook name (Identity, or Add for a bias a fused op
 * would add), or undefined when the tensor already has that name or an identical alias exists
 * (re-instrumenting a model).
 */
function hookAliasNode(index: GraphIndex, hook: ExposedTensor): NodeProto | undefined {
  if (hook.tensorName === hook.hookName && !hook.bias) return undefined;
  const opType = hook.bias ? 'Add' : 'Identity';
  const input = hook.bias ? [hook.tensorName, hook.bias] : [hook.tensorName];
  const taken = index.producers.get(hook.hookName);
  if (taken) {
    const same = taken.node.opType === opType && input.every((name, i) => taken.node.input?.[i] === name);
    if (same) return undefined;
    throw new ModelFormatError(
      `cannot expose layer ${hook.layer}'s ${hook.what} as "${hook.hookName}": the model already has another tensor with that name`,
    );
  }
  if (index.initializers.has(hook.hookName) || index.graphInputs.has(hook.hookName)) {
    throw new ModelFormatError(`cannot expose "${hook.hookName}": the model already has an input or weight with that name`);
  }
  return onnx.NodeProto.create({ name: `neurolens/${hook.hookName}`, opType, input, output: [hook.hookName] });
}

// ---------------------------------------------------------------------------------------------
// Replacing the GELU

interface GeluReplacement {
  /** The new activation tensor of each layer. */
  activations: Map<number, string>;
  /** Hook names the replacement gave to tensors (the pre-activations). */
  named: Set<string>;
}

/**
 * Rewires every listed MLP to a GELU built here from its pre-activation: the pre-activation gets
 * its hook name (an alias node, or an Add for a bias a fused GELU would add), the new GELU reads
 * it, and every reader of the old activation reads the new one instead (the old GELU is then
 * pruned). New nodes go right after the pre-activation's producer, keeping the node list in
 * topological order. Float16 pre-activations are computed in float32 and cast back. Mutates `graph`.
 */
function replaceGelus(
  graph: GraphProto,
  index: GraphIndex,
  mlps: { hook: MlpHook; pre: NonNullable<MlpHook['pre']> }[],
  variant: GeluVariant,
): GeluReplacement {
  const taken = takenNames(index);
  const fresh = (base: string) => freshName(taken, base);
  const constants = new Map<number, string>();
  const constant = (value: number): string => {
    let name = constants.get(value);
    if (!name) {
      name = fresh(`neurolens/gelu/const_${value}`);
      constants.set(value, name);
      graph.initializer = [...(graph.initializer ?? []), onnx.TensorProto.create({ name, dataType: DataType.FLOAT, dims: [], floatData: [value] })];
    }
    return name;
  };

  const inserted = new Map<string, NodeProto[]>(); // after the producer of this tensor
  const rewire = new Map<string, string>(); // old activation → new activation
  const result: GeluReplacement = { activations: new Map(), named: new Set() };
  for (const { hook, pre } of mlps) {
    const scope = `neurolens/${hook.hookName.replace(/\.hook_post$/, '')}/gelu_${variant}`;
    const nodes: NodeProto[] = [];
    let nodeCount = 0;
    const op = (opType: string, input: string[], attribute: NodeProto['attribute'] = []): string => {
      const output = fresh(`${scope}/${opType}_${nodeCount++}`);
      nodes.push(onnx.NodeProto.create({ name: output, opType, input, output: [output], attribute }));
      return output;
    };
    let x: string;
    if (pre.tensorName === pre.hookName && !pre.bias) x = pre.tensorName;
    else {
      const alias = hookAliasNode(index, { layer: hook.layer, hookName: pre.hookName, tensorName: pre.tensorName, bias: pre.bias, what: 'MLP pre-activation' });
      if (alias) {
        nodes.push(alias);
        taken.add(pre.hookName);
      }
      result.named.add(pre.hookName);
      x = pre.hookName;
    }
    const half = pre.dtype === 'float16';
    if (half) x = op('Cast', [x], [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: DataType.FLOAT }]);
    let y: string;
    if (variant === 'sigmoid') {
      y = op('Mul', [x, op('Sigmoid', [op('Mul', [x, constant(1.702)])])]);
    } else {
      const cube = op('Mul', [op('Mul', [x, x]), x]);
      const inner = op('Add', [x, op('Mul', [cube, constant(0.044715)])]);
      const t = op('Tanh', [op('Mul', [inner, constant(Math.sqrt(2 / Math.PI))])]);
      y = op('Mul', [op('Mul', [x, constant(0.5)]), op('Add', [t, constant(1)])]);
    }
    if (half) y = op('Cast', [y], [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: DataType.FLOAT16 }]);
    inserted.set(pre.tensorName, [...(inserted.get(pre.tensorName) ?? []), ...nodes]);
    rewire.set(hook.tensorName, y);
    result.activations.set(hook.layer, y);
  }

  spliceNodes(graph, inserted, rewire);
  return result;
}

/** Every name the graph defines (tensors, weights, inputs), to keep new names apart from. */
function takenNames(index: GraphIndex): Set<string> {
  return new Set<string>([...index.producers.keys(), ...index.initializers.keys(), ...index.graphInputs.keys()]);
}

/** `base`, or `base_2`, `base_3`, ... whichever is free; marks it taken. */
function freshName(taken: Set<string>, base: string): string {
  let name = base;
  for (let k = 2; taken.has(name); k++) name = `${base}_${k}`;
  taken.add(name);
  return name;
}

/**
 * Puts each list of `inserted` nodes right after the node producing its key tensor (keeping the
 * node list in topological order), and makes the graph's existing nodes read `rewire`'s target
 * wherever they read its source (the inserted nodes themselves are left as they are). Mutates `graph`.
 */
function spliceNodes(graph: GraphProto, inserted: ReadonlyMap<string, NodeProto[]>, rewire: ReadonlyMap<string, string>): void {
  const nodes: NodeProto[] = [];
  const pending = new Map(inserted);
  for (const node of graph.node ?? []) {
    node.input = (node.input ?? []).map((n) => rewire.get(n) ?? n);
    nodes.push(node);
    for (const o of node.output ?? []) {
      const after = pending.get(o);
      if (after) {
        nodes.push(...after);
        pending.delete(o);
      }
    }
  }
  if (pending.size > 0) throw new ModelFormatError(`internal: no producer for ${[...pending.keys()].join(', ')}`);
  graph.node = nodes;
}

// ---------------------------------------------------------------------------------------------
// Editing activations

/**
 * Makes each listed layer's activation editable: adds the inputs `mlpEditInputNames(layer)`, computes
 * Where(mask, value, activation · scale) right after the activation (in float16 graphs the float32
 * scale and value are cast to float16 first; 1 and every float16 value survive that exactly), and
 * makes every reader of the activation read the edited one instead. Returns the edited tensor of
 * each layer. Mutates `graph`; `index` describes it as it was before any change.
 */
function addActivationEdits(graph: GraphProto, index: GraphIndex, layers: { hook: MlpHook; activation: string }[]): Map<number, string> {
  const edited = new Map<number, string>();
  if (layers.length === 0) return edited;
  const taken = new Set([...takenNames(index), ...(graph.node ?? []).flatMap((n) => n.output ?? [])]);
  const inserted = new Map<string, NodeProto[]>();
  const rewire = new Map<string, string>();
  const inputs: ValueInfoProto[] = [];
  for (const { hook, activation } of layers) {
    const names = mlpEditInputNames(hook.layer);
    const editInputs = [
      [names.scale, DataType.FLOAT],
      [names.mask, DataType.BOOL],
      [names.value, DataType.FLOAT],
    ] as const;
    for (const [name, elemType] of editInputs) {
      if (taken.has(name)) {
        throw new ModelFormatError(`cannot make layer ${hook.layer}'s MLP editable: the model already has a tensor named "${name}"`);
      }
      taken.add(name);
      inputs.push(
        onnx.ValueInfoProto.create({
          name,
          type: { tensorType: { elemType, shape: { dim: [{}, {}, { dimValue: hook.dMlp }] } } },
        }),
      );
    }
    const scope = `neurolens/${hook.hookName}/edit`;
    const nodes: NodeProto[] = [];
    const op = (opType: string, input: string[], attribute: NodeProto['attribute'] = []): string => {
      const output = freshName(taken, `${scope}/${opType}_${nodes.length}`);
      nodes.push(onnx.NodeProto.create({ name: output, opType, input, output: [output], attribute }));
      return output;
    };
    const toHalf = (x: string) => op('Cast', [x], [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: DataType.FLOAT16 }]);
    const half = hook.dtype === 'float16';
    const scale = half ? toHalf(names.scale) : names.scale;
    const value = half ? toHalf(names.value) : names.value;
    const result = op('Where', [names.mask, value, op('Mul', [activation, scale])]);
    inserted.set(activation, [...(inserted.get(activation) ?? []), ...nodes]);
    rewire.set(activation, result);
    edited.set(hook.layer, result);
  }
  graph.input = [...(graph.input ?? []), ...inputs];
  spliceNodes(graph, inserted, rewire);
  return edited;
}

// ---------------------------------------------------------------------------------------------
// Merged decoders

/**
 * Replaces every top-level If whose condition is a graph input (optimum's `use_cache_branch`)
 * by the branch that reads fewer graph inputs, i.e. the one without past key/values
 * (then_branch = with past, else_branch = without; ties go to else_branch). Mutates `model`.
 */
export function specialiseMergedDecoder(model: ModelProto): IfSpecialisation[] {
  const graph = model.graph!;
  const initializerNames = new Set((graph.initializer ?? []).map((t) => t.name));
  const graphInputs = new Set((graph.input ?? []).map((i) => i.name).filter((n) => n && !initializerNames.has(n)));
  const reports: IfSpecialisation[] = [];
  const nodes: NodeProto[] = [];
  const addedInitializers: TensorProto[] = [];
  const addedValueInfo: ValueInfoProto[] = [];

  for (const node of graph.node ?? []) {
    const condition = node.input?.[0];
    const thenBranch = node.attribute?.find((a) => a.name === 'then_branch')?.g;
    const elseBranch = node.attribute?.find((a) => a.name === 'else_branch')?.g;
    if (node.opType !== 'If' || !condition || !graphInputs.has(condition) || !thenBranch || !elseBranch) {
      nodes.push(node);
      continue;
    }
    const inputsRead = (g: GraphProto) => [...outerScopeNames(g)].filter((n) => graphInputs.has(n)).length;
    const keepThen = inputsRead(thenBranch) < inputsRead(elseBranch);
    const branch = keepThen ? thenBranch : elseBranch;
    const branchOutputs = branch.output ?? [];
    if (branchOutputs.length !== (node.output ?? []).length) {
      throw new ModelFormatError(`If node "${node.name ?? ''}" has ${node.output?.length} outputs but its branch has ${branchOutputs.length}`);
    }

    const rename = branchRenames(graph, branch, node);
    const renamed = (n: string) => rename.get(n) ?? n;
    const inlined = (branch.node ?? []).map((n) => renameNode(n, rename));
    nodes.push(...inlined);
    (node.output ?? []).forEach((outer, i) => {
      const inner = renamed(branchOutputs[i].name ?? '');
      if (!outer || inner === outer) return;
      nodes.push(onnx.NodeProto.create({ name: `neurolens/specialise/${outer}`, opType: 'Identity', input: [inner], output: [outer] }));
    });
    for (const t of branch.initializer ?? []) {
      if (t.name) t.name = renamed(t.name);
      addedInitializers.push(t);
    }
    for (const v of [...(branch.valueInfo ?? []), ...branchOutputs]) {
      addedValueInfo.push({ ...v, name: renamed(v.name ?? '') });
    }
    reports.push({
      ifNode: node.name ?? '',
      condition,
      assumedValue: keepThen,
      keptBranch: keepThen ? 'then_branch' : 'else_branch',
      inlinedNodes: inlined.length,
      inlinedInitializers: branch.initializer?.length ?? 0,
      renamedTensors: rename.size,
    });
  }
  if (reports.length === 0) return reports;

  graph.node = nodes;
  graph.initializer = [...(graph.initializer ?? []), ...addedInitializers];
  // Branch outputs can share names with If outputs' value_info; keep the outer declaration.
  const declared = new Set([...(graph.valueInfo ?? []), ...(graph.output ?? [])].map((v) => v.name));
  graph.valueInfo = [...(graph.valueInfo ?? []), ...addedValueInfo.filter((v) => !declared.has(v.name))];
  // The condition inputs are no longer read by anything.
  const stillRead = new Set(nodes.flatMap(nodeInputNames));
  const conditions = new Set(reports.map((r) => r.condition));
  graph.input = (graph.input ?? []).filter((i) => !conditions.has(i.name ?? '') || stillRead.has(i.name ?? ''));
  return reports;
}

/** Renames for branch-defined names that already exist in the outer graph (avoids clashes when inlining). */
function branchRenames(outer: GraphProto, branch: GraphProto, ifNode: NodeProto): Map<string, string> {
  const taken = new Set<string>();
  for (const i of outer.input ?? []) if (i.name) taken.add(i.name);
  for (const t of outer.initializer ?? []) if (t.name) taken.add(t.name);
  for (const n of outer.node ?? []) for (const o of n.output ?? []) if (o) taken.add(o);
  const rename = new Map<string, string>();
  const defined = [
    ...(branch.initializer ?? []).map((t) => t.name ?? ''),
    ...(branch.node ?? []).flatMap((n) => n.output ?? []),
  ].filter((n) => n !== '');
  for (const name of defined) {
    if (!taken.has(name)) continue;
    let candidate = `${name}/${ifNode.name || 'if'}_branch`;
    for (let k = 2; taken.has(candidate); k++) candidate = `${name}/${ifNode.name || 'if'}_branch${k}`;
    taken.add(candidate);
    rename.set(name, candidate);
  }
  return rename;
}

function renameNode(node: NodeProto, rename: Map<string, string>): NodeProto {
  if (rename.size === 0) return node;
  node.input = (node.input ?? []).map((n) => rename.get(n) ?? n);
  node.output = (node.output ?? []).map((n) => rename.get(n) ?? n);
  // Nested subgraphs may read renamed names from this scope.
  for (const g of nodeSubgraphs(node)) {
    const local = new Set([
      ...(g.input ?? []).map((i) => i.name ?? ''),
      ...(g.initializer ?? []).map((t) => t.name ?? ''),
      ...(g.node ?? []).flatMap((n) => n.output ?? []),
    ]);
    const outerOnly = new Map([...rename].filter(([from]) => !local.has(from)));
    for (const n of g.node ?? []) renameNode(n, outerOnly);
    for (const o of g.output ?? []) if (o.name && outerOnly.has(o.name)) o.name = outerOnly.get(o.name)!;
  }
  return node;
}

// ---------------------------------------------------------------------------------------------
// Pruning

/**
 * Keeps only what the graph outputs need: nodes reachable backwards from them, the
 * initializers, inputs and value_info those nodes use. Mutates `graph`.
 */
export function pruneGraph(graph: GraphProto): void {
  const producers = new Map<string, NodeProto>();
  for (const node of graph.node ?? []) for (const o of node.output ?? []) if (o) producers.set(o, node);
  const needed = new Set<string>();
  const keptNodes = new Set<NodeProto>();
  const stack = (graph.output ?? []).map((o) => o.name ?? '');
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (!name || needed.has(name)) continue;
    needed.add(name);
    const node = producers.get(name);
    if (node && !keptNodes.has(node)) {
      keptNodes.add(node);
      stack.push(...nodeInputNames(node));
    }
  }
  graph.node = (graph.node ?? []).filter((n) => keptNodes.has(n));
  const touched = new Set<string>(needed);
  for (const n of graph.node) for (const o of n.output ?? []) touched.add(o);
  graph.initializer = (graph.initializer ?? []).filter((t) => needed.has(t.name ?? ''));
  graph.sparseInitializer = (graph.sparseInitializer ?? []).filter((t) => needed.has(t.values?.name ?? ''));
  graph.input = (graph.input ?? []).filter((i) => needed.has(i.name ?? ''));
  graph.valueInfo = (graph.valueInfo ?? []).filter((v) => touched.has(v.name ?? ''));
}

// ---------------------------------------------------------------------------------------------
// Describing the model

/** Graph inputs the caller must feed: old exporters also list initializers (which have defaults) as inputs. */
function realInputs(graph: GraphProto): ValueInfoProto[] {
  const initializers = new Set((graph.initializer ?? []).map((t) => t.name));
  return (graph.input ?? []).filter((i) => !initializers.has(i.name));
}

function tensorSpec(v: ValueInfoProto): TensorSpec {
  return { name: v.name ?? '', dtype: dataTypeName(v.type?.tensorType?.elemType), dims: declaredDims(v) ?? [] };
}

/** Nodes in the graph, including those inside If/Loop subgraphs. */
function countNodes(graph: GraphProto): number {
  let n = 0;
  for (const node of graph.node ?? []) {
    n++;
    for (const g of nodeSubgraphs(node)) n += countNodes(g);
  }
  return n;
}

/** Past key/value inputs: rank-4 float inputs (batch, heads, past length, head size). */
function isPastInput(spec: TensorSpec): boolean {
  return (spec.dtype === 'float32' || spec.dtype === 'float16') && spec.dims.length === 4;
}

const QUANTIZATION_OPS = new Set([
  'MatMulInteger',
  'DynamicQuantizeLinear',
  'QuantizeLinear',
  'DequantizeLinear',
  'QLinearMatMul',
  'MatMulNBits',
  'QGemm',
  'DynamicQuantizeMatMul',
  'MatMulIntegerToFloat',
]);

function isQuantized(graph: GraphProto): boolean {
  return (graph.node ?? []).some((n) => QUANTIZATION_OPS.has(n.opType ?? ''));
}

function hasFloat16Weights(graph: GraphProto): boolean {
  return (graph.initializer ?? []).some((t) => t.dataType === DataType.FLOAT16 && (t.dims?.length ?? 0) >= 2);
}

function externalDataFiles(graph: GraphProto): string[] {
  const files = new Set<string>();
  for (const t of graph.initializer ?? []) {
    if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) continue;
    const location = t.externalData?.find((e) => e.key === 'location')?.value;
    if (location) files.add(location);
  }
  return [...files];
}

/** Ops between the LM head's matrix product and the logits output. */
const LOGITS_PATH_OPS = new Set(['Reshape', 'Cast', 'Identity', 'Squeeze', 'Unsqueeze', 'Flatten', 'Add', 'Mul']);

/** The shape of the projection behind `output` (see headProjection). */
function headProjectionShape(index: GraphIndex, output: string): number[] | undefined {
  return headProjection(index, output)?.shape;
}

/**
 * The projection node behind `output` (through bias/scale/reshape ops), with its weight shape as
 * stored in the file (MatMul: [k, n]; Gemm: as stored, before transB).
 */
export function headProjection(index: GraphIndex, output: string): { node: NodeProto; shape: number[] } | undefined {
  const memo = new Map<string, boolean>();
  const stack = [output];
  const visited = new Set<string>();
  while (stack.length > 0 && visited.size < 32) {
    const name = stack.pop()!;
    if (visited.has(name) || isConstantTensor(index, name, memo)) continue;
    visited.add(name);
    const p = index.producers.get(name);
    if (!p) continue;
    const op = p.node.opType ?? '';
    if (op === 'MatMul' || op === 'Gemm' || op === 'MatMulInteger') {
      const shape = p.node.input?.[1] ? constantShape(index, p.node.input[1]) : undefined;
      if (shape?.length === 2) return { node: p.node, shape };
    } else if (op === 'MatMulNBits') {
      return { node: p.node, shape: [attrInt(p.node, 'K', 0), attrInt(p.node, 'N', 0)] };
    } else if (LOGITS_PATH_OPS.has(op)) {
      if (op === 'Reshape' || op === 'Squeeze' || op === 'Unsqueeze') stack.push(p.node.input?.[0] ?? '');
      else for (const i of p.node.input ?? []) if (i) stack.push(i);
    }
  }
  return undefined;
}

/**
 * The output holding logits: produced by a matrix product with a vocabulary-sized weight.
 * Without a known vocabulary size, falls back to the conventional output name `logits`.
 */
function findLogitsOutput(index: GraphIndex, vocabSize: number | undefined): string | undefined {
  const outputs = (index.graph.output ?? []).map((o) => o.name ?? '').filter((n) => n !== '');
  if (vocabSize !== undefined) {
    const byStructure = outputs.find((o) => headProjectionShape(index, o)?.includes(vocabSize));
    if (byStructure) return byStructure;
  }
  return outputs.find((o) => o === 'logits');
}

/** Vocabulary size from the LM head weight: its dimension that is not d_model. */
function lmHeadVocab(index: GraphIndex, logitsOutput: string, dModel: number): number | undefined {
  const shape = headProjectionShape(index, logitsOutput);
  if (!shape) return undefined;
  return shape[0] === dModel ? shape[1] : shape[1] === dModel ? shape[0] : undefined;
}

// Re-exported so callers need a single import for the whole instrumentation API.
export type { MlpHook } from './find-mlp-hooks.ts';
