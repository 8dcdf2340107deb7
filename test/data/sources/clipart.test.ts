import { test } from 'node:test';
import assert from 'node:assert/strict';
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { openClipart, CLIPART_MIN_PER_CLASS } from '../../../src/data/sources/clipart.js';
import { classCounts } from '../../../src/data/dataset.js';
import { ASSETS } from '../../../src/data/paths.js';

test('clipart: categories with >= 60 images, each file once, class = its category; counts stable across scans', async () => {
  const a = await openClipart();
  const b = await openClipart();
  const ca = classCounts(a).train;
  console.log(
    'clipart classes:',
    a.classes.map((c, i) => `${c} ${ca[i]}`).join(', '),
    `| ${a.examples.length} images, ${a.skipped.length} skipped`,
  );
  assert.deepEqual(a.classes, b.classes);
  assert.deepEqual(ca, classCounts(b).train);
  assert.ok(a.classes.length >= 10, `expected at least 10 categories, got ${a.classes.length}`);
  assert.ok(ca.every((n) => n >= CLIPART_MIN_PER_CLASS));
  assert.deepEqual([...a.classes].sort(), a.classes);
  const keys = new Set(a.examples.map((e) => e.key));
  assert.equal(keys.size, a.examples.length, 'symlinked duplicates are counted once');
  for (const e of a.examples) assert.equal(e.key.slice(0, e.key.indexOf('/')), a.classes[e.label]);
  // Every kept file is a real file (keys are resolved paths), and the dropped ones name several categories.
  const root = realpathSync(ASSETS.clipart.path());
  for (const e of a.examples.slice(0, 50)) assert.equal(realpathSync(join(root, e.key)), join(root, e.key));
  assert.ok(a.skipped.every((s) => /several categories|symlink|outside/.test(s.reason)));
});

test('clipart decodes RGBA on white, letterboxed to the requested size', async () => {
  const ds = await openClipart();
  const img = await ds.decode(ds.examples[0]!, [48, 32]);
  assert.equal(img.length, 3 * 48 * 32);
  assert.ok(
    img.some((v) => v < 250),
    'the drawing is visible',
  );
  assert.ok(img.filter((v) => v === 255).length > img.length / 10, 'transparent background became white');
});
