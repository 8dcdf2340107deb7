/**
 * Every row of the op table: float64 finite-difference gradients (so gradients flow through every op the
 * importers produce), plus forward checks against brute force where the op does more than call the engine.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ones, randn, scope, tensor, zeros, type Tensor } from '../../src/engine/index.js';
import { OPS, OP_NAMES, type Attrs, type OpDef } from '../../src/graph/ops.js';
import type { Mode } from '../../src/graph/ir.js';
import { expectClose, gradcheck, inputs } from '../helpers/check.js';

interface Case {
  shapes: number[][];
  attrs?: Attrs;
  mode?: Mode;
  /** Non-differentiable inputs appended after the random ones. */
  extra?: () => (Tensor | null)[];
  out?: number;
  /** Draw inputs from |N(0,1)| + 0.5 (ops defined on positives). */
  positive?: boolean;
}
const f64 = { dtype: 'float64' as const };
const CASES: Record<string, Case[]> = {
  conv2d: [
    { shapes: [[2, 4, 5, 5], [6, 2, 3, 3], [6]], attrs: { stride: 2, padding: 1, groups: 2 } },
    { shapes: [[1, 3, 5, 4], [3, 1, 3, 3]], attrs: { padding: [0, 0, 1, 1], groups: 3, dilation: 1 } },
  ],
  linear: [{ shapes: [[3, 4], [5, 4], [5]] }, { shapes: [[2, 3, 4], [5, 4]] }],
  matmul: [{ shapes: [[2, 3, 4], [2, 4, 5]] }],
  batchnorm: [
    { shapes: [[4, 3, 2, 2], [3], [3]], mode: 'train', extra: () => [zeros([3], f64), ones([3], f64)], attrs: { eps: 1e-3 } },
    { shapes: [[4, 3, 2, 2], [3], [3]], mode: 'eval-bn', extra: () => [randn([3], f64), ones([3], f64).mul(2)] },
  ],
  layernorm: [{ shapes: [[2, 3, 4], [4], [4]], attrs: { eps: 1e-6 } }, { shapes: [[2, 3, 4], [3, 4]], attrs: { axis: 1 } }],
  relu: [{ shapes: [[3, 4]] }],
  relu6: [{ shapes: [[3, 4]], extra: () => [] }],
  clip: [{ shapes: [[3, 4]], attrs: { min: -0.5, max: 0.7 } }],
  gelu: [{ shapes: [[3, 4]] }, { shapes: [[3, 4]], attrs: { approximate: 'tanh' } }],
  silu: [{ shapes: [[3, 4]] }],
  sigmoid: [{ shapes: [[3, 4]] }],
  tanh: [{ shapes: [[3, 4]] }],
  softmax: [{ shapes: [[2, 3, 4]], attrs: { axis: 1 } }],
  add: [{ shapes: [[2, 3], [3]] }],
  sub: [{ shapes: [[2, 3], [2, 1]] }],
  mul: [{ shapes: [[2, 3], [2, 3]] }],
  div: [{ shapes: [[2, 3]], extra: () => [tensor([[1.5, -2, 3]], null, f64)] }],
  pow: [{ shapes: [[2, 3]], extra: () => [], attrs: { exponent: 2 } }],
  sqrt: [{ shapes: [[2, 3]], positive: true }],
  erf: [{ shapes: [[2, 3]] }],
  neg: [{ shapes: [[2, 3]] }],
  maxpool: [{ shapes: [[1, 2, 5, 5]], attrs: { kernel: 3, stride: 2, padding: [0, 0, 1, 1] } }, { shapes: [[1, 2, 5, 5]], attrs: { kernel: 2, ceil: true } }],
  avgpool: [
    { shapes: [[1, 2, 4, 4]], attrs: { kernel: 3, stride: 2, padding: [0, 0, 1, 1] } },
    { shapes: [[1, 2, 4, 4]], attrs: { kernel: 3, stride: 1, padding: 1, countIncludePad: true } },
  ],
  globalavgpool: [{ shapes: [[2, 3, 4, 5]] }],
  flatten: [{ shapes: [[2, 3, 2, 2]] }],
  reshape: [{ shapes: [[2, 6]], attrs: { shape: [0, 3, -1] } }],
  transpose: [{ shapes: [[2, 3, 4]], attrs: { perm: [2, 0, 1] } }],
  concat: [{ shapes: [[2, 3], [2, 2]], attrs: { axis: 1 } }],
  pad: [{ shapes: [[1, 2, 3, 3]], attrs: { pads: [0, 0, 1, 0, 0, 0, 0, 2], value: 0.5 } }],
  dropout: [{ shapes: [[3, 4]], attrs: { p: 0.3 }, mode: 'eval-bn' }],
  identity: [{ shapes: [[3, 4]] }],
  reducemean: [{ shapes: [[2, 3, 4]], attrs: { axes: [1, 2], keepdims: false } }],
  gather: [{ shapes: [[4, 3]], attrs: { axis: 0 }, extra: () => [tensor([[0, 2], [3, 3]], null, { dtype: 'int64' })] }],
  select: [{ shapes: [[2, 3, 4]], attrs: { axis: 1, index: 0 } }],
  slice: [{ shapes: [[3, 6]], attrs: { starts: [1, -4], ends: [100, 5], axes: [0, 1], steps: [1, 2] } }],
  split: [{ shapes: [[2, 6]], attrs: { axis: 1, split: [2, 4] }, out: 1 }, { shapes: [[6, 2]], attrs: { parts: 3 }, out: 2 }],
  squeeze: [{ shapes: [[2, 1, 3, 1]], attrs: { axes: [1] } }],
  unsqueeze: [{ shapes: [[2, 3]], attrs: { axes: [0, -1] } }],
  expand: [{ shapes: [[1, 3]], attrs: { shape: [4, -1] } }],
  prependtoken: [{ shapes: [[2, 3, 4], [1, 1, 4]] }],
  expanddyn: [{ shapes: [[1, 1, 4]], attrs: { shape: [0, -1, -1], refDims: [0, -1, -1] }, extra: () => [zeros([3, 5], f64)] }],
};

test('every op in the table has a gradient test case', () => {
  assert.deepEqual(OP_NAMES.filter((n) => !(n in CASES)), []);
});

for (const [op, cases] of Object.entries(CASES)) {
  test(`op ${op}: float64 gradients match finite differences`, () => {
    cases.forEach((c, k) => {
      scope(() => {
        const raw = inputs(c.shapes, 7 + k);
        const xs = c.positive ? raw.map((t) => t.detach().abs().add(0.5).requiresGrad_(true)) : raw;
        const extra = c.extra?.() ?? [];
        const run = (...a: Tensor[]) => (OPS as Record<string, OpDef>)[op]!.run([...a, ...extra], c.attrs ?? {}, { mode: c.mode ?? 'eval-bn' })[c.out ?? 0]!;
        gradcheck(run, xs, { rtol: 1e-4, atol: 1e-6 });
      });
    });
  });
}

/** Brute-force TF "same" average pooling: mean over the real pixels of each window. */
function avgPoolSame(x: number[][], k: number, s: number, pad: [number, number]): number[][] {
  const h = x.length;
  const oh = Math.ceil(h / s);
  const out: number[][] = [];
  for (let i = 0; i < oh; i++) {
    out.push([]);
    for (let j = 0; j < oh; j++) {
      let sum = 0;
      let n = 0;
      for (let a = 0; a < k; a++)
        for (let b = 0; b < k; b++) {
          const r = i * s + a - pad[0];
          const c = j * s + b - pad[1];
          if (r >= 0 && r < h && c >= 0 && c < h) { sum += x[r]![c]!; n++; }
        }
      out[i]!.push(sum / n);
    }
  }
  return out;
}

test('avgpool with asymmetric padding excludes the padding (TF same) and maxpool pads with -inf', () => {
  scope(() => {
    const vals = Array.from({ length: 5 }, (_, i) => Array.from({ length: 5 }, (_, j) => -1 - i * 5 - j));
    const x = tensor([[vals]], null, f64);
    const y = OPS.avgpool.run([x], { kernel: 3, stride: 2, padding: [1, 1, 1, 1] }, { mode: 'eval' })[0]!;
    expectClose(y, avgPoolSame(vals, 3, 2, [1, 1]).flat(), { rtol: 1e-12 });
    const z = OPS.avgpool.run([tensor([[vals.slice(0, 4).map((r) => r.slice(0, 4))]], null, f64)], { kernel: 3, stride: 2, padding: [0, 0, 1, 1] }, { mode: 'eval' })[0]!;
    expectClose(z, avgPoolSame(vals.slice(0, 4).map((r) => r.slice(0, 4)), 3, 2, [0, 0]).flat(), { rtol: 1e-12 });
    const m = OPS.maxpool.run([x], { kernel: 2, stride: 2, padding: [0, 0, 1, 1] }, { mode: 'eval' })[0]!;
    assert.deepEqual(m.shape, [1, 1, 3, 3]);
    assert.equal(m.toArray()[8], -25, 'corner window sees only the real pixel, not the zero padding');
  });
});

test('shape ops follow ONNX semantics', () => {
  scope(() => {
    const x = randn([2, 3, 4]);
    assert.deepEqual(OPS.reshape.run([x], { shape: [0, -1] }, { mode: 'eval' })[0]!.shape, [2, 12]);
    assert.deepEqual(OPS.unsqueeze.run([x], { axes: [1, 4] }, { mode: 'eval' })[0]!.shape, [2, 1, 3, 4, 1]);
    assert.deepEqual(OPS.flatten.run([x], { axis: 2 }, { mode: 'eval' })[0]!.shape, [6, 4]);
    assert.deepEqual(OPS.slice.run([x], { starts: [-2], ends: [1e9], axes: [2] }, { mode: 'eval' })[0]!.shape, [2, 3, 2]);
    const p = OPS.pad.run([tensor([[1, 2]])], { pads: [1, 0, 0, 2], value: 9 }, { mode: 'eval' })[0]!;
    assert.deepEqual(p.toArray(), [9, 9, 9, 9, 1, 2, 9, 9]);
    assert.deepEqual(OPS.gather.run([tensor([5, 6, 7]), tensor(2, [], { dtype: 'int64' })], {}, { mode: 'eval' })[0]!.toArray(), [7]);
    const d = randn([50, 50]);
    assert.equal(OPS.dropout.run([d], { p: 0.5 }, { mode: 'eval' })[0], d, 'dropout is the identity outside train');
    const dt = OPS.dropout.run([d], { p: 0.5 }, { mode: 'train' })[0]!;
    const zerosFrac = dt.eq(0).float().mean().item();
    assert.ok(zerosFrac > 0.3 && zerosFrac < 0.7, `train dropout zeroes about half: ${zerosFrac}`);
  });
});
