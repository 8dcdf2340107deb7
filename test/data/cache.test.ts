import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { openTask } from '../../src/data/task.js';
import { loadSplits, loadSplit } from '../../src/data/load.js';
import { cacheDir, classFile, readClassFile, writeClassFile } from '../../src/data/cache.js';
import { u8, useTempCache } from './env.js';

const root = useTempCache();

test('cold load decodes and writes one file per class under $TAPIR_CACHE; warm load reads identical bytes', async () => {
  const t = await openTask('mnist[0-2]', { cap: 5 });
  const cold = await loadSplits(t, [16, 16]);
  assert.equal(cold.stats.decoded, 15);
  assert.equal(cold.stats.cached, 0);
  const dir = cacheDir(t.dataset, [16, 16]);
  assert.ok(dir.startsWith(join(root, 'data', 'mnist', '16x16-v')));
  assert.deepEqual(readdirSync(dir).sort(), ['class-0.bin', 'class-1.bin', 'class-2.bin']);
  const warm = await loadSplits(t, [16, 16]);
  assert.equal(warm.stats.decoded, 0);
  assert.equal(warm.stats.cached, 15);
  for (const s of ['train', 'calib', 'test'] as const) {
    assert.deepEqual(warm.sets[s]!.images, cold.sets[s]!.images);
    assert.deepEqual(warm.sets[s]!.labels, cold.sets[s]!.labels);
  }
  // Another resolution is another cache entry.
  const other = await loadSplit(t, 'test', [20, 20]);
  assert.equal(other.images.length, other.n * 3 * 20 * 20);
  assert.ok(existsSync(cacheDir(t.dataset, [20, 20])));
});

test('a corrupt or truncated cache file is detected by its checksum, reported and rebuilt', async () => {
  const t = await openTask('mnist[0-2]', { cap: 5 });
  const good = (await loadSplits(t, [16, 16])).sets;
  const f1 = classFile(t.dataset, [16, 16], 1);
  const bytes = u8(readFileSync(f1));
  bytes[bytes.length - 7]! ^= 0xff;
  writeFileSync(f1, bytes);
  const f2 = classFile(t.dataset, [16, 16], 2);
  writeFileSync(f2, u8(readFileSync(f2)).subarray(0, 100));
  const again = await loadSplits(t, [16, 16]);
  assert.deepEqual(again.stats.rebuilt.sort(), [f1, f2]);
  assert.equal(again.stats.decoded, 10);
  assert.deepEqual(again.sets.train!.images, good.train!.images);
  const healed = await loadSplits(t, [16, 16]);
  assert.deepEqual(healed.stats.rebuilt, []);
  assert.equal(healed.stats.decoded, 0);
  assert.ok(
    readdirSync(cacheDir(t.dataset, [16, 16])).every((f) => !f.endsWith('.tmp')),
    'no temp files left',
  );
});

test('class files round-trip and are refused for another dataset, class or size', async () => {
  const p = join(root, 'x', 'c.bin');
  const meta = { dataset: 'd', cls: 'k', size: [2, 1] as const };
  const img = Uint8Array.from([1, 2, 3, 4, 5, 6]);
  await writeClassFile(p, meta, { images: new Map([['a', img]]), bad: new Map([['b', 'corrupt png']]) });
  const back = await readClassFile(p, meta);
  assert.ok(typeof back !== 'string');
  assert.deepEqual(Array.from(back.images.get('a')!), [1, 2, 3, 4, 5, 6]);
  assert.equal(back.bad.get('b'), 'corrupt png');
  assert.equal(await readClassFile(p, { ...meta, cls: 'other' }), 'corrupt');
  assert.equal(await readClassFile(p, { ...meta, size: [1, 2] }), 'corrupt');
  assert.equal(await readClassFile(join(root, 'nope.bin'), meta), 'missing');
});
