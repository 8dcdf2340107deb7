/**
 * Hutchinson's estimators (Hutchinson 1990; Bekas, Kokiopoulou & Saad 2007) over any self-adjoint operator.
 *
 * Trace: for Rademacher v (E[v vᵀ] = I), E[vᵀ A v] = tr(A E[v vᵀ]) = tr(A), so the mean of n samples is
 * unbiased and its standard error is the sample standard deviation over √n.
 * Diagonal: E[v ⊙ A v]ᵢ = Σⱼ Aᵢⱼ E[vᵢ vⱼ] = Aᵢᵢ.
 */
import { noGrad, scope, ShapeError, zeros, type Tensor } from '../engine/index.js';
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

export interface DiagonalEstimate {
  /** `[dim]` estimate of diag(A); owned by the caller. */
  estimate: Tensor;
  /** `[dim]` per-entry standard error (zeros with a single probe). */
  stderr: Tensor;
  samples: number;
}

export interface HutchinsonResult {
  diagonal: DiagonalEstimate;
  /** tr(A) from the same probes (vᵀAv = Σ v ⊙ Av). */
  trace: ScalarEstimate;
  /** tr of each diagonal block [offset, offset + size) from the same probes: E[v_bᵀ (Av)_b] = tr(A_bb). */
  blockTraces: ScalarEstimate[];
  /** Σⱼ wⱼ Aⱼⱼ = tr(diag(w) A) from the same probes (E[vᵀ diag(w) A v]); only when `weights` is given. */
  weightedTrace?: ScalarEstimate;
}

/**
 * One pass of Rademacher probes giving diag(A), tr(A) and the traces of diagonal blocks together (each probe
 * costs one matvec; the three estimates share it). Same seed, same probes as `hutchinsonTrace`.
 */
export function hutchinson(
  op: LinearOperator,
  o: HutchinsonOptions & { blocks?: readonly { offset: number; size: number }[]; weights?: Tensor },
): HutchinsonResult {
  checkCount(o.probes, 'probes', 'hutchinson');
  checkSeed(o.seed, 'hutchinson');
  const rand = mulberry32(o.seed);
  const blocks = o.blocks ?? [];
  const sum = zeros([op.dim], { dtype: op.dtype });
  const sumSq = zeros([op.dim], { dtype: op.dtype });
  const traces: number[] = [];
  const blockSamples: number[][] = blocks.map(() => []);
  const weighted: number[] = [];
  if (o.weights && o.weights.numel !== op.dim)
    throw new ShapeError(`hutchinson: weights have ${o.weights.numel} entries, the operator's dimension is ${op.dim}`, {
      fix: 'pass one weight per entry of the flat parameter vector',
    });
  const w64 = o.weights ? noGrad(() => scope(() => o.weights!.reshape([-1]).to('float64').contiguous())) : null;
  try {
    inSession(op, () =>
      noGrad(() => {
        for (let i = 0; i < o.probes; i++) {
          scope(() => {
            const v = rademacher(op.dim, rand, op.dtype);
            const s = v.mul(op.matvec(v));
            sum.add_(s);
            sumSq.addcmul_(s, s);
            // Sums in float64: a float32 sum over millions of entries loses digits.
            const s64 = s.to('float64');
            traces.push(s64.sum().item());
            blocks.forEach((b, k) => blockSamples[k]!.push(s64.narrow(0, b.offset, b.size).sum().item()));
            if (w64) weighted.push(s64.dot(w64).item());
          });
          o.onProbe?.(i + 1, o.probes);
        }
      }),
    );
  } catch (e) {
    sum.dispose();
    sumSq.dispose();
    throw e;
  } finally {
    w64?.dispose();
  }
  const n = o.probes;
  const diag = noGrad(() =>
    scope(() => {
      const mean = sum.div(n);
      const stderr =
        n < 2
          ? zeros([op.dim], { dtype: op.dtype })
          : sumSq
              .sub(mean.square().mul(n))
              .div(n - 1)
              .clamp(0, null)
              .div(n)
              .sqrt();
      return { estimate: mean, stderr };
    }),
  );
  sum.dispose();
  sumSq.dispose();
  return {
    diagonal: { ...diag, samples: n },
    trace: { ...meanStderr(traces), samples: traces },
    blockTraces: blockSamples.map((xs) => ({ ...meanStderr(xs), samples: xs })),
    ...(w64 ? { weightedTrace: { ...meanStderr(weighted), samples: weighted } } : {}),
  };
}

/** diag(A) ≈ mean of v ⊙ A v over `probes` Rademacher vectors. */
export function hutchinsonDiagonal(op: LinearOperator, o: HutchinsonOptions): DiagonalEstimate {
  return hutchinson(op, o).diagonal;
}
