/**
 * The per-task inputs of second-order diagnostics: ONE implementation for `tapir hessian` and the study's
 * `diagnostics` section. Each task reads the backbone's feature tap through its own ridge head, folded into a
 * linear layer (`withTaskHead`), so every task's loss is a function of the same backbone weights; the head is
 * fixed and only the prunable backbone weights are analysed.
 *
 * The head is SCALE-FREE (docs/ANALYSIS.md, "Task heads"): a ridge head on standardised features folds into raw
 * weights W / std, so with an absolute std floor (transfer's featureStats, 1e-8) a model whose features are tiny
 * (a `random:` init: ~1e-12) gets a head that sees floored, near-zero inputs, and near-constant features of any
 * model get huge weights; curvature then follows the head, not the backbone. Here:
 *   - every feature's std is floored RELATIVE to the mean std (0.1×), with no absolute floor, so the folded head
 *     gives the same logits for features f and s·f (any s > 0): the loss, and its curvature in the backbone
 *     weights, do not depend on the global feature scale;
 *   - the head is fitted on `headImages` (default 30) training images per class (fewer if the split is smaller);
 *   - alpha is 'images' by default: the number N of head training images, i.e. a penalty of 1 per image, so
 *     the ridge objective (1/N)Σ‖ŷ − y‖² + ‖W‖² is the same whatever N, and pre-trained and random models get the
 *     SAME head recipe. ('auto', transfer's selectAlpha, picks per model by hold-out accuracy and breaks ties
 *     towards the LARGER alpha: on features that do not separate the hold-out, e.g. a random init's, it takes
 *     the largest, a head that predicts the class prior, whose loss hardly depends on the backbone.)
 */
import { noGrad, scope, TapirError, type Tensor } from '../engine/index.js';
import type { Graph } from '../graph/index.js';
import { batches as makeBatches, loadSample, openTask, type Batch, type TaskOptions } from '../data/index.js';
import type { TaskInput } from '../analysis/index.js';
import {
  disposeTaskHead,
  extractFeatures,
  fitLinearHead,
  preprocessOf,
  withTaskHead,
  type HeadAlpha,
  type LinearHead,
} from '../transfer/index.js';

export type { HeadAlpha };

/** The alpha grid of `alpha: auto` for diagnostics heads. */
export const DIAGNOSTICS_ALPHA_GRID: readonly number[] = [100, 1000, 10000];
/** Each feature's std is floored at this fraction of the mean std (no absolute floor: see the file comment). */
export const RELATIVE_STD_FLOOR = 0.1;

export interface TaskInputOptions {
  /** Calibration images per task the curvature is taken over (at least one per class), from the calib split. */
  images: number;
  /** Training images per class the head is fitted on. */
  headImages: number;
  /** Ridge penalty on standardised features; 'images': the number of head training images; 'auto': selectAlpha over DIAGNOSTICS_ALPHA_GRID. */
  alpha: HeadAlpha;
  /** Images per HVP batch. */
  batchSize: number;
  /** Split seed and cap per task (default: seed 0, no cap). */
  taskOptions?: (task: string) => TaskOptions;
  onProgress?: (what: string, done: number, total: number) => void;
}

/** What each task's head is: reported next to the spectra so a reader can judge the loss it defines. */
export interface HeadInfo {
  task: string;
  classes: number;
  /** Training images the head was fitted on. */
  images: number;
  alpha: number;
  /** Accuracy of the head on its own training images (chance = 1 / classes). */
  trainAccuracy: number;
  /** Root mean square of the raw features (a `random:` model's are tiny; the head does not care). */
  featureRms: number;
}

export interface TaskInputs {
  inputs: TaskInput[];
  heads: HeadInfo[];
  /** Frees the head views and the batches (not the graph). */
  dispose(): void;
}

/**
 * The diagnostics head of one task: transfer's head recipe (fitLinearHead), scale-free (std floored at
 * RELATIVE_STD_FLOOR × the mean std, no absolute floor), plus the raw features' RMS for the report. The caller owns the head.
 */
export function fitDiagnosticsHead(
  features: Tensor,
  labels: Int32Array,
  numClasses: number,
  alpha: HeadAlpha,
  dtype: 'float32' | 'float64',
): { head: LinearHead; alpha: number; trainAccuracy: number; featureRms: number } {
  const fit = fitLinearHead(features, labels, {
    numClasses,
    alpha,
    grid: DIAGNOSTICS_ALPHA_GRID,
    floor: { relative: RELATIVE_STD_FLOOR, absolute: 0 },
    dtype,
  });
  const featureRms = scope(() => noGrad(() => Math.sqrt(features.to('float64').square().mean().item())));
  return { head: fit.head, alpha: fit.alpha, trainAccuracy: fit.trainAccuracy, featureRms };
}

/**
 * For each task: a head view of `g` (scale-free ridge head fitted on `g`'s features of the train split) and the
 * calibration batches. `g` must be the model state the curvature is taken at (dense weights).
 */
export async function buildTaskInputs(g: Graph, ids: readonly string[], o: TaskInputOptions): Promise<TaskInputs> {
  if (ids.length === 0)
    throw new TapirError('E_ARG', 'diagnostics: no tasks', {
      fix: 'name at least one task (two or more for alignment)',
    });
  const dtype = [...g.params.values()].some((p) => p.tensor.dtype === 'float64') ? 'float64' : 'float32';
  const inputs: TaskInput[] = [];
  const heads: HeadInfo[] = [];
  const views: Graph[] = [];
  const owned: Tensor[] = [];
  const dispose = () => {
    for (const t of owned) t.dispose();
    for (const v of views) disposeTaskHead(v);
    owned.length = 0;
    views.length = 0;
  };
  try {
    for (const id of ids) {
      o.onProgress?.(`${id}: loading`, inputs.length, ids.length);
      const task = await openTask(id, o.taskOptions?.(id) ?? {});
      const size = g.preprocessing.size;
      const calib = await loadSample(task, 'calib', size, Math.ceil(o.images / task.classes.length));
      const train = await loadSample(task, 'train', size, o.headImages);
      const feats = await extractFeatures(g, train);
      let fitted: ReturnType<typeof fitDiagnosticsHead>;
      try {
        fitted = fitDiagnosticsHead(feats, train.labels, task.classes.length, o.alpha, dtype);
      } finally {
        feats.dispose();
      }
      const view = withTaskHead(g, fitted.head);
      views.push(view);
      const bs: Batch[] = [...makeBatches(calib, preprocessOf(g), { batchSize: o.batchSize })];
      for (const b of bs) owned.push(b.x, b.y);
      inputs.push({ id: task.id, graph: view, batches: bs });
      heads.push({
        task: task.id,
        classes: task.classes.length,
        images: train.n,
        alpha: fitted.alpha,
        trainAccuracy: fitted.trainAccuracy,
        featureRms: fitted.featureRms,
      });
    }
  } catch (e) {
    dispose();
    throw e;
  }
  return { inputs, heads, dispose };
}
