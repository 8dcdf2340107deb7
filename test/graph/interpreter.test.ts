import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  grad,
  liveTensors,
  manualSeed,
  nn,
  noGrad,
  ones,
  randn,
  scope,
  tensor,
  zeros,
  type Tensor,
} from '../../src/engine/index.js';
import { forward } from '../../src/graph/interpreter.js';
import type { Graph, Node } from '../../src/graph/ir.js';
import { UnsupportedOpError } from '../../src/graph/errors.js';
import {
  clearMasks,
  countParams,
  disposeGraph,
  makeParam,
  prunableParams,
  setMask,
  toDType,
  trainableParams,
} from '../../src/graph/params.js';
import { expectClose } from '../helpers/check.js';

const node = (name: string, op: string, inputs: string[], attrs: Node['attrs'] = {}, outputs = [name]): Node => ({
  name,
  op,
  inputs,
  outputs,
  attrs,
});

/** conv → bn → relu → (identity) → gap → flatten → linear head, plus a node after the head that no op row knows. */
function tinyNet(): Graph {
  manualSeed(1);
  const params = [
    makeParam('conv.weight', randn([4, 3, 3, 3]).mul(0.3), 'weight'),
    makeParam('bn.weight', ones([4]), 'norm'),
    makeParam('bn.bias', zeros([4]), 'norm'),
    makeParam('bn.running_mean', randn([4]).mul(0.1), 'buffer'),
    makeParam('bn.running_var', ones([4]).mul(1.5), 'buffer'),
    makeParam('fc.weight', randn([2, 4]), 'head'),
    makeParam('fc.bias', zeros([2]), 'bias'),
  ];
  return {
    name: 'tiny',
    inputs: [{ name: 'x', shape: [null, 3, null, null] }],
    outputs: ['logits'],
    nodes: [
      node('conv', 'conv2d', ['x', 'conv.weight'], { padding: 1 }),
      node('bn', 'batchnorm', ['conv', 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var']),
      node('relu', 'relu', ['bn']),
      node('same', 'identity', ['relu']),
      node('gap', 'globalavgpool', ['same']),
      node('feat', 'flatten', ['gap']),
      node('logits', 'linear', ['feat', 'fc.weight', 'fc.bias']),
      node('after', 'frobnicate', ['logits']),
    ],
    params: new Map(params.map((p) => [p.name, p])),
    constants: new Map(),
    masks: new Map(),
    featureTap: 'feat',
    preprocessing: { size: [8, 8], range: [0, 1] },
    meta: {},
  };
}

function manual(g: Graph, x: Tensor, w: Tensor): Tensor {
  const p = (n: string) => g.params.get(n)!.tensor;
  const h = nn.relu(
    nn.batchNorm(nn.conv2d(x, w, null, { padding: 1 }), {
      weight: p('bn.weight'),
      bias: p('bn.bias'),
      runningMean: p('bn.running_mean'),
      runningVar: p('bn.running_var'),
      training: false,
    }),
  );
  return nn.linear(h.mean([2, 3]), p('fc.weight'), p('fc.bias'));
}

test('forward matches the composed engine ops, stops at the requested values, frees its intermediates', () => {
  const g = tinyNet();
  scope(() => {
    const x = randn([2, 3, 8, 8]);
    const before = liveTensors();
    const r = forward(g, x, { mode: 'eval', taps: ['feat'] });
    assert.equal(liveTensors(), before + 2, 'only the logits and the tap survive');
    expectClose(r.outputs[0]!, manual(g, x, g.params.get('conv.weight')!.tensor), { rtol: 1e-5, atol: 1e-6 });
    assert.deepEqual(r.taps.get('feat')!.shape, [2, 4]);
    assert.equal(r.outputs[0]!.requiresGrad, false, 'eval records no autograd graph');
    // Batch size and resolution are free.
    assert.deepEqual(forward(g, randn([1, 3, 13, 5]), { mode: 'eval' }).outputs[0]!.shape, [1, 2]);
  });
  disposeGraph(g);
});

test('an unknown op fails with its name, the node and the supported ops; bad input shapes are named', () => {
  const g = tinyNet();
  scope(() => {
    assert.throws(
      () => forward(g, randn([1, 3, 8, 8]), { mode: 'eval', outputs: ['after'] }),
      (e: unknown) =>
        e instanceof UnsupportedOpError &&
        /frobnicate/.test(e.message) &&
        /'after'/.test(e.message) &&
        /conv2d/.test(e.message),
    );
    assert.throws(() => forward(g, randn([1, 4, 8, 8]), { mode: 'eval' }), /input 'x'.*\[\?, 3, \?, \?\]/);
    assert.throws(() => forward(g, randn([1, 3, 8, 8]), { mode: 'eval', taps: ['nope'] }), /no value 'nope'/);
  });
  disposeGraph(g);
});

test('masks enter the forward pass as W ⊙ c and masked weights get zero gradient', () => {
  const g = tinyNet();
  scope(() => {
    const w = g.params.get('conv.weight')!.tensor;
    const c = randn(w.shape).gt(0).float();
    setMask(g, 'conv.weight', c);
    const x = randn([2, 3, 8, 8]);
    const y = forward(g, x, { mode: 'eval-bn' }).outputs[0]!;
    expectClose(y, manual(g, x, w.mul(c)), { rtol: 1e-5, atol: 1e-6 });
    const [gw] = grad(y.sum(), [w]);
    assert.equal(gw!.mul(c.neg().add(1)).abs().sum().item(), 0);
    assert.ok(gw!.abs().sum().item() > 0);
    clearMasks(g);
    assert.equal(g.masks.size, 0);
  });
  disposeGraph(g);
});

test('train mode uses batch statistics and updates running statistics; eval-bn does not', () => {
  const g = tinyNet();
  scope(() => {
    const rm = g.params.get('bn.running_mean')!.tensor;
    const r0 = rm.toArray();
    const x = randn([4, 3, 8, 8]);
    const evalBn = forward(g, x, { mode: 'eval-bn' }).outputs[0]!;
    assert.deepEqual(rm.toArray(), r0);
    expectClose(evalBn, forward(g, x, { mode: 'eval' }).outputs[0]!, { rtol: 1e-6 });
    assert.ok(evalBn.requiresGrad);
    forward(g, x, { mode: 'train' });
    assert.notDeepEqual(rm.toArray(), r0);
  });
  disposeGraph(g);
});

test('param helpers: default prunable rule, counts, float64 conversion, mask shape check', () => {
  const g = tinyNet();
  assert.deepEqual(
    prunableParams(g).map((p) => p.name),
    ['conv.weight'],
  );
  assert.ok(!trainableParams(g).some((p) => p.role === 'buffer'));
  assert.deepEqual(countParams(g), {
    totalParameters: 108 + 16 + 8 + 2,
    trainableParameters: 108 + 8 + 8 + 2,
    prunableParameters: 108,
  });
  toDType(g, 'float64');
  assert.equal(g.params.get('bn.running_var')!.tensor.dtype, 'float64');
  assert.ok(g.params.get('conv.weight')!.tensor.requiresGrad);
  scope(() => {
    assert.equal(forward(g, randn([1, 3, 8, 8], { dtype: 'float64' }), { mode: 'eval' }).outputs[0]!.dtype, 'float64');
    assert.throws(
      () => setMask(g, 'conv.weight', ones([4, 3, 3])),
      /mask for 'conv.weight'.*\[4, 3, 3\].*\[4, 3, 3, 3\]/,
    );
    assert.throws(() => setMask(g, 'nope', ones([1])), /no parameter 'nope'/);
    void tensor;
  });
  disposeGraph(g);
});

test('a training loop keeps the live-tensor count flat (intermediates freed, masks and grads scoped)', () => {
  const g = tinyNet();
  setMask(g, 'conv.weight', ones([4, 3, 3, 3]));
  const w = g.params.get('conv.weight')!.tensor;
  const counts: number[] = [];
  for (let i = 0; i < 4; i++) {
    scope(() => {
      const y = forward(g, randn([2, 3, 8, 8]), { mode: 'train', taps: ['feat'] }).outputs[0]!;
      const [gw] = grad(y.square().mean(), [w]);
      noGrad(() => w.add_(gw!, -0.01));
    });
    counts.push(liveTensors());
  }
  assert.deepEqual(
    counts,
    counts.map(() => counts[0]),
    `live tensors per step: ${counts.join(', ')}`,
  );
  disposeGraph(g);
});

test('memory format: a conv net runs channels-last under auto, NCHW under nchw; same logits and gradients', () => {
  const g = tinyNet();
  g.nodes.pop(); // 'after' has no op row
  manualSeed(7);
  const x = randn([2, 3, 8, 8]);
  const run = (memoryFormat: 'auto' | 'nchw') =>
    scope(() => {
      const params = trainableParams(g).map((p) => p.tensor.requiresGrad_(true));
      const r = forward(g, x, { mode: 'train', taps: ['conv'], memoryFormat });
      const conv = r.taps.get('conv')!;
      const grads = grad(r.outputs[0]!.square().sum(), params) as Tensor[];
      for (const p of params) p.requiresGrad_(false);
      return { layout: conv.isChannelsLast, logits: r.outputs[0]!.detach(), grads };
    });
  const cl = run('auto');
  const nchw = run('nchw');
  assert.equal(cl.layout, true, 'auto: the conv output is channels-last');
  assert.equal(nchw.layout, false, 'nchw: the conv output is NCHW');
  expectClose(cl.logits, nchw.logits, { rtol: 1e-5, atol: 1e-6 });
  cl.grads.forEach((gr, i) => expectClose(gr, nchw.grads[i]!, { rtol: 1e-4, atol: 1e-6 }));
  // The caller's input keeps its own layout; a graph without a convolution never gets a channels-last copy.
  assert.equal(x.isChannelsLast, false);
  const noConv: Graph = {
    ...g,
    nodes: [node('act', 'relu', ['x']), node('gap', 'globalavgpool', ['act']), node('feat', 'flatten', ['gap'])],
    outputs: ['feat'],
  };
  const layout = (memoryFormat?: 'channels-last') =>
    scope(() => forward(noConv, x, { mode: 'eval', taps: ['act'], memoryFormat }).taps.get('act')!.isChannelsLast);
  assert.equal(layout(), false);
  assert.equal(layout('channels-last'), true, 'forced: every 4-D input');
  disposeGraph(g);
});
