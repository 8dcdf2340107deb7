import { test } from 'node:test';
import assert from 'node:assert/strict';
import { liveTensors, randn, tensor } from '../../src/engine/index.js';
import { GraphBuilder, restoreFrom, setMask, type Graph } from '../../src/graph/index.js';
import { maskSummary, shuffleMasks } from '../../src/prune/index.js';

function tiny(): Graph {
  const b = new GraphBuilder();
  b.param('c.weight', randn([4, 3, 3, 3]), 'weight');
  b.param('fc.weight', randn([2, 4]), 'weight');
  const f = b.op('flatten', [b.op('globalavgpool', [b.op('conv2d', ['x', 'c.weight'], { padding: 1 }, 'c')])]);
  const out = b.op('linear', [f, 'fc.weight'], {}, 'fc');
  return b.build({
    name: 't',
    inputs: [{ name: 'x', shape: [null, 3, 8, 8] }],
    outputs: [out],
    featureTap: f,
    preprocessing: { size: [8, 8], range: [0, 1] },
  });
}

const bits = (g: Graph, n: string) => Array.from(g.masks.get(n)!.toArray() as number[]);

test("shuffled masks keep each tensor's density, move positions, and are seeded; restore and summaries leak nothing", () => {
  const g = tiny();
  const dense = tiny();
  const m = tensor(
    Float32Array.from({ length: 108 }, (_, i) => (i < 40 ? 1 : 0)),
    [4, 3, 3, 3],
  );
  setMask(g, 'c.weight', m);
  m.dispose();
  const before = bits(g, 'c.weight');
  const live = liveTensors();
  for (let i = 0; i < 3; i++) {
    shuffleMasks(g, 1);
    maskSummary(g);
  }
  assert.equal(liveTensors(), live, 'live-tensor count is flat');
  const a = bits(g, 'c.weight');
  assert.equal(
    a.reduce((x, y) => x + y),
    40,
  );
  assert.notDeepEqual(a, before);
  const s = maskSummary(g);
  assert.deepEqual(s.densities, [
    { tensor: 'c.weight', numel: 108, kept: 40 },
    { tensor: 'fc.weight', numel: 8, kept: 8 },
  ]);
  assert.equal(s.achieved, 1 - 48 / 116);
  // Same seed from the same mask → same permutation.
  const g2 = tiny();
  const m2 = tensor(Float32Array.from(before), [4, 3, 3, 3]);
  setMask(g2, 'c.weight', m2);
  m2.dispose();
  for (let i = 0; i < 3; i++) shuffleMasks(g2, 1);
  assert.deepEqual(bits(g2, 'c.weight'), a);
  restoreFrom(g, dense);
  assert.equal(g.masks.size, 0);
  assert.deepEqual(g.params.get('c.weight')!.tensor.toArray(), dense.params.get('c.weight')!.tensor.toArray());
});
