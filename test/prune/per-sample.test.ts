/**
 * The per-sample conv rules against autograd, one sample at a time, in float64: for every conv geometry the
 * estimators meet (depthwise via one grouped conv; dense and grouped via kernel-offset slices), including strides
 * that skip trailing pixels, dilation, asymmetric TF "same" padding and explicit 4-sided padding.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { enableGrad, gradStrict, manualSeed, nn, randn, scope, type Tensor } from '../../src/engine/index.js';
import { PER_SAMPLE_RULES } from '../../src/prune/per-sample.js';
import type { Attrs } from '../../src/graph/index.js';

/** The conv of the op table, for the attrs used here (explicit padding only; "same" is padded by hand). */
function conv(x: Tensor, w: Tensor, a: Attrs, pads: [number, number, number, number]): Tensor {
  const xp = pads.some((v) => v !== 0) ? nn.pad(x, [pads[1], pads[3], pads[0], pads[2]]) : x;
  return nn.conv2d(xp, w, null, {
    stride: a.stride as [number, number],
    dilation: (a.dilation ?? [1, 1]) as [number, number],
    groups: (a.groups as number) ?? 1,
  });
}

const cases: { name: string; x: number[]; w: number[]; a: Attrs; pads: [number, number, number, number] }[] = [
  {
    name: 'depthwise 3x3 s2 same_upper (odd size: stride skips a pixel)',
    x: [3, 4, 7, 6],
    w: [4, 1, 3, 3],
    a: { stride: [2, 2], groups: 4, autoPad: 'same_upper' },
    pads: [1, 1, 1, 1],
  },
  {
    name: 'depthwise 3x3 s2 dilation 2, pads [1,0,0,1]',
    x: [2, 3, 9, 8],
    w: [3, 1, 3, 3],
    a: { stride: [2, 2], dilation: [2, 2], groups: 3, padding: [1, 0, 0, 1] },
    pads: [1, 0, 0, 1],
  },
  {
    name: 'depthwise 3x2 s(1,3) valid',
    x: [2, 2, 6, 8],
    w: [2, 1, 3, 2],
    a: { stride: [1, 3], groups: 2 },
    pads: [0, 0, 0, 0],
  },
  {
    name: 'dense 3x3 s2 padding 1',
    x: [2, 3, 7, 7],
    w: [5, 3, 3, 3],
    a: { stride: [2, 2], padding: 1 },
    pads: [1, 1, 1, 1],
  },
  {
    name: 'dense 1x1 on a 3x3 map (L = 9: the pairwise-product sum of squares)',
    x: [3, 5, 3, 3],
    w: [4, 5, 1, 1],
    a: { stride: [1, 1] },
    pads: [0, 0, 0, 0],
  },
  {
    name: 'dense 1x1 stride 2 on 6x5 (L = 9, strided input pixels)',
    x: [2, 3, 6, 5],
    w: [2, 3, 1, 1],
    a: { stride: [2, 2] },
    pads: [0, 0, 0, 0],
  },
  {
    name: 'grouped (2 groups, 2 in/3 out each) 1x1',
    x: [2, 4, 5, 5],
    w: [6, 2, 1, 1],
    a: { stride: [1, 1], groups: 2 },
    pads: [0, 0, 0, 0],
  },
];

for (const c of cases) {
  test(`per-sample conv gradients equal autograd per sample: ${c.name}`, () =>
    scope(() => {
      manualSeed(3);
      const x = randn(c.x, { dtype: 'float64' });
      const w = randn(c.w, { dtype: 'float64' }).requiresGrad_();
      // same_upper for stride 2: total pad = max((ceil(n/2) − 1)·2 + 3 − n, 0); top = floor(total/2).
      let pads = c.pads;
      if (c.a.autoPad === 'same_upper') {
        const tot = (n: number) => Math.max((Math.ceil(n / 2) - 1) * 2 + 3 - n, 0);
        const [th, tw] = [tot(c.x[2]!), tot(c.x[3]!)];
        pads = [Math.floor(th / 2), Math.floor(tw / 2), th - Math.floor(th / 2), tw - Math.floor(tw / 2)];
      }
      const y = enableGrad(() => conv(x, w, c.a, pads));
      const d = randn(y.shape, { dtype: 'float64' });
      const rule = PER_SAMPLE_RULES.conv2d!;
      const per = rule.perSample(x, d, c.a, c.w);
      assert.deepEqual(per.shape, [c.x[0], ...c.w]);
      let sumSq: Tensor | null = null;
      for (let n = 0; n < c.x[0]!; n++) {
        const yn = enableGrad(() => conv(x.narrow(0, n, 1), w, c.a, pads));
        const [gn] = gradStrict(yn.mul(d.narrow(0, n, 1)).sum(), [w]);
        const err = per.index(0, n).sub(gn!).abs().max().item();
        assert.ok(err < 1e-12, `sample ${n}: max error ${err}`);
        sumSq = sumSq === null ? gn!.square() : sumSq.add(gn!.square());
      }
      const err2 = rule.sumSquares(x, d, c.a, c.w).sub(sumSq!).abs().max().item();
      assert.ok(err2 < 1e-12, `sumSquares max error ${err2}`);
    }));
}
