// Tensor creation and data round trips, metadata, seeding, scopes, disposal, the live-tensor counter and in-place ops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  arange,
  disposeAll,
  eye,
  full,
  fullLike,
  keep,
  liveTensors,
  manualSeed,
  noGrad,
  ones,
  onesLike,
  rand,
  randn,
  randnLike,
  scope,
  tensor,
  Tensor,
  zeros,
  zerosLike,
} from '../../src/engine/index.js';
import { native } from '../../src/engine/native.js';
import { expectClose } from '../helpers/check.js';

const t = (name: string, fn: () => void) => test(name, () => scope(fn));

t('TypedArray round trips keep dtype, shape and bits for every dtype', () => {
  const cases = [
    ['float32', new Float32Array([1.5, -2, 3.25, 0.1, -0, 7])],
    ['float64', new Float64Array([1e-300, -2, Math.PI, NaN, Infinity, -Infinity])],
    ['int64', new BigInt64Array([0n, -1n, 2n ** 53n + 1n, -(2n ** 62n), 5n, 6n])],
    ['int32', new Int32Array([0, -1, 2 ** 31 - 1, -(2 ** 31), 5, 6])],
    ['uint8', new Uint8Array([0, 1, 127, 128, 255, 6])],
    ['bool', new Uint8Array([0, 1, 1, 0, 0, 1])],
  ] as const;
  for (const [dtype, arr] of cases) {
    const x = tensor(arr, [2, 3], { dtype });
    assert.equal(x.dtype, dtype);
    assert.deepEqual(x.shape, [2, 3]);
    assert.equal(x.numel, 6);
    assert.equal(x.ndim, 2);
    assert.equal(x.device, 'cpu');
    const back = x.data();
    assert.equal(back.constructor, arr.constructor, dtype);
    assert.deepEqual(Array.from(back as ArrayLike<unknown>), Array.from(arr as ArrayLike<unknown>), dtype);
  }
  // The returned array is a copy: writing it does not change the tensor.
  const y = tensor(new Float64Array([1, 2]));
  const d = y.data<'float64'>();
  d[0] = 99;
  assert.deepEqual(y.toArray(), [1, 2]);
});

t('nested-number creation, dtype conversion, toArray and item', () => {
  const x = tensor([
    [1, 2, 3],
    [4, 5, 6],
  ]);
  assert.equal(x.dtype, 'float32');
  assert.deepEqual(x.shape, [2, 3]);
  assert.deepEqual(x.toArray(), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(tensor([1.7, -2.7], null, { dtype: 'int64' }).toArray(), [1, -2], 'int64 truncates');
  // Regression: bytes other than 0/1 used to be copied raw into bool storage (true stored as 2).
  assert.deepEqual(tensor([0, 2, 0, -1, NaN], null, { dtype: 'bool' }).toArray(), [0, 1, 0, 1, 1]);
  const mask = tensor(new Uint8Array([0, 2, 255]), null, { dtype: 'bool' });
  assert.deepEqual(mask.toArray(), [0, 1, 1]);
  assert.deepEqual(mask.logicalNot().toArray(), [1, 0, 0]);
  assert.deepEqual(tensor([1, 2], null, { dtype: 'int32' }).data().constructor, Int32Array);
  assert.equal(tensor(new Float32Array([1, 2]), null, { dtype: 'float64' }).dtype, 'float64');
  assert.equal(tensor(3.5, []).item(), 3.5);
  assert.deepEqual(tensor(3.5, []).shape, []);
  assert.equal(tensor([[7]]).item(), 7);
  assert.equal(tensor([5], null, { dtype: 'int64' }).item(), 5);
  assert.equal(x.size(1), 3);
  assert.equal(x.size(-2), 2);
  assert.equal(String(x), 'Tensor(shape=[2, 3], dtype=float32, device=cpu)');
  assert.throws(() => tensor([[1, 2], [3]]), /ragged/);
  assert.throws(() => x.size(2), /dim 2 out of range/);
});

t('creation functions: zeros/ones/full/eye/arange/rand/randn and *Like', () => {
  assert.deepEqual(zeros([2, 2]).toArray(), [0, 0, 0, 0]);
  assert.deepEqual(ones([3], { dtype: 'int64' }).toArray(), [1, 1, 1]);
  assert.deepEqual(full([2], 2.5, { dtype: 'float64' }).toArray(), [2.5, 2.5]);
  assert.deepEqual(full([2], true, { dtype: 'bool' }).toArray(), [1, 1]);
  assert.deepEqual(eye(2).toArray(), [1, 0, 0, 1]);
  const a = arange(5);
  assert.equal(a.dtype, 'int64');
  assert.deepEqual(a.toArray(), [0, 1, 2, 3, 4]);
  assert.deepEqual(arange(1, 2, 0.25, { dtype: 'float64' }).toArray(), [1, 1.25, 1.5, 1.75]);
  // Regression: a fractional step with the default dtype was truncated to 0 and threw; now float32, as torch.
  const fr = arange(0, 1, 0.25);
  assert.equal(fr.dtype, 'float32');
  assert.deepEqual(fr.toArray(), [0, 0.25, 0.5, 0.75]);
  assert.deepEqual(arange(2, 8, 3).toArray(), [2, 5]);
  const u = rand([1000], { dtype: 'float64' }).toArray();
  assert.ok(u.every((v) => v >= 0 && v < 1));
  const g = randn([4000], { dtype: 'float64' });
  assert.ok(Math.abs(g.mean().item()) < 0.1 && Math.abs(g.var().item() - 1) < 0.1);
  const base = randn([2, 3], { dtype: 'float64' });
  for (const l of [zerosLike(base), onesLike(base), randnLike(base), fullLike(base, 4)]) {
    assert.deepEqual(l.shape, [2, 3]);
    assert.equal(l.dtype, 'float64');
  }
  assert.deepEqual(fullLike(base, 4).toArray(), [4, 4, 4, 4, 4, 4]);
  assert.equal(zeros([2], { requiresGrad: true }).requiresGrad, true);
});

t('manualSeed: the same seed repeats randn/rand, a different seed differs', () => {
  manualSeed(42);
  const a = randn([16]).toArray();
  const r = rand([4]).toArray();
  manualSeed(42);
  assert.deepEqual(randn([16]).toArray(), a);
  assert.deepEqual(rand([4]).toArray(), r);
  manualSeed(43);
  assert.notDeepEqual(randn([16]).toArray(), a);
});

test('scope frees inner tensors, returned tensors survive into the parent scope', () => {
  const live0 = liveTensors();
  const out = scope(() => {
    const mid = scope(() => {
      const a = ones([3]);
      const b = a.add(1);
      a.mul(5);
      return b;
    });
    assert.equal(liveTensors(), live0 + 1, 'only the returned tensor is left by the inner scope');
    assert.equal(mid.isDisposed, false);
    const res = { sum: mid.sum(), parts: [mid.mul(2)], m: new Map([['k', mid.neg()]]) };
    return res;
  });
  // The outer scope returned an object: its tensors survive, `mid` (not returned) is freed.
  assert.equal(liveTensors(), live0 + 3);
  assert.equal(out.sum.item(), 6);
  assert.deepEqual(out.parts[0]!.toArray(), [4, 4, 4]);
  assert.deepEqual(out.m.get('k')!.toArray(), [-2, -2, -2]);
  disposeAll(out);
  assert.equal(liveTensors(), live0);
});

test('a tensor returned by a nested scope belongs to the enclosing scope and is freed with it', () => {
  const live0 = liveTensors();
  let inner: Tensor | undefined;
  scope(() => {
    inner = scope(() => ones([2]));
    assert.equal(inner.isDisposed, false);
  });
  assert.equal(inner!.isDisposed, true);
  assert.equal(liveTensors(), live0);
});

test('keep() lets a tensor outlive its scope; the caller then disposes it', () => {
  const live0 = liveTensors();
  let kept: Tensor | undefined;
  scope(() => {
    kept = keep(ones([2]));
    ones([2]);
  });
  assert.equal(kept!.isDisposed, false);
  assert.equal(liveTensors(), live0 + 1);
  // Even an enclosing scope leaves it alone.
  scope(() => {
    scope(() => {
      keep(kept!);
    });
  });
  assert.equal(kept!.isDisposed, false);
  kept!.dispose();
  assert.equal(liveTensors(), live0);
});

test('an exception frees the scope and propagates', () => {
  const live0 = liveTensors();
  let made: Tensor | undefined;
  assert.throws(
    () =>
      scope(() => {
        made = ones([4]);
        ones([4]).add(1);
        throw new Error('boom');
      }),
    /boom/,
  );
  assert.equal(made!.isDisposed, true);
  assert.equal(liveTensors(), live0);
  assert.throws(() => scope(() => Promise.resolve(1)), /synchronous/);
  assert.equal(liveTensors(), live0);
});

test('dispose twice is safe; liveTensors counts creation and disposal exactly', () => {
  const live0 = liveTensors();
  const a = ones([2]);
  const [p, q] = a.split(1);
  assert.equal(liveTensors(), live0 + 3);
  a.dispose();
  a.dispose();
  assert.equal(a.isDisposed, true);
  assert.equal(liveTensors(), live0 + 2, 'views keep their own handle');
  assert.deepEqual(p!.toArray(), [1]);
  p!.dispose();
  q!.dispose();
  assert.equal(liveTensors(), live0);
  assert.equal(String(a), 'Tensor(<disposed>)');
});

t('in-place ops: add_, mul_, copy_, zero_, fill_, addcmul_, addcdiv_ write through and return this', () => {
  const x = tensor(new Float64Array([1, 2, 3]));
  assert.equal(x.add_(tensor(new Float64Array([1, 1, 1])), 2), x);
  assert.deepEqual(x.toArray(), [3, 4, 5]);
  x.add_(0.5);
  assert.deepEqual(x.toArray(), [3.5, 4.5, 5.5]);
  x.mul_(2);
  assert.deepEqual(x.toArray(), [7, 9, 11]);
  x.mul_(tensor(new Float64Array([1, 0, -1])));
  assert.deepEqual(x.toArray(), [7, 0, -11]);
  x.copy_(tensor(new Float32Array([1, 2, 4])));
  assert.equal(x.dtype, 'float64');
  assert.deepEqual(x.toArray(), [1, 2, 4]);
  // x += v·a·b and x += v·a/b
  x.addcmul_(tensor(new Float64Array([1, 2, 3])), tensor(new Float64Array([2, 2, 2])), 0.5);
  assert.deepEqual(x.toArray(), [2, 4, 7]);
  x.addcdiv_(tensor(new Float64Array([1, 2, 3])), tensor(new Float64Array([2, 4, 3])), 2);
  assert.deepEqual(x.toArray(), [3, 5, 9]);
  x.fill_(-1.5);
  assert.deepEqual(x.toArray(), [-1.5, -1.5, -1.5]);
  x.zero_();
  assert.deepEqual(x.toArray(), [0, 0, 0]);
  // A view shares storage: writing the view writes the base.
  const m = zeros([2, 2], { dtype: 'float64' });
  m.index(0, 1).fill_(5);
  assert.deepEqual(m.toArray(), [0, 0, 5, 5]);
  const b = tensor([1, 0], null, { dtype: 'bool' });
  b.fill_(true);
  assert.deepEqual(b.toArray(), [1, 1]);
});

t('autograd metadata: requiresGrad_, isLeaf, backward, grad accumulation, zeroGrad', () => {
  const w = tensor(new Float64Array([1, 2, 3])).requiresGrad_();
  assert.equal(w.requiresGrad, true);
  assert.equal(w.isLeaf, true);
  assert.equal(w.grad, null);
  const y = w.square().sum();
  assert.equal(y.isLeaf, false);
  y.backward(undefined, { retainGraph: true });
  expectClose(w.grad!, [2, 4, 6]);
  y.backward();
  expectClose(w.grad!, [4, 8, 12], {}, 'gradients accumulate');
  w.zeroGrad();
  assert.equal(w.grad, null);
  w.mul(2).backward(tensor(new Float64Array([1, 0, -1])));
  expectClose(w.grad!, [2, 0, -2]);
  // Parameter updates under noGrad stay leaves and record nothing.
  noGrad(() => w.add_(w.grad!, -0.5));
  assert.equal(w.isLeaf, true);
  assert.deepEqual(w.toArray(), [0, 2, 4]);
  assert.equal(noGrad(() => w.mul(2)).requiresGrad, false);
  w.requiresGrad_(false);
  assert.equal(w.requiresGrad, false);
  // sameData tells views from copies.
  const v = w.view([3]);
  assert.equal(native.sameData(v.handle, w.handle), false);
  assert.equal(native.sameData(w.handle, w.handle), true);
});
