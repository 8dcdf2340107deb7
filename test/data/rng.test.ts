import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hashString, mulberry32, shuffled } from '../../src/data/rng.js';

test('hashString is 32-bit FNV-1a (published test vectors)', () => {
  assert.equal(hashString(''), 0x811c9dc5);
  assert.equal(hashString('a'), 0xe40c292c);
  assert.equal(hashString('foobar'), 0xbf9cf968);
});

test('mulberry32: same seed same stream, in [0, 1), roughly uniform; shuffled is a permutation', () => {
  const a = mulberry32(42);
  const b = mulberry32(42);
  const xs = Array.from({ length: 10000 }, () => a());
  assert.deepEqual(
    xs.slice(0, 100),
    Array.from({ length: 100 }, () => b()),
  );
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  assert.ok(Math.abs(mean - 0.5) < 0.02, `mean ${mean}`);
  const base = Array.from({ length: 50 }, (_, i) => i);
  const p = shuffled(base, mulberry32(1));
  assert.deepEqual(
    [...p].sort((u, v) => u - v),
    base,
  );
  assert.notDeepEqual(p, base);
  assert.deepEqual(shuffled(base, mulberry32(1)), p);
  assert.notDeepEqual(shuffled(base, mulberry32(2)), p);
});
