/**
 * The TF.js layers importer on a small model built with @tensorflow/tfjs itself (every supported layer the
 * nsfwjs models do not use: SeparableConv2D, Concatenate, GlobalAveragePooling2D, "same" pooling with an odd
 * input, Flatten of a spatial map, Reshape, Activation, depth multiplier 2), saved as model.json + shard with
 * float32, float16 and uint8 weights; and damaged files, each a clear error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { manualSeed, nn, rand, scope, tensor, TapirError } from '../../../src/engine/index.js';
import { forward } from '../../../src/graph/interpreter.js';
import { ModelFormatError, UnsupportedOpError } from '../../../src/graph/errors.js';
import { loadTfjsModel, readTfjsArtifacts } from '../../../src/graph/tfjs/index.js';
import { disposeGraph } from '../../../src/graph/params.js';

function buildTfModel(): tf.LayersModel {
  const inp = tf.input({ shape: [13, 13, 3] });
  let x = tf.layers
    .conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', name: 'c1' })
    .apply(inp) as tf.SymbolicTensor;
  x = tf.layers
    .separableConv2d({ filters: 6, kernelSize: 3, padding: 'same', name: 'sep' })
    .apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'bn' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU({ maxValue: 6, name: 'r6' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers
    .depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, useBias: true, name: 'dw' })
    .apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ scale: false, center: false, name: 'bn_fixed' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers
    .zeroPadding2d({
      padding: [
        [1, 0],
        [0, 1],
      ],
      name: 'zp',
    })
    .apply(x) as tf.SymbolicTensor;
  const m = tf.layers
    .maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'mp' })
    .apply(x) as tf.SymbolicTensor;
  const a = tf.layers
    .averagePooling2d({ poolSize: 2, strides: 2, padding: 'same', name: 'ap' })
    .apply(x) as tf.SymbolicTensor;
  const cat = tf.layers.concatenate({ axis: -1, name: 'cat' }).apply([m, a]) as tf.SymbolicTensor;
  let f = tf.layers.flatten({ name: 'fl' }).apply(cat) as tf.SymbolicTensor;
  f = tf.layers.dense({ units: 8, activation: 'tanh', name: 'd1' }).apply(f) as tf.SymbolicTensor;
  f = tf.layers.dropout({ rate: 0.3, name: 'drop' }).apply(f) as tf.SymbolicTensor;
  f = tf.layers.reshape({ targetShape: [2, 4], name: 'rs' }).apply(f) as tf.SymbolicTensor;
  f = tf.layers.flatten({ name: 'fl2' }).apply(f) as tf.SymbolicTensor;
  f = tf.layers.dense({ units: 3, name: 'd2' }).apply(f) as tf.SymbolicTensor;
  const g = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(cat) as tf.SymbolicTensor;
  const h = tf.layers.dense({ units: 3, name: 'd3' }).apply(g) as tf.SymbolicTensor;
  const sum = tf.layers.add({ name: 'sum' }).apply([f, h]) as tf.SymbolicTensor;
  const out = tf.layers.activation({ activation: 'softmax', name: 'prob' }).apply(sum) as tf.SymbolicTensor;
  const model = tf.model({ inputs: inp, outputs: out });
  let seed = 1;
  model.setWeights(
    model.weights.map((w) => {
      const r = tf.randomNormal([...w.shape] as number[], 0, 0.5, 'float32', seed++);
      return w.name.includes('moving_variance') ? r.abs().add(0.5) : r;
    }),
  );
  return model;
}

type Storage = 'float32' | 'float16' | 'uint8';

/** Saves the model as model.json + one shard, weights stored as `storage`; returns the folder. */
async function save(model: tf.LayersModel, storage: Storage): Promise<string> {
  let art: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      art = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  const f32 = new Float32Array(art!.weightData as ArrayBuffer);
  const specs = art!.weightSpecs!.map((s) => ({ ...s }));
  let bytes: Uint8Array;
  if (storage === 'float32') bytes = new Uint8Array(f32.buffer);
  else {
    const parts: Uint8Array[] = [];
    let off = 0;
    for (const s of specs) {
      const n = s.shape.reduce((p, d) => p * d, 1);
      const v = f32.subarray(off, off + n);
      off += n;
      if (storage === 'float16') {
        const h = tf.tensor(v).asType('float32');
        const u16 = new Uint16Array(n);
        for (let i = 0; i < n; i++) u16[i] = toHalf(v[i]!);
        h.dispose();
        parts.push(new Uint8Array(u16.buffer));
        s.quantization = { dtype: 'float16' };
      } else {
        let min = Infinity;
        let max = -Infinity;
        for (const x of v) {
          min = Math.min(min, x);
          max = Math.max(max, x);
        }
        const scale = (max - min) / 255 || 1;
        parts.push(Uint8Array.from(v, (x) => Math.round((x - min) / scale)));
        s.quantization = { dtype: 'uint8', scale, min };
      }
    }
    bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      bytes.set(p, o);
      o += p.length;
    }
  }
  const dir = mkdtempSync(join(tmpdir(), `tapir-tfjs-${storage}-`));
  writeFileSync(
    join(dir, 'model.json'),
    JSON.stringify({
      format: 'layers-model',
      modelTopology: art!.modelTopology,
      weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: specs }],
    }),
  );
  writeFileSync(join(dir, 'group1-shard1of1.bin'), bytes);
  return dir;
}

function toHalf(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0]!;
  const sign = (u >> 16) & 0x8000;
  const e = ((u >> 23) & 0xff) - 127 + 15;
  const m = u & 0x7fffff;
  if (e <= 0) return sign;
  if (e >= 31) return sign | 0x7c00;
  let h = sign | (e << 10) | (m >> 13);
  if (m & 0x1000) h++;
  return h;
}

const model = buildTfModel();

for (const storage of ['float32', 'float16', 'uint8'] as const) {
  test(`layers importer (${storage} weights) matches tfjs on a 13 px input exercising every layer kind`, async () => {
    const dir = await save(model, storage);
    const g = await loadTfjsModel(dir);
    assert.equal(g.meta.outputActivation, 'softmax');
    const art = await readTfjsArtifacts(dir);
    const ref = await tf.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: art.json.modelTopology as object,
        weightSpecs: art.specs as tf.io.WeightsManifestEntry[],
        weightData: art.weightData.slice().buffer,
      }),
    );
    manualSeed(4);
    const x = scope(() => rand([2, 13, 13, 3]).data<'float32'>());
    const want = (ref.predict(tf.tensor(x, [2, 13, 13, 3])) as tf.Tensor).dataSync();
    const got = scope(() =>
      nn
        .softmax(
          forward(g, tensor(x, [2, 13, 13, 3]).permute([0, 3, 1, 2]).contiguous(), { mode: 'eval' }).outputs[0]!,
          1,
        )
        .data<'float32'>(),
    );
    assert.equal(got.length, 6);
    for (let i = 0; i < 6; i++)
      assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-5 + 1e-4 * Math.abs(want[i]!), `${i}: ${got[i]} vs ${want[i]}`);
    assert.equal(g.params.get('d3.weight')!.role, 'head', 'the last Dense is the head');
    assert.equal(g.params.get('d2.weight')!.role, 'weight');
    // A BN without scale/center gets its own fixed γ = 1, β = 0, not trained (BN repair rescales through them).
    assert.deepEqual(g.nodes.find((n) => n.name === 'bn_fixed')!.inputs.slice(1, 3), [
      'bn_fixed.weight',
      'bn_fixed.bias',
    ]);
    assert.ok((g.params.get('bn_fixed.weight')!.tensor.toArray() as number[]).every((v) => v === 1));
    assert.ok((g.params.get('bn_fixed.bias')!.tensor.toArray() as number[]).every((v) => v === 0));
    assert.equal(g.params.get('bn_fixed.weight')!.trainable, false);
    ref.dispose();
    disposeGraph(g);
    rmSync(dir, { recursive: true });
  });
}

test('damaged TF.js files: each a clear ModelFormatError / UnsupportedOpError, nothing huge allocated', async () => {
  const dir = await save(model, 'float32');
  const json = readFileSync(join(dir, 'model.json'), 'utf8');
  const shard = new Uint8Array(readFileSync(join(dir, 'group1-shard1of1.bin')));
  const isFormat = (re: RegExp) => (e: unknown) =>
    e instanceof ModelFormatError && re.test((e as Error).message) && !!(e as TapirError).fix;

  writeFileSync(join(dir, 'model.json'), json.slice(0, json.length >> 1));
  await assert.rejects(loadTfjsModel(dir), isFormat(/model\.json: not valid JSON/));
  writeFileSync(join(dir, 'model.json'), '{"modelTopology": 3}');
  await assert.rejects(loadTfjsModel(dir), isFormat(/modelTopology/));

  writeFileSync(join(dir, 'model.json'), json);
  writeFileSync(join(dir, 'group1-shard1of1.bin'), shard.subarray(0, shard.length - 10));
  await assert.rejects(
    loadTfjsModel(dir),
    isFormat(new RegExp(`shards hold ${shard.length - 10} bytes but the manifest describes ${shard.length}`)),
  );

  const huge = JSON.parse(json) as { weightsManifest: { weights: { shape: number[] }[] }[] };
  huge.weightsManifest[0]!.weights[0]!.shape = [100000, 100000, 100];
  writeFileSync(join(dir, 'model.json'), JSON.stringify(huge));
  writeFileSync(join(dir, 'group1-shard1of1.bin'), shard);
  await assert.rejects(loadTfjsModel(dir), isFormat(/manifest describes \d+/));

  const lstm = json.replace('"class_name":"Dropout"', '"class_name":"LSTM"');
  writeFileSync(join(dir, 'model.json'), lstm);
  await assert.rejects(
    loadTfjsModel(dir),
    (e: unknown) => e instanceof UnsupportedOpError && /'LSTM' in node 'drop'.*Conv2D/.test((e as Error).message),
  );

  writeFileSync(join(dir, 'model.json'), json);
  rmSync(join(dir, 'group1-shard1of1.bin'));
  await assert.rejects(loadTfjsModel(dir), isFormat(/weight shard listed in the manifest is missing/));

  const src = readFileSync('node_modules/nsfwjs/dist/models/mobilenet_v2/model.min.js', 'utf8');
  writeFileSync(join(dir, 'model.min.js'), src.slice(0, 5000));
  await assert.rejects(loadTfjsModel(join(dir, 'model.min.js')), isFormat(/cannot parse the exported model data/));
  writeFileSync(join(dir, 'model.min.js'), 'require("child_process").exec("touch /tmp/pwned")');
  await assert.rejects(loadTfjsModel(join(dir, 'model.min.js')), isFormat(/no 'exports=' assignment/));
  rmSync(dir, { recursive: true });
});
