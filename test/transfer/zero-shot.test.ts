import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { liveTensors, scope, tensor } from '../../src/engine/index.js';
import { disposeGraph, forward } from '../../src/graph/index.js';
import { loadSplit, loadSplits, openTask } from '../../src/data/index.js';
import {
  ALPHA_GRID,
  disposeHead,
  extractFeatures,
  FeatureCache,
  selectAlpha,
  fitRidgeHead,
  headLogits,
  modelFingerprint,
  pixelBaseline,
  zeroShot,
} from '../../src/transfer/index.js';
import { expectClose } from '../helpers/check.js';
import { makeFolderTask, maskHalf, tempDir, tinyNet, useTempCache } from './fixtures.js';

useTempCache();
let TASK = '';
before(async () => {
  TASK = await makeFolderTask('zero-shot', 20);
});

const labelsOf = (l: Int32Array) =>
  tensor(
    BigInt64Array.from(l, (v) => BigInt(v)),
    [l.length],
  );

test('features are the tap of a whole-batch eval forward, flattened, independent of the batch size', async () => {
  const g = tinyNet(1);
  const task = await openTask(TASK, { cap: 12 });
  const set = await loadSplit(task, 'train', [16, 16]);
  const f7 = await extractFeatures(g, set, { batchSize: 7 });
  scope(() => {
    const all = scope(() => {
      const imgs = tensor(
        Float32Array.from(set.images, (v) => v / 255),
        [set.n, 3, 16, 16],
      );
      return forward(g, imgs, { mode: 'eval', taps: [g.featureTap], outputs: [] }).taps.get(g.featureTap)!;
    });
    assert.deepEqual(f7.shape, [set.n, 8]);
    expectClose(f7, all, { rtol: 1e-5, atol: 1e-6 }, 'batched features');
  });
  f7.dispose();
  disposeGraph(g);
});

test('dense head on the UNPRUNED model reproduces refit (same accuracy, same predictions)', async () => {
  const g = tinyNet(2);
  const twin = tinyNet(2); // a separate object in the same state: the reference
  const cache = new FeatureCache();
  const opts = { taskOptions: { cap: 20 }, cache, predictions: true, alpha: 0.5 };
  const [dense] = await zeroShot(g, [TASK], { ...opts, head: 'dense', reference: twin });
  const [refit] = await zeroShot(g, [TASK], { ...opts, head: 'refit' });
  assert.equal(dense!.model, dense!.reference, 'same state ⇒ same fingerprint');
  assert.equal(dense!.accuracy, refit!.accuracy);
  assert.deepEqual([...dense!.predictions!], [...refit!.predictions!]);
  assert.equal(dense!.accuracy, dense!.denseAccuracy);
  assert.ok(cache.hits > 0, 'second call reused cached features');
  cache.dispose();
  disposeGraph(g);
  disposeGraph(twin);
});

test('dense head on a pruned model = head fitted on the reference features, applied to the pruned test features', async () => {
  const dense = tinyNet(3);
  const pruned = tinyNet(3);
  maskHalf(pruned);
  assert.notEqual(modelFingerprint(dense), modelFingerprint(pruned), 'masks change the fingerprint');
  const cache = new FeatureCache();
  const before = liveTensors();
  const [row] = await zeroShot(pruned, [TASK], {
    head: 'dense',
    reference: dense,
    taskOptions: { cap: 20 },
    cache,
    predictions: true,
    alpha: 1,
  });
  const [refit] = await zeroShot(pruned, [TASK], {
    head: 'refit',
    reference: dense,
    taskOptions: { cap: 20 },
    cache,
    predictions: true,
    alpha: 1,
  });
  assert.equal(liveTensors() - before, cache.size, 'only the cached feature tensors stay alive');
  const task = await openTask(TASK, { cap: 20 });
  const { sets } = await loadSplits(task, [16, 16], ['train', 'test']);
  const refTrain = await extractFeatures(dense, sets.train!);
  const refTest = await extractFeatures(dense, sets.test!);
  const prTrain = await extractFeatures(pruned, sets.train!);
  const prTest = await extractFeatures(pruned, sets.test!);
  scope(() => {
    const yTr = labelsOf(sets.train!.labels);
    const yTe = labelsOf(sets.test!.labels);
    const h = fitRidgeHead(refTrain, yTr, { numClasses: 3, alpha: 1 });
    const preds = headLogits(h, prTest).argmax(1).toArray();
    assert.deepEqual([...row!.predictions!], preds);
    assert.equal(row!.denseAccuracy, headLogits(h, refTest).argmax(1).eq(yTe).to('float64').mean().item());
    const h2 = fitRidgeHead(prTrain, yTr, { numClasses: 3, alpha: 1 });
    assert.deepEqual([...refit!.predictions!], headLogits(h2, prTest).argmax(1).toArray());
    disposeHead(h);
    disposeHead(h2);
  });
  for (const f of [refTrain, refTest, prTrain, prTest]) f.dispose();
  cache.dispose();
  disposeGraph(dense);
  disposeGraph(pruned);
});

test('feature cache: hit for the same state, miss after the weights change, LRU bound', async () => {
  const g = tinyNet(4);
  const cache = new FeatureCache({ maxEntries: 2 });
  const a = await cache.get(g, { task: TASK, split: 'train', taskOptions: { cap: 12 } });
  const b = await cache.get(g, { task: TASK, split: 'train', taskOptions: { cap: 12 } });
  assert.equal(a, b);
  assert.deepEqual([cache.hits, cache.misses], [1, 1]);
  scope(() => g.params.get('conv1.weight')!.tensor.detach().mul_(0.5));
  await cache.get(g, { task: TASK, split: 'train', taskOptions: { cap: 12 } });
  assert.equal(cache.misses, 2, 'changed weights are a new state');
  await cache.get(g, { task: TASK, split: 'test', taskOptions: { cap: 12 } });
  assert.equal(cache.size, 2);
  assert.ok(a.features.isDisposed, 'least recently used entry was dropped and freed');
  cache.dispose();
  disposeGraph(g);
});

test('raw-pixel baseline equals a ridge head on JS-pooled pixels', async () => {
  const row = await pixelBaseline(TASK, { size: 16, pool: 4, taskOptions: { cap: 20 }, alpha: 1 });
  const task = await openTask(TASK, { cap: 20 });
  const { sets } = await loadSplits(task, [16, 16], ['train', 'test']);
  const pooled = (s: typeof sets.train) => {
    const out = new Float64Array(s!.n * 48);
    for (let i = 0; i < s!.n; i++)
      for (let c = 0; c < 3; c++)
        for (let py = 0; py < 4; py++)
          for (let px = 0; px < 4; px++) {
            let sum = 0;
            for (let y = 0; y < 4; y++)
              for (let x = 0; x < 4; x++) sum += s!.images[i * 768 + c * 256 + (py * 4 + y) * 16 + px * 4 + x]! / 255;
            out[i * 48 + c * 16 + py * 4 + px] = sum / 16;
          }
    return tensor(out, [s!.n, 48]);
  };
  const acc = scope(() => {
    const h = fitRidgeHead(pooled(sets.train), labelsOf(sets.train!.labels), { numClasses: 3 });
    const a = headLogits(h, pooled(sets.test)).argmax(1).eq(labelsOf(sets.test!.labels)).to('float64').mean().item();
    disposeHead(h);
    return a;
  });
  assert.equal(row.featureDim, 48);
  assert.ok(Math.abs(row.accuracy - acc) < 1e-12, `pixels ${row.accuracy} vs reference ${acc}`);
});

test('alpha auto: the grid value with the best hold-out balanced accuracy (ties to the larger), reported per row', async () => {
  const g = tinyNet(6);
  const cache = new FeatureCache();
  const f = await cache.get(g, { task: TASK, split: 'train', taskOptions: { cap: 20 } });
  const y = labelsOf(f.labels);
  const sel = selectAlpha(f.features, y, { numClasses: 3 });
  const best = Math.max(...sel.scores.map((s) => s.accuracy));
  assert.equal(sel.scores.length, ALPHA_GRID.length);
  assert.equal(sel.alpha, Math.max(...sel.scores.filter((s) => s.accuracy === best).map((s) => s.alpha)));
  const [row] = await zeroShot(g, [TASK], { taskOptions: { cap: 20 }, cache });
  assert.equal(row!.alpha, sel.alpha, 'auto is the default and the chosen alpha is reported');
  y.dispose();
  cache.dispose();
  disposeGraph(g);
});

test('bad input: unknown head mode and an unknown task are clear errors', async () => {
  const g = tinyNet(5);
  await assert.rejects(zeroShot(g, [TASK], { head: 'bogus' as 'dense' }), /unknown head mode 'bogus'/);
  await assert.rejects(zeroShot(g, ['nosuchdataset'], {}), /nosuchdataset/);
  await assert.rejects(zeroShot(g, [TASK], { alpha: -1 }), /alpha must be 'auto' or a finite number >= 0/);
  disposeGraph(g);
});
