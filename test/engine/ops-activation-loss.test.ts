// Gradients of activations, softmax and losses against float64 finite differences, with exact forward values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { manualSeed, nn, scope } from '../../src/engine/index.js';
import { expectClose, gradcheck } from '../helpers/check.js';
import { awayFromZero, f64, int64, leaf } from './util.js';

const t = (name: string, fn: () => void) => test(name, () => scope(fn));
const erf = (x: number) => {
  // Abramowitz–Stegun 7.1.26 is only 1e-7 accurate; use the series, exact to double precision for |x| < 3.
  let term = x;
  let sum = x;
  for (let n = 1; n < 60; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
};

t('relu, relu6, hardtanh, leakyRelu (away from kinks)', () => {
  const x = awayFromZero([10], 1, 0.1).detach().mul(4).requiresGrad_(true);
  gradcheck((a) => nn.relu(a), [x]);
  gradcheck((a) => nn.relu6(a), [x]);
  gradcheck((a) => nn.hardtanh(a), [x]);
  gradcheck((a) => nn.hardtanh(a, -2, 0.5), [x]);
  gradcheck((a) => nn.leakyRelu(a), [x]);
  gradcheck((a) => nn.leakyRelu(a, 0.3), [x]);
  const v = f64([-2, -0.5, 0.5, 7]);
  expectClose(nn.relu(v), [0, 0, 0.5, 7]);
  expectClose(nn.relu6(v), [0, 0, 0.5, 6]);
  expectClose(nn.hardtanh(v), [-1, -0.5, 0.5, 1]);
  expectClose(nn.leakyRelu(v, 0.1), [-0.2, -0.05, 0.5, 7]);
});

t('gelu (exact and tanh), silu, sigmoid, tanh', () => {
  const x = leaf([8], 2, (v) => v.mul(2));
  gradcheck((a) => nn.gelu(a), [x]);
  gradcheck((a) => nn.gelu(a, 'tanh'), [x]);
  gradcheck((a) => nn.silu(a), [x]);
  gradcheck((a) => nn.sigmoid(a), [x]);
  gradcheck((a) => nn.tanh(a), [x]);
  const vs = [-1.5, 0, 0.7];
  const v = f64(vs);
  expectClose(
    nn.gelu(v),
    vs.map((u) => 0.5 * u * (1 + erf(u / Math.SQRT2))),
    { rtol: 1e-12 },
  );
  const k = Math.sqrt(2 / Math.PI);
  expectClose(
    nn.gelu(v, 'tanh'),
    vs.map((u) => 0.5 * u * (1 + Math.tanh(k * (u + 0.044715 * u ** 3)))),
    { rtol: 1e-12 },
  );
  expectClose(
    nn.sigmoid(v),
    vs.map((u) => 1 / (1 + Math.exp(-u))),
    { rtol: 1e-12 },
  );
  expectClose(
    nn.silu(v),
    vs.map((u) => u / (1 + Math.exp(-u))),
    { rtol: 1e-12 },
  );
  expectClose(nn.tanh(v), vs.map(Math.tanh), { rtol: 1e-12 });
});

t('softmax, logSoftmax over each dim', () => {
  const x = leaf([3, 4], 3);
  gradcheck((a) => nn.softmax(a, 1), [x]);
  gradcheck((a) => nn.softmax(a, 0), [x]);
  gradcheck((a) => nn.logSoftmax(a, -1), [x]);
  gradcheck((a) => nn.logSoftmax(a, 0), [x]);
  const z = 1 + Math.E + Math.E ** 2;
  expectClose(nn.softmax(f64([0, 1, 2]), 0), [1 / z, Math.E / z, Math.E ** 2 / z], { rtol: 1e-12 });
  expectClose(nn.logSoftmax(f64([1000, 1000]), 0), [-Math.log(2), -Math.log(2)], { rtol: 1e-12 });
});

t('crossEntropy: class indices (mean, sum, none), label smoothing, probability targets', () => {
  const logits = leaf([4, 3], 4);
  const y = int64([2, 0, 1, 2]);
  gradcheck((a) => nn.crossEntropy(a, y), [logits]);
  gradcheck((a) => nn.crossEntropy(a, y, { reduction: 'sum' }), [logits]);
  gradcheck((a) => nn.crossEntropy(a, y, { reduction: 'none' }), [logits]);
  gradcheck((a) => nn.crossEntropy(a, y, { labelSmoothing: 0.2 }), [logits]);
  const probs = leaf([4, 3], 5, (v) => nn.softmax(v, 1));
  gradcheck((a, p) => nn.crossEntropy(a, p), [logits, probs]);
  // Hand values: one row [0, ln 2, 0] with target 1 → −log(2/4) = ln 2.
  const l = f64([0, Math.log(2), 0], [1, 3]);
  expectClose(nn.crossEntropy(l, int64([1])), [Math.log(2)], { rtol: 1e-12 });
  // Smoothing ε: (1−ε)·CE + ε·mean_c(−log p_c).
  const eps = 0.3;
  const smooth = (1 - eps) * Math.log(2) + (eps / 3) * (Math.log(4) + Math.log(2) + Math.log(4));
  expectClose(nn.crossEntropy(l, int64([1]), { labelSmoothing: eps }), [smooth], { rtol: 1e-12 });
});

t('mseLoss: mean, sum, none; gradient wrt both sides', () => {
  const a = leaf([3, 2], 6);
  const b = leaf([3, 2], 7);
  gradcheck((p, q) => nn.mseLoss(p, q), [a, b]);
  gradcheck((p, q) => nn.mseLoss(p, q, 'sum'), [a, b]);
  gradcheck((p, q) => nn.mseLoss(p, q, 'none'), [a, b]);
  expectClose(nn.mseLoss(f64([1, 2]), f64([0, 4])), [2.5]);
  expectClose(nn.mseLoss(f64([1, 2]), f64([0, 4]), 'sum'), [5]);
});

t('nllLoss on log-probabilities', () => {
  const lp = leaf([4, 3], 8, (v) => nn.logSoftmax(v, 1));
  const y = int64([0, 2, 2, 1]);
  gradcheck((a) => nn.nllLoss(a, y), [lp]);
  gradcheck((a) => nn.nllLoss(a, y, 'sum'), [lp]);
  gradcheck((a) => nn.nllLoss(a, y, 'none'), [lp]);
  expectClose(nn.nllLoss(f64([-1, -2, -3, -4], [2, 2]), int64([1, 0])), [(2 + 3) / 2]);
});

t('dropout: p = 0 in train and eval are identity; p = 0.5 masks and rescales', () => {
  const x = leaf([3, 4], 9);
  gradcheck((a) => nn.dropout(a, 0, true), [x]);
  gradcheck((a) => nn.dropout(a, 0.5, false), [x]);
  expectClose(nn.dropout(x, 0.7, false), x);
  manualSeed(1);
  const ones = f64(Array(400).fill(1)).requiresGrad_(true);
  const y = nn.dropout(ones, 0.5, true);
  const vals = y.toArray();
  assert.ok(
    vals.every((v) => v === 0 || v === 2),
    'kept values are scaled by 1/(1−p)',
  );
  const kept = vals.filter((v) => v === 2).length;
  assert.ok(kept > 140 && kept < 260, `about half kept, got ${kept}/400`);
  // The gradient is the same mask times 1/(1−p).
  y.sum().backward();
  assert.deepEqual(ones.grad!.toArray(), vals);
  manualSeed(1);
  assert.deepEqual(nn.dropout(ones.detach(), 0.5, true).toArray(), vals, 'seeded dropout repeats');
});
