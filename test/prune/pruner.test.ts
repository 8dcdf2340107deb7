import { test } from 'node:test';
import assert from 'node:assert/strict';
import { forward } from '../../src/graph/index.js';
import { disposeAll, liveTensors, noGrad, scope, tensor } from '../../src/engine/index.js';
import { AllocationError } from '../../src/prune/allocation.js';
import { PruneError } from '../../src/prune/errors.js';
import { prune } from '../../src/prune/pruner.js';
import { reestimateBatchNorm } from '../../src/prune/bn.js';
import { disposeCase, makeCase } from '../cases/index.js';
import { expectClose } from '../helpers/check.js';

const maskOf = (g: ReturnType<typeof makeCase>['graph'], n: string) => g.masks.get(n)!.toArray();

test('oneshot: exact count, masks on prunable tensors only, report per tensor', () => {
  const c = makeCase('conv-bn');
  const before = new Map([...c.graph.params].map(([n, p]) => [n, p.tensor.toArray()]));
  const r = prune(c.graph, { score: 'magnitude', sparsity: 0.6 });
  const total = 54 + 108 + 12;
  assert.equal(r.prunableParameters, total);
  assert.equal(r.keptParameters, Math.round(0.4 * total));
  assert.ok(Math.abs(r.achievedSparsity - (1 - Math.round(0.4 * total) / total)) < 1e-12);
  assert.deepEqual([...c.graph.masks.keys()].sort(), ['conv1.weight', 'conv2.weight', 'fc.weight']);
  for (const t of r.tensors)
    assert.equal(
      maskOf(c.graph, t.name).reduce((a, b) => a + b, 0),
      t.kept,
    );
  // No compensation: kept weights are unchanged, pruned ones are zeroed in place.
  for (const [n, v] of before) {
    const m = c.graph.masks.get(n)?.toArray();
    assert.deepEqual(
      c.graph.params.get(n)!.tensor.toArray(),
      m ? v.map((x, i) => (m[i] ? x : 0 * x)) : v,
      `${n}: kept unchanged, pruned zeroed`,
    );
  }
  assert.equal(r.calibration.hash, null);
  assert.equal(r.compensated, false);
  disposeCase(c);
});

test('iterative: R rounds at k^(r/R), pruned weights never come back, the final count is exact', () => {
  const c = makeCase('mlp');
  const r = prune(c.graph, {
    score: 'diag-hessian',
    estimator: 'fisher',
    sparsity: 0.7,
    schedule: { kind: 'iterative', rounds: 3 },
    batches: c.batches,
    loss: 'ce',
  });
  assert.equal(r.rounds.length, 3);
  expectClose(
    r.rounds.map((x) => x.density),
    [0.3 ** (1 / 3), 0.3 ** (2 / 3), 0.3],
    { rtol: 1e-12 },
  );
  assert.equal(r.keptParameters, Math.round(0.3 * 35));
  assert.ok(
    r.rounds[0]!.achievedSparsity < r.rounds[1]!.achievedSparsity &&
      r.rounds[1]!.achievedSparsity < r.rounds[2]!.achievedSparsity,
  );
  // Re-run round by round by hand: each round's mask is inside the previous one.
  const c2 = makeCase('mlp');
  let prev: number[] | null = null;
  for (const q of [1 - 0.3 ** (1 / 3), 1 - 0.3 ** (2 / 3), 0.7]) {
    prune(c2.graph, { score: 'diag-hessian', estimator: 'fisher', sparsity: q, batches: c2.batches, loss: 'ce' });
    const m = [...c2.graph.masks.values()].flatMap((t) => t.toArray());
    if (prev) m.forEach((v, i) => assert.ok(v <= prev![i]!, 'a pruned weight stays pruned'));
    prev = m;
  }
  disposeCase(c);
  disposeCase(c2);
});

test('same seed ⇒ identical mask; another seed ⇒ another random mask', () => {
  const run = (score: 'random' | 'diag-hessian', seed: number) => {
    const c = makeCase('depthwise');
    prune(c.graph, { score, sparsity: 0.5, seed, batches: c.batches, estimator: 'hutchinson', probes: 2, loss: 'ce' });
    const m = [...c.graph.masks.values()].flatMap((t) => t.toArray());
    disposeCase(c);
    return m;
  };
  assert.deepEqual(run('random', 3), run('random', 3));
  assert.notDeepEqual(run('random', 3), run('random', 4));
  assert.deepEqual(run('diag-hessian', 1), run('diag-hessian', 1));
});

test('OBS compensation through the pruner changes surviving weights only and zeroes nothing it keeps', () => {
  const c = makeCase('mlp');
  const w0 = c.graph.params.get('fc1.weight')!.tensor.toArray();
  const r = prune(c.graph, {
    score: 'block-hessian',
    sparsity: 0.5,
    batches: c.batches,
    loss: 'mse',
    block: { blockSize: 4, compensate: true },
  });
  assert.equal(r.compensated, true);
  const w1 = c.graph.params.get('fc1.weight')!.tensor.toArray();
  const m = maskOf(c.graph, 'fc1.weight');
  assert.ok(
    w1.some((v, i) => m[i] === 1 && v !== w0[i]),
    'survivors moved',
  );
  w1.forEach((v, i) => {
    if (m[i] === 0) assert.equal(Math.abs(v), 0);
  });
  assert.equal(typeof (r.scoreInfo.damping as Record<string, number>)['fc1.weight'], 'number');
  disposeCase(c);
});

test('collapsed tensors are named in warnings; min-density prevents the collapse', () => {
  const c = makeCase('mlp');
  noGrad(() => c.graph.params.get('fc2.weight')!.tensor.mul_(1e-6));
  const r = prune(c.graph, { score: 'magnitude', sparsity: 0.5 });
  assert.deepEqual(r.collapsed, ['fc2.weight']);
  assert.match(r.warnings[0]!, /'fc2\.weight' is fully pruned/);
  const r2 = prune(c.graph, { score: 'magnitude', sparsity: 0.5, minDensity: 0.2 });
  assert.deepEqual(r2.collapsed, []);
  assert.equal(r2.tensors.find((t) => t.name === 'fc2.weight')!.kept, 3);
  disposeCase(c);
});

test('bad input: sparsity outside [0, 1), NaN/Inf weights or images, too few images, no data, no prunable tensor', () => {
  const c = makeCase('mlp');
  for (const q of [1, -0.1, Number.NaN, 1.5])
    assert.throws(() => prune(c.graph, { score: 'magnitude', sparsity: q }), AllocationError, `sparsity ${q}`);
  assert.throws(() => prune(c.graph, { score: 'snip', sparsity: 0.5 }), /calibration set is empty/);
  assert.throws(
    () => prune(c.graph, { score: 'snip', sparsity: 0.5, batches: c.batches, calib: 6 }),
    (e: unknown) =>
      e instanceof PruneError && /asked for 6 calibration images but the calibration set has only 5/.test(e.message),
  );
  assert.throws(() => prune(c.graph, { score: 'nope' as 'snip', sparsity: 0.5 }), /unknown score 'nope'/);
  scope(() => {
    const bad = [
      { x: tensor([[1, Number.NaN, 0, 0]], null, { dtype: 'float64' }), y: c.batches[0]!.y.narrow(0, 0, 1) },
    ];
    assert.throws(
      () => prune(c.graph, { score: 'snip', sparsity: 0.5, batches: bad }),
      /calibration batch 0 has 1 NaN\/Inf/,
    );
  });
  noGrad(() => c.graph.params.get('fc1.bias')!.tensor.index(0, 1).fill_(Infinity));
  assert.throws(() => prune(c.graph, { score: 'magnitude', sparsity: 0.5 }), /parameter 'fc1\.bias' .* 1 NaN\/Inf/);
  for (const p of c.graph.params.values()) p.prunable = false;
  assert.throws(() => prune(c.graph, { score: 'magnitude', sparsity: 0.5 }), /no prunable parameters/);
  disposeCase(c);
});

test('BN re-estimation recomputes running statistics on the calibration images', () => {
  const c = makeCase('conv-bn', { sizes: [4] });
  scope(() => {
    const pre = forward(c.graph, c.batches[0]!.x, { mode: 'eval', taps: ['conv1'] }).taps.get('conv1')!;
    assert.equal(reestimateBatchNorm(c.graph, c.batches), 1);
    expectClose(c.graph.params.get('bn.running_mean')!.tensor, pre.mean([0, 2, 3]), { rtol: 1e-10, atol: 1e-12 });
    expectClose(c.graph.params.get('bn.running_var')!.tensor, pre.var([0, 2, 3]), { rtol: 1e-10, atol: 1e-12 });
  });
  const r = prune(c.graph, { score: 'magnitude', sparsity: 0.3, batches: c.batches, bn: 'reestimate' });
  assert.deepEqual(r.bn, { mode: 'reestimate', layers: 1, images: 4, degenerate: 0 });
  assert.match(r.calibration.hash!, /^[0-9a-f]{16}$/);
  disposeCase(c);
});

test('the pruner leaks no tensor', () => {
  const c = makeCase('conv-bn');
  prune(c.graph, { score: 'block-hessian', sparsity: 0.5, batches: c.batches, block: { compensate: true } });
  const before = liveTensors();
  prune(c.graph, {
    score: 'block-hessian',
    sparsity: 0.6,
    batches: c.batches,
    block: { compensate: true },
    schedule: { kind: 'iterative', rounds: 2 },
  });
  prune(c.graph, { score: 'grasp', sparsity: 0.6, batches: c.batches });
  assert.equal(liveTensors(), before);
  disposeAll([]);
  disposeCase(c);
});
