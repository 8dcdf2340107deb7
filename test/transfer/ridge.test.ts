import { test } from 'node:test';
import assert from 'node:assert/strict';
import { liveTensors, manualSeed, randn, scope, tensor } from '../../src/engine/index.js';
import { disposeHead, featureStats, fitRidgeHead, headAccuracy, headLogits } from '../../src/transfer/ridge.js';
import { fitLinearHead } from '../../src/transfer/head.js';
import { expectClose } from '../helpers/check.js';

/** Reference: plain-JS float64 normal equations with Gaussian elimination (partial pivoting). */
function referenceRidge(F: number[][], y: number[], C: number, alpha: number): { W: number[][]; b: number[] } {
  const n = F.length;
  const d = F[0]!.length;
  const mean = Array.from({ length: d }, (_, j) => F.reduce((s, r) => s + r[j]!, 0) / n);
  const std = Array.from({ length: d }, (_, j) =>
    Math.max(1e-8, Math.sqrt(F.reduce((s, r) => s + (r[j]! - mean[j]!) ** 2, 0) / n)),
  );
  const X = F.map((r) => [...r.map((v, j) => (v - mean[j]!) / std[j]!), 1]);
  const counts = new Array<number>(C).fill(0);
  y.forEach((c) => counts[c]!++);
  const w = y.map((c) => n / (C * counts[c]!));
  const m = d + 1;
  const A = Array.from({ length: m }, (_, i) =>
    Array.from(
      { length: m },
      (_, j) => X.reduce((s, r, k) => s + w[k]! * r[i]! * r[j]!, 0) + (i === j && i < d ? alpha : 0),
    ),
  );
  const B = Array.from({ length: m }, (_, i) =>
    Array.from({ length: C }, (_, c) => X.reduce((s, r, k) => s + w[k]! * r[i]! * (y[k] === c ? 1 : 0), 0)),
  );
  for (let col = 0; col < m; col++) {
    let p = col;
    for (let r = col + 1; r < m; r++) if (Math.abs(A[r]![col]!) > Math.abs(A[p]![col]!)) p = r;
    [A[col], A[p]] = [A[p]!, A[col]!];
    [B[col], B[p]] = [B[p]!, B[col]!];
    for (let r = 0; r < m; r++) {
      if (r === col) continue;
      const f = A[r]![col]! / A[col]![col]!;
      for (let k = 0; k < m; k++) A[r]![k]! -= f * A[col]![k]!;
      for (let k = 0; k < C; k++) B[r]![k]! -= f * B[col]![k]!;
    }
  }
  const theta = B.map((row, i) => row.map((v) => v / A[i]![i]!));
  return { W: Array.from({ length: C }, (_, c) => theta.slice(0, d).map((r) => r[c]!)), b: theta[d]! };
}

test('ridge head equals the float64 normal-equations solution (class-balanced, unshrunk bias)', () =>
  scope(() => {
    manualSeed(3);
    const n = 23,
      d = 5,
      C = 3;
    const F = randn([n, d], { dtype: 'float64' }).mul(3).add(1);
    const labels = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2];
    const y = tensor(labels, null, { dtype: 'int64' });
    const rows = Array.from({ length: n }, (_, i) => F.index(0, i).toArray());
    for (const alpha of [0.1, 2]) {
      const head = fitRidgeHead(F, y, { numClasses: C, alpha });
      const ref = referenceRidge(rows, labels, C, alpha);
      expectClose(head.weight, ref.W.flat(), { rtol: 1e-9, atol: 1e-10 }, `weight (alpha ${alpha})`);
      expectClose(head.bias, ref.b, { rtol: 1e-9, atol: 1e-10 }, `bias (alpha ${alpha})`);
      disposeHead(head);
    }
  }));

test('ridge head separates a separable toy task and is scale-free after standardisation', () =>
  scope(() => {
    manualSeed(5);
    const C = 4,
      per = 30,
      d = 16;
    const centers = randn([C, d], { dtype: 'float64' }).mul(4);
    const labels = Array.from({ length: C * per }, (_, i) => Math.floor(i / per));
    const y = tensor(labels, null, { dtype: 'int64' });
    const F = centers.indexSelect(0, y).add(randn([C * per, d], { dtype: 'float64' }).mul(0.3));
    const head = fitRidgeHead(F, y, { numClasses: C, alpha: 1 });
    assert.equal(headAccuracy(head, F, y), 1);
    // Tiny feature scale (as a random-init network gives, FACTS): same accuracy thanks to standardisation.
    const tiny = F.mul(1e-12);
    const head2 = fitRidgeHead(tiny, y, { numClasses: C, alpha: 1 });
    assert.equal(headAccuracy(head2, tiny, y), 1);
    // A head fitted with given (dense) statistics applies them to new features.
    const stats = featureStats(F);
    const head3 = fitRidgeHead(F, y, { numClasses: C, alpha: 1, stats });
    expectClose(head3.weight, head.weight, { rtol: 1e-12, atol: 1e-12 }, 'own stats = given identical stats');
    for (const h of [head, head2, head3]) disposeHead(h);
  }));

test('ridge head: bad input is a clear error, no leak', () => {
  const before = liveTensors();
  scope(() => {
    const F = randn([6, 3], { dtype: 'float64' });
    assert.throws(
      () => fitRidgeHead(F, tensor([0, 1, 0], null, { dtype: 'int64' }), { numClasses: 2 }),
      /labels must be \[6\]/,
    );
    assert.throws(
      () => fitRidgeHead(F, tensor([1, 1, 1, 1, 1, 1], null, { dtype: 'int64' }), { numClasses: 2 }),
      /at least 2 classes/,
    );
    assert.throws(
      () => fitRidgeHead(F, tensor([0, 1, 0, 1, 0, 1], null, { dtype: 'int64' }), { numClasses: 2, alpha: -1 }),
      /alpha/,
    );
  });
  assert.equal(liveTensors(), before);
});

test('fitLinearHead: the folded head gives the ridge head logits; scale-free floors give the same logits for f and s·f', () =>
  scope(() => {
    manualSeed(3);
    const f = randn([60, 5], { dtype: 'float64' }).abs();
    const labels = Int32Array.from({ length: 60 }, (_, i) => i % 3);
    const y = tensor(
      BigInt64Array.from(labels, (v) => BigInt(v)),
      [60],
    );
    const ridge = fitRidgeHead(f, y, { numClasses: 3, alpha: 2 });
    const fit = fitLinearHead(f, labels, { numClasses: 3, alpha: 2, dtype: 'float64' });
    expectClose(
      f.matmul(fit.head.weight.t()).add(fit.head.bias),
      headLogits(ridge, f).toArray(),
      { rtol: 1e-10, atol: 1e-12 },
      'folded logits',
    );
    assert.equal(fit.images, 60);
    assert.equal(fitLinearHead(f, labels, { numClasses: 3, alpha: 'images' }).alpha, 60);
    disposeHead(ridge);
    // Scale-free: tiny features (a random init's ~1e-12) give the same logits as unit-scale ones; the default absolute
    // floor (1e-8) does not, which is why diagnostics use {relative, absolute: 0}.
    const logits = (x: typeof f, floor?: { relative?: number; absolute?: number }) => {
      const h = fitLinearHead(x, labels, {
        numClasses: 3,
        alpha: 1,
        dtype: 'float64',
        ...(floor ? { floor } : {}),
      }).head;
      return x.matmul(h.weight.t()).add(h.bias).toArray();
    };
    const tiny = f.mul(1e-12);
    expectClose(
      tensor(logits(tiny, { relative: 0.1, absolute: 0 }), [60, 3], { dtype: 'float64' }),
      logits(f, { relative: 0.1, absolute: 0 }),
      { rtol: 1e-8, atol: 1e-10 },
      'scale-free logits',
    );
    const a = logits(tiny);
    const b = logits(f);
    assert.ok(
      a.some((v, i) => Math.abs(v - b[i]!) > 1e-3),
      'the absolute floor is not scale-free',
    );
    // No floor left: constant features are refused, naming the fix.
    assert.throws(
      () =>
        featureStats(tensor(new Array(12).fill(2), [4, 3], { dtype: 'float64' }), {
          relativeFloor: 0.1,
          absoluteFloor: 0,
        }),
      /every feature is constant/,
    );
  }));
