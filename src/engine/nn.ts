/**
 * Functional neural-network ops (torch.nn.functional style). Inputs are NCHW.
 * Each validates the shapes it can explain better than ATen would.
 */
import { native } from './native.js';
import { ShapeError } from './errors.js';
import { Tensor, type Reduction } from './tensor.js';

type Pair = number | readonly [number, number];
const two = (v: Pair): readonly [number, number] => (typeof v === 'number' ? [v, v] : v);

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
}

/** 2-D convolution. x [N, Cin, H, W], weight [Cout, Cin/groups, kh, kw], bias [Cout]. */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, o: Conv2dOptions = {}): Tensor {
  if (weight.ndim !== 4)
    throw new ShapeError(`conv2d: 'weight' must be 4-D [out, in/groups, kh, kw], got [${weight.shape.join(', ')}]`);
  if (x.ndim !== 4) throw new ShapeError(`conv2d: 'input' must be 4-D [N, C, H, W], got [${x.shape.join(', ')}]`);
  const groups = o.groups ?? 1;
  if (x.shape[1] !== weight.shape[1]! * groups)
    throw new ShapeError(
      `conv2d: input [${x.shape.join(', ')}] has ${x.shape[1]} channels but weight [${weight.shape.join(', ')}] with groups=${groups} expects ` +
        `${weight.shape[1]! * groups}`,
    );
  return new Tensor(
    native.conv2d(
      x.handle,
      weight.handle,
      bias?.handle,
      two(o.stride ?? 1),
      two(o.padding ?? 0),
      two(o.dilation ?? 1),
      groups,
    ),
  );
}

/**
 * im2col (torch `F.unfold`): x [N, C, H, W] → [N, C·kh·kw, L], one column per output position (L = Ho·Wo), rows in
 * (channel, kernel row, kernel column) order, the order of a conv weight [out, C, kh, kw] flattened per output.
 * So `W.reshape([out, -1]).matmul(unfold(x, …))` is the convolution.
 */
export function unfold(x: Tensor, kernel: Pair, o: { stride?: Pair; padding?: Pair; dilation?: Pair } = {}): Tensor {
  if (x.ndim !== 4) throw new ShapeError(`unfold: 'input' must be 4-D [N, C, H, W], got [${x.shape.join(', ')}]`);
  return new Tensor(
    native.unfold(x.handle, two(kernel), two(o.dilation ?? 1), two(o.padding ?? 0), two(o.stride ?? 1)),
  );
}

/** y = x Wᵀ + b. x [..., in], weight [out, in]. */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  if (weight.ndim !== 2)
    throw new ShapeError(`linear: 'weight' must be 2-D [out, in], got [${weight.shape.join(', ')}]`);
  if (x.shape[x.ndim - 1] !== weight.shape[1])
    throw new ShapeError(
      `linear: input features ${x.shape[x.ndim - 1]} (input [${x.shape.join(', ')}]) do not match weight [${weight.shape.join(', ')}]`,
    );
  return new Tensor(native.linear(x.handle, weight.handle, bias?.handle));
}

export function addmm(c: Tensor, a: Tensor, b: Tensor, beta = 1, alpha = 1): Tensor {
  return new Tensor(native.addmm(c.handle, a.handle, b.handle, beta, alpha));
}

export function maxPool2d(
  x: Tensor,
  kernel: Pair,
  o: { stride?: Pair; padding?: Pair; dilation?: Pair; ceilMode?: boolean } = {},
): Tensor {
  return new Tensor(
    native.maxPool2d(
      x.handle,
      two(kernel),
      two(o.stride ?? kernel),
      two(o.padding ?? 0),
      two(o.dilation ?? 1),
      o.ceilMode ?? false,
    ),
  );
}
export function avgPool2d(
  x: Tensor,
  kernel: Pair,
  o: { stride?: Pair; padding?: Pair; ceilMode?: boolean; countIncludePad?: boolean } = {},
): Tensor {
  return new Tensor(
    native.avgPool2d(
      x.handle,
      two(kernel),
      two(o.stride ?? kernel),
      two(o.padding ?? 0),
      o.ceilMode ?? false,
      o.countIncludePad ?? true,
    ),
  );
}
export function adaptiveAvgPool2d(x: Tensor, out: Pair): Tensor {
  return new Tensor(native.adaptiveAvgPool2d(x.handle, two(out)));
}

export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  runningMean?: Tensor | null;
  runningVar?: Tensor | null;
  /** Batch statistics (and, when running buffers are given, update them in place). */
  training: boolean;
  momentum?: number;
  eps?: number;
}
export function batchNorm(x: Tensor, o: BatchNormOptions): Tensor {
  if (x.ndim < 2) throw new ShapeError(`batchNorm: input must be [N, C, ...], got [${x.shape.join(', ')}]`);
  const c = x.shape[1]!;
  // ATen does not check this (torch checks it in Python): one value per channel gives a zero output and
  // writes NaN into the running variance (unbiased variance of one sample).
  if (o.training && x.numel / c === 1)
    throw new ShapeError(`batchNorm: training needs more than 1 value per channel, got input [${x.shape.join(', ')}]`, {
      fix: 'use a batch of at least 2 (or larger spatial size), or evaluation mode (training: false)',
    });
  for (const [k, t] of [
    ['weight', o.weight],
    ['bias', o.bias],
    ['runningMean', o.runningMean],
    ['runningVar', o.runningVar],
  ] as const)
    if (t && (t.ndim !== 1 || t.shape[0] !== c))
      throw new ShapeError(
        `batchNorm: '${k}' must be [${c}] for input [${x.shape.join(', ')}], got [${t.shape.join(', ')}]`,
      );
  return new Tensor(
    native.batchNorm(
      x.handle,
      o.weight?.handle,
      o.bias?.handle,
      o.runningMean?.handle,
      o.runningVar?.handle,
      o.training,
      o.momentum ?? 0.1,
      o.eps ?? 1e-5,
    ),
  );
}
export function layerNorm(
  x: Tensor,
  normalizedShape: number | readonly number[],
  weight: Tensor | null = null,
  bias: Tensor | null = null,
  eps = 1e-5,
): Tensor {
  return new Tensor(native.layerNorm(x.handle, normalizedShape, weight?.handle, bias?.handle, eps));
}

export function relu(x: Tensor): Tensor {
  return new Tensor(native.relu(x.handle));
}
export function relu6(x: Tensor): Tensor {
  return new Tensor(native.relu6(x.handle));
}
export function hardtanh(x: Tensor, min = -1, max = 1): Tensor {
  return new Tensor(native.hardtanh(x.handle, min, max));
}
export function leakyRelu(x: Tensor, slope = 0.01): Tensor {
  return new Tensor(native.leakyRelu(x.handle, slope));
}
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  return new Tensor(native.gelu(x.handle, approximate));
}
export function silu(x: Tensor): Tensor {
  return new Tensor(native.silu(x.handle));
}
export function sigmoid(x: Tensor): Tensor {
  return new Tensor(native.sigmoid(x.handle));
}
export function tanh(x: Tensor): Tensor {
  return new Tensor(native.tanh(x.handle));
}
export function softmax(x: Tensor, dim: number): Tensor {
  return new Tensor(native.softmax(x.handle, dim));
}
export function logSoftmax(x: Tensor, dim: number): Tensor {
  return new Tensor(native.logSoftmax(x.handle, dim));
}

/** Cross-entropy of logits [N, C] against int64 class indices [N] (or class probabilities [N, C]). */
export function crossEntropy(
  logits: Tensor,
  target: Tensor,
  o: { reduction?: Reduction; labelSmoothing?: number } = {},
): Tensor {
  if (target.dtype === 'int64' && (target.ndim !== 1 || target.shape[0] !== logits.shape[0]))
    throw new ShapeError(
      `crossEntropy: target must be [${logits.shape[0]}] class indices for logits [${logits.shape.join(', ')}], got [${target.shape.join(', ')}]`,
    );
  return new Tensor(native.crossEntropy(logits.handle, target.handle, o.reduction ?? 'mean', o.labelSmoothing ?? 0));
}
/** Mean squared error (mean over all elements by default, as torch). */
export function mseLoss(input: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  return new Tensor(native.mseLoss(input.handle, target.handle, reduction));
}
export function nllLoss(logProbs: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  return new Tensor(native.nllLoss(logProbs.handle, target.handle, reduction));
}
export function dropout(x: Tensor, p: number, training: boolean): Tensor {
  return new Tensor(native.dropout(x.handle, p, training));
}
/** int64 [N] → int64 [N, numClasses]. */
export function oneHot(t: Tensor, numClasses: number): Tensor {
  return new Tensor(native.oneHot(t.handle, numClasses));
}
/** Pads the last dims; `pads` lists (left, right) for the last dim first, as torch.nn.functional.pad. */
export function pad(
  x: Tensor,
  pads: readonly number[],
  mode: 'constant' | 'reflect' | 'replicate' = 'constant',
  value = 0,
): Tensor {
  return new Tensor(native.pad(x.handle, pads, mode, value));
}
/** Resizes NCHW images to `size` [H, W]. */
export function interpolate(
  x: Tensor,
  size: readonly [number, number],
  o: { mode?: 'bilinear' | 'nearest'; alignCorners?: boolean; antialias?: boolean } = {},
): Tensor {
  if ((o.mode ?? 'bilinear') === 'nearest') return new Tensor(native.interpolateNearest(x.handle, size));
  return new Tensor(native.interpolateBilinear(x.handle, size, o.alignCorners ?? false, o.antialias ?? false));
}
