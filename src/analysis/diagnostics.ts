/**
 * Second-order diagnostics over several tasks: per task, the Hutchinson trace of H (whole model and
 * per layer, with standard errors) and its top eigenvalues (Lanczos); for every pair of tasks, the alignment
 * of their curvature (cosine and Spearman ρ of the Hessian diagonals, overlap of the top-k eigenvector
 * subspaces, IoU of the OBD masks each task's data gives); and for a mask (the first task's OBD mask, or the
 * caller's), predicted vs measured loss change on every task.
 *
 * Every task must expose the SAME parameters (e.g. one backbone seen through per-task heads that share its
 * Param objects), so curvature vectors are comparable entry by entry.
 */
import { noGrad, scope, type Tensor } from '../engine/index.js';
import { disposeGraph, type Graph } from '../graph/index.js';
import type { ParamMap } from '../prune/allocation.js';
import { denseCopy, ESTIMATORS, prune, type CurvatureEstimator, type CurvatureResult } from '../prune/index.js';
import { cosine, maskIoU, pearson, ranks, subspaceOverlap } from './alignment.js';
import { AnalysisError } from './errors.js';
import { hessianOperator, type HessianOperator } from './hessian.js';
import { meanStderr } from './hutchinson.js';
import { topEigen } from './lanczos.js';
import { lossChange } from './loss-change.js';
import type { LabelledBatch, LossName } from './loss.js';
import { flatten } from './operator.js';

export interface TaskInput {
  id: string;
  /** Output = this task's logits; its prunable parameters are the ones analysed. */
  graph: Graph;
  batches: readonly LabelledBatch[];
}

export interface DiagnosticsOptions {
  loss: LossName;
  /** Rademacher probes per task (trace, diagonal and per-layer traces share them). */
  probes: number;
  /** Top eigenvalues per task. */
  k: number;
  /** Lanczos steps (default max(2k + 10, 20)). */
  steps?: number;
  seed: number;
  /** Sparsities for mask IoU and the loss-change table. */
  sparsities: readonly number[];
  /** A mask to evaluate instead of the first task's OBD mask (its sparsity is what it is). */
  mask?: ParamMap;
  /**
   * Further masks whose loss change is predicted and measured on every task, after the OBD (or given) mask, each
   * labelled `from` in the rows (e.g. a study cell key). They may cover a subset of the analysed parameters.
   */
  masks?: readonly { from: string; mask: ParamMap }[];
  /** Per-layer trace table (free: same probes). Default true. */
  perLayer?: boolean;
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface TaskSpectrum {
  task: string;
  images: number;
  loss: number;
  trace: { estimate: number; stderr: number; probes: number };
  /**
   * Σⱼ θⱼ² Hⱼⱼ (same probes): the curvature felt by a multiplicative perturbation θ ⊙ (1 + ε), E[ΔL] ≈ ½σ² Σ θⱼ² Hⱼⱼ
   * for ε ~ N(0, σ²I). Unchanged when a layer's weights are rescaled and the next layer compensates (BN), in loss
   * units; divided by the loss it compares models whose losses and weight scales differ.
   */
  weightedTrace: { estimate: number; stderr: number };
  topEigenvalues: number[];
  residuals: number[];
  lanczosSteps: number;
  layers?: { name: string; size: number; trace: number; stderr: number }[];
}

export interface PairAlignment {
  a: string;
  b: string;
  diagCosine: number;
  diagSpearman: number;
  eigenOverlap: number;
  /** IoU of the kept sets of the two tasks' OBD masks, per sparsity. */
  maskIoU: { sparsity: number; iou: number }[];
}

export interface LossChangeRow {
  task: string;
  /** Task whose data made the mask (its OBD mask), 'given', or the label of one of `options.masks`. */
  maskFrom: string;
  /** Sparsity an OBD mask was made for (NaN for a given mask or one of `options.masks`). */
  target: number;
  /** Fraction of the analysed weights the mask removes. */
  sparsity: number;
  firstOrder: number;
  secondOrder: number;
  measured: number;
}

export interface DiagnosticsReport {
  params: { count: number; tensors: number };
  tasks: TaskSpectrum[];
  pairs: PairAlignment[];
  lossChange: LossChangeRow[];
  settings: {
    loss: LossName;
    probes: number;
    k: number;
    steps: number;
    seed: number;
    sparsities: number[];
    maskScore: string;
  };
}

interface PerTask {
  op: HessianOperator;
  diag: Tensor;
  ranks: Float64Array;
  vectors: Tensor;
  masks: Map<number, Map<string, Tensor>>;
}

export function runDiagnostics(tasks: readonly TaskInput[], o: DiagnosticsOptions): DiagnosticsReport {
  if (tasks.length === 0)
    throw new AnalysisError('runDiagnostics: no tasks', { fix: 'pass at least one task (two or more for alignment)' });
  const ids = new Set(tasks.map((t) => t.id));
  if (ids.size !== tasks.length)
    throw new AnalysisError('runDiagnostics: task ids must be unique', { context: { tasks: tasks.map((t) => t.id) } });
  const steps = o.steps ?? Math.max(2 * o.k + 10, 20);
  const progress = o.onProgress ?? (() => {});
  const per: PerTask[] = [];
  const spectra: TaskSpectrum[] = [];
  try {
    for (const [ti, t] of tasks.entries()) {
      const op = hessianOperator(t.graph, o.loss, t.batches);
      if (ti > 0) checkSameParams(per[0]!.op, op, t.id);
      const blocks = op.layout.names.map((_, i) => ({
        offset: op.layout.offsets[i]!,
        size: op.layout.shapes[i]!.reduce((a, b) => a * b, 1),
      }));
      // The diagonal, the traces and the per-layer traces from one set of probes: src/prune's Hutchinson estimator
      // (the one pruning uses), its per-probe v ⊙ Hv summed here in float64.
      const theta2 = noGrad(() => scope(() => op.flatParams().square().to('float64')));
      const traces: number[] = [];
      const blockSamples: number[][] = blocks.map(() => []);
      const weighted: number[] = [];
      let est: CurvatureResult;
      try {
        // A scope frees the estimator's intermediates; its result (diag and stderr maps) survives.
        est = scope(() =>
          ESTIMATORS.hutchinson.diag(t.graph, t.batches, {
            loss: o.loss,
            probes: o.probes,
            seed: o.seed,
            params: op.layout.names,
            onProgress: (d, n) => progress(`${t.id}: trace`, d, n),
            onSample: (_, parts) =>
              scope(() => {
                const s64 = noGrad(() => flatten(op.layout, parts).to('float64'));
                traces.push(s64.sum().item());
                if (o.perLayer !== false)
                  blocks.forEach((b, k) => blockSamples[k]!.push(s64.narrow(0, b.offset, b.size).sum().item()));
                weighted.push(s64.dot(theta2).item());
              }),
          }),
        );
      } finally {
        theta2.dispose();
      }
      for (const x of est.stderr?.values() ?? []) x.dispose();
      const diag = noGrad(() => scope(() => flatten(op.layout, est.diag)));
      const eig = topEigen(op, { k: o.k, seed: o.seed, steps, onStep: (d, n) => progress(`${t.id}: lanczos`, d, n) });
      const r = ranks(noGrad(() => scope(() => diag.to('float64').data<'float64'>())));
      const masks = new Map<number, Map<string, Tensor>>();
      try {
        for (const q of o.sparsities) masks.set(q, obdMask(t, est, q, o.loss));
      } finally {
        for (const x of est.diag.values()) x.dispose();
      }
      per.push({ op, diag, ranks: r, vectors: eig.vectors, masks });
      spectra.push({
        task: t.id,
        images: t.batches.reduce((a, b) => a + b.x.shape[0]!, 0),
        loss: op.lossValue(),
        trace: { ...meanStderr(traces), probes: o.probes },
        weightedTrace: meanStderr(weighted),
        topEigenvalues: eig.values,
        residuals: eig.residuals,
        lanczosSteps: eig.steps,
        ...(o.perLayer === false
          ? {}
          : {
              layers: op.layout.names.map((name, i) => {
                const e = meanStderr(blockSamples[i]!);
                return { name, size: blocks[i]!.size, trace: e.estimate, stderr: e.stderr };
              }),
            }),
      });
    }
    const pairs: PairAlignment[] = [];
    for (let i = 0; i < tasks.length; i++)
      for (let j = i + 1; j < tasks.length; j++) {
        const a = per[i]!;
        const b = per[j]!;
        pairs.push({
          a: tasks[i]!.id,
          b: tasks[j]!.id,
          diagCosine: cosine(a.diag, b.diag),
          diagSpearman: pearson(a.ranks, b.ranks),
          eigenOverlap: subspaceOverlap(a.vectors, b.vectors),
          maskIoU: o.sparsities.map((q) => ({ sparsity: q, iou: maskIoU(a.masks.get(q)!, b.masks.get(q)!) })),
        });
      }
    const rows: LossChangeRow[] = [];
    const maskSets: { from: string; sparsity: number; mask: ParamMap }[] = [
      ...(o.mask
        ? [{ from: 'given', sparsity: Number.NaN, mask: o.mask }]
        : o.sparsities.map((q) => ({ from: tasks[0]!.id, sparsity: q, mask: per[0]!.masks.get(q)! }))),
      ...(o.masks ?? []).map((m) => ({ from: m.from, sparsity: Number.NaN, mask: m.mask })),
    ];
    for (const [ti, t] of tasks.entries()) {
      const op = per[ti]!.op;
      const base = op.lossAndGrad();
      try {
        maskSets.forEach((m, mi) => {
          const r = lossChange(op, m.mask, { base });
          rows.push({
            task: t.id,
            maskFrom: m.from,
            target: m.sparsity,
            sparsity: r.sparsity,
            firstOrder: r.firstOrder,
            secondOrder: r.secondOrder,
            measured: r.measured,
          });
          progress(`${t.id}: loss change`, mi + 1, maskSets.length);
        });
      } finally {
        base.grad.dispose();
      }
    }
    const first = per[0]!.op;
    return {
      params: { count: first.dim, tensors: first.layout.names.length },
      tasks: spectra,
      pairs,
      lossChange: rows,
      settings: {
        loss: o.loss,
        probes: o.probes,
        k: o.k,
        steps,
        seed: o.seed,
        sparsities: [...o.sparsities],
        maskScore: o.mask ? 'given' : 'obd (½ Hⱼⱼ θⱼ², Hutchinson diagonal), global allocation',
      },
    };
  } finally {
    for (const p of per) {
      p.diag.dispose();
      p.vectors.dispose();
      for (const m of p.masks.values()) for (const t of m.values()) t.dispose();
    }
  }
}

function checkSameParams(a: HessianOperator, b: HessianOperator, id: string): void {
  const same =
    a.layout.names.length === b.layout.names.length &&
    a.layout.names.every(
      (n, i) => n === b.layout.names[i] && a.layout.shapes[i]!.join() === b.layout.shapes[i]!.join(),
    );
  if (!same)
    throw new AnalysisError(
      `task '${id}' exposes different parameters than the first task; curvature cannot be compared entry by entry`,
      { fix: 'analyse one backbone: give every task a view of the same graph (withTaskHead)' },
    );
}

/**
 * The OBD mask (score ½ Hⱼⱼ θⱼ², global allocation) a task's curvature gives at sparsity q, from prune() (the one
 * pruning entry) on a copy of the task's graph, with the diagonal already estimated as its curvature estimator.
 */
export function obdMask(t: TaskInput, curvature: CurvatureResult, q: number, loss: LossName): Map<string, Tensor> {
  const given: CurvatureEstimator = {
    name: 'hutchinson',
    perSample: false,
    diag: () => ({
      diag: new Map([...curvature.diag].map(([n, d]) => [n, noGrad(() => d.clone())] as const)),
      info: { estimator: 'hutchinson', given: true },
    }),
  };
  const copy = denseCopy(t.graph);
  try {
    prune(copy, {
      score: 'diag-hessian',
      estimator: given,
      sparsity: q,
      params: [...curvature.diag.keys()],
      batches: t.batches,
      loss,
      allocation: { kind: 'global' },
      // No BN repair and no layer errors: only the mask is wanted.
      dense: copy,
    });
    return new Map([...curvature.diag.keys()].map((n) => [n, noGrad(() => copy.masks.get(n)!.clone())] as const));
  } finally {
    disposeGraph(copy);
  }
}
