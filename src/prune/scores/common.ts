/** Small helpers shared by scores: effective (masked) weights, the mean-loss gradient. */
import { gradStrict, noGrad, scope, zeros, type Tensor } from '../../engine/index.js';
import type { Graph } from '../../graph/index.js';
import { checkCalibration, checkMode, countImages } from '../calib.js';
import { lossFn, type CalibBatch, type LossName } from '../loss.js';
import type { Mode } from '../../graph/index.js';

/** θ ⊙ c: what the forward pass uses (a pruned weight counts as 0). */
export function effective(g: Graph, name: string): Tensor {
  return scope(() =>
    noGrad(() => {
      const t = g.params.get(name)!.tensor.detach();
      const m = g.masks.get(name);
      return m ? t.mul(m) : t.clone();
    }),
  );
}

/** ∂L/∂θ of the mean loss over every batch (weighted by batch size), detached. */
export function meanGradient(
  g: Graph,
  batches: readonly CalibBatch[],
  o: { loss: LossName; mode?: Mode; allowTrainMode?: boolean; params: readonly string[]; what: string },
): Tensor[] {
  const mode = o.mode ?? 'eval-bn';
  checkMode(g, mode, { allowTrainMode: o.allowTrainMode, what: o.what });
  checkCalibration(batches);
  const ps = o.params.map((p) => g.params.get(p)!.tensor);
  const n = countImages(batches);
  const acc = ps.map((p) => zeros(p.shape, { dtype: p.dtype, device: p.device }));
  for (const b of batches)
    scope(() => {
      const gs = gradStrict(lossFn(g, b, { loss: o.loss, mode }).loss, ps);
      noGrad(() => gs.forEach((t, i) => acc[i]!.add_(t.mul(b.x.shape[0]! / n))));
    });
  return acc;
}
