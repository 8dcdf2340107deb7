/**
 * The Keras layers of layer-rules.ts and every activation name of keras-activations.ts, each in a small model built
 * with @tensorflow/tfjs and compared with tfjs running the same file (relative error ≤ 1e-4). Where tfjs cannot be
 * the reference it is said so: Normalization (tfjs has no such layer: hand-computed statistics feed tfjs the
 * normalised input), Subtract (no such tfjs layer: checked as a − b), causal Conv1D (tfjs cannot run it: a valid
 * conv on the input padded by hand) and bilinear UpSampling2D (tfjs's layer resizes without half-pixel centres; the reference is
 * TF 2 Keras' `tf.image.resize`, i.e. tfjs `resizeBilinear(x, size, false, true)`). The larger models also export
 * to ONNX and run in onnxruntime with tapir's outputs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UnsupportedOpError } from '../../../src/graph/errors.js';
import { loadTfjsModel } from '../../../src/graph/tfjs/index.js';
import { disposeGraph } from '../../../src/graph/params.js';
import { expectClose } from '../../helpers/check.js';
import { expectOnnxMatches, packWeights, predictTf, runNhwc, saveLayersModel, values } from './fixtures.js';

const TOL = { rtol: 1e-4, atol: 1e-5 };
type ST = tf.SymbolicTensor;

/** Random weights (seeded), variances kept positive. */
function randomize(m: tf.LayersModel, scale = 0.5): tf.LayersModel {
  let seed = 11;
  m.setWeights(
    m.weights.map((w) => {
      const r = tf.randomNormal([...w.shape] as number[], 0, scale, 'float32', seed++);
      return w.name.includes('moving_variance') ? r.abs().add(0.5) : r;
    }),
  );
  return m;
}

/** Imports `dir` with tapir and compares every output with tfjs's `ref` on the same random NHWC input. */
async function compare(dir: string, ref: tf.LayersModel, shape: number[], what: string): Promise<void> {
  const g = await loadTfjsModel(dir);
  const x = values(
    shape.reduce((p, d) => p * d, 1),
    7,
    2,
  );
  const got = runNhwc(g, x, shape);
  const want = predictTf(ref, x, shape);
  assert.equal(got.length, want.length, `${what}: output count`);
  // tapir drops a softmax on a model output (graphs output logits): put it back for the comparison
  if (g.meta.outputActivation === 'softmax')
    got[0] = tf.softmax(tf.tensor(got[0]!).reshape([shape[0]!, -1])).dataSync() as Float32Array;
  got.forEach((y, i) => expectClose(y, want[i]!, TOL, `${what} output ${i}`));
  disposeGraph(g);
}

test('classifier layers: Rescaling, LayerNormalization (last axis and H,W,C), SeparableConv2D and DepthwiseConv2D with depth multiplier > 1, SE Multiply, Cropping2D, UpSampling2D nearest, LeakyReLU, PReLU, ELU, GlobalMaxPooling2D, Average/Maximum/Minimum/Multiply (Subtract by hand), Softmax layer', async () => {
  const inp = tf.input({ shape: [9, 9, 3] });
  const L = tf.layers;
  let x = L.rescaling({ scale: 1 / 127.5, offset: -1, name: 'resc' }).apply(inp) as ST;
  x = L.conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'elu', name: 'c1' }).apply(x) as ST;
  x = L.layerNormalization({ axis: -1, name: 'ln' }).apply(x) as ST;
  x = L.separableConv2d({
    filters: 5,
    kernelSize: 3,
    depthMultiplier: 2,
    padding: 'same',
    activation: 'selu',
    name: 'sep',
  }).apply(x) as ST;
  x = L.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 3, name: 'dw' }).apply(x) as ST; // 7×7×15
  let s = L.globalAveragePooling2d({ name: 'se_gap' }).apply(x) as ST;
  s = L.dense({ units: 4, activation: 'relu', name: 'se_fc1' }).apply(s) as ST;
  s = L.dense({ units: 15, activation: 'hardSigmoid', name: 'se_fc2' }).apply(s) as ST;
  s = L.reshape({ targetShape: [1, 1, 15], name: 'se_rs' }).apply(s) as ST;
  x = L.multiply({ name: 'se_mul' }).apply([x, s]) as ST;
  x = L.cropping2D({
    cropping: [
      [1, 0],
      [0, 2],
    ],
    name: 'crop',
  }).apply(x) as ST; // 6×5
  x = L.layerNormalization({ axis: [1, 2, 3], name: 'ln_all' }).apply(x) as ST;
  x = L.upSampling2d({ size: [2, 1], name: 'up' }).apply(x) as ST; // 12×5
  const a = L.leakyReLU({ alpha: 0.1, name: 'lrelu' }).apply(x) as ST;
  const p = L.prelu({ sharedAxes: [1, 2], name: 'prelu' }).apply(x) as ST;
  const e = L.elu({ name: 'elu' }).apply(x) as ST;
  const gmp = L.globalMaxPooling2d({ name: 'gmp' }).apply(a) as ST;
  const gap = L.globalAveragePooling2d({ name: 'gap' }).apply(p) as ST;
  const gmp2 = L.globalMaxPooling2d({ name: 'gmp2' }).apply(e) as ST;
  const merged = [
    L.average({ name: 'avg' }).apply([gmp, gap, gmp2]) as ST,
    L.maximum({ name: 'max' }).apply([gmp, gap]) as ST,
    L.minimum({ name: 'min' }).apply([gap, gmp2]) as ST,
    L.multiply({ name: 'mul3' }).apply([gmp, gap, gmp2]) as ST,
  ];
  const cat = L.concatenate({ name: 'cat' }).apply(merged) as ST;
  const logits = L.dense({ units: 3, name: 'head' }).apply(cat) as ST;
  const out = L.softmax({ name: 'prob' }).apply(logits) as ST;
  const m = randomize(tf.model({ inputs: inp, outputs: [out, x] }), 0.4);
  const dir = await saveLayersModel(m);
  await compare(dir, m, [2, 9, 9, 3], 'classifier layers');
  const g = await loadTfjsModel(dir);
  assert.equal(g.meta.outputActivation, 'softmax', 'the Softmax layer on the output is dropped');
  assert.deepEqual(g.preprocessing.range, [0, 255], 'a Rescaling on the input: the model takes raw pixels');
  await expectOnnxMatches(g, values(2 * 9 * 9 * 3, 7, 2), [2, 9, 9, 3]);
  assert.match(String(g.meta.inputRangeSource), /Rescaling 'resc'/);
  // tfjs has no Subtract layer: the Maximum of (gmp, gap) turned into one, checked against gmp − gap
  const json = readFileSync(join(dir, 'model.json'), 'utf8');
  writeFileSync(join(dir, 'model.json'), json.replace('"class_name":"Maximum"', '"class_name":"Subtract"'));
  const gs = await loadTfjsModel(dir);
  const [sub, p1, p2] = runNhwc(gs, values(2 * 9 * 9 * 3, 7, 2), [2, 9, 9, 3], ['max', 'gmp', 'gap']);
  expectClose(
    sub!,
    Float32Array.from(p1!, (v, i) => v - p2![i]!),
    TOL,
    'Subtract',
  );
  disposeGraph(gs);
  assert.equal(g.params.get('prelu.weight')!.prunable, false, 'a PReLU slope is not prunable');
  assert.equal(g.params.get('ln.weight')!.role, 'norm');
  assert.deepEqual([...g.params.get('sep.depthwise.weight')!.tensor.shape], [6 * 2, 1, 3, 3]);
  assert.deepEqual([...g.params.get('dw.weight')!.tensor.shape], [5 * 3, 1, 3, 3]);
  disposeGraph(g);
  rmSync(dir, { recursive: true });
});

const TFJS_ACTIVATIONS = [
  'linear',
  'relu',
  'relu6',
  'sigmoid',
  'tanh',
  'softmax',
  'swish',
  'gelu',
  'gelu_new',
  'elu',
  'selu',
  'softplus',
  'hardSigmoid',
  'mish',
] as const;

test('every activation name, as a Dense activation and as an Activation layer, in tfjs and Keras (Python) spelling', async () => {
  const inp = tf.input({ shape: [3, 3, 2] });
  const f = tf.layers.flatten({ name: 'fl' }).apply(inp) as ST;
  const h = tf.layers.dense({ units: 6, name: 'd0' }).apply(f) as ST;
  const branches = TFJS_ACTIVATIONS.flatMap((act) => {
    const d = tf.layers.dense({ units: 5, activation: act, name: `d_${act}` }).apply(h) as ST;
    const l = tf.layers.dense({ units: 5, name: `pre_${act}` }).apply(h) as ST;
    return [d, tf.layers.activation({ activation: act, name: `act_${act}` }).apply(l) as ST];
  });
  const out = tf.layers.concatenate({ name: 'cat' }).apply(branches) as ST;
  const m = randomize(tf.model({ inputs: inp, outputs: out }), 1.5);
  const dir = await saveLayersModel(m);
  await compare(dir, m, [3, 3, 3, 2], 'tfjs activation names');
  // The same file as Keras (Python) writes it: snake_case names, and silu for swish.
  const json = readFileSync(join(dir, 'model.json'), 'utf8');
  const keras = json
    .replaceAll('"hardSigmoid"', '"hard_sigmoid"')
    .replaceAll('"activation":"swish"', '"activation":"silu"');
  assert.notEqual(keras, json);
  writeFileSync(join(dir, 'model.json'), keras);
  await compare(dir, m, [3, 3, 3, 2], 'Keras activation names');
  rmSync(dir, { recursive: true });
});

test('Conv1D (dilated valid, strided same, an ECA block over channels), GlobalAverage/MaxPooling1D', async () => {
  const L = tf.layers;
  const inp = tf.input({ shape: [4, 4, 3] });
  let q = L.reshape({ targetShape: [16, 3], name: 'seq' }).apply(inp) as ST;
  q = L.conv1d({ filters: 5, kernelSize: 3, dilationRate: 2, name: 'c1d_dil' }).apply(q) as ST; // [12, 5]
  q = L.conv1d({
    filters: 4,
    kernelSize: 3,
    strides: 2,
    padding: 'same',
    activation: 'relu',
    name: 'c1d_same',
  }).apply(q) as ST; // [6, 4]
  let e = L.globalAveragePooling2d({ name: 'eca_gap' }).apply(inp) as ST;
  e = L.reshape({ targetShape: [3, 1], name: 'eca_rs' }).apply(e) as ST;
  e = L.conv1d({
    filters: 1,
    kernelSize: 3,
    padding: 'same',
    useBias: false,
    activation: 'sigmoid',
    name: 'eca_conv',
  }).apply(e) as ST;
  e = L.reshape({ targetShape: [1, 1, 3], name: 'eca_rs2' }).apply(e) as ST;
  const att = L.multiply({ name: 'eca_mul' }).apply([inp, e]) as ST;
  const pooled = [
    L.globalAveragePooling1d({ name: 'gap1d' }).apply(q) as ST,
    L.globalMaxPooling1d({ name: 'gmp1d' }).apply(q) as ST,
    L.globalMaxPooling2d({ name: 'gmp' }).apply(att) as ST,
  ];
  const out = L.dense({ units: 2, name: 'head' }).apply(L.concatenate({ name: 'cat' }).apply(pooled) as ST) as ST;
  const m = randomize(tf.model({ inputs: inp, outputs: [out, q, att] }));
  const dir = await saveLayersModel(m);
  await compare(dir, m, [2, 4, 4, 3], 'Conv1D');
  const g = await loadTfjsModel(dir);
  await expectOnnxMatches(g, values(2 * 4 * 4 * 3, 7, 2), [2, 4, 4, 3]);
  disposeGraph(g);
  rmSync(dir, { recursive: true });
});

test('Conv1D causal padding: the same dilated conv, valid, on the input left-padded by (k − 1) · dilation zeros', async () => {
  // tfjs builds causal Conv1D but cannot run it ("not implemented yet"): the reference pads by hand
  const inp = tf.input({ shape: [4, 4, 3] });
  const q = tf.layers.reshape({ targetShape: [16, 3], name: 'seq' }).apply(inp) as ST;
  const conv = tf.layers.conv1d({ filters: 5, kernelSize: 3, padding: 'causal', dilationRate: 2, name: 'causal' });
  const m = randomize(tf.model({ inputs: inp, outputs: conv.apply(q) as ST }));
  const seq = tf.input({ shape: [20, 3] });
  const valid = tf.layers.conv1d({ filters: 5, kernelSize: 3, dilationRate: 2, name: 'valid' });
  const ref = tf.model({ inputs: seq, outputs: valid.apply(seq) as ST });
  valid.setWeights(conv.getWeights());
  const dir = await saveLayersModel(m);
  const g = await loadTfjsModel(dir);
  const x = values(2 * 16 * 3, 9, 2);
  const [got] = runNhwc(g, x, [2, 4, 4, 3]);
  const padded = tf.pad(tf.tensor3d(x, [2, 16, 3]), [
    [0, 0],
    [4, 0],
    [0, 0],
  ]);
  expectClose(got!, (ref.predict(padded) as tf.Tensor).dataSync(), TOL, 'causal Conv1D');
  disposeGraph(g);
  rmSync(dir, { recursive: true });
});

test('UpSampling2D: nearest matches the tfjs layer; bilinear matches Keras (half-pixel centres), not the tfjs layer', async () => {
  const inp = tf.input({ shape: [5, 4, 2] });
  const near = tf.layers.upSampling2d({ size: [2, 3], name: 'near' }).apply(inp) as ST;
  const m = tf.model({ inputs: inp, outputs: near });
  const dir = await saveLayersModel(m);
  await compare(dir, m, [2, 5, 4, 2], 'UpSampling2D nearest');
  rmSync(dir, { recursive: true });

  const bil = tf.layers.upSampling2d({ size: [2, 3], interpolation: 'bilinear', name: 'bil' }).apply(inp) as ST;
  const mb = tf.model({ inputs: inp, outputs: bil });
  const dirB = await saveLayersModel(mb);
  const g = await loadTfjsModel(dirB);
  const x = values(2 * 5 * 4 * 2, 3);
  const [got] = runNhwc(g, x, [2, 5, 4, 2]);
  const keras = tf.image.resizeBilinear(tf.tensor4d(x, [2, 5, 4, 2]), [10, 12], false, true).dataSync();
  expectClose(got!, keras, TOL, 'bilinear vs tf.image.resize (half-pixel centres)');
  const tfjsLayer = predictTf(mb, x, [2, 5, 4, 2])[0]!;
  assert.ok(
    tfjsLayer.some((v, i) => Math.abs(v - keras[i]!) > 1e-3),
    'the tfjs layer differs from Keras here (else this test says nothing)',
  );
  disposeGraph(g);
  rmSync(dirB, { recursive: true });
});

/**
 * A tfjs model [input → conv 1×1 → GAP] edited to read the input through preprocessing layers tfjs cannot build or
 * run (Normalization; Rescaling with one scale per channel); tfjs runs the original model on the input normalised
 * by hand, the formula written out here: Keras' (x − mean) / max(√var, 1e-7).
 */
test('Normalization (adapted weights, config statistics, invert) and per-channel Rescaling against hand computation', async () => {
  const inp = tf.input({ shape: [4, 4, 3], name: 'img' });
  const c = tf.layers.conv2d({ filters: 2, kernelSize: 1, name: 'c' }).apply(inp) as ST;
  const out = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(c) as ST;
  const m = randomize(tf.model({ inputs: inp, outputs: out }));
  const dir = await saveLayersModel(m);
  const base = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as {
    modelTopology: {
      config: { layers: { name: string; class_name: string; config: object; inbound_nodes: unknown }[] };
    };
    weightsManifest: { weights: tf.io.WeightsManifestEntry[] }[];
  };
  const shard = new Float32Array(new Uint8Array(readFileSync(join(dir, 'group1-shard1of1.bin'))).slice().buffer);
  const mean = [0.2, -0.5, 1.5];
  const variance = [4, 0.25, 0];
  const x = values(2 * 4 * 4 * 3, 5, 3);
  const perChannel = (f: (v: number, ch: number) => number) => Float32Array.from(x, (v, i) => f(v, i % 3));

  const cases: {
    what: string;
    layer: object;
    extra?: { name: string; shape: number[]; values: number[] }[];
    pre: Float32Array;
  }[] = [
    {
      what: 'Normalization, adapted (weights)',
      layer: { class_name: 'Normalization', config: { name: 'norm', axis: -1, mean: null, variance: null } },
      extra: [
        { name: 'norm/mean', shape: [3], values: mean },
        { name: 'norm/variance', shape: [3], values: variance },
        { name: 'norm/count', shape: [], values: [100] },
      ],
      pre: perChannel((v, ch) => (v - mean[ch]!) / Math.max(Math.sqrt(variance[ch]!), 1e-7)),
    },
    {
      what: 'Normalization, statistics in the config, invert',
      layer: { class_name: 'Normalization', config: { name: 'norm', axis: -1, mean, variance, invert: true } },
      pre: perChannel((v, ch) => v * Math.max(Math.sqrt(variance[ch]!), 1e-7) + mean[ch]!),
    },
    {
      what: 'Normalization over the whole input (axis null)',
      layer: { class_name: 'Normalization', config: { name: 'norm', axis: null, mean: 0.5, variance: 2.25 } },
      pre: perChannel((v) => (v - 0.5) / 1.5),
    },
    {
      what: 'Rescaling, one scale and offset per channel',
      layer: { class_name: 'Rescaling', config: { name: 'norm', scale: [1, 0.5, 2], offset: [0, 1, -1] } },
      pre: perChannel((v, ch) => v * [1, 0.5, 2][ch]! + [0, 1, -1][ch]!),
    },
  ];
  for (const k of cases) {
    const topo = structuredClone(base.modelTopology);
    const layers = topo.config.layers;
    const conv = layers.find((l) => l.name === 'c')!;
    conv.inbound_nodes = [[['norm', 0, 0, {}]]];
    layers.splice(1, 0, {
      ...(k.layer as { class_name: string; config: object }),
      name: 'norm',
      inbound_nodes: [[['img', 0, 0, {}]]],
    });
    const specs = base.weightsManifest[0]!.weights;
    let off = 0;
    const ws = specs.map((s) => {
      const n = s.shape.reduce((p, d) => p * d, 1);
      const v = shard.subarray(off, off + n);
      off += n;
      return { name: s.name, shape: [...s.shape], values: v };
    });
    const packed = packWeights([...ws, ...(k.extra ?? [])]);
    writeFileSync(
      join(dir, 'model.json'),
      JSON.stringify({
        format: 'layers-model',
        modelTopology: topo,
        weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: packed.specs }],
      }),
    );
    writeFileSync(join(dir, 'group1-shard1of1.bin'), packed.bytes);
    const g = await loadTfjsModel(dir);
    const [got] = runNhwc(g, x, [2, 4, 4, 3]);
    expectClose(got!, predictTf(m, k.pre, [2, 4, 4, 3])[0]!, TOL, k.what);
    disposeGraph(g);
  }
  rmSync(dir, { recursive: true });
});

test('unsupported layers and activations: one error lists every one, with the layers using it', async () => {
  const inp = tf.input({ shape: [4, 4, 3] });
  let x = tf.layers.conv2d({ filters: 2, kernelSize: 1, name: 'c1' }).apply(inp) as ST;
  x = tf.layers.conv2d({ filters: 2, kernelSize: 1, name: 'c2' }).apply(x) as ST;
  x = tf.layers.conv2d({ filters: 2, kernelSize: 1, activation: 'relu', name: 'c3' }).apply(x) as ST;
  x = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(x) as ST;
  x = tf.layers.dense({ units: 2, activation: 'relu', name: 'd' }).apply(x) as ST;
  const m = tf.model({ inputs: inp, outputs: x });
  const dir = await saveLayersModel(m);
  const json = readFileSync(join(dir, 'model.json'), 'utf8');
  writeFileSync(
    join(dir, 'model.json'),
    json
      .replace(
        '"class_name":"Conv2D","config":{"filters":2,"kernel_initializer"',
        '"class_name":"Conv3D","config":{"filters":2,"kernel_initializer"',
      )
      .replaceAll('"activation":"relu"', '"activation":"softsign"')
      .replace('"class_name":"GlobalAveragePooling2D"', '"class_name":"SpatialDropout2D"'),
  );
  await assert.rejects(loadTfjsModel(dir), (e: unknown) => {
    assert.ok(e instanceof UnsupportedOpError);
    assert.deepEqual(
      e.unsupported.map((u) => [u.op, u.nodes]),
      [
        ['Conv3D', ['c1']],
        ["activation 'softsign'", ['c3', 'd']],
        ['SpatialDropout2D', ['gap']],
      ],
    );
    assert.match(
      e.message,
      /3 unsupported ops: 'Conv3D' in node 'c1', 'activation 'softsign'' in node 'c3' \(\+1 more\)/,
    );
    assert.match(e.message, /Supported ops: .*LayerNormalization.*activations .*hard_sigmoid/);
    return true;
  });
  rmSync(dir, { recursive: true });
});
