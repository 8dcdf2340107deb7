import { test } from 'node:test';
import assert from 'node:assert/strict';
import { disposeAll, eye, linalg, manualSeed, randn, scope, setNumThreads, tensor } from '../../src/engine/index.js';
import { disposeGraph } from '../../src/graph/index.js';
import { cosine, maskIoU, ranks, spearman, subspaceOverlap } from '../../src/analysis/alignment.js';
import { runDiagnostics } from '../../src/analysis/diagnostics.js';
import { hessianOperator } from '../../src/analysis/hessian.js';
import { lossChange } from '../../src/analysis/loss-change.js';
import { prune } from '../../src/prune/index.js';
import { tinyBatches, tinyNet } from './cases.js';

// Tiny problems: one thread avoids OpenMP spin-waits when the shared cores are busy.
setNumThreads(1);

test('subspace overlap: 1 for the same subspace (any basis), 0 for orthogonal ones, k/dim-ish for random', () =>
  scope(() => {
    const I = eye(6, { dtype: 'float64' });
    const u = I.narrow(0, 0, 3);
    assert.ok(Math.abs(subspaceOverlap(u, u) - 1) < 1e-12);
    // Another basis of the same span: rotate and scale the rows.
    manualSeed(1);
    const mix = randn([3, 3], { dtype: 'float64' });
    assert.ok(Math.abs(subspaceOverlap(u, mix.matmul(u)) - 1) < 1e-10);
    assert.ok(Math.abs(subspaceOverlap(u, I.narrow(0, 3, 3))) < 1e-12);
    // Half-overlapping: span{e0, e1} vs span{e1, e2} → (0 + 1) / 2.
    assert.ok(Math.abs(subspaceOverlap(I.narrow(0, 0, 2), I.narrow(0, 1, 2)) - 0.5) < 1e-12);
    const q1 = linalg.qr(randn([400, 4], { dtype: 'float64' })).q.t();
    const q2 = linalg.qr(randn([400, 4], { dtype: 'float64' })).q.t();
    const r = subspaceOverlap(q1, q2);
    assert.ok(r < 0.06, `random 4-dim subspaces of R^400 overlap ≈ 0.01, got ${r}`);
    assert.throws(() => subspaceOverlap(u, eye(5, { dtype: 'float64' })), /same dim/);
  }));

test('cosine, tie-averaged ranks and Spearman against hand-computed values', () =>
  scope(() => {
    const a = tensor([1, 2, 3, 4], null, { dtype: 'float64' });
    assert.ok(Math.abs(cosine(a, a.mul(3)) - 1) < 1e-15);
    assert.ok(Math.abs(cosine(a, a.neg()) + 1) < 1e-15);
    assert.ok(Math.abs(cosine(tensor([1, 0]), tensor([0, 1]))) < 1e-15);
    assert.deepEqual([...ranks([10, 20, 20, 5])], [2, 3.5, 3.5, 1]);
    // Monotone but non-linear: ρ = 1 while the cosine is below 1.
    assert.ok(Math.abs(spearman(a, a.exp()) - 1) < 1e-15);
    assert.equal(spearman(a, a.neg()), -1);
    // x = [1,2,3,4], y = [1,3,2,4]: ρ = 1 − 6·Σd²/(n(n²−1)) = 1 − 6·2/60 = 0.8.
    assert.ok(Math.abs(spearman(a, tensor([1, 3, 2, 4])) - 0.8) < 1e-12);
    assert.throws(() => cosine(a, tensor([1, 2])), /differ in length/);
  }));

test('mask IoU against hand-computed sets', () =>
  scope(() => {
    const m = (xs: number[]) => new Map([['w', tensor(xs)]]);
    assert.equal(maskIoU(m([1, 1, 0, 0]), m([1, 1, 0, 0])), 1);
    assert.equal(maskIoU(m([1, 1, 0, 0]), m([0, 1, 1, 0])), 1 / 3);
    assert.equal(maskIoU(m([1, 0, 0, 0]), m([0, 0, 0, 1])), 0);
    assert.throws(() => maskIoU(m([1, 0]), new Map([['v', tensor([1, 0])]])), /no tensor 'w'/);
  }));

test('diagnostics: a task compared with itself is aligned 1 on every measure; another task is not', () => {
  const g = tinyNet(30);
  const b1 = tinyBatches(31, [6, 4]);
  const b2 = tinyBatches(32, [10]);
  const r = runDiagnostics(
    [
      { id: 'a', graph: g, batches: b1 },
      { id: 'a-again', graph: g, batches: b1 },
      { id: 'b', graph: g, batches: b2 },
    ],
    { loss: 'ce', probes: 20, k: 3, seed: 0, sparsities: [0.5, 0.8] },
  );
  const self = r.pairs.find((p) => p.a === 'a' && p.b === 'a-again')!;
  assert.ok(Math.abs(self.diagCosine - 1) < 1e-12);
  assert.ok(Math.abs(self.diagSpearman - 1) < 1e-12);
  assert.ok(Math.abs(self.eigenOverlap - 1) < 1e-9);
  assert.deepEqual(
    self.maskIoU.map((x) => x.iou),
    [1, 1],
  );
  const other = r.pairs.find((p) => p.a === 'a' && p.b === 'b')!;
  assert.ok(other.diagCosine < 1 - 1e-6 && other.eigenOverlap < 1 - 1e-6, JSON.stringify(other));
  assert.equal(r.tasks.length, 3);
  assert.equal(r.tasks[0]!.layers!.length, 2);
  // Per-layer traces come from the same probes: they add up to the whole-model trace.
  const t0 = r.tasks[0]!;
  assert.ok(
    Math.abs(t0.layers!.reduce((s, l) => s + l.trace, 0) - t0.trace.estimate) <
      1e-9 * Math.max(1, Math.abs(t0.trace.estimate)),
  );
  assert.equal(r.lossChange.length, 3 * 2, 'one row per task and sparsity');
  for (const row of r.lossChange)
    assert.ok(Math.abs(row.sparsity - 0.5) < 0.02 || Math.abs(row.sparsity - 0.8) < 0.02, `${row.sparsity}`);
  // The mask came from task a's data, so it is the same mask on every task.
  assert.ok(r.lossChange.every((x) => x.maskFrom === 'a'));
  // One pruning path: task a's OBD mask is the one `prune()` gives with diag-hessian (hutchinson, the same probes and
  // seed) on the same net built again, so its measured loss change is the same number bit for bit.
  const op = hessianOperator(g, 'ce', b1);
  const base = op.lossAndGrad();
  for (const q of [0.5, 0.8]) {
    const copy = tinyNet(30);
    prune(copy, {
      score: 'diag-hessian',
      estimator: 'hutchinson',
      probes: 20,
      seed: 0,
      sparsity: q,
      batches: b1,
      loss: 'ce',
    });
    const mask = new Map([...copy.masks].map(([n, m]) => [n, m.clone()] as const));
    disposeGraph(copy);
    const direct = lossChange(op, mask, { base });
    const row = r.lossChange.find((x) => x.task === 'a' && x.target === q)!;
    assert.equal(row.measured, direct.measured, `sparsity ${q}`);
    assert.equal(row.sparsity, direct.sparsity);
    disposeAll([...mask.values()]);
  }
  base.grad.dispose();
  disposeAll([b1, b2]);
  disposeGraph(g);
});
