/**
 * OBS (Hassibi & Stork 1993) within blocks: removing weight j of block b, with the other weights of the block
 * free to move, costs at least θⱼ² / (2 [H_b⁻¹]ⱼⱼ) under the quadratic model ½ δᵀ H_b δ. With compensation, the
 * survivors of each block receive the joint OBS update for all its pruned weights P:
 *   δ = −H_b⁻¹ E_P (E_Pᵀ H_b⁻¹ E_P)⁻¹ E_Pᵀ θ,
 * the minimiser of the quadratic model subject to δ_P = −θ_P. Blocks and damping: estimators/block.ts.
 */
import { cat, eye, keep, linalg, noGrad, scope, zeros, type Tensor } from '../../engine/index.js';
import type { ParamMap } from '../allocation.js';
import { blockStats, checkBlockOptions, disposeStats, inverseBlocks } from '../estimators/block.js';
import { effective } from './common.js';
import type { Score } from './types.js';

/** [out, ...rest] → [K, B]: rows cut into blocks of B, the last padded with `pad`. */
function blocksOf(t: Tensor, B: number, pad = 0): Tensor {
  return scope(() => {
    const rows = t.shape[0]!;
    const cols = t.numel / rows;
    const nb = Math.ceil(cols / B);
    const x = t.reshape([rows, cols]);
    const full =
      nb * B === cols ? x : cat([x, zeros([rows, nb * B - cols], { dtype: t.dtype, device: t.device }).add(pad)], 1);
    return full.reshape([rows * nb, B]);
  });
}
/** [K, B] → the parameter's shape (padding dropped). */
function unblock(t: Tensor, shape: readonly number[]): Tensor {
  return scope(() => {
    const rows = shape[0]!;
    const cols = shape.slice(1).reduce((a, b) => a * b, 1);
    return t.reshape([rows, -1]).narrow(1, 0, cols).reshape(shape);
  });
}

export const blockHessian: Score = {
  name: 'block-hessian',
  needs: 'block',
  dataFree: false,
  description: 'θⱼ² / (2 [H_b⁻¹]ⱼⱼ) (OBS) with damped Fisher/GGN blocks; optional weight compensation',
  score(ctx) {
    const bo = {
      ...ctx.block,
      loss: ctx.loss,
      seed: ctx.seed,
      mode: ctx.mode,
      allowTrainMode: ctx.allowTrainMode,
      params: ctx.params,
      onProgress: ctx.onProgress,
    };
    const { blockSize, damping, curvature } = checkBlockOptions(bo);
    const stats = blockStats(ctx.graph, ctx.batches, bo);
    const lambdas: Record<string, number> = {};
    const inverses = new Map<string, Tensor>();
    const scores = new Map<string, Tensor>();
    for (const p of ctx.params) {
      const s = stats.get(p)!;
      const B = Math.min(blockSize, s.cols);
      const { inv, lambda } = inverseBlocks(s, damping);
      disposeStats(s);
      lambdas[p] = lambda;
      scores.set(
        p,
        scope(() =>
          noGrad(() => {
            const th = blocksOf(effective(ctx.graph, p), B);
            return unblock(th.square().div(inv.diagonal(0, 1, 2).mul(2)), s.shape);
          }),
        ),
      );
      if (ctx.block?.compensate) inverses.set(p, keep(inv));
      else inv.dispose();
    }
    const info = {
      score: 'block-hessian',
      curvature,
      blockSize,
      relativeDamping: damping,
      damping: lambdas,
      loss: ctx.loss,
      compensate: !!ctx.block?.compensate,
    };
    if (!ctx.block?.compensate) return { scores, info };
    return {
      scores,
      info,
      compensate: (masks: ParamMap) =>
        new Map(
          [...inverses].map(
            ([p, inv]) =>
              [
                p,
                scope(() =>
                  compensateBlocks(effective(ctx.graph, p), masks.get(p)!, inv, Math.min(blockSize, inv.shape[1]!)),
                ),
              ] as const,
          ),
        ),
      dispose: () => {
        for (const t of inverses.values()) t.dispose();
        inverses.clear();
      },
    };
  },
};

/**
 * New weights after the joint OBS update of every block: solve (P H⁻¹ P + (I − P)) u = P θ (u = (H⁻¹_PP)⁻¹ θ_P on
 * the pruned set P, 0 elsewhere), then θ ← (θ − H⁻¹ u) ⊙ mask. Batched over blocks of different |P|.
 */
export function compensateBlocks(theta: Tensor, mask: Tensor, inv: Tensor, B: number): Tensor {
  return scope(() =>
    noGrad(() => {
      const th = blocksOf(theta, B);
      // Padding counts as kept (θ = 0 there), so it never enters P.
      const keep = blocksOf(mask.to(theta.dtype), B, 1);
      const pr = keep.neg().add(1);
      const I = eye(B, { dtype: theta.dtype, device: theta.device }).unsqueeze(0);
      const A = inv
        .mul(pr.unsqueeze(2))
        .mul(pr.unsqueeze(1))
        .add(I.mul(keep.unsqueeze(2)));
      const u = linalg.solve(A, pr.mul(th).unsqueeze(2));
      const next = th.sub(inv.bmm(u).squeeze(2)).mul(keep);
      return unblock(next, theta.shape);
    }),
  );
}
