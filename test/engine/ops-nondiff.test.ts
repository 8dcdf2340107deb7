// Non-differentiable ops: forward values against hand-computed answers, including 0, NaN and ±inf,
// and seeded samplers (range, distinctness, repeatability).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bernoulli, full, grad, manualSeed, nn, randint, randperm, scope } from '../../src/engine/index.js';
import { expectClose } from '../helpers/check.js';
import { bool, f64, int64, leaf } from './util.js';

const t = (name: string, fn: () => void) => test(name, () => scope(fn));
const N = NaN;
const I = Infinity;

t('comparisons eq/ne/lt/le/gt/ge: tensor, scalar, NaN and ±inf', () => {
  const a = f64([1, 2, 3, N, I, -I]);
  const b = f64([1, 3, 2, N, I, 0]);
  const bits = (x: ReturnType<typeof f64>) => {
    assert.equal(x.dtype, 'bool');
    return x.toArray();
  };
  assert.deepEqual(bits(a.eq(b)), [1, 0, 0, 0, 1, 0]);
  assert.deepEqual(bits(a.ne(b)), [0, 1, 1, 1, 0, 1]);
  assert.deepEqual(bits(a.lt(b)), [0, 1, 0, 0, 0, 1]);
  assert.deepEqual(bits(a.le(b)), [1, 1, 0, 0, 1, 1]);
  assert.deepEqual(bits(a.gt(b)), [0, 0, 1, 0, 0, 0]);
  assert.deepEqual(bits(a.ge(b)), [1, 0, 1, 0, 1, 0]);
  assert.deepEqual(bits(a.gt(2)), [0, 0, 1, 0, 1, 0]);
  assert.deepEqual(bits(a.eq(Infinity)), [0, 0, 0, 0, 1, 0]);
  assert.deepEqual(bits(int64([1, 5]).le(1)), [1, 0]);
  assert.deepEqual(bits(f64([1, 2, 3]).lt(f64([2]))), [1, 0, 0], 'broadcast');
});

t('logicalAnd / logicalOr / logicalNot, all / any (with empty tensors)', () => {
  const p = bool([1, 1, 0, 0]);
  const q = bool([1, 0, 1, 0]);
  assert.deepEqual(p.logicalAnd(q).toArray(), [1, 0, 0, 0]);
  assert.deepEqual(p.logicalOr(q).toArray(), [1, 1, 1, 0]);
  assert.deepEqual(p.logicalNot().toArray(), [0, 0, 1, 1]);
  assert.deepEqual(f64([0, 2, N]).logicalNot().toArray(), [1, 0, 0], 'nonzero (and NaN) is true');
  assert.equal(p.all().item(), 0);
  assert.equal(p.any().item(), 1);
  assert.equal(bool([1, 1]).all().item(), 1);
  assert.equal(bool([0, 0]).any().item(), 0);
  assert.equal(f64([]).all().item(), 1, 'all() of nothing is true');
  assert.equal(f64([]).any().item(), 0, 'any() of nothing is false');
});

t('isfinite / isnan', () => {
  const x = f64([0, -1, N, I, -I]);
  assert.deepEqual(x.isfinite().toArray(), [1, 1, 0, 0, 0]);
  assert.deepEqual(x.isnan().toArray(), [0, 0, 1, 0, 0]);
  assert.deepEqual(int64([3]).isfinite().toArray(), [1]);
});

t('floor / round (half to even) / sign, and their zero gradients', () => {
  const x = f64([-2.5, -0.5, 0, 0.5, 1.5, 2.5, 2.7, -I, I, N]);
  expectClose(x.floor(), [-3, -1, 0, 0, 1, 2, 2, -I, I, N]);
  expectClose(x.round(), [-2, -0, 0, 0, 2, 2, 3, -I, I, N]);
  expectClose(x.slice(0, 0, 9).sign(), [-1, -1, 0, 1, 1, 1, 1, -1, 1]);
  const v = leaf([4], 1);
  for (const op of ['floor', 'round', 'sign'] as const) {
    const [g] = grad(v[op]().mul(v.detach()).sum(), [v], { allowUnused: true });
    if (g) expectClose(g, [0, 0, 0, 0], {}, `${op} gradient`);
  }
});

t('remainder: sign follows the divisor (Python semantics), floats and ints, scalar', () => {
  expectClose(f64([-3, 3, -3, 3, 5.5]).remainder(f64([2, -2, -2, 2, 2])), [1, -1, -1, 1, 1.5]);
  assert.deepEqual(
    int64([-3, 3, 7])
      .remainder(int64([2, -2, 7]))
      .toArray(),
    [1, -1, 0],
  );
  expectClose(f64([7, -7]).remainder(3), [1, 2]);
  expectClose(f64([1]).remainder(0), [N]);
});

t('argmax: all, over a dim, keepdim, first of ties, NaN wins', () => {
  const m = f64([1, 9, 3, 7, 2, 8], [2, 3]);
  assert.deepEqual(m.argmax().toArray(), [1]);
  assert.deepEqual(m.argmax(0).toArray(), [1, 0, 1]);
  assert.deepEqual(m.argmax(1, true).shape, [2, 1]);
  assert.deepEqual(m.argmax(1, true).toArray(), [1, 2]);
  assert.deepEqual(f64([1, 3, 3, 2]).argmax().toArray(), [1]);
  assert.deepEqual(f64([1, N, 3]).argmax().toArray(), [1]);
  assert.equal(m.argmax().dtype, 'int64');
});

t('topk / kthvalue / sort: indices (largest, smallest, descending, stable)', () => {
  const x = f64([4, 1, 5, 9, 2, 6]);
  const top = x.topk(3);
  expectClose(top.values, [9, 6, 5]);
  assert.deepEqual(top.indices.toArray(), [3, 5, 2]);
  const low = x.topk(2, -1, false);
  expectClose(low.values, [1, 2]);
  assert.deepEqual(low.indices.toArray(), [1, 4]);
  const k = f64([3, 1, 2, 8, 7, 9], [2, 3]).kthvalue(2, 1);
  expectClose(k.values, [2, 8]);
  assert.deepEqual(k.indices.toArray(), [2, 0]);
  assert.deepEqual(f64([3, 1, 2], [1, 3]).kthvalue(1, 1, true).values.shape, [1, 1]);
  const s = x.sort();
  expectClose(s.values, [1, 2, 4, 5, 6, 9]);
  assert.deepEqual(s.indices.toArray(), [1, 4, 0, 2, 5, 3]);
  assert.deepEqual(x.sort(0, true).indices.toArray(), [3, 5, 2, 0, 4, 1]);
  assert.deepEqual(
    f64([2, 1, 2, 1, 2]).sort(0, false, true).indices.toArray(),
    [1, 3, 0, 2, 4],
    'stable keeps tie order',
  );
  const withNan = f64([2, N, 1]).sort();
  expectClose(withNan.values, [1, 2, N], {}, 'NaN sorts last');
});

t('nonzero: coordinates, one row per nonzero element', () => {
  const nz = f64([0, 3, 0, 0, -1, 2], [2, 3]).nonzero();
  assert.deepEqual(nz.shape, [3, 2]);
  assert.deepEqual(nz.toArray(), [0, 1, 1, 1, 1, 2]);
  assert.deepEqual(f64([0, 0]).nonzero().shape, [0, 1]);
  assert.deepEqual(f64([N]).nonzero().shape, [1, 1], 'NaN is nonzero');
});

t('oneHot', () => {
  const o = nn.oneHot(int64([2, 0, 1]), 4);
  assert.equal(o.dtype, 'int64');
  assert.deepEqual(o.shape, [3, 4]);
  assert.deepEqual(o.toArray(), [0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0]);
  assert.throws(() => nn.oneHot(int64([4]), 4), /oneHot/);
});

t('randint: range, dtype, seeded repeatability', () => {
  manualSeed(7);
  const a = randint(-3, 4, [2000]);
  assert.equal(a.dtype, 'int64');
  const v = a.toArray();
  assert.ok(v.every((x) => Number.isInteger(x) && x >= -3 && x < 4));
  for (let k = -3; k < 4; k++) assert.ok(v.includes(k), `value ${k} drawn`);
  manualSeed(7);
  assert.deepEqual(randint(-3, 4, [2000]).toArray(), v);
});

t('randperm: a permutation, seeded', () => {
  manualSeed(3);
  const p = randperm(50).toArray();
  assert.deepEqual(
    [...p].sort((x, y) => x - y),
    Array.from({ length: 50 }, (_, i) => i),
  );
  assert.notDeepEqual(
    p,
    Array.from({ length: 50 }, (_, i) => i),
  );
  manualSeed(3);
  assert.deepEqual(randperm(50).toArray(), p);
});

t('bernoulli: p = 0 and 1 are exact, p = 0.3 has the right rate, seeded', () => {
  const p = f64([0, 1, 0, 1]);
  assert.deepEqual(bernoulli(p).toArray(), [0, 1, 0, 1]);
  manualSeed(5);
  const b = bernoulli(full([4000], 0.3, { dtype: 'float64' }));
  assert.equal(b.dtype, 'float64');
  const vals = b.toArray();
  assert.ok(vals.every((x) => x === 0 || x === 1));
  const rate = vals.reduce<number>((s, x) => s + x, 0) / vals.length;
  // 4000 draws: the standard error is 0.0072, so ±0.04 is > 5 sigma.
  assert.ok(Math.abs(rate - 0.3) < 0.04, `rate ${rate}`);
  manualSeed(5);
  assert.deepEqual(bernoulli(full([4000], 0.3, { dtype: 'float64' })).toArray(), vals);
});
