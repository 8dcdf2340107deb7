/**
 * nsfwjs models through tapir vs @tensorflow/tfjs (reference only, loaded with tf.io.fromMemory) on the same
 * inputs: max relative error on logits ≤ 1e-4. Small resolutions keep the CPU reference fast; the final
 * average pool is adapted in both models the same way.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { manualSeed, rand, scope, tensor } from '../../../src/engine/index.js';
import { forward } from '../../../src/graph/interpreter.js';
import { importTfjs, readTfjsArtifacts, type TfjsArtifacts } from '../../../src/graph/tfjs/index.js';
import { disposeGraph } from '../../../src/graph/params.js';
import type { Graph } from '../../../src/graph/ir.js';

const DIR = 'node_modules/nsfwjs/dist/models';

/** Sets the first avg pool whose kernel is ≥ `from` to `k` (both models), so reference and tapir run at `res`. */
function adaptPool(g: Graph, k: number): void {
  g.nodes.forEach((n, i) => {
    if (n.op === 'avgpool' && (n.attrs.kernel as number[])[0]! >= 7)
      g.nodes[i] = { ...n, attrs: { ...n.attrs, kernel: [k, k], stride: [k, k] } };
  });
}

function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!) / Math.max(Math.abs(b[i]!), 1e-2));
  return m;
}

async function layersReference(
  a: TfjsArtifacts,
  res: number,
  k: number,
  x: Float32Array,
  n: number,
): Promise<Float32Array> {
  const topo = JSON.parse(JSON.stringify(a.json.modelTopology)) as {
    model_config: { config: { layers: { name: string; class_name: string; config: Record<string, unknown> }[] } };
  };
  for (const l of topo.model_config.config.layers) {
    if (l.class_name === 'InputLayer') l.config.batch_input_shape = [null, res, res, 3];
    if (l.class_name === 'AveragePooling2D' && (l.config.pool_size as number[])[0]! >= 7)
      l.config.pool_size = l.config.strides = [k, k];
    if (l.name === 'dense_3') l.config.activation = 'linear';
  }
  const model = await tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: topo,
      weightSpecs: a.specs as tf.io.WeightsManifestEntry[],
      weightData: a.weightData.slice().buffer,
    }),
  );
  const y = model.predict(tf.tensor(x, [n, res, res, 3])) as tf.Tensor;
  const out = y.dataSync() as Float32Array;
  model.dispose();
  return out;
}

function tapirLogits(g: Graph, x: Float32Array, n: number, res: number): Float32Array {
  return scope(() => {
    const nchw = tensor(x, [n, res, res, 3]).permute([0, 3, 1, 2]).contiguous();
    return forward(g, nchw, { mode: 'eval' }).outputs[0]!.data<'float32'>();
  });
}

function images(n: number, res: number, seed: number): Float32Array {
  manualSeed(seed);
  return scope(() => rand([n, res, res, 3]).data<'float32'>());
}

test('nsfwjs mobilenet_v2 (layers, uint8) matches tfjs at 96 px within 1e-4', async () => {
  const a = await readTfjsArtifacts(`${DIR}/mobilenet_v2`);
  const g = importTfjs(a);
  assert.equal(g.meta.outputActivation, 'softmax');
  adaptPool(g, 3);
  const x = images(3, 96, 1);
  const ref = await layersReference(a, 96, 3, x, 3);
  const got = tapirLogits(g, x, 3, 96);
  assert.equal(got.length, 15);
  const err = maxRel(got, ref);
  assert.ok(err <= 1e-4, `max relative error ${err}`);
  disposeGraph(g);
});

test('nsfwjs inception_v3 (layers, 6 shards) matches tfjs at 107 px within 1e-4', async () => {
  const a = await readTfjsArtifacts(`${DIR}/inception_v3`);
  const g = importTfjs(a);
  // 299 px ends at 8×8 before the pool; 107 px ends at 2×2.
  adaptPool(g, 2);
  const x = images(1, 107, 2);
  const ref = await layersReference(a, 107, 2, x, 1);
  const err = maxRel(tapirLogits(g, x, 1, 107), ref);
  assert.ok(err <= 1e-4, `max relative error ${err}`);
  disposeGraph(g);
});

test('nsfwjs mobilenet_v2_mid (graph model, α 1.4) matches tfjs logits at 96 px within 1e-4', async () => {
  const a = await readTfjsArtifacts(`${DIR}/mobilenet_v2_mid`);
  const g = importTfjs(a);
  assert.equal(g.meta.format, 'tfjs-graph');
  assert.equal(
    g.params.get(g.nodes.find((n) => n.op === 'conv2d')!.inputs[1]!)!.tensor.shape[0],
    48,
    'α 1.4: first conv has 48 channels',
  );
  adaptPool(g, 3);
  const json = JSON.parse(JSON.stringify(a.json)) as {
    modelTopology: {
      node: {
        name: string;
        op: string;
        attr: Record<string, { list?: { i: string[] }; shape?: { dim: { size: string }[] } }>;
      }[];
    };
  };
  for (const n of json.modelTopology.node) {
    if (n.op === 'AvgPool') n.attr.ksize!.list!.i = ['1', '3', '3', '1'];
    if (n.op === 'Placeholder') n.attr.shape!.shape!.dim = [-1, 96, 96, 3].map((d) => ({ size: String(d) }));
  }
  const model = await tf.loadGraphModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: a.specs as tf.io.WeightsManifestEntry[],
      weightData: a.weightData.slice().buffer,
    }),
  );
  const logitsNode = json.modelTopology.node.find((n) => n.op === '_FusedMatMul')!.name;
  const x = images(2, 96, 3);
  const ref = (model.execute(tf.tensor(x, [2, 96, 96, 3]), logitsNode) as tf.Tensor).dataSync() as Float32Array;
  const err = maxRel(tapirLogits(g, x, 2, 96), ref);
  assert.ok(err <= 1e-4, `max relative error ${err}`);
  disposeGraph(g);
});
