/**
 * Keras activation names (an `Activation` layer, or the `activation` of Conv/Dense) → IR ops. Keras (Python) writes
 * snake_case names, TF.js its own spellings (`hardSigmoid`, `gelu_new`); both are listed. `hard_sigmoid` is Keras 2's
 * (and TF.js's) `clip(0.2 x + 0.5, 0, 1)`, not Keras 3's `relu6(x + 3) / 6`: TF.js layers files come from Keras 2
 * topologies. `gelu` is the exact erf form (Keras' default `approximate=False`), `gelu_new` the tanh one.
 */
import type { AttrValue } from '../ir.js';

export interface ActivationOp {
  op: string;
  attrs?: Record<string, AttrValue>;
}

/** Activation name → op (null: linear, no node). Softmax gets its axis from the input's rank at import. */
export const KERAS_ACTIVATIONS: Readonly<Record<string, ActivationOp | null>> = {
  linear: null,
  relu: { op: 'relu' },
  relu6: { op: 'relu6' },
  sigmoid: { op: 'sigmoid' },
  tanh: { op: 'tanh' },
  softmax: { op: 'softmax' },
  swish: { op: 'silu' },
  silu: { op: 'silu' },
  gelu: { op: 'gelu' },
  gelu_new: { op: 'gelu', attrs: { approximate: 'tanh' } },
  elu: { op: 'elu', attrs: { alpha: 1 } },
  selu: { op: 'selu' },
  softplus: { op: 'softplus' },
  hard_sigmoid: { op: 'hardsigmoid', attrs: { alpha: 0.2, beta: 0.5 } },
  hardSigmoid: { op: 'hardsigmoid', attrs: { alpha: 0.2, beta: 0.5 } },
  hard_swish: { op: 'hardswish' },
  hard_silu: { op: 'hardswish' },
  mish: { op: 'mish' },
  exponential: { op: 'exp' },
  leaky_relu: { op: 'leakyrelu', attrs: { alpha: 0.2 } },
};
