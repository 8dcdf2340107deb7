/**
 * The shared table of tiny problems (STYLE §3): each builds a float64 IR Graph with GraphBuilder, so every
 * estimator and score runs through the real interpreter, plus seeded calibration batches of unequal sizes.
 * Smooth activations (tanh) keep second derivatives non-trivial; the conv cases cover padding, stride,
 * TF "same" padding, groups (depthwise) and BatchNorm in eval mode.
 */
import { manualSeed, ones, rand, randint, randn, type Tensor } from '../../src/engine/index.js';
import { GraphBuilder, type Graph } from '../../src/graph/index.js';
import type { CalibBatch, LossName } from '../../src/prune/loss.js';

export interface Case {
  name: string;
  graph: Graph;
  batches: CalibBatch[];
  classes: number;
}

const r = (shape: number[], s = 0.5): Tensor => randn(shape, { dtype: 'float64' }).mul(s);
const pre = { size: [6, 6] as [number, number], range: [0, 1] as [number, number] };

function mlp(): { g: Graph; input: number[] } {
  const b = new GraphBuilder();
  b.param('fc1.weight', r([5, 4]), 'weight');
  b.param('fc1.bias', r([5], 0.1), 'bias');
  b.param('fc2.weight', r([3, 5]), 'weight');
  const h = b.op('tanh', [b.op('linear', ['x', 'fc1.weight', 'fc1.bias'], {}, 'fc1')]);
  const out = b.op('linear', [h, 'fc2.weight'], {}, 'fc2');
  return {
    g: b.build({
      name: 'mlp',
      inputs: [{ name: 'x', shape: [null, 4] }],
      outputs: [out],
      featureTap: h,
      preprocessing: pre,
    }),
    input: [4],
  };
}

function convBn(): { g: Graph; input: number[] } {
  const b = new GraphBuilder();
  b.param('conv1.weight', r([3, 2, 3, 3]), 'weight');
  b.param('bn.weight', ones([3], { dtype: 'float64' }).add(r([3], 0.1)), 'norm');
  b.param('bn.bias', r([3], 0.1), 'norm');
  b.param('bn.running_mean', r([3], 0.1), 'buffer');
  b.param('bn.running_var', rand([3], { dtype: 'float64' }).add(0.5), 'buffer');
  b.param('conv2.weight', r([4, 3, 3, 3]), 'weight');
  b.param('fc.weight', r([3, 4]), 'weight');
  b.param('fc.bias', r([3], 0.1), 'bias');
  let h = b.op('conv2d', ['x', 'conv1.weight'], { padding: 1 }, 'conv1');
  h = b.op('tanh', [
    b.op('batchnorm', [h, 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var'], { eps: 1e-5 }, 'bn'),
  ]);
  h = b.op('tanh', [b.op('conv2d', [h, 'conv2.weight'], { stride: 2, padding: [1, 0] }, 'conv2')]);
  const f = b.op('flatten', [b.op('globalavgpool', [h])]);
  const out = b.op('linear', [f, 'fc.weight', 'fc.bias'], {}, 'fc');
  return {
    g: b.build({
      name: 'conv-bn',
      inputs: [{ name: 'x', shape: [null, 2, 5, 5] }],
      outputs: [out],
      featureTap: f,
      preprocessing: pre,
    }),
    input: [2, 5, 5],
  };
}

function depthwise(): { g: Graph; input: number[] } {
  const b = new GraphBuilder();
  b.param('dw.weight', r([3, 1, 3, 3]), 'weight');
  b.param('dw.bias', r([3], 0.1), 'bias');
  b.param('pw.weight', r([4, 3, 1, 1]), 'weight');
  b.param('fc.weight', r([3, 4]), 'weight');
  let h = b.op('tanh', [
    b.op('conv2d', ['x', 'dw.weight', 'dw.bias'], { stride: 2, groups: 3, autoPad: 'same_upper' }, 'dw'),
  ]);
  h = b.op('tanh', [b.op('conv2d', [h, 'pw.weight'], {}, 'pw')]);
  const f = b.op('flatten', [b.op('globalavgpool', [h])]);
  const out = b.op('linear', [f, 'fc.weight'], {}, 'fc');
  return {
    g: b.build({
      name: 'depthwise',
      inputs: [{ name: 'x', shape: [null, 3, 6, 6] }],
      outputs: [out],
      featureTap: f,
      preprocessing: pre,
    }),
    input: [3, 6, 6],
  };
}

/** One single-head self-attention block over 3 tokens of width 4, mean-pooled, then a linear head. */
function attention(): { g: Graph; input: number[] } {
  const b = new GraphBuilder();
  for (const n of ['q', 'k', 'v', 'o']) b.param(`${n}.weight`, r([4, 4]), 'weight');
  b.param('fc.weight', r([3, 4]), 'weight');
  const q = b.op('linear', ['x', 'q.weight'], {}, 'q');
  const k = b.op('linear', ['x', 'k.weight'], {}, 'k');
  const v = b.op('linear', ['x', 'v.weight'], {}, 'v');
  const att = b.op(
    'softmax',
    [
      b.op('div', [
        b.op('matmul', [q, b.op('transpose', [k], { perm: [0, 2, 1] })]),
        b.constant('scale', ones([], { dtype: 'float64' }).mul(2)),
      ]),
    ],
    { axis: -1 },
  );
  const o = b.op('linear', [b.op('matmul', [att, v]), 'o.weight'], {}, 'o');
  const f = b.op('reducemean', [b.op('add', ['x', o])], { axes: [1], keepdims: false });
  const out = b.op('linear', [f, 'fc.weight'], {}, 'fc');
  return {
    g: b.build({
      name: 'attention',
      inputs: [{ name: 'x', shape: [null, 3, 4] }],
      outputs: [out],
      featureTap: f,
      preprocessing: pre,
    }),
    input: [3, 4],
  };
}

export const CASES = { mlp, 'conv-bn': convBn, depthwise, attention } as const;
export type CaseName = keyof typeof CASES;
export const CASE_NAMES = Object.keys(CASES) as CaseName[];
export const LOSS_CASES: readonly LossName[] = ['mse', 'ce'];

/** A fresh case: graph (float64) and calibration batches of sizes `sizes` (default 3 and 2), seeded. */
export function makeCase(name: CaseName, o: { seed?: number; sizes?: number[] } = {}): Case {
  manualSeed(o.seed ?? 1);
  const { g, input } = CASES[name]();
  const batches = (o.sizes ?? [3, 2]).map((n) => ({
    x: randn([n, ...input], { dtype: 'float64' }),
    y: randint(0, 3, [n]),
  }));
  return { name, graph: g, batches, classes: 3 };
}

export function disposeCase(c: Case): void {
  for (const b of c.batches) {
    b.x.dispose();
    b.y.dispose();
  }
  for (const p of c.graph.params.values()) p.tensor.dispose();
  for (const t of c.graph.constants.values()) t.dispose();
  for (const t of c.graph.masks.values()) t.dispose();
}
