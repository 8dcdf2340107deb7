/**
 * The runtime of transfer's inference passes (features, eval after fine-tuning): onnxruntime on the export gives the
 * interpreter's features, losses and accuracies (≤ 1e-5 relative) for a dense, a masked and a BN-repaired model, with
 * one session per model state.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { liveTensors, type Tensor } from '../../src/engine/index.js';
import { disposeGraph, disposeTaskHead, OrtSessions, preprocessOf, withTaskHead } from '../../src/graph/index.js';
import { batches, loadSplit, openTask, type ImageSet } from '../../src/data/index.js';
import { denseCopy, repairBatchNorm, type CalibBatch } from '../../src/prune/index.js';
import {
  evaluateSplit,
  extractFeatures,
  FeatureCache,
  finetune,
  fitLinearHead,
  zeroShot,
} from '../../src/transfer/index.js';
import { makeFolderTask, maskHalf, tinyNet, useTempCache } from './fixtures.js';

useTempCache();
let TASK = '';
before(async () => {
  TASK = await makeFolderTask('runtime', 20);
});

/** max |a − b| / max |b|: the error relative to the output's scale. */
function maxRel(a: Tensor, b: Tensor): number {
  const x = a.toArray();
  const y = b.toArray();
  assert.equal(x.length, y.length);
  let d = 0;
  let m = 0;
  x.forEach((v, i) => {
    d = Math.max(d, Math.abs(v - y[i]!));
    m = Math.max(m, Math.abs(y[i]!));
  });
  return d / m;
}

async function trainSet(): Promise<ImageSet> {
  return loadSplit(await openTask(TASK, { cap: 12 }), 'train', [16, 16]);
}

test('runtime: features in onnxruntime equal the interpreter’s for a dense, a masked and a BN-repaired model, one session per state', async () => {
  const g = tinyNet(5);
  const dense = denseCopy(g);
  const set = await trainSet();
  const calib: CalibBatch[] = [...batches(set, preprocessOf(g), { batchSize: 8 })].map((b) => ({ x: b.x, y: b.y }));
  const sessions = new OrtSessions({ maxEntries: 8 });
  const check = async (state: string, sessionsBefore: number) => {
    const live = liveTensors();
    const want = await extractFeatures(g, set, { runtime: 'torch', batchSize: 7, sessions });
    const got = await extractFeatures(g, set, { runtime: 'ort', batchSize: 7, sessions });
    const again = await extractFeatures(g, set, { runtime: 'auto', batchSize: 5, sessions });
    assert.deepEqual(got.shape, want.shape);
    const err = maxRel(got, want);
    assert.ok(err <= 1e-5, `${state}: onnxruntime vs interpreter, max rel. error ${err}`);
    assert.ok(maxRel(again, got) <= 1e-6, `${state}: auto runs the same session`);
    assert.equal(sessions.created, sessionsBefore + 1, `${state}: one new session, reused by the second pass`);
    for (const t of [want, got, again]) t.dispose();
    // Not equal: the GC safety net may free unreachable tensors of earlier steps meanwhile; a leak would add.
    assert.ok(liveTensors() <= live, `${state}: feature passes leave no tensors behind (${live} → ${liveTensors()})`);
  };
  await check('dense', 0);
  maskHalf(g);
  await check('masked', 1);
  const re = repairBatchNorm(g, dense, calib, 'reestimate');
  assert.equal(re.layers, 2);
  await check('masked + BN re-estimated', 2);
  const md = repairBatchNorm(g, dense, calib, 'match-dense');
  assert.equal(md.layers, 2);
  await check('masked + BN matched to the dense model', 3);
  await sessions.release();
  for (const b of calib) (b.x.dispose(), b.y.dispose());
  disposeGraph(dense);
  disposeGraph(g);
});

test('runtime: evaluateSplit (loss, accuracy) of a masked model with a task head is the same in onnxruntime and the interpreter', async () => {
  const g = tinyNet(6);
  maskHalf(g);
  const set = await trainSet();
  const f = await extractFeatures(g, set, { runtime: 'torch' });
  const fit = fitLinearHead(f, set.labels, { numClasses: 3, alpha: 1 });
  f.dispose();
  const hg = withTaskHead(g, fit.head);
  const sessions = new OrtSessions();
  for (const loss of ['ce', 'mse'] as const) {
    const want = await evaluateSplit(hg, set, loss, 7, { runtime: 'torch', sessions });
    const got = await evaluateSplit(hg, set, loss, 7, { runtime: 'ort', sessions });
    assert.equal(got.accuracy, want.accuracy, `${loss}: accuracy`);
    assert.ok(
      Math.abs(got.loss - want.loss) <= 1e-5 * Math.abs(want.loss),
      `${loss}: loss ${got.loss} vs ${want.loss}`,
    );
  }
  assert.equal(sessions.created, 1, 'one session for the head graph, reused by both losses');
  await sessions.release();
  disposeTaskHead(hg);
  disposeGraph(g);
});

test('runtime: zero-shot rows and a short fine-tuning run agree under torch and ort; a bad runtime is a clear error', async () => {
  const rows = async (runtime: 'torch' | 'ort') => {
    const g = tinyNet(7);
    const dense = tinyNet(7);
    maskHalf(g);
    const cache = new FeatureCache({ runtime });
    try {
      return await zeroShot(g, [TASK], { reference: dense, cache, alpha: 1, taskOptions: { cap: 20 } });
    } finally {
      cache.dispose();
      disposeGraph(g);
      disposeGraph(dense);
    }
  };
  const [t] = await rows('torch');
  const [o] = await rows('ort');
  assert.equal(o!.accuracy, t!.accuracy);
  assert.equal(o!.denseAccuracy, t!.denseAccuracy);

  const tuned = async (runtime: 'torch' | 'ort') => {
    const g = tinyNet(8);
    maskHalf(g);
    try {
      const r = await finetune(g, { task: TASK, taskOptions: { cap: 12 }, steps: 2, alpha: 1, runtime });
      for (const x of [r.head.weight, r.head.bias]) x.dispose();
      return r;
    } finally {
      disposeGraph(g);
    }
  };
  const ft = await tuned('torch');
  const fo = await tuned('ort');
  for (const k of ['before', 'after'] as const) {
    assert.equal(fo[k].accuracy, ft[k].accuracy, `${k}: accuracy`);
    assert.ok(Math.abs(fo[k].loss - ft[k].loss) <= 1e-5 * ft[k].loss, `${k}: loss ${fo[k].loss} vs ${ft[k].loss}`);
  }
  assert.equal(fo.testAccuracy, ft.testAccuracy);

  assert.throws(() => new FeatureCache({ runtime: 'gpu' as 'ort' }), /runtime must be one of auto, torch, ort/);
  const g = tinyNet(9);
  await assert.rejects(finetune(g, { task: TASK, runtime: 'gpu' as 'ort' }), /runtime must be one of/);
  disposeGraph(g);
});
