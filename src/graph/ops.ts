/**
 * The op table: one row per IR op, from canonical name to its forward over src/engine. Every importer maps
 * its source ops onto these names; the interpreter looks rows up by `Node.op`. Autograd comes from the engine,
 * so a row is only a forward. A row may return one of its inputs unchanged (identity, eval dropout): the
 * interpreter frees by tensor identity, never twice.
 *
 * Layouts follow ir.ts: NCHW activations, OIHW conv weights, [out, in] linear weights.
 * Inputs listed `x?` are optional (an empty input name gives null).
 */
import { cat, nn, scope, ShapeError, Tensor, tensor } from '../engine/index.js';
import { einsum } from './ops-einsum.js';
import { COORD_MODES, NEAREST_MODES, resize } from './ops-resize.js';
import type { AttrValue, Mode } from './ir.js';

export type Attrs = Readonly<Record<string, AttrValue>>;
export interface OpContext {
  readonly mode: Mode;
  /** Node name, for error messages. */
  readonly node?: string;
}
export interface OpDef {
  run(inputs: readonly (Tensor | null)[], attrs: Attrs, ctx: OpContext): Tensor[];
}

// ---- attribute readers ---------------------------------------------------------------------------

function num(a: Attrs, k: string, dflt?: number): number {
  const v = a[k];
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  throw new ShapeError(`op attribute '${k}' must be a number, got ${JSON.stringify(v)}`);
}
function nums(a: Attrs, k: string, dflt?: readonly number[]): readonly number[] {
  const v = a[k];
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v === 'number') return [v];
  if (Array.isArray(v) && v.every((x) => typeof x === 'number')) return v as readonly number[];
  throw new ShapeError(`op attribute '${k}' must be a number list, got ${JSON.stringify(v)}`);
}
function bool(a: Attrs, k: string, dflt: boolean): boolean {
  const v = a[k];
  return v === undefined ? dflt : v === true || v === 1;
}
function pair(a: Attrs, k: string, dflt: number): [number, number] {
  const v = nums(a, k, [dflt]);
  return v.length === 1 ? [v[0]!, v[0]!] : [v[0]!, v[1]!];
}
/** Padding as [top, left, bottom, right]; accepts one number, [h, w] or the four sides. */
function pads4(a: Attrs, k = 'padding'): [number, number, number, number] {
  const v = nums(a, k, [0]);
  if (v.length === 1) return [v[0]!, v[0]!, v[0]!, v[0]!];
  if (v.length === 2) return [v[0]!, v[1]!, v[0]!, v[1]!];
  if (v.length === 4) return [v[0]!, v[1]!, v[2]!, v[3]!];
  throw new ShapeError(`op attribute '${k}' must have 1, 2 or 4 entries, got [${v.join(', ')}]`);
}
const symmetric = (p: readonly number[]) => p[0] === p[2] && p[1] === p[3];
/**
 * Padding of a window op. `autoPad: 'same_upper' | 'same_lower'` (TF/Keras "same", ONNX auto_pad) is computed
 * from the input size at run time, so a graph keeps working at any resolution: output = ceil(in / stride),
 * the odd pixel of padding goes to the bottom/right ('same_upper', TF) or top/left.
 */
function windowPads(
  x: Tensor,
  a: Attrs,
  kernel: readonly [number, number],
  stride: readonly [number, number],
  dilation: readonly [number, number],
): [number, number, number, number] {
  const auto = a.autoPad;
  if (auto === undefined || auto === 'notset' || auto === 'valid') return auto === 'valid' ? [0, 0, 0, 0] : pads4(a);
  const p: number[] = [];
  for (const d of [0, 1]) {
    const n = x.shape[2 + d]!;
    const k = (kernel[d]! - 1) * dilation[d]! + 1;
    const total = Math.max((Math.ceil(n / stride[d]!) - 1) * stride[d]! + k - n, 0);
    p.push(auto === 'same_lower' ? Math.ceil(total / 2) : Math.floor(total / 2), total);
  }
  return [p[0]!, p[2]!, p[1]! - p[0]!, p[3]! - p[2]!];
}
const need = (xs: readonly (Tensor | null)[], i: number, what: string): Tensor => {
  const t = xs[i];
  if (!t) throw new ShapeError(`op input ${i} ('${what}') is missing`);
  return t;
};
const axisOf = (axis: number, ndim: number) => (axis < 0 ? axis + ndim : axis);

// ---- pooling with asymmetric padding (TF "same") -------------------------------------------------

function pool(x: Tensor, a: Attrs, kind: 'max' | 'avg'): Tensor {
  const kernel = pair(a, 'kernel', 1);
  const stride = a.stride === undefined ? kernel : pair(a, 'stride', 1);
  const ceilMode = bool(a, 'ceil', false);
  const p = windowPads(x, a, kernel, stride, [1, 1]);
  if (kind === 'max') {
    if (symmetric(p)) return nn.maxPool2d(x, kernel, { stride, padding: [p[0], p[1]], ceilMode });
    const xp = nn.pad(x, [p[1], p[3], p[0], p[2]], 'constant', -Infinity);
    const y = nn.maxPool2d(xp, kernel, { stride, ceilMode });
    xp.dispose();
    return y;
  }
  const countIncludePad = bool(a, 'countIncludePad', false);
  if (symmetric(p) && (countIncludePad || (p[0] === 0 && p[1] === 0)))
    return nn.avgPool2d(x, kernel, { stride, padding: [p[0], p[1]], ceilMode, countIncludePad });
  // Excluded padding: the mean over the real pixels = pooled sum of x over pooled sum of an all-ones image.
  const xp = nn.pad(x, [p[1], p[3], p[0], p[2]]);
  const sum = nn.avgPool2d(xp, kernel, { stride, ceilMode, countIncludePad: true });
  xp.dispose();
  if (countIncludePad) return sum;
  const ones = tensor(new Float32Array(x.shape[2]! * x.shape[3]!).fill(1), [1, 1, x.shape[2]!, x.shape[3]!], {
    dtype: x.dtype,
  });
  const op = nn.pad(ones, [p[1], p[3], p[0], p[2]]);
  const count = nn.avgPool2d(op, kernel, { stride, ceilMode, countIncludePad: true });
  const y = sum.div(count);
  for (const t of [ones, op, count, sum]) t.dispose();
  return y;
}

/** A conv2d node's geometry for input `x` and weight shape `w`: stride, dilation, groups and [top, left, bottom, right] padding. */
export function convGeometry(
  x: Tensor,
  a: Attrs,
  w: readonly number[],
): { stride: [number, number]; dilation: [number, number]; groups: number; pads: [number, number, number, number] } {
  const stride = pair(a, 'stride', 1);
  const dilation = pair(a, 'dilation', 1);
  return { stride, dilation, groups: num(a, 'groups', 1), pads: windowPads(x, a, [w[2]!, w[3]!], stride, dilation) };
}

function conv(xs: readonly (Tensor | null)[], a: Attrs): Tensor {
  const x = need(xs, 0, 'x');
  const w = need(xs, 1, 'weight');
  const { pads: p, ...o } = convGeometry(x, a, w.shape);
  if (symmetric(p)) return nn.conv2d(x, w, xs[2] ?? null, { ...o, padding: [p[0], p[1]] });
  const xp = nn.pad(x, [p[1], p[3], p[0], p[2]]);
  const y = nn.conv2d(xp, w, xs[2] ?? null, o);
  xp.dispose();
  return y;
}

/** ONNX-style target shape: 0 copies the input's dim (unless allowzero), -1 is inferred. */
function targetShape(x: Tensor, shape: readonly number[], allowZero: boolean): number[] {
  return shape.map((d, i) => (d === 0 && !allowZero ? x.shape[i]! : d));
}

const unary = (f: (x: Tensor) => Tensor): OpDef => ({ run: (xs) => [f(need(xs, 0, 'x'))] });
const binary = (f: (a: Tensor, b: Tensor) => Tensor): OpDef => ({
  run: (xs) => [f(need(xs, 0, 'a'), need(xs, 1, 'b'))],
});

// ---- compositions of engine ops (no native kernel needed) -----------------------------------------

const SELU_ALPHA = 1.67326319217681884765625;
const SELU_GAMMA = 1.05070102214813232421875;
/** relu(x) + α (e^{min(x, 0)} − 1) */
const elu = (x: Tensor, alpha: number): Tensor => nn.relu(x).add(nn.relu(x.neg()).neg().exp().sub(1).mul(alpha));
/** (x + |x|) / 2 + ln(1 + e^{−|x|}): no overflow, and the derivative at 0 is 1/2 (relu(x) would give 0 there). */
const softplus = (x: Tensor): Tensor => {
  const ax = x.abs();
  return x.add(ax).mul(0.5).add(ax.neg().exp().add(1).log());
};
function fold(xs: readonly (Tensor | null)[], f: (a: Tensor, b: Tensor) => Tensor): Tensor {
  const ts = xs.filter((t): t is Tensor => t !== null);
  if (ts.length === 0) throw new ShapeError('op needs at least one input');
  if (ts.length === 1) return ts[0]!;
  return scope(() => ts.slice(1).reduce((p, t) => f(p, t), ts[0]!));
}
function reduce(
  xs: readonly (Tensor | null)[],
  a: Attrs,
  f: (x: Tensor, dims: number[], keep: boolean) => Tensor,
): Tensor {
  const x = need(xs, 0, 'x');
  const axes = a.axes === undefined ? x.shape.map((_, i) => i) : nums(a, 'axes').map((d) => axisOf(d, x.ndim));
  return f(x, axes, bool(a, 'keepdims', true));
}
function str(a: Attrs, k: string): string {
  const v = a[k];
  if (typeof v !== 'string') throw new ShapeError(`op attribute '${k}' must be a string, got ${JSON.stringify(v)}`);
  return v;
}
function oneOf<T extends string>(a: Attrs, k: string, allowed: readonly T[], dflt: T): T {
  const v = a[k] ?? dflt;
  if (!allowed.includes(v as T))
    throw new ShapeError(`op attribute '${k}' must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

// ---- the table ------------------------------------------------------------------------------------

const TABLE = {
  /**
   * (x, W [out, in/groups, kh, kw], b?) {stride, padding: n | [h, w] | [top, left, bottom, right],
   * autoPad?: 'same_upper' | 'same_lower' | 'valid', dilation, groups}
   */
  conv2d: { run: (xs, a) => [conv(xs, a)] },
  /** (x [..., in], W [out, in], b?) → x Wᵀ + b */
  linear: { run: (xs) => [nn.linear(need(xs, 0, 'x'), need(xs, 1, 'weight'), xs[2] ?? null)] },
  /** (a, b) → a @ b (batched, broadcasting) */
  matmul: binary((a, b) => a.matmul(b)),
  /** (x [N, C, ...], gamma?, beta?, runningMean, runningVar) {eps, momentum}; train: batch stats + running update */
  batchnorm: {
    run: (xs, a, ctx) => [
      nn.batchNorm(need(xs, 0, 'x'), {
        weight: xs[1] ?? null,
        bias: xs[2] ?? null,
        runningMean: xs[3] ?? null,
        runningVar: xs[4] ?? null,
        training: ctx.mode === 'train',
        momentum: num(a, 'momentum', 0.1),
        eps: num(a, 'eps', 1e-5),
      }),
    ],
  },
  /** (x, gamma?, beta?) {axis: first normalised dim (default -1), eps} */
  layernorm: {
    run: (xs, a) => {
      const x = need(xs, 0, 'x');
      const axis = axisOf(num(a, 'axis', -1), x.ndim);
      return [nn.layerNorm(x, x.shape.slice(axis), xs[1] ?? null, xs[2] ?? null, num(a, 'eps', 1e-5))];
    },
  },
  relu: unary(nn.relu),
  relu6: unary(nn.relu6),
  /** (x) {min?, max?} */
  clip: {
    run: (xs, a) => [
      need(xs, 0, 'x').clamp(a.min === undefined ? null : num(a, 'min'), a.max === undefined ? null : num(a, 'max')),
    ],
  },
  /** (x) {approximate: 'none' | 'tanh'} */
  gelu: { run: (xs, a) => [nn.gelu(need(xs, 0, 'x'), a.approximate === 'tanh' ? 'tanh' : 'none')] },
  silu: unary(nn.silu),
  sigmoid: unary(nn.sigmoid),
  tanh: unary(nn.tanh),
  /** (x) {axis = -1} */
  softmax: { run: (xs, a) => [nn.softmax(need(xs, 0, 'x'), num(a, 'axis', -1))] },
  add: binary((a, b) => a.add(b)),
  sub: binary((a, b) => a.sub(b)),
  mul: binary((a, b) => a.mul(b)),
  div: binary((a, b) => a.div(b)),
  /** (x, exponent?) {exponent?}: a constant exponent may be an attribute */
  pow: { run: (xs, a) => [need(xs, 0, 'x').pow(xs[1] ?? num(a, 'exponent'))] },
  sqrt: unary((x) => x.sqrt()),
  erf: unary((x) => x.erf()),
  neg: unary((x) => x.neg()),
  /** (x) {kernel, stride = kernel, padding / autoPad (as conv2d), ceil} */
  maxpool: { run: (xs, a) => [pool(need(xs, 0, 'x'), a, 'max')] },
  /** (x) {kernel, stride = kernel, padding / autoPad (as conv2d), ceil, countIncludePad = false} */
  avgpool: { run: (xs, a) => [pool(need(xs, 0, 'x'), a, 'avg')] },
  /** (x [N, C, H, W]) {keepdims = true} → mean over H, W */
  globalavgpool: { run: (xs, a) => [need(xs, 0, 'x').mean([2, 3], bool(a, 'keepdims', true))] },
  /** (x) {axis = 1} → 2-D [prod(dims < axis), prod(dims ≥ axis)] */
  flatten: {
    run: (xs, a) => {
      const x = need(xs, 0, 'x');
      const axis = axisOf(num(a, 'axis', 1), x.ndim);
      const lead = x.shape.slice(0, axis).reduce((p, d) => p * d, 1);
      return [x.reshape([lead, -1])];
    },
  },
  /** (x) {shape: 0 copies the input dim (keeps batch independence), -1 inferred; allowzero} */
  reshape: {
    run: (xs, a) => {
      const x = need(xs, 0, 'x');
      return [x.reshape(targetShape(x, nums(a, 'shape'), bool(a, 'allowzero', false)))];
    },
  },
  /** (x) {perm} */
  transpose: { run: (xs, a) => [need(xs, 0, 'x').permute(nums(a, 'perm'))] },
  /** (...xs) {axis} */
  concat: {
    run: (xs, a) => [
      cat(
        xs.filter((t): t is Tensor => t !== null),
        num(a, 'axis'),
      ),
    ],
  },
  /** (x) {pads: ONNX order [b1..bn, e1..en] over all dims, value = 0, mode = 'constant' | 'reflect' | 'replicate'} */
  pad: {
    run: (xs, a) => {
      const x = need(xs, 0, 'x');
      const p = nums(a, 'pads');
      if (p.length !== 2 * x.ndim)
        throw new ShapeError(
          `pad: 'pads' needs ${2 * x.ndim} entries for input [${x.shape.join(', ')}], got ${p.length}`,
        );
      const torchPads: number[] = [];
      for (let d = x.ndim - 1; d >= 0; d--) torchPads.push(p[d]!, p[d + x.ndim]!);
      const mode = (a.mode ?? 'constant') as 'constant' | 'reflect' | 'replicate';
      // reflect / replicate kernels pad exactly the dims after (N, C): keep that many pairs
      const keep = mode === 'constant' ? 2 : 2 * Math.max(x.ndim - 2, 1);
      while (torchPads.length > keep && torchPads[torchPads.length - 1] === 0 && torchPads[torchPads.length - 2] === 0)
        torchPads.length -= 2;
      return [nn.pad(x, torchPads, mode, num(a, 'value', 0))];
    },
  },
  /** (x) {p}: active only in train mode */
  dropout: {
    run: (xs, a, ctx) => {
      const x = need(xs, 0, 'x');
      return [ctx.mode === 'train' && num(a, 'p', 0.5) > 0 ? nn.dropout(x, num(a, 'p', 0.5), true) : x];
    },
  },
  identity: unary((x) => x),
  /** (x) {axes (default all), keepdims = true} */
  reducemean: {
    run: (xs, a) => {
      const x = need(xs, 0, 'x');
      return [x.mean(a.axes === undefined ? null : nums(a, 'axes'), bool(a, 'keepdims', true))];
    },
  },
  /** (x, indices int64) {axis = 0}: ONNX Gather; a 0-d index drops the axis */
  gather: {
    run: (xs, a) => {
      const x = need(xs, 0, 'x');
      const idx = need(xs, 1, 'indices');
      const axis = axisOf(num(a, 'axis', 0), x.ndim);
      if (idx.ndim === 0) return [x.index(axis, idx.item())];
      const flat = idx.reshape([-1]);
      const g = x.indexSelect(axis, flat);
      flat.dispose();
      const y = g.reshape([...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)]);
      g.dispose();
      return [y];
    },
  },
  /** (x) {axis, index}: one entry along an axis, which is dropped (class token, q/k/v split) */
  select: {
    run: (xs, a) => {
      const x = need(xs, 0, 'x');
      return [x.index(axisOf(num(a, 'axis'), x.ndim), num(a, 'index'))];
    },
  },
  /** (x) {starts, ends, axes = 0.., steps = 1}: ends beyond the dim are clamped (ONNX) */
  slice: {
    run: (xs, a) => {
      let y = need(xs, 0, 'x');
      const starts = nums(a, 'starts');
      const ends = nums(a, 'ends');
      const axes = nums(
        a,
        'axes',
        starts.map((_, i) => i),
      );
      const steps = nums(
        a,
        'steps',
        starts.map(() => 1),
      );
      axes.forEach((ax, i) => {
        const d = axisOf(ax, y.ndim);
        const n = y.shape[d]!;
        const clampIdx = (v: number) => Math.min(Math.max(v < 0 ? v + n : v, 0), n);
        const next = y.slice(d, clampIdx(starts[i]!), clampIdx(ends[i]!), steps[i]!);
        if (y !== xs[0]) y.dispose();
        y = next;
      });
      return [y];
    },
  },
  /** (x) {axis, split: sizes | n equal parts via 'parts'} → several outputs */
  split: {
    run: (xs, a) => {
      const x = need(xs, 0, 'x');
      const axis = axisOf(num(a, 'axis', 0), x.ndim);
      if (a.split !== undefined) return x.split(nums(a, 'split'), axis);
      const parts = num(a, 'parts');
      return x.split(Math.ceil(x.shape[axis]! / parts), axis);
    },
  },
  /** (x) {axes (default: every size-1 dim)} */
  squeeze: {
    run: (xs, a) => {
      const x = need(xs, 0, 'x');
      const axes =
        a.axes === undefined
          ? x.shape.flatMap((d, i) => (d === 1 ? [i] : []))
          : nums(a, 'axes').map((d) => axisOf(d, x.ndim));
      return [x.reshape(x.shape.filter((_, i) => !axes.includes(i)))];
    },
  },
  /** (x) {axes}: positions in the output */
  unsqueeze: {
    run: (xs, a) => {
      const x = need(xs, 0, 'x');
      const rank = x.ndim + nums(a, 'axes').length;
      const axes = nums(a, 'axes').map((d) => axisOf(d, rank));
      const shape: number[] = [];
      let k = 0;
      for (let i = 0; i < rank; i++) shape.push(axes.includes(i) ? 1 : x.shape[k++]!);
      return [x.reshape(shape)];
    },
  },
  /** (x) {shape}: torch expand (-1 keeps a dim) */
  expand: { run: (xs, a) => [need(xs, 0, 'x').expand(nums(a, 'shape'))] },
  /** (x [N, L, D], token [1, k, D]) → [N, k + L, D]: the ViT class token, batch-size independent */
  prependtoken: {
    run: (xs) => {
      const x = need(xs, 0, 'x');
      const t = need(xs, 1, 'token').expand([x.shape[0]!, -1, -1]);
      const y = cat([t, x], 1);
      t.dispose();
      return [y];
    },
  },
  /**
   * (x, ref) {shape, refDims}: torch expand to `shape`, where entry i with refDims[i] ≥ 0 is ref's size along
   * that axis, read at run time (ONNX `expand(x.shape[0], -1, -1)`: the batch size is not known at import).
   */
  expanddyn: {
    run: (xs, a) => {
      const ref = need(xs, 1, 'ref');
      const rd = nums(a, 'refDims');
      return [need(xs, 0, 'x').expand(nums(a, 'shape').map((d, i) => (rd[i]! >= 0 ? ref.shape[rd[i]!]! : d)))];
    },
  },
  /** (x) {alpha = 0.2, beta = 0.5} → clamp(αx + β, 0, 1) (MobileNetV3's hard sigmoid is α = 1/6) */
  hardsigmoid: {
    run: (xs, a) => [
      scope(() =>
        need(xs, 0, 'x')
          .mul(num(a, 'alpha', 0.2))
          .add(num(a, 'beta', 0.5))
          .clamp(0, 1),
      ),
    ],
  },
  /** (x) → x · relu6(x + 3) / 6 */
  hardswish: unary((x) => scope(() => nn.relu6(x.add(3)).mul(x).div(6))),
  /** (x) {alpha = 0.01} */
  leakyrelu: { run: (xs, a) => [nn.leakyRelu(need(xs, 0, 'x'), num(a, 'alpha', 0.01))] },
  /** (x, slope broadcast to x) → x ≥ 0 ? x : slope · x, as relu(x) − slope · relu(−x) so the slope gets its gradient */
  prelu: {
    run: (xs) => [
      scope(() => {
        const x = need(xs, 0, 'x');
        return nn.relu(x).sub(need(xs, 1, 'slope').mul(nn.relu(x.neg())));
      }),
    ],
  },
  /** (x) {alpha = 1} → x > 0 ? x : α (eˣ − 1) */
  elu: { run: (xs, a) => [scope(() => elu(need(xs, 0, 'x'), num(a, 'alpha', 1)))] },
  /** (x) {alpha, gamma} (ONNX defaults: the self-normalising constants) → γ elu_α(x) */
  selu: {
    run: (xs, a) => [scope(() => elu(need(xs, 0, 'x'), num(a, 'alpha', SELU_ALPHA)).mul(num(a, 'gamma', SELU_GAMMA)))],
  },
  /** (x) → ln(1 + eˣ), overflow-free */
  softplus: unary((x) => scope(() => softplus(x))),
  /** (x) → x · tanh(softplus(x)) */
  mish: unary((x) => scope(() => nn.tanh(softplus(x)).mul(x))),
  exp: unary((x) => x.exp()),
  log: unary((x) => x.log()),
  abs: unary((x) => x.abs()),
  /** (...xs) → elementwise max, broadcasting (ONNX Max) */
  maximum: { run: (xs) => [fold(xs, (p, q) => p.maximum(q))] },
  /** (...xs) → elementwise min, broadcasting (ONNX Min) */
  minimum: { run: (xs) => [fold(xs, (p, q) => p.minimum(q))] },
  /** (x) {axes (default all), keepdims = true} */
  reducesum: { run: (xs, a) => [reduce(xs, a, (x, d, k) => x.sum(d, k))] },
  /** (x) {axes (default all), keepdims = true} */
  reducemax: { run: (xs, a) => [reduce(xs, a, (x, d, k) => x.max(d, k))] },
  /** (x) {axes (default all), keepdims = true} */
  reducemin: { run: (xs, a) => [reduce(xs, a, (x, d, k) => x.min(d, k))] },
  /** (x) {axes (default all), keepdims = true} → √Σx² */
  reducel2: { run: (xs, a) => [reduce(xs, a, (x, d, k) => scope(() => x.square().sum(d, k).sqrt()))] },
  /**
   * (x [N, C, H, W]) {mode: 'nearest' | 'linear', coord: ONNX coordinate_transformation_mode, nearest: ONNX nearest_mode,
   * sizes: [H', W'] | scales: [sh, sw]}: ONNX Resize over the last two axes (ops-resize.ts)
   */
  resize: {
    run: (xs, a) => [
      resize(need(xs, 0, 'x'), {
        mode: a.mode === 'linear' ? 'linear' : 'nearest',
        coord: oneOf(a, 'coord', COORD_MODES, 'half_pixel'),
        nearest: oneOf(a, 'nearest', NEAREST_MODES, 'round_prefer_floor'),
        ...(a.sizes !== undefined ? { sizes: nums(a, 'sizes') } : { scales: nums(a, 'scales') }),
      }),
    ],
  },
  /** (...xs) {equation}: letter-only einsum ('bhqd,bhkd->bhqk'), as batched matmuls (ops-einsum.ts) */
  einsum: { run: (xs, a) => [einsum(str(a, 'equation'), xs.map((t, i) => need(xs, i, `operand ${i}`)) as Tensor[])] },
} satisfies Record<string, OpDef>;

export type OpName = keyof typeof TABLE;
export const OPS: Readonly<Record<OpName, OpDef>> = TABLE;
export const OP_NAMES: readonly string[] = Object.keys(OPS);

/** The row for `op`, or undefined. */
export function opDef(op: string): OpDef | undefined {
  return Object.prototype.hasOwnProperty.call(OPS, op) ? (OPS as Record<string, OpDef>)[op] : undefined;
}
