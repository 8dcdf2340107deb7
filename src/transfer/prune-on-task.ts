/**
 * Pruning a backbone for transfer: the one path `tapir prune` and every study cell take, so the same settings give
 * the same mask bit for bit. It builds the calibration set (prune's `calibrationSet`), the task head the loss is read
 * through (`scoringHead`), labels mix/noise images with the dense model's own predictions, and calls `prune()` on
 * the backbone's prunable weights (those the feature tap depends on: the model's own classifier is not part of a
 * transfer backbone).
 *
 * The scoring head (documented choice, reported as `head`): the class-balanced ridge head fitted on the DENSE
 * model's features of the task's train split, standardised with their statistics: exactly the head the zero-shot
 * protocol attaches, folded into a linear layer on the feature tap. Its alpha is the caller's (a study's `alpha`,
 * `tapir prune --alpha`), or chosen by `selectAlpha` on the train split (`auto`).
 */
import { paramsUsedBy, type Graph, type LinearHead, type Runtime } from '../graph/index.js';
import type { TaskOptions } from '../data/index.js';
import {
  calibDataLabel,
  calibrationSet,
  disposeCalibSet,
  labelByModel,
  prune,
  PruneError,
  resolveScore,
  type CalibData,
  type PruneOptions,
  type PruneReport,
} from '../prune/index.js';
import { FeatureCache } from './features.js';
import { fitLinearHead } from './head.js';

/** How the scoring head was made, for the report. */
export interface ScoringHeadInfo {
  task: string;
  split: 'train';
  images: number;
  alpha: number;
  /** Accuracy of the head on its own training images (chance = 1 / classes): how much task the score's loss can see. */
  trainAccuracy: number;
  fit: 'ridge on dense features (standardised), folded into a linear layer on the feature tap';
}

/**
 * The head a data-driven score reads task `taskId` through: the ridge head on `reference`'s (dense) train features.
 * The caller owns the returned head.
 */
export async function scoringHead(
  reference: Graph,
  taskId: string,
  o: { taskOptions: TaskOptions; alpha: number | 'auto'; cache?: FeatureCache; runtime?: Runtime },
): Promise<{ head: LinearHead; info: ScoringHeadInfo }> {
  const cache = o.cache ?? new FeatureCache();
  try {
    const task = await cache.task(taskId, o.taskOptions);
    const f = await cache.get(reference, { task, split: 'train', ...(o.runtime ? { runtime: o.runtime } : {}) });
    const dtype = [...reference.params.values()].some((p) => p.tensor.dtype === 'float64') ? 'float64' : 'float32';
    const fit = fitLinearHead(f.features, f.labels, { numClasses: task.classes.length, alpha: o.alpha, dtype });
    return {
      head: fit.head,
      info: {
        task: task.id,
        split: 'train',
        images: fit.images,
        alpha: fit.alpha,
        trainAccuracy: fit.trainAccuracy,
        fit: 'ridge on dense features (standardised), folded into a linear layer on the feature tap',
      },
    };
  } finally {
    if (!o.cache) cache.dispose();
  }
}

/** The prunable parameters the feature tap depends on, in parameter order. */
export function backboneParams(g: Graph): string[] {
  const used = paramsUsedBy(g, [g.featureTap]);
  return [...g.params.values()].filter((p) => p.prunable && used.has(p.name)).map((p) => p.name);
}

export interface PruneOnTaskOptions extends Omit<PruneOptions, 'batches' | 'head' | 'calib' | 'params'> {
  /** The source task (needed by data-driven scores, BN repair and any calibration set). */
  source?: string;
  /** Calibration images and what they are (default 128 of the source); `exact`: fewer images is an error, not a warning. */
  calibration?: { n: number; data?: CalibData; batchSize?: number; exact?: boolean };
  /** Split seed and cap of each task. */
  taskOptions: (task: string) => TaskOptions;
  /** Ridge penalty of the scoring head (standardised features), or 'auto'. */
  alpha: number | 'auto';
  /** Seed of the calibration draw (default: `seed`). */
  calibSeed?: number;
  cache?: FeatureCache;
  /** Runtime of the scoring head's feature pass (default: the cache's, `auto`). */
  runtime?: Runtime;
  onStep?: (step: 'data' | 'head' | 'prune') => void;
}

export interface PruneOnTaskResult {
  report: PruneReport;
  /** What the calibration set was (absent when no data was used). */
  calibration: { data: string; task: string; requested: number; images: number } | null;
  head: ScoringHeadInfo | null;
  timings: { data: number; head: number };
}

/**
 * Prunes `g` (the dense model; the function takes what it needs from it before pruning) for transfer from
 * `o.source`. Data are loaded only when the score is data-driven, BN is repaired or the caller asks for a
 * calibration set.
 */
export async function pruneOnTask(g: Graph, o: PruneOnTaskOptions): Promise<PruneOnTaskResult> {
  const score = resolveScore(o.score);
  const needsData = !score.dataFree || (o.bn ?? 'none') !== 'none' || o.calibration !== undefined;
  const params = backboneParams(g);
  if (!needsData)
    return { report: prune(g, { ...o, params }), calibration: null, head: null, timings: { data: 0, head: 0 } };
  if (!o.source)
    throw new PruneError(
      `score '${score.name}'${score.dataFree ? ` with BN repair '${o.bn}'` : ''} needs calibration images: pass --source <task>`,
      {
        context: { score: score.name },
        fix: '--source fashion-mnist[0-4] (a study: sources), or a data-free score (magnitude, synflow, random) without BN repair',
      },
    );
  const cache = o.cache ?? new FeatureCache();
  const data = o.calibration?.data ?? { kind: 'source' };
  const n = o.calibration?.n ?? 128;
  const t0 = performance.now();
  o.onStep?.('data');
  const set = await calibrationSet(g, data, {
    source: o.source,
    n,
    seed: o.calibSeed ?? o.seed ?? 0,
    taskOptions: o.taskOptions,
    open: (id, opts) => cache.task(id, opts),
    ...(o.calibration?.batchSize ? { batchSize: o.calibration.batchSize } : {}),
  });
  const t1 = performance.now();
  if (o.calibration?.exact && set.images < n) {
    disposeCalibSet(set);
    throw new PruneError(`asked for ${n} calibration images but the calibration set has only ${set.images}`, {
      context: { asked: n, available: set.images },
      fix: `lower --calib to at most ${set.images}, or raise the task's cap`,
    });
  }
  let head: { head: LinearHead; info: ScoringHeadInfo } | null = null;
  try {
    o.onStep?.('head');
    // A score that reads a loss (gradient, curvature) reads it through the head; mix/noise images get their labels
    // from it. Layer-input scores (wanda, sparsegpt) need neither.
    if (score.needs !== 'none' && score.needs !== 'inputs') {
      head = await scoringHead(g, set.taskSpec, {
        taskOptions: set.taskOptions,
        alpha: o.alpha,
        cache,
        ...(o.runtime ? { runtime: o.runtime } : {}),
      });
      if (set.needsLabels) labelByModel(set, g, head.head);
    }
    const t2 = performance.now();
    o.onStep?.('prune');
    const report = prune(g, { ...o, params, batches: set.batches, ...(head ? { head: head.head } : {}) });
    if (set.images < n)
      report.warnings.push(`asked for ${n} calibration images, the data hold ${set.images}: pruned with ${set.images}`);
    return {
      report,
      head: head?.info ?? null,
      timings: { data: t1 - t0, head: t2 - t1 },
      calibration: { data: calibDataLabel(data), task: set.task, requested: n, images: set.images },
    };
  } finally {
    disposeCalibSet(set);
    if (head) {
      head.head.weight.dispose();
      head.head.bias.dispose();
    }
    if (!o.cache) cache.dispose();
  }
}
