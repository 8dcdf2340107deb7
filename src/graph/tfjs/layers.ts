/**
 * TF.js *layers* models (Keras topology JSON) → the IR. Activations become NCHW and kernels OIHW once, here.
 * Keras "same" padding becomes `autoPad: 'same_upper'` (TF puts the odd pixel bottom/right, computed per input
 * size, so the graph stays resolution independent). A softmax on the model output is dropped so the graph
 * outputs logits (recorded in `meta.outputActivation`).
 *
 * Nested models — a `Sequential` in a `Sequential`, a functional `Model` used as a layer, the shape of Teachable
 * Machine and most Keras transfer-learning exports — are inlined: their layers become nodes of the one graph, their
 * inputs are bound to what the outer model feeds them. Layer names are unique only within one model, so a name that
 * occurs at several nesting levels gets the path of nested model names below the root as its IR prefix
 * (`block.conv.weight` beside the outer `conv.weight`); a name that occurs once keeps its bare Keras name, so flat
 * models (nsfwjs) and Teachable Machine's backbone (`Conv1.weight`) read as usual.
 */
import { noGrad, zeros, type Tensor } from '../../engine/index.js';
import { GraphBuilder } from '../builder.js';
import { ModelFormatError, UnsupportedOpError } from '../errors.js';
import type { AttrValue, Graph } from '../ir.js';
import type { JsValue } from './js-literal.js';
import { decodeWeightList, modelNameOf, type DecodedWeight, type TfjsArtifacts } from './artifacts.js';
import { findClassifierHead } from './classifier-head.js';
import { convKernel, denseKernel, depthwiseKernel, nhwcAxis, weightTensor } from './convert.js';
import { inputRangeOf } from './input-range.js';
import { KERAS_ACTIVATIONS } from './keras-activations.js';
import { LAYER_RULES, pair, type Config, type LayerCtx, type Val } from './layer-rules.js';
import { LayerWeights, type ShapeWant } from './layer-weights.js';

/** Model classes that may appear as a layer of another model (`Functional` is Keras ≥ 2.4's name for `Model`). */
const NESTED_MODELS = ['Sequential', 'Model', 'Functional'] as const;
export const SUPPORTED_LAYERS = [
  'InputLayer',
  'Conv2D',
  'DepthwiseConv2D',
  'SeparableConv2D',
  'BatchNormalization',
  'ReLU',
  'Activation',
  'ZeroPadding2D',
  'Concatenate',
  'MaxPooling2D',
  'AveragePooling2D',
  'GlobalAveragePooling2D',
  'Flatten',
  'Dense',
  'Dropout',
  'Reshape',
  ...Object.keys(LAYER_RULES),
  ...NESTED_MODELS,
] as readonly string[];

/** What an unsupported-layer error lists as supported: the layer classes, then the activation names. */
const SUPPORTED = [...SUPPORTED_LAYERS, `activations ${Object.keys(KERAS_ACTIVATIONS).join('/')}`];

interface Layer {
  name?: string;
  class_name: string;
  config: { [k: string]: JsValue } | JsValue[];
  inbound_nodes?: JsValue;
}
const isNested = (l: Layer) => (NESTED_MODELS as readonly string[]).includes(l.class_name);
const layerName = (l: Layer) => String((Array.isArray(l.config) ? undefined : l.config.name) ?? l.name ?? l.class_name);

/**
 * A TF.js layers model (flat or nested) as an IR graph: logits out, head and feature tap set, input range decided
 * (input-range.ts). Example: `importTfjsLayers(await readTfjsArtifacts('tm-model/'))`.
 */
export function importTfjsLayers(a: TfjsArtifacts): Graph {
  return new LayersImport(a).run();
}

class LayersImport {
  private readonly file: string;
  private readonly b = new GraphBuilder();
  private readonly weights: LayerWeights;
  private readonly meta: Record<string, unknown>;
  /** Keras layer name → how many layers of the whole nesting tree carry it. */
  private readonly nameCount = new Map<string, number>();
  /** Nested model path ('outer/inner') → the names of its layers (input-range rule 2). */
  private readonly nested = new Map<string, string[]>();
  private input: { name: string; shape: (number | null)[]; hw: [number | null, number | null] } | undefined;
  private lastDense: string | undefined;
  /** The preprocessing layer (Rescaling / Normalization) that reads the graph input directly, if any. */
  private inputPreprocessing: string | undefined;

  constructor(private readonly a: TfjsArtifacts) {
    this.file = a.file;
    this.weights = new LayerWeights(decodeWeightList(a), a.file);
    this.meta = {
      format: 'tfjs-layers',
      file: a.file,
      kerasVersion: (a.json.modelTopology as Config).keras_version ?? null,
    };
  }

  private bad(msg: string): ModelFormatError {
    return new ModelFormatError(`${this.file}: ${msg}`, {
      context: { file: this.file },
      fix: 'the model JSON is damaged or not a Keras/TF.js layers model',
    });
  }

  run(): Graph {
    const topo = this.a.json.modelTopology as Config;
    const root = (topo.model_config ?? topo) as unknown as Layer;
    if (!root || typeof root !== 'object' || !isNested(root))
      throw this.bad(`the topology is a '${String(root?.class_name)}', not a Sequential or Model`);
    const rootName = layerName(root);
    this.survey(root, []);
    const unknown = new Map<string, string[]>();
    this.scanUnsupported(root, [rootName], unknown);
    if (unknown.size > 0) {
      const all = [...unknown].map(([op, nodes]) => ({ op, nodes }));
      throw new UnsupportedOpError(all[0]!.op, all[0]!.nodes[0]!, SUPPORTED, 'tfjs-layers', all);
    }
    const outs = this.model(root, [rootName], undefined, true);
    if (!this.input) throw this.bad('no InputLayer (or first layer with batch_input_shape) found');
    const outputs = outs.map((v) => v.name);
    const b = this.b;
    const head = findClassifierHead(b.nodes, outputs[0]!);
    // The dense layers ending at the output are the classification head (not prunable); without such a path, the
    // last Dense is.
    const kernels = head ? head.linears.map((n) => n.inputs[1]!) : this.lastDense ? [this.lastDense] : [];
    for (const k of kernels) {
      const p = b.params.get(k);
      if (p) b.params.set(k, { ...p, role: 'head', prunable: false });
    }
    const featureTap =
      head?.tap ?? (this.lastDense ? b.nodes.find((n) => n.inputs[1] === this.lastDense)!.inputs[0]! : outputs[0]!);
    const r = inputRangeOf(this.a, this.nested, this.inputPreprocessing);
    const [h, w] = this.input.hw;
    this.meta.inputRangeSource = r.source;
    if (this.nested.size > 0) this.meta.nestedModels = [...this.nested.keys()];
    return b.build({
      name: modelNameOf(this.file),
      inputs: [{ name: this.input.name, shape: this.input.shape }],
      outputs,
      featureTap,
      preprocessing: { size: [h ?? r.size ?? 224, w ?? r.size ?? 224], range: r.range },
      meta: this.meta,
    });
  }

  /**
   * Collects every layer class and activation name of the tree that has no conversion (name → IR names of the layers
   * using it), so that one error lists them all, as the ONNX importer does.
   */
  private scanUnsupported(mc: Layer, scope: string[], out: Map<string, string[]>): void {
    for (const l of this.layersOf(mc)) {
      const n = layerName(l);
      if (isNested(l)) {
        this.scanUnsupported(l, [...scope, n], out);
        continue;
      }
      const add = (what: string) => out.set(what, [...(out.get(what) ?? []), this.irName(scope, n)]);
      const act = Array.isArray(l.config) ? undefined : l.config.activation;
      if (!SUPPORTED_LAYERS.includes(l.class_name)) add(l.class_name);
      else if (typeof act === 'string' && !(act in KERAS_ACTIVATIONS)) add(`activation '${act}'`);
    }
  }

  /** Counts layer names over the whole tree and records each nested model's layer names. */
  private survey(mc: Layer, path: string[]): void {
    const names: string[] = [];
    for (const l of this.layersOf(mc)) {
      const n = layerName(l);
      if (isNested(l)) this.survey(l, [...path, n]);
      else {
        this.nameCount.set(n, (this.nameCount.get(n) ?? 0) + 1);
        names.push(n);
      }
    }
    if (path.length > 0) this.nested.set(path.join('/'), names);
  }

  private layersOf(mc: Layer): Layer[] {
    const cfg = mc.config;
    const list = Array.isArray(cfg) ? cfg : cfg?.layers;
    if (!Array.isArray(list) || list.length === 0)
      throw this.bad(`model '${layerName(mc)}' has no 'config.layers' list`);
    for (const l of list as unknown as Layer[])
      if (!l || typeof l.class_name !== 'string' || typeof l.config !== 'object' || l.config === null)
        throw this.bad(`bad layer entry ${JSON.stringify(l).slice(0, 120)}`);
    return list as unknown as Layer[];
  }

  /** IR name of a layer: its Keras name, prefixed by the nested models below the root when the name is not unique. */
  private irName(scope: readonly string[], name: string): string {
    return (this.nameCount.get(name) ?? 0) > 1 ? [...scope.slice(1), name].join('.') : name;
  }

  /** The graph input, made once, from the first input layer (or first layer's batch_input_shape) of the outermost model. */
  private graphInput(name: string, s: JsValue | undefined): Val {
    if (this.input)
      throw new UnsupportedOpError(`a second model input ('${name}')`, name, SUPPORTED_LAYERS, 'tfjs-layers');
    if (!Array.isArray(s) || s.length !== 4)
      throw this.bad(`input layer '${name}' must be 4-D [batch, H, W, C], got ${JSON.stringify(s)}`);
    const c = s[3] as number;
    this.input = { name, shape: [null, c, null, null], hw: [s[1] as number | null, s[2] as number | null] };
    return { name, rank: 4, channels: typeof c === 'number' ? c : null };
  }

  /**
   * Inlines model `mc` (scope: model names from the root to it) fed `inputs` (undefined: it reads the graph input)
   * and returns its outputs. `atOutput`: its outputs are the graph's, so a final softmax is dropped.
   */
  private model(mc: Layer, scope: string[], inputs: Val[] | undefined, atOutput: boolean): Val[] {
    const layers = this.layersOf(mc);
    if (mc.class_name === 'Sequential') {
      let prev = inputs?.[0];
      layers.forEach((l, i) => {
        const name = layerName(l);
        const last = atOutput && i === layers.length - 1;
        if (isNested(l)) prev = this.model(l, [...scope, name], prev ? [prev] : undefined, last)[0];
        else if (l.class_name === 'InputLayer')
          prev ??= this.graphInput(
            name,
            (l.config as Config).batch_input_shape ?? (l.config as Config).batchInputShape,
          );
        else {
          // Keras gives a Sequential without an InputLayer the input `<first layer>_input`.
          prev ??= this.graphInput(
            `${name}_input`,
            (l.config as Config).batch_input_shape ?? (l.config as Config).batchInputShape,
          );
          prev = this.layer(l, scope, [prev], last);
        }
      });
      return [prev!];
    }
    const cfg = mc.config as Config;
    const ref = (r: JsValue): [string, number] => (Array.isArray(r) ? [String(r[0]), Number(r[2] ?? 0)] : ['', 0]);
    const inputNames = ((cfg.input_layers ?? []) as JsValue[]).map((r) => ref(r)[0]);
    const outputRefs = ((cfg.output_layers ?? []) as JsValue[]).map(ref);
    if (inputs && inputs.length !== inputNames.length)
      throw this.bad(`nested model '${scope.join('/')}' has ${inputNames.length} inputs but is fed ${inputs.length}`);
    const vals = new Map<string, Val[]>();
    for (const l of layers) {
      const name = layerName(l);
      if (l.class_name === 'InputLayer') {
        const i = inputNames.indexOf(name);
        vals.set(name, [
          inputs
            ? inputs[i < 0 ? 0 : i]!
            : this.graphInput(name, (l.config as Config).batch_input_shape ?? (l.config as Config).batchInputShape),
        ]);
        continue;
      }
      const ins = this.inbound(l, scope, vals);
      const isOut = atOutput && outputRefs.some(([n]) => n === name);
      vals.set(name, isNested(l) ? this.model(l, [...scope, name], ins, isOut) : [this.layer(l, scope, ins, isOut)]);
    }
    return outputRefs.map(([n, i]) => {
      const v = vals.get(n)?.[i];
      if (!v) throw this.bad(`model '${scope.join('/')}': output layer '${n}' not found`);
      return v;
    });
  }

  private inbound(l: Layer, scope: readonly string[], vals: ReadonlyMap<string, Val[]>): Val[] {
    const nodes = l.inbound_nodes;
    const name = layerName(l);
    if (!Array.isArray(nodes) || nodes.length === 0) return [];
    if (nodes.length > 1)
      throw new UnsupportedOpError(
        `${l.class_name} (shared layer, ${nodes.length} calls)`,
        name,
        SUPPORTED_LAYERS,
        'tfjs-layers',
      );
    const node = nodes[0];
    if (!Array.isArray(node))
      throw this.bad(
        `layer '${[...scope, name].join('/')}': unsupported inbound_nodes format (newer Keras 3 'args' form)`,
      );
    return node.map((r) => {
      const src = Array.isArray(r) ? String(r[0]) : '';
      const v = Array.isArray(r) ? vals.get(src)?.[Number(r[2] ?? 0)] : undefined;
      if (!v)
        throw this.bad(
          `layer '${[...scope, name].join('/')}' reads '${src}', which no earlier layer of its model produces`,
        );
      return v;
    });
  }

  /** Converts one (non-model) layer `l` of the model at `scope` applied to `ins`. */
  private layer(l: Layer, scope: readonly string[], ins: Val[], isOutput: boolean): Val {
    const b = this.b;
    const c = l.config as Config;
    const kerasName = layerName(l);
    const name = this.irName(scope, kerasName);
    if (c.data_format !== undefined && c.data_format !== 'channels_last')
      throw this.bad(`layer '${name}': data_format '${String(c.data_format)}' is not supported (channels_last only)`);
    const x = ins[0]!;
    const wt = (key: string, want: ShapeWant): DecodedWeight => this.weights.take(scope, kerasName, key, want);
    const param = (pname: string, make: () => Tensor, role: Parameters<GraphBuilder['param']>[2]) =>
      b.param(pname, noGrad(make), role);
    const activation = (v: Val, act: JsValue | undefined): Val => {
      const an = typeof act === 'string' ? act : 'linear';
      if (!(an in KERAS_ACTIVATIONS))
        throw new UnsupportedOpError(`activation '${an}'`, name, Object.keys(KERAS_ACTIVATIONS), 'tfjs-layers');
      const a = KERAS_ACTIVATIONS[an]!;
      if (a === null) return v;
      if (a.op === 'softmax' && isOutput) {
        this.meta.outputActivation = 'softmax';
        return v;
      }
      const attrs = a.op === 'softmax' ? { axis: v.rank === 4 ? 1 : -1 } : (a.attrs ?? {});
      return { ...v, name: b.op(a.op, [v.name], attrs, `${name}/${an}`) };
    };
    const windowAttrs = (cc: Config): Record<string, AttrValue> => {
      const base: Record<string, AttrValue> = { stride: pair(cc.strides, 1), dilation: pair(cc.dilation_rate, 1) };
      if (cc.padding === 'same') return { ...base, autoPad: 'same_upper' };
      if (cc.padding !== 'valid' && cc.padding !== undefined)
        throw this.bad(`layer '${name}': padding '${String(cc.padding)}' is not supported`);
      return base;
    };
    switch (l.class_name) {
      case 'Conv2D':
      case 'DepthwiseConv2D':
      case 'SeparableConv2D': {
        const [kh, kw] = pair(c.kernel_size, 1);
        const attrs = windowAttrs(c);
        const cin = x.channels;
        let h = x.name;
        let cout: number | null;
        if (l.class_name === 'Conv2D') {
          const groups = typeof c.groups === 'number' ? c.groups : 1;
          cout = Number(c.filters);
          const kernel = wt('kernel', [kh, kw, cin === null ? null : cin / groups, cout]);
          const kp = param(`${name}.weight`, () => convKernel(kernel), 'weight');
          const bias = c.use_bias ? param(`${name}.bias`, () => weightTensor(wt('bias', [cout])), 'bias') : '';
          h = b.op('conv2d', [h, kp, bias], { ...attrs, groups }, name);
        } else {
          // TF.js 4.22 leaves depth_multiplier out of a SeparableConv2D's config: the stored kernel says it
          const dw = wt('depthwise_kernel', [
            kh,
            kw,
            cin,
            c.depth_multiplier === undefined ? null : Number(c.depth_multiplier),
          ]);
          const [groups, mult] = [dw.shape[2]!, dw.shape[3]!];
          const dk = param(
            l.class_name === 'SeparableConv2D' ? `${name}.depthwise.weight` : `${name}.weight`,
            () => depthwiseKernel(dw),
            'weight',
          );
          if (l.class_name === 'DepthwiseConv2D') {
            cout = groups * mult;
            const bias = c.use_bias ? param(`${name}.bias`, () => weightTensor(wt('bias', [cout])), 'bias') : '';
            h = b.op('conv2d', [h, dk, bias], { ...attrs, groups }, name);
          } else {
            cout = Number(c.filters);
            h = b.op('conv2d', [h, dk, ''], { ...attrs, groups }, `${name}/depthwise`);
            const pk = param(
              `${name}.pointwise.weight`,
              () => convKernel(wt('pointwise_kernel', [1, 1, groups * mult, cout])),
              'weight',
            );
            const bias = c.use_bias ? param(`${name}.bias`, () => weightTensor(wt('bias', [cout])), 'bias') : '';
            h = b.op('conv2d', [h, pk, bias], {}, name);
          }
        }
        return activation({ name: h, rank: 4, channels: cout }, c.activation);
      }
      case 'BatchNormalization': {
        const axis =
          typeof c.axis === 'number' ? c.axis : Array.isArray(c.axis) && c.axis.length === 1 ? Number(c.axis[0]) : -1;
        if (nhwcAxis(axis, x.rank) !== 1)
          throw this.bad(`layer '${name}': BatchNormalization over axis ${axis} is not supported (channels only)`);
        const vec = (key: string) => () => weightTensor(wt(key, [x.channels]));
        // A BN without learned scale/shift (scale: false / center: false) gets fixed ones / zeros, not trained, so every
        // BN has its own γ and β (BN repair rescales through them without editing the graph).
        const fixed = (pname: string, v: number) => {
          if (x.channels === null)
            throw this.bad(`layer '${name}': BatchNormalization without scale/center needs a known channel count`);
          const ch = x.channels;
          return b.param(
            pname,
            noGrad(() => zeros([ch]).add(v)),
            'norm',
            { trainable: false },
          );
        };
        const gamma = c.scale !== false ? param(`${name}.weight`, vec('gamma'), 'norm') : fixed(`${name}.weight`, 1);
        const beta = c.center !== false ? param(`${name}.bias`, vec('beta'), 'norm') : fixed(`${name}.bias`, 0);
        const mean = param(`${name}.running_mean`, vec('moving_mean'), 'buffer');
        const vr = param(`${name}.running_var`, vec('moving_variance'), 'buffer');
        // Keras momentum weighs the old statistic; torch's weighs the new batch.
        return {
          ...x,
          name: b.op(
            'batchnorm',
            [x.name, gamma, beta, mean, vr],
            { eps: Number(c.epsilon ?? 1e-3), momentum: 1 - Number(c.momentum ?? 0.99) },
            name,
          ),
        };
      }
      case 'ReLU': {
        if (Number(c.negative_slope ?? 0) !== 0 || Number(c.threshold ?? 0) !== 0)
          throw new UnsupportedOpError('ReLU with negative_slope/threshold', name, SUPPORTED_LAYERS, 'tfjs-layers');
        const mx = c.max_value;
        const out =
          mx === null || mx === undefined
            ? b.op('relu', [x.name], {}, name)
            : mx === 6
              ? b.op('relu6', [x.name], {}, name)
              : b.op('clip', [x.name], { min: 0, max: Number(mx) }, name);
        return { ...x, name: out };
      }
      case 'Activation': {
        const y = activation(x, c.activation);
        return y === x ? { ...x, name: b.op('identity', [x.name], {}, name) } : y;
      }
      case 'ZeroPadding2D': {
        const p = c.padding;
        const [[t, bo] = [] as number[], [le, r] = [] as number[]] =
          Array.isArray(p) && Array.isArray(p[0])
            ? [
                [Number(p[0][0]), Number(p[0][1])],
                [Number((p[1] as number[])[0]), Number((p[1] as number[])[1])],
              ]
            : ([pair(p, 1), pair(p, 1)].map((q, i) => [q[i]!, q[i]!]) as [number, number][]);
        if (t === undefined || le === undefined) throw this.bad(`layer '${name}': bad padding ${JSON.stringify(p)}`);
        return { ...x, name: b.op('pad', [x.name], { pads: [0, 0, t, le, 0, 0, bo ?? t, r ?? le] }, name) };
      }
      case 'Concatenate': {
        const axis = nhwcAxis(Number(c.axis ?? -1), x.rank);
        const channels =
          axis !== 1
            ? x.channels
            : ins.every((v) => v.channels !== null)
              ? ins.reduce((n, v) => n + v.channels!, 0)
              : null;
        return {
          name: b.op(
            'concat',
            ins.map((v) => v.name),
            { axis },
            name,
          ),
          rank: x.rank,
          channels,
        };
      }
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        const k = pair(c.pool_size, 2);
        const attrs: Record<string, AttrValue> = {
          ...windowAttrs({ ...c, strides: c.strides ?? c.pool_size ?? null }),
          kernel: k,
        };
        delete attrs.dilation;
        return { ...x, name: b.op(l.class_name === 'MaxPooling2D' ? 'maxpool' : 'avgpool', [x.name], attrs, name) };
      }
      case 'GlobalAveragePooling2D': {
        const keep = c.keepdims === true;
        return {
          name: b.op('globalavgpool', [x.name], { keepdims: keep }, name),
          rank: keep ? 4 : 2,
          channels: x.channels,
        };
      }
      case 'Flatten': {
        // Keras flattens NHWC: permute back first so the following Dense kernel rows line up.
        const src = x.rank === 4 ? b.op('transpose', [x.name], { perm: [0, 2, 3, 1] }, `${name}/to_nhwc`) : x.name;
        return { name: b.op('flatten', [src], { axis: 1 }, name), rank: 2, channels: x.rank === 2 ? x.channels : null };
      }
      case 'Dense': {
        if (x.rank !== 2)
          throw new UnsupportedOpError(`Dense on a rank-${x.rank} input`, name, SUPPORTED_LAYERS, 'tfjs-layers');
        const units = Number(c.units);
        const kernel = wt('kernel', [x.channels, units]);
        const kp = param(`${name}.weight`, () => denseKernel(kernel), 'weight');
        const bias = c.use_bias !== false ? param(`${name}.bias`, () => weightTensor(wt('bias', [units])), 'bias') : '';
        this.lastDense = kp;
        return activation(
          { name: b.op('linear', [x.name, kp, bias], {}, name), rank: 2, channels: units },
          c.activation,
        );
      }
      case 'Dropout':
        return { ...x, name: b.op('dropout', [x.name], { p: Number(c.rate ?? 0) }, name) };
      case 'Reshape': {
        const target = (c.target_shape as number[]).map(Number);
        const src = x.rank === 4 ? b.op('transpose', [x.name], { perm: [0, 2, 3, 1] }, `${name}/to_nhwc`) : x.name;
        let out = b.op('reshape', [src], { shape: [0, ...target] }, target.length + 1 === 4 ? `${name}/nhwc` : name);
        if (target.length + 1 === 4) out = b.op('transpose', [out], { perm: [0, 3, 1, 2] }, name);
        return {
          name: out,
          rank: target.length + 1,
          channels: target.length === 1 ? target[0]! : target.length === 3 ? target[2]! : null,
        };
      }
      default: {
        if ((l.class_name === 'Rescaling' || l.class_name === 'Normalization') && x.name === this.input?.name)
          this.inputPreprocessing ??= `${l.class_name} '${name}'`;
        const rule = LAYER_RULES[l.class_name];
        if (!rule) throw new UnsupportedOpError(l.class_name, name, SUPPORTED_LAYERS, 'tfjs-layers');
        const ctx: LayerCtx = {
          b,
          name,
          c,
          ins,
          x,
          isOutput,
          wt,
          param,
          activation,
          bad: (msg) => this.bad(`layer '${name}': ${msg}`),
          unsupported: (what) => new UnsupportedOpError(what, name, SUPPORTED_LAYERS, 'tfjs-layers'),
        };
        return rule(ctx);
      }
    }
  }
}
