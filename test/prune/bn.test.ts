/** BN repair after masking: none / reestimate / match-dense on tiny float64 conv+BN nets. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cat,
  liveTensors,
  manualSeed,
  ones,
  rand,
  randint,
  randn,
  scope,
  tensor,
  zeros,
  type Tensor,
} from '../../src/engine/index.js';
import { disposeGraph, forward, GraphBuilder, setMask, type Graph } from '../../src/graph/index.js';
import { denseCopy, reestimateBatchNorm, repairBatchNorm, type BnRepair } from '../../src/prune/bn.js';
import { PruneError } from '../../src/prune/errors.js';
import type { CalibBatch } from '../../src/prune/loss.js';
import { disposeCase, makeCase } from '../cases/index.js';
import { expectClose } from '../helpers/check.js';

const f64 = { dtype: 'float64' } as const;
const r = (shape: number[], s = 0.5): Tensor => randn(shape, f64).mul(s);
const BNS = ['bn1', 'bn2', 'bn3', 'bn4'];

/**
 * conv1→bn1→relu, then two parallel branches conv2→bn2 and conv3→bn3 (bn3 without γ/β in the IR) added and
 * relu'd, pooled, then a 2-D bn4 whose γ is a constant, then a linear head. BN levels: bn1 1, bn2 = bn3 2, bn4 3.
 */
function net(): Graph {
  const b = new GraphBuilder();
  b.param('conv1.weight', r([3, 2, 3, 3]), 'weight');
  b.param('conv2.weight', r([4, 3, 3, 3]), 'weight');
  b.param('conv3.weight', r([4, 3, 1, 1]), 'weight');
  b.param('fc.weight', r([3, 4]), 'weight');
  const bnParams = (n: string, c: number) => {
    b.param(`${n}.weight`, ones([c], f64).add(r([c], 0.1)), 'norm');
    b.param(`${n}.bias`, r([c], 0.1), 'norm');
    b.param(`${n}.running_mean`, r([c], 0.1), 'buffer');
    b.param(`${n}.running_var`, rand([c], f64).add(0.5), 'buffer');
  };
  bnParams('bn1', 3);
  bnParams('bn2', 4);
  // bn3 had no learned γ/β in its source model (TF.js scale: false, center: false): fixed ones / zeros, as importers give it.
  b.param('bn3.weight', ones([4], f64), 'norm', { trainable: false });
  b.param('bn3.bias', zeros([4], f64), 'norm', { trainable: false });
  b.param('bn3.running_mean', r([4], 0.1), 'buffer');
  b.param('bn3.running_var', rand([4], f64).add(0.5), 'buffer');
  const g4 = b.constant('bn4.gamma', ones([4], f64).mul(1.5));
  b.param('bn4.bias', r([4], 0.1), 'norm');
  b.param('bn4.running_mean', r([4], 0.1), 'buffer');
  b.param('bn4.running_var', rand([4], f64).add(0.5), 'buffer');
  let h = b.op('conv2d', ['x', 'conv1.weight'], { padding: 1 }, 'conv1');
  h = b.op('relu', [
    b.op('batchnorm', [h, 'bn1.weight', 'bn1.bias', 'bn1.running_mean', 'bn1.running_var'], { eps: 1e-5 }, 'bn1'),
  ]);
  const a = b.op(
    'batchnorm',
    [
      b.op('conv2d', [h, 'conv2.weight'], { padding: 1 }, 'conv2'),
      'bn2.weight',
      'bn2.bias',
      'bn2.running_mean',
      'bn2.running_var',
    ],
    { eps: 1e-5 },
    'bn2',
  );
  const s = b.op(
    'batchnorm',
    [b.op('conv2d', [h, 'conv3.weight'], {}, 'conv3'), 'bn3.weight', 'bn3.bias', 'bn3.running_mean', 'bn3.running_var'],
    { eps: 1e-3 },
    'bn3',
  );
  h = b.op('relu', [b.op('add', [a, s])]);
  const f = b.op('flatten', [b.op('globalavgpool', [h])]);
  const n4 = b.op('batchnorm', [f, g4, 'bn4.bias', 'bn4.running_mean', 'bn4.running_var'], { eps: 1e-5 }, 'bn4');
  const out = b.op('linear', [n4, 'fc.weight'], {}, 'fc');
  return b.build({
    name: 'bn-net',
    inputs: [{ name: 'x', shape: [null, 2, 5, 5] }],
    outputs: [out],
    featureTap: n4,
    preprocessing: { size: [5, 5], range: [0, 1] },
  });
}

/** A dense net, a masked copy (conv2 filter 0 emptied: bn2 channel 0 becomes constant) and batches of 3 and 2 images. */
function setup(seed = 1): { dense: Graph; g: Graph; batches: CalibBatch[] } {
  manualSeed(seed);
  const dense = net();
  const g = denseCopy(dense);
  for (const n of ['conv1.weight', 'conv2.weight', 'conv3.weight', 'fc.weight']) {
    scope(() => {
      const m = rand(g.params.get(n)!.tensor.shape, f64).gt(0.4).to('float64');
      if (n === 'conv2.weight') m.index(0, 0).zero_();
      setMask(g, n, m);
    });
  }
  const batches = [3, 2].map((k) => ({ x: randn([k, 2, 5, 5], f64), y: randint(0, 3, [k]) }));
  return { dense, g, batches };
}

function teardown(...gs: Graph[]): void {
  for (const g of gs) disposeGraph(g);
}

/** Per-channel population mean and variance of every BN output over all batches (cat, then torch mean/var). */
function bnStats(g: Graph, batches: readonly CalibBatch[]): Map<string, { mean: number[]; var: number[] }> {
  return scope(() => {
    const runs = batches.map((b) => forward(g, b.x, { mode: 'eval', taps: BNS, outputs: [] }).taps);
    return new Map(
      BNS.map((n) => {
        const all = cat(
          runs.map((t) => t.get(n)!),
          0,
        );
        const dims = all.ndim === 4 ? [0, 2, 3] : [0];
        return [n, { mean: all.mean(dims).toArray(), var: all.var(dims, false, 0).toArray() }];
      }),
    );
  });
}

const snapshot = (g: Graph) =>
  new Map([
    ...[...g.params].map(([n, p]) => [n, p.tensor.toArray()] as const),
    ...[...g.constants].map(([n, t]) => [n, t.toArray()] as const),
  ]);

for (const how of ['walk', 'levels'] as const)
  test(`match-dense (${how}): every BN output of the masked model gets the dense per-channel mean and variance; the dense model is untouched`, () => {
    const { dense, g, batches } = setup();
    const want = bnStats(dense, batches);
    const before = bnStats(g, batches);
    assert.ok(
      Math.abs(before.get('bn2')!.mean[1]! - want.get('bn2')!.mean[1]!) > 1e-3,
      'masking moved bn2 (the test can fail)',
    );
    const denseBefore = snapshot(dense);
    const res = repairBatchNorm(g, dense, batches, 'match-dense', how);
    assert.deepEqual(res, { mode: 'match-dense', layers: 4, images: 5, degenerate: 1 });
    const got = bnStats(g, batches);
    for (const n of BNS) {
      expectClose(got.get(n)!.mean, want.get(n)!.mean, { rtol: 1e-9, atol: 1e-9 }, `${n} mean`);
      const v = got.get(n)!.var;
      const vd = want.get(n)!.var;
      if (n === 'bn2') {
        // Channel 0 is constant after masking: shifted to the dense mean, not scaled; its variance stays 0.
        assert.ok(Math.abs(v[0]!) < 1e-20, `bn2[0] variance ${v[0]}`);
        expectClose(v.slice(1), vd.slice(1), { rtol: 1e-9, atol: 1e-9 }, 'bn2 var');
      } else expectClose(v, vd, { rtol: 1e-9, atol: 1e-9 }, `${n} var`);
    }
    // The graph is not edited: same nodes and parameters; bn3's fixed γ/β and bn4's constant γ were changed in place.
    assert.equal(JSON.stringify(g.nodes), JSON.stringify(dense.nodes));
    assert.deepEqual([...g.params.keys()], [...dense.params.keys()]);
    assert.notDeepEqual(g.params.get('bn3.weight')!.tensor.toArray(), [1, 1, 1, 1]);
    assert.notDeepEqual(g.constants.get('bn4.gamma')!.toArray(), [1.5, 1.5, 1.5, 1.5]);
    for (const [n, v] of denseBefore)
      assert.deepEqual(v, (dense.params.get(n)?.tensor ?? dense.constants.get(n)!).toArray(), `dense ${n} unchanged`);
    // Running statistics are not touched.
    for (const n of ['bn1', 'bn2', 'bn4'])
      assert.deepEqual(g.params.get(`${n}.running_var`)!.tensor.toArray(), denseBefore.get(`${n}.running_var`));
    teardown(g, dense);
    for (const b of batches) {
      b.x.dispose();
      b.y.dispose();
    }
  });

test('match-dense: the one-pass walk and the per-level passes make the same repair; auto walks when it fits', () => {
  const affine = (how: 'walk' | 'levels' | 'auto') => {
    const { dense, g, batches } = setup(3);
    const before = liveTensors();
    repairBatchNorm(g, dense, batches, 'match-dense', how);
    assert.equal(liveTensors(), before, `${how}: no tensor left behind`);
    const out = [...snapshot(g)].filter(([n]) => /^bn\d\.(weight|bias|gamma)$/.test(n));
    teardown(g, dense);
    for (const b of batches) {
      b.x.dispose();
      b.y.dispose();
    }
    return out;
  };
  const walk = affine('walk');
  const levels = affine('levels');
  assert.equal(walk.length, 8);
  walk.forEach(([n, v], i) => expectClose(v as number[], levels[i]![1] as number[], { rtol: 1e-12, atol: 1e-12 }, n));
  assert.deepEqual(affine('auto'), walk);
});

test('match-dense by hand: one channel, γ 2, β 1 → γ √3, β 9 − 3√3', () => {
  // z = x Wᵀ, W = [1, 1]; the masked model keeps only W[0]. Dense z = [3, 3, 6] (mean 4, var 2), masked z = [1, 3, 5]
  // (mean 3, var 8/3). BN (eps 0, running stats 0/1): y = 2z + 1, so m_d 9, v_d 8, m_p 7, v_p 32/3, s = √3/2.
  const b = new GraphBuilder();
  b.param('fc.weight', tensor([[1, 1]], null, f64), 'weight');
  b.param('bn.weight', tensor([2], null, f64), 'norm');
  b.param('bn.bias', tensor([1], null, f64), 'norm');
  b.param('bn.running_mean', tensor([0], null, f64), 'buffer');
  b.param('bn.running_var', tensor([1], null, f64), 'buffer');
  const y = b.op(
    'batchnorm',
    [b.op('linear', ['x', 'fc.weight'], {}, 'fc'), 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var'],
    { eps: 0 },
    'bn',
  );
  const dense = b.build({
    name: 'hand',
    inputs: [{ name: 'x', shape: [null, 2] }],
    outputs: [y],
    featureTap: y,
    preprocessing: { size: [1, 1], range: [0, 1] },
  });
  const g = denseCopy(dense);
  scope(() => setMask(g, 'fc.weight', tensor([[1, 0]], null, f64)));
  const batches = [
    {
      x: tensor(
        [
          [1, 2],
          [3, 0],
        ],
        null,
        f64,
      ),
      y: tensor([0, 0], null, { dtype: 'int64' }),
    },
    { x: tensor([[5, 1]], null, f64), y: tensor([0], null, { dtype: 'int64' }) },
  ];
  const res = repairBatchNorm(g, dense, batches, 'match-dense');
  assert.deepEqual(res, { mode: 'match-dense', layers: 1, images: 3, degenerate: 0 });
  expectClose(g.params.get('bn.weight')!.tensor, [Math.sqrt(3)], { rtol: 1e-14, atol: 1e-14 });
  expectClose(g.params.get('bn.bias')!.tensor, [9 - 3 * Math.sqrt(3)], { rtol: 1e-14, atol: 1e-14 });
  assert.deepEqual(dense.params.get('bn.weight')!.tensor.toArray(), [2]);
  teardown(g, dense);
  for (const x of batches) {
    x.x.dispose();
    x.y.dispose();
  }
});

test('match-dense on an unmasked copy is the identity; none changes nothing', () => {
  const { dense, g, batches } = setup(2);
  const same = denseCopy(dense);
  const before = snapshot(same);
  assert.deepEqual(repairBatchNorm(same, dense, batches, 'none'), {
    mode: 'none',
    layers: 0,
    images: 0,
    degenerate: 0,
  });
  for (const [n, v] of before)
    assert.deepEqual((same.params.get(n)?.tensor ?? same.constants.get(n)!).toArray(), v, `none: ${n}`);
  assert.deepEqual(repairBatchNorm(g, dense, batches, 'none').layers, 0);
  const res = repairBatchNorm(same, dense, batches, 'match-dense');
  assert.equal(res.degenerate, 0);
  for (const [n, v] of before)
    expectClose(
      (same.params.get(n)?.tensor ?? same.constants.get(n)!).toArray(),
      v,
      { rtol: 1e-12, atol: 1e-12 },
      `identity: ${n}`,
    );
  expectClose(same.params.get('bn3.weight')!.tensor, [1, 1, 1, 1], { rtol: 0, atol: 1e-12 });
  expectClose(same.params.get('bn3.bias')!.tensor, [0, 0, 0, 0], { rtol: 0, atol: 1e-12 });
  teardown(g, dense, same);
  for (const b of batches) {
    b.x.dispose();
    b.y.dispose();
  }
});

test('reestimate is reestimateBatchNorm', () => {
  const { dense, g, batches } = setup(3);
  const other = denseCopy(g);
  for (const [n, m] of g.masks) scope(() => setMask(other, n, m));
  assert.deepEqual(repairBatchNorm(g, dense, batches, 'reestimate'), {
    mode: 'reestimate',
    layers: 4,
    images: 5,
    degenerate: 0,
  });
  assert.equal(reestimateBatchNorm(other, batches), 4);
  for (const [n, p] of g.params) assert.deepEqual(p.tensor.toArray(), other.params.get(n)!.tensor.toArray(), n);
  assert.notDeepEqual(
    g.params.get('bn1.running_mean')!.tensor.toArray(),
    dense.params.get('bn1.running_mean')!.tensor.toArray(),
  );
  teardown(g, dense, other);
  for (const b of batches) {
    b.x.dispose();
    b.y.dispose();
  }
});

test('BN repair: bad input is a clear error; no BN is a no-op; no tensor leaks', () => {
  const { dense, g, batches } = setup(4);
  assert.throws(
    () => repairBatchNorm(g, dense, batches, 'match' as BnRepair),
    (e: unknown) =>
      e instanceof PruneError && /unknown BN repair 'match'/.test(e.message) && /match-dense/.test(e.fix ?? ''),
  );
  assert.throws(
    () => repairBatchNorm(g, g, batches, 'match-dense'),
    /'bn1\.weight' of batchnorm 'bn1' is the same tensor in the pruned and the dense model/,
  );
  const mlp = makeCase('mlp');
  assert.throws(
    () => repairBatchNorm(g, mlp.graph, batches, 'match-dense'),
    /dense model 'mlp' has no batchnorm node 'bn1'/,
  );
  assert.deepEqual(repairBatchNorm(mlp.graph, mlp.graph, mlp.batches, 'match-dense'), {
    mode: 'match-dense',
    layers: 0,
    images: 0,
    degenerate: 0,
  });
  disposeCase(mlp);
  scope(() => {
    const bad = [batches[1]!, { x: batches[0]!.x.maskedFill(batches[0]!.x.gt(1), Number.NaN), y: batches[0]!.y }];
    assert.throws(() => repairBatchNorm(g, dense, bad, 'match-dense'), /calibration batch 1 has \d+ NaN\/Inf/);
  });
  assert.throws(() => repairBatchNorm(g, dense, [], 'match-dense'), /calibration set is empty/);
  // A BN without γ, or whose β another node reads too, cannot be repaired alone: refused, the graph untouched.
  for (const [edit, msg] of [
    [
      (n: Graph) => {
        n.nodes = n.nodes.map((x) =>
          x.name === 'bn3' ? { ...x, inputs: [x.inputs[0]!, '', ...x.inputs.slice(2)] } : x,
        );
      },
      /batchnorm 'bn3' has no γ \(weight\) to rescale through/,
    ],
    [
      (n: Graph) => {
        n.nodes = n.nodes.map((x) =>
          x.name === 'bn3' ? { ...x, inputs: [x.inputs[0]!, x.inputs[1]!, 'bn2.bias', ...x.inputs.slice(3)] } : x,
        );
      },
      /the β \(bias\) 'bn2.bias' of batchnorm 'bn2' is read by 2 nodes/,
    ],
  ] as const) {
    const { dense: d2, g: g2, batches: b2 } = setup(3);
    edit(g2);
    edit(d2);
    const before = JSON.stringify(g2.nodes);
    assert.throws(() => repairBatchNorm(g2, d2, b2, 'match-dense'), msg);
    assert.equal(JSON.stringify(g2.nodes), before);
    teardown(g2, d2);
    for (const b of b2) {
      b.x.dispose();
      b.y.dispose();
    }
  }
  repairBatchNorm(g, dense, batches, 'match-dense');
  const live = liveTensors();
  repairBatchNorm(g, dense, batches, 'match-dense');
  repairBatchNorm(g, dense, batches, 'reestimate');
  assert.equal(liveTensors(), live);
  teardown(g, dense);
  for (const b of batches) {
    b.x.dispose();
    b.y.dispose();
  }
});
