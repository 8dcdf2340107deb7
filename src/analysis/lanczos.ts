/**
 * Lanczos on a self-adjoint operator with FULL re-orthogonalisation (every new vector is orthogonalised
 * against all earlier ones, twice: "twice is enough", Parlett), so Ritz values do not repeat as ghost copies
 * the way plain three-term Lanczos does in floating point. The tridiagonal T is diagonalised in float64 by
 * the engine's eigh; Ritz pairs (θ, Q s) approximate the extreme eigenpairs first.
 *
 * Cost: `steps` matvecs and O(steps² · dim) flops; memory: `steps` vectors of `dim`.
 */
import { linalg, noGrad, scope, stack, tensor, TapirError, type Tensor } from '../engine/index.js';
import { inSession, type LinearOperator } from './operator.js';
import { checkCount, checkSeed, mulberry32, rademacher } from './random.js';

export interface LanczosRun {
  /** Diagonal of T (length m). */
  alphas: number[];
  /** Off-diagonal of T (length m − 1), then the last β (the residual norm factor) at index m − 1. */
  betas: number[];
  /** Orthonormal Lanczos vectors q₀…q_{m−1}, each `[dim]`; owned by the caller. */
  basis: Tensor[];
}

export interface LanczosOptions {
  steps: number;
  seed: number;
  /** Keep the Lanczos vectors (needed for Ritz vectors; SLQ does not). Default true. */
  keepBasis?: boolean;
  onStep?: (done: number, total: number) => void;
}

function requireSelfAdjoint(op: LinearOperator, where: string): void {
  if (!op.selfAdjoint)
    throw new TapirError('E_CONFIG', `${where}: the operator is not self-adjoint; Lanczos needs a symmetric matrix`, {
      fix: 'pass a Hessian, GGN or Fisher operator (all symmetric)',
    });
}

/**
 * Runs up to `steps` Lanczos steps from a seeded Rademacher start. Stops early when the Krylov space is
 * invariant (β below 1e-10 · max|T|), so `alphas.length` may be < steps.
 */
export function lanczos(op: LinearOperator, o: LanczosOptions): LanczosRun {
  requireSelfAdjoint(op, 'lanczos');
  checkCount(o.steps, 'steps', 'lanczos');
  checkSeed(o.seed, 'lanczos');
  const m = Math.min(o.steps, op.dim);
  const keepBasis = o.keepBasis ?? true;
  const alphas: number[] = [];
  const betas: number[] = [];
  const basis: Tensor[] = [];
  inSession(op, () =>
    noGrad(() => {
      let q = scope(() => {
        const v = rademacher(op.dim, mulberry32(o.seed), op.dtype);
        return v.div(v.norm().item());
      });
      let scale = 0;
      try {
        for (let j = 0; j < m; j++) {
          basis.push(q);
          const { alpha, beta, next } = scope(() => {
            let w = op.matvec(q);
            const alpha = w.dot(q).item();
            // Two passes of classical Gram-Schmidt against the whole basis.
            const Q = basis.length === 1 ? basis[0]!.reshape([1, -1]) : stack(basis, 0);
            for (let pass = 0; pass < 2; pass++) w = w.sub(Q.t().matmul(Q.matmul(w)));
            const beta = w.norm().item();
            return { alpha, beta, next: beta > 0 ? w.div(beta) : w };
          });
          alphas.push(alpha);
          betas.push(beta);
          scale = Math.max(scale, Math.abs(alpha), beta);
          o.onStep?.(j + 1, m);
          if (!Number.isFinite(alpha) || !Number.isFinite(beta))
            throw new TapirError(
              'E_NUMERIC',
              `lanczos: step ${j} produced a non-finite value (α=${alpha}, β=${beta})`,
              { fix: 'check the model and loss for NaN/inf (e.g. the operator on a float16 model)' },
            );
          if (beta <= 1e-10 * scale || j === m - 1) {
            next.dispose();
            break;
          }
          q = next;
        }
      } catch (e) {
        for (const b of basis) b.dispose();
        throw e;
      }
    }),
  );
  if (!keepBasis) for (const b of basis.splice(0)) b.dispose();
  return { alphas, betas, basis };
}

/** Eigen-decomposition of the tridiagonal T in float64: ascending values, eigenvectors as rows of `s` (s[i] = i-th vector). */
export function tridiagonalEigen(
  alphas: readonly number[],
  betas: readonly number[],
): { values: number[]; vectors: number[][] } {
  const m = alphas.length;
  return scope(() => {
    const a = new Float64Array(m * m);
    for (let i = 0; i < m; i++) {
      a[i * m + i] = alphas[i]!;
      if (i + 1 < m) a[i * m + i + 1] = a[(i + 1) * m + i] = betas[i]!;
    }
    const { values, vectors } = linalg.eigh(tensor(a, [m, m], { dtype: 'float64' }));
    const vals = values.toArray();
    const cols = vectors.t().contiguous().toArray();
    return { values: vals, vectors: vals.map((_, i) => cols.slice(i * m, (i + 1) * m)) };
  });
}

export interface EigenOptions {
  /** Number of eigenpairs. */
  k: number;
  seed: number;
  /** Lanczos steps (default min(dim, max(2k + 10, 20))). */
  steps?: number;
  /** Which end of the spectrum: algebraically largest (default, as PyHessian) or largest magnitude. */
  which?: 'largest' | 'magnitude';
  onStep?: (done: number, total: number) => void;
}

export interface EigenResult {
  /** Ritz values, in the order `which` asks for. */
  values: number[];
  /** `[k, dim]` unit Ritz vectors (rows); owned by the caller. */
  vectors: Tensor;
  /** ‖A y − θ y‖ bound for each pair (|β_m · s_m|); small means converged. */
  residuals: number[];
  steps: number;
}

/** Top-k eigenpairs of a self-adjoint operator by Lanczos with full re-orthogonalisation. */
export function topEigen(op: LinearOperator, o: EigenOptions): EigenResult {
  checkCount(o.k, 'k', 'topEigen');
  if (o.k > op.dim)
    throw new TapirError('E_CONFIG', `topEigen: k = ${o.k} exceeds the operator dimension ${op.dim}`, {
      fix: `ask for at most ${op.dim} eigenpairs`,
    });
  const steps = Math.min(op.dim, o.steps ?? Math.max(2 * o.k + 10, 20));
  if (steps < o.k)
    throw new TapirError('E_CONFIG', `topEigen: steps (${steps}) must be >= k (${o.k})`, { fix: 'raise steps' });
  const run = lanczos(op, { steps, seed: o.seed, onStep: o.onStep });
  try {
    const m = run.alphas.length;
    const { values, vectors } = tridiagonalEigen(run.alphas, run.betas);
    const order = values.map((_, i) => i);
    if ((o.which ?? 'largest') === 'largest') order.sort((a, b) => values[b]! - values[a]!);
    else order.sort((a, b) => Math.abs(values[b]!) - Math.abs(values[a]!));
    const pick = order.slice(0, Math.min(o.k, m));
    const lastBeta = run.betas[m - 1]!;
    const S = tensor(Float64Array.from(pick.flatMap((i) => vectors[i]!)), [pick.length, m], { dtype: 'float64' });
    const Y = noGrad(() =>
      scope(() => {
        const s = S.to(op.dtype);
        return s.matmul(stack(run.basis, 0));
      }),
    );
    S.dispose();
    return {
      values: pick.map((i) => values[i]!),
      vectors: Y,
      residuals: pick.map((i) => Math.abs(lastBeta * vectors[i]![m - 1]!)),
      steps: m,
    };
  } finally {
    for (const b of run.basis) b.dispose();
  }
}
