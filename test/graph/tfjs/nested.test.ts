/**
 * Nested TF.js layers models, built with @tensorflow/tfjs in the test: a Sequential inside a Sequential, a
 * functional Model used as a layer (of a Sequential and of another Model), a Sequential used as a layer of a Model,
 * and layer names repeated across nesting levels, so the manifest stores `conv/kernel` three times (two conv
 * kernels and a Dense kernel) and `bn/gamma` twice. The backbone is frozen, as in Teachable Machine, so tfjs writes
 * the head's weights first. tfjs 4.22 cannot reload such a file ("Duplicate weight name"), so the reference is the
 * model tfjs built in memory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { manualSeed, nn, rand, scope, tensor } from '../../../src/engine/index.js';
import { forward } from '../../../src/graph/interpreter.js';
import type { Graph } from '../../../src/graph/ir.js';
import { ModelFormatError } from '../../../src/graph/errors.js';
import { inputRangeOf, loadTfjsModel } from '../../../src/graph/tfjs/index.js';
import { disposeGraph, prunableParams } from '../../../src/graph/params.js';

const S = 11;
const sym = (l: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]) => l.apply(x) as tf.SymbolicTensor;

function randomize(model: tf.LayersModel, seed: number): void {
  model.setWeights(
    model.weights.map((w) => {
      const r = tf.randomNormal([...w.shape] as number[], 0, 0.5, 'float32', seed++);
      return w.name.includes('moving_variance') ? r.abs().add(0.5) : r;
    }),
  );
}

/** Sequential[ backbone: Model(img → block: Sequential[conv, bn, relu6] → conv → bn → gap), head: Sequential[Dense 'conv', Dense 'logits'] ]. */
function sequentialOfModels(): tf.Sequential {
  const block = tf.sequential({
    name: 'block',
    layers: [
      tf.layers.conv2d({ name: 'conv', filters: 4, kernelSize: 3, padding: 'same', inputShape: [S, S, 3] }),
      tf.layers.batchNormalization({ name: 'bn' }),
      tf.layers.reLU({ name: 'relu', maxValue: 6 }),
    ],
  });
  const img = tf.input({ shape: [S, S, 3], name: 'img' });
  let h = sym(block, img);
  h = sym(tf.layers.conv2d({ name: 'conv', filters: 5, kernelSize: 3, strides: 2 }), h);
  h = sym(tf.layers.batchNormalization({ name: 'bn' }), h);
  h = sym(tf.layers.globalAveragePooling2d({ name: 'gap' }), h);
  const backbone = tf.model({ name: 'backbone', inputs: img, outputs: h });
  const head = tf.sequential({
    name: 'head',
    layers: [
      tf.layers.dense({ name: 'conv', units: 6, activation: 'relu', inputShape: [5] }),
      tf.layers.dense({ name: 'logits', units: 3, activation: 'softmax' }),
    ],
  });
  const top = tf.sequential({ name: 'top', layers: [backbone, head] });
  randomize(top, 1);
  backbone.trainable = false;
  return top;
}

/** Model(x → inner: Model(x → conv 'c' → gap → Dense 'fc') → Dense 'fc'): a functional model as a layer of another. */
function modelOfModel(): tf.LayersModel {
  const xi = tf.input({ shape: [S, S, 3], name: 'xi' });
  const f = sym(
    tf.layers.dense({ name: 'fc', units: 7, activation: 'tanh' }),
    sym(
      tf.layers.globalAveragePooling2d({ name: 'gap' }),
      sym(tf.layers.conv2d({ name: 'c', filters: 6, kernelSize: 3, activation: 'relu' }), xi),
    ),
  );
  const inner = tf.model({ name: 'inner', inputs: xi, outputs: f });
  const x = tf.input({ shape: [S, S, 3], name: 'x' });
  const out = sym(tf.layers.dense({ name: 'fc', units: 4 }), sym(inner, x));
  const m = tf.model({ name: 'outer', inputs: x, outputs: out });
  randomize(m, 20);
  return m;
}

/** Saves as model.json + one float32 shard; returns the folder. */
async function save(model: tf.LayersModel): Promise<string> {
  let art: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      art = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  const dir = mkdtempSync(join(tmpdir(), 'tapir-tfjs-nested-'));
  writeFileSync(
    join(dir, 'model.json'),
    JSON.stringify({
      format: 'layers-model',
      modelTopology: art!.modelTopology,
      weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: art!.weightSpecs }],
    }),
  );
  writeFileSync(join(dir, 'group1-shard1of1.bin'), new Uint8Array(art!.weightData as ArrayBuffer));
  return dir;
}

/** Max relative error of tapir's outputs (through a softmax when tapir dropped the model's) against the tfjs model's. */
function maxRelVsTfjs(g: Graph, ref: tf.LayersModel, n: number): number {
  manualSeed(5);
  const x = scope(() => rand([n, S, S, 3]).data<'float32'>());
  const want = (ref.predict(tf.tensor(x, [n, S, S, 3])) as tf.Tensor).dataSync();
  const got = scope(() => {
    const y = forward(g, tensor(x, [n, S, S, 3]).permute([0, 3, 1, 2]).contiguous(), { mode: 'eval' }).outputs[0]!;
    return (g.meta.outputActivation === 'softmax' ? nn.softmax(y, 1) : y).data<'float32'>();
  });
  assert.equal(got.length, want.length);
  let m = 0;
  for (let i = 0; i < got.length; i++)
    m = Math.max(m, Math.abs(got[i]! - want[i]!) / Math.max(Math.abs(want[i]!), 1e-2));
  return m;
}

test('Sequential of a Model and a Sequential, repeated weight names, frozen backbone: matches tfjs, unique IR names, pooled tap, head not prunable', async () => {
  const top = sequentialOfModels();
  const dir = await save(top);
  const stored = (
    JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as { weightsManifest: { weights: { name: string }[] }[] }
  ).weightsManifest[0]!.weights.map((w) => w.name);
  assert.equal(stored.filter((n) => n === 'conv/kernel').length, 3, 'the file stores one name three times');
  assert.equal(stored[0], 'conv/kernel', 'frozen backbone: tfjs writes the head first');
  const g = await loadTfjsModel(dir);
  assert.equal(g.meta.outputActivation, 'softmax');
  assert.deepEqual(g.meta.nestedModels, ['backbone/block', 'backbone', 'head']);
  for (const n of [
    'backbone.block.conv.weight',
    'backbone.conv.weight',
    'head.conv.weight',
    'backbone.block.bn.running_var',
    'backbone.bn.running_var',
    'logits.weight',
  ])
    assert.ok(g.params.has(n), `parameter ${n} (have ${[...g.params.keys()].join(', ')})`);
  assert.deepEqual(g.params.get('backbone.block.conv.weight')!.tensor.shape, [4, 3, 3, 3]);
  assert.deepEqual(g.params.get('backbone.conv.weight')!.tensor.shape, [5, 4, 3, 3]);
  assert.deepEqual(g.params.get('head.conv.weight')!.tensor.shape, [6, 5]);
  const err = maxRelVsTfjs(g, top, 3);
  assert.ok(err <= 1e-4, `max relative error ${err}`);
  assert.equal(g.featureTap, 'gap', 'the feature tap is the pooled backbone output, the head input');
  scope(() =>
    assert.deepEqual(
      forward(g, rand([2, 3, S, S]), { mode: 'eval', taps: [g.featureTap], outputs: [] }).taps.get('gap')!.shape,
      [2, 5],
    ),
  );
  assert.deepEqual(
    ['head.conv.weight', 'logits.weight'].map((n) => g.params.get(n)!.role),
    ['head', 'head'],
  );
  assert.deepEqual(
    prunableParams(g)
      .map((p) => p.name)
      .sort(),
    ['backbone.block.conv.weight', 'backbone.conv.weight'],
  );
  assert.deepEqual(g.preprocessing, { size: [S, S], range: [0, 1] });
  disposeGraph(g);
  rmSync(dir, { recursive: true });
});

test('a functional Model used as a layer of a Model, a layer name shared across the two levels: matches tfjs', async () => {
  const m = modelOfModel();
  const dir = await save(m);
  const g = await loadTfjsModel(dir);
  assert.ok(
    g.params.has('inner.fc.weight') && g.params.has('fc.weight') && g.params.has('c.weight'),
    [...g.params.keys()].join(', '),
  );
  assert.deepEqual(g.params.get('inner.fc.weight')!.tensor.shape, [7, 6]);
  assert.ok(maxRelVsTfjs(g, m, 2) <= 1e-4);
  // The path of dense layers ending at the output (inner fc → tanh → outer fc) is the head; its input the tap.
  assert.equal(g.featureTap, 'gap');
  assert.deepEqual(
    prunableParams(g).map((p) => p.name),
    ['c.weight'],
  );
  disposeGraph(g);
  rmSync(dir, { recursive: true });
});

test('nested weights that do not fit their layers: a ModelFormatError naming the layer, the stored shapes and a fix', async () => {
  const dir = await save(sequentialOfModels());
  const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as {
    weightsManifest: { weights: { name: string; shape: number[] }[] }[];
  };
  // Rename the outer backbone conv's kernel away: only the Dense and the inner block's kernels stay under 'conv/kernel'.
  json.weightsManifest[0]!.weights.find((w) => w.name === 'conv/kernel' && w.shape.join() === '3,3,4,5')!.name =
    'other/kernel';
  writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
  await assert.rejects(
    loadTfjsModel(dir),
    (e: unknown) =>
      e instanceof ModelFormatError &&
      !!e.fix &&
      /layer 'top\/backbone\/conv' expects 'conv\/kernel' of shape \[3, 3, 4, 5\]; the manifest stores \[5, 6\], \[3, 3, 3, 4\] \(read by an earlier layer\)/.test(
        e.message,
      ),
  );
  rmSync(dir, { recursive: true });
});

test('input range: Teachable Machine metadata or a nested Keras MobileNet give [-1, 1]; anything else [0, 1]', () => {
  const tm = inputRangeOf({
    metadata: {
      file: 'metadata.json',
      json: { tmVersion: '2.4.5', packageName: '@teachablemachine/image', imageSize: 224 },
    },
  });
  assert.deepEqual([tm.range, tm.size], [[-1, 1], 224]);
  assert.match(tm.source, /Teachable Machine/);
  assert.deepEqual(
    inputRangeOf({}, new Map([['seq/mobilenetv2_1.00_224', ['input_1', 'Conv1', 'bn_Conv1', 'out_relu']]])).range,
    [-1, 1],
  );
  assert.deepEqual(
    inputRangeOf({}, new Map([['seq/mobilenet_1.00_224', ['conv1', 'conv_pw_13_relu']]])).range,
    [-1, 1],
  );
  assert.deepEqual(inputRangeOf({ metadata: { file: 'metadata.json', json: { labels: ['a'] } } }).range, [0, 1]);
  assert.deepEqual(inputRangeOf({}, new Map([['seq/block', ['conv', 'bn']]])).range, [0, 1]);
});
