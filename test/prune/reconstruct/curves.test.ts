/**
 * The `error` allocation: the greedy fill on convex curves equals the brute-force optimum; a hand-computed case;
 * reserves and bad curves. The curves on a linear 2-layer net in float64: e(0) = 1, e(1) = 0, the solver's error at
 * the reference density equals the error measured through the forward pass, and each gain equals its closed form
 * (1 for the layer that is the feature tap). Through prune(): exact sparsity, deterministic, weights untouched by the
 * measurement, and clear errors for scores without curves and for iterative schedules.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { liveTensors, manualSeed, noGrad, randn, scope, zeros, type Tensor } from '../../../src/engine/index.js';
import { GraphBuilder, type Graph } from '../../../src/graph/index.js';
import {
  AllocationError,
  errorCounts,
  errorCurves,
  layersOf,
  parseAllocation,
  prune,
  PruneError,
  solveLayer,
  type ErrorCurve,
} from '../../../src/prune/index.js';
import { disposeCase, makeCase } from '../../cases/index.js';

const f64 = { dtype: 'float64' as const };

/** Piecewise-linear value of a curve at k kept weights of n. */
function valueAt(c: ErrorCurve, n: number, k: number): number {
  const d = k / n;
  for (let j = 1; j < c.densities.length; j++)
    if (d <= c.densities[j]! + 1e-12) {
      const [d0, d1] = [c.densities[j - 1]!, c.densities[j]!];
      const [e0, e1] = [c.errors[j - 1]!, j === c.densities.length - 1 ? 0 : c.errors[j]!];
      return c.gain * (e0 + ((e1 - e0) * (d - d0)) / (d1 - d0));
    }
  return 0;
}

test('error allocation: the greedy fill equals the brute-force optimum on convex curves, exactly on budget', () => {
  const grid = [0, 0.25, 0.5, 0.75, 1];
  const convex = (a: number, gain: number): ErrorCurve => ({
    densities: grid,
    errors: grid.map((d) => Math.pow(1 - d, a)),
    gain,
  });
  const names = ['a', 'b', 'c'];
  const sizes = [12, 20, 8];
  const curves = new Map([
    ['a', convex(2, 1)],
    ['b', convex(3, 0.5)],
    ['c', convex(1.5, 4)],
  ]);
  const cost = (ks: number[]) => ks.reduce((s, k, i) => s + valueAt(curves.get(names[i]!)!, sizes[i]!, k), 0);
  for (const target of [0, 5, 13, 20, 27, 33, 40]) {
    const ks = errorCounts(names, sizes, [0, 0, 0], target, curves);
    assert.equal(
      ks.reduce((a, b) => a + b, 0),
      target,
      `total at ${target}`,
    );
    ks.forEach((k, i) => assert.ok(k >= 0 && k <= sizes[i]!));
    let best = Infinity;
    for (let a = 0; a <= 12; a++)
      for (let b = 0; b <= 20; b++) {
        const c = target - a - b;
        if (c >= 0 && c <= 8) best = Math.min(best, cost([a, b, c]));
      }
    assert.ok(Math.abs(cost(ks) - best) < 1e-12, `target ${target}: greedy ${cost(ks)} vs best ${best}`);
  }
});

test('error allocation: a hand-computed case, reserves, non-convex curves on their hull, malformed and missing curves', () => {
  const line = (gain: number): ErrorCurve => ({ densities: [0, 0.5, 1], errors: [1, 0.5, 0], gain });
  // Each weight of b removes twice the error of a weight of a: b fills first.
  const curves = new Map([
    ['a', line(1)],
    ['b', line(2)],
  ]);
  assert.deepEqual(errorCounts(['a', 'b'], [10, 10], [0, 0], 10, curves), [0, 10]);
  assert.deepEqual(errorCounts(['a', 'b'], [10, 10], [0, 0], 14, curves), [4, 10]);
  assert.deepEqual(errorCounts(['a', 'b'], [10, 10], [2, 0], 10, curves), [2, 8]);
  // error-layer ignores the gains: equal slopes, the earlier tensor first.
  assert.deepEqual(errorCounts(['a', 'b'], [10, 10], [0, 0], 10, curves, { gains: false }), [10, 0]);
  // A tensor already pruned to 6 kept weights keeps no more.
  const capped = new Map([
    ['a', line(1)],
    ['b', { ...line(2), max: 6 }],
  ]);
  assert.deepEqual(errorCounts(['a', 'b'], [10, 10], [0, 0], 10, capped), [4, 6]);
  assert.throws(() => errorCounts(['a', 'b'], [10, 10], [0, 0], 17, capped), /at most 16 weights/);
  // A bump at 0.5 (non-convex): on the hull the first half of a is worth 0.1 per weight, below b's 0.15.
  const bump = new Map([
    ['a', { densities: [0, 0.5, 1], errors: [1, 0.9, 0], gain: 1 }],
    ['b', { densities: [0, 1], errors: [1, 0], gain: 1.5 }],
  ]);
  assert.deepEqual(errorCounts(['a', 'b'], [10, 10], [0, 0], 10, bump), [0, 10]);
  assert.throws(() => errorCounts(['a', 'c'], [10, 10], [0, 0], 10, curves), /error curve of 'c'.*sparsegpt/s);
  assert.throws(
    () => errorCounts(['a'], [10], [0], 5, new Map([['a', { densities: [0, 0.5], errors: [1, 0.2], gain: 1 }]])),
    AllocationError,
  );
  assert.deepEqual(parseAllocation('error'), { kind: 'error' });
  assert.deepEqual(parseAllocation('error-layer'), { kind: 'error-layer' });
});

/** x [N, 5] → fc1 (6×5) → fc2 (4×6) = feature tap; linear, so every gain has a closed form. */
function linearNet(seed: number): { g: Graph; x: Tensor } {
  manualSeed(seed);
  const b = new GraphBuilder();
  b.param('fc1.weight', randn([6, 5], f64), 'weight');
  b.param('fc2.weight', randn([4, 6], f64), 'weight');
  const h = b.op('linear', ['x', 'fc1.weight'], {}, 'fc1');
  const f = b.op('linear', [h, 'fc2.weight'], {}, 'fc2');
  const g = b.build({
    name: 'lin',
    inputs: [{ name: 'x', shape: [null, 5] }],
    outputs: [f],
    featureTap: f,
    preprocessing: { size: [2, 2], range: [0, 1] },
  });
  return { g, x: randn([30, 5], f64) };
}

const rel = (a: Tensor, b: Tensor) => scope(() => a.sub(b).square().sum().item() / a.square().sum().item());

test('error curves on a linear 2-layer net: endpoints, solver error = forward error, gains in closed form', () =>
  scope(() => {
    const { g, x } = linearNet(5);
    const w1 = g.params.get('fc1.weight')!.tensor.clone();
    const w2 = g.params.get('fc2.weight')!.tensor.clone();
    const layers = layersOf(g, ['fc1.weight', 'fc2.weight'], 'test');
    // Two batches of 15: the gain is measured on the first (gainImages 10 → one whole batch).
    const batches = [0, 15].map((i) => ({ x: x.narrow(0, i, 15), y: zeros([15], { dtype: 'int64' }) }));
    const opts = { blockSize: 2, damping: 0.01, density: 0.5, gainImages: 10, densities: [0, 0.3, 0.5, 1] };
    const curves = errorCurves(g, batches, layers, opts);
    assert.deepEqual(
      curves.map((c) => c.tensor),
      ['fc1.weight', 'fc2.weight'],
    );
    noGrad(() => {
      assert.equal(g.params.get('fc1.weight')!.tensor.sub(w1).abs().max().item(), 0, 'fc1 restored');
      assert.equal(g.params.get('fc2.weight')!.tensor.sub(w2).abs().max().item(), 0, 'fc2 restored');
      for (const c of curves) {
        assert.equal(c.errors[0], 1);
        assert.equal(c.errors[3], 0);
        assert.ok(c.errors[1]! >= c.errors[2]! && c.errors[2]! > 0);
      }
      // Layer 1 alone at density 0.5 on all images (curve) and on the first batch (forward), by hand.
      const xa = x.t();
      const xb = x.narrow(0, 0, 15).t();
      const solve = (w: Tensor, X: Tensor) =>
        solveLayer(w.unsqueeze(0), X.matmul(X.t()).unsqueeze(0), {
          blockSize: 2,
          damping: 0.01,
          keep: { kind: 'count', prune: w.numel / 2 },
        }).weights.squeeze(0);
      const v1 = solve(w1, xa);
      assert.ok(Math.abs(curves[0]!.errors[2]! - rel(w1.matmul(xa), v1.matmul(xa))) < 1e-10, 'fc1 e(0.5)');
      const r1 = rel(w1.matmul(xb), v1.matmul(xb));
      const o1 = rel(w2.matmul(w1).matmul(xb), w2.matmul(v1).matmul(xb));
      assert.ok(Math.abs(curves[0]!.layerError! - r1) < 1e-10, 'fc1 layer error');
      assert.ok(Math.abs(curves[0]!.outputError! - o1) < 1e-10, 'fc1 output error');
      assert.ok(Math.abs(curves[0]!.gain - o1 / r1) < 1e-8, `fc1 gain ${curves[0]!.gain} vs ${o1 / r1}`);
      // Layer 2 is the feature tap: what it loses is what the output loses.
      const h = w1.matmul(xa);
      const v2 = solve(w2, h);
      assert.ok(Math.abs(curves[1]!.errors[2]! - rel(w2.matmul(h), v2.matmul(h))) < 1e-10, 'fc2 e(0.5)');
      assert.ok(Math.abs(curves[1]!.gain - 1) < 1e-10, 'fc2 gain');
    });
  }));

test('sparsegpt with the error allocation through prune(): exact sparsity, deterministic, curves reported, no leak', () => {
  const run = () => {
    const c = makeCase('depthwise', { sizes: [4, 3] });
    const r = prune(c.graph, {
      score: 'sparsegpt',
      sparsity: 0.6,
      allocation: { kind: 'error' },
      batches: c.batches,
      reconstruct: { target: 'dense-output', blockSize: 4 },
    });
    assert.equal(r.keptParameters, Math.round(0.4 * r.prunableParameters));
    const curves = r.scoreInfo.curves as { tensor: string; gain: number; errors: number[] }[];
    assert.equal(curves.length, r.tensors.length);
    for (const cv of curves) assert.ok(Number.isFinite(cv.gain) && cv.errors.every((e) => e >= 0));
    const densities = r.tensors.map((t) => t.density);
    disposeCase(c);
    return densities;
  };
  const a = run();
  assert.deepEqual(a, run());
  // The allocation differs from the uniform one (the curves decide).
  assert.ok(
    a.some((d) => Math.abs(d - 0.4) > 0.05),
    `densities ${a.join(', ')}`,
  );
  const c = makeCase('depthwise', { sizes: [4, 3] });
  // error-layer: the same curves without gains (none measured), exact sparsity.
  const c2 = makeCase('depthwise', { sizes: [4, 3] });
  const r = prune(c2.graph, {
    score: 'sparsegpt',
    sparsity: 0.6,
    allocation: { kind: 'error-layer' },
    batches: c2.batches,
  });
  assert.equal(r.keptParameters, Math.round(0.4 * r.prunableParameters));
  for (const cv of r.scoreInfo.curves as { gain: number; layerError: number | null }[]) {
    assert.equal(cv.gain, 1);
    assert.equal(cv.layerError, null);
  }
  disposeCase(c2);
  assert.throws(
    () => prune(c.graph, { score: 'magnitude', sparsity: 0.5, allocation: { kind: 'error' }, batches: c.batches }),
    /allocation 'error' needs per-layer error curves, which magnitude does not measure/,
  );
  assert.throws(
    () =>
      prune(c.graph, {
        score: 'sparsegpt',
        sparsity: 0.5,
        allocation: { kind: 'error' },
        schedule: { kind: 'iterative', rounds: 2 },
        batches: c.batches,
      }),
    (e: unknown) => e instanceof PruneError && /one-shot/.test(e.message),
  );
  prune(c.graph, { score: 'sparsegpt', sparsity: 0.5, allocation: { kind: 'error' }, batches: c.batches });
  const before = liveTensors();
  prune(c.graph, { score: 'sparsegpt', sparsity: 0.5, allocation: { kind: 'error' }, batches: c.batches });
  assert.equal(liveTensors(), before, 'flat live-tensor count');
  disposeCase(c);
});
