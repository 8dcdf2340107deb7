import { test } from 'node:test';
import assert from 'node:assert/strict';
import { disposeAll, linalg, liveTensors, scope, type Tensor } from '../../src/engine/index.js';
import { setNumThreads as setThreads } from '../../src/engine/index.js';
import { disposeGraph } from '../../src/graph/index.js';
import { hessianOperator } from '../../src/analysis/hessian.js';
import { hutchinsonTrace } from '../../src/analysis/hutchinson.js';
import { topEigen } from '../../src/analysis/lanczos.js';
import { materialize } from '../../src/analysis/operator.js';
import { NondeterministicGraphError } from '../../src/analysis/errors.js';
import type { LossName } from '../../src/analysis/loss.js';
import { expectClose } from '../helpers/check.js';
import { exactHessian, tinyBatches, tinyNet } from './cases.js';

// Tiny problems: one thread avoids OpenMP spin-waits when the shared cores are busy (26 ms vs 450 ms per matvec).
setThreads(1);

const NAMES = ['conv.weight', 'fc.weight'];

for (const kind of ['mse', 'ce'] as const) {
  test(`hessianOperator (${kind}) equals the exact Hessian; trace and top eigenvalues match eigh`, () => {
    const g = tinyNet(2);
    const batches = tinyBatches(3, [3, 5, 2]);
    const loss: LossName = kind;
    scope(() => {
      const H = exactHessian(g, loss, batches, NAMES);
      const op = hessianOperator(g, loss, batches);
      assert.deepEqual(op.layout.names, NAMES, 'default parameters: the prunable ones');
      assert.equal(op.dim, 54 + 12);
      expectClose(materialize(op), H, { rtol: 1e-9, atol: 1e-11 }, 'H columns');

      const exact = linalg.eigh(H).values.toArray().reverse();
      const trace = exact.reduce((a, b) => a + b, 0);
      const t = hutchinsonTrace(op, { probes: 300, seed: 11 });
      assert.ok(Math.abs(t.estimate - trace) < 4 * t.stderr, `trace ${t.estimate} ± ${t.stderr} vs exact ${trace}`);
      const r = topEigen(op, { k: 3, seed: 1, steps: 40 });
      expectClose(r.values, exact.slice(0, 3), { rtol: 1e-7, atol: 1e-10 }, 'top eigenvalues');

      // Per-layer block = the diagonal block of the full Hessian.
      const block = op.restrict(['fc.weight']);
      assert.equal(block.dim, 12);
      expectClose(materialize(block), H.narrow(0, 54, 12).narrow(1, 54, 12), { rtol: 1e-9, atol: 1e-11 }, 'fc block');
      assert.throws(() => op.restrict(['bn.weight']), /not one of this operator's parameters/);
    });
    disposeAll(batches);
    disposeGraph(g);
  });
}

test('matvecs keep the live-tensor count flat and report their count', () => {
  const g = tinyNet(4);
  const batches = tinyBatches(5, [4, 4]);
  const op = hessianOperator(g, 'ce', batches);
  const before = liveTensors();
  hutchinsonTrace(op, { probes: 5, seed: 0 });
  assert.equal(liveTensors(), before);
  assert.equal(op.matvecs, 5);
  disposeAll(batches);
  disposeGraph(g);
});

test('lossAndGrad gives the mean loss and its gradient over all images', () => {
  const g = tinyNet(6);
  const all = tinyBatches(7, [6]);
  const split = [
    { x: all[0]!.x.narrow(0, 0, 2), y: all[0]!.y.narrow(0, 0, 2) },
    { x: all[0]!.x.narrow(0, 2, 4), y: all[0]!.y.narrow(0, 2, 4) },
  ];
  const loss: LossName = 'mse';
  const a = hessianOperator(g, loss, all).lossAndGrad();
  const b = hessianOperator(g, loss, split).lossAndGrad();
  assert.ok(Math.abs(a.loss - b.loss) < 1e-12, 'batching does not change the mean loss');
  expectClose(b.grad, a.grad, { rtol: 1e-10, atol: 1e-12 });
  assert.ok(Math.abs(hessianOperator(g, loss, split).lossValue() - a.loss) < 1e-12);
  disposeAll([a.grad, b.grad, all, split]);
  disposeGraph(g);
});

test('refuses a non-deterministic graph, naming the node and the fix', () => {
  const g = tinyNet(8, { dropout: 0.5 });
  const batches = tinyBatches(9, [3]);
  const loss: LossName = 'ce';
  assert.throws(
    () => hessianOperator(g, loss, batches, { mode: 'train' }),
    (e: unknown) => {
      assert.ok(e instanceof NondeterministicGraphError);
      assert.match(e.message, /node 'bn' \(batchnorm\)/);
      assert.match(e.fix ?? '', /eval-bn/);
      return true;
    },
  );
  g.nodes = g.nodes.filter((n) => n.op !== 'batchnorm').map((n) => (n.name === 'act' ? { ...n, inputs: ['conv'] } : n));
  assert.throws(() => hessianOperator(g, loss, batches, { mode: 'train' }), /node 'drop' \(dropout\)/);
  // eval-bn: dropout is off, the operator builds and is symmetric.
  const op = hessianOperator(g, loss, batches);
  scope(() => {
    const H = materialize(op);
    expectClose(H, H.t(), { rtol: 1e-9, atol: 1e-12 });
  });
  assert.throws(() => hessianOperator(g, loss, batches, { params: ['nope'] }), /no parameter 'nope'/);
  assert.throws(() => hessianOperator(g, loss, batches, { params: ['bn.running_mean'] }), /no parameter|not trainable/);
  assert.throws(() => hessianOperator(g, 'hinge' as LossName, batches), /unknown loss 'hinge'/);
  assert.throws(() => hessianOperator(g, loss, []), /no images/);
  disposeAll(batches);
  disposeGraph(g);
});

export type { Tensor };

test('session: cached first-order graphs give the same matvecs as fresh double backward, and are freed after', () => {
  const g = tinyNet(8);
  const batches = tinyBatches(9, [3, 4]);
  const fresh = hessianOperator(g, 'ce', batches, { cacheGraph: false });
  const cached = hessianOperator(g, 'ce', batches, { cacheGraph: true });
  const vs = scope(() =>
    [0, 1, 2].map((k) =>
      fresh
        .flatParams()
        .mul(0)
        .add(k + 1)
        .cos(),
    ),
  );
  const want = vs.map((v) => fresh.matvec(v));
  const before = liveTensors();
  const got = cached.session(() => vs.map((v) => cached.matvec(v)));
  // Inside the session each batch's graph was built once and reused: results equal, count of matvecs the same.
  got.forEach((h, k) => expectClose(h, want[k]!, { rtol: 1e-12, atol: 1e-14 }));
  assert.equal(cached.matvecs, 3);
  assert.equal(liveTensors(), before + 3, 'only the 3 results outlive the session');
  // Topeigen / trace through the session give the same numbers as without it.
  const t1 = hutchinsonTrace(fresh, { probes: 3, seed: 1 }).estimate;
  const t2 = hutchinsonTrace(cached, { probes: 3, seed: 1 }).estimate;
  assert.ok(Math.abs(t1 - t2) <= 1e-12 * Math.abs(t1), `trace ${t1} vs ${t2}`);
  disposeAll([...vs, ...want, ...got]);
  disposeAll(batches);
  disposeGraph(g);
});
