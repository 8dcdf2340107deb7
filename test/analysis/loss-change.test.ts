import { test } from 'node:test';
import assert from 'node:assert/strict';
import { disposeAll, manualSeed, rand, randint, randn, scope, type Tensor } from '../../src/engine/index.js';
import { setNumThreads as setThreads } from '../../src/engine/index.js';
import { disposeGraph, makeParam, type Graph } from '../../src/graph/index.js';
import { hessianOperator } from '../../src/analysis/hessian.js';
import { lossChange } from '../../src/analysis/loss-change.js';
import { tinyBatches, tinyNet } from './cases.js';

// Tiny problems: one thread avoids OpenMP spin-waits when the shared cores are busy (26 ms vs 450 ms per matvec).
setThreads(1);

/** logits = x Wᵀ + b: with the mse loss, L is exactly quadratic in W. */
function linearModel(): Graph {
  manualSeed(21);
  const f64 = { dtype: 'float64' as const };
  const ps = [makeParam('fc.weight', randn([4, 6], f64), 'weight'), makeParam('fc.bias', randn([4], f64), 'bias')];
  return {
    name: 'linear',
    inputs: [{ name: 'x', shape: [null, 6] }],
    outputs: ['logits'],
    nodes: [{ name: 'logits', op: 'linear', inputs: ['x', 'fc.weight', 'fc.bias'], outputs: ['logits'], attrs: {} }],
    params: new Map(ps.map((p) => [p.name, p])),
    constants: new Map(),
    masks: new Map(),
    featureTap: 'x',
    preprocessing: { size: [1, 1], range: [0, 1] },
    meta: {},
  };
}

test('second-order prediction equals the measured loss change for a quadratic loss', () => {
  const g = linearModel();
  const batches = [
    { x: randn([5, 6], { dtype: 'float64' }), y: randint(0, 4, [5]) },
    { x: randn([3, 6], { dtype: 'float64' }), y: randint(0, 4, [3]) },
  ];
  const op = hessianOperator(g, 'mse', batches);
  const before = scope(() => g.params.get('fc.weight')!.tensor.clone().toArray());
  for (const keep of [0.8, 0.5, 0.2]) {
    const mask = new Map<string, Tensor>([['fc.weight', rand([4, 6]).lt(keep).to('float64')]]);
    const r = lossChange(op, mask);
    assert.ok(
      Math.abs(r.secondOrder - r.measured) < 1e-10 * Math.max(1, Math.abs(r.measured)),
      `keep ${keep}: ${r.secondOrder} vs ${r.measured}`,
    );
    assert.ok(r.curvatureTerm > 0, 'the mse Hessian is positive semi-definite');
    assert.ok(Math.abs(r.firstOrder - r.measured) > 1e-6, 'first order alone is not exact (the test can fail)');
    assert.ok(r.sparsity > 0 && r.sparsity < 1);
    disposeAll(mask);
  }
  assert.deepEqual(
    scope(() => g.params.get('fc.weight')!.tensor.toArray()),
    before,
    'weights restored',
  );
  disposeAll(batches);
  disposeGraph(g);
});

test('on a non-quadratic net, second order beats first order for a small removal, and an empty removal changes nothing', () => {
  const g = tinyNet(12);
  const batches = tinyBatches(13, [6]);
  const op = hessianOperator(g, 'ce', batches);
  const base = op.lossAndGrad();
  scope(() => {
    // Remove the 5 smallest conv weights: a small step, where the Taylor expansion is accurate.
    const w = g.params.get('conv.weight')!.tensor;
    const thr = w.abs().reshape([-1]).sort().values.index(0, 5).item();
    const small = lossChange(op, new Map([['conv.weight', w.abs().ge(thr).to('float64')]]), { base });
    assert.ok(
      Math.abs(small.secondOrder - small.measured) < Math.abs(small.firstOrder - small.measured),
      JSON.stringify(small),
    );
    assert.ok(
      Math.abs(small.secondOrder - small.measured) < 0.05 * Math.abs(small.measured) + 1e-9,
      JSON.stringify(small),
    );
    const none = lossChange(op, new Map([['conv.weight', w.mul(0).add(1)]]), { base });
    assert.equal(none.measured, 0);
    assert.equal(none.secondOrder, 0);
    assert.throws(() => lossChange(op, new Map([['bn.weight', w]]), { base }), /not one of the operator's parameters/);
  });
  disposeAll([base.grad, batches]);
  disposeGraph(g);
});
