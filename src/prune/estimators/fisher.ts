/**
 * Empirical Fisher diagonal F = (1/N) Σₙ (∂ℓₙ/∂θ)² — the mean, not the sum, so it estimates the curvature of
 * the mean loss like the other estimators (Σₙ is N × this). Per-sample gradients come in batch from layer inputs
 * and output gradients (per-sample.ts): one forward and one backward per batch.
 */
import { manualSeed } from '../../engine/index.js';
import { squaredFactorDiag } from './accumulate.js';
import type { CurvatureEstimator } from './types.js';

export const fisher: CurvatureEstimator = {
  name: 'fisher',
  perSample: true,
  diag(g, batches, o) {
    manualSeed(o.seed ?? 0);
    const r = squaredFactorDiag(g, batches, o, 'grad', 'fisher');
    return { diag: r.diag, info: { estimator: 'fisher', loss: o.loss, images: r.images, backwardPasses: r.passes } };
  },
};
