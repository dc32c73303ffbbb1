/**
 * Runs an instrumented model and returns the post-GELU activation of every requested MLP
 * neuron for every token. One capturer per loaded model; instrumented sessions are cached per
 * (layers, logits, hooks, GELU) request because a pruned graph is cheaper to run.
 *
 * `gelu` chooses the MLPs' GELU: 'model' (default) is the graph's own; 'tanh' (GPT-2's) and
 * 'sigmoid' (x·σ(1.702x), which the activations published with Bills et al. 2023 were computed
 * with) replace the GELU of every layer inside the graph (see instrument.ts). Replacing it only
 * where the activations are read would not do: each layer's input depends on the GELUs of all
 * layers below it. The post-activations are then the new GELU applied to `blocks.{L}.mlp.hook_pre`.
 *
 * `edits` runs a session whose every MLP is editable (neuron-edits.ts): one session serves any
 * set of edits, and no edit at all gives the plain session's outputs bit for bit.
 */
import type { InferenceSession, Tensor } from 'onnxruntime-common';
import { mlpHookName, parseMlpEditInputName } from './gpt2-types.ts';
import { modelGraph, type LoadedModel } from './load-model.ts';
import type { BackendName, OrtRuntime } from './ort-runtime.ts';
import { instrumentModel } from './instrument.ts';
import { mlpPreHookName } from './find-mlp-hooks.ts';
import { float16ToFloat32 } from './float16.ts';
import { checkLayerIndex, checkNeuronEdits, checkNeuronRef, layerEditTensors, type NeuronEdit } from './neuron-edits.ts';
import { EmptyTextError, OutOfRangeError, TextTooLongError } from './text-errors.ts';
import type { Token } from './tokenizer.ts';

export interface BatchActivations {
  batch: number;
  seq: number;
  dMlp: number;
  /** Per requested layer: post-GELU activations, [batch, seq, dMlp] row-major. */
  layers: Map<number, Float32Array>;
  /** Per requested layer: pre-activations (the GELU's input), when `pre` was asked for. */
  pre?: Map<number, Float32Array>;
  /** [batch, seq, vocab] when logits were asked for. */
  logits?: Float32Array;
}

/** Where post-GELU activations come from (see the module comment). */
export type GeluChoice = 'model' | 'tanh' | 'sigmoid';

export const GELU_CHOICES: readonly GeluChoice[] = ['model', 'tanh', 'sigmoid'];

export interface RunTokensOptions {
  layers?: number[];
  logits?: boolean;
  /** Default 'model'. */
  gelu?: GeluChoice;
  /** Also return the pre-activations (default false). */
  pre?: boolean;
  /**
   * Run with these neuron edits (neuron-edits.ts) on a session whose every MLP is editable; the
   * returned activations of an edited layer are the edited ones. An empty list runs that session
   * unedited, which gives exactly the outputs of a plain session. Edits must be in a layer the
   * requested outputs depend on (with logits, any layer).
   */
  edits?: readonly NeuronEdit[];
}

export interface NeuronRef {
  layer: number;
  neuron: number;
}

export interface TextCapture {
  tokens: Token[];
  backend: BackendName;
  /** Per layer: one row of dMlp activations per token (or of the chosen neurons' only). */
  layers: Map<number, Float32Array[]>;
  /** Set when only some neurons were asked for: the columns kept, in order. */
  neurons?: NeuronRef[];
  /** Number of context windows the text was split into (1 when it fit). */
  windows: number;
}

interface PreparedSession {
  session: InferenceSession;
  backend: BackendName;
  inputs: { name: string; dtype: string; dims: (number | string)[] }[];
}

export class ActivationCapturer {
  private readonly sessions = new Map<string, Promise<PreparedSession>>();
  /** The backend that ran the most recent session. */
  backend: BackendName | null = null;

  constructor(
    readonly model: LoadedModel,
    private readonly runtime: OrtRuntime,
  ) {}

  get nLayer(): number {
    return this.model.config.nLayer;
  }

  get dMlp(): number {
    return this.model.config.dMlp;
  }

  /** Validates a layer list, defaulting to all layers. */
  resolveLayers(layers?: number[]): number[] {
    if (!layers || layers.length === 0) return [...Array(this.nLayer).keys()];
    for (const l of layers) checkLayerIndex(l, this.nLayer);
    return [...new Set(layers)].sort((a, b) => a - b);
  }

  checkNeuron(ref: NeuronRef): void {
    checkNeuronRef(ref, { nLayer: this.nLayer, dMlp: this.dMlp });
  }

  private prepare(layers: number[], logits: boolean, hooks: SessionHooks = { pre: false, gelu: 'model', editable: false }): Promise<PreparedSession> {
    const key = `${layers.join(',')}|${logits}|${hooks.pre ? 'pre' : ''}|${hooks.gelu}|${hooks.editable ? 'editable' : ''}`;
    let prepared = this.sessions.get(key);
    if (!prepared) {
      prepared = this.createSession(layers, logits, hooks);
      prepared.catch(() => this.sessions.delete(key));
      // Keep at most a couple of graphs alive: each holds its own copy of the weights.
      if (this.sessions.size >= 2) {
        const [oldestKey, oldest] = this.sessions.entries().next().value!;
        this.sessions.delete(oldestKey);
        void oldest.then((s) => s.session.release?.()).catch(() => {});
      }
      this.sessions.set(key, prepared);
    }
    return prepared;
  }

  /**
   * Instruments the graph and starts a session on it. Where the runtime reads model files itself
   * (Node), the instrumented bytes go to a temporary file and every JavaScript copy of the model is
   * let go of (and collected) first, so that memory never holds the model file, the instrumented
   * copy and onnxruntime's copy at once; the graph is read again from its source when another
   * session needs it.
   */
  private async createSession(layers: number[], logits: boolean, hooks: SessionHooks): Promise<PreparedSession> {
    const { runtime } = this;
    // Nullable so that the references can be dropped before the session is created.
    let graph: { onnxBytes: Uint8Array; externalData: { path: string; data: Uint8Array }[] } | null = await modelGraph(this.model);
    let instrumented: { bytes: Uint8Array; inputs: PreparedSession['inputs'] } | null = instrumentModel(graph.onnxBytes, {
      layers,
      logits,
      dModel: this.model.config.dModel,
      pre: hooks.pre,
      gelu: hooks.gelu,
      edits: hooks.editable,
    });
    const inputs = instrumented.inputs;
    // Staging can fail (a full or read-only temporary folder): then the bytes go over as they are.
    const staged = runtime.stageModel ? await runtime.stageModel(instrumented.bytes, graph.externalData).catch(() => null) : null;
    if (!staged) {
      const { session, backend } = await runtime.createSession(instrumented.bytes, { externalData: graph.externalData });
      this.backend = backend;
      return { session, backend, inputs };
    }
    try {
      instrumented = null;
      graph = null;
      this.model.onnxBytes = new Uint8Array(0);
      this.model.externalData = [];
      runtime.reclaimMemory?.();
      const { session, backend } = await runtime.createSession(staged.path);
      this.backend = backend;
      return { session, backend, inputs };
    } finally {
      await staged.dispose();
    }
  }


  /** Creates the session for a request ahead of time (so load time is separate from run time). */
  async warmUp(layers?: number[], logits = false, options: { gelu?: GeluChoice; pre?: boolean; edits?: readonly NeuronEdit[] } = {}): Promise<BackendName> {
    return (await this.prepare(this.resolveLayers(layers), logits, hooksFor(options))).backend;
  }

  /**
   * Runs equal-length token sequences as one batch. Rows shorter than the longest are padded on
   * the right and masked, so each row's activations are those of the row alone.
   */
  async runTokens(batchIds: number[][], options: RunTokensOptions = {}): Promise<BatchActivations> {
    const layers = this.resolveLayers(options.layers);
    const logits = options.logits ?? false;
    const hooks = hooksFor(options);
    if (batchIds.length === 0 || batchIds.some((r) => r.length === 0)) throw new EmptyTextError();
    const seq = Math.max(...batchIds.map((r) => r.length));
    if (seq > this.model.config.nCtx) throw new TextTooLongError(seq, this.model.config.nCtx);
    const batch = batchIds.length;
    const edits = options.edits ?? [];
    if (hooks.editable) {
      checkNeuronEdits(edits, { nLayer: this.nLayer, dMlp: this.dMlp, batch, seq });
      const reach = logits ? this.nLayer - 1 : layers[layers.length - 1];
      const unreached = edits.find((e) => e.layer > reach);
      if (unreached) {
        throw new OutOfRangeError(
          `an edit of neuron ${unreached.layer}:${unreached.neuron} cannot change the outputs asked for (layers up to ${reach}); ask for the logits or a later layer`,
        );
      }
    }
    const prepared = await this.prepare(layers, logits, hooks);
    const feeds = this.buildFeeds(prepared, batchIds, seq, edits);
    const results = await prepared.session.run(feeds);
    const out: BatchActivations = { batch, seq, dMlp: this.dMlp, layers: new Map() };
    const output = (name: string) => {
      const tensor = results[name];
      if (!tensor) throw new Error(`the model returned no ${name} output`);
      return toFloat32(tensor);
    };
    for (const layer of layers) out.layers.set(layer, output(mlpHookName(layer)));
    if (hooks.pre) out.pre = new Map(layers.map((layer) => [layer, output(mlpPreHookName(layer))]));
    if (logits) {
      const name = this.model.info.logitsOutput ?? 'logits';
      if (results[name]) out.logits = toFloat32(results[name]);
    }
    for (const t of Object.values(results)) (t as { dispose?: () => void }).dispose?.();
    return out;
  }

  private buildFeeds(prepared: PreparedSession, batchIds: number[][], seq: number, edits: readonly NeuronEdit[]): Record<string, Tensor> {
    const { Tensor } = this.runtime.ort;
    const batch = batchIds.length;
    const ids = new BigInt64Array(batch * seq);
    const mask = new BigInt64Array(batch * seq);
    const positions = new BigInt64Array(batch * seq);
    batchIds.forEach((row, b) => {
      for (let t = 0; t < seq; t++) {
        ids[b * seq + t] = BigInt(t < row.length ? row[t] : (this.model.tokenizer.eosTokenId ?? 0));
        mask[b * seq + t] = t < row.length ? 1n : 0n;
        positions[b * seq + t] = BigInt(t);
      }
    });
    const feeds: Record<string, Tensor> = {};
    const { nHead, dModel } = this.model.config;
    const editTensors = new Map<number, ReturnType<typeof layerEditTensors>>();
    const editShape = { nLayer: this.nLayer, dMlp: this.dMlp, batch, seq };
    for (const input of prepared.inputs) {
      const { name } = input;
      const edit = parseMlpEditInputName(name);
      if (edit) {
        let tensors = editTensors.get(edit.layer);
        if (!tensors) editTensors.set(edit.layer, (tensors = layerEditTensors(edits, edit.layer, editShape)));
        const { data, dims } = tensors[edit.role];
        feeds[name] = edit.role === 'mask' ? new Tensor('bool', data, dims) : new Tensor('float32', data as Float32Array, dims);
        continue;
      }
      if (name === 'input_ids') feeds[name] = new Tensor('int64', ids, [batch, seq]);
      else if (name === 'attention_mask') feeds[name] = new Tensor('int64', mask, [batch, seq]);
      else if (name === 'position_ids') feeds[name] = new Tensor('int64', positions, [batch, seq]);
      else if (name.startsWith('past_key_values') || name.startsWith('past_')) {
        // A decoder-with-past export: an empty cache makes it a plain forward pass.
        const dims = [batch, nHead, 0, dModel / nHead];
        feeds[name] = input.dtype === 'float16'
          ? new Tensor('float16', new Uint16Array(0), dims)
          : new Tensor('float32', new Float32Array(0), dims);
      } else if (name === 'use_cache_branch') feeds[name] = new Tensor('bool', [false], [1]);
      else throw new Error(`the model needs an input "${name}" that Neurolens does not know how to fill`);
    }
    return feeds;
  }

  /** Tokenises text, refusing empty text. */
  tokenize(text: string): Token[] {
    if (text.length === 0) throw new EmptyTextError();
    const tokens = this.model.tokenizer.encode(text);
    if (tokens.length === 0) throw new EmptyTextError();
    return tokens;
  }

  /**
   * Captures activations for a text. Text longer than the context window is refused unless
   * `windowed` is set; then it is cut into consecutive windows of at most nCtx tokens, each run
   * as its own sequence (tokens at the start of a window see no earlier context).
   */
  async captureText(
    text: string,
    options: { layers?: number[]; neurons?: NeuronRef[]; windowed?: boolean; windowSize?: number; gelu?: GeluChoice } = {},
  ): Promise<TextCapture> {
    const tokens = this.tokenize(text);
    const nCtx = this.model.config.nCtx;
    const windowSize = Math.min(options.windowSize ?? nCtx, nCtx);
    if (tokens.length > nCtx && !options.windowed) throw new TextTooLongError(tokens.length, nCtx);
    options.neurons?.forEach((n) => this.checkNeuron(n));
    const layers = options.neurons?.length
      ? this.resolveLayers(options.neurons.map((n) => n.layer))
      : this.resolveLayers(options.layers);
    const ids = tokens.map((t) => t.id);
    const windows: number[][] = [];
    for (let i = 0; i < ids.length; i += windowSize) windows.push(ids.slice(i, i + windowSize));
    const rowsByLayer = new Map<number, Float32Array[]>(layers.map((l) => [l, []]));
    for (const window of windows) {
      const result = await this.runTokens([window], { layers, gelu: options.gelu });
      for (const layer of layers) {
        const all = result.layers.get(layer)!;
        const rows = rowsByLayer.get(layer)!;
        for (let t = 0; t < window.length; t++) {
          const row = all.subarray(t * this.dMlp, (t + 1) * this.dMlp);
          if (options.neurons?.length) {
            const cols = options.neurons.filter((n) => n.layer === layer);
            rows.push(Float32Array.from(cols, (n) => row[n.neuron]));
          } else rows.push(row.slice());
        }
      }
    }
    return {
      tokens,
      backend: this.backend!,
      layers: rowsByLayer,
      neurons: options.neurons?.length ? options.neurons : undefined,
      windows: windows.length,
    };
  }

  async dispose(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(all.map((p) => p.then((s) => s.session.release?.()).catch(() => {})));
  }
}

interface SessionHooks {
  pre: boolean;
  gelu: GeluChoice;
  /** Every MLP gets edit inputs (instrument.ts `edits: true`). */
  editable: boolean;
}

function hooksFor(options: { gelu?: GeluChoice; pre?: boolean; edits?: readonly NeuronEdit[] }): SessionHooks {
  const gelu = options.gelu ?? 'model';
  if (!GELU_CHOICES.includes(gelu)) throw new RangeError(`gelu must be one of ${GELU_CHOICES.join(', ')}, not "${String(gelu)}"`);
  return { pre: options.pre === true, gelu, editable: options.edits !== undefined };
}

function toFloat32(tensor: Tensor): Float32Array {
  const data = tensor.data;
  if (data instanceof Float32Array) return data;
  if (tensor.type === 'float16') {
    // onnxruntime hands float16 over as raw bits (Uint16Array) or, where supported, Float16Array.
    if (data instanceof Uint16Array) return float16ToFloat32(data);
    return Float32Array.from(data as ArrayLike<number>);
  }
  throw new Error(`unexpected ${tensor.type} activation tensor`);
}
