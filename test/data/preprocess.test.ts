import { test } from 'node:test';
import assert from 'node:assert/strict';
import { liveTensors } from '../../src/engine/index.js';
import { openTask } from '../../src/data/task.js';
import { loadSplit } from '../../src/data/load.js';
import { batches, checkPreprocess, imagesToTensor, type Preprocess } from '../../src/data/preprocess.js';
import { DataError } from '../../src/data/errors.js';
import { useTempCache } from './env.js';

useTempCache();

const P: Preprocess = { size: [12, 20], range: [-1, 1], mean: [0.1, 0.2, 0.3], std: [0.5, 0.25, 2], channels: 3 };

test('batches: NCHW float32 at the model size, values = ((lo + (hi-lo)·p/255) − mean)/std, int64 labels', async () => {
  const t = await openTask('mnist[0,1]', { cap: 10 });
  const set = await loadSplit(t, 'train', P.size);
  assert.equal(set.n, 14);
  const bs = [...batches(set, P, { batchSize: 5 })];
  assert.deepEqual(
    bs.map((b) => b.x.shape),
    [
      [5, 3, 12, 20],
      [5, 3, 12, 20],
      [4, 3, 12, 20],
    ],
  );
  assert.equal(bs[0]!.x.dtype, 'float32');
  assert.equal(bs[0]!.y.dtype, 'int64');
  const x = bs[1]!.x.data<'float32'>();
  const hw = 12 * 20;
  for (const k of [0, 37, 3 * hw + 5, 2 * 3 * hw + 2 * hw + 100]) {
    const img = 5 + Math.floor(k / (3 * hw));
    const c = Math.floor((k % (3 * hw)) / hw);
    const p = set.images[img * 3 * hw + (k % (3 * hw))]!;
    const want = (-1 + (2 * p) / 255 - P.mean![c]!) / P.std![c]!;
    assert.ok(Math.abs(x[k]! - want) < 1e-6, `element ${k}: ${x[k]} vs ${want}`);
  }
  assert.deepEqual(
    bs.flatMap((b) => b.y.toArray()),
    Array.from(set.labels),
  );
  for (const b of bs) {
    b.x.dispose();
    b.y.dispose();
  }
});

test('gray sources give three equal channels; shuffle is a seeded permutation; the live-tensor count stays flat', async () => {
  const t = await openTask('fashion-mnist[0,1]', { cap: 10 });
  const set = await loadSplit(t, 'test', [8, 8]);
  const p: Preprocess = { size: [8, 8], range: [0, 1], channels: 3 };
  const x = imagesToTensor(set, [0, 1], p);
  const d = x.data<'float32'>();
  for (let i = 0; i < 64; i++) (assert.equal(d[i], d[64 + i]), assert.equal(d[i], d[128 + i]));
  x.dispose();
  const order = (seed: number) =>
    [...batches(set, p, { batchSize: 3, shuffle: true, seed })].flatMap((b) => {
      const idx = Array.from(b.indices);
      b.x.dispose();
      b.y.dispose();
      return idx;
    });
  const before = liveTensors();
  const a = order(5);
  assert.equal(liveTensors(), before);
  assert.deepEqual(
    [...a].sort((u, v) => u - v),
    Array.from({ length: set.n }, (_, i) => i),
  );
  assert.deepEqual(order(5), a);
  assert.notDeepEqual(order(6), a);
  assert.equal([...batches(set, p, { batchSize: 3, dropLast: true })].length, Math.floor(set.n / 3));
});

test('preprocess errors name the field; a size mismatch names both sizes', async () => {
  assert.throws(() => checkPreprocess({ ...P, range: [1, 0] }), /preprocess\.range/);
  assert.throws(() => checkPreprocess({ ...P, std: [1, 0, 1] }), /preprocess\.std/);
  assert.throws(() => checkPreprocess({ ...P, size: [0, 3] as unknown as [number, number] }), /preprocess\.size/);
  const t = await openTask('mnist[0,1]', { cap: 3 });
  const set = await loadSplit(t, 'calib', [10, 10]);
  assert.throws(
    () => [...batches(set, P)],
    (e: unknown) => e instanceof DataError && /loaded at 10x10, the model expects 12x20/.test(e.message),
  );
});
