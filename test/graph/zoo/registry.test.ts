/**
 * Zoo: specs, head/feature tap of nsfwjs models, smaller resolutions, random: control, built-in names, and a
 * training step through every kind of graph (loss goes down: gradients reach the weights through each op).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { grad, manualSeed, nn, noGrad, rand, randint, scope, type Tensor } from '../../../src/engine/index.js';
import { forward } from '../../../src/graph/interpreter.js';
import type { Graph } from '../../../src/graph/ir.js';
import { disposeGraph, prunableParams, trainableParams } from '../../../src/graph/params.js';
import { buildVit, loadModel, makeZoo, parseModelSpec, ZOO } from '../../../src/graph/zoo/index.js';

/** Two normalised gradient steps of length `lr` on one small batch; returns the losses before and after. */
function trainSteps(g: Graph, size: number, lr: number): [number, number] {
  manualSeed(3);
  const x = rand([4, 3, size, size]);
  const classes = scope(() => forward(g, x.index(0, 0).unsqueeze(0), { mode: 'eval' }).outputs[0]!.shape[1]!);
  const y = randint(0, classes, [4]);
  const params = trainableParams(g).map((p) => p.tensor);
  const losses: number[] = [];
  for (let step = 0; step < 3; step++)
    scope(() => {
      const out = forward(g, x, { mode: 'eval-bn' }).outputs[0]!;
      const loss = nn.crossEntropy(out, y);
      losses.push(loss.item());
      if (step === 2) return;
      const gs = grad(loss, params, { allowUnused: true });
      // Normalised gradient step: a fixed small move along −∇L lowers the loss whatever the gradient's scale.
      const norm = Math.sqrt(gs.reduce((n, t) => n + (t ? t.square().sum().item() : 0), 0));
      noGrad(() =>
        params.forEach((p, i) => {
          if (gs[i]) p.add_(gs[i]!, -lr / norm);
        }),
      );
    });
  x.dispose();
  y.dispose();
  return [losses[0]!, losses[2]!];
}

test('model specs parse; unknown ids and duplicate registrations are clear errors', () => {
  assert.deepEqual(parseModelSpec('random:mobilenet_v2@96'), { id: 'mobilenet_v2', random: true, size: 96 });
  assert.deepEqual(parseModelSpec('resnet18'), { id: 'resnet18', random: false });
  assert.throws(() => parseModelSpec('mobilenet_v3'), /unknown model 'mobilenet_v3'.*mobilenet_v2/);
  const e = ZOO.get('resnet18')!;
  assert.throws(() => makeZoo([e, e]), /duplicate id 'resnet18'/);
});

test('mobilenet_v2@64: pooled-feature tap, NSFW dense head not prunable, trains (loss drops), random: differs', async () => {
  const g = await loadModel('mobilenet_v2@64', { cache: true });
  assert.equal(g.featureTap, 'flatten_1');
  assert.deepEqual(g.preprocessing, { size: [64, 64], range: [0, 1] });
  for (const n of ['dense_1.weight', 'dense_2.weight', 'dense_3.weight']) assert.equal(g.params.get(n)!.role, 'head');
  assert.ok(prunableParams(g).every((p) => !p.name.startsWith('dense_')));
  assert.ok(prunableParams(g).some((p) => p.name === 'Conv_1.weight'));
  scope(() => {
    const r = forward(g, rand([2, 3, 64, 64]), { mode: 'eval', taps: [g.featureTap] });
    assert.deepEqual(r.taps.get('flatten_1')!.shape, [2, 1280]);
    assert.deepEqual(r.outputs[0]!.shape, [2, 5]);
  });
  const [before, after] = trainSteps(g, 64, 0.05);
  assert.ok(after < before, `loss ${before} → ${after}`);
  const rnd = await loadModel('random:mobilenet_v2@64', { cache: true, seed: 1 });
  const a = rnd.params.get('Conv1.weight')!.tensor;
  assert.deepEqual(a.shape, g.params.get('Conv1.weight')!.tensor.shape);
  assert.notDeepEqual(a.toArray().slice(0, 5), g.params.get('Conv1.weight')!.tensor.toArray().slice(0, 5));
  assert.deepEqual((rnd.meta.randomInit as { seed: number }).seed, 1);
  disposeGraph(g);
  disposeGraph(rnd);
});

test('mobilenet_v2_140 and inception_v3 rebuild at small inputs with the pooled features as tap', async () => {
  const m = await loadModel('mobilenet_v2_140@64', { cache: true });
  const inc = await loadModel('inception_v3@75', { cache: true });
  scope(() => {
    assert.deepEqual(
      forward(m, rand([1, 3, 64, 64]), { mode: 'eval', taps: [m.featureTap] }).taps.get(m.featureTap)!.shape,
      [1, 1792],
    );
    assert.deepEqual(
      forward(inc, rand([1, 3, 75, 75]), { mode: 'eval', taps: [inc.featureTap] }).taps.get(inc.featureTap)!.shape,
      [1, 2048],
    );
  });
  assert.ok(!prunableParams(m).some((p) => p.role === 'head'));
  disposeGraph(m);
  disposeGraph(inc);
});

test('built-ins: torchvision/timm parameter names and counts; resnet18 and a 2-block ViT train', async () => {
  const r18 = await loadModel('resnet18@32');
  assert.equal(
    [...r18.params.values()].filter((p) => p.trainable).reduce((n, p) => n + p.tensor.numel, 0),
    11689512,
    'torchvision resnet18 parameter count',
  );
  assert.ok(r18.params.has('layer2.0.downsample.0.weight') && r18.params.get('fc.weight')!.role === 'head');
  const [b0, b1] = trainSteps(r18, 32, 0.05);
  assert.ok(b1 < b0, `resnet18 loss ${b0} → ${b1}`);
  disposeGraph(r18);
  const r50 = await loadModel('resnet50@32');
  assert.equal(
    trainableParams(r50).reduce((n, p) => n + p.tensor.numel, 0),
    25557032,
    'torchvision resnet50 parameter count',
  );
  disposeGraph(r50);
  const vt = await loadModel('vit_tiny@32');
  assert.equal(
    trainableParams(vt).reduce((n, p) => n + p.tensor.numel, 0) + (197 - 5) * 192,
    5717416,
    'timm vit_tiny count (pos_embed sized for 32 px)',
  );
  assert.ok(
    vt.params.get('blocks.0.attn.qkv.weight')!.prunable &&
      !vt.params.get('pos_embed')!.prunable &&
      !vt.params.get('head.weight')!.prunable,
  );
  disposeGraph(vt);
  const small = buildVit({ variant: 'vit_tiny', size: 32, depth: 2, numClasses: 3 });
  const [v0, v1] = trainSteps(small, 32, 0.05);
  assert.ok(v1 < v0, `vit loss ${v0} → ${v1}`);
  disposeGraph(small);
  void (null as unknown as Tensor);
});
