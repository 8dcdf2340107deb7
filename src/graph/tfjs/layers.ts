/**
 * TF.js *layers* models (Keras topology JSON) → the IR. Activations become NCHW and kernels OIHW once, here.
 * Keras "same" padding becomes `autoPad: 'same_upper'` (TF puts the odd pixel bottom/right, computed per input
 * size, so the graph stays resolution independent). A softmax on the model output is dropped so the graph
 * outputs logits (recorded in `meta.outputActivation`).
 */
import { noGrad, type Tensor } from '../../engine/index.js';
import { GraphBuilder } from '../builder.js';
import { ModelFormatError, UnsupportedOpError } from '../errors.js';
import type { AttrValue, Graph } from '../ir.js';
import type { JsValue } from './js-literal.js';
import { decodeWeights, modelNameOf, type TfjsArtifacts } from './artifacts.js';
import { convKernel, denseKernel, depthwiseKernel, nhwcAxis, weightTensor, WeightIndex } from './convert.js';

export const SUPPORTED_LAYERS = [
  'InputLayer', 'Conv2D', 'DepthwiseConv2D', 'SeparableConv2D', 'BatchNormalization', 'ReLU', 'Activation', 'ZeroPadding2D',
  'Add', 'Concatenate', 'MaxPooling2D', 'AveragePooling2D', 'GlobalAveragePooling2D', 'Flatten', 'Dense', 'Dropout', 'Reshape',
] as const;
const ACTIVATIONS: Record<string, string | null> = { linear: null, relu: 'relu', relu6: 'relu6', sigmoid: 'sigmoid', tanh: 'tanh', softmax: 'softmax', swish: 'silu', silu: 'silu', gelu: 'gelu' };

interface Layer {
  name: string;
  class_name: string;
  config: { [k: string]: JsValue };
  inbound_nodes?: JsValue;
}
/** A value in the graph and its rank (4 = image NCHW, 2 = features). */
interface Val {
  name: string;
  rank: number;
}

const pair = (v: JsValue | undefined, d: number): [number, number] =>
  Array.isArray(v) ? [Number(v[0]), Number(v[1] ?? v[0])] : typeof v === 'number' ? [v, v] : [d, d];

export function importTfjsLayers(a: TfjsArtifacts): Graph {
  const file = a.file;
  const bad = (msg: string) => new ModelFormatError(`${file}: ${msg}`, { context: { file }, fix: 'the model JSON is damaged or not a Keras/TF.js layers model' });
  const topo = a.json.modelTopology as { [k: string]: JsValue };
  const mc = (topo.model_config ?? topo) as { class_name?: string; config?: JsValue };
  const cfg = mc.config as { layers?: JsValue; input_layers?: JsValue; output_layers?: JsValue } | JsValue[] | undefined;
  const layerList = Array.isArray(cfg) ? cfg : cfg?.layers;
  if (!Array.isArray(layerList) || layerList.length === 0) throw bad("no 'model_config.config.layers' list");
  const sequential = mc.class_name === 'Sequential';
  const layers = layerList as unknown as Layer[];
  for (const l of layers) if (!l || typeof l.class_name !== 'string' || typeof l.config !== 'object' || l.config === null) throw bad(`bad layer entry ${JSON.stringify(l).slice(0, 120)}`);
  const w = new WeightIndex(decodeWeights(a), file);
  const b = new GraphBuilder();
  const vals = new Map<string, Val>();
  const outLayers = sequential ? [layers[layers.length - 1]!.config.name ?? layers[layers.length - 1]!.name] : ((cfg as { output_layers?: JsValue[][] }).output_layers ?? []).map((o) => o[0]);
  const meta: Record<string, unknown> = { format: 'tfjs-layers', file, kerasVersion: topo.keras_version ?? null };
  let inputInfo: { name: string; shape: (number | null)[]; hw: [number, number] } | undefined;
  let lastDense: { input: string; kernel: string; bias: string | null } | undefined;
  let prev: Val | undefined;

  const inputsOf = (l: Layer): Val[] => {
    if (sequential) return prev ? [prev] : [];
    const nodes = l.inbound_nodes;
    if (!Array.isArray(nodes) || nodes.length === 0) return [];
    if (nodes.length > 1) throw new UnsupportedOpError(`${l.class_name} (shared layer, ${nodes.length} calls)`, l.name, SUPPORTED_LAYERS, 'tfjs-layers');
    const node = nodes[0];
    if (!Array.isArray(node)) throw bad(`layer '${l.name}': unsupported inbound_nodes format (newer Keras 3 'args' form)`);
    return node.map((ref) => {
      const src = Array.isArray(ref) ? String(ref[0]) : '';
      const v = vals.get(src);
      if (!v) throw bad(`layer '${l.name}' reads '${src}', which no earlier layer produces`);
      return v;
    });
  };
  const activation = (x: Val, act: JsValue | undefined, l: Layer, isOutput: boolean): Val => {
    const name = typeof act === 'string' ? act : 'linear';
    if (!(name in ACTIVATIONS)) throw new UnsupportedOpError(`activation '${name}'`, l.name, Object.keys(ACTIVATIONS), 'tfjs-layers');
    const op = ACTIVATIONS[name]!;
    if (op === null) return x;
    if (op === 'softmax' && isOutput) {
      meta.outputActivation = 'softmax';
      return x;
    }
    return { name: b.op(op, [x.name], op === 'softmax' ? { axis: x.rank === 4 ? 1 : -1 } : {}, `${l.name}/${name}`), rank: x.rank };
  };
  const windowAttrs = (c: Layer['config'], kernel: [number, number]): Record<string, AttrValue> => {
    const stride = pair(c.strides, 1);
    const dilation = pair(c.dilation_rate, 1);
    const base: Record<string, AttrValue> = { stride, dilation };
    if (c.padding === 'same') return { ...base, autoPad: 'same_upper' };
    if (c.padding !== 'valid' && c.padding !== undefined) throw bad(`padding '${String(c.padding)}' is not supported`);
    void kernel;
    return base;
  };
  const param = (name: string, make: () => Tensor, role: Parameters<GraphBuilder['param']>[2]) => b.param(name, noGrad(make), role);

  for (const l of layers) {
    const c = l.config;
    const name = String(c.name ?? l.name);
    if (c.data_format !== undefined && c.data_format !== 'channels_last') throw bad(`layer '${name}': data_format '${String(c.data_format)}' is not supported (channels_last only)`);
    const ins = inputsOf(l);
    const x = ins[0]!;
    const isOutput = outLayers.includes(name);
    let y: Val;
    switch (l.class_name) {
      case 'InputLayer': {
        const s = (c.batch_input_shape ?? c.batchInputShape) as (number | null)[] | undefined;
        if (!Array.isArray(s) || s.length !== 4) throw bad(`input layer '${name}' must be 4-D [batch, H, W, C], got ${JSON.stringify(s)}`);
        inputInfo = { name, shape: [null, s[3]!, null, null], hw: [s[1] ?? 224, s[2] ?? 224] };
        y = { name, rank: 4 };
        break;
      }
      case 'Conv2D':
      case 'DepthwiseConv2D':
      case 'SeparableConv2D': {
        const k = pair(c.kernel_size, 1);
        const attrs = windowAttrs(c, k);
        let h = x.name;
        if (l.class_name === 'Conv2D') {
          const kw = param(`${name}.weight`, () => convKernel(w.get(`${name}/kernel`, 4)), 'weight');
          const groups = typeof c.groups === 'number' ? c.groups : 1;
          const bias = c.use_bias ? param(`${name}.bias`, () => weightTensor(w.get(`${name}/bias`, 1)), 'bias') : '';
          h = b.op('conv2d', [h, kw, bias], { ...attrs, groups }, name);
        } else {
          const dw = w.get(`${name}/depthwise_kernel`, 4);
          const dwName = l.class_name === 'SeparableConv2D' ? `${name}.depthwise.weight` : `${name}.weight`;
          const dk = param(dwName, () => depthwiseKernel(dw), 'weight');
          if (l.class_name === 'DepthwiseConv2D') {
            const bias = c.use_bias ? param(`${name}.bias`, () => weightTensor(w.get(`${name}/bias`, 1)), 'bias') : '';
            h = b.op('conv2d', [h, dk, bias], { ...attrs, groups: dw.shape[2]! }, name);
          } else {
            h = b.op('conv2d', [h, dk, ''], { ...attrs, groups: dw.shape[2]! }, `${name}/depthwise`);
            const pk = param(`${name}.pointwise.weight`, () => convKernel(w.get(`${name}/pointwise_kernel`, 4)), 'weight');
            const bias = c.use_bias ? param(`${name}.bias`, () => weightTensor(w.get(`${name}/bias`, 1)), 'bias') : '';
            h = b.op('conv2d', [h, pk, bias], {}, name);
          }
        }
        y = activation({ name: h, rank: 4 }, c.activation, l, isOutput);
        break;
      }
      case 'BatchNormalization': {
        const axis = typeof c.axis === 'number' ? c.axis : Array.isArray(c.axis) && c.axis.length === 1 ? Number(c.axis[0]) : -1;
        if (nhwcAxis(axis, x.rank) !== 1) throw bad(`layer '${name}': BatchNormalization over axis ${axis} is not supported (channels only)`);
        const gamma = c.scale !== false ? param(`${name}.weight`, () => weightTensor(w.get(`${name}/gamma`, 1)), 'norm') : '';
        const beta = c.center !== false ? param(`${name}.bias`, () => weightTensor(w.get(`${name}/beta`, 1)), 'norm') : '';
        const mean = param(`${name}.running_mean`, () => weightTensor(w.get(`${name}/moving_mean`, 1)), 'buffer');
        const vr = param(`${name}.running_var`, () => weightTensor(w.get(`${name}/moving_variance`, 1)), 'buffer');
        // Keras momentum weighs the old statistic; torch's weighs the new batch.
        y = { name: b.op('batchnorm', [x.name, gamma, beta, mean, vr], { eps: Number(c.epsilon ?? 1e-3), momentum: 1 - Number(c.momentum ?? 0.99) }, name), rank: x.rank };
        break;
      }
      case 'ReLU': {
        if (Number(c.negative_slope ?? 0) !== 0 || Number(c.threshold ?? 0) !== 0) throw new UnsupportedOpError('ReLU with negative_slope/threshold', name, SUPPORTED_LAYERS, 'tfjs-layers');
        const mx = c.max_value;
        const out = mx === null || mx === undefined ? b.op('relu', [x.name], {}, name) : mx === 6 ? b.op('relu6', [x.name], {}, name) : b.op('clip', [x.name], { min: 0, max: Number(mx) }, name);
        y = { name: out, rank: x.rank };
        break;
      }
      case 'Activation':
        y = activation(x, c.activation, l, isOutput);
        if (y === x) y = { name: b.op('identity', [x.name], {}, name), rank: x.rank };
        break;
      case 'ZeroPadding2D': {
        const p = c.padding;
        const [[t, bo] = [] as number[], [le, r] = [] as number[]] = Array.isArray(p) && Array.isArray(p[0])
          ? [[Number(p[0][0]), Number(p[0][1])], [Number((p[1] as number[])[0]), Number((p[1] as number[])[1])]]
          : ([pair(p, 1), pair(p, 1)].map((q, i) => [q[i]!, q[i]!]) as [number, number][]);
        if (t === undefined || le === undefined) throw bad(`layer '${name}': bad padding ${JSON.stringify(p)}`);
        y = { name: b.op('pad', [x.name], { pads: [0, 0, t, le, 0, 0, bo ?? t, r ?? le] }, name), rank: 4 };
        break;
      }
      case 'Add':
        y = { name: ins.slice(1).reduce((acc, v, i) => b.op('add', [acc, v.name], {}, i === ins.length - 2 ? name : `${name}/${i}`), x.name), rank: x.rank };
        break;
      case 'Concatenate':
        y = { name: b.op('concat', ins.map((v) => v.name), { axis: nhwcAxis(Number(c.axis ?? -1), x.rank) }, name), rank: x.rank };
        break;
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        const k = pair(c.pool_size, 2);
        const attrs: Record<string, AttrValue> = { ...windowAttrs({ ...c, strides: c.strides ?? c.pool_size ?? null }, k), kernel: k };
        delete attrs.dilation;
        y = { name: b.op(l.class_name === 'MaxPooling2D' ? 'maxpool' : 'avgpool', [x.name], attrs, name), rank: 4 };
        break;
      }
      case 'GlobalAveragePooling2D':
        y = { name: b.op('globalavgpool', [x.name], { keepdims: false }, name), rank: 2 };
        break;
      case 'Flatten': {
        // Keras flattens NHWC: permute back first so the following Dense kernel rows line up.
        const src = x.rank === 4 ? b.op('transpose', [x.name], { perm: [0, 2, 3, 1] }, `${name}/to_nhwc`) : x.name;
        y = { name: b.op('flatten', [src], { axis: 1 }, name), rank: 2 };
        break;
      }
      case 'Dense': {
        if (x.rank !== 2) throw new UnsupportedOpError(`Dense on a rank-${x.rank} input`, name, SUPPORTED_LAYERS, 'tfjs-layers');
        const kw = param(`${name}.weight`, () => denseKernel(w.get(`${name}/kernel`, 2)), 'weight');
        const bias = c.use_bias !== false ? param(`${name}.bias`, () => weightTensor(w.get(`${name}/bias`, 1)), 'bias') : '';
        lastDense = { input: x.name, kernel: kw, bias: bias || null };
        y = activation({ name: b.op('linear', [x.name, kw, bias], {}, name), rank: 2 }, c.activation, l, isOutput);
        break;
      }
      case 'Dropout':
        y = { name: b.op('dropout', [x.name], { p: Number(c.rate ?? 0) }, name), rank: x.rank };
        break;
      case 'Reshape': {
        const target = (c.target_shape as number[]).map(Number);
        const src = x.rank === 4 ? b.op('transpose', [x.name], { perm: [0, 2, 3, 1] }, `${name}/to_nhwc`) : x.name;
        let out = b.op('reshape', [src], { shape: [0, ...target] }, target.length + 1 === 4 ? `${name}/nhwc` : name);
        if (target.length + 1 === 4) out = b.op('transpose', [out], { perm: [0, 3, 1, 2] }, name);
        y = { name: out, rank: target.length + 1 };
        break;
      }
      default:
        throw new UnsupportedOpError(l.class_name, name, SUPPORTED_LAYERS, 'tfjs-layers');
    }
    vals.set(name, y);
    prev = y;
  }
  if (!inputInfo) throw bad('no InputLayer found');
  const outputs = outLayers.map((n) => vals.get(String(n))?.name ?? '');
  if (outputs.some((o) => o === '')) throw bad(`output layer(s) ${JSON.stringify(outLayers)} not found`);
  if (lastDense) {
    // The final linear layer is the classification head (not prunable).
    const p = b.params.get(lastDense.kernel)!;
    b.params.set(p.name, { ...p, role: 'head', prunable: false });
  }
  return b.build({
    name: modelNameOf(file), inputs: [{ name: inputInfo.name, shape: inputInfo.shape }], outputs,
    featureTap: lastDense?.input ?? outputs[0]!, preprocessing: { size: inputInfo.hw, range: [0, 1] }, meta,
  });
}
