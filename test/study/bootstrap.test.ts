/** Bootstrap intervals (src/study/bootstrap.ts) against cases with known answers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { retainedInterval, type Replicate } from '../../src/study/bootstrap.js';

const bits = (n: number, ones: number) => Uint8Array.from({ length: n }, (_, i) => (i < ones ? 1 : 0));
const rep = (task: string, n: number, pruned: number, dense: number): Replicate => [
  { task, pruned: bits(n, pruned), dense: bits(n, dense) },
];

test('identical pruned and dense results: retained 1 with a zero-width interval', () => {
  const r = retainedInterval([rep('a', 50, 30, 30)], { draws: 200 });
  assert.deepEqual(r, { value: 1, lo: 1, hi: 1 });
});

test('one task, dense always right: the interval is the binomial one of the pruned accuracy', () => {
  // p = 0.5, n = 400: normal approximation 0.5 ± 1.96 · 0.025 = [0.451, 0.549].
  const r = retainedInterval([rep('a', 400, 200, 400)], { draws: 4000, seed: 1 });
  assert.equal(r.value, 0.5);
  assert.ok(Math.abs(r.lo - 0.451) < 0.01, `lo ${r.lo}`);
  assert.ok(Math.abs(r.hi - 0.549) < 0.01, `hi ${r.hi}`);
});

test('paired resampling: pruned right exactly where dense is right gives retained 1 whatever the draw', () => {
  // Independent draws for pruned and dense would scatter around 1; the same images for both cannot.
  const r = retainedInterval([rep('a', 100, 60, 60)], { draws: 300 });
  assert.equal(r.lo, 1);
  assert.equal(r.hi, 1);
});

test('replicates are resampled too: two seeds at 0.25 and 0.75 give a mean of 0.5 and an interval reaching both', () => {
  const r = retainedInterval([rep('a', 2000, 500, 2000), rep('a', 2000, 1500, 2000)], { draws: 2000, seed: 3 });
  assert.equal(r.value, 0.5);
  assert.ok(r.lo < 0.27 && r.lo > 0.23, `lo ${r.lo}`);
  assert.ok(r.hi > 0.73 && r.hi < 0.77, `hi ${r.hi}`);
});

test('mean over tasks: each task weighs the same whatever its test-set size', () => {
  const r = retainedInterval([[...rep('a', 100, 100, 100), ...rep('b', 1000, 0, 1000)]], { draws: 100 });
  assert.equal(r.value, 0.5);
});

test('deterministic by seed; replicates with different tasks are refused', () => {
  const reps = [rep('a', 80, 40, 70)];
  assert.deepEqual(retainedInterval(reps, { seed: 5 }), retainedInterval(reps, { seed: 5 }));
  assert.notDeepEqual(retainedInterval(reps, { seed: 5 }), retainedInterval(reps, { seed: 6 }));
  assert.throws(() => retainedInterval([rep('a', 10, 5, 5), rep('b', 10, 5, 5)]), /different tasks/);
  assert.throws(() => retainedInterval([]), /no replicates/);
});
