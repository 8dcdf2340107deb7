/**
 * Shared numeric contracts for tests (STYLE §10): `expectClose` reports the worst index and both values;
 * `gradcheck` compares autograd's vector-Jacobian products with float64 central finite differences;
 * `gradgradcheck` does the same for the gradient itself (what every Hessian-vector product relies on).
 */
import assert from 'node:assert/strict';
import { cat, enableGrad, grad, manualSeed, noGrad, randn, scope, tensor, Tensor } from '../../src/engine/index.js';

export interface Tol {
  rtol?: number;
  atol?: number;
}

export function expectClose(
  actual: Tensor | ArrayLike<number> | number,
  expected: Tensor | ArrayLike<number> | number,
  tol: Tol = {},
  what = 'value',
): void {
  const a = toNumbers(actual);
  const e = toNumbers(expected);
  assert.equal(a.length, e.length, `${what}: length ${a.length} vs expected ${e.length}`);
  const rtol = tol.rtol ?? 1e-5;
  const atol = tol.atol ?? 1e-8;
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = e[i]!;
    if (Number.isNaN(x) && Number.isNaN(y)) continue;
    if (x === y) continue;
    const excess = Math.abs(x - y) - (atol + rtol * Math.abs(y));
    if (!(excess <= 0) && (worst < 0 || excess > worstExcess || Number.isNaN(excess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0)
    assert.fail(
      `${what}: not close at index ${worst}: got ${a[worst]}, expected ${e[worst]} (rtol ${rtol}, atol ${atol})`,
    );
}

function toNumbers(v: Tensor | ArrayLike<number> | number): number[] {
  if (typeof v === 'number') return [v];
  if (v instanceof Tensor) return v.toArray();
  return Array.from(v);
}

export type TensorFn = (...xs: Tensor[]) => Tensor;

/** float64 inputs from shapes, seeded; `requiresGrad` on all of them. */
export function inputs(shapes: readonly (readonly number[])[], seed = 0): Tensor[] {
  manualSeed(seed);
  return shapes.map((s) => randn(s, { dtype: 'float64', requiresGrad: true }));
}

/**
 * Checks ∂⟨f(x), r⟩/∂x for a random cotangent r against central differences, for every element of every
 * input in `wrt` (default: all). Inputs must be float64 leaves; they are not modified.
 */
export function gradcheck(
  f: TensorFn,
  xs: readonly Tensor[],
  o: Tol & { eps?: number; wrt?: readonly number[]; seed?: number } = {},
): void {
  scope(() => {
    const wrt = o.wrt ?? xs.map((_, i) => i);
    manualSeed(o.seed ?? 123);
    const out0 = f(...xs);
    const r = randn(out0.shape, { dtype: 'float64' });
    // An output that does not require grad has a zero derivative (e.g. the gradient of a piecewise-linear op).
    const analytic = out0.requiresGrad
      ? grad(
          out0.mul(r).sum(),
          wrt.map((i) => xs[i]!),
          { allowUnused: true },
        )
      : wrt.map(() => null);
    const eps = o.eps ?? 1e-6;
    const base = xs.map((x) => x.detach().data<'float64'>());
    wrt.forEach((i, k) => {
      const numeric = new Float64Array(base[i]!.length);
      for (let j = 0; j < numeric.length; j++) {
        numeric[j] = scope(() => {
          const val = (d: number) => {
            const v = Float64Array.from(base[i]!);
            v[j] = v[j]! + d;
            const args = xs.map((x, m) => (m === i ? tensor(v, x.shape) : x.detach()));
            return noGrad(() =>
              f(...args)
                .mul(r)
                .sum()
                .item(),
            );
          };
          return (val(eps) - val(-eps)) / (2 * eps);
        });
      }
      const a = analytic[k] ?? null;
      expectClose(
        a === null ? new Float64Array(numeric.length) : a,
        numeric,
        { rtol: o.rtol ?? 1e-5, atol: o.atol ?? 1e-6 },
        `gradient of input ${i}`,
      );
    });
  });
}

/**
 * Double backward: checks the gradient of x ↦ ∂⟨f(x), r⟩/∂x (built with createGraph) by `gradcheck`.
 * This is exactly the path a Hessian-vector product takes through an op.
 */
export function gradgradcheck(
  f: TensorFn,
  xs: readonly Tensor[],
  o: Tol & { eps?: number; wrt?: readonly number[] } = {},
): void {
  const wrt = o.wrt ?? xs.map((_, i) => i);
  const r = scope(() => {
    manualSeed(321);
    const out0 = noGrad(() => f(...xs.map((x) => x.detach())));
    return randn(out0.shape, { dtype: 'float64' });
  });
  const g: TensorFn = (...ys) => {
    const leaves = ys.map((y) => (y.requiresGrad ? y : y.detach().requiresGrad_(true)));
    const gs = enableGrad(() =>
      grad(
        f(...leaves)
          .mul(r)
          .sum(),
        wrt.map((i) => leaves[i]!),
        { createGraph: true, allowUnused: true },
      ),
    );
    const flats = gs.filter((gi): gi is Tensor => gi !== null).map((gi) => gi.flatten());
    return flats.length ? cat(flats) : tensor([0], null, { dtype: 'float64' });
  };
  try {
    gradcheck(g, xs, { ...o, wrt });
  } finally {
    r.dispose();
  }
}
