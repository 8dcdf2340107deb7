// Gradients of convolution, pooling, normalisation, padding and resampling against float64 finite differences,
// and forward values against hand-computed answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nn, scope, zeros, ones } from '../../src/engine/index.js';
import { expectClose, gradcheck } from '../helpers/check.js';
import { f64, leaf, positive } from './util.js';

const t = (name: string, fn: () => void) => test(name, () => scope(fn));
const iota = (n: number, shape: number[]) =>
  f64(
    Array.from({ length: n }, (_, i) => i),
    shape,
  );

t('conv2d: bias, stride, padding, dilation', () => {
  const x = leaf([2, 2, 5, 5], 1);
  const w = leaf([3, 2, 3, 3], 2);
  const b = leaf([3], 3);
  gradcheck((a, k, c) => nn.conv2d(a, k, c), [x, w, b]);
  gradcheck((a, k) => nn.conv2d(a, k, null, { stride: 2, padding: 1 }), [x, w]);
  gradcheck((a, k, c) => nn.conv2d(a, k, c, { stride: [1, 2], padding: [2, 1], dilation: 2 }), [x, w, b]);
  assert.deepEqual(nn.conv2d(x, w, b, { stride: 2, padding: 1 }).shape, [2, 3, 3, 3]);
  // A 2×2 ones kernel sums each window of [[0,1,2],[3,4,5],[6,7,8]].
  expectClose(nn.conv2d(iota(9, [1, 1, 3, 3]), ones([1, 1, 2, 2], { dtype: 'float64' })), [8, 12, 20, 24]);
});

t('conv2d: groups = 2 and depthwise (groups = channels)', () => {
  const x = leaf([1, 4, 4, 4], 4);
  gradcheck((a, k, c) => nn.conv2d(a, k, c, { groups: 2, padding: 1 }), [x, leaf([6, 2, 3, 3], 5), leaf([6], 6)]);
  gradcheck((a, k) => nn.conv2d(a, k, null, { groups: 4, stride: 2, padding: 1 }), [x, leaf([4, 1, 3, 3], 7)]);
  gradcheck((a, k) => nn.conv2d(a, k, null, { groups: 4 }), [x, leaf([8, 1, 2, 2], 8)]);
  // Depthwise: channel c only sees channel c; a 1×1 kernel of c+1 scales it.
  const dw = nn.conv2d(iota(8, [1, 2, 2, 2]), f64([1, 2], [2, 1, 1, 1]), null, { groups: 2 });
  expectClose(dw, [0, 1, 2, 3, 8, 10, 12, 14]);
});

t('unfold (im2col): W·unfold(x) is the convolution; gradient', () => {
  const x = leaf([2, 3, 5, 6], 41);
  const w = leaf([4, 3, 3, 2], 42);
  for (const o of [{}, { stride: 2, padding: 1 }, { stride: [1, 2] as const, padding: [2, 1] as const, dilation: 2 }]) {
    const cols = nn.unfold(x, [3, 2], o);
    const y = nn.conv2d(x, w, null, o);
    assert.deepEqual(cols.shape, [2, 3 * 3 * 2, y.shape[2]! * y.shape[3]!]);
    expectClose(w.reshape([4, -1]).matmul(cols).reshape(y.shape), y, { rtol: 1e-12, atol: 1e-12 });
    gradcheck((a) => nn.unfold(a, [3, 2], o), [x]);
  }
  // One channel, 2×2 kernel over [[0,1,2],[3,4,5]]: columns are the windows, rows the kernel positions.
  expectClose(nn.unfold(iota(6, [1, 1, 2, 3]), 2), [0, 1, 1, 2, 3, 4, 4, 5]);
});

t('maxPool2d: kernel, stride, padding, dilation, ceil mode', () => {
  const x = leaf([1, 2, 6, 6], 9);
  gradcheck((a) => nn.maxPool2d(a, 2), [x]);
  gradcheck((a) => nn.maxPool2d(a, 3, { stride: 2, padding: 1 }), [x]);
  gradcheck((a) => nn.maxPool2d(a, 2, { stride: 1, dilation: 2 }), [x]);
  gradcheck((a) => nn.maxPool2d(a, 4, { stride: 4, ceilMode: true }), [x]);
  expectClose(nn.maxPool2d(iota(16, [1, 1, 4, 4]), 2), [5, 7, 13, 15]);
});

t('avgPool2d: padding with and without counting it, ceil mode', () => {
  const x = leaf([1, 2, 5, 5], 10);
  gradcheck((a) => nn.avgPool2d(a, 2), [x]);
  gradcheck((a) => nn.avgPool2d(a, 3, { stride: 2, padding: 1 }), [x]);
  gradcheck((a) => nn.avgPool2d(a, 3, { stride: 2, padding: 1, countIncludePad: false }), [x]);
  gradcheck((a) => nn.avgPool2d(a, 2, { ceilMode: true }), [x]);
  expectClose(nn.avgPool2d(iota(16, [1, 1, 4, 4]), 2), [2.5, 4.5, 10.5, 12.5]);
  // Corner window of 2×2 with padding 1: one real value (0) over 4 slots vs over 1.
  expectClose(nn.avgPool2d(iota(4, [1, 1, 2, 2]).add(4), 2, { stride: 2, padding: 1 }), [1, 1.25, 1.5, 1.75]);
  expectClose(
    nn.avgPool2d(iota(4, [1, 1, 2, 2]).add(4), 2, { stride: 2, padding: 1, countIncludePad: false }),
    [4, 5, 6, 7],
  );
});

t('adaptiveAvgPool2d: global, divisible and overlapping windows', () => {
  const x = leaf([2, 2, 5, 5], 11);
  gradcheck((a) => nn.adaptiveAvgPool2d(a, 1), [x]);
  gradcheck((a) => nn.adaptiveAvgPool2d(a, [2, 3]), [x]);
  expectClose(nn.adaptiveAvgPool2d(iota(16, [1, 1, 4, 4]), 1), [7.5]);
  expectClose(nn.adaptiveAvgPool2d(iota(16, [1, 1, 4, 4]), 2), [2.5, 4.5, 10.5, 12.5]);
});

t('batchNorm train: gradient wrt input, weight, bias; running stats updated exactly', () => {
  const x = leaf([4, 3, 2, 2], 12);
  const w = leaf([3], 13);
  const b = leaf([3], 14);
  const rm = zeros([3], { dtype: 'float64' });
  const rv = ones([3], { dtype: 'float64' });
  gradcheck(
    (a, g, c) => nn.batchNorm(a, { weight: g, bias: c, runningMean: rm, runningVar: rv, training: true }),
    [x, w, b],
  );
  gradcheck((a) => nn.batchNorm(a, { training: true, eps: 1e-3 }), [x]);
  // Exact update: mean' = (1-m)·mean + m·μ_B, var' = (1-m)·var + m·σ²_B (unbiased).
  const xs = f64([1, 2, 3, 7, 5, 6, 0, 8], [4, 2, 1, 1]);
  const m0 = f64([1, -1]);
  const v0 = f64([2, 3]);
  const y = nn.batchNorm(xs, { runningMean: m0, runningVar: v0, training: true, momentum: 0.25, eps: 0 });
  // channel 0: 1, 3, 5, 0 → μ 2.25, Σ(x-μ)² 14.75; channel 1: 2, 7, 6, 8 → μ 5.75, Σ 20.75.
  expectClose(m0, [0.75 * 1 + 0.25 * 2.25, 0.75 * -1 + 0.25 * 5.75], { rtol: 1e-12 });
  expectClose(v0, [0.75 * 2 + 0.25 * (14.75 / 3), 0.75 * 3 + 0.25 * (20.75 / 3)], { rtol: 1e-12 });
  expectClose(
    y.index(1, 0).flatten(),
    [1, 3, 5, 0].map((v) => (v - 2.25) / Math.sqrt(14.75 / 4)),
    { rtol: 1e-12 },
  );
});

t('batchNorm eval: uses running stats, gradient wrt input, weight, bias', () => {
  const rm = leaf([3], 15).detach();
  const rv = positive([3], 16).detach();
  const opts = { runningMean: rm, runningVar: rv, training: false };
  gradcheck(
    (a, g, c) => nn.batchNorm(a, { ...opts, weight: g, bias: c }),
    [leaf([2, 3, 2, 2], 17), leaf([3], 18), leaf([3], 19)],
  );
  const before = rm.toArray();
  const y = nn.batchNorm(f64([4, 9], [1, 2, 1, 1]), {
    runningMean: f64([1, 1]),
    runningVar: f64([9, 16]),
    weight: f64([2, 1]),
    bias: f64([0, 1]),
    training: false,
    eps: 0,
  });
  expectClose(y, [2 * (3 / 3), 8 / 4 + 1], { rtol: 1e-12 });
  nn.batchNorm(leaf([2, 3, 2, 2], 20), opts);
  assert.deepEqual(rm.toArray(), before, 'eval mode must not touch running stats');
});

t('layerNorm: last dim and last two dims, affine', () => {
  const x = leaf([2, 3, 4], 21);
  gradcheck((a) => nn.layerNorm(a, 4), [x]);
  gradcheck((a, g, c) => nn.layerNorm(a, [3, 4], g, c), [x, leaf([3, 4], 22), leaf([3, 4], 23)]);
  // [1, 2, 3]: mean 2, population variance 2/3.
  const s = Math.sqrt(2 / 3);
  expectClose(nn.layerNorm(f64([1, 2, 3], [1, 3]), 3, null, null, 0), [-1 / s, 0, 1 / s], { rtol: 1e-12 });
});

t('pad: constant (value), reflect, replicate', () => {
  const x = leaf([1, 2, 3, 3], 24);
  gradcheck((a) => nn.pad(a, [1, 2, 0, 1], 'constant', 0.5), [x]);
  gradcheck((a) => nn.pad(a, [1, 1, 2, 1]), [leaf([2, 3], 25)]);
  gradcheck((a) => nn.pad(a, [1, 2, 2, 1], 'reflect'), [x]);
  gradcheck((a) => nn.pad(a, [2, 1, 1, 2], 'replicate'), [x]);
  const r = iota(3, [1, 1, 1, 3]);
  expectClose(nn.pad(r, [2, 1, 0, 0], 'constant', -1), [-1, -1, 0, 1, 2, -1]);
  expectClose(nn.pad(r, [2, 1, 0, 0], 'reflect'), [2, 1, 0, 1, 2, 1]);
  expectClose(nn.pad(r, [2, 1, 0, 0], 'replicate'), [0, 0, 0, 1, 2, 2]);
});

t('interpolate: bilinear (align corners or not, up and down, antialias), nearest', () => {
  const x = leaf([1, 2, 4, 4], 26);
  gradcheck((a) => nn.interpolate(a, [6, 7]), [x]);
  gradcheck((a) => nn.interpolate(a, [3, 2], { alignCorners: true }), [x]);
  gradcheck((a) => nn.interpolate(a, [2, 3], { antialias: true }), [x]);
  gradcheck((a) => nn.interpolate(a, [6, 3], { mode: 'nearest' }), [x]);
  const r = f64([0, 3], [1, 1, 1, 2]);
  expectClose(nn.interpolate(r, [1, 4], { alignCorners: true }), [0, 1, 2, 3], { rtol: 1e-12 });
  // Half-pixel centres: output x=0.5·(i+0.5)−0.5 clamped → 0, 0.75, 2.25, 3.
  expectClose(nn.interpolate(r, [1, 4]), [0, 0.75, 2.25, 3], { rtol: 1e-12 });
  expectClose(nn.interpolate(r, [1, 4], { mode: 'nearest' }), [0, 0, 3, 3]);
});
