// Gradients of reductions over all elements and over dims, against float64 finite differences.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scope } from '../../src/engine/index.js';
import { expectClose, gradcheck } from '../helpers/check.js';
import { f64, leaf } from './util.js';

const t = (name: string, fn: () => void) => test(name, () => scope(fn));

t('sum: all, one dim, several dims, keepdim, dtype', () => {
  const x = leaf([2, 3, 4], 1);
  gradcheck((v) => v.sum(), [x]);
  gradcheck((v) => v.sum(1), [x]);
  gradcheck((v) => v.sum([0, 2], true), [x]);
  gradcheck((v) => v.sum(-1, false, 'float64'), [x]);
  assert.deepEqual(x.sum([0, 2], true).shape, [1, 3, 1]);
  expectClose(f64([1, 2, 3, 4], [2, 2]).sum(0), [4, 6]);
  assert.equal(f64([1, 2]).sum(null, false, 'float32').dtype, 'float32');
});

t('mean: all, dims, keepdim', () => {
  const x = leaf([2, 3, 4], 2);
  gradcheck((v) => v.mean(), [x]);
  gradcheck((v) => v.mean([1, 2]), [x]);
  gradcheck((v) => v.mean(0, true), [x]);
  expectClose(f64([1, 2, 3, 4], [2, 2]).mean(1), [1.5, 3.5]);
});

t('var: unbiased and population, all and over dims', () => {
  const x = leaf([3, 4], 3);
  gradcheck((v) => v.var(), [x]);
  gradcheck((v) => v.var(1), [x]);
  gradcheck((v) => v.var(0, true, 0), [x]);
  // [1, 2, 3, 4]: mean 2.5, squared deviations sum 5.
  expectClose(f64([1, 2, 3, 4]).var(), [5 / 3]);
  expectClose(f64([1, 2, 3, 4]).var(null, false, 0), [5 / 4]);
});

t('norm: p = 2, 1, 3', () => {
  const x = leaf([2, 3], 4, (v) => v.add(v.sign().mul(0.2)));
  gradcheck((v) => v.norm(), [x]);
  gradcheck((v) => v.norm(1), [x]);
  gradcheck((v) => v.norm(3), [x]);
  expectClose(f64([3, -4]).norm(), [5]);
  expectClose(f64([3, -4]).norm(1), [7]);
});

t('logsumexp over dims', () => {
  const x = leaf([3, 4], 5);
  gradcheck((v) => v.logsumexp(1), [x]);
  gradcheck((v) => v.logsumexp([0, 1], true), [x]);
  expectClose(f64([0, 0]).logsumexp(0), [Math.log(2)]);
  // Stable for large inputs.
  expectClose(f64([1000, 1000]).logsumexp(0), [1000 + Math.log(2)]);
});

t('cumsum along each dim', () => {
  const x = leaf([3, 4], 6);
  gradcheck((v) => v.cumsum(0), [x]);
  gradcheck((v) => v.cumsum(-1), [x]);
  expectClose(f64([1, 2, 3]).cumsum(0), [1, 3, 6]);
});

t('max / min (amax, amin): all and over dims', () => {
  const x = leaf([3, 4], 7);
  gradcheck((v) => v.max(), [x]);
  gradcheck((v) => v.min(), [x]);
  gradcheck((v) => v.max(1), [x]);
  gradcheck((v) => v.min([0], true), [x]);
  expectClose(f64([1, 5, 3, 2], [2, 2]).max(0), [3, 5]);
  expectClose(f64([1, 5, 3, 2], [2, 2]).min(1), [1, 2]);
});

t('maxDim / minDim: values differentiable, indices exact', () => {
  const x = leaf([3, 4], 8);
  gradcheck((v) => v.maxDim(1).values, [x]);
  gradcheck((v) => v.minDim(0, true).values, [x]);
  const m = f64([1, 7, 3, 9, 2, 4], [2, 3]);
  const r = m.maxDim(1);
  expectClose(r.values, [7, 9]);
  assert.deepEqual(r.indices.toArray(), [1, 0]);
  assert.equal(r.indices.dtype, 'int64');
  const s = m.minDim(0, true);
  assert.deepEqual(s.values.shape, [1, 3]);
  expectClose(s.values, [1, 2, 3]);
  assert.deepEqual(s.indices.toArray(), [0, 1, 0]);
});

t('topk / kthvalue / sort: values differentiable', () => {
  const x = leaf([3, 5], 9);
  gradcheck((v) => v.topk(2).values, [x]);
  gradcheck((v) => v.topk(2, 0, false).values, [x]);
  gradcheck((v) => v.kthvalue(3, 1).values, [x]);
  gradcheck((v) => v.sort(1).values, [x]);
  gradcheck((v) => v.sort(0, true).values, [x]);
});

t('trace', () => {
  gradcheck((v) => v.trace(), [leaf([3, 3], 10)]);
  expectClose(f64([1, 2, 3, 4], [2, 2]).trace(), [5]);
});
