// Gradients of elementwise ops against float64 central finite differences (plus a few exact forward values).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scope, where, type Tensor } from '../../src/engine/index.js';
import { expectClose, gradcheck } from '../helpers/check.js';
import { awayFromZero, bool, f64, leaf, positive } from './util.js';

const t = (name: string, fn: () => void) => test(name, () => scope(fn));

t('add: tensor, broadcast, scalar and alpha', () => {
  const a = leaf([2, 3], 1);
  const b = leaf([3], 2);
  gradcheck((x, y) => x.add(y), [a, b]);
  gradcheck((x, y) => x.add(y, 2.5), [a, b]);
  gradcheck((x) => x.add(1.5), [a]);
  expectClose(f64([1, 2]).add(f64([10, 20]), 3), [31, 62]);
});

t('sub: tensor, broadcast, scalar and alpha', () => {
  const a = leaf([2, 3], 3);
  const b = leaf([2, 1], 4);
  gradcheck((x, y) => x.sub(y), [a, b]);
  gradcheck((x, y) => x.sub(y, -0.5), [a, b]);
  gradcheck((x) => x.sub(2), [a]);
  expectClose(f64([1, 2]).sub(f64([10, 20]), 2), [-19, -38]);
});

t('mul: tensor, broadcast and scalar', () => {
  gradcheck((x, y) => x.mul(y), [leaf([2, 3], 5), leaf([1, 3], 6)]);
  gradcheck((x) => x.mul(-1.7), [leaf([4], 7)]);
});

t('div: tensor, broadcast and scalar', () => {
  gradcheck((x, y) => x.div(y), [leaf([2, 3], 8), awayFromZero([3], 9, 0.5)]);
  gradcheck((x) => x.div(3), [leaf([4], 10)]);
  expectClose(f64([1, -1, 0]).div(0), [Infinity, -Infinity, NaN]);
});

t('pow: tensor^scalar, tensor^tensor', () => {
  gradcheck((x) => x.pow(3), [leaf([5], 11)]);
  gradcheck((x) => x.pow(0.5), [positive([5], 12)]);
  gradcheck((x, y) => x.pow(y), [positive([2, 3], 13), leaf([2, 3], 14)]);
  expectClose(f64([2, 3]).pow(2), [4, 9]);
});

t('neg, abs, square, reciprocal', () => {
  gradcheck((x) => x.neg(), [leaf([5], 15)]);
  gradcheck((x) => x.abs(), [awayFromZero([6], 16)]);
  gradcheck((x) => x.square(), [leaf([5], 17)]);
  gradcheck((x) => x.reciprocal(), [awayFromZero([5], 18, 0.5)]);
  expectClose(f64([-2, 0, 3]).abs(), [2, 0, 3]);
});

t('sqrt, rsqrt, exp, log', () => {
  gradcheck((x) => x.sqrt(), [positive([5], 19)]);
  gradcheck((x) => x.rsqrt(), [positive([5], 20)]);
  gradcheck((x) => x.exp(), [leaf([5], 21)]);
  gradcheck((x) => x.log(), [positive([5], 22)]);
  expectClose(f64([0, 4]).sqrt(), [0, 2]);
  expectClose(f64([0, -1, 1]).log(), [-Infinity, NaN, 0]);
});

t('erf, sin, cos', () => {
  gradcheck((x) => x.erf(), [leaf([5], 23)]);
  gradcheck((x) => x.sin(), [leaf([5], 24)]);
  gradcheck((x) => x.cos(), [leaf([5], 25)]);
  expectClose(f64([0]).erf(), [0]);
});

t('clamp: both bounds, min only, max only', () => {
  // 3·randn rarely lands within 1e-6 of a bound; the values straddle both bounds.
  const x = leaf([12], 26, (v) => v.mul(3));
  gradcheck((v) => v.clamp(-1, 2), [x]);
  gradcheck((v) => v.clamp(0.5, null), [x]);
  gradcheck((v) => v.clamp(null, -0.5), [x]);
  expectClose(f64([-3, 0, 3]).clamp(-1, 2), [-1, 0, 2]);
});

t('where: tensor/tensor, tensor/scalar', () => {
  const c = bool([1, 0, 1, 0, 0, 1]).reshape([2, 3]);
  gradcheck((a, b) => where(c, a, b), [leaf([2, 3], 27), leaf([2, 3], 28)]);
  gradcheck((a) => where(c, a, 0.5), [leaf([2, 3], 29)]);
  gradcheck((b) => where(c, -1, b), [leaf([2, 3], 30)]);
  expectClose(where(bool([1, 0]), f64([1, 2]), f64([3, 4])), [1, 4]);
  expectClose(where(bool([1, 0]), 7, 8).to('float64'), [7, 8]);
});

t('maskedFill: scalar and 0-d tensor value', () => {
  const m = bool([0, 1, 1, 0, 0, 0]).reshape([2, 3]);
  gradcheck((a) => a.maskedFill(m, 3.5), [leaf([2, 3], 31)]);
  gradcheck((a, v) => a.maskedFill(m, v), [leaf([2, 3], 32), leaf([], 33)]);
  expectClose(f64([1, 2, 3]).maskedFill(bool([0, 1, 0]), -9), [1, -9, 3]);
});

t('maximum, minimum', () => {
  const a = leaf([2, 3], 34);
  const b = leaf([2, 3], 35);
  gradcheck((x, y) => x.maximum(y), [a, b]);
  gradcheck((x, y) => x.minimum(y), [a, b]);
  expectClose(f64([1, 5]).maximum(f64([3, 2])), [3, 5]);
  expectClose(f64([1, 5]).minimum(f64([3, 2])), [1, 2]);
  expectClose(f64([NaN, 1]).maximum(f64([0, 2])), [NaN, 2]);
});

t('to float64 (identity) and float64 → float32 → float64 (rounding only)', () => {
  const x = leaf([4], 36);
  gradcheck((v) => v.to('float64'), [x]);
  gradcheck((v) => v.double(), [x]);
  // float32 rounding is ~6e-8 relative: a large step keeps the difference quotient exact enough.
  gradcheck((v) => v.to('float32').to('float64').mul(3), [x], { eps: 1e-2, rtol: 1e-4, atol: 1e-4 });
  const y = x.float();
  assert.equal(y.dtype, 'float32');
  assert.equal(y.to('int64').dtype, 'int64');
});

t('contiguous(channelsLast), isChannelsLast: NHWC memory order, same values and gradients', () => {
  const x = leaf([2, 3, 4, 5], 38);
  const cl = x.contiguous(true);
  assert.equal(cl.isChannelsLast, true);
  assert.equal(x.isChannelsLast, false);
  assert.deepEqual(cl.shape, [2, 3, 4, 5]);
  expectClose(cl, x, { rtol: 0, atol: 0 });
  // Back to row-major order: the same values again, and the layout query says so.
  assert.equal(cl.contiguous().isChannelsLast, false);
  // A permuted view of an NCHW tensor with NHWC strides is channels-last too (the query reads strides, not history).
  assert.equal(x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]).isChannelsLast, true);
  gradcheck((v) => v.contiguous(true).mul(v), [x]);
  // Not 4-D: no channels-last layout.
  assert.equal(leaf([3, 4], 39).isChannelsLast, false);
});

t('clone, contiguous, detach', () => {
  const x = leaf([2, 3], 37);
  gradcheck((v) => v.clone(), [x]);
  gradcheck((v) => v.transpose(0, 1).contiguous(), [x]);
  const d = x.detach();
  assert.equal(d.requiresGrad, false);
  expectClose(d, x);
  // A clone owns new memory: writing it leaves the source alone.
  const c = x.detach().clone();
  c.fill_(0);
  assert.notDeepEqual(x.toArray(), c.toArray());
});

t('composite: chain of elementwise ops in one graph', () => {
  const f = (x: Tensor, y: Tensor) => x.mul(y).exp().add(y.square()).div(x.square().add(1)).log();
  gradcheck(f, [leaf([3, 2], 38), leaf([3, 2], 39)]);
});
