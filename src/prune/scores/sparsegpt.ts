/**
 * SparseGPT-style reconstruction (src/prune/reconstruct): each prunable layer, in graph order, is pruned on its
 * inputs from the already-pruned network so that its output stays close to a target, and its surviving weights are
 * updated (the solver's OBS step). Targets: `dense-weights` (the usual: the layer's own dense weights on the pruned
 * inputs, ‖W X_p − Ŵ X_p‖²) and `dense-output` (the dense network's layer output, ‖W_d X_d − Ŵ X_p‖²).
 *
 * The allocation decides how many weights each layer keeps; the solver decides which. Under the `global` allocation
 * the ranking score is the normalised OBS error of each weight on the dense inputs, w_j² / ([(H + λI)⁻¹]_jj · w H wᵀ):
 * the share of its row's mean squared output the weight's removal alone would cost (rows followed by BatchNorm are
 * normalised anyway, so a relative error is what reaches the next layer). Under other allocations only the counts
 * matter and the scores are not computed. Under the `error` allocation the score also measures each layer's error
 * curve and gain (reconstruct/curves.ts), from which the allocation picks the densities.
 */
import { eye, linalg, noGrad, scope, type Tensor } from '../../engine/index.js';
import { usesErrorCurves } from '../allocation.js';
import { checkCalibration } from '../calib.js';
import { layersOf, toRows } from '../reconstruct/layers.js';
import { errorCurves } from '../reconstruct/curves.js';
import { checkWalkMemory, covariance, forEachLayerInput, reconstructSweep } from '../reconstruct/sweep.js';
import { effective } from './common.js';
import type { Score } from './types.js';
import type { KeepRule } from '../reconstruct/solver.js';

export const SPARSEGPT_DEFAULTS = {
  target: 'dense-weights',
  blockSize: 32,
  damping: 0.01,
  activations: 'full',
} as const;

export const sparsegpt: Score = {
  name: 'sparsegpt',
  needs: 'inputs',
  dataFree: false,
  errorCurves: true,
  description:
    'layer-wise OBS reconstruction (SparseGPT): masks chosen and weights updated so each layer keeps its output (--target dense-weights|dense-output)',
  score(ctx) {
    checkCalibration(ctx.batches);
    const layers = layersOf(ctx.graph, ctx.params, 'sparsegpt');
    const target = ctx.reconstruct?.target ?? SPARSEGPT_DEFAULTS.target;
    const blockSize = ctx.reconstruct?.blockSize ?? SPARSEGPT_DEFAULTS.blockSize;
    const damping = ctx.reconstruct?.damping ?? SPARSEGPT_DEFAULTS.damping;
    const activations = ctx.reconstruct?.activations ?? SPARSEGPT_DEFAULTS.activations;
    // The sweep walks two networks (pruned and dense): refuse a set too large for it before any pass over the images.
    checkWalkMemory(ctx.graph, ctx.batches, layers, 2, { store: activations });
    const scores = new Map<string, Tensor>();
    const global = (ctx.allocation?.kind ?? 'global') === 'global';
    if (global)
      forEachLayerInput(
        ctx.graph,
        ctx.batches,
        layers,
        (l, xs) => {
          const H = covariance(l, xs);
          scores.set(
            l.param,
            scope(() =>
              noGrad(() => {
                const w = toRows(effective(ctx.graph, l.param), l.groups).to('float64');
                const d = H.shape[1]!;
                const diag = H.diagonal(0, 1, 2);
                const lam = diag.mean([1]).mul(damping).add(1e-12).reshape([l.groups, 1, 1]);
                const I = eye(d, { dtype: 'float64' }).unsqueeze(0);
                const dead = diag.eq(0).to('float64');
                const hinv = linalg.choleskyInverse(linalg.cholesky(H.add(I.mul(dead.unsqueeze(2))).add(I.mul(lam))));
                // A weight whose input is always 0, or in a row whose output is always 0, costs nothing to remove.
                const obs = w
                  .square()
                  .mul(dead.neg().add(1).unsqueeze(1))
                  .div(hinv.diagonal(0, 1, 2).unsqueeze(1));
                const energy = w.matmul(H).mul(w).sum([2]).unsqueeze(2);
                const live = energy.gt(0).to('float64');
                return obs
                  .mul(live)
                  .div(energy.add(live.neg().add(1)))
                  .reshape(l.shape)
                  .to(ctx.graph.params.get(l.param)!.tensor.dtype);
              }),
            ),
          );
          H.dispose();
        },
        activations,
      );
    else
      for (const l of layers)
        scores.set(
          l.param,
          scope(() => noGrad(() => effective(ctx.graph, l.param).square())),
        );
    const curves =
      ctx.allocation && usesErrorCurves(ctx.allocation)
        ? errorCurves(ctx.graph, ctx.batches, layers, {
            blockSize,
            damping,
            density: ctx.density ?? 0.5,
            activations,
            // error-layer counts every layer's error at face value: no gains to measure.
            gainImages: ctx.allocation.kind === 'error' ? 128 : 0,
            ...(ctx.onProgress ? { onProgress: ctx.onProgress } : {}),
          })
        : null;
    const info = {
      score: 'sparsegpt',
      target,
      blockSize,
      damping,
      activations,
      ranking: global ? 'normalised OBS error' : 'counts only (allocation is not global)',
      ...(curves ? { curves } : {}),
    };
    return {
      scores,
      info,
      ...(curves ? { curves: new Map(curves.map((c) => [c.tensor, c])) } : {}),
      reconstruct: ({ allocation, kept, dense }) => {
        const keep = (l: (typeof layers)[number]): KeepRule => {
          if (allocation.kind === 'nm') return { kind: 'nm', n: allocation.n, m: allocation.m };
          const prune = ctx.graph.params.get(l.param)!.tensor.numel - kept.get(l.param)!;
          return allocation.kind === 'rowwise' ? { kind: 'rowwise', prune } : { kind: 'count', prune };
        };
        const r = reconstructSweep(ctx.graph, dense, ctx.batches, layers, {
          target,
          blockSize,
          damping,
          keep,
          activations,
          ...(ctx.onProgress ? { onProgress: ctx.onProgress } : {}),
        });
        return {
          masks: r.masks,
          info: { layers: r.records, reverted: r.records.reduce((a, x) => a + x.reverted, 0), timings: r.timings },
        };
      },
    };
  },
};
