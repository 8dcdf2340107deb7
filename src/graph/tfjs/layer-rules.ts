/**
 * Keras layers beyond the convolution/BN/pooling core of layers.ts, one rule each, keyed by Keras class name. A rule
 * turns one layer (config, weights, input values) into IR nodes over existing ops and returns its output value.
 *
 * Layouts, as in layers.ts: a rank-4 value is NCHW (Keras NHWC permuted once at the input), any other rank keeps
 * Keras' layout ([N, C], [N, L, C]). So a rule that acts on Keras' last axis of an image (LayerNormalization, a
 * per-channel constant) either maps that axis to 1 or permutes around the op.
 */
import { noGrad, tensor, type Tensor } from '../../engine/index.js';
import type { GraphBuilder } from '../builder.js';
import type { AttrValue, ParamRole } from '../ir.js';
import type { JsValue } from './js-literal.js';
import type { DecodedWeight } from './artifacts.js';
import { nhwcAxis, weightTensor } from './convert.js';
import type { ShapeWant } from './layer-weights.js';

export type Config = { [k: string]: JsValue };
/**
 * A value in the graph, its rank (4 = image NCHW, 2 = features) and its channel (feature) count where known:
 * the count tells apart copies of one stored weight name (LayerWeights.take).
 */
export interface Val {
  name: string;
  rank: number;
  channels: number | null;
}

/** What a rule sees of the layer being converted. */
export interface LayerCtx {
  readonly b: GraphBuilder;
  /** IR name of the layer: node name and parameter prefix. */
  readonly name: string;
  readonly c: Config;
  readonly ins: readonly Val[];
  readonly x: Val;
  /** The layer's output is a model output (a softmax there is dropped). */
  readonly isOutput: boolean;
  wt(key: string, want: ShapeWant): DecodedWeight;
  param(pname: string, make: () => Tensor, role: ParamRole): string;
  /** Applies a Keras activation name (KERAS_ACTIVATIONS) to `v`. */
  activation(v: Val, act: JsValue | undefined): Val;
  /** A ModelFormatError about this layer. */
  bad(msg: string): Error;
  /** An UnsupportedOpError for a variant of this layer (`what`: e.g. "Conv1D on a rank-4 input"). */
  unsupported(what: string): Error;
}
export type LayerRule = (l: LayerCtx) => Val;

/** "Up to the end" for a slice (ops.ts clamps ends beyond the dim). */
const TO_END = 2147483647;
/** Keras backend.epsilon(): the floor of Normalization's standard deviation. */
const KERAS_EPSILON = 1e-7;

export const pair = (v: JsValue | undefined, d: number): [number, number] =>
  Array.isArray(v) ? [Number(v[0]), Number(v[1] ?? v[0])] : typeof v === 'number' ? [v, v] : [d, d];
const first = (v: JsValue | undefined, d: number): number =>
  Array.isArray(v) ? Number(v[0] ?? d) : typeof v === 'number' ? v : d;
const numbers = (v: JsValue | undefined): number[] | null =>
  v === undefined || v === null ? null : Array.isArray(v) ? v.flat(3).map(Number) : [Number(v)];

/**
 * A constant broadcast against `x` along Keras' last axis: one value → [1]; C values → [C, 1, 1] on an image
 * (NHWC's last axis is NCHW's axis 1), [C] otherwise.
 */
function channelConst(l: LayerCtx, suffix: string, values: readonly number[]): string {
  const shape = values.length === 1 ? [1] : l.x.rank === 4 ? [values.length, 1, 1] : [values.length];
  return l.b.constant(
    `${l.name}.${suffix}`,
    noGrad(() => tensor(Float32Array.from(values), shape)),
  );
}

/**
 * Keras merge layers. Inputs of lower rank are expanded at axis 1 until the ranks match (Keras' _Merge), so
 * [N, C] meets [N, H, W, C] as [N, 1, 1, C]: NCHW [N, C, 1, 1].
 */
function merge(op: 'add' | 'sub' | 'mul' | 'maximum' | 'minimum' | 'average'): LayerRule {
  return (l) => {
    const { b, ins, name } = l;
    const rank = Math.max(...ins.map((v) => v.rank));
    const names = ins.map((v, i) => {
      if (v.rank === rank) return v.name;
      if (v.rank === 2 && rank === 4) return b.op('unsqueeze', [v.name], { axes: [2, 3] }, `${name}/expand${i}`);
      throw l.unsupported(`a merge of rank-${v.rank} and rank-${rank} inputs`);
    });
    const known = ins.map((v) => v.channels).filter((c): c is number => c !== null);
    const out: Val = { name: '', rank, channels: known.length > 0 ? Math.max(...known) : null };
    if (op === 'sub') {
      if (names.length !== 2) throw l.bad(`Subtract needs exactly 2 inputs, got ${names.length}`);
      return { ...out, name: b.op('sub', names, {}, name) };
    }
    if (op === 'maximum' || op === 'minimum') return { ...out, name: b.op(op, names, {}, name) };
    // Pairwise, the last node named after the layer (the IR names of nsfwjs' Add layers).
    const bin = op === 'average' ? 'add' : op;
    const last = op === 'average' ? `${name}/sum` : name;
    const sum = names
      .slice(1)
      .reduce((acc, v, i) => b.op(bin, [acc, v], {}, i === names.length - 2 ? last : `${name}/${i}`), names[0]!);
    if (op !== 'average') return { ...out, name: sum };
    return { ...out, name: b.op('mul', [sum, channelConst(l, 'scale', [1 / names.length])], {}, name) };
  };
}

/** LayerNormalization over trailing axes (Keras' last axis, or every axis after the batch). */
const layerNormalization: LayerRule = (l) => {
  const { b, c, x, name } = l;
  const raw = Array.isArray(c.axis) ? c.axis.map(Number) : [Number(c.axis ?? -1)];
  const axes = raw.map((a) => (a < 0 ? a + x.rank : a)).sort((p, q) => p - q);
  if (!axes.every((a, i) => a === x.rank - axes.length + i) || (x.rank === 4 && axes.length === 2))
    throw l.unsupported(`LayerNormalization over axes [${raw.join(', ')}] of a rank-${x.rank} input`);
  const want = axes.map((a) => (a === x.rank - 1 ? x.channels : null));
  // Over H, W, C of an image: γ, β are stored [H, W, C]; the NCHW value needs them [C, H, W].
  const perm = x.rank === 4 && axes.length === 3 ? [2, 0, 1] : undefined;
  const vec = (key: string) => () => weightTensor(l.wt(key, want), perm);
  const gamma = c.scale !== false ? l.param(`${name}.weight`, vec('gamma'), 'norm') : '';
  const beta = c.center !== false ? l.param(`${name}.bias`, vec('beta'), 'norm') : '';
  const eps = Number(c.epsilon ?? 1e-3);
  if (x.rank === 4 && axes.length === 1) {
    const t = b.op('transpose', [x.name], { perm: [0, 2, 3, 1] }, `${name}/to_nhwc`);
    const n = b.op('layernorm', [t, gamma, beta], { axis: -1, eps }, `${name}/nhwc`);
    return { ...x, name: b.op('transpose', [n], { perm: [0, 3, 1, 2] }, name) };
  }
  return { ...x, name: b.op('layernorm', [x.name, gamma, beta], { axis: x.rank === 4 ? 1 : axes[0]!, eps }, name) };
};

/** Rescaling (a preprocessing layer): x · scale + offset, each a number or one value per channel. */
const rescaling: LayerRule = (l) => {
  const { b, c, x, name } = l;
  const scale = numbers(c.scale) ?? [1];
  const offset = numbers(c.offset) ?? [0];
  let y = x.name;
  const hasOffset = offset.some((v) => v !== 0);
  if (scale.some((v) => v !== 1))
    y = b.op('mul', [y, channelConst(l, 'scale', scale)], {}, hasOffset ? `${name}/scale` : name);
  if (hasOffset) y = b.op('add', [y, channelConst(l, 'offset', offset)], {}, name);
  return { ...x, name: y === x.name ? b.op('identity', [y], {}, name) : y };
};

/**
 * Normalization (a preprocessing layer): (x − mean) / max(√variance, 1e-7), or its inverse with `invert`, statistics
 * per channel (axis −1) or one pair for the whole input (axis null), from the config or the adapted weights.
 */
const normalization: LayerRule = (l) => {
  const { b, c, x, name } = l;
  const axis = c.axis === undefined ? [-1] : c.axis === null ? [] : Array.isArray(c.axis) ? c.axis : [c.axis];
  const perChannel = axis.length === 1 && nhwcAxis(Number(axis[0]), x.rank) === (x.rank === 4 ? 1 : x.rank - 1);
  if (axis.length > 0 && !perChannel)
    throw l.unsupported(`Normalization over axis ${JSON.stringify(c.axis)} (channels or none only)`);
  const stat = (key: 'mean' | 'variance'): number[] => {
    const fromConfig = numbers(c[key]);
    if (fromConfig) return fromConfig;
    return Array.from(l.wt(key, perChannel ? [x.channels] : []).values);
  };
  const mean = stat('mean');
  const std = stat('variance').map((v) => Math.max(Math.sqrt(v), KERAS_EPSILON));
  if (mean.length !== std.length) throw l.bad(`mean has ${mean.length} values but variance ${std.length}`);
  const [m, s] = [channelConst(l, 'mean', mean), channelConst(l, 'std', std)];
  if (c.invert === true)
    return { ...x, name: b.op('add', [b.op('mul', [x.name, s], {}, `${name}/scale`), m], {}, name) };
  return { ...x, name: b.op('div', [b.op('sub', [x.name, m], {}, `${name}/center`), s], {}, name) };
};

/**
 * Conv1D on [N, L, C]: a conv2d over [N, C, 1, L] with a [out, in/groups, 1, k] kernel; "causal" padding puts all
 * (k − 1) · dilation padding on the left.
 */
const conv1d: LayerRule = (l) => {
  const { b, c, x, name } = l;
  if (x.rank !== 3) throw l.unsupported(`Conv1D on a rank-${x.rank} input`);
  const k = first(c.kernel_size, 1);
  const d = first(c.dilation_rate, 1);
  const groups = typeof c.groups === 'number' ? c.groups : 1;
  const cout = Number(c.filters);
  const kernel = l.wt('kernel', [k, x.channels === null ? null : x.channels / groups, cout]);
  const kp = l.param(`${name}.weight`, () => weightTensor(kernel, [2, 1, 0], [cout, kernel.shape[1]!, 1, k]), 'weight');
  const bias = c.use_bias !== false ? l.param(`${name}.bias`, () => weightTensor(l.wt('bias', [cout])), 'bias') : '';
  const attrs: Record<string, AttrValue> = { stride: [1, first(c.strides, 1)], dilation: [1, d], groups };
  if (c.padding === 'same') attrs.autoPad = 'same_upper';
  else if (c.padding === 'causal') attrs.padding = [0, (k - 1) * d, 0, 0];
  else if (c.padding !== 'valid' && c.padding !== undefined)
    throw l.bad(`padding '${String(c.padding)}' is not supported`);
  const ncl = b.op('transpose', [x.name], { perm: [0, 2, 1] }, `${name}/to_ncl`);
  const img = b.op('unsqueeze', [ncl], { axes: [2] }, `${name}/to_nc1l`);
  const y = b.op('conv2d', [img, kp, bias], attrs, name);
  const sq = b.op('squeeze', [y], { axes: [2] }, `${name}/to_ncl_out`);
  const out = b.op('transpose', [sq], { perm: [0, 2, 1] }, `${name}/nlc`);
  return l.activation({ name: out, rank: 3, channels: cout }, c.activation);
};

/** Global pooling of an image (over H, W) or a sequence (over L), with Keras' `keepdims`. */
function globalPool(op: 'reducemean' | 'reducemax', rank: 3 | 4): LayerRule {
  return (l) => {
    const { b, c, x, name } = l;
    if (x.rank !== rank) throw l.unsupported(`global pooling of a rank-${x.rank} input`);
    const keep = c.keepdims === true;
    const axes = rank === 4 ? [2, 3] : [1];
    return { name: b.op(op, [x.name], { axes, keepdims: keep }, name), rank: keep ? rank : 2, channels: x.channels };
  };
}

/** Cropping2D: ((top, bottom), (left, right)), (h, w) symmetric, or one number. */
const cropping2d: LayerRule = (l) => {
  const { b, c, x, name } = l;
  const p = c.cropping;
  const nested = Array.isArray(p) && Array.isArray(p[0]);
  const [t, bo] = nested ? pair(p[0], 0) : [pair(p, 0)[0], pair(p, 0)[0]];
  const [le, r] = nested ? pair((p as JsValue[])[1], 0) : [pair(p, 0)[1], pair(p, 0)[1]];
  return {
    ...x,
    name: b.op('slice', [x.name], { starts: [t, le], ends: [bo ? -bo : TO_END, r ? -r : TO_END], axes: [2, 3] }, name),
  };
};

/**
 * UpSampling2D by integer factors. Nearest copies each pixel (the ONNX 'asymmetric' + floor rounding); bilinear is
 * Keras' (TF 2 `tf.image.resize`, half-pixel centres), which TF.js's own UpSampling2D does not reproduce (it resizes
 * with align-corners off and half-pixel centres off).
 */
const upSampling2d: LayerRule = (l) => {
  const { b, c, x, name } = l;
  const scales = pair(c.size, 2);
  const interp = String(c.interpolation ?? 'nearest');
  const attrs: Record<string, AttrValue> =
    interp === 'nearest'
      ? { mode: 'nearest', coord: 'asymmetric', nearest: 'floor', scales }
      : interp === 'bilinear'
        ? { mode: 'linear', coord: 'half_pixel', scales }
        : {};
  if (!attrs.mode) throw l.unsupported(`UpSampling2D with interpolation '${interp}'`);
  return { ...x, name: b.op('resize', [x.name], attrs, name) };
};

/** PReLU: slope weight `alpha` of the input's shape without batch (shared axes stored as 1), NHWC → NCHW. */
const prelu: LayerRule = (l) => {
  const { b, x, name } = l;
  const want: ShapeWant = x.rank === 4 ? [null, null, x.channels] : x.rank === 3 ? [null, x.channels] : [x.channels];
  const alpha = l.wt('alpha', want);
  // The slope is a trained parameter, not prunable: role 'norm', as the ONNX importer's PRelu.
  const slope = l.param(`${name}.weight`, () => weightTensor(alpha, x.rank === 4 ? [2, 0, 1] : undefined), 'norm');
  return { ...x, name: b.op('prelu', [x.name, slope], {}, name) };
};

export const LAYER_RULES: Readonly<Record<string, LayerRule>> = {
  Add: merge('add'),
  Subtract: merge('sub'),
  Multiply: merge('mul'),
  Average: merge('average'),
  Maximum: merge('maximum'),
  Minimum: merge('minimum'),
  LayerNormalization: layerNormalization,
  Rescaling: rescaling,
  Normalization: normalization,
  Conv1D: conv1d,
  GlobalMaxPooling2D: globalPool('reducemax', 4),
  GlobalAveragePooling1D: globalPool('reducemean', 3),
  GlobalMaxPooling1D: globalPool('reducemax', 3),
  Cropping2D: cropping2d,
  UpSampling2D: upSampling2d,
  LeakyReLU: (l) => {
    // Keras 2 and TF.js name the slope `alpha` (default 0.3), Keras 3 `negative_slope`.
    const alpha = Number(l.c.negative_slope ?? l.c.alpha ?? 0.3);
    return { ...l.x, name: l.b.op('leakyrelu', [l.x.name], { alpha }, l.name) };
  },
  ELU: (l) => ({ ...l.x, name: l.b.op('elu', [l.x.name], { alpha: Number(l.c.alpha ?? 1) }, l.name) }),
  PReLU: prelu,
  Softmax: (l) => {
    const axis = Number(Array.isArray(l.c.axis) ? l.c.axis[0] : (l.c.axis ?? -1));
    if (nhwcAxis(axis, l.x.rank) !== (l.x.rank === 4 ? 1 : l.x.rank - 1))
      throw l.unsupported(`Softmax over axis ${axis} (the channel axis only)`);
    const y = l.activation(l.x, 'softmax');
    return y === l.x ? { ...l.x, name: l.b.op('identity', [l.x.name], {}, l.name) } : y;
  },
};
