// Gradients of shape, indexing and gather/scatter ops against float64 finite differences, plus exact forward values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cat, scope, stack } from '../../src/engine/index.js';
import { expectClose, gradcheck } from '../helpers/check.js';
import { bool, f64, int64, leaf } from './util.js';

const t = (name: string, fn: () => void) => test(name, () => scope(fn));
const iota = (n: number, shape: number[]) =>
  f64(
    Array.from({ length: n }, (_, i) => i),
    shape,
  );

t('reshape, view, flatten', () => {
  const x = leaf([2, 3, 2], 1);
  gradcheck((v) => v.reshape([3, 4]), [x]);
  gradcheck((v) => v.reshape([-1]), [x]);
  gradcheck((v) => v.view([6, 2]), [x]);
  gradcheck((v) => v.flatten(1), [x]);
  gradcheck((v) => v.flatten(0, 1), [x]);
  assert.deepEqual(x.flatten(1).shape, [2, 6]);
  assert.deepEqual(x.flatten().shape, [12]);
});

t('permute, transpose, t', () => {
  const x = leaf([2, 3, 4], 2);
  gradcheck((v) => v.permute([2, 0, 1]), [x]);
  gradcheck((v) => v.transpose(0, 2), [x]);
  gradcheck((v) => v.t(), [leaf([2, 3], 3)]);
  assert.deepEqual(x.permute([2, 0, 1]).shape, [4, 2, 3]);
  // [[0,1,2],[3,4,5]]ᵀ read row-major after contiguous().
  expectClose(iota(6, [2, 3]).t().contiguous(), [0, 3, 1, 4, 2, 5]);
});

t('squeeze, unsqueeze, expand, repeat', () => {
  const x = leaf([2, 1, 3], 4);
  gradcheck((v) => v.squeeze(), [x]);
  gradcheck((v) => v.squeeze(1), [x]);
  gradcheck((v) => v.unsqueeze(0), [x]);
  gradcheck((v) => v.expand([2, 4, 3]), [x]);
  gradcheck((v) => v.repeat([2, 2, 1]), [x]);
  assert.deepEqual(x.squeeze().shape, [2, 3]);
  assert.deepEqual(x.unsqueeze(-1).shape, [2, 1, 3, 1]);
  expectClose(f64([1, 2]).repeat([2]), [1, 2, 1, 2]);
  expectClose(f64([1, 2], [2, 1]).expand([2, 2]), [1, 1, 2, 2]);
});

t('flip', () => {
  const x = leaf([2, 3], 5);
  gradcheck((v) => v.flip(0), [x]);
  gradcheck((v) => v.flip([0, 1]), [x]);
  expectClose(iota(6, [2, 3]).flip(1), [2, 1, 0, 5, 4, 3]);
});

t('cat, stack', () => {
  const a = leaf([2, 3], 6);
  const b = leaf([1, 3], 7);
  const c = leaf([2, 3], 8);
  gradcheck((x, y) => cat([x, y], 0), [a, b]);
  gradcheck((x, y) => cat([x, y], 1), [a, c]);
  gradcheck((x, y) => stack([x, y], 1), [a, c]);
  assert.deepEqual(stack([a, c], 0).shape, [2, 2, 3]);
  expectClose(cat([f64([1]), f64([2, 3])]), [1, 2, 3]);
});

t('split (equal chunks and sizes), narrow, slice, index', () => {
  const x = leaf([5, 3], 9);
  gradcheck((v) => v.split(2, 0)[2]!, [x]);
  gradcheck((v) => v.split([1, 2], 1)[1]!.mul(v.split([1, 2], 1)[0]!), [x]);
  gradcheck((v) => v.narrow(0, 1, 3), [x]);
  gradcheck((v) => v.slice(0, 1, 5, 2), [x]);
  gradcheck((v) => v.slice(1, null, -1), [x]);
  gradcheck((v) => v.index(1, 2), [x]);
  gradcheck((v) => v.index(0, -1), [x]);
  assert.deepEqual(
    x.split(2, 0).map((p) => p.shape[0]),
    [2, 2, 1],
  );
  const m = iota(6, [2, 3]);
  expectClose(m.narrow(1, 1, 2), [1, 2, 4, 5]);
  expectClose(m.slice(1, 0, 3, 2), [0, 2, 3, 5]);
  expectClose(m.index(0, 1), [3, 4, 5]);
});

t('indexSelect, gather', () => {
  const x = leaf([4, 3], 10);
  const idx = int64([3, 0, 3]);
  gradcheck((v) => v.indexSelect(0, idx), [x]);
  gradcheck((v) => v.indexSelect(1, int64([2, 2])), [x]);
  const g = int64([0, 2, 1, 1, 0, 0, 2, 1], [4, 2]);
  gradcheck((v) => v.gather(1, g), [x]);
  const m = iota(6, [2, 3]);
  expectClose(m.indexSelect(1, int64([2, 0])), [2, 0, 5, 3]);
  expectClose(m.gather(1, int64([2, 0, 1, 1], [2, 2])), [2, 0, 4, 4]);
});

t('scatter (tensor and scalar source), scatterAdd', () => {
  const base = leaf([3, 4], 11);
  const src = leaf([3, 2], 12);
  // Distinct indices per row so scatter has no write conflicts.
  const idx = int64([0, 3, 2, 1, 1, 0], [3, 2]);
  gradcheck((b, s) => b.scatter(1, idx, s), [base, src]);
  gradcheck((b) => b.scatter(1, idx, 9), [base]);
  const dup = int64([1, 1, 0, 0, 3, 3], [3, 2]);
  gradcheck((b, s) => b.scatterAdd(1, dup, s), [base, src]);
  const z = f64([0, 0, 0, 0]);
  expectClose(z.scatter(0, int64([3, 1]), f64([5, 6])), [0, 6, 0, 5]);
  expectClose(z.scatterAdd(0, int64([2, 2, 0]), f64([1, 2, 4])), [4, 0, 3, 0]);
});

t('maskedSelect', () => {
  const x = leaf([2, 3], 13);
  const m = bool([1, 0, 1, 0, 0, 1], [2, 3]);
  gradcheck((v) => v.maskedSelect(m), [x]);
  expectClose(iota(6, [2, 3]).maskedSelect(m), [0, 2, 5]);
});

t('diag (vector → matrix, matrix → vector, offsets), diagonal', () => {
  gradcheck((v) => v.diag(), [leaf([3], 14)]);
  gradcheck((v) => v.diag(1), [leaf([3], 15)]);
  gradcheck((v) => v.diag(), [leaf([3, 4], 16)]);
  gradcheck((v) => v.diag(-1), [leaf([3, 3], 17)]);
  gradcheck((v) => v.diagonal(), [leaf([3, 4], 18)]);
  gradcheck((v) => v.diagonal(0, 1, 2), [leaf([2, 3, 3], 19)]);
  expectClose(f64([1, 2]).diag().contiguous(), [1, 0, 0, 2]);
  expectClose(iota(9, [3, 3]).diag(1), [1, 5]);
  expectClose(iota(9, [3, 3]).diagonal(-1), [3, 7]);
});

t('triu, tril with offsets', () => {
  const x = leaf([3, 4], 20);
  gradcheck((v) => v.triu(), [x]);
  gradcheck((v) => v.triu(1), [x]);
  gradcheck((v) => v.tril(), [x]);
  gradcheck((v) => v.tril(-1), [x]);
  const m = iota(9, [3, 3]).add(1);
  expectClose(m.triu(), [1, 2, 3, 0, 5, 6, 0, 0, 9]);
  expectClose(m.tril(-1), [0, 0, 0, 4, 0, 0, 7, 8, 0]);
});
