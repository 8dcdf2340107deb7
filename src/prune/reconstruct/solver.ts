/**
 * The layer solver of the reconstruction pruners (SparseGPT, Frantar & Alistarh 2023, with the OBS update of each
 * block solved jointly): given a layer's rows W [G, R, d] (G groups of R rows sharing one input covariance) and the
 * covariance H = Σ X Xᵀ [G, d, d] of the inputs those rows multiply, choose which weights to remove and update the
 * others so the layer's output W X changes as little as possible, ‖(W − Ŵ) X‖².
 *
 * Columns are taken in blocks of B, left to right. R is the set of columns not yet frozen (the current block and
 * every later one) and Hr = ((H + λI)_RR)⁻¹ its inverse. For the block:
 * 1. the OBS saliency of weight j alone, w_j² / [Hr]_jj, ranks the block's weights and the keep rule picks the
 *    pruned set P (per row: P_r);
 * 2. every row gets the joint OBS update for its P_r over all of R, u = ([Hr]_PP)⁻¹ w_P, w_R ← w_R − u Hr_P,R,
 *    the exact minimiser of the error with the earlier blocks frozen (SparseGPT instead updates column by column,
 *    each pruned column moving only the columns after it);
 * 3. the block is frozen: Hr ← its Schur complement on the remaining columns.
 * With one block (B ≥ d) this is the exact least-squares reconstruction on the kept support (OBC for that mask).
 * A row whose result is worse than masking alone (possible across frozen blocks) falls back to masking alone.
 *
 * Damping: λ = damping · mean diag H per group. Columns whose input is always 0 (diag H = 0) have no effect on the
 * output: their weights are set to 0 and pruned first. Weights pruned by an earlier round (`pruned`) rank below every
 * other weight of their block and each block's count covers them. Everything runs in float64.
 */
import { arange, cat, eye, linalg, noGrad, ones, scope, tensor, zeros, type Tensor } from '../../engine/index.js';
import { PruneError } from '../errors.js';

/** Which weights a layer keeps: a count over the layer, the same count in every row, or N in every M columns. */
export type KeepRule =
  { kind: 'count'; prune: number } | { kind: 'rowwise'; prune: number } | { kind: 'nm'; n: number; m: number };

export interface SolveOptions {
  /** Columns per block (the mask is chosen inside each block). */
  blockSize: number;
  /** Relative damping: λ = damping · mean diag H. */
  damping: number;
  keep: KeepRule;
  /** What "masking alone" keeps (default: W): a row worse than `base ⊙ mask` falls back to it. */
  base?: Tensor;
  /**
   * 0/1 [G, R, d], 1 where a weight is already pruned (an earlier round of an iterative schedule): it is pruned again,
   * first in its block, so a pruned weight never comes back. The keep rule's counts must cover these weights.
   */
  pruned?: Tensor;
}

export interface SolveResult {
  /** Updated rows [G, R, d], exactly 0 where pruned. */
  weights: Tensor;
  /** 0/1 [G, R, d]. */
  mask: Tensor;
  /** λ per group. */
  lambda: number[];
  /** Rows that fell back to masking alone. */
  reverted: number;
  /** Σ over rows of (w − W) H (w − W)ᵀ for masking alone and for the result (the layer's squared output error). */
  error: { masked: number; reconstructed: number };
}

/** Splits `total` into integer parts proportional to `widths` (largest remainders first), each at most its capacity. */
function spread(total: number, widths: readonly number[], capacity: readonly number[]): number[] {
  const sum = widths.reduce((a, b) => a + b, 0);
  const want = widths.map((w) => (total * w) / sum);
  const out = want.map((x, i) => Math.min(capacity[i]!, Math.floor(x)));
  let left = total - out.reduce((a, b) => a + b, 0);
  const order = want.map((x, i) => [x - Math.floor(x), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (let pass = 0; left > 0 && pass < 2; pass++)
    for (const [, i] of order) {
      if (left === 0) break;
      if (out[i]! < capacity[i]!) {
        out[i]!++;
        left--;
      }
    }
  if (left > 0) throw new PruneError(`cannot prune ${total} weights in blocks of capacity ${capacity.join(', ')}`);
  return out;
}

/** Ranks along the last axis (0 = smallest saliency; ties: earlier column first). */
function ranks(sal: Tensor): Tensor {
  const idx = sal.sort(-1, false, true).indices;
  return zeros(sal.shape, { dtype: 'int64' }).scatter(
    -1,
    idx,
    arange(0, sal.shape[sal.ndim - 1]!, 1, { dtype: 'int64' })
      .expand(sal.shape)
      .contiguous(),
  );
}

/** 1 where a weight of the block is pruned, [G, R, Bw]. */
function chooseBlock(sal: Tensor, keep: KeepRule, pruneHere: number | readonly number[], m: number): Tensor {
  const [G, R, Bw] = sal.shape as [number, number, number];
  switch (keep.kind) {
    case 'count': {
      const k = pruneHere as number;
      const flat = zeros([G * R * Bw], { dtype: 'float64' });
      const out = k > 0 ? flat.scatter(0, sal.reshape([-1]).sort(0, false, true).indices.narrow(0, 0, k), 1) : flat;
      return out.reshape([G, R, Bw]);
    }
    case 'rowwise': {
      const kt = tensor(Float64Array.from(pruneHere as readonly number[]), [G, R, 1]);
      return ranks(sal).to('float64').lt(kt).to('float64');
    }
    case 'nm': {
      // Groups of M consecutive columns (the block starts at a multiple of M); a shorter tail keeps min(N, its width).
      const parts: Tensor[] = [];
      for (let c = 0; c < Bw; c += m) {
        const w = Math.min(m, Bw - c);
        parts.push(
          ranks(sal.narrow(2, c, w))
            .lt(Math.max(0, w - keep.n))
            .to('float64'),
        );
      }
      return cat(parts, 2);
    }
  }
}

export function solveLayer(W: Tensor, H: Tensor, o: SolveOptions): SolveResult {
  return scope(() =>
    noGrad(() => {
      if (
        W.ndim !== 3 ||
        H.ndim !== 3 ||
        H.shape[0] !== W.shape[0] ||
        H.shape[1] !== W.shape[2] ||
        H.shape[2] !== W.shape[2]
      )
        throw new PruneError(
          `solveLayer: rows must be [G, R, d] and H [G, d, d], got [${W.shape.join(', ')}] and [${H.shape.join(', ')}]`,
        );
      if (!(Number.isInteger(o.blockSize) && o.blockSize >= 1))
        throw new PruneError(`block size must be a positive integer, got ${o.blockSize}`, {
          fix: 'e.g. --block-size 32',
        });
      if (!(o.damping >= 0 && Number.isFinite(o.damping)))
        throw new PruneError(`damping must be >= 0, got ${o.damping}`, { fix: 'e.g. --damping 0.01' });
      const [G, R, d] = W.shape as [number, number, number];
      const m = o.keep.kind === 'nm' ? o.keep.m : 1;
      if (
        o.keep.kind === 'nm' &&
        !(Number.isInteger(o.keep.n) && Number.isInteger(o.keep.m) && o.keep.n >= 0 && o.keep.n < o.keep.m)
      )
        throw new PruneError(`N:M needs integers 0 <= N < M, got ${o.keep.n}:${o.keep.m}`, { fix: 'e.g. 2:4' });
      // N:M groups must not straddle blocks.
      const B = o.keep.kind === 'nm' ? Math.max(m, Math.floor(o.blockSize / m) * m) : o.blockSize;
      const target = W.to('float64');
      const h = H.to('float64');
      const diagH = h.diagonal(0, 1, 2);
      const dead = diagH.eq(0).to('float64');
      const lambda = diagH.mean([1]).mul(o.damping).toArray() as number[];
      // A group with λ = 0 (no damping asked, or every input 0) gets a tiny one so H + λI stays invertible.
      const lamT = tensor(
        Float64Array.from(lambda, (l) => (l > 0 ? l : 1e-12)),
        [G],
      );
      const I = eye(d, { dtype: 'float64' }).unsqueeze(0);
      const hd = h.add(I.mul(dead.unsqueeze(2))).add(I.mul(lamT.reshape([G, 1, 1])));
      let w = target.mul(dead.neg().add(1).unsqueeze(1));
      // H + λI is symmetric positive definite: its inverse from the Cholesky factor.
      let hr = linalg.choleskyInverse(linalg.cholesky(hd));
      const blocks: number[] = [];
      for (let i = 0; i < d; i += B) blocks.push(Math.min(B, d - i));
      const caps = blocks.map((b) => G * R * b);
      const starts = blocks.map((_, b) => blocks.slice(0, b).reduce((a, x) => a + x, 0));
      const pruned = o.pruned ? o.pruned.to('float64').reshape([G, R, d]) : null;
      // Already-pruned weights per block ([block] for count, [block][row] for rowwise).
      const frozen = pruned
        ? blocks.map((bw, b) => pruned.narrow(2, starts[b]!, bw).sum([2]).reshape([-1]).toArray() as number[])
        : null;
      const tooFew = (asked: number, already: number, where: string) =>
        new PruneError(`${where} must prune ${asked} weights but ${already} are already pruned by an earlier round`, {
          fix: 'use one allocation for every round (the kept count of a layer or row must not grow between rounds)',
        });
      let pruneCounts: number[] | null = null;
      if (o.keep.kind === 'count') {
        const fb = frozen?.map((f) => f.reduce((a, x) => a + x, 0)) ?? blocks.map(() => 0);
        const already = fb.reduce((a, x) => a + x, 0);
        if (already > o.keep.prune) throw tooFew(o.keep.prune, already, 'the layer');
        const more = spread(
          o.keep.prune - already,
          blocks.map((b, i) => b * G * R - fb[i]!),
          caps.map((c, i) => c - fb[i]!),
        );
        pruneCounts = more.map((k, i) => k + fb[i]!);
      }
      // rowwise: each row prunes ⌊P / rows⌋ or one more (largest remainders), spread over the blocks by width.
      let rowBlock: number[][] | null = null;
      if (o.keep.kind === 'rowwise') {
        const perRow = spread(o.keep.prune, new Array<number>(G * R).fill(1), new Array<number>(G * R).fill(d));
        if (frozen) {
          rowBlock = blocks.map(() => new Array<number>(G * R).fill(0));
          perRow.forEach((k, r) => {
            const f = blocks.map((_, b) => frozen[b]![r]!);
            const already = f.reduce((a, x) => a + x, 0);
            if (already > k) throw tooFew(k, already, `row ${r}`);
            const more = spread(
              k - already,
              blocks.map((bw, b) => bw - f[b]!),
              blocks.map((bw, b) => bw - f[b]!),
            );
            blocks.forEach((_, b) => {
              rowBlock![b]![r] = more[b]! + f[b]!;
            });
          });
        } else {
          const cache = new Map<number, number[]>();
          const split = (k: number) => cache.get(k) ?? cache.set(k, spread(k, blocks, blocks)).get(k)!;
          rowBlock = blocks.map((_, b) => perRow.map((k) => split(k)[b]!));
        }
      }
      const masks: Tensor[] = [];
      let col = 0;
      blocks.forEach((bw, b) => {
        const rest = d - col;
        const next = scope(() => {
          const wb = w.narrow(2, col, bw);
          const hdiag = hr.diagonal(0, 1, 2).narrow(1, 0, bw).unsqueeze(1);
          let sal = wb.square().div(hdiag);
          // Already-pruned weights first (saliencies are >= 0 otherwise).
          if (pruned) {
            const pb = pruned.narrow(2, col, bw);
            sal = sal.mul(pb.neg().add(1)).sub(pb);
          }
          const pr = chooseBlock(sal, o.keep, pruneCounts ? pruneCounts[b]! : rowBlock ? rowBlock[b]! : 0, m);
          // Joint OBS update of every row, in chunks of rows so [rows, Bw, Bw] stays small.
          const hbb = hr.narrow(1, 0, bw).narrow(2, 0, bw).unsqueeze(1);
          const hbr = hr.narrow(1, 0, bw);
          const eyeB = eye(bw, { dtype: 'float64' });
          const step = Math.max(1, Math.floor(8_000_000 / (G * bw * bw)));
          const deltas: Tensor[] = [];
          for (let r0 = 0; r0 < R; r0 += step)
            deltas.push(
              scope(() => {
                const rc = Math.min(step, R - r0);
                const p = pr.narrow(1, r0, rc);
                const kp = p.neg().add(1);
                const A = hbb
                  .mul(p.unsqueeze(3))
                  .mul(p.unsqueeze(2))
                  .add(eyeB.mul(kp.unsqueeze(3)));
                const u = linalg.solve(A, p.mul(wb.narrow(1, r0, rc)).unsqueeze(3)).squeeze(3);
                return u.matmul(hbr);
              }),
            );
          const delta = deltas.length === 1 ? deltas[0]! : cat(deltas, 1);
          const wr = w.narrow(2, col, rest).sub(delta);
          const keepMask = cat([pr.neg().add(1), ones([G, R, rest - bw], { dtype: 'float64' })], 2);
          const nw = col === 0 ? wr.mul(keepMask) : cat([w.narrow(2, 0, col), wr.mul(keepMask)], 2);
          // Freeze the block: the inverse on the remaining columns is the Schur complement.
          let nhr: Tensor | null = null;
          if (rest > bw) {
            const hff = hr.narrow(1, 0, bw).narrow(2, 0, bw);
            const hfr = hr.narrow(1, 0, bw).narrow(2, bw, rest - bw);
            nhr = hr
              .narrow(1, bw, rest - bw)
              .narrow(2, bw, rest - bw)
              .sub(hfr.transpose(1, 2).matmul(linalg.solve(hff, hfr)))
              .contiguous();
          }
          return { nw: nw.contiguous(), nhr, pr };
        });
        w.dispose();
        hr.dispose();
        w = next.nw;
        if (next.nhr) hr = next.nhr;
        masks.push(next.pr);
        col += bw;
      });
      hr.dispose();
      const mask = cat(masks, 2).neg().add(1);
      // Squared output error per row, (w − W) H (w − W)ᵀ, for the result and for masking alone.
      const rowError = (x: Tensor) => {
        const dlt = x.sub(target);
        return dlt.matmul(h).mul(dlt).sum([2]);
      };
      const base = (o.base ? o.base.to('float64') : target).mul(mask);
      const eRec = rowError(w);
      const eMask = rowError(base);
      const worse = eRec
        .gt(eMask.mul(1 + 1e-9).add(1e-300))
        .to('float64')
        .unsqueeze(2);
      const reverted = worse.sum().item();
      const weights = w.mul(worse.neg().add(1)).add(base.mul(worse));
      const rec = eRec
        .mul(worse.squeeze(2).neg().add(1))
        .add(eMask.mul(worse.squeeze(2)))
        .sum()
        .item();
      return { weights, mask, lambda, reverted, error: { masked: eMask.sum().item(), reconstructed: rec } };
    }),
  );
}
