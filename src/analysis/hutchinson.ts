/**
 * Hutchinson's estimators (Hutchinson 1990; Bekas, Kokiopoulou & Saad 2007) over any self-adjoint operator.
 *
 * Trace: for Rademacher v (E[v vᵀ] = I), E[vᵀ A v] = tr(A E[v vᵀ]) = tr(A), so the mean of n samples is
 * unbiased and its standard error is the sample standard deviation over √n.
 * Diagonal: E[v ⊙ A v]ᵢ = Σⱼ Aᵢⱼ E[vᵢ vⱼ] = Aᵢᵢ.
 */
import { noGrad, scope, zeros, type Tensor } from '../engine/index.js';
import type { LinearOperator } from './operator.js';
import { checkCount, checkSeed, mulberry32, rademacher } from './random.js';

export interface ScalarEstimate {
  estimate: number;
  /** Standard error of the estimate (NaN with a single sample). */
  stderr: number;
  samples: number[];
}

export interface HutchinsonOptions {
  probes: number;
  seed: number;
  /** Called after each probe (progress bars). */
  onProbe?: (done: number, total: number) => void;
}

export function meanStderr(samples: readonly number[]): { estimate: number; stderr: number } {
  const n = samples.length;
  const mean = samples.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { estimate: mean, stderr: Number.NaN };
  const v = samples.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1);
  return { estimate: mean, stderr: Math.sqrt(v / n) };
}

/** tr(A) ≈ mean of vᵀ A v over `probes` Rademacher vectors drawn from `seed`. */
export function hutchinsonTrace(op: LinearOperator, o: HutchinsonOptions): ScalarEstimate {
  checkCount(o.probes, 'probes', 'hutchinsonTrace');
  checkSeed(o.seed, 'hutchinsonTrace');
  const rand = mulberry32(o.seed);
  const samples: number[] = [];
  for (let i = 0; i < o.probes; i++) {
    samples.push(scope(() => {
      const v = rademacher(op.dim, rand, op.dtype);
      return noGrad(() => v.dot(op.matvec(v)).item());
    }));
    o.onProbe?.(i + 1, o.probes);
  }
  return { ...meanStderr(samples), samples };
}

export interface DiagonalEstimate {
  /** `[dim]` estimate of diag(A); owned by the caller. */
  estimate: Tensor;
  /** `[dim]` per-entry standard error (zeros with a single probe). */
  stderr: Tensor;
  samples: number;
}

/** diag(A) ≈ mean of v ⊙ A v over `probes` Rademacher vectors. */
export function hutchinsonDiagonal(op: LinearOperator, o: HutchinsonOptions): DiagonalEstimate {
  checkCount(o.probes, 'probes', 'hutchinsonDiagonal');
  checkSeed(o.seed, 'hutchinsonDiagonal');
  const rand = mulberry32(o.seed);
  const sum = zeros([op.dim], { dtype: op.dtype });
  const sumSq = zeros([op.dim], { dtype: op.dtype });
  noGrad(() => {
    for (let i = 0; i < o.probes; i++) {
      scope(() => {
        const v = rademacher(op.dim, rand, op.dtype);
        const s = v.mul(op.matvec(v));
        sum.add_(s);
        sumSq.addcmul_(s, s);
      });
      o.onProbe?.(i + 1, o.probes);
    }
  });
  const n = o.probes;
  const out = noGrad(() => scope(() => {
    const mean = sum.div(n);
    const stderr = n < 2 ? zeros([op.dim], { dtype: op.dtype }) : sumSq.sub(mean.square().mul(n)).div(n - 1).clamp(0, null).div(n).sqrt();
    return { estimate: mean, stderr };
  }));
  sum.dispose();
  sumSq.dispose();
  return { ...out, samples: n };
}
