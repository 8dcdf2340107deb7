// Double backward (the path every Hessian-vector product takes) for each op an HVP passes through:
// the gradient built with createGraph is itself checked against finite differences of gradients.
// Piecewise-linear ops (relu, max pooling) have a zero second derivative in their input, so they are also
// checked inside a product with a parameter, where their backward carries the mixed second derivatives.
import { test } from 'node:test';
import { nn, scope, type Tensor } from '../../src/engine/index.js';
import { gradgradcheck } from '../helpers/check.js';
import { awayFromZero, int64, leaf, positive } from './util.js';

const t = (name: string, fn: () => void) => test(name, () => scope(fn));

t('unfold (im2col)', () => {
  gradgradcheck((a) => nn.unfold(a, 2, { stride: 2, padding: 1 }).square(), [leaf([1, 2, 4, 4], 43)]);
});

t('conv2d (bias, stride, padding, dilation, groups)', () => {
  const x = leaf([1, 2, 4, 4], 1);
  gradgradcheck((a, w, b) => nn.conv2d(a, w, b, { padding: 1 }).square(), [x, leaf([2, 2, 3, 3], 2), leaf([2], 3)]);
  gradgradcheck(
    (a, w) => nn.conv2d(a, w, null, { stride: 2, dilation: [1, 2], padding: 1 }).square(),
    [x, leaf([3, 2, 2, 2], 4)],
  );
  gradgradcheck((a, w) => nn.conv2d(a, w, null, { groups: 2 }).square(), [x, leaf([2, 1, 3, 3], 5)]);
});

t('batchNorm train', () => {
  const x = leaf([3, 2, 2, 2], 6);
  gradgradcheck((a, g, b) => nn.batchNorm(a, { weight: g, bias: b, training: true }), [x, leaf([2], 7), leaf([2], 8)]);
});

t('batchNorm eval (running stats)', () => {
  const rm = leaf([2], 9).detach();
  const rv = positive([2], 10).detach();
  const f = (a: Tensor, g: Tensor, b: Tensor) =>
    nn.batchNorm(a, { weight: g, bias: b, runningMean: rm, runningVar: rv, training: false });
  gradgradcheck((a, g, b) => f(a, g, b).square(), [leaf([3, 2, 2, 2], 11), leaf([2], 12), leaf([2], 13)]);
});

t('linear and matmul', () => {
  gradgradcheck((x, w, b) => nn.linear(x, w, b).square(), [leaf([3, 4], 14), leaf([2, 4], 15), leaf([2], 16)]);
  gradgradcheck((a, b) => a.matmul(b).square(), [leaf([2, 3], 17), leaf([3, 2], 18)]);
  gradgradcheck((a, b) => a.matmul(b).square(), [leaf([2, 2, 3], 19), leaf([3, 2], 20)]);
});

t('layerNorm', () => {
  gradgradcheck((x, g, b) => nn.layerNorm(x, 4, g, b), [leaf([3, 4], 21), leaf([4], 22), leaf([4], 23)]);
  gradgradcheck((x) => nn.layerNorm(x, [2, 3]), [leaf([2, 2, 3], 24)]);
});

t('gelu (exact and tanh), silu, sigmoid, tanh', () => {
  const x = leaf([6], 25);
  gradgradcheck((a) => nn.gelu(a), [x]);
  gradgradcheck((a) => nn.gelu(a, 'tanh'), [x]);
  gradgradcheck((a) => nn.silu(a), [x]);
  gradgradcheck((a) => nn.sigmoid(a), [x]);
  gradgradcheck((a) => nn.tanh(a), [x]);
});

t('relu (alone and between two parameters)', () => {
  const x = awayFromZero([6], 26);
  gradgradcheck((a) => nn.relu(a), [x]);
  gradgradcheck((a, w) => nn.relu(a.mul(w)).mul(w), [x, awayFromZero([6], 27, 0.5)]);
});

t('softmax and logSoftmax', () => {
  const x = leaf([2, 4], 28);
  gradgradcheck((a) => nn.softmax(a, 1), [x]);
  gradgradcheck((a) => nn.softmax(a, 0), [x]);
  gradgradcheck((a) => nn.logSoftmax(a, 1), [x]);
});

t('crossEntropy (indices, label smoothing, probabilities)', () => {
  const x = leaf([3, 4], 29);
  const y = int64([3, 0, 1]);
  gradgradcheck((a) => nn.crossEntropy(a, y), [x]);
  gradgradcheck((a) => nn.crossEntropy(a, y, { labelSmoothing: 0.1, reduction: 'sum' }), [x]);
  gradgradcheck((a, p) => nn.crossEntropy(a, p), [x, leaf([3, 4], 30, (v) => nn.softmax(v, 1))]);
});

t('mseLoss', () => {
  gradgradcheck((a, b) => nn.mseLoss(a, b), [leaf([2, 3], 31), leaf([2, 3], 32)]);
  gradgradcheck((a, w) => nn.mseLoss(a.mul(w), w), [leaf([2, 3], 33), leaf([2, 3], 34)]);
});

t('maxPool2d (alone and after a parameterised conv)', () => {
  const x = leaf([1, 2, 4, 4], 35);
  gradgradcheck((a) => nn.maxPool2d(a, 2).square(), [x]);
  gradgradcheck(
    (a, w) => nn.maxPool2d(nn.conv2d(a, w, null, { padding: 1 }), 3, { stride: 2, padding: 1 }).square(),
    [x, leaf([2, 2, 3, 3], 36)],
  );
});

t('avgPool2d and adaptiveAvgPool2d', () => {
  const x = leaf([1, 2, 5, 5], 37);
  gradgradcheck((a) => nn.avgPool2d(a, 2).square(), [x]);
  gradgradcheck((a) => nn.avgPool2d(a, 3, { stride: 2, padding: 1, countIncludePad: false }).square(), [x]);
  gradgradcheck((a) => nn.adaptiveAvgPool2d(a, [2, 3]).square(), [x]);
  gradgradcheck((a) => nn.adaptiveAvgPool2d(a, 1).square(), [x]);
});
