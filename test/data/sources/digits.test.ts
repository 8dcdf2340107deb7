import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDigits } from '../../../src/data/sources/digits.js';
import { classCounts } from '../../../src/data/dataset.js';
import { useTempCache } from '../env.js';

useTempCache();

test('digits: 1,797 images of 8x8, every class present, one pool', async () => {
  const ds = await openDigits();
  assert.equal(ds.examples.length, 1797);
  const c = classCounts(ds);
  console.log('digits per class:', c.train.join(' '));
  assert.equal(
    c.train.reduce((a, b) => a + b),
    1797,
  );
  // sklearn's documented class sizes (load_digits: 'Samples per class ~180').
  assert.deepEqual(c.train, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
  assert.deepEqual(c.test, new Array(10).fill(0));
  assert.equal(ds.officialTest, false);
  const img = await ds.decode(ds.examples[0]!, [8, 8]);
  assert.equal(img.length, 3 * 64);
  // sklearn's first digit is a 0: its corners are blank (0 → 0) and its strokes reach 15-16 of 16.
  assert.equal(img[0], 0);
  assert.ok(Math.max(...img) >= Math.round((15 * 255) / 16));
  assert.equal(ds.examples[0]!.label, 0);
});
