/**
 * Block curvature for OBS. Each weight row (a linear row / one conv filter, flattened) is cut into blocks of
 * `blockSize` consecutive weights (the last one zero-padded; padding is decoupled: its G column is 0). Per block
 *   H_b = G_bᵀ G_b / N + λ I,
 * with G_b the per-sample gradients (fisher: one row per image) or GGN factors (ggn: one row per image and
 * output column of √H) of the block's weights. λ = damping × mean diag(G_bᵀG_b/N) over the tensor (relative, as
 * OBC/SparseGPT's percdamp), recorded per tensor.
 *
 * Memory: one data pass keeps, per tensor, min(M, B) numbers per weight (M = factor rows so far): the rows
 * themselves while M ≤ B (then H_b⁻¹ comes from Woodbury, an M×M solve), the B×B Gram once M > B. Inverses are
 * then formed tensor by tensor and can be dropped as soon as the caller has used them.
 */
import { cat, eye, keep, linalg, noGrad, scope, zeros, type Tensor } from '../../engine/index.js';
import type { Graph } from '../../graph/index.js';
import { checkCalibration, checkMode, countImages } from '../calib.js';
import { PruneError } from '../errors.js';
import type { CalibBatch } from '../loss.js';
import { factorPass, findSites } from '../per-sample.js';
import { targetParams, type EstimatorOptions } from './types.js';

export interface BlockOptions extends EstimatorOptions {
  /** Which factors build H_b: per-sample gradients or exact GGN factors. Default 'fisher'. */
  curvature?: 'fisher' | 'ggn';
  /** Weights per block (default 64). */
  blockSize?: number;
  /** Relative damping (default 0.01). */
  damping?: number;
}

/** One tensor's blocks: K = rows × blocks-per-row, each B wide. */
export interface BlockStats {
  readonly param: string;
  readonly shape: readonly number[];
  readonly rows: number;
  readonly cols: number;
  readonly blockSize: number;
  /** Either the factor rows [K, M, B] (M ≤ B) or the Gram Σ GᵀG [K, B, B]. */
  factors: Tensor | null;
  gram: Tensor | null;
  readonly images: number;
}

export function checkBlockOptions(o: BlockOptions): {
  blockSize: number;
  damping: number;
  curvature: 'fisher' | 'ggn';
} {
  const blockSize = o.blockSize ?? 64;
  const damping = o.damping ?? 0.01;
  if (!Number.isInteger(blockSize) || blockSize < 1)
    throw new PruneError(`blockSize must be a positive integer, got ${blockSize}`, {
      context: { blockSize },
      fix: 'use e.g. --block-size 64',
    });
  if (!(damping > 0 && Number.isFinite(damping)))
    throw new PruneError(`damping must be a positive number, got ${damping}`, {
      context: { damping },
      fix: 'use e.g. --damping 0.01',
    });
  return { blockSize, damping, curvature: o.curvature ?? 'fisher' };
}

/** [n, out, ...rest] → [out·nb, n, B] with zero padding of each row to nb·B. */
function toBlocks(t: Tensor, rows: number, cols: number, B: number): Tensor {
  return scope(() => {
    const n = t.shape[0]!;
    const nb = Math.ceil(cols / B);
    let x = t.reshape([n, rows, cols]);
    if (nb * B !== cols) x = cat([x, zeros([n, rows, nb * B - cols], { dtype: x.dtype, device: x.device })], 2);
    return x
      .reshape([n, rows * nb, B])
      .permute([1, 0, 2])
      .contiguous();
  });
}

/** One pass over the calibration data; returns each tensor's block statistics (the caller disposes them). */
export function blockStats(g: Graph, batches: readonly CalibBatch[], o: BlockOptions): Map<string, BlockStats> {
  const { blockSize: B, curvature } = checkBlockOptions(o);
  const mode = o.mode ?? 'eval-bn';
  checkMode(g, mode, { allowTrainMode: o.allowTrainMode, what: 'block-hessian', perSample: true });
  checkCalibration(batches);
  const params = targetParams(g, o);
  const sites = findSites(g, params, 'block-hessian');
  const images = countImages(batches);
  const stats = new Map<string, BlockStats>(
    params.map((p) => {
      const shape = g.params.get(p)!.tensor.shape;
      const rows = shape[0]!;
      return [
        p,
        {
          param: p,
          shape,
          rows,
          cols: shape.slice(1).reduce((a, b) => a * b, 1),
          blockSize: B,
          factors: null,
          gram: null,
          images,
        },
      ];
    }),
  );
  batches.forEach((b, i) => {
    factorPass(
      g,
      b,
      sites,
      { loss: o.loss, mode, seeds: curvature === 'fisher' ? 'grad' : 'sqrt-hessian', want: 'perSample' },
      (p, t) =>
        noGrad(() => {
          const s = stats.get(p)!;
          // Tensors kept across batches leave the pass's scope with keep().
          const G = keep(toBlocks(t, s.rows, s.cols, Math.min(B, s.cols)));
          if (s.gram) {
            s.gram.add_(scope(() => G.transpose(1, 2).bmm(G)));
            G.dispose();
            return;
          }
          const f = s.factors ? keep(cat([s.factors, G], 1)) : G;
          if (s.factors) {
            s.factors.dispose();
            G.dispose();
          }
          s.factors = f;
          if (f.shape[1]! > f.shape[2]!) {
            s.gram = keep(f.transpose(1, 2).bmm(f));
            f.dispose();
            s.factors = null;
          }
        }),
    );
    o.onProgress?.(i + 1, batches.length);
  });
  return stats;
}

/**
 * H_b⁻¹ for every block of one tensor, [K, B, B], and the absolute λ used. Gram: Cholesky-free batched inverse;
 * factors: Woodbury H⁻¹ = (1/λ)(I − Gᵀ (NλI + G Gᵀ)⁻¹ G).
 */
export function inverseBlocks(s: BlockStats, relDamping: number): { inv: Tensor; lambda: number } {
  return scope(() =>
    noGrad(() => {
      const N = s.images;
      const B = Math.min(s.blockSize, s.cols);
      const meanDiag = s.gram
        ? s.gram.diagonal(0, 1, 2).mean().item() / N
        : s.factors!.square().sum(1).mean().item() / N;
      const lambda = relDamping * (meanDiag > 0 ? meanDiag : 1);
      const I = eye(B, { dtype: (s.gram ?? s.factors)!.dtype });
      if (s.gram) return { inv: linalg.inv(s.gram.div(N).add(I.mul(lambda))), lambda };
      const G = s.factors!;
      const M = G.shape[1]!;
      const A = G.bmm(G.transpose(1, 2)).add(eye(M, { dtype: G.dtype }).mul(N * lambda));
      const inv = I.sub(G.transpose(1, 2).bmm(linalg.solve(A, G))).div(lambda);
      return { inv, lambda };
    }),
  );
}

/** Frees the statistics of one tensor. */
export function disposeStats(s: BlockStats): void {
  s.factors?.dispose();
  s.gram?.dispose();
  s.factors = null;
  s.gram = null;
}
