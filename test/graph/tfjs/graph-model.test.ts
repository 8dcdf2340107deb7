/**
 * The TF.js graph-model importer on small hand-built GraphDef JSON fixtures (model.json + one shard written here):
 * every fused-op variant tfjs-converter emits for _FusedConv2D / FusedDepthwiseConv2dNative / _FusedMatMul, and the
 * standalone ops FusedBatchNorm(V3), Sigmoid, Tanh, Elu, Selu, LeakyRelu, Prelu, Pad, PadV2, MirrorPad, Reshape,
 * Max, ExpandDims, Squeeze (TF's Conv1D pattern). Reference: tfjs executing the same graph (relative error ≤ 1e-4),
 * and, for the variant tfjs refuses to run (a batch norm fused into a conv), the same computation written with
 * tfjs ops. Each imported graph also exports to ONNX and runs in onnxruntime with the same outputs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { UnsupportedOpError } from '../../../src/graph/errors.js';
import { loadTfjsModel } from '../../../src/graph/tfjs/index.js';
import { disposeGraph } from '../../../src/graph/params.js';
import { expectClose } from '../../helpers/check.js';
import { expectOnnxMatches, packWeights, runNhwc, values, writeModel } from './fixtures.js';

const TOL = { rtol: 1e-4, atol: 1e-5 };
type Attr = Record<string, unknown>;
const b64 = (s: string) => Buffer.from(s).toString('base64');
const A = {
  s: (v: string) => ({ s: b64(v) }),
  ss: (v: string[]) => ({ list: { s: v.map(b64) } }),
  ints: (v: number[]) => ({ list: { i: v.map(String) } }),
  i: (v: number) => ({ i: String(v) }),
  f: (v: number) => ({ f: v }),
  b: (v: boolean) => ({ b: v }),
  T: { type: 'DT_FLOAT' },
};

/** A GraphDef under construction: nodes, and Const values that go to the shard (float32 or int32). */
class GraphDef {
  readonly node: { name: string; op: string; input: string[]; attr: Attr }[] = [];
  readonly weights: { name: string; shape: number[]; values: ArrayLike<number>; dtype?: 'int32' }[] = [];
  /** Const values by name, for the hand-written references. */
  readonly consts = new Map<string, tf.Tensor>();
  private seed = 100;

  input(name: string, shape: number[]): string {
    const dim = [-1, ...shape.slice(1)].map((d) => ({ size: String(d) }));
    this.node.push({ name, op: 'Placeholder', input: [], attr: { dtype: A.T, shape: { shape: { dim } } } });
    return name;
  }
  /** A float Const with given values, or seeded random ones (`scale`, made positive with `positive`). */
  const(name: string, shape: number[], v?: number[], o: { scale?: number; positive?: boolean } = {}): string {
    const n = shape.reduce((p, d) => p * d, 1);
    const vals = v ? Float32Array.from(v) : values(n, this.seed++, o.scale ?? 0.5);
    if (o.positive) vals.forEach((x, i) => (vals[i] = Math.abs(x) + 0.5));
    this.push(name, shape, vals, 'DT_FLOAT');
    this.consts.set(name, tf.tensor(vals, shape));
    return name;
  }
  intConst(name: string, shape: number[], v: number[]): string {
    this.push(name, shape, v, 'DT_INT32');
    return name;
  }
  op(name: string, op: string, input: string[], attr: Attr = {}): string {
    this.node.push({ name, op, input, attr: { T: A.T, ...attr } });
    return name;
  }
  /** Writes model.json + shard; returns the folder. */
  write(): string {
    const { specs, bytes } = packWeights(this.weights);
    return writeModel('graph-model', { node: this.node, versions: { producer: 1 } }, specs, bytes);
  }
  /** Writes model.json + shard; returns the folder and the tfjs graph model of the same artifacts. */
  async save(): Promise<{ dir: string; tfModel: tf.GraphModel }> {
    const { specs, bytes } = packWeights(this.weights);
    const topo = { node: this.node, versions: { producer: 1 } };
    const dir = this.write();
    const tfModel = await tf.loadGraphModel(
      tf.io.fromMemory({ modelTopology: topo, weightSpecs: specs, weightData: bytes.slice().buffer }),
    );
    return { dir, tfModel };
  }
  private push(name: string, shape: number[], v: ArrayLike<number>, dtype: 'DT_FLOAT' | 'DT_INT32'): void {
    const dim = shape.map((d) => ({ size: String(d) }));
    this.node.push({
      name,
      op: 'Const',
      input: [],
      attr: { dtype: { type: dtype }, value: { tensor: { dtype, tensorShape: { dim } } } },
    });
    this.weights.push({ name, shape, values: v, ...(dtype === 'DT_INT32' ? { dtype: 'int32' as const } : {}) });
  }
}

const conv = (g: GraphDef, name: string, op: string, input: string[], fused: string[], extra: Attr = {}) =>
  g.op(name, op, input, {
    strides: A.ints([1, 1, 1, 1]),
    padding: A.s('SAME'),
    data_format: A.s('NHWC'),
    dilations: A.ints([1, 1, 1, 1]),
    fused_ops: A.ss(fused),
    num_args: A.i(input.length - 2),
    ...extra,
  });

const VARIANTS: string[][] = [
  ['BiasAdd'],
  ['BiasAdd', 'Relu'],
  ['BiasAdd', 'Relu6'],
  ['BiasAdd', 'Elu'],
  ['BiasAdd', 'LeakyRelu'],
  ['BiasAdd', 'Sigmoid'],
  ['BiasAdd', 'Prelu'],
  ['FusedBatchNorm'],
  ['FusedBatchNorm', 'Relu'],
];

/** The activation a fused-op list ends in, as tfjs ops (slope for Prelu). */
function act(fused: string[], x: tf.Tensor, slope?: tf.Tensor): tf.Tensor {
  switch (fused[1]) {
    case undefined:
      return x;
    case 'Relu':
      return tf.relu(x);
    case 'Relu6':
      return tf.relu6(x);
    case 'Elu':
      return tf.elu(x);
    case 'LeakyRelu':
      return tf.leakyRelu(x, 0.3);
    case 'Sigmoid':
      return tf.sigmoid(x);
    case 'Prelu':
      return tf.prelu(x, slope!);
  }
  throw new Error(fused[1]);
}

for (const fused of VARIANTS) {
  test(`fused ops [${fused.join(', ')}] on _FusedConv2D, FusedDepthwiseConv2dNative and _FusedMatMul`, async () => {
    const g = new GraphDef();
    const x = g.input('x', [-1, 6, 6, 3]);
    const bn = fused[0] === 'FusedBatchNorm';
    const extra = (p: string, c: number): string[] =>
      bn
        ? [
            g.const(`${p}/scale`, [c]),
            g.const(`${p}/offset`, [c]),
            g.const(`${p}/mean`, [c]),
            g.const(`${p}/var`, [c], undefined, { positive: true }),
          ]
        : [g.const(`${p}/bias`, [c]), ...(fused[1] === 'Prelu' ? [g.const(`${p}/alpha`, [c])] : [])];
    const attrs: Attr = fused[1] === 'LeakyRelu' ? { leakyrelu_alpha: A.f(0.3) } : bn ? { epsilon: A.f(0.001) } : {};
    const c1 = conv(g, 'c1', '_FusedConv2D', [x, g.const('c1/w', [3, 3, 3, 4]), ...extra('c1', 4)], fused, attrs);
    const d1 = conv(
      g,
      'd1',
      'FusedDepthwiseConv2dNative',
      [c1, g.const('d1/w', [3, 3, 4, 2]), ...extra('d1', 8)],
      fused,
      attrs,
    );
    const m = g.op('mean', 'Mean', [d1, g.intConst('mean/axes', [2], [1, 2])], { keep_dims: A.b(false) });
    // a batch norm is never fused into a MatMul: that variant's matmul keeps its bias and activation
    const mmFused = bn ? ['BiasAdd', ...fused.slice(1)] : fused;
    const mmArgs = [g.const('fc/bias', [5]), ...(fused[1] === 'Prelu' ? [g.const('fc/alpha', [5])] : [])];
    g.op('out', '_FusedMatMul', [m, g.const('fc/w', [8, 5]), ...mmArgs], {
      transpose_a: A.b(false),
      transpose_b: A.b(false),
      fused_ops: A.ss(mmFused),
      num_args: A.i(mmArgs.length),
      ...(fused[1] === 'LeakyRelu' ? { leakyrelu_alpha: A.f(0.3) } : {}),
    });
    const { dir, tfModel } = await g.save();
    const im = await loadTfjsModel(dir);
    const xs = values(2 * 6 * 6 * 3, 1, 2);
    const [got] = runNhwc(im, xs, [2, 6, 6, 3]);
    const K = (n: string) => g.consts.get(n)!;
    // the same graph written with tfjs ops
    const stage = (y: tf.Tensor4D, p: string, c: number) =>
      act(
        fused,
        bn
          ? tf.batchNorm(y, K(`${p}/mean`), K(`${p}/var`), K(`${p}/offset`), K(`${p}/scale`), 0.001)
          : y.add(K(`${p}/bias`)),
        fused[1] === 'Prelu' ? K(`${p}/alpha`) : undefined,
      ) as tf.Tensor4D;
    const x4 = tf.tensor4d(xs, [2, 6, 6, 3]);
    const h1 = stage(tf.conv2d(x4, K('c1/w') as tf.Tensor4D, 1, 'same'), 'c1', 4);
    const h2 = stage(tf.depthwiseConv2d(h1, K('d1/w') as tf.Tensor4D, 1, 'same'), 'd1', 8);
    const fc = tf.matMul(h2.mean([1, 2]) as tf.Tensor2D, K('fc/w') as tf.Tensor2D).add(K('fc/bias'));
    const want = act(mmFused, fc, fused[1] === 'Prelu' ? K('fc/alpha') : undefined).dataSync();
    expectClose(got!, want, TOL, 'vs tfjs ops');
    if (bn)
      assert.throws(
        () => tfModel.execute(x4, 'out'),
        /FusedBatchNorm is not supported/,
        'tfjs cannot run this variant',
      );
    else if (fused[1] === 'LeakyRelu') {
      // tfjs-converter 4.22 does not map FusedDepthwiseConv2dNative's leakyrelu_alpha (its op list lacks the
      // attribute), so tfjs computes NaN for every negative value there: only the first conv can be compared
      const [c1Got] = runNhwc(im, xs, [2, 6, 6, 3], [im.nodes.find((n) => n.op === 'leakyrelu')!.outputs[0]!]);
      expectClose(c1Got!, (tfModel.execute(x4, 'c1') as tf.Tensor).dataSync(), TOL, 'c1 vs tfjs executing the graph');
      assert.ok((tfModel.execute(x4, 'd1') as tf.Tensor).dataSync().some(Number.isNaN), 'the tfjs bug is still there');
    } else expectClose(got!, (tfModel.execute(x4, 'out') as tf.Tensor).dataSync(), TOL, 'vs tfjs executing the graph');
    await expectOnnxMatches(im, xs, [2, 6, 6, 3]);
    if (fused[1] === 'Prelu') assert.equal(im.params.get('c1/alpha')!.prunable, false);
    assert.equal(im.params.get('fc/w')!.role, 'head');
    disposeGraph(im);
    rmSync(dir, { recursive: true });
  });
}

test('standalone ops: FusedBatchNormV3, activations, Pad/PadV2/MirrorPad, Max, ExpandDims, Reshape, Conv1D as ExpandDims + Conv2D + Squeeze', async () => {
  const g = new GraphDef();
  const x = g.input('x', [-1, 5, 5, 4]);
  const pad = (name: string, op: string, src: string, p: number[][], extra: string[] = [], attr: Attr = {}) =>
    g.op(name, op, [src, g.intConst(`${name}/paddings`, [4, 2], p.flat()), ...extra], {
      Tpaddings: { type: 'DT_INT32' },
      ...attr,
    });
  let h = pad('pad', 'Pad', x, [
    [0, 0],
    [1, 2],
    [0, 1],
    [0, 0],
  ]); // 8×6
  h = pad(
    'padv2',
    'PadV2',
    h,
    [
      [0, 0],
      [1, 0],
      [0, 0],
      [0, 0],
    ],
    [g.const('padv2/value', [], [0.5])],
  ); // 9×6
  h = pad(
    'mirror',
    'MirrorPad',
    h,
    [
      [0, 0],
      [1, 1],
      [2, 2],
      [0, 0],
    ],
    [],
    { mode: A.s('REFLECT') },
  ); // 11×10
  const bn = g.op(
    'bn',
    'FusedBatchNormV3',
    [
      h,
      g.const('bn/scale', [4]),
      g.const('bn/offset', [4]),
      g.const('bn/mean', [4]),
      g.const('bn/var', [4], undefined, { positive: true }),
    ],
    { epsilon: A.f(0.001), is_training: A.b(false), data_format: A.s('NHWC'), U: A.T },
  );
  const acts = [
    g.op('sig', 'Sigmoid', [bn]),
    g.op('tanh', 'Tanh', [bn]),
    g.op('elu', 'Elu', [bn]),
    g.op('selu', 'Selu', [bn]),
    g.op('lrelu', 'LeakyRelu', [bn], { alpha: A.f(0.1) }),
    g.op('prelu', 'Prelu', [bn, g.const('prelu/alpha', [4])]),
    g.op('relu', 'Relu', [bn]),
  ];
  const sum = acts.slice(1).reduce((p, q, i) => g.op(`sum${i}`, 'AddV2', [p, q]), acts[0]!);
  const mx = g.op('max_hw', 'Max', [sum, g.intConst('max_hw/axes', [2], [1, 2])], { keep_dims: A.b(false) }); // [N, 4]
  const mxc = g.op('max_c', 'Max', [sum, g.intConst('max_c/axes', [1], [3])], { keep_dims: A.b(true) }); // [N, 11, 10, 1]
  const mxh = g.op('max_h', 'Max', [sum, g.intConst('max_h/axes', [1], [1])], { keep_dims: A.b(false) }); // [N, 10, 4]
  const e1 = g.op('ex1', 'ExpandDims', [mx, g.intConst('ex1/axis', [], [1])], { Tdim: { type: 'DT_INT32' } }); // [N, 1, 4]
  const e2 = g.op('ex2', 'ExpandDims', [e1, g.intConst('ex2/axis', [], [-3])], { Tdim: { type: 'DT_INT32' } }); // [N, 1, 1, 4]
  const gated = g.op('gated', 'Mul', [g.op('gate', 'Mul', [sum, e2]), mxc]); // [N, 11, 10, 4]
  const seq = g.op('seq', 'Reshape', [gated, g.intConst('seq/shape', [3], [-1, 110, 4])], {
    Tshape: { type: 'DT_INT32' },
  });
  // TF's Conv1D: ExpandDims(1) → Conv2D [1, k, in, out] → Squeeze([1])
  const c1x = g.op('c1d/expand', 'ExpandDims', [seq, g.intConst('c1d/axis', [], [1])], { Tdim: { type: 'DT_INT32' } });
  const c1 = g.op('c1d/conv', 'Conv2D', [c1x, g.const('c1d/w', [1, 3, 4, 2])], {
    strides: A.ints([1, 1, 2, 1]),
    padding: A.s('VALID'),
    data_format: A.s('NHWC'),
    dilations: A.ints([1, 1, 1, 1]),
  }); // [N, 1, 54, 2]
  const c1s = g.op('c1d', 'Squeeze', [c1], { squeeze_dims: A.ints([1]) }); // [N, 54, 2]
  const m1 = g.op('c1d_max', 'Max', [c1s, g.intConst('c1d_max/axes', [1], [1])], { keep_dims: A.b(false) }); // [N, 2]
  const img = g.op('img', 'Reshape', [seq, g.intConst('img/shape', [4], [-1, 11, 10, 4])], {
    Tshape: { type: 'DT_INT32' },
  });
  const im = g.op('img_mean', 'Mean', [img, g.intConst('img_mean/axes', [2], [1, 2])], { keep_dims: A.b(false) }); // [N, 4]
  const mh = g.op('max_h_w', 'Max', [mxh, g.intConst('max_h_w/axes', [1], [1])], { keep_dims: A.b(false) }); // [N, 4]
  const flat = g.op('flat', 'Reshape', [img, g.intConst('flat/shape', [2], [-1, 440])], {
    Tshape: { type: 'DT_INT32' },
  });
  const fm = g.op('flat_max', 'Max', [flat, g.intConst('flat_max/axes', [1], [1])], { keep_dims: A.b(true) }); // [N, 1]
  const cat = g.op('cat', 'ConcatV2', [mx, m1, im, mh, fm, g.intConst('cat/axis', [], [1])], { N: A.i(5) }); // [N, 15]
  g.op('out', 'MatMul', [cat, g.const('fc/w', [15, 3])], { transpose_a: A.b(false), transpose_b: A.b(false) });
  const { dir, tfModel } = await g.save();
  const model = await loadTfjsModel(dir);
  const xs = values(2 * 5 * 5 * 4, 2, 2);
  const [got] = runNhwc(model, xs, [2, 5, 5, 4]);
  expectClose(got!, (tfModel.execute(tf.tensor4d(xs, [2, 5, 5, 4]), 'out') as tf.Tensor).dataSync(), TOL, 'vs tfjs');
  // intermediate values in NHWC / Keras layout, each against tfjs
  const names = ['mirror', 'bn', 'gated', 'max_h', 'c1d', 'img'];
  const ir = names.map((n) => model.nodes.find((m) => m.name === n)!.outputs[0]!);
  const mid = runNhwc(model, xs, [2, 5, 5, 4], ir);
  const ref = tfModel.execute(tf.tensor4d(xs, [2, 5, 5, 4]), names) as tf.Tensor[];
  names.forEach((n, i) => expectClose(mid[i]!, ref[i]!.dataSync(), TOL, n));
  await expectOnnxMatches(model, xs, [2, 5, 5, 4]);
  disposeGraph(model);
  rmSync(dir, { recursive: true });
});

test('unsupported graph ops and fused-op lists: one error lists every one', async () => {
  const g = new GraphDef();
  const x = g.input('x', [-1, 4, 4, 3]);
  const c = conv(g, 'c', '_FusedConv2D', [x, g.const('c/w', [1, 1, 3, 2]), g.const('c/b', [2])], ['BiasAdd', 'Swish']);
  const r = g.op('r1', 'Round', [c]);
  const r2 = g.op('r2', 'Round', [r]);
  g.op('out', 'Cumsum', [r2, g.intConst('axis', [], [1])]);
  const dir = g.write();
  await assert.rejects(loadTfjsModel(dir), (e: unknown) => {
    assert.ok(e instanceof UnsupportedOpError);
    assert.deepEqual(
      e.unsupported.map((u) => [u.op, u.nodes]),
      [
        ['_FusedConv2D with fused ops [BiasAdd, Swish]', ['c']],
        ['Round', ['r1', 'r2']],
        ['Cumsum', ['out']],
      ],
    );
    assert.match(e.message, /tfjs-graph: 3 unsupported ops: .*'Round' in node 'r1' \(\+1 more\)/);
    return true;
  });
  rmSync(dir, { recursive: true });
});
