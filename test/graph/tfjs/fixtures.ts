/**
 * Shared by the TF.js importer tests: save a tfjs layers model as model.json + one float32 shard, write a
 * hand-built graph model, and run a tapir graph on an NHWC input with its outputs read back as NHWC (rank-4) or
 * as they are (other ranks), so they compare with tfjs element by element.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import ort from 'onnxruntime-node';
import { scope, tensor } from '../../../src/engine/index.js';
import { forward } from '../../../src/graph/interpreter.js';
import type { Graph } from '../../../src/graph/ir.js';
import { exportOnnxBytes } from '../../../src/graph/onnx/index.js';
import { expectClose } from '../../helpers/check.js';

/** Saves `model` (float32 weights) into a fresh temp folder; returns the folder. */
export async function saveLayersModel(model: tf.LayersModel): Promise<string> {
  let art: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      art = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return writeModel(
    'layers-model',
    art!.modelTopology as object,
    art!.weightSpecs!,
    new Uint8Array(art!.weightData as ArrayBuffer),
  );
}

/** Writes model.json (+ one shard) into a fresh temp folder; returns the folder. */
export function writeModel(
  format: 'layers-model' | 'graph-model',
  modelTopology: object,
  weights: readonly tf.io.WeightsManifestEntry[],
  bytes: Uint8Array,
): string {
  const dir = mkdtempSync(join(tmpdir(), `tapir-${format}-`));
  writeFileSync(
    join(dir, 'model.json'),
    JSON.stringify({ format, modelTopology, weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights }] }),
  );
  writeFileSync(join(dir, 'group1-shard1of1.bin'), bytes);
  return dir;
}

/** Weights (float32 unless `dtype: 'int32'`) as a manifest and one shard, in the given order. */
export function packWeights(
  ws: readonly { name: string; shape: number[]; values: ArrayLike<number>; dtype?: 'int32' }[],
): {
  specs: tf.io.WeightsManifestEntry[];
  bytes: Uint8Array;
} {
  const parts = ws.map((w) =>
    w.dtype === 'int32'
      ? new Uint8Array(Int32Array.from(Array.from(w.values)).buffer)
      : new Uint8Array(Float32Array.from(Array.from(w.values)).buffer),
  );
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    bytes.set(p, off);
    off += p.length;
  }
  return {
    specs: ws.map((w) => ({ name: w.name, shape: w.shape, dtype: w.dtype ?? ('float32' as const) })),
    bytes,
  };
}

/** Deterministic values in [-1, 1) (a small LCG), so fixtures need no tfjs random state. */
export function values(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return ((s / 2 ** 32) * 2 - 1) * scale;
  });
}

/** The graph's outputs (or the named values) on NHWC input `x` ([n, h, w, c]), rank-4 ones permuted back to NHWC. */
export function runNhwc(
  g: Graph,
  x: Float32Array,
  shape: readonly number[],
  outputs?: readonly string[],
): Float32Array[] {
  return scope(() => {
    const input = tensor(x, [...shape])
      .permute([0, 3, 1, 2])
      .contiguous();
    return forward(g, input, { mode: 'eval', ...(outputs ? { outputs } : {}) }).outputs.map((y) =>
      (y.ndim === 4 ? y.permute([0, 2, 3, 1]).contiguous() : y).data<'float32'>().slice(),
    );
  });
}

/** tfjs predictions of a layers model on NHWC `x`, one array per output. */
export function predictTf(m: tf.LayersModel, x: Float32Array, shape: readonly number[]): Float32Array[] {
  const out = m.predict(tf.tensor(x, [...shape]));
  return (Array.isArray(out) ? out : [out]).map((t) => t.dataSync() as Float32Array);
}

/** Exports `g` to ONNX (opset 17) and checks onnxruntime's outputs against tapir's on NHWC input `x`. */
export async function expectOnnxMatches(g: Graph, x: Float32Array, shape: readonly number[]): Promise<void> {
  const nchw = [shape[0]!, shape[3]!, shape[1]!, shape[2]!];
  const input = tf
    .tensor(x, [...shape])
    .transpose([0, 3, 1, 2])
    .dataSync() as Float32Array;
  const want = scope(() =>
    forward(g, tensor(input, nchw), { mode: 'eval' }).outputs.map((y) => y.data<'float32'>().slice()),
  );
  const s = await ort.InferenceSession.create(exportOnnxBytes(g));
  const r = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', input, nchw) });
  assert.equal(s.outputNames.length, want.length, 'ONNX output count');
  s.outputNames.forEach((n, i) =>
    expectClose(r[n]!.data as Float32Array, want[i]!, { rtol: 1e-4, atol: 1e-5 }, `ONNX output ${n}`),
  );
}
