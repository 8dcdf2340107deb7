/** The contract every benchmark model meets, and the registry bench/engine.ts picks from. */
import type { Tensor } from '../../src/engine/index.js';
import type { ParamSpec, Params } from './params.js';

export interface BenchModel {
  readonly name: string;
  /** One image, [C, H, W]; the batch dimension is added by the caller. */
  readonly inputShape: readonly [number, number, number];
  readonly numClasses: number;
  /** Every trainable tensor, in a fixed order shared with the PyTorch peer. */
  readonly specs: readonly ParamSpec[];
  /** Logits [N, numClasses]. Frees its intermediates; never frees `x` or `params`. */
  forward(params: Params, x: Tensor): Tensor;
  /** Frees the model's buffers (e.g. BN running statistics). */
  dispose(): void;
}
