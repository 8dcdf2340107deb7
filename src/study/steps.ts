/**
 * The study's prune step over src/prune: a score from the registry (the step never branches on its name),
 * exact-count allocation, masks set on the graph, OBS compensation when the score offers it.
 *
 * Data-driven scores need a loss over the SOURCE classes, but a zoo backbone's own classifier predicts other
 * classes (nsfwjs: 5 NSFW classes). The loss is therefore read through a source head: the ridge head fitted on
 * the dense model's source features (the same head the zero-shot protocol attaches), folded into a linear layer
 * on the feature tap. Only prunable parameters that the tap depends on are scored, so the model's unused original
 * classifier is never part of the ranking. With `calib_data: <task id>` the head and labels are that task's
 * (`CalibSet.task`); with `calib_data: noise` the source head, whose dense predictions are the labels.
 */
import { noGrad } from '../engine/index.js';
import type { Graph } from '../graph/index.js';
import { allocate } from '../prune/allocation.js';
import { SCORES } from '../prune/scores/index.js';
import type { ScoreContext } from '../prune/scores/types.js';
import { disposeTaskHead, paramsUsedBy, withTaskHead } from '../transfer/index.js';
import type { PruneStepOptions, StudySteps } from './runner.js';
import { denseTaskHead, installMask, loadStudyModel } from './runner.js';

/** Scores, allocates and masks `g` in place; returns the report info. */
export async function pruneStep(g: Graph, o: PruneStepOptions): Promise<Record<string, unknown>> {
  const score = SCORES[o.score.name];
  // The calibration task's head on dense features: the source's, or calib_data's task when that is a task id.
  const hg = withTaskHead(g, await denseTaskHead(o.reference, o.calib.task, o.taskOptions, o.alpha, o.cache));
  try {
    const used = paramsUsedBy(hg, [g.featureTap]);
    const params = [...g.params.values()].filter((p) => p.prunable && used.has(p.name)).map((p) => p.name);
    const s = o.score;
    const ctx: ScoreContext = {
      graph: hg, batches: o.calib.batches, params, loss: o.loss, seed: o.seed,
      ...(s.estimator ? { estimator: s.estimator } : {}), ...(s.probes ? { probes: s.probes } : {}), ...(s.ggn ? { ggn: s.ggn } : {}),
      block: { ...(s.blockSize ? { blockSize: s.blockSize } : {}), ...(s.curvature ? { curvature: s.curvature } : {}), ...(s.damping ? { damping: s.damping } : {}), ...(s.compensate ? { compensate: true } : {}) },
    };
    const r = score.score(ctx);
    try {
      const a = allocate(r.scores, { sparsity: o.sparsity, allocation: { kind: o.allocation }, minDensity: o.minDensity });
      try {
        if (s.compensate && r.compensate) {
          const upd = r.compensate(a.masks);
          noGrad(() => { for (const [n, t] of upd) { g.params.get(n)!.tensor.copy_(t); t.dispose(); } });
        }
        for (const [n, m] of a.masks) installMask(g, n, m);
        return { ...r.info, achievedSparsity: a.achievedSparsity, collapsed: a.collapsed, calibImages: o.calib.batches.reduce((k, b) => k + b.x.shape[0]!, 0), scoredTensors: params.length };
      } finally {
        for (const m of a.masks.values()) m.dispose();
      }
    } finally {
      for (const t of r.scores.values()) t.dispose();
      r.dispose?.();
    }
  } finally {
    disposeTaskHead(hg);
  }
}

/** The real steps: zoo/ONNX models and src/prune scores. */
export const defaultSteps: StudySteps = { loadModel: loadStudyModel, prune: pruneStep };
