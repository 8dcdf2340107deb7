/**
 * A task head on a backbone. The zoo models' own classifiers predict other classes (nsfwjs: 5 NSFW classes,
 * ResNet: 1000), so fine-tuning on a source task reads the feature tap through a fresh linear head
 * `task_head.{weight,bias}` ([C, D], [C]); the model's original classifier is left out of the forward pass.
 *
 * The head can start from a ridge head (fitted on standardised features): folding the standardisation in,
 *     W_raw = W / std (per feature),   b_raw = b − W_raw · mean,
 * gives a plain linear layer on raw features with exactly the ridge head's logits.
 */
import { noGrad, scope, tensor, zeros, type DType, type Tensor } from '../engine/index.js';
import type { LinearHead } from '../graph/index.js';
import { disposeHead, featureStats, fitRidgeHead, headLogits, selectAlpha, type RidgeHead } from './ridge.js';

/** The ridge head as a linear layer on raw (unstandardised) features, in `dtype`. The caller owns the result. */
export function ridgeToLinear(head: RidgeHead, dtype: DType = 'float32'): LinearHead {
  return scope(() =>
    noGrad(() => {
      const w = head.weight.div(head.stats.std.unsqueeze(0));
      const b = head.bias.sub(w.matmul(head.stats.mean));
      return { weight: w.to(dtype).contiguous(), bias: b.to(dtype).contiguous() };
    }),
  );
}

/** A zero-initialised head. */
export function zeroHead(numClasses: number, dim: number, dtype: DType = 'float32'): LinearHead {
  return { weight: zeros([numClasses, dim], { dtype }), bias: zeros([numClasses], { dtype }) };
}

/** A head's ridge penalty on standardised features: a number, 'auto' (selectAlpha) or 'images' (= the number of head training images, a penalty of 1 ' +
  'per image). */
export type HeadAlpha = number | 'auto' | 'images';

export interface LinearHeadOptions {
  numClasses: number;
  alpha: HeadAlpha;
  /** The grid of alpha 'auto' (default: selectAlpha's ALPHA_GRID). */
  grid?: readonly number[];
  /** Std floors of the standardisation (featureStats; default: absolute 1e-8, no relative floor). */
  floor?: { relative?: number; absolute?: number };
  dtype?: DType;
}

export interface LinearHeadFit {
  /** The caller owns it. */
  head: LinearHead;
  alpha: number;
  /** Training images it was fitted on. */
  images: number;
  /** Accuracy on its own training images (chance = 1 / classes). */
  trainAccuracy: number;
}

/**
 * THE task-head recipe on frozen features: a class-balanced ridge head on standardised features (`alpha` chosen or
 * given), folded into a linear layer on raw features. Scores that read a task through a head use it with the default
 * floors (scoringHead); second-order diagnostics use it scale-free (`floor: {relative: 0.1, absolute: 0}`), so the head's
 * logits, and the curvature they define, do not depend on the global feature scale.
 */
export function fitLinearHead(features: Tensor, labels: Int32Array, o: LinearHeadOptions): LinearHeadFit {
  const y = tensor(
    BigInt64Array.from(labels, (v) => BigInt(v)),
    [labels.length],
  );
  const stats = featureStats(features, { relativeFloor: o.floor?.relative, absoluteFloor: o.floor?.absolute });
  try {
    const alpha =
      o.alpha === 'auto'
        ? selectAlpha(features, y, { numClasses: o.numClasses, grid: o.grid, stats }).alpha
        : o.alpha === 'images'
          ? labels.length
          : o.alpha;
    const ridge = fitRidgeHead(features, y, { numClasses: o.numClasses, alpha, stats });
    try {
      const pred = scope(() => headLogits(ridge, features).argmax(1).toArray());
      const trainAccuracy = pred.filter((p, i) => p === labels[i]).length / labels.length;
      return { head: ridgeToLinear(ridge, o.dtype), alpha, images: labels.length, trainAccuracy };
    } finally {
      disposeHead(ridge);
    }
  } finally {
    y.dispose();
    stats.mean.dispose();
    stats.std.dispose();
  }
}
