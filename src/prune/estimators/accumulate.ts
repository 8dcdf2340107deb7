/** Σ over batches and backward passes of squared per-sample gradients, divided by N: the fisher and ggn diagonals. */
import { noGrad, zeros, type Tensor } from '../../engine/index.js';
import type { Graph } from '../../graph/index.js';
import { checkCalibration, checkMode, countImages } from '../calib.js';
import type { CalibBatch } from '../loss.js';
import { factorPass, findSites, type Seeds } from '../per-sample.js';
import { targetParams, type EstimatorOptions } from './types.js';

export function squaredFactorDiag(
  g: Graph,
  batches: readonly CalibBatch[],
  o: EstimatorOptions,
  seeds: Seeds,
  name: string,
): { diag: Map<string, Tensor>; passes: number; images: number } {
  const mode = o.mode ?? 'eval-bn';
  checkMode(g, mode, { allowTrainMode: o.allowTrainMode, what: name, perSample: true });
  checkCalibration(batches);
  const params = targetParams(g, o);
  const sites = findSites(g, params, name);
  const diag = new Map(
    params.map((p) => {
      const t = g.params.get(p)!.tensor;
      return [p, zeros(t.shape, { dtype: t.dtype, device: t.device })] as const;
    }),
  );
  let passes = 0;
  batches.forEach((b, i) => {
    passes += factorPass(g, b, sites, { loss: o.loss, mode, seeds, want: 'sumSquares' }, (p, t) =>
      noGrad(() => diag.get(p)!.add_(t)),
    );
    o.onProgress?.(i + 1, batches.length);
  });
  const n = countImages(batches);
  noGrad(() => {
    for (const t of diag.values()) t.mul_(1 / n);
  });
  return { diag, passes, images: n };
}
