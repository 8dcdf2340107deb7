/**
 * ONNX import: torchvision ResNet-18 and a timm-style ViT (random weights, exported by scripts/export_onnx.py at
 * opsets 14 and 17) against onnxruntime-node on the same input; parameter roles and names; batch-size and
 * resolution independence; a training step through every imported op; bad files.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { liveTensors, manualSeed, nn, randn, randint, scope, TapirError, type Tensor } from '../../src/engine/index.js';
import { forward } from '../../src/graph/interpreter.js';
import type { Graph } from '../../src/graph/ir.js';
import { disposeGraph, prunableParams, trainableParams } from '../../src/graph/params.js';
import { exportOnnxBytes, importOnnx, importOnnxBytes, ONNX_SUPPORTED_OPS } from '../../src/graph/onnx/index.js';
import { ModelFormatError, UnsupportedOpError } from '../../src/graph/errors.js';
import { onnx } from '../../src/graph/onnx/proto.js';
import { maxRelError, onnxFixtures, readF32, torchMissing, type Fixtures } from './onnx-fixtures.js';
import { readFileSync } from 'node:fs';

const skip = torchMissing();
let fx: Fixtures;
before(() => {
  if (!skip) fx = onnxFixtures()!;
});

async function ortRun(file: string | Uint8Array, x: Tensor): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(file as string);
  const r = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', x.data<'float32'>(), [...x.shape]) });
  return r[s.outputNames[0]!]!.data as Float32Array;
}

for (const model of ['resnet18', 'vit'] as const) {
  for (const opset of ['14', '17']) {
    test(
      `onnx import: ${model} opset ${opset} matches onnxruntime (max rel. error ≤ 1e-4)`,
      { skip: skip ?? false },
      async () => {
        const m = fx.models[model];
        const file = join(fx.dir, m.onnx[opset]!);
        const g = await importOnnx(file);
        const x = readF32(join(fx.dir, m.input), m.input_shape);
        const ref = await ortRun(file, x);
        const y = forward(g, x, { mode: 'eval' }).outputs[0]!;
        assert.deepEqual(y.shape, m.output_shape);
        const err = maxRelError(y.data<'float32'>(), ref);
        assert.ok(err <= 1e-4, `${model} opset ${opset}: max rel. error ${err}`);
        // torch's own output on the same input, as a second reference
        assert.ok(
          maxRelError(y.data<'float32'>(), readF32(join(fx.dir, m.output), m.output_shape).data<'float32'>()) <= 1e-4,
        );
        y.dispose();
        x.dispose();
        disposeGraph(g);
      },
    );
  }
}

test(
  'onnx import: roles, prunable flags, names and the feature tap follow DESIGN §1',
  { skip: skip ?? false },
  async () => {
    const r = await importOnnx(join(fx.dir, fx.models.resnet18.onnx['14']!));
    const role = (g: Graph, n: string) => g.params.get(n)?.role;
    assert.equal(role(r, 'conv1.weight'), 'weight');
    assert.equal(role(r, 'bn1.weight'), 'norm');
    assert.equal(role(r, 'bn1.running_var'), 'buffer');
    assert.equal(r.params.get('bn1.running_var')!.trainable, false);
    assert.equal(role(r, 'fc.weight'), 'head');
    assert.deepEqual(r.params.get('fc.weight')!.tensor.shape, [10, 512], 'linear weights are [out, in]');
    assert.equal(r.params.get('fc.weight')!.prunable, false, 'the head is not prunable');
    const pr = prunableParams(r).map((p) => p.name);
    assert.equal(pr.length, 20, 'the 20 convolutions of ResNet-18');
    assert.ok(
      pr.every((n) => /conv|downsample\.0/.test(n)),
      pr.join(', '),
    );
    const fcIn = r.nodes.find((n) => n.op === 'linear')!.inputs[0];
    assert.equal(r.featureTap, fcIn);
    const feats = forward(r, randn([1, 3, 32, 32]), { mode: 'eval', taps: [r.featureTap], outputs: [] }).taps.get(
      r.featureTap,
    )!;
    assert.deepEqual(feats.shape, [1, 512], 'the feature tap is the pooled 512-d backbone output');
    disposeGraph(r);

    for (const opset of ['14', '17']) {
      const v = await importOnnx(join(fx.dir, fx.models.vit.onnx[opset]!));
      const names = prunableParams(v)
        .map((p) => p.name)
        .sort();
      assert.deepEqual(
        names,
        [
          'blocks.0.attn.proj.weight',
          'blocks.0.attn.qkv.weight',
          'blocks.0.mlp.fc1.weight',
          'blocks.0.mlp.fc2.weight',
          'blocks.1.attn.proj.weight',
          'blocks.1.attn.qkv.weight',
          'blocks.1.mlp.fc1.weight',
          'blocks.1.mlp.fc2.weight',
          'patch_embed.proj.weight',
        ],
        `opset ${opset}`,
      );
      assert.deepEqual(
        v.params.get('blocks.0.attn.qkv.weight')!.tensor.shape,
        [192, 64],
        'MatMul weights transposed to [out, in]',
      );
      assert.equal(role(v, 'cls_token'), 'embedding');
      assert.equal(role(v, 'pos_embed'), 'embedding');
      assert.equal(role(v, 'head.weight'), 'head');
      // torch de-duplicates equal initializers (all LayerNorm weights start at 1) behind Identity nodes; each keeps its own parameter
      for (const n of ['norm.weight', 'blocks.1.norm2.weight', 'blocks.0.norm1.weight'])
        assert.equal(role(v, n), 'norm', n);
      assert.notEqual(v.params.get('norm.weight')!.tensor, v.params.get('blocks.0.norm1.weight')!.tensor);
      const f = forward(v, randn([2, 3, 32, 32]), { mode: 'eval', taps: [v.featureTap], outputs: [] }).taps.get(
        v.featureTap,
      )!;
      assert.deepEqual(f.shape, [2, 64], 'the class token before the head');
      disposeGraph(v);
    }
  },
);

test(
  'onnx import: batch size and (ResNet) resolution are free, matching onnxruntime',
  { skip: skip ?? false },
  async () => {
    for (const [model, shape] of [
      ['vit', [5, 3, 32, 32]],
      ['resnet18', [3, 3, 48, 40]],
    ] as const) {
      const file = join(fx.dir, fx.models[model].onnx['14']!);
      const g = await importOnnx(file);
      manualSeed(7);
      const x = randn(shape);
      const y = forward(g, x, { mode: 'eval' }).outputs[0]!;
      assert.equal(y.shape[0], shape[0]);
      const err = maxRelError(y.data<'float32'>(), await ortRun(file, x));
      assert.ok(err <= 1e-4, `${model} [${shape.join(', ')}]: ${err}`);
      disposeGraph(g);
    }
  },
);

/** A few SGD steps on one batch; returns the loss before and after, and whether every trainable parameter got a gradient. */
function trainSteps(
  g: Graph,
  x: Tensor,
  y: Tensor,
  mode: 'train' | 'eval-bn',
  lr: number,
  steps = 3,
): { before: number; after: number; noGrad: string[] } {
  const params = trainableParams(g);
  let first = NaN;
  const noGrad = new Set<string>();
  for (let s = 0; s <= steps; s++) {
    const loss = scope(() => {
      const out = forward(g, x, { mode }).outputs[0]!;
      const l = nn.crossEntropy(out, y);
      if (s === steps) return l.item();
      l.backward();
      for (const p of params) {
        const gr = p.tensor.grad;
        if (!gr || gr.abs().sum().item() === 0) noGrad.add(p.name);
        if (gr) p.tensor.detach().add_(gr, -lr);
        p.tensor.zeroGrad();
      }
      return l.item();
    });
    if (s === 0) first = loss;
    if (s === steps) return { before: first, after: loss, noGrad: [...noGrad] };
  }
  throw new Error('unreachable');
}

test(
  'onnx import: gradients flow through every imported op (SGD steps lower the loss)',
  { skip: skip ?? false },
  async () => {
    // opset 14 and 17 ResNets hold the same ops; the ViTs differ (decomposed vs native LayerNorm)
    for (const [model, mode, opset] of [
      ['resnet18', 'train', '14'],
      ['vit', 'train', '14'],
      ['vit', 'eval-bn', '17'],
    ] as const) {
      {
        const g = await importOnnx(join(fx.dir, fx.models[model].onnx[opset]!));
        manualSeed(3);
        const x = randn([4, 3, 32, 32]);
        const y = randint(0, 10, [4]);
        const live = liveTensors();
        const r = trainSteps(g, x, y, mode, model === 'vit' ? 0.05 : 0.01, 2);
        assert.equal(liveTensors(), live, 'training steps leak no tensors');
        assert.ok(r.after < r.before, `${model} opset ${opset} (${mode}): loss ${r.before} → ${r.after}`);
        assert.deepEqual(r.noGrad, [], `${model}: parameters without gradient`);
        disposeGraph(g);
      }
    }
  },
);

test('onnx import: truncated or garbled files are clear errors', { skip: skip ?? false }, () => {
  const bytes = new Uint8Array(readFileSync(join(fx.dir, fx.models.vit.onnx['14']!)));
  const cases: [string, Uint8Array][] = [
    ['truncated', bytes.subarray(0, Math.floor(bytes.length / 2))],
    ['garbled', bytes.map((b, i) => (i % 7 === 3 ? b ^ 0x5a : b))],
    ['tiny', new Uint8Array([1, 2, 3])],
    ['text', new TextEncoder().encode('this is not an onnx model at all, just words')],
  ];
  for (const [what, b] of cases) {
    assert.throws(
      () => importOnnxBytes(b, { file: `${what}.onnx` }),
      (e: unknown) => {
        assert.ok(e instanceof TapirError, `${what}: ${String(e)}`);
        assert.match((e as Error).message, new RegExp(`${what}\\.onnx`), `${what}: names the file`);
        return true;
      },
      what,
    );
  }
});

test(
  'onnx import: seeded random corruption never crashes: a clear error, or a graph that runs',
  { skip: skip ?? false },
  () => {
    const bytes = new Uint8Array(readFileSync(join(fx.dir, fx.models.vit.onnx['14']!)));
    let seed = 12345;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const x = randn([1, 3, 32, 32]);
    let errors = 0;
    for (let k = 0; k < 40; k++) {
      const c = bytes.slice(0, k % 3 === 0 ? Math.floor(rnd() * bytes.length) : bytes.length);
      for (let j = 1 + Math.floor(rnd() * 20); j > 0; j--) c[Math.floor(rnd() * c.length)] = Math.floor(rnd() * 256);
      try {
        const g = importOnnxBytes(c, { file: 'fuzz.onnx' });
        try {
          forward(g, x, { mode: 'eval' }).outputs[0]!.dispose();
        } finally {
          disposeGraph(g);
        }
      } catch (e) {
        assert.ok(e instanceof TapirError, `variant ${k}: ${String(e)}`);
        errors++;
      }
    }
    assert.ok(errors > 10, `most corruptions are detected (${errors}/40)`);
    x.dispose();
  },
);

test('onnx import: an unsupported op names the op, the node and the supported ops', () => {
  const m = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 14 }],
    graph: {
      name: 'g',
      node: [
        { opType: 'Relu', input: ['x'], output: ['a'], name: 'r' },
        { opType: 'LRN', input: ['a'], output: ['y'], name: 'my_lrn' },
      ],
      input: [{ name: 'x', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 1 }, { dimValue: 4 }] } } } }],
      output: [{ name: 'y', type: { tensorType: { elemType: 1 } } }],
    },
  });
  const b = onnx.ModelProto.encode(m).finish();
  assert.throws(
    () => importOnnxBytes(b, { file: 'h.onnx' }),
    (e: unknown) => {
      assert.ok(e instanceof UnsupportedOpError);
      assert.match(e.message, /unsupported op 'LRN' in node 'my_lrn'/);
      for (const op of ['Conv', 'Gemm', 'LayerNormalization', 'Shape']) assert.ok(e.message.includes(op), op);
      assert.deepEqual((e.context as { supported: string[] }).supported, [...ONNX_SUPPORTED_OPS]);
      return true;
    },
  );
  // a tensor whose dims promise more data than it holds
  const bad = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 14 }],
    graph: {
      name: 'g',
      node: [{ opType: 'Add', input: ['x', 'w'], output: ['y'], name: 'add' }],
      initializer: [{ name: 'w', dims: [1_000_000_000, 1000], dataType: 1, rawData: new Uint8Array(16) }],
      input: [{ name: 'x', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 4 }] } } } }],
      output: [{ name: 'y', type: { tensorType: { elemType: 1 } } }],
    },
  });
  assert.throws(
    () => importOnnxBytes(onnx.ModelProto.encode(bad).finish(), { file: 'big.onnx' }),
    (e: unknown) =>
      e instanceof ModelFormatError && /tensor 'w'.*need 1000000000000 values but raw_data holds 4/.test(e.message),
  );
  // a weight stored outside the file
  const ext = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 14 }],
    graph: {
      name: 'g',
      node: [{ opType: 'Add', input: ['x', 'w'], output: ['y'], name: 'add' }],
      initializer: [
        { name: 'w', dims: [4], dataType: 1, dataLocation: 1, externalData: [{ key: 'location', value: 'w.bin' }] },
      ],
      input: [{ name: 'x', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 4 }] } } } }],
      output: [{ name: 'y', type: { tensorType: { elemType: 1 } } }],
    },
  });
  assert.throws(
    () => importOnnxBytes(onnx.ModelProto.encode(ext).finish(), { file: 'ext.onnx' }),
    /external data file are not supported/,
  );
});

test('onnx import: a missing file is a clear error', async () => {
  await assert.rejects(
    importOnnx('/nonexistent/model.onnx'),
    (e: unknown) => e instanceof TapirError && /cannot read ONNX file \/nonexistent\/model\.onnx/.test(e.message),
  );
});

test('onnx import: Gemm (transB=0, alpha, beta), Dropout, Clip, bias-free MatMul, Softmax, Shape→Expand, Slice to the end, Cast match onnxruntime', async () => {
  const f32 = (name: string, dims: number[], seed: number) => {
    manualSeed(seed);
    const t = randn(dims);
    const d = t.data<'float32'>();
    t.dispose();
    return { name, dims, dataType: 1, rawData: new Uint8Array(d.buffer) };
  };
  const i64 = (name: string, v: number[], dims = [v.length]) => ({
    name,
    dims,
    dataType: 7,
    rawData: new Uint8Array(BigInt64Array.from(v, BigInt).buffer),
  });
  const ai = (name: string, i: number) => ({ name, type: 2, i });
  const af = (name: string, f: number) => ({ name, type: 1, f });
  const m = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'misc',
      initializer: [
        f32('B', [6, 4], 1),
        f32('C', [4], 2),
        f32('onnx::MatMul_7', [4, 5], 3),
        { name: 'ratio', dims: [], dataType: 1, floatData: [0.3] },
        i64('zero', [0]),
        i64('one', [1]),
        i64('big', [2 ** 53 - 1]),
        i64('ax1', [1]),
        i64('three_five', [3, 5]),
      ],
      node: [
        {
          opType: 'Gemm',
          input: ['x', 'B', 'C'],
          output: ['g'],
          name: 'fc',
          attribute: [af('alpha', 0.5), af('beta', 2)],
        },
        { opType: 'Dropout', input: ['g', 'ratio'], output: ['d'], name: 'drop' },
        {
          opType: 'Constant',
          input: [],
          output: ['lo'],
          name: 'lo_c',
          attribute: [{ name: 'value_float', type: 1, f: -0.5 }],
        },
        {
          opType: 'Constant',
          input: [],
          output: ['hi'],
          name: 'hi_c',
          attribute: [{ name: 'value', type: 4, t: { dims: [], dataType: 1, floatData: [0.8] } }],
        },
        { opType: 'Clip', input: ['d', 'lo', 'hi'], output: ['c'], name: 'clip' },
        { opType: 'MatMul', input: ['c', 'onnx::MatMul_7'], output: ['mm'], name: '/proj/MatMul' },
        { opType: 'Softmax', input: ['mm'], output: ['s'], name: 'sm', attribute: [ai('axis', 1)] },
        { opType: 'Unsqueeze', input: ['s', 'ax1'], output: ['u'], name: 'unsq' },
        { opType: 'Shape', input: ['u'], output: ['shp'], name: 'shape' },
        { opType: 'Slice', input: ['shp', 'zero', 'one'], output: ['n'], name: 'batch' },
        {
          opType: 'Concat',
          input: ['n', 'three_five'],
          output: ['target'],
          name: 'target',
          attribute: [ai('axis', 0)],
        },
        { opType: 'Expand', input: ['u', 'target'], output: ['e'], name: 'expand' },
        { opType: 'Slice', input: ['e', 'one', 'big', 'ax1'], output: ['sl'], name: 'tail' },
        { opType: 'Cast', input: ['sl'], output: ['cs'], name: 'cast', attribute: [ai('to', 1)] },
        {
          opType: 'ReduceMean',
          input: ['cs'],
          output: ['y'],
          name: 'mean',
          attribute: [{ name: 'axes', type: 7, ints: [1] }, ai('keepdims', 0)],
        },
      ],
      input: [
        { name: 'x', type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'N' }, { dimValue: 6 }] } } } },
      ],
      output: [{ name: 'y', type: { tensorType: { elemType: 1 } } }],
    },
  });
  const bytes = onnx.ModelProto.encode(m).finish();
  const g = importOnnxBytes(bytes, { file: 'misc.onnx' });
  assert.deepEqual(
    g.nodes.map((n) => n.op),
    ['linear', 'dropout', 'clip', 'linear', 'softmax', 'unsqueeze', 'expand', 'slice', 'identity', 'reducemean'],
  );
  assert.equal(
    g.params.get('proj.weight')?.role,
    'head',
    'an anonymous MatMul weight is named after its module; the last linear is the head',
  );
  assert.deepEqual(g.params.get('proj.weight')?.tensor.shape, [5, 4]);
  assert.deepEqual(
    g.params.get('B_1')?.tensor.shape,
    [4, 6],
    'Gemm B [in, out] (transB = 0), alpha folded in, stored [out, in]',
  );
  assert.equal(g.params.get('B_1')?.prunable, true);
  assert.equal(g.params.has('B'), false, 'the untransposed initializer is not kept');
  assert.equal(g.featureTap, 'c');
  manualSeed(4);
  const x = randn([3, 6]);
  const y = forward(g, x, { mode: 'eval' }).outputs[0]!;
  assert.deepEqual(y.shape, [3, 5]);
  const err = maxRelError(y.data<'float32'>(), await ortRun(bytes, x));
  assert.ok(err <= 1e-5, `max rel. error ${err}`);
  const labels = randint(0, 5, [3]);
  const live = liveTensors();
  const r = trainSteps(g, x, labels, 'eval-bn', 0.5, 2);
  assert.equal(liveTensors(), live);
  assert.ok(r.after < r.before, `loss ${r.before} → ${r.after}`);
  disposeGraph(g);
});

/** Runs an in-memory ONNX model in onnxruntime; every output by name. */
async function ortAll(bytes: Uint8Array, x: Tensor): Promise<Record<string, Float32Array>> {
  const s = await ort.InferenceSession.create(bytes);
  const r = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', x.data<'float32'>(), [...x.shape]) });
  return Object.fromEntries(s.outputNames.map((n) => [n, r[n]!.data as Float32Array]));
}
const vi = (name: string, dims?: (number | string)[]) => ({
  name,
  type: {
    tensorType: {
      elemType: 1,
      ...(dims ? { shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } : {}),
    },
  },
});
const i64t = (name: string, v: number[]) => ({
  name,
  dims: [v.length],
  dataType: 7,
  rawData: new Uint8Array(BigInt64Array.from(v, BigInt).buffer),
});
const f32t = (name: string, v: number[]) => ({
  name,
  dims: [v.length],
  dataType: 1,
  rawData: new Uint8Array(Float32Array.from(v).buffer),
});
const sattr = (name: string, v: string) => ({ name, type: 3, s: new TextEncoder().encode(v) });
const iattr = (name: string, i: number) => ({ name, type: 2, i });
const isattr = (name: string, ints: number[]) => ({ name, type: 7, ints });

test('onnx import: opset 20 Gelu, opset 18 Mish, reductions with axes inputs and Pad with axes, opset 19 Resize with axes match onnxruntime', async () => {
  const outs = ['gelu', 'gelu_tanh', 'mish', 'rsum', 'rmax', 'rmin', 'rl2', 'rmean', 'rall', 'noop', 'pad', 'resize'];
  const m = onnx.ModelProto.create({
    irVersion: 9,
    opsetImport: [{ domain: '', version: 20 }],
    graph: {
      name: 'opset20',
      initializer: [
        i64t('ax2', [2]),
        i64t('axlast', [-1]),
        i64t('ax23', [2, 3]),
        i64t('pads', [1, 2]),
        i64t('ax3', [3]),
        f32t('scales', [2, 0.5]),
      ],
      node: [
        { opType: 'Gelu', input: ['x'], output: ['gelu'], name: 'gelu' },
        {
          opType: 'Gelu',
          input: ['x'],
          output: ['gelu_tanh'],
          name: 'gelu_tanh',
          attribute: [sattr('approximate', 'tanh')],
        },
        { opType: 'Mish', input: ['x'], output: ['mish'], name: 'mish' },
        {
          opType: 'ReduceSum',
          input: ['mish', 'ax2'],
          output: ['rsum'],
          name: 'rsum',
          attribute: [iattr('keepdims', 0)],
        },
        { opType: 'ReduceMax', input: ['x', 'axlast'], output: ['rmax'], name: 'rmax' },
        {
          opType: 'ReduceMin',
          input: ['x', 'ax23'],
          output: ['rmin'],
          name: 'rmin',
          attribute: [iattr('keepdims', 0)],
        },
        { opType: 'ReduceL2', input: ['x', 'ax23'], output: ['rl2'], name: 'rl2' },
        { opType: 'ReduceMean', input: ['gelu', 'ax2'], output: ['rmean'], name: 'rmean' },
        { opType: 'ReduceSum', input: ['x'], output: ['rall'], name: 'rall', attribute: [iattr('keepdims', 0)] },
        {
          opType: 'ReduceMax',
          input: ['x'],
          output: ['noop'],
          name: 'noop',
          attribute: [iattr('noop_with_empty_axes', 1)],
        },
        {
          opType: 'Pad',
          input: ['x', 'pads', '', 'ax3'],
          output: ['pad'],
          name: 'pad',
          attribute: [sattr('mode', 'reflect')],
        },
        {
          opType: 'Resize',
          input: ['x', '', 'scales'],
          output: ['resize'],
          name: 'resize',
          attribute: [
            sattr('mode', 'linear'),
            isattr('axes', [2, 3]),
            sattr('coordinate_transformation_mode', 'half_pixel'),
          ],
        },
      ],
      input: [vi('x', ['N', 4, 5, 6])],
      output: outs.map((o) => vi(o)),
    },
  });
  const bytes = onnx.ModelProto.encode(m).finish();
  const g = importOnnxBytes(bytes, { file: 'opset20.onnx' });
  assert.equal(g.meta.opset, 20);
  manualSeed(8);
  const x = randn([2, 4, 5, 6]);
  const ys = forward(g, x, { mode: 'eval' }).outputs;
  const ref = await ortAll(bytes, x);
  outs.forEach((o, i) => {
    const err = maxRelError(ys[i]!.data<'float32'>(), ref[o]!);
    assert.ok(err <= 1e-5, `${o}: max rel. error ${err}`);
  });
  assert.equal(
    g.nodes.find((n) => n.name === 'noop')!.op,
    'identity',
    'noop_with_empty_axes without axes is an identity',
  );
  disposeGraph(g);
  const bad = onnx.ModelProto.encode(
    onnx.ModelProto.create({ ...m, opsetImport: [{ domain: '', version: 21 }] }),
  ).finish();
  assert.throws(() => importOnnxBytes(bad, { file: 'o21.onnx' }), /opset 21 is not supported \(supported: 11–20/);
});

test('onnx import → export: Resize in every nearest / linear coordinate mode, by scales and by sizes, matches onnxruntime both ways', async () => {
  const cases: { mode: string; coord: string; nearest?: string; scales?: number[]; sizes?: number[] }[] = [
    { mode: 'nearest', coord: 'asymmetric', nearest: 'floor', scales: [2, 3] },
    { mode: 'nearest', coord: 'half_pixel', nearest: 'round_prefer_floor', sizes: [7, 4] },
    { mode: 'nearest', coord: 'half_pixel', nearest: 'round_prefer_ceil', scales: [0.5, 1.5] },
    { mode: 'nearest', coord: 'align_corners', nearest: 'round_prefer_floor', sizes: [3, 9] },
    { mode: 'nearest', coord: 'pytorch_half_pixel', nearest: 'ceil', sizes: [1, 5] },
    { mode: 'linear', coord: 'half_pixel', scales: [1.5, 0.5] },
    { mode: 'linear', coord: 'pytorch_half_pixel', sizes: [8, 3] },
    { mode: 'linear', coord: 'align_corners', sizes: [9, 11] },
    { mode: 'linear', coord: 'asymmetric', scales: [2, 2] },
  ];
  manualSeed(12);
  const x = randn([2, 3, 5, 6]);
  for (const k of cases) {
    const what = JSON.stringify(k);
    const m = onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [{ domain: '', version: 13 }],
      graph: {
        name: 'resize',
        initializer: k.scales ? [f32t('scales', [1, 1, ...k.scales])] : [i64t('sizes', [2, 3, ...k.sizes!])],
        node: [
          {
            opType: 'Resize',
            input: k.scales ? ['x', '', 'scales'] : ['x', '', '', 'sizes'],
            output: ['y'],
            name: 'resize',
            attribute: [
              sattr('mode', k.mode),
              sattr('coordinate_transformation_mode', k.coord),
              ...(k.nearest ? [sattr('nearest_mode', k.nearest)] : []),
            ],
          },
        ],
        input: [vi('x', [2, 3, 5, 6])],
        output: [vi('y')],
      },
    });
    const bytes = onnx.ModelProto.encode(m).finish();
    const g = importOnnxBytes(bytes, { file: 'resize.onnx' });
    const y = forward(g, x, { mode: 'eval' }).outputs[0]!;
    const ref = (await ortAll(bytes, x)).y!;
    assert.equal(y.numel, ref.length, `${what}: output size`);
    assert.ok(
      maxRelError(y.data<'float32'>(), ref) <= 1e-6,
      `${what}: tapir vs onnxruntime ${maxRelError(y.data<'float32'>(), ref)}`,
    );
    const back = (await ortAll(exportOnnxBytes(g, { opset: 13 }), x)).y!;
    assert.ok(maxRelError(back, ref) <= 1e-6, `${what}: exported file in onnxruntime`);
    disposeGraph(g);
  }
  const cubic = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'r',
      initializer: [f32t('scales', [1, 1, 2, 2])],
      node: [
        {
          opType: 'Resize',
          input: ['x', '', 'scales'],
          output: ['y'],
          name: 'up',
          attribute: [sattr('mode', 'cubic')],
        },
      ],
      input: [vi('x', [1, 1, 4, 4])],
      output: [vi('y')],
    },
  });
  assert.throws(
    () => importOnnxBytes(onnx.ModelProto.encode(cubic).finish(), { file: 'cubic.onnx' }),
    /node 'up' \(Resize\): Resize mode 'cubic' is not supported/,
  );
});
