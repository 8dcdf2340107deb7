import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import sharp from 'sharp';
import { openTask } from '../../src/data/task.js';
import { loadSample } from '../../src/data/load.js';
import { writeMontage } from '../../src/data/montage.js';
import { tempDir, useTempCache } from './env.js';

useTempCache();

test('montage: one row per class, the sampled images placed pixel-exact', async () => {
  const t = await openTask('fashion-mnist[0-2]', { cap: 20 });
  const set = await loadSample(t, 'train', [28, 28], 3);
  assert.equal(set.n, 9);
  const out = join(tempDir(), 'sub', 'm.png');
  const m = await writeMontage(set, out, { perClass: 3, labelWidth: 0 });
  assert.deepEqual(m, { width: 2 + 3 * 30, height: 2 + 3 * 30, shown: 9 });
  const { data, info } = await sharp(out).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.width, info.height, info.channels], [92, 92, 3]);
  // Row 1, column 0 holds the first image of class 1.
  const i = set.labels.indexOf(1);
  for (const [y, x] of [
    [0, 0],
    [14, 14],
    [27, 5],
  ] as const) {
    const px = data[((2 + 30 + y) * 92 + 2 + x) * 3]!;
    assert.equal(px, set.images[i * 3 * 784 + y * 28 + x]);
  }
  const labelled = await writeMontage(set, out, { perClass: 3 });
  assert.ok(labelled.width > 92 + 8, 'a column for the class names');
  assert.equal(labelled.height, 92);
});
