import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { openMnist, openFashionMnist } from '../../../src/data/sources/idx-datasets.js';
import { classCounts } from '../../../src/data/dataset.js';
import { ASSETS } from '../../../src/data/paths.js';

test('MNIST: 60,000 / 10,000 with the known per-class counts', async () => {
  const ds = await openMnist();
  const c = classCounts(ds);
  assert.equal(
    c.train.reduce((a, b) => a + b),
    60000,
  );
  assert.equal(
    c.test.reduce((a, b) => a + b),
    10000,
  );
  assert.deepEqual(c.train, [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
  assert.deepEqual(c.test, [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
  assert.equal(ds.officialTest, true);
});

test('Fashion-MNIST: 60,000 / 10,000, 6,000 / 1,000 per class', async () => {
  const ds = await openFashionMnist();
  const c = classCounts(ds);
  assert.deepEqual(c.train, new Array(10).fill(6000));
  assert.deepEqual(c.test, new Array(10).fill(1000));
  assert.equal(ds.classes[9], 'Ankle boot');
});

test('gray → RGB: an MNIST digit decoded at 28x28 is its IDX bytes in all three channels', async () => {
  const ds = await openMnist();
  const raw = readFileSync(join(ASSETS.mnist.path(), 't10k-images-idx3-ubyte'));
  const i = 7;
  const ex = ds.examples.find((e) => e.key === `test/${i}`)!;
  const img = await ds.decode(ex, [28, 28]);
  assert.equal(img.length, 3 * 28 * 28);
  const want = raw.subarray(16 + i * 784, 16 + (i + 1) * 784);
  for (let c = 0; c < 3; c++) assert.deepEqual(Array.from(img.subarray(c * 784, (c + 1) * 784)), Array.from(want));
});

test('Fashion-MNIST decodes from the gzipped IDX and resizes to any [h, w]', async () => {
  const ds = await openFashionMnist();
  const gz = readFileSync(join(ASSETS['fashion-mnist'].path(), 'train-images-idx3-ubyte.gz'));
  const raw = gunzipSync(new Uint8Array(gz.buffer, gz.byteOffset, gz.byteLength));
  const ex = ds.examples[3]!;
  const same = await ds.decode(ex, [28, 28]);
  assert.deepEqual(Array.from(same.subarray(0, 784)), Array.from(raw.subarray(16 + 3 * 784, 16 + 4 * 784)));
  const big = await ds.decode(ex, [40, 24]);
  assert.equal(big.length, 3 * 40 * 24);
  // Letterboxing a square image into 40x24 leaves white bands above and below it.
  assert.ok(big.subarray(0, 24 * 4).every((v) => v === 255));
  assert.ok(
    big.some((v) => v < 128),
    'the garment is still there',
  );
});
