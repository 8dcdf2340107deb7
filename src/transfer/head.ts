/**
 * A task head on a backbone. The zoo models' own classifiers predict other classes (nsfwjs: 5 NSFW classes,
 * ResNet: 1000), so fine-tuning on a source task reads the feature tap through a fresh linear head
 * `task_head.{weight,bias}` ([C, D], [C]); the model's original classifier is left out of the forward pass.
 *
 * The head can start from a ridge head (fitted on standardised features): folding the standardisation in,
 *     W_raw = W / std (per feature),   b_raw = b − W_raw · mean,
 * gives a plain linear layer on raw features with exactly the ridge head's logits.
 */
import { noGrad, scope, zeros, type DType } from '../engine/index.js';
import type { LinearHead } from '../graph/index.js';
import type { RidgeHead } from './ridge.js';

/** The ridge head as a linear layer on raw (unstandardised) features, in `dtype`. The caller owns the result. */
export function ridgeToLinear(head: RidgeHead, dtype: DType = 'float32'): LinearHead {
  return scope(() => noGrad(() => {
    const w = head.weight.div(head.stats.std.unsqueeze(0));
    const b = head.bias.sub(w.matmul(head.stats.mean));
    return { weight: w.to(dtype).contiguous(), bias: b.to(dtype).contiguous() };
  }));
}

/** A zero-initialised head. */
export function zeroHead(numClasses: number, dim: number, dtype: DType = 'float32'): LinearHead {
  return { weight: zeros([numClasses, dim], { dtype }), bias: zeros([numClasses], { dtype }) };
}
