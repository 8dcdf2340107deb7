/**
 * Exact-Hessian diagonal by Hutchinson's estimator: diag(H) = E[v ⊙ H v] for Rademacher v (E[v vᵀ] = I, and
 * vᵢ² = 1 makes the estimator's variance Σ_{j≠i} H_ij² per entry). H v is one double backward (Pearlmutter) per
 * probe and batch, weighted by the batch's share of the images, so it is the HVP of the mean loss; all probes
 * share one forward and first-order backward per batch (the graph of ∇L is retained across the probes). Returns the mean over
 * probes and its standard error (running Welford variance / probes).
 */
import { gradGraph, manualSeed, noGrad, randint, scope, zeros } from '../../engine/index.js';
import { checkCalibration, checkMode, countImages } from '../calib.js';
import { PruneError } from '../errors.js';
import { lossFn } from '../loss.js';
import { targetParams, type CurvatureEstimator } from './types.js';

export const hutchinson: CurvatureEstimator = {
  name: 'hutchinson',
  perSample: false,
  diag(g, batches, o) {
    const probes = o.probes ?? 8;
    if (!Number.isInteger(probes) || probes < 1)
      throw new PruneError(`hutchinson needs a positive integer number of probes, got ${probes}`, {
        context: { probes },
        fix: 'pass e.g. --probes 8',
      });
    const mode = o.mode ?? 'eval-bn';
    checkMode(g, mode, { allowTrainMode: o.allowTrainMode, what: 'hutchinson' });
    checkCalibration(batches);
    const names = targetParams(g, o);
    const params = names.map((n) => g.params.get(n)!.tensor);
    const n = countImages(batches);
    manualSeed(o.seed ?? 0);
    // All probes up front, drawn in the order a probe-by-probe loop would draw them (probe k, then param j).
    const vs = Array.from({ length: probes }, () =>
      params.map((p) => randint(0, 2, p.shape).to(p.dtype).mul(2).sub(1)),
    );
    const hvs = vs.map(() => params.map((p) => zeros(p.shape, { dtype: p.dtype, device: p.device })));
    // Batches outside, probes inside: one forward and one first-order backward (with its graph) per batch, then one
    // double backward per probe through the retained graph — instead of a fresh forward per probe and batch.
    batches.forEach((b, i) =>
      scope(() => {
        const gg = gradGraph(() => {
          const out = lossFn(g, b, { loss: o.loss, mode });
          out.logits.dispose();
          return out.loss;
        }, params);
        try {
          const w = b.x.shape[0]! / n;
          vs.forEach((v, k) =>
            scope(() => {
              const hs = gg.hv(v);
              noGrad(() => hs.forEach((h, j) => hvs[k]![j]!.add_(h.mul(w))));
              o.onProgress?.(i * probes + k + 1, probes * batches.length);
            }),
          );
        } finally {
          gg.dispose();
        }
      }),
    );
    // Welford over probes: mean += (x − mean)/k; M2 += (x − mean_old)(x − mean_new).
    const mean = params.map((p) => zeros(p.shape, { dtype: p.dtype, device: p.device }));
    const m2 = params.map((p) => zeros(p.shape, { dtype: p.dtype, device: p.device }));
    for (let k = 1; k <= probes; k++)
      noGrad(() =>
        scope(() => {
          const xs = vs[k - 1]!.map((vi, j) => vi.mul(hvs[k - 1]![j]!));
          o.onSample?.(k - 1, xs);
          xs.forEach((x, j) => {
            const d0 = x.sub(mean[j]!);
            mean[j]!.add_(d0.div(k));
            m2[j]!.add_(d0.mul(x.sub(mean[j]!)));
          });
        }),
      );
    for (const t of [...vs.flat(), ...hvs.flat()]) t.dispose();
    const diag = new Map(names.map((nm, j) => [nm, mean[j]!] as const));
    const stderr = new Map(
      names.map(
        (nm, j) =>
          [
            nm,
            noGrad(() =>
              probes > 1
                ? m2[j]!.div(probes - 1)
                    .div(probes)
                    .sqrt()
                : m2[j]!.add(Infinity),
            ),
          ] as const,
      ),
    );
    m2.forEach((t) => t.dispose());
    return {
      diag,
      stderr,
      info: {
        estimator: 'hutchinson',
        loss: o.loss,
        probes,
        seed: o.seed ?? 0,
        images: n,
        hvps: probes * batches.length,
      },
    };
  },
};
