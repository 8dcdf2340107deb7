// Gradients of products and dense linear algebra against float64 finite differences, and exact identities.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eye, linalg, nn, scope, type Tensor } from '../../src/engine/index.js';
import { expectClose, gradcheck } from '../helpers/check.js';
import { f64, leaf, spdOf, sym } from './util.js';

const t = (name: string, fn: () => void) => test(name, () => scope(fn));
/** Well-conditioned square matrix: X + n·I. */
const wellConditioned = (n: number, seed: number) => leaf([n, n], seed, (x) => x.add(eye(n, { dtype: 'float64' }), n));

t('matmul: 2-D, batched, broadcast, vector', () => {
  gradcheck((a, b) => a.matmul(b), [leaf([2, 3], 1), leaf([3, 4], 2)]);
  gradcheck((a, b) => a.matmul(b), [leaf([2, 2, 3], 3), leaf([3, 2], 4)]);
  gradcheck((a, b) => a.matmul(b), [leaf([3], 5), leaf([3, 2], 6)]);
  gradcheck((a, b) => linalg.matmul(a, b), [leaf([2, 3], 7), leaf([3], 8)]);
  expectClose(f64([1, 2, 3, 4], [2, 2]).matmul(f64([5, 6], [2, 1])), [17, 39]);
});

t('mm, bmm, dot, outer', () => {
  gradcheck((a, b) => a.mm(b), [leaf([2, 3], 9), leaf([3, 2], 10)]);
  gradcheck((a, b) => a.bmm(b), [leaf([2, 2, 3], 11), leaf([2, 3, 2], 12)]);
  gradcheck((a, b) => a.dot(b), [leaf([4], 13), leaf([4], 14)]);
  gradcheck((a, b) => a.outer(b), [leaf([3], 15), leaf([2], 16)]);
  expectClose(f64([1, 2, 3]).dot(f64([4, 5, 6])), [32]);
  expectClose(f64([1, 2]).outer(f64([3, 4])), [3, 4, 6, 8]);
});

t('linear with and without bias, batched input', () => {
  gradcheck((x, w, b) => nn.linear(x, w, b), [leaf([4, 3], 17), leaf([2, 3], 18), leaf([2], 19)]);
  gradcheck((x, w) => nn.linear(x, w), [leaf([2, 2, 3], 20), leaf([2, 3], 21)]);
  // y = x Wᵀ + b
  expectClose(nn.linear(f64([1, 2], [1, 2]), f64([1, 0, 1, 1], [2, 2]), f64([10, 20])), [11, 23]);
});

t('addmm with beta and alpha', () => {
  gradcheck((c, a, b) => nn.addmm(c, a, b), [leaf([2, 2], 22), leaf([2, 3], 23), leaf([3, 2], 24)]);
  gradcheck((c, a, b) => nn.addmm(c, a, b, 0.5, -2), [leaf([2], 25), leaf([2, 3], 26), leaf([3, 2], 27)]);
  expectClose(nn.addmm(f64([1], [1, 1]), f64([2], [1, 1]), f64([3], [1, 1]), 2, 10), [62]);
});

t('cholesky of X Xᵀ + nI: L Lᵀ = A, gradient', () => {
  const x = leaf([3, 3], 28);
  gradcheck((v) => linalg.cholesky(spdOf(v)), [x]);
  const a = spdOf(x.detach());
  const l = linalg.cholesky(a);
  expectClose(l.matmul(l.t()), a, { rtol: 1e-10, atol: 1e-10 });
  expectClose(l.triu(1), new Float64Array(9), {}, 'upper part of L');
});

t('choleskyInverse: (L Lᵀ)⁻¹ and its gradient', () => {
  // tril(X) with a positive diagonal is a valid Cholesky factor; only its lower triangle is read.
  const x = leaf([3, 3], 29, (v) => v.mul(0.3).add(eye(3, { dtype: 'float64' }), 2));
  gradcheck((v) => linalg.choleskyInverse(v.tril()), [x]);
  gradcheck((v) => linalg.choleskyInverse(linalg.cholesky(spdOf(v))), [leaf([3, 3], 30)]);
  const l = x.detach().tril();
  const ainv = linalg.choleskyInverse(l);
  expectClose(ainv.matmul(l.matmul(l.t())), eye(3, { dtype: 'float64' }), { atol: 1e-12 });
});

t('solve: A X = B for matrix and vector B', () => {
  gradcheck((a, b) => linalg.solve(a, b), [wellConditioned(3, 31), leaf([3, 2], 32)]);
  gradcheck((a, b) => linalg.solve(a, b), [wellConditioned(3, 33), leaf([3], 34)]);
  const a = f64([2, 1, 1, 3], [2, 2]);
  expectClose(linalg.solve(a, f64([3, 5])), [0.8, 1.4], { rtol: 1e-12 });
});

t('inv', () => {
  gradcheck((a) => linalg.inv(a), [wellConditioned(3, 35)]);
  expectClose(linalg.inv(f64([4, 7, 2, 6], [2, 2])), [0.6, -0.7, -0.2, 0.4], { rtol: 1e-12 });
});

t('eigh: eigenvalues and V diag(w) Vᵀ (sign-invariant) gradients', () => {
  const x = leaf([4, 4], 36);
  gradcheck((v) => linalg.eigh(sym(v)).values, [x]);
  // A fixed non-uniform weight per eigenpair makes a nonlinear, sign-invariant function of the eigenvectors.
  const w = f64([1, -2, 3, 0.5]);
  const recon = (v: Tensor) => {
    const { vectors } = linalg.eigh(sym(v));
    return vectors.mul(w).matmul(vectors.t());
  };
  gradcheck(recon, [x]);
  const a = f64([2, 1, 1, 2], [2, 2]);
  const { values, vectors } = linalg.eigh(a);
  expectClose(values, [1, 3], { rtol: 1e-12 });
  expectClose(vectors.mul(values).matmul(vectors.t()), a, { atol: 1e-12 });
});

t('qr: Q R = A, Qᵀ Q = I, R upper; gradients of Q and R', () => {
  const x = leaf([4, 3], 37);
  gradcheck((v) => linalg.qr(v).q, [x]);
  gradcheck((v) => linalg.qr(v).r, [x]);
  const { q, r } = linalg.qr(x.detach());
  assert.deepEqual(q.shape, [4, 3]);
  assert.deepEqual(r.shape, [3, 3]);
  expectClose(q.matmul(r), x.detach(), { atol: 1e-12 });
  expectClose(q.t().matmul(q), eye(3, { dtype: 'float64' }), { atol: 1e-12 });
  expectClose(r.tril(-1), new Float64Array(9), {}, 'below-diagonal part of R');
});
