/** Bootstrap intervals (src/study/bootstrap.ts) against cases with known answers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bootstrapInterval,
  pairsInterval,
  retainedInterval,
  STATISTICS,
  type Replicate,
} from '../../src/study/bootstrap.js';

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

test('change after fine-tuning: paired on the same images, a pure gain has an interval above zero', () => {
  // Dense right on all 200; zero-shot right on the first 100; fine-tuned right on the first 120 (a superset).
  const r = bootstrapInterval(
    [[{ task: 'a', pruned: bits(200, 100), dense: bits(200, 200), other: bits(200, 120) }]],
    STATISTICS.change,
    {
      draws: 2000,
      seed: 2,
    },
  );
  assert.equal(r.value, 0.1);
  // Each draw's change is the share of drawn images among the 20 that flipped: binomial(200, 0.1) / 200.
  assert.ok(r.lo >= 0.05 && r.lo <= 0.07, `lo ${r.lo}`);
  assert.ok(r.hi >= 0.13 && r.hi <= 0.15, `hi ${r.hi}`);
  // Identical results before and after: exactly zero whatever the draw.
  const z = bootstrapInterval(
    [[{ task: 'a', pruned: bits(50, 20), dense: bits(50, 40), other: bits(50, 20) }]],
    STATISTICS.change,
  );
  assert.deepEqual(z, { value: 0, lo: 0, hi: 0 });
  assert.throws(() => bootstrapInterval([rep('a', 10, 5, 5)], STATISTICS.change), /no second result/);
});

test('accuracy gap of a control: difference of accuracies, independent of the dense reference', () => {
  const r = bootstrapInterval(
    [[{ task: 'a', pruned: bits(100, 80), dense: bits(100, 0), other: bits(100, 30) }]],
    STATISTICS.accuracyGap,
    {
      draws: 500,
    },
  );
  assert.equal(r.value, -0.5);
  assert.ok(r.hi < -0.35 && r.lo > -0.65, `[${r.lo}, ${r.hi}]`);
});

test('pairs interval: the mean over pairs, and an interval from resampling the items', () => {
  // Alignment 1 between a and b, 0 for every pair with c: the mean over the 3 pairs is 1/3.
  const v = (x: string, y: string) => (x !== 'c' && y !== 'c' ? 1 : 0);
  const r = pairsInterval(['a', 'b', 'c'], v, { draws: 2000 })!;
  assert.ok(Math.abs(r.value - 1 / 3) < 1e-12);
  // Draws holding only a and b give 1, draws holding c with one other give 0: both ends are reachable.
  assert.equal(r.lo, 0);
  assert.equal(r.hi, 1);
  // A constant value has a zero-width interval; no pair with a number gives null.
  assert.deepEqual(
    pairsInterval(['a', 'b', 'c', 'd'], () => 0.25, { draws: 100 }),
    { value: 0.25, lo: 0.25, hi: 0.25 },
  );
  assert.equal(
    pairsInterval(['a'], () => 1),
    null,
  );
  assert.equal(
    pairsInterval(['a', 'b'], () => null),
    null,
  );
});
