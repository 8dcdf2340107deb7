/**
 * ONNX export: every IR op (a synthetic graph that uses each row of the op table) against onnxruntime-node;
 * the exported file imported back; and the round trip of the issue: import → mask 50% of every prunable weight
 * (seeded) → export → onnxruntime output equals tapir's masked forward.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import {
  manualSeed,
  nn,
  rand,
  randint,
  randn,
  scope,
  tensor,
  TapirError,
  type Tensor,
} from '../../src/engine/index.js';
import { forward } from '../../src/graph/interpreter.js';
import type { Graph, Node, ParamRole } from '../../src/graph/ir.js';
import { OP_NAMES } from '../../src/graph/ops.js';
import { disposeGraph, makeParam, prunableParams, setMask, trainableParams } from '../../src/graph/params.js';
import { EXPORT_RULES, exportOnnx, exportOnnxBytes, importOnnx, importOnnxBytes } from '../../src/graph/onnx/index.js';
import { UnsupportedOpError } from '../../src/graph/errors.js';
import { loadModel } from '../../src/graph/zoo/index.js';
import { maxRelError, onnxFixtures, readF32, torchMissing, type Fixtures } from './onnx-fixtures.js';

async function ortRun(bytes: Uint8Array | string, x: Tensor): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes as Uint8Array);
  const r = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', x.data<'float32'>(), [...x.shape]) });
  return r[s.outputNames[0]!]!.data as Float32Array;
}

/** A small graph that uses every op of the table at least once (CNN stem, then a ViT-like token path). */
function allOpsGraph(): Graph {
  manualSeed(11);
  const params: Graph['params'] = new Map();
  const constants: Graph['constants'] = new Map();
  const p = (name: string, shape: number[], role: ParamRole, init: (t: Tensor) => Tensor = (t) => t.mul(0.5)) =>
    params.set(
      name,
      makeParam(
        name,
        scope(() => init(randn(shape)).detach()),
        role,
      ),
    );
  p('c1.weight', [4, 3, 3, 3], 'weight');
  p('c1.bias', [4], 'bias');
  p('bn.weight', [4], 'norm', (t) => t.abs().add(0.5));
  p('bn.bias', [4], 'norm');
  p('bn.running_mean', [4], 'buffer', (t) => t.mul(0.1));
  p('bn.running_var', [4], 'buffer', (t) => t.abs().add(0.5));
  p('dw.weight', [4, 1, 3, 3], 'weight');
  p('tok', [1, 1, 4], 'embedding');
  p('tok2', [1, 1, 4], 'embedding');
  p('ln.weight', [4], 'norm', (t) => t.abs().add(0.5));
  p('ln.bias', [4], 'norm');
  p('qkv.weight', [12, 4], 'weight');
  p('qkv.bias', [12], 'bias');
  p('head.weight', [3, 4], 'head');
  p('head.bias', [3], 'head');
  p('pr.slope', [4, 1, 1], 'norm');
  constants.set('half', tensor([0.5]));
  constants.set('idx', tensor([0, 2], null, { dtype: 'int64' }));
  constants.set(
    'mix',
    scope(() => randn([4, 4]).mul(0.5)),
  );
  const N = (name: string, op: string, inputs: string[], attrs: Node['attrs'] = {}, outputs = [name]): Node => ({
    name,
    op,
    inputs,
    outputs,
    attrs,
  });
  const nodes: Node[] = [
    N('c1', 'conv2d', ['x', 'c1.weight', 'c1.bias'], { stride: 1, padding: [1, 0, 2, 1] }),
    N('bn', 'batchnorm', ['c1', 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var'], { eps: 1e-3 }),
    N('r6', 'relu6', ['bn']),
    N('dw', 'conv2d', ['r6', 'dw.weight', ''], { stride: 2, padding: 1, groups: 4 }),
    N('cl', 'clip', ['dw'], { min: -1, max: 2 }),
    N('mp', 'maxpool', ['cl'], { kernel: 2, stride: 1, padding: [0, 0, 1, 1] }),
    N('ap', 'avgpool', ['mp'], { kernel: 3, stride: 1, padding: 1, countIncludePad: false }),
    N('pd', 'pad', ['ap'], { pads: [0, 0, 1, 0, 0, 0, 0, 1], value: 0.5 }),
    N('sg', 'sigmoid', ['pd']),
    N('re', 'relu', ['sg']),
    N('gp', 'globalavgpool', ['re'], { keepdims: true }),
    N('fl', 'flatten', ['gp'], { axis: 1 }),
    N('rs', 'reshape', ['re'], { shape: [0, 4, -1] }),
    N('tr', 'transpose', ['rs'], { perm: [0, 2, 1] }),
    N('pt', 'prependtoken', ['tr', 'tok']),
    N('ed', 'expanddyn', ['tok2', 'x'], { shape: [-1, 1, -1], refDims: [0, -1, -1] }),
    N('ct', 'concat', ['ed', 'pt'], { axis: 1 }),
    N('ln', 'layernorm', ['ct', 'ln.weight', 'ln.bias'], { axis: -1, eps: 0.05 }), // 4 features: a small eps would make float32 rounding dominate
    N('qkv', 'linear', ['ln', 'qkv.weight', 'qkv.bias']),
    N('sp', 'split', ['qkv'], { axis: 2, split: [4, 4, 4] }, ['q', 'k', 'v']),
    N('kt', 'transpose', ['k'], { perm: [0, 2, 1] }),
    N('s', 'matmul', ['q', 'kt']),
    N('ss', 'mul', ['s', 'half']),
    N('sm', 'softmax', ['ss'], { axis: -1 }),
    N('o', 'matmul', ['sm', 'v']),
    N('ge', 'gelu', ['o']),
    N('gt', 'gelu', ['ge'], { approximate: 'tanh' }),
    N('si', 'silu', ['gt']),
    N('th', 'tanh', ['si']),
    N('pw', 'pow', ['th'], { exponent: 2 }),
    N('p1', 'add', ['pw', 'half']),
    N('sq', 'sqrt', ['p1']),
    N('dv', 'div', ['th', 'sq']),
    N('ef', 'erf', ['dv']),
    N('ng', 'neg', ['ef']),
    N('sb', 'sub', ['ng', 'o']),
    N('dr', 'dropout', ['sb'], { p: 0.25 }),
    N('id', 'identity', ['dr']),
    N('rm', 'reducemean', ['id'], { axes: [1], keepdims: false }),
    N('sel', 'select', ['id'], { axis: 1, index: 0 }),
    N('sl', 'slice', ['ln'], { starts: [1], ends: [3], axes: [1], steps: [1] }),
    N('ga', 'gather', ['ln', 'idx'], { axis: 1 }),
    N('us', 'unsqueeze', ['fl'], { axes: [1] }),
    N('ex', 'expand', ['us'], { shape: [-1, 2, -1] }),
    N('a1', 'add', ['sl', 'ga']),
    N('a2', 'add', ['a1', 'ex']),
    N('rm2', 'reducemean', ['a2'], { axes: [1], keepdims: true }),
    N('sq2', 'squeeze', ['rm2'], { axes: [1] }),
    N('f1', 'add', ['rm', 'sel']),
    N('f2a', 'add', ['f1', 'sq2']),
    // activations, elementwise max/min, resize, einsum and reductions on the depthwise conv's map
    N('hsg', 'hardsigmoid', ['dw'], { alpha: 0.2, beta: 0.5 }),
    N('hsw', 'hardswish', ['dw']),
    N('lr', 'leakyrelu', ['hsw'], { alpha: 0.1 }),
    N('pr', 'prelu', ['lr', 'pr.slope']),
    N('el', 'elu', ['pr'], { alpha: 0.7 }),
    N('se', 'selu', ['el']),
    N('spl', 'softplus', ['se']),
    N('mi', 'mish', ['se']),
    N('mx', 'maximum', ['spl', 'mi', 'hsg']),
    N('mn', 'minimum', ['mx', 'pr', 'half']),
    N('ab', 'abs', ['mn']),
    N('ab1', 'add', ['ab', 'half']),
    N('lg', 'log', ['ab1']),
    N('xp', 'exp', ['lg']),
    N('up', 'resize', ['xp'], { mode: 'nearest', coord: 'asymmetric', nearest: 'floor', scales: [2, 2] }),
    N('upl', 'resize', ['up'], { mode: 'linear', coord: 'pytorch_half_pixel', sizes: [3, 5] }),
    N('es', 'einsum', ['upl', 'mix'], { equation: 'nchw,dc->ndhw' }),
    N('rs1', 'reducesum', ['es'], { axes: [2], keepdims: false }),
    N('rx', 'reducemax', ['rs1'], { axes: [2], keepdims: false }),
    N('rn', 'reducemin', ['es'], { axes: [2, 3], keepdims: false }),
    N('r2', 'reducel2', ['es'], { axes: [-1, -2], keepdims: false }),
    N('f3', 'add', ['rx', 'rn']),
    N('f4', 'add', ['f3', 'r2']),
    N('f2', 'add', ['f2a', 'f4']),
    N('head', 'linear', ['f2', 'head.weight', 'head.bias']),
  ];
  return {
    name: 'all-ops',
    inputs: [{ name: 'x', shape: [null, 3, 8, 8] }],
    outputs: ['head'],
    nodes,
    params,
    constants,
    masks: new Map(),
    featureTap: 'f2',
    preprocessing: { size: [8, 8], range: [0, 1] },
    meta: {},
  };
}

test('onnx export: every op in the table has an export rule, and the synthetic graph uses each', () => {
  assert.deepEqual(
    OP_NAMES.filter((op) => !(op in EXPORT_RULES)),
    [],
    'ops without an ONNX export rule',
  );
  const g = allOpsGraph();
  const used = new Set(g.nodes.map((n) => n.op));
  assert.deepEqual(
    OP_NAMES.filter((op) => !used.has(op)),
    [],
    'ops the all-ops test graph does not exercise',
  );
  disposeGraph(g);
});

for (const opset of [13, 17]) {
  test(`onnx export: every IR op runs in onnxruntime like in tapir (opset ${opset}, batch 2 and 3)`, async () => {
    const g = allOpsGraph();
    for (const n of [2, 3]) {
      manualSeed(n);
      const x = randn([n, 3, 8, 8]);
      const y = forward(g, x, { mode: 'eval' }).outputs[0]!;
      const err = maxRelError(await ortRun(exportOnnxBytes(g, { opset }), x), y.data<'float32'>());
      assert.ok(err <= 1e-4, `batch ${n}: max rel. error ${err}`);
    }
    disposeGraph(g);
  });
}

test('onnx export → import: the exported all-ops model imports back with the same outputs, roles and gradients', async () => {
  const g = allOpsGraph();
  for (const opset of [13, 17]) {
    const h = importOnnxBytes(exportOnnxBytes(g, { opset }), { file: `all-ops-${opset}.onnx` });
    manualSeed(5);
    const x = randn([2, 3, 8, 8]);
    const err = maxRelError(
      forward(h, x, { mode: 'eval' }).outputs[0]!.data<'float32'>(),
      forward(g, x, { mode: 'eval' }).outputs[0]!.data<'float32'>(),
    );
    assert.ok(err <= 1e-4, `opset ${opset}: ${err}`);
    assert.deepEqual(
      prunableParams(h)
        .map((q) => q.name)
        .sort(),
      ['c1.weight', 'dw.weight', 'qkv.weight'],
      'prunable weights keep their names',
    );
    assert.equal(h.params.get('head.weight')?.role, 'head');
    assert.equal(h.params.get('bn.running_var')?.role, 'buffer');
    assert.equal(h.featureTap, 'f2');
    // one SGD step through every imported op lowers the loss, and every trainable tensor gets a gradient
    const y = randint(0, 3, [2]);
    const params = trainableParams(h);
    // eval-bn: dropout off and BN on running statistics, so the two losses differ only by the step
    const loss = (): Tensor => nn.crossEntropy(forward(h, x, { mode: 'eval-bn' }).outputs[0]!, y);
    const before = scope(() => {
      const l = loss();
      l.backward();
      for (const q of params) {
        const gr = q.tensor.grad;
        assert.ok(gr && gr.abs().sum().item() > 0, `${q.name} has a gradient`);
        q.tensor.detach().add_(gr!, -0.02);
        q.tensor.zeroGrad();
      }
      return l.item();
    });
    const after = scope(() => loss().item());
    assert.ok(after < before, `opset ${opset}: loss ${before} → ${after}`);
    disposeGraph(h);
  }
  disposeGraph(g);
});

test('onnx export: unknown ops and bad opsets are clear errors; files are written atomically', async () => {
  const g = allOpsGraph();
  assert.throws(() => exportOnnxBytes(g, { opset: 9 }), /opset 9 is not supported \(13–17\)/);
  const bad: Graph = {
    ...g,
    nodes: [...g.nodes, { name: 'weird', op: 'nosuchop', inputs: ['head'], outputs: ['z'], attrs: {} }],
  };
  assert.throws(
    () => exportOnnxBytes(bad),
    (e: unknown) => e instanceof UnsupportedOpError && /'nosuchop' in node 'weird'/.test(e.message),
  );
  const dir = await mkdtemp(join(tmpdir(), 'tapir-onnx-'));
  try {
    await exportOnnx(g, join(dir, 'm.onnx'));
    assert.deepEqual(await readdir(dir), ['m.onnx']);
    const h = await importOnnx(join(dir, 'm.onnx'));
    assert.equal(h.nodes.filter((n) => n.op === 'conv2d').length, 2);
    disposeGraph(h);
    // Missing folders are created; a path below a file cannot be, and nothing is left behind.
    await assert.rejects(exportOnnx(g, join(dir, 'm.onnx', 'x.onnx')), /ENOTDIR|EEXIST/);
    assert.deepEqual(await readdir(dir), ['m.onnx'], 'no temp file left behind');
    await exportOnnx(g, join(dir, 'sub', 'dir', 'n.onnx'));
    assert.deepEqual(await readdir(join(dir, 'sub', 'dir')), ['n.onnx']);
  } finally {
    await rm(dir, { recursive: true });
  }
  disposeGraph(g);
  assert.ok(new TapirError('E', 'x') instanceof Error);
});

const skip = torchMissing();
let fx: Fixtures;
before(() => {
  if (!skip) fx = onnxFixtures()!;
});

for (const model of ['resnet18', 'vit'] as const) {
  test(
    `onnx round trip: ${model} import → mask 50% → export → onnxruntime equals tapir's masked forward`,
    { skip: skip ?? false },
    async () => {
      const m = fx.models[model];
      const g = await importOnnx(join(fx.dir, m.onnx['14']!));
      manualSeed(2026);
      for (const q of prunableParams(g))
        setMask(
          g,
          q.name,
          scope(() => rand(q.tensor.shape).lt(0.5)),
        );
      const x = readF32(join(fx.dir, m.input), m.input_shape);
      const masked = forward(g, x, { mode: 'eval' }).outputs[0]!.data<'float32'>();
      const dense = await ortRun(join(fx.dir, m.onnx['14']!), x);
      assert.ok(maxRelError(masked, dense) > 1e-2, 'the mask changes the output');
      for (const opset of [13, 17]) {
        const bytes = exportOnnxBytes(g, { opset });
        const err = maxRelError(await ortRun(bytes, x), masked);
        assert.ok(err <= 1e-4, `${model} opset ${opset}: max rel. error ${err}`);
        // the file holds W ⊙ c: half of each prunable weight is exactly zero
        const h = importOnnxBytes(bytes);
        for (const q of prunableParams(g)) {
          const w = h.params.get(q.name)!.tensor;
          const zeros = scope(() => w.eq(0).sum().item());
          const maskedOut = scope(() => g.masks.get(q.name)!.eq(0).sum().item());
          assert.equal(zeros, maskedOut, `${q.name}: zeros in the exported weight = masked entries`);
        }
        disposeGraph(h);
      }
      disposeGraph(g);
    },
  );
}

for (const id of ['mobilenet_v2', 'mobilenet_v2_140']) {
  test(`onnx export: nsfwjs ${id} (TF.js import: depthwise convs, relu6, asymmetric pads) masked → onnxruntime and back`, async () => {
    const g = await loadModel(id, { size: 64 });
    manualSeed(9);
    for (const q of prunableParams(g))
      setMask(
        g,
        q.name,
        scope(() => rand(q.tensor.shape).lt(0.5)),
      );
    const x = scope(() => rand([2, 3, 64, 64]));
    const y = forward(g, x, { mode: 'eval' }).outputs[0]!.data<'float32'>();
    const bytes = exportOnnxBytes(g, { opset: 13 });
    const err = maxRelError(await ortRun(bytes, x), y);
    assert.ok(err <= 1e-4, `${id} → onnxruntime: max rel. error ${err}`);
    const h = importOnnxBytes(bytes, { file: `${id}.onnx` });
    const back = maxRelError(forward(h, x, { mode: 'eval' }).outputs[0]!.data<'float32'>(), y);
    assert.ok(back <= 1e-4, `${id} → ONNX → tapir: max rel. error ${back}`);
    assert.deepEqual(
      prunableParams(h)
        .map((q) => q.name)
        .sort(),
      prunableParams(g)
        .map((q) => q.name)
        .filter((n) => h.params.has(n))
        .sort(),
    );
    disposeGraph(h);
    disposeGraph(g);
  });
}
