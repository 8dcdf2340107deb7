/**
 * Hutchinson's trace estimator (Hutchinson 1990) over any self-adjoint operator: for Rademacher v (E[v vᵀ] = I),
 * E[vᵀ A v] = tr(A E[v vᵀ]) = tr(A), so the mean of n samples is unbiased and its standard error is the sample
 * standard deviation over √n. The Hessian diagonal (E[v ⊙ Hv] = diag H) has one implementation, src/prune's
 * `hutchinson` estimator; the diagnostics take their traces from its probes (`onSample`).
 */
import { noGrad, scope } from '../engine/index.js';
import { inSession, type LinearOperator } from './operator.js';
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
  inSession(op, () => {
    for (let i = 0; i < o.probes; i++) {
      samples.push(
        scope(() => {
          const v = rademacher(op.dim, rand, op.dtype);
          return noGrad(() => v.dot(op.matvec(v)).item());
        }),
      );
      o.onProbe?.(i + 1, o.probes);
    }
  });
  return { ...meanStderr(samples), samples };
}
