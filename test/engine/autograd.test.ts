// grad() options, no-grad regions, and the checkers themselves (they must reject a wrong derivative).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { enableGrad, grad, gradStrict, isGradEnabled, noGrad, scope, type Tensor } from '../../src/engine/index.js';
import { expectClose, gradcheck, gradgradcheck } from '../helpers/check.js';
import { f64, leaf } from './util.js';

const t = (name: string, fn: () => void) => test(name, () => scope(fn));

t('grad: several inputs, gradOutputs seeds, allowUnused, createGraph for a second derivative', () => {
  const x = f64([1, 2, 3], undefined, true);
  const y = f64([4, 5, 6], undefined, true);
  const z = f64([7], undefined, true);
  const [gx, gy] = grad(x.mul(y).sum(), [x, y]);
  expectClose(gx!, [4, 5, 6]);
  expectClose(gy!, [1, 2, 3]);
  const [gs] = grad(x.square(), [x], { gradOutputs: [f64([1, 0, 2])] });
  expectClose(gs!, [2, 0, 12]);
  const [gu, gz] = grad(x.sum(), [x, z], { allowUnused: true });
  expectClose(gu!, [1, 1, 1]);
  assert.equal(gz, null);
  assert.throws(() => grad(x.sum(), [z]), /^Error: grad: .*(not have been used|unused)/);
  // d/dx Σ x³ = 3x², d²/dx² = 6x.
  const [g1] = gradStrict(x.pow(3).sum(), [x], { createGraph: true });
  assert.equal(g1!.requiresGrad, true);
  const [g2] = gradStrict(g1!.sum(), [x]);
  expectClose(g2!, [6, 12, 18]);
  // Without retainGraph the graph is freed after one pass.
  const l = x.exp().sum();
  grad(l, [x]);
  assert.throws(() => grad(l, [x]), /^Error: grad: .*(second time|already been freed)/);
  const l2 = x.exp().sum();
  grad(l2, [x], { retainGraph: true });
  expectClose(grad(l2, [x])[0]!, x.detach().exp());
});

t('noGrad / enableGrad nest and restore the previous mode, even on throw', () => {
  const x = f64([1, 2], undefined, true);
  assert.equal(isGradEnabled(), true);
  noGrad(() => {
    assert.equal(isGradEnabled(), false);
    assert.equal(x.mul(2).requiresGrad, false);
    enableGrad(() => {
      assert.equal(isGradEnabled(), true);
      assert.equal(x.mul(2).requiresGrad, true);
    });
    assert.equal(isGradEnabled(), false);
  });
  assert.throws(
    () =>
      noGrad(() => {
        throw new Error('inner');
      }),
    /inner/,
  );
  assert.equal(isGradEnabled(), true);
});

t('gradcheck rejects a wrong first derivative', () => {
  // x · stopgrad(x): the value is x², autograd sees only one factor, so its derivative is x instead of 2x.
  const wrong = (x: Tensor) => x.mul(x.detach());
  assert.throws(() => gradcheck(wrong, [leaf([3], 1)]), /gradient of input 0: not close/);
  // A function that ignores an input must get a zero numeric derivative for it.
  gradcheck((a, b) => a.mul(2).add(b.detach().mul(0)), [leaf([2], 2), leaf([2], 3)]);
});

t('gradgradcheck rejects a gradient that is correct but not differentiable', () => {
  // g = x·x₀ has the right value and first derivative only at x = x₀; its own derivative is missing.
  const ok = (x: Tensor) => x.square().mul(0.5);
  gradgradcheck(ok, [leaf([3], 4)]);
  const cut = (x: Tensor) => x.mul(x.detach()).mul(0.5).add(x.detach().square().mul(0));
  assert.throws(() => gradgradcheck(cut, [leaf([3], 5)]), /not close/);
});
