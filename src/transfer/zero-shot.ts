/**
 * Zero-shot transfer (docs/TRANSFER.md): a ridge head per task fitted on frozen features, accuracy on the task's test split.
 *
 * - `dense` (the paper's zero-shot): the head is fitted on the REFERENCE (unpruned) model's train features and
 *   standardised with their statistics, then applied to the evaluated backbone's test features. It measures how
 *   far pruning / fine-tuning moved the representation away from what the dense head expects.
 * - `refit`: the head is fitted on the evaluated backbone's own train features (representation quality).
 *
 * On the unpruned model both modes are the same computation, which the tests check.
 */
import { nn, scope, tensor, TapirError, type Tensor } from '../engine/index.js';
import type { Graph } from '../graph/index.js';
import { loadSplits, type Size, type TaskOptions } from '../data/index.js';
import { FeatureCache, modelFingerprint, type SplitFeatures } from './features.js';
import { disposeHead, fitRidgeHead, headLogits, selectAlpha, type RidgeHead } from './ridge.js';

export type HeadMode = 'dense' | 'refit';
export const HEAD_MODES: readonly HeadMode[] = ['dense', 'refit'];

export interface ZeroShotOptions {
  /** `dense` (default) or `refit`. */
  head?: HeadMode;
  /** The unpruned model whose features the `dense` head is fitted on (default: the evaluated model itself). */
  reference?: Graph;
  /** Ridge penalty on standardised features, or `auto` (default): chosen per task by `selectAlpha` on the train split. */
  alpha?: number | 'auto';
  /** Split seed and per-class cap of every task. */
  taskOptions?: TaskOptions;
  /** Feature tap (default: each graph's `featureTap`). */
  tap?: string;
  batchSize?: number;
  /** Reused across calls (studies evaluate many model states on the same tasks); a private one otherwise. */
  cache?: FeatureCache;
  /** Return the test-split predictions of each row. */
  predictions?: boolean;
  onProgress?: (p: { task: string; step: string; done: number; total: number }) => void;
}

export interface ZeroShotRow {
  task: string;
  classes: readonly string[];
  head: HeadMode | 'pixels';
  alpha: number;
  /** Test accuracy of the evaluated backbone with the head of this mode. */
  accuracy: number;
  /** Test accuracy of the reference backbone with its own (dense) head: the row's ceiling/baseline. */
  denseAccuracy: number;
  /** Alpha of the dense head (differs from `alpha` in `refit` mode when alpha is `auto`). */
  denseAlpha: number;
  nTrain: number;
  nTest: number;
  featureDim: number;
  /** Fingerprints of the evaluated and reference model states (weights + masks). */
  model: string;
  reference: string;
  predictions?: Int32Array;
  /** Per test image (test-split order): 1 where the prediction is right (what bootstrap intervals resample). */
  correct: Uint8Array;
}

function checkAlpha(a: number | 'auto'): number | 'auto' {
  if (a === 'auto' || (typeof a === 'number' && a >= 0 && Number.isFinite(a))) return a;
  throw new TapirError('E_ARG', `ridge alpha must be 'auto' or a finite number >= 0, got ${String(a)}`, {
    context: { alpha: a },
    fix: 'e.g. --alpha auto or --alpha 100',
  });
}

const labelsTensor = (l: Int32Array): Tensor =>
  tensor(
    BigInt64Array.from(l, (v) => BigInt(v)),
    [l.length],
  );

function accuracyAndPreds(head: RidgeHead, f: SplitFeatures): { acc: number; preds: Int32Array; correct: Uint8Array } {
  const preds = scope(() => Int32Array.from(headLogits(head, f.features).argmax(1).toArray()));
  const correct = Uint8Array.from(preds, (p, i) => (p === f.labels[i] ? 1 : 0));
  return { acc: correct.reduce((a, b) => a + b, 0) / preds.length, preds, correct };
}

function fit(f: SplitFeatures, alphaOpt: number | 'auto'): RidgeHead {
  const y = labelsTensor(f.labels);
  try {
    const alpha = alphaOpt === 'auto' ? selectAlpha(f.features, y, { numClasses: f.numClasses }).alpha : alphaOpt;
    return fitRidgeHead(f.features, y, { numClasses: f.numClasses, alpha });
  } finally {
    y.dispose();
  }
}

/** Zero-shot accuracy of `model` on every task (one row per task, in order). */
export async function zeroShot(
  model: Graph,
  tasks: readonly string[],
  o: ZeroShotOptions = {},
): Promise<ZeroShotRow[]> {
  const mode = o.head ?? 'dense';
  if (!HEAD_MODES.includes(mode))
    throw new TapirError('E_ARG', `unknown head mode '${String(mode)}'`, {
      context: { head: mode },
      fix: `use one of: ${HEAD_MODES.join(', ')}`,
    });
  const alpha = checkAlpha(o.alpha ?? 'auto');
  const ref = o.reference ?? model;
  const cache = o.cache ?? new FeatureCache();
  const tapOf = (g: Graph) => o.tap ?? g.featureTap;
  const fpModel = modelFingerprint(model, tapOf(model));
  const fpRef = ref === model ? fpModel : modelFingerprint(ref, tapOf(ref));
  const rows: ZeroShotRow[] = [];
  try {
    for (const id of tasks) {
      const task = await cache.task(id, o.taskOptions);
      const get = (g: Graph, fp: string, split: 'train' | 'test', step: string) =>
        cache.get(g, {
          task,
          split,
          fingerprint: fp,
          tap: tapOf(g),
          ...(o.batchSize ? { batchSize: o.batchSize } : {}),
          onProgress: (done, total) => o.onProgress?.({ task: task.id, step, done, total }),
        });
      const refTrain = await get(ref, fpRef, 'train', 'reference train features');
      const refTest = await get(ref, fpRef, 'test', 'reference test features');
      const testF = await get(model, fpModel, 'test', 'test features');
      const denseHead = fit(refTrain, alpha);
      let head = denseHead;
      try {
        const dense = accuracyAndPreds(denseHead, refTest);
        if (mode === 'refit') head = fit(await get(model, fpModel, 'train', 'train features'), alpha);
        const r = accuracyAndPreds(head, testF);
        rows.push({
          task: task.id,
          classes: task.classes,
          head: mode,
          alpha: head.alpha,
          accuracy: r.acc,
          denseAccuracy: dense.acc,
          denseAlpha: denseHead.alpha,
          nTrain: refTrain.labels.length,
          nTest: testF.labels.length,
          featureDim: testF.features.shape[1]!,
          model: fpModel,
          reference: fpRef,
          ...(o.predictions ? { predictions: r.preds } : {}),
          correct: r.correct,
        });
      } finally {
        if (head !== denseHead) disposeHead(head);
        disposeHead(denseHead);
      }
    }
  } finally {
    if (!o.cache) cache.dispose();
  }
  return rows;
}

export interface PixelBaselineOptions {
  /** Resolution the images are loaded at (default 32; pass the model's size to reuse its decoded cache). */
  size?: number;
  /** Pixels are average-pooled to pool × pool per channel (default 8: 192 features). */
  pool?: number;
  alpha?: number | 'auto';
  taskOptions?: TaskOptions;
}

/**
 * The raw-pixel row every report needs (measured here: on MNIST-like tasks a ridge head on pooled pixels comes within a
 * few points of pre-trained features): images in [0, 1], average-pooled, standardised, ridge head, test accuracy.
 */
export async function pixelBaseline(taskId: string, o: PixelBaselineOptions = {}): Promise<ZeroShotRow> {
  const size = o.size ?? 32;
  const pool = o.pool ?? 8;
  if (!Number.isInteger(pool) || pool < 1 || pool > size)
    throw new TapirError('E_ARG', `pixel baseline: pool ${pool} must be an integer in [1, ${size}]`, {
      fix: 'e.g. pool 8',
    });
  const alpha = checkAlpha(o.alpha ?? 'auto');
  const cache = new FeatureCache();
  const task = await cache.task(taskId, o.taskOptions);
  const { sets } = await loadSplits(task, [size, size] as Size, ['train', 'test']);
  const pooled = (split: 'train' | 'test'): SplitFeatures => {
    const s = sets[split]!;
    const features = scope(() => {
      // Widened by the engine: Float32Array.from(images, f) builds a JS list first and fails near 10⁸ pixel values.
      const x = tensor(s.images, [s.n, 3, size, size]).to('float32').div(255);
      return nn.adaptiveAvgPool2d(x, [pool, pool]).flatten(1).to('float64');
    });
    return { features, labels: s.labels, numClasses: task.classes.length, task: task.id, split, fingerprint: 'pixels' };
  };
  const train = pooled('train');
  const test = pooled('test');
  const head = fit(train, alpha);
  try {
    const { acc, correct } = accuracyAndPreds(head, test);
    return {
      task: task.id,
      classes: task.classes,
      head: 'pixels',
      alpha: head.alpha,
      accuracy: acc,
      denseAccuracy: acc,
      denseAlpha: head.alpha,
      nTrain: train.labels.length,
      nTest: test.labels.length,
      featureDim: 3 * pool * pool,
      model: 'pixels',
      reference: 'pixels',
      correct,
    };
  } finally {
    disposeHead(head);
    train.features.dispose();
    test.features.dispose();
  }
}
