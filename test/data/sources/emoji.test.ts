import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openEmoji, EMOJI_MIN_PER_CLASS } from '../../../src/data/sources/emoji.js';
import { classCounts } from '../../../src/data/dataset.js';
import { ASSETS } from '../../../src/data/paths.js';

test('emoji: one image per emoji (skin tones once), categories from emoji.json, counts stable', async () => {
  const ds = await openEmoji();
  const c = classCounts(ds).train;
  console.log('emoji classes:', ds.classes.map((n, i) => `${n} ${c[i]}`).join(', '), `| ${ds.examples.length} images`);
  const meta = JSON.parse(readFileSync(join(ASSETS.emoji.path(), 'emoji.json'), 'utf8')) as {
    image: string;
    category: string;
    has_img_google: boolean;
    skin_variations?: object;
  }[];
  const want = new Map<string, number>();
  for (const e of meta) if (e.has_img_google) want.set(e.category, (want.get(e.category) ?? 0) + 1);
  ds.classes.forEach((n, i) => assert.equal(c[i], want.get(n), n));
  assert.ok(c.every((n) => n >= EMOJI_MIN_PER_CLASS));
  assert.equal(ds.classes.includes('Component'), false, 'skin-tone swatches are not a class');
  assert.ok(
    meta.some((e) => e.skin_variations),
    'the package has skin-tone variants',
  );
  assert.ok(
    ds.examples.every((e) => !/-1f3f[b-f]/.test(e.key)),
    'no skin-tone variant image is used',
  );
  assert.equal(new Set(ds.examples.map((e) => e.key)).size, ds.examples.length);
  const again = classCounts(await openEmoji()).train;
  assert.deepEqual(again, c);
  const img = await ds.decode(ds.examples[0]!, [64, 64]);
  assert.equal(img.length, 3 * 64 * 64);
});
