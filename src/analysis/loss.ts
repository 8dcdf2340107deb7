/**
 * The task loss the curvature is taken of: the graph's output logits against the task labels, with the
 * per-image losses of src/prune (so both layers mean the same L):
 *   ce:  −log softmax(f)_y
 *   mse: (1/C) Σ_c (f_c − y_c)², y one-hot (the authors' harness)
 * Over several batches L is the mean over all their images, so batch sizes may differ. A task whose classes
 * the model's own head does not predict is served by a view with a task head (transfer's `withTaskHead`).
 */
import { forward, graphDtype, type Graph, type Mode } from '../graph/index.js';
import { scope, type Tensor } from '../engine/index.js';
import { lossDef, LOSS_NAMES, type LossName } from '../prune/loss.js';
import { AnalysisError } from './errors.js';

export { LOSS_NAMES, type LossName };

/** A batch: images `[b, …]` and int64 labels `[b]` (src/data's Batch and src/prune's CalibBatch fit). */
export interface LabelledBatch {
  readonly x: Tensor;
  readonly y: Tensor;
}

export function checkLoss(loss: LossName): void {
  if (!LOSS_NAMES.includes(loss))
    throw new AnalysisError(`unknown loss '${String(loss)}'`, {
      context: { loss },
      fix: `use one of ${LOSS_NAMES.join(', ')}`,
    });
}

/**
 * Σ over the batch's images of the per-image loss, times `scale` (1/N for the mean over N images).
 * Records autograd unless `mode` is 'eval'.
 */
export function batchLoss(g: Graph, loss: LossName, b: LabelledBatch, mode: Mode, scale: number): Tensor {
  return scope(() => {
    const dtype = graphDtype(g);
    const x = b.x.dtype === dtype ? b.x : b.x.to(dtype);
    const logits = forward(g, x, { mode }).outputs[0]!;
    if (logits.ndim !== 2 || logits.shape[0] !== b.y.shape[0])
      throw new AnalysisError(
        `graph '${g.name}' gives outputs [${logits.shape.join(', ')}]; the loss needs logits [${b.y.shape[0]}, classes]`,
        {
          context: { output: g.outputs[0] },
          fix: 'attach a task head (transfer.withTaskHead) so the output is the task logits',
        },
      );
    const y = b.y.dtype === 'int64' ? b.y : b.y.to('int64');
    return lossDef(loss).perSample(logits, y).sum().mul(scale);
  });
}

export function countImages(batches: readonly LabelledBatch[]): number {
  const n = batches.reduce((a, b) => a + b.x.shape[0]!, 0);
  if (n === 0)
    throw new AnalysisError('no images: the batch list is empty', {
      fix: 'pass at least one batch of calibration images',
    });
  return n;
}
