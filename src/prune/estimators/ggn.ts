/**
 * Gauss–Newton diagonal G = (1/N) Σₙ diag(Jₙᵀ Hₙ Jₙ), Jₙ = ∂f(xₙ)/∂θ, Hₙ = ∂²ℓₙ/∂f². With Hₙ = Sₙ Sₙᵀ,
 * diag(Jₙᵀ Hₙ Jₙ) = Σ_c (Jₙᵀ Sₙ e_c)²: `exact` runs one backward per output column c (C passes per batch),
 * seeded with Sₙ e_c, and squares the per-sample gradients; `mc` seeds one backward with s, E[s sᵀ] = Hₙ
 * (a sampled label for ce, a Rademacher vector for mse), an unbiased 1-sample estimate.
 */
import { manualSeed } from '../../engine/index.js';
import { squaredFactorDiag } from './accumulate.js';
import type { CurvatureEstimator } from './types.js';

export const ggn: CurvatureEstimator = {
  name: 'ggn',
  perSample: true,
  diag(g, batches, o) {
    const variant = o.ggn ?? 'exact';
    manualSeed(o.seed ?? 0);
    const r = squaredFactorDiag(g, batches, o, variant === 'exact' ? 'sqrt-hessian' : 'mc', 'ggn');
    return {
      diag: r.diag,
      info: {
        estimator: 'ggn',
        variant,
        loss: o.loss,
        images: r.images,
        backwardPasses: r.passes,
        ...(variant === 'mc' ? { seed: o.seed ?? 0 } : {}),
      },
    };
  },
};
