/**
 * Cross-task alignment of curvature (the paper's explanation of P1/P2: pre-training leaves curvature that is
 * shared across tasks). Three views, each 1 for a task compared with itself:
 *   - cosine and Spearman rank correlation of diagonal-curvature vectors (any estimator);
 *   - overlap of top-k eigenvector subspaces: mean cos² of the principal angles = ‖U₁ᵀU₂‖²_F / k
 *     (1 for the same subspace, 0 for orthogonal ones, ≈ k/dim for random ones);
 *   - IoU of the masks each task's data produces at one sparsity.
 */
import { linalg, noGrad, scope, ShapeError, type Tensor } from '../engine/index.js';

function check1d(a: Tensor, b: Tensor, where: string): void {
  if (a.numel !== b.numel)
    throw new ShapeError(`${where}: vectors differ in length (${a.numel} vs ${b.numel})`, {
      fix: 'compare curvature of the same parameters (same model, same parameter set)',
    });
}

/** cos(a, b) = aᵀb / (‖a‖‖b‖), in float64. NaN when either vector is zero. */
export function cosine(a: Tensor, b: Tensor): number {
  check1d(a, b, 'cosine');
  return noGrad(() =>
    scope(() => {
      const x = a.reshape([-1]).to('float64');
      const y = b.reshape([-1]).to('float64');
      return x.dot(y).item() / (x.norm().item() * y.norm().item());
    }),
  );
}

/** Ranks 1..n with ties given their average rank (as scipy.stats.rankdata). */
export function ranks(values: ArrayLike<number>): Float64Array {
  const n = values.length;
  const idx = new Int32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  const v = Float64Array.from(values as ArrayLike<number>);
  idx.sort((i, j) => v[i]! - v[j]!);
  const r = new Float64Array(n);
  for (let s = 0; s < n;) {
    let e = s;
    while (e + 1 < n && v[idx[e + 1]!] === v[idx[s]!]) e++;
    const avg = (s + e) / 2 + 1;
    for (let k = s; k <= e; k++) r[idx[k]!] = avg;
    s = e + 1;
  }
  return r;
}

/** Spearman's ρ: the Pearson correlation of the (tie-averaged) ranks. */
export function spearman(a: Tensor, b: Tensor): number {
  check1d(a, b, 'spearman');
  return pearson(
    ranks(noGrad(() => a.reshape([-1]).to('float64').data<'float64'>())),
    ranks(noGrad(() => b.reshape([-1]).to('float64').data<'float64'>())),
  );
}

export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i]!;
    my += y[i]!;
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i]! - mx;
    const dy = y[i]! - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxy / Math.sqrt(sxx * syy);
}

/**
 * Mean cos² of the principal angles between span(U₁) and span(U₂), U given as `[k, dim]` rows. Rows are
 * orthonormalised first (QR), so nearly-parallel Ritz vectors do not inflate the overlap.
 */
export function subspaceOverlap(u1: Tensor, u2: Tensor): number {
  if (u1.ndim !== 2 || u2.ndim !== 2 || u1.shape[1] !== u2.shape[1])
    throw new ShapeError(
      `subspaceOverlap: expected [k, dim] row bases of the same dim, got [${u1.shape.join(', ')}] and [${u2.shape.join(', ')}]`,
    );
  return noGrad(() =>
    scope(() => {
      const q1 = linalg.qr(u1.to('float64').t()).q;
      const q2 = linalg.qr(u2.to('float64').t()).q;
      const k = Math.min(q1.shape[1]!, q2.shape[1]!);
      return q1.t().matmul(q2).square().sum().item() / k;
    }),
  );
}

/** |A ∩ B| / |A ∪ B| of two 0/1 masks given as maps name → tensor (over the names both hold). 1 when both are empty. */
export function maskIoU(a: ReadonlyMap<string, Tensor>, b: ReadonlyMap<string, Tensor>): number {
  let inter = 0;
  let union = 0;
  noGrad(() => {
    for (const [name, ma] of a) {
      const mb = b.get(name);
      if (!mb) throw new ShapeError(`maskIoU: the second mask has no tensor '${name}'`, { context: { param: name } });
      if (ma.numel !== mb.numel)
        throw new ShapeError(`maskIoU: '${name}' has ${ma.numel} entries in one mask and ${mb.numel} in the other`, {
          context: { param: name },
        });
      scope(() => {
        const x = ma.ne(0);
        const y = mb.ne(0);
        inter += x.logicalAnd(y).sum().item();
        union += x.logicalOr(y).sum().item();
      });
    }
  });
  return union === 0 ? 1 : inter / union;
}
