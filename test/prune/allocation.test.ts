import { test } from 'node:test';
import assert from 'node:assert/strict';
import { manualSeed, rand, scope, tensor, zeros, type Tensor } from '../../src/engine/index.js';
import { allocate, AllocationError } from '../../src/prune/allocation.js';
import { roundDensities } from '../../src/prune/schedule.js';

function scores(shapes: Record<string, number[]>, seed = 1): Map<string, Tensor> {
  manualSeed(seed);
  return new Map(Object.entries(shapes).map(([n, s]) => [n, rand(s)]));
}

/** Brute force: rank every weight by (score desc, tensor order, flat index) and keep the first `target`. */
function bruteGlobal(sc: Map<string, Tensor>, target: number): Map<string, number[]> {
  const all: [number, number, number][] = [];
  [...sc.entries()].forEach(([, t], ti) => t.toArray().forEach((v, j) => all.push([v, ti, j])));
  all.sort((a, b) => b[0] - a[0] || a[1] - b[1] || a[2] - b[2]);
  const out = new Map([...sc.entries()].map(([n, t]) => [n, new Array<number>(t.numel).fill(0)]));
  const names = [...sc.keys()];
  for (const [, ti, j] of all.slice(0, target)) out.get(names[ti]!)![j] = 1;
  return out;
}

test('global allocation keeps exactly round(k·N) weights and matches a brute-force ranking', () =>
  scope(() => {
    const sc = scores({ a: [4, 3, 3, 3], b: [10, 12], c: [7] });
    const total = 108 + 120 + 7;
    for (const q of [0, 0.3, 0.5, 0.9, 0.999]) {
      const r = allocate(sc, { sparsity: q });
      const target = Math.round((1 - q) * total);
      assert.equal(r.totalKept, target);
      const want = bruteGlobal(sc, target);
      for (const [n, m] of r.masks) {
        assert.deepEqual(m.shape, sc.get(n)!.shape);
        assert.deepEqual(m.toArray(), want.get(n), `mask of ${n} at sparsity ${q}`);
        assert.equal(m.sum().item(), r.kept.get(n));
      }
      assert.ok(Math.abs(r.achievedSparsity - (1 - target / total)) < 1e-12);
    }
  }));

test('ties are broken deterministically: earlier tensor, then earlier index', () =>
  scope(() => {
    const sc = new Map([
      ['x', zeros([2, 3])],
      ['y', zeros([4])],
    ]);
    const r = allocate(sc, { sparsity: 0.5 });
    assert.deepEqual(r.masks.get('x')!.toArray(), [1, 1, 1, 1, 1, 0]);
    assert.deepEqual(r.masks.get('y')!.toArray(), [0, 0, 0, 0]);
    assert.deepEqual(r.collapsed, ['y']);
    const again = allocate(sc, { sparsity: 0.5 });
    assert.deepEqual(again.masks.get('x')!.toArray(), r.masks.get('x')!.toArray());
  }));

test('layerwise keeps the same density in every tensor and hits the exact total', () =>
  scope(() => {
    const sc = scores({ a: [50], b: [30], c: [20] });
    const r = allocate(sc, { sparsity: 0.6, allocation: { kind: 'layerwise' } });
    assert.equal(r.totalKept, 40);
    assert.deepEqual([...r.kept.values()], [20, 12, 8]);
    // Within a tensor, the kept weights are its top scores.
    const a = sc.get('a')!.toArray();
    const keptA = r.masks.get('a')!.toArray();
    const minKept = Math.min(...a.filter((_, i) => keptA[i] === 1));
    const maxDropped = Math.max(...a.filter((_, i) => keptA[i] === 0));
    assert.ok(minKept > maxDropped);
  }));

test('erk: densities follow (Σ dims)/(Π dims), capped at 1, exact total', () =>
  scope(() => {
    const sc = scores({ small: [4, 2], big: [64, 64], mid: [16, 16] });
    const total = 8 + 4096 + 256;
    const r = allocate(sc, { sparsity: 0.9, allocation: { kind: 'erk' } });
    assert.equal(r.totalKept, Math.round(0.1 * total));
    const d = (n: string, size: number) => r.kept.get(n)! / size;
    assert.equal(d('small', 8), 1, 'the smallest tensor is capped dense');
    // Uncapped tensors: density ratio equals the ERK ratio (within rounding).
    const ratio = d('mid', 256) / d('big', 4096);
    const erk = 32 / 256 / (128 / 4096);
    assert.ok(Math.abs(ratio - erk) / erk < 0.05, `ratio ${ratio} vs ${erk}`);
  }));

test('minimum density guard keeps every tensor alive', () =>
  scope(() => {
    const sc = new Map([
      ['tiny', tensor([0.001, 0.002, 0.003, 0.004])],
      ['big', tensor(Array.from({ length: 96 }, (_, i) => 1 + i))],
    ]);
    const plain = allocate(sc, { sparsity: 0.5 });
    assert.deepEqual(plain.collapsed, ['tiny']);
    const guarded = allocate(sc, { sparsity: 0.5, minDensity: 0.5 });
    assert.equal(guarded.kept.get('tiny'), 2);
    assert.deepEqual(guarded.masks.get('tiny')!.toArray(), [0, 0, 1, 1]);
    assert.equal(guarded.totalKept, 50);
    assert.deepEqual(guarded.collapsed, []);
  }));

test('bad input: sparsity out of [0, 1), NaN scores', () =>
  scope(() => {
    const sc = scores({ a: [3] });
    for (const q of [1, 1.5, -0.1, Number.NaN]) assert.throws(() => allocate(sc, { sparsity: q }), AllocationError);
    const bad = new Map([['w', tensor([1, Number.NaN, 2])]]);
    assert.throws(() => allocate(bad, { sparsity: 0.5 }), /score of 'w' has 1 NaN\/Inf/);
    assert.throws(() => allocate(new Map(), { sparsity: 0.5 }), /no prunable parameters/);
  }));

test('schedules: oneshot and iterative k^(r/R)', () => {
  assert.deepEqual(roundDensities(0.75, { kind: 'oneshot' }), [0.25]);
  const d = roundDensities(0.75, { kind: 'iterative', rounds: 2 });
  assert.equal(d.length, 2);
  assert.ok(Math.abs(d[0]! - 0.5) < 1e-12);
  assert.equal(d[1], 0.25);
  assert.throws(() => roundDensities(0.5, { kind: 'iterative', rounds: 0 }), /positive integer/);
});
