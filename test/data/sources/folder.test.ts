import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import sharp from 'sharp';
import { openFolder } from '../../../src/data/sources/folder.js';
import { classCounts } from '../../../src/data/dataset.js';
import { openTask } from '../../../src/data/task.js';
import { loadSplits } from '../../../src/data/load.js';
import { DataError } from '../../../src/data/errors.js';
import { cifarDir, tempDir, u8, useTempCache } from '../env.js';

useTempCache();

async function png(path: string, w: number, h: number, channels: 1 | 3 | 4, v: number): Promise<void> {
  const px = new Uint8Array(w * h * channels).fill(v);
  if (channels === 4) for (let i = 3; i < px.length; i += 4) px[i] = i % 8 === 3 ? 0 : 255;
  writeFileSync(
    path,
    u8(
      await sharp(px, { raw: { width: w, height: h, channels } })
        .png()
        .toBuffer(),
    ),
  );
}
async function jpg(path: string, w: number, h: number): Promise<Uint8Array> {
  const b = u8(
    await sharp(new Uint8Array(w * h * 3).fill(90), { raw: { width: w, height: h, channels: 3 } })
      .jpeg()
      .toBuffer(),
  );
  writeFileSync(path, b);
  return b;
}

/** Three classes of five usable-looking images each, plus every kind of bad file. */
async function makeFolder(): Promise<string> {
  const root = tempDir('tapir-folder-');
  for (const c of ['gray', 'green', 'red']) mkdirSync(join(root, c));
  for (let i = 0; i < 5; i++) await png(join(root, 'gray', `g${i}.png`), 9 + i, 7, 1, 40 * i);
  for (let i = 0; i < 4; i++) await png(join(root, 'red', `r${i}.PNG`), 6, 10 + i, 4, 200);
  writeFileSync(
    join(root, 'red', 'junk.png'),
    Uint8Array.from({ length: 300 }, (_, i) => (i * 37) % 256),
  );
  writeFileSync(join(root, 'red', 'empty.png'), new Uint8Array(0));
  writeFileSync(join(root, 'red', 'notes.txt'), 'not an image');
  let good: Uint8Array = new Uint8Array(0);
  for (let i = 0; i < 4; i++) good = await jpg(join(root, 'green', `j${i}.jpg`), 16, 12);
  writeFileSync(join(root, 'green', 'cut.jpeg'), good.subarray(0, Math.floor(good.length / 2)));
  return root;
}

test('folder: one class per sub-folder; zero-byte and non-image files skipped and counted at listing', async () => {
  const root = await makeFolder();
  const ds = await openFolder(root);
  assert.equal(ds.name, `folder:${root}`);
  assert.deepEqual(ds.classes, ['gray', 'green', 'red']);
  assert.deepEqual(classCounts(ds).train, [5, 5, 5]);
  assert.deepEqual(ds.skipped.map((s) => `${s.file}: ${s.reason}`).sort(), [
    'red/empty.png: zero-byte file',
    'red/notes.txt: not a .png/.jpg/.jpeg file',
  ]);
});

test('folder: corrupt and truncated images are skipped when decoded, counted, and remembered by the cache', async () => {
  const root = await makeFolder();
  const t = await openTask(`folder:${root}`);
  const { sets, stats } = await loadSplits(t, [8, 8]);
  assert.deepEqual(stats.skipped.map((s) => s.file).sort(), ['green/cut.jpeg', 'red/junk.png']);
  assert.equal(stats.decoded, 13);
  const n = sets.train!.n + sets.calib!.n + sets.test!.n;
  assert.equal(n, 13);
  assert.equal(sets.train!.skipped.length + sets.calib!.skipped.length + sets.test!.skipped.length, 2);
  // Gray PNGs become three equal channels; transparent pixels of the RGBA ones become white.
  const gi = sets.train!.labels.indexOf(0);
  const g = sets.train!.images.subarray(gi * 192, gi * 192 + 192);
  assert.deepEqual(g.subarray(0, 64), g.subarray(64, 128));
  const warm = await loadSplits(t, [8, 8]);
  assert.equal(warm.stats.decoded, 0);
  assert.equal(warm.stats.skipped.length, 2, 'a warm load reports the same skips');
});

test('folder: an empty class folder and a one-class folder are errors naming them', async () => {
  const root = tempDir('tapir-folder-');
  mkdirSync(join(root, 'cats'));
  mkdirSync(join(root, 'dogs'));
  await png(join(root, 'cats', 'a.png'), 4, 4, 3, 1);
  writeFileSync(join(root, 'dogs', 'zero.jpg'), new Uint8Array(0));
  await assert.rejects(
    openFolder(root),
    (e: unknown) => e instanceof DataError && /class 'dogs' has no usable images/.test(e.message),
  );
  await png(join(root, 'dogs', 'b.png'), 4, 4, 3, 2);
  const one = tempDir('tapir-folder-');
  mkdirSync(join(one, 'only'));
  await png(join(one, 'only', 'a.png'), 4, 4, 3, 1);
  await assert.rejects(openFolder(one), /needs at least 2 class sub-folders, found 1/);
  await assert.rejects(openFolder(join(one, 'nope')), /no such directory/);
  await assert.rejects(openTask(`folder:${root}[cats]`), /has 1 class \('cats'\)/);
});

test('folder: a root with train/ and test/ is an official split', async () => {
  const root = tempDir('tapir-folder-');
  for (const s of ['train', 'test'])
    for (const c of ['a', 'b']) {
      mkdirSync(join(root, s, c), { recursive: true });
      for (let i = 0; i < (s === 'train' ? 4 : 2); i++) await png(join(root, s, c, `${i}.png`), 5, 5, 3, i * 10);
    }
  const t = await openTask(`folder:${root}`);
  assert.equal(t.dataset.officialTest, true);
  assert.ok(t.splits.test.examples.every((e) => e.key.startsWith('test/')));
  assert.ok(t.splits.train.examples.every((e) => e.key.startsWith('train/')));
  assert.equal(t.splits.test.examples.length, 4);
  mkdirSync(join(root, 'test', 'c'));
  await png(join(root, 'test', 'c', 'x.png'), 5, 5, 3, 0);
  await assert.rejects(openFolder(root), /different class folders \(c\)/);
});

test('folder: the CIFAR-10 photo subset, when present', async (t) => {
  const dir = cifarDir();
  if (!dir) return t.skip('no CIFAR-10 subset (set TAPIR_CIFAR10_DIR or put it at ../shared/data/cifar10)');
  const task = await openTask(`folder:${dir}[cat,dog,ship]`, { cap: 5 });
  const c = classCounts(task.dataset);
  console.log('cifar10 per class train/test:', c.train.join(' '), '/', c.test.join(' '));
  assert.equal(task.dataset.classes.length, 10);
  assert.ok(c.train.every((n) => n === c.train[0] && n > 0) && c.test.every((n) => n === c.test[0] && n > 0));
  const { sets } = await loadSplits(task, [32, 32], ['test']);
  assert.equal(sets.test!.n, 3);
  assert.equal(sets.test!.images.length, 3 * 3 * 32 * 32);
  assert.ok(readFileSync(join(dir, task.splits.test.examples[0]!.key)).length > 0);
});

test('folder: the split draw depends on the folder, not on where it lives (same base name elsewhere: same split)', async () => {
  const a = await makeFolder();
  const b = join(tempDir('tapir-moved-'), basename(a));
  cpSync(a, b, { recursive: true });
  const ta = await openTask(`folder:${a}`);
  const tb = await openTask(`folder:${b}`);
  assert.notEqual(ta.id, tb.id);
  for (const k of ['train', 'calib', 'test'] as const) {
    assert.deepEqual(
      tb.splits[k].examples.map((e) => e.key),
      ta.splits[k].examples.map((e) => e.key),
      `${k} split moved with the folder`,
    );
  }
  // The draw does depend on the folder's name (a renamed copy is another dataset) and on the seed.
  const c = join(tempDir('tapir-renamed-'), 'other-name');
  cpSync(a, c, { recursive: true });
  const tc = await openTask(`folder:${c}`);
  const td = await openTask(`folder:${a}`, { seed: 1 });
  const keys = (t: typeof ta) =>
    ['train', 'calib', 'test'].flatMap((k) => t.splits[k as 'train'].examples.map((e) => e.key)).join();
  assert.notEqual(keys(tc), keys(ta));
  assert.notEqual(keys(td), keys(ta));
});
