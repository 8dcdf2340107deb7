// hvp() against the exact Hessian, built column by column by double backward (H e_i for every coordinate i),
// on a tiny MLP and a tiny conv + batch-norm net in float64.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cat,
  grad,
  gradGraph,
  hvp,
  liveTensors,
  manualSeed,
  nn,
  randint,
  randn,
  scope,
  type Tensor,
} from '../../src/engine/index.js';
import { expectClose } from '../helpers/check.js';
import './util.js'; // single-threaded, see util.ts

type Loss = (ps: readonly Tensor[]) => Tensor;

/** Dense Hessian (row-major n×n) of `f` at `params`: row i = ∂(∂f/∂θ_i)/∂θ. */
function exactHessian(f: Loss, params: readonly Tensor[]): Float64Array {
  return scope(() => {
    const g = cat(grad(f(params), params, { createGraph: true }).map((t) => t!.flatten()));
    const n = g.numel;
    const h = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      scope(() => {
        const row = grad(g.index(0, i), params, { retainGraph: true, allowUnused: true });
        let k = i * n;
        row.forEach((r, j) => {
          const vals = r === null ? new Float64Array(params[j]!.numel) : r.data<'float64'>();
          h.set(vals, k);
          k += vals.length;
        });
      });
    }
    return h;
  });
}

function checkHvp(f: Loss, params: readonly Tensor[]): void {
  const h = exactHessian(f, params);
  const n = Math.sqrt(h.length);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < i; j++) assert.ok(Math.abs(h[i * n + j]! - h[j * n + i]!) < 1e-10, `H symmetric at ${i},${j}`);
  assert.ok(
    h.some((v) => Math.abs(v) > 1e-3),
    'the Hessian is not trivially zero',
  );
  for (let trial = 0; trial < 2; trial++) {
    manualSeed(100 + trial);
    const v = params.map((p) => randn(p.shape, { dtype: 'float64' }));
    const vflat = cat(v.map((t) => t.flatten())).data<'float64'>();
    const expected = new Float64Array(n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) expected[i] = expected[i]! + h[i * n + j]! * vflat[j]!;
    const { hv, loss, grad: g } = hvp(f, params, v);
    expectClose(cat(hv.map((t) => t.flatten())), expected, { rtol: 1e-9, atol: 1e-11 }, 'hvp vs exact H·v');
    expectClose(loss, f(params).item(), { rtol: 1e-12 });
    expectClose(cat(g.map((t) => t.flatten())), cat(grad(f(params), params).map((t) => t!.flatten())), { rtol: 1e-12 });
    assert.equal(hv[0]!.requiresGrad, false);
    // gradGraph: the same H·v through a kept first-order graph, twice (the graph survives the first product).
    const gg = gradGraph(f, params);
    for (let rep = 0; rep < 2; rep++)
      expectClose(
        cat(gg.hv(v).map((t) => t.flatten())),
        expected,
        { rtol: 1e-9, atol: 1e-11 },
        `gradGraph.hv #${rep + 1} vs exact H·v`,
      );
    gg.dispose();
  }
}

test('hvp equals the exact Hessian times v on a tiny MLP (linear → tanh → linear → cross-entropy)', () =>
  scope(() => {
    manualSeed(0);
    const o = { dtype: 'float64' as const, requiresGrad: true };
    const params = [randn([3, 4], o), randn([3], o), randn([2, 3], o), randn([2], o)];
    const x = randn([5, 4], { dtype: 'float64' });
    const y = randint(0, 2, [5]);
    const f: Loss = ([w1, b1, w2, b2]) => nn.crossEntropy(nn.linear(nn.tanh(nn.linear(x, w1!, b1)), w2!, b2), y);
    checkHvp(f, params);
  }));

test('hvp equals the exact Hessian times v on a tiny conv + batch-norm (train) net', () =>
  scope(() => {
    manualSeed(1);
    const o = { dtype: 'float64' as const, requiresGrad: true };
    const params = [
      randn([2, 1, 3, 3], o),
      randn([2], o),
      randn([2], o),
      randn([2], o),
      randn([3, 8], o),
      randn([3], o),
    ];
    const x = randn([4, 1, 5, 5], { dtype: 'float64' });
    const y = randint(0, 3, [4]);
    const f: Loss = ([w, cb, g, b, lw, lb]) => {
      let h = nn.conv2d(x, w!, cb, { padding: 1 });
      h = nn.gelu(nn.batchNorm(h, { weight: g, bias: b, training: true }));
      h = nn.adaptiveAvgPool2d(h, 2).flatten(1);
      return nn.crossEntropy(nn.linear(h, lw!, lb), y);
    };
    checkHvp(f, params);
  }));

test('hvp frees its intermediates and rejects mismatched vectors', () =>
  scope(() => {
    manualSeed(2);
    const p = randn([3], { dtype: 'float64', requiresGrad: true });
    const v = randn([3], { dtype: 'float64' });
    const f: Loss = ([a]) => a!.pow(3).sum();
    const before = liveTensors();
    const r = hvp(f, [p], [v]);
    // loss, one gradient, one H·v survive; nothing else.
    assert.equal(liveTensors() - before, 3);
    // f = Σ a³ ⇒ H = diag(6a).
    expectClose(r.hv[0]!, p.detach().mul(6).mul(v), { rtol: 1e-12 });
    assert.throws(
      () => hvp(f, [p], [randn([2], { dtype: 'float64' })]),
      /hvp: vector 0 has shape \[2\] but param 0 has \[3\]/,
    );
    assert.throws(() => hvp(f, [p], []), /1 params but 0 vectors/);
  }));

test('hvp of a loss linear in some params gives zero rows for them (regression: it threw "not used in the graph")', () =>
  scope(() => {
    manualSeed(3);
    const a = randn([3], { dtype: 'float64', requiresGrad: true });
    const b = randn([2], { dtype: 'float64', requiresGrad: true });
    const va = randn([3], { dtype: 'float64' });
    const vb = randn([2], { dtype: 'float64' });
    // f = Σa + Σb³ ⇒ H = diag(0, 6b).
    const r = hvp(([x, y]) => x!.sum().add(y!.pow(3).sum()), [a, b], [va, vb]);
    expectClose(r.hv[0]!, [0, 0, 0]);
    expectClose(r.hv[1]!, b.detach().mul(6).mul(vb), { rtol: 1e-12 });
    // Entirely linear: H = 0.
    const lin = hvp(([x]) => x!.mul(2).sum(), [a], [va]);
    expectClose(lin.hv[0]!, [0, 0, 0]);
    expectClose(lin.grad[0]!, [2, 2, 2]);
  }));

test('gradGraph keeps only its gradients alive, frees them on dispose, and gives zero rows for linear params', () =>
  scope(() => {
    manualSeed(4);
    const a = randn([3], { dtype: 'float64', requiresGrad: true });
    const b = randn([2], { dtype: 'float64', requiresGrad: true });
    const before = liveTensors();
    const gg = gradGraph(([x, y]) => x!.sum().add(y!.pow(3).sum()), [a, b]);
    assert.equal(liveTensors() - before, 2, 'the two gradients');
    const v = [randn([3], { dtype: 'float64' }), randn([2], { dtype: 'float64' })];
    const hv = gg.hv(v);
    scope(() => {
      expectClose(hv[0]!, [0, 0, 0]);
      expectClose(hv[1]!, b.detach().mul(6).mul(v[1]!), { rtol: 1e-12 });
    });
    assert.throws(() => gg.hv([v[0]!]), /2 params but 1 vectors/);
    gg.dispose();
    assert.equal(liveTensors() - before, 2 + 2, 'only v and H·v remain');
  }));
