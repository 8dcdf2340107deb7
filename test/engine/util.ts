/**
 * Input builders shared by the engine op tests: seeded float64 leaves, kept away from the points where
 * an op is not differentiable (0 for abs/relu, ≤ 0 for log/sqrt, ties for max), and SPD matrices.
 */
import { eye, manualSeed, randn, setNumThreads, tensor, Tensor } from '../../src/engine/index.js';

// These tensors are tiny: an OpenMP hand-off costs more than the op, and on a busy 2-core machine
// 2 threads made the double-backward file 4× slower (22 s vs 6 s). Every importer runs single-threaded.
setNumThreads(1);

/** A seeded float64 standard-normal leaf that requires grad, optionally transformed first. */
export function leaf(shape: readonly number[], seed = 0, map?: (x: Tensor) => Tensor): Tensor {
  manualSeed(seed);
  const x = randn(shape, { dtype: 'float64' });
  return (map ? map(x) : x).detach().requiresGrad_(true);
}

/** Entries shifted to |x| ≥ `gap` (same sign), so kinks at 0 are never straddled by finite differences. */
export function awayFromZero(shape: readonly number[], seed = 0, gap = 0.2): Tensor {
  return leaf(shape, seed, (x) => x.add(x.sign().mul(gap)));
}

/** Strictly positive entries in [lo, lo + ~3]. */
export function positive(shape: readonly number[], seed = 0, lo = 0.5): Tensor {
  return leaf(shape, seed, (x) => x.abs().add(lo));
}

/** A float64 leaf holding exactly `values` (for hand-computed answers). */
export function f64(values: readonly number[], shape?: readonly number[], requiresGrad = false): Tensor {
  const t = tensor(Float64Array.from(values), shape ?? [values.length]);
  return requiresGrad ? t.requiresGrad_(true) : t;
}

export function int64(values: readonly number[], shape?: readonly number[]): Tensor {
  return tensor(
    BigInt64Array.from(values, (v) => BigInt(v)),
    shape ?? [values.length],
  );
}

export function bool(values: readonly (boolean | number)[], shape?: readonly number[]): Tensor {
  return tensor(
    Uint8Array.from(values, (v) => (v ? 1 : 0)),
    shape ?? [values.length],
    { dtype: 'bool' },
  );
}

/** X Xᵀ + n·I: symmetric positive definite, well conditioned; differentiable in X. */
export function spdOf(x: Tensor): Tensor {
  const n = x.shape[0]!;
  const i = eye(n, { dtype: x.dtype });
  return x.matmul(x.t()).add(i, n);
}

/** (X + Xᵀ)/2. */
export function sym(x: Tensor): Tensor {
  return x.add(x.t()).mul(0.5);
}
