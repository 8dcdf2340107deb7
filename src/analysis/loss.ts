/**
 * The task loss the curvature is taken of: the model's logits (or a tap followed by a fixed linear head, for
 * tasks the model's own head does not serve) against the task labels.
 *   ce:  mean over images of cross-entropy.
 *   mse: mean over images of Σ_c (f_c − y_c)², y one-hot (the authors' harness).
 * Over several batches the loss is the mean over all their images, so batch sizes may differ.
 */
import { forward, type Graph, type Mode } from '../graph/index.js';
import { nn, scope, type Tensor } from '../engine/index.js';
import { AnalysisError } from './errors.js';

export type LossName = 'mse' | 'ce';
export const LOSS_NAMES: readonly LossName[] = ['mse', 'ce'];

/** A fixed linear head `logits = features · weightᵀ + bias`, weight `[classes, features]`. */
export interface LinearHead {
  weight: Tensor;
  bias: Tensor;
}

export interface TaskLoss {
  kind: LossName;
  /** Number of classes (the one-hot width for mse). */
  classes: number;
  /** Value to read instead of the graph output (e.g. `graph.featureTap`); then `head` maps it to logits. */
  tap?: string;
  head?: LinearHead;
}

/** A batch: images `[b, …]` and int64 labels `[b]` (src/data's Batch fits). */
export interface LabelledBatch {
  readonly x: Tensor;
  readonly y: Tensor;
}

export function checkLoss(loss: TaskLoss): void {
  if (!LOSS_NAMES.includes(loss.kind))
    throw new AnalysisError(`unknown loss '${String(loss.kind)}'`, { context: { loss: loss.kind }, fix: `use one of ${LOSS_NAMES.join(', ')}` });
  if (!Number.isInteger(loss.classes) || loss.classes < 2)
    throw new AnalysisError(`loss.classes must be an integer >= 2, got ${loss.classes}`, { context: { classes: loss.classes } });
  if (loss.tap !== undefined && !loss.head)
    throw new AnalysisError(`loss reads tap '${loss.tap}' but has no head to map it to logits`, { fix: 'pass loss.head (e.g. from fitRidgeHead) or drop loss.tap to use the graph output' });
}

/**
 * Σ over the batch's images of the per-image loss, times `scale` (1/N for the mean over N images).
 * Records autograd unless `mode` is 'eval'.
 */
export function batchLoss(g: Graph, loss: TaskLoss, b: LabelledBatch, mode: Mode, scale: number): Tensor {
  return scope(() => {
    const dtype = firstFloatDtype(g);
    const x = b.x.dtype === dtype ? b.x : b.x.to(dtype);
    const name = loss.tap ?? g.outputs[0]!;
    const out = forward(g, x, { mode, outputs: [name] }).outputs[0]!;
    const logits = loss.head ? nn.linear(out.flatten(1), loss.head.weight, loss.head.bias) : out;
    if (logits.ndim !== 2 || logits.shape[1] !== loss.classes)
      throw new AnalysisError(`the loss expects logits [batch, ${loss.classes}], the model gives [${logits.shape.join(', ')}]`, {
        context: { value: name }, fix: 'fit a head for the task (fitRidgeHead) and pass it with loss.tap = graph.featureTap',
      });
    const y = b.y.dtype === 'int64' ? b.y : b.y.to('int64');
    const per = loss.kind === 'ce'
      ? nn.crossEntropy(logits, y, { reduction: 'sum' })
      : logits.sub(nn.oneHot(y, loss.classes).to(logits.dtype)).square().sum();
    return per.mul(scale);
  });
}

export function firstFloatDtype(g: Graph): 'float32' | 'float64' {
  for (const p of g.params.values()) if (p.tensor.dtype === 'float64') return 'float64';
  return 'float32';
}

export function countImages(batches: readonly LabelledBatch[]): number {
  const n = batches.reduce((a, b) => a + b.x.shape[0]!, 0);
  if (n === 0) throw new AnalysisError('no images: the batch list is empty', { fix: 'pass at least one batch of calibration images' });
  return n;
}
