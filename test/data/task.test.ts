import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openTask, SPLIT_NAMES, type Task } from '../../src/data/task.js';
import { DataError } from '../../src/data/errors.js';
import { useTempCache } from './env.js';

useTempCache();

const keysOf = (t: Task) => SPLIT_NAMES.map((s) => t.splits[s].examples.map((e) => e.key));
const perClass = (t: Task, s: 'train' | 'calib' | 'test') => {
  const n = new Array<number>(t.classes.length).fill(0);
  for (const l of t.splits[s].labels) n[l]!++;
  return n;
};

test('splits are disjoint and stratified; train/calib from the official training set, test from the official test set', async () => {
  const t = await openTask('mnist', { cap: 100, seed: 3 });
  const [tr, ca, te] = keysOf(t);
  const all = [...tr!, ...ca!, ...te!];
  assert.equal(new Set(all).size, all.length, 'no image in two splits');
  assert.deepEqual(perClass(t, 'train'), new Array(10).fill(70));
  assert.deepEqual(perClass(t, 'calib'), new Array(10).fill(10));
  assert.deepEqual(perClass(t, 'test'), new Array(10).fill(20));
  assert.ok([...tr!, ...ca!].every((k) => k.startsWith('train/')));
  assert.ok(te!.every((k) => k.startsWith('test/')));
  // Labels agree with the dataset's own labels through classIndices.
  t.splits.train.examples.forEach((e, i) => assert.equal(t.classIndices[t.splits.train.labels[i]!], e.label));
});

test('no cap: every image is used; the official test set whole', async () => {
  const t = await openTask('fashion-mnist[8,9]');
  assert.deepEqual(perClass(t, 'test'), [1000, 1000]);
  assert.equal(perClass(t, 'train')[0]! + perClass(t, 'calib')[0]!, 6000);
  assert.deepEqual(perClass(t, 'calib'), [750, 750]);
});

test('same seed gives identical splits; another seed different ones', async () => {
  const a = keysOf(await openTask('digits', { cap: 40, seed: 1 }));
  const b = keysOf(await openTask('digits', { cap: 40, seed: 1 }));
  const c = keysOf(await openTask('digits', { cap: 40, seed: 2 }));
  assert.deepEqual(a, b);
  assert.notDeepEqual(a[0], c[0]);
  assert.notDeepEqual(a[2], c[2]);
});

test('pooled dataset (digits): fractions per class, all from one pool, custom fractions respected', async () => {
  const t = await openTask('digits[0-2]', { cap: 50, fractions: { train: 0.5, calib: 0.2, test: 0.3 } });
  assert.deepEqual(perClass(t, 'train'), [25, 25, 25]);
  assert.deepEqual(perClass(t, 'calib'), [10, 10, 10]);
  assert.deepEqual(perClass(t, 'test'), [15, 15, 15]);
  const all = keysOf(t).flat();
  assert.equal(new Set(all).size, 150);
});

test('class-split tasks of one dataset are disjoint; a class gets the same images in every task selecting it', async () => {
  const a = await openTask('fashion-mnist[0-4]', { cap: 30 });
  const b = await openTask('fashion-mnist[5-9]', { cap: 30 });
  const ka = new Set(keysOf(a).flat());
  assert.ok(
    keysOf(b)
      .flat()
      .every((k) => !ka.has(k)),
  );
  assert.deepEqual(a.classes, ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat']);
  const whole = await openTask('fashion-mnist', { cap: 30 });
  const cls2 = (t: Task) => t.splits.test.examples.filter((e) => e.label === 2).map((e) => e.key);
  assert.deepEqual(cls2(a), cls2(whole));
  const reordered = await openTask('fashion-mnist[4,2]', { cap: 30 });
  assert.deepEqual(reordered.classes, ['Coat', 'Pullover']);
  assert.equal(reordered.id, 'fashion-mnist[4,2]');
  assert.deepEqual(reordered.splits.train.labels.slice(0, 1), Int32Array.from([0]));
});

test('bad tasks: 1-class, unknown dataset, bad options, each error names what is wrong', async () => {
  await assert.rejects(
    openTask('mnist[3]'),
    (e: unknown) => e instanceof DataError && /task 'mnist\[3\]' has 1 class \('3'\)/.test(e.message),
  );
  await assert.rejects(
    openTask('cifar100'),
    (e: unknown) =>
      e instanceof DataError && /unknown dataset 'cifar100'/.test(e.message) && /folder:<path>/.test(e.fix ?? ''),
  );
  await assert.rejects(openTask('mnist', { cap: 2 }), /option cap must be an integer >= 3/);
  await assert.rejects(openTask('mnist', { seed: -1 }), /option seed/);
  await assert.rejects(
    openTask('mnist', { fractions: { train: 0.5, calib: 0.1, test: 0.1 } }),
    /option fractions .* sum to 1/,
  );
});
