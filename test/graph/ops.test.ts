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
  /** Multiply the N(0,1) inputs (to reach both sides of a kink or the tails). */
  scale?: number;
}
const f64 = { dtype: 'float64' as const };
const CASES: Record<string, Case[]> = {
  conv2d: [
    { shapes: [[2, 4, 5, 5], [6, 2, 3, 3], [6]], attrs: { stride: 2, padding: 1, groups: 2 } },
    {
      shapes: [
        [1, 3, 5, 4],
        [3, 1, 3, 3],
      ],
      attrs: { padding: [0, 0, 1, 1], groups: 3, dilation: 1 },
    },
  ],
  linear: [
    { shapes: [[3, 4], [5, 4], [5]] },
    {
      shapes: [
        [2, 3, 4],
        [5, 4],
      ],
    },
  ],
  matmul: [
    {
      shapes: [
        [2, 3, 4],
        [2, 4, 5],
      ],
    },
  ],
  batchnorm: [
    {
      shapes: [[4, 3, 2, 2], [3], [3]],
      mode: 'train',
      extra: () => [zeros([3], f64), ones([3], f64)],
      attrs: { eps: 1e-3 },
    },
    { shapes: [[4, 3, 2, 2], [3], [3]], mode: 'eval-bn', extra: () => [randn([3], f64), ones([3], f64).mul(2)] },
  ],
  layernorm: [
    { shapes: [[2, 3, 4], [4], [4]], attrs: { eps: 1e-6 } },
    {
      shapes: [
        [2, 3, 4],
        [3, 4],
      ],
      attrs: { axis: 1 },
    },
  ],
  relu: [{ shapes: [[3, 4]] }],
  relu6: [{ shapes: [[3, 4]], extra: () => [] }],
  clip: [{ shapes: [[3, 4]], attrs: { min: -0.5, max: 0.7 } }],
  gelu: [{ shapes: [[3, 4]] }, { shapes: [[3, 4]], attrs: { approximate: 'tanh' } }],
  silu: [{ shapes: [[3, 4]] }],
  sigmoid: [{ shapes: [[3, 4]] }],
  tanh: [{ shapes: [[3, 4]] }],
  softmax: [{ shapes: [[2, 3, 4]], attrs: { axis: 1 } }],
  add: [{ shapes: [[2, 3], [3]] }],
  sub: [
    {
      shapes: [
        [2, 3],
        [2, 1],
      ],
    },
  ],
  mul: [
    {
      shapes: [
        [2, 3],
        [2, 3],
      ],
    },
  ],
  div: [{ shapes: [[2, 3]], extra: () => [tensor([[1.5, -2, 3]], null, f64)] }],
  pow: [{ shapes: [[2, 3]], extra: () => [], attrs: { exponent: 2 } }],
  sqrt: [{ shapes: [[2, 3]], positive: true }],
  erf: [{ shapes: [[2, 3]] }],
  neg: [{ shapes: [[2, 3]] }],
  maxpool: [
    { shapes: [[1, 2, 5, 5]], attrs: { kernel: 3, stride: 2, padding: [0, 0, 1, 1] } },
    { shapes: [[1, 2, 5, 5]], attrs: { kernel: 2, ceil: true } },
  ],
  avgpool: [
    { shapes: [[1, 2, 4, 4]], attrs: { kernel: 3, stride: 2, padding: [0, 0, 1, 1] } },
    { shapes: [[1, 2, 4, 4]], attrs: { kernel: 3, stride: 1, padding: 1, countIncludePad: true } },
  ],
  globalavgpool: [{ shapes: [[2, 3, 4, 5]] }],
  flatten: [{ shapes: [[2, 3, 2, 2]] }],
  reshape: [{ shapes: [[2, 6]], attrs: { shape: [0, 3, -1] } }],
  transpose: [{ shapes: [[2, 3, 4]], attrs: { perm: [2, 0, 1] } }],
  concat: [
    {
      shapes: [
        [2, 3],
        [2, 2],
      ],
      attrs: { axis: 1 },
    },
  ],
  pad: [
    { shapes: [[1, 2, 3, 3]], attrs: { pads: [0, 0, 1, 0, 0, 0, 0, 2], value: 0.5 } },
    { shapes: [[1, 2, 3, 4]], attrs: { pads: [0, 0, 0, 1, 0, 0, 0, 2], mode: 'reflect' } },
  ],
  dropout: [{ shapes: [[3, 4]], attrs: { p: 0.3 }, mode: 'eval-bn' }],
  identity: [{ shapes: [[3, 4]] }],
  reducemean: [{ shapes: [[2, 3, 4]], attrs: { axes: [1, 2], keepdims: false } }],
  gather: [
    {
      shapes: [[4, 3]],
      attrs: { axis: 0 },
      extra: () => [
        tensor(
          [
            [0, 2],
            [3, 3],
          ],
          null,
          { dtype: 'int64' },
        ),
      ],
    },
  ],
  select: [{ shapes: [[2, 3, 4]], attrs: { axis: 1, index: 0 } }],
  slice: [{ shapes: [[3, 6]], attrs: { starts: [1, -4], ends: [100, 5], axes: [0, 1], steps: [1, 2] } }],
  split: [
    { shapes: [[2, 6]], attrs: { axis: 1, split: [2, 4] }, out: 1 },
    { shapes: [[6, 2]], attrs: { parts: 3 }, out: 2 },
  ],
  squeeze: [{ shapes: [[2, 1, 3, 1]], attrs: { axes: [1] } }],
  unsqueeze: [{ shapes: [[2, 3]], attrs: { axes: [0, -1] } }],
  expand: [{ shapes: [[1, 3]], attrs: { shape: [4, -1] } }],
  prependtoken: [
    {
      shapes: [
        [2, 3, 4],
        [1, 1, 4],
      ],
    },
  ],
  expanddyn: [
    { shapes: [[1, 1, 4]], attrs: { shape: [0, -1, -1], refDims: [0, -1, -1] }, extra: () => [zeros([3, 5], f64)] },
  ],
  hardsigmoid: [{ shapes: [[3, 4]], attrs: { alpha: 1 / 6, beta: 0.5 } }, { shapes: [[2, 5]] }],
  hardswish: [{ shapes: [[3, 4]], scale: 3 }],
  leakyrelu: [{ shapes: [[3, 4]], attrs: { alpha: 0.1 } }],
  prelu: [
    {
      shapes: [
        [2, 3, 2, 2],
        [3, 1, 1],
      ],
    },
  ],
  elu: [{ shapes: [[3, 4]], attrs: { alpha: 0.7 } }],
  selu: [{ shapes: [[3, 4]] }],
  softplus: [{ shapes: [[3, 4]], scale: 5 }],
  mish: [{ shapes: [[3, 4]], scale: 3 }],
  exp: [{ shapes: [[3, 4]] }],
  log: [{ shapes: [[3, 4]], positive: true }],
  abs: [{ shapes: [[3, 4]] }],
  maximum: [{ shapes: [[2, 3], [3], [2, 1]] }],
  minimum: [
    {
      shapes: [
        [2, 3],
        [2, 3],
      ],
    },
  ],
  reducesum: [{ shapes: [[2, 3, 4]], attrs: { axes: [0, -1], keepdims: false } }, { shapes: [[2, 3]] }],
  reducemax: [{ shapes: [[2, 3, 4]], attrs: { axes: [1] } }],
  reducemin: [{ shapes: [[2, 3, 4]], attrs: { axes: [2], keepdims: false } }],
  reducel2: [{ shapes: [[2, 3, 4]], attrs: { axes: [1, 2], keepdims: false } }],
  resize: [
    { shapes: [[1, 2, 3, 3]], attrs: { mode: 'nearest', coord: 'asymmetric', nearest: 'floor', scales: [2, 2] } },
    { shapes: [[1, 2, 3, 4]], attrs: { mode: 'linear', coord: 'pytorch_half_pixel', sizes: [5, 7] } },
    { shapes: [[1, 1, 4, 3]], attrs: { mode: 'linear', coord: 'align_corners', sizes: [3, 5] } },
    {
      shapes: [[2, 1, 5, 5]],
      attrs: { mode: 'nearest', coord: 'half_pixel', nearest: 'round_prefer_ceil', scales: [0.6, 1.5] },
    },
  ],
  einsum: [
    {
      shapes: [
        [2, 3, 4],
        [2, 4, 5],
      ],
      attrs: { equation: 'bij,bjk->bik' },
    },
    {
      shapes: [
        [2, 3, 6],
        [4, 3],
      ],
      attrs: { equation: 'ncl,dc->ndl' },
    },
    {
      shapes: [
        [2, 3, 4],
        [3, 4],
      ],
      attrs: { equation: 'ijk,jk' },
    },
    {
      shapes: [
        [2, 3],
        [3, 4],
        [4, 2],
      ],
      attrs: { equation: 'ab,bc,cd->da' },
    },
    { shapes: [[3, 4, 2]], attrs: { equation: 'ijk->ki' } },
  ],
};

test('every op in the table has a gradient test case', () => {
  assert.deepEqual(
    OP_NAMES.filter((n) => !(n in CASES)),
    [],
  );
});

for (const [op, cases] of Object.entries(CASES)) {
  test(`op ${op}: float64 gradients match finite differences`, () => {
    cases.forEach((c, k) => {
      scope(() => {
        const raw = inputs(c.shapes, 7 + k);
        const xs = c.positive
          ? raw.map((t) => t.detach().abs().add(0.5).requiresGrad_(true))
          : c.scale
            ? raw.map((t) => t.detach().mul(c.scale!).requiresGrad_(true))
            : raw;
        const extra = c.extra?.() ?? [];
        const run = (...a: Tensor[]) =>
          (OPS as Record<string, OpDef>)[op]!.run([...a, ...extra], c.attrs ?? {}, { mode: c.mode ?? 'eval-bn' })[
            c.out ?? 0
          ]!;
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
          if (r >= 0 && r < h && c >= 0 && c < h) {
            sum += x[r]![c]!;
            n++;
          }
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
    const z = OPS.avgpool.run(
      [tensor([[vals.slice(0, 4).map((r) => r.slice(0, 4))]], null, f64)],
      { kernel: 3, stride: 2, padding: [0, 0, 1, 1] },
      { mode: 'eval' },
    )[0]!;
    expectClose(
      z,
      avgPoolSame(
        vals.slice(0, 4).map((r) => r.slice(0, 4)),
        3,
        2,
        [0, 0],
      ).flat(),
      { rtol: 1e-12 },
    );
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
    assert.deepEqual(
      OPS.slice.run([x], { starts: [-2], ends: [1e9], axes: [2] }, { mode: 'eval' })[0]!.shape,
      [2, 3, 2],
    );
    const p = OPS.pad.run([tensor([[1, 2]])], { pads: [1, 0, 0, 2], value: 9 }, { mode: 'eval' })[0]!;
    assert.deepEqual(p.toArray(), [9, 9, 9, 9, 1, 2, 9, 9]);
    assert.deepEqual(
      OPS.gather.run([tensor([5, 6, 7]), tensor(2, [], { dtype: 'int64' })], {}, { mode: 'eval' })[0]!.toArray(),
      [7],
    );
    const d = randn([50, 50]);
    assert.equal(OPS.dropout.run([d], { p: 0.5 }, { mode: 'eval' })[0], d, 'dropout is the identity outside train');
    const dt = OPS.dropout.run([d], { p: 0.5 }, { mode: 'train' })[0]!;
    const zerosFrac = dt.eq(0).float().mean().item();
    assert.ok(zerosFrac > 0.3 && zerosFrac < 0.7, `train dropout zeroes about half: ${zerosFrac}`);
  });
});

test('composed activations match their closed forms, without overflow in the tails', () => {
  scope(() => {
    const v = [-100, -3.5, -1, -0.25, 0, 0.25, 1, 3.5, 100];
    const x = tensor(v, null, f64);
    const run = (op: string, attrs: Attrs = {}) =>
      (OPS as Record<string, OpDef>)[op]!.run([x], attrs, { mode: 'eval' })[0]!;
    const sp = (t: number) => Math.max(t, 0) + Math.log1p(Math.exp(-Math.abs(t)));
    const elu = (t: number, a: number) => (t > 0 ? t : a * Math.expm1(t));
    expectClose(run('softplus'), v.map(sp), { rtol: 1e-12, atol: 1e-15 });
    expectClose(
      run('mish'),
      v.map((t) => t * Math.tanh(sp(t))),
      { rtol: 1e-12, atol: 1e-15 },
    );
    expectClose(
      run('elu', { alpha: 0.7 }),
      v.map((t) => elu(t, 0.7)),
      { rtol: 1e-12 },
    );
    expectClose(
      run('selu'),
      v.map((t) => 1.0507009873554805 * elu(t, 1.6732632423543772)),
      { rtol: 1e-7 },
    );
    expectClose(
      run('hardswish'),
      v.map((t) => (t * Math.min(Math.max(t + 3, 0), 6)) / 6),
      { rtol: 1e-12 },
    );
    expectClose(
      run('hardsigmoid', { alpha: 1 / 6, beta: 0.5 }),
      v.map((t) => Math.min(Math.max(t / 6 + 0.5, 0), 1)),
      { rtol: 1e-12 },
    );
    expectClose(
      run('leakyrelu', { alpha: 0.2 }),
      v.map((t) => (t < 0 ? 0.2 * t : t)),
      { rtol: 1e-12 },
    );
    const slope = tensor([0.3], null, f64);
    expectClose(
      OPS.prelu.run([x, slope], {}, { mode: 'eval' })[0]!,
      v.map((t) => (t < 0 ? 0.3 * t : t)),
      { rtol: 1e-12 },
    );
  });
});

test('resize reproduces the ONNX coordinate modes; einsum equals explicit matmuls and sums', () => {
  scope(() => {
    const x = tensor(
      [
        [
          [
            [1, 2],
            [3, 4],
          ],
        ],
      ],
      null,
      f64,
    );
    const r = (attrs: Attrs) => OPS.resize.run([x], attrs, { mode: 'eval' })[0]!.toArray();
    assert.deepEqual(
      r({ mode: 'nearest', coord: 'asymmetric', nearest: 'floor', scales: [2, 1] }),
      [1, 2, 1, 2, 3, 4, 3, 4],
    );
    // half_pixel, out 4 from 2: x = (o + 0.5) / 2 − 0.5 = −0.25, 0.25, 0.75, 1.25, clamped to [0, 1]
    expectClose(r({ mode: 'linear', coord: 'half_pixel', sizes: [2, 4] }).slice(0, 4), [1, 1.25, 1.75, 2], {
      rtol: 1e-12,
    });
    expectClose(r({ mode: 'linear', coord: 'align_corners', sizes: [3, 3] }), [1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4], {
      rtol: 1e-12,
    });
    assert.throws(() => r({ mode: 'linear', coord: 'tf_crop_and_resize', sizes: [3, 3] }), /coord.*must be one of/);
    const a = randn([2, 3, 4], f64);
    const b = randn([2, 4, 5], f64);
    expectClose(OPS.einsum.run([a, b], { equation: 'bij,bjk->bik' }, { mode: 'eval' })[0]!, a.matmul(b), {
      rtol: 1e-12,
    });
    expectClose(OPS.einsum.run([a, b], { equation: 'bij,bjk->kb' }, { mode: 'eval' })[0]!, a.matmul(b).sum(1).t(), {
      rtol: 1e-12,
    });
    expectClose(OPS.einsum.run([a], { equation: 'bij->j' }, { mode: 'eval' })[0]!, a.sum([0, 1]), { rtol: 1e-12 });
    assert.throws(() => OPS.einsum.run([a], { equation: '...ij->ij' }, { mode: 'eval' }), /ellipsis/);
    assert.throws(() => OPS.einsum.run([a], { equation: 'iij->j' }, { mode: 'eval' }), /diagonal/);
  });
});
