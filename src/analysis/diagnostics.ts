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
import type { Graph } from '../graph/index.js';
import { allocate, type ParamMap } from '../prune/allocation.js';
import { cosine, maskIoU, pearson, ranks, subspaceOverlap } from './alignment.js';
import { AnalysisError } from './errors.js';
import { hessianOperator, type HessianOperator } from './hessian.js';
import { hutchinson, type ScalarEstimate } from './hutchinson.js';
import { topEigen } from './lanczos.js';
import { lossChange } from './loss-change.js';
import type { LabelledBatch, LossName } from './loss.js';
import { unflatten } from './operator.js';

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
      const theta2 = noGrad(() => scope(() => op.flatParams().square()));
      let h: ReturnType<typeof hutchinson>;
      try {
        h = hutchinson(op, {
          probes: o.probes,
          seed: o.seed,
          blocks: o.perLayer === false ? [] : blocks,
          weights: theta2,
          onProbe: (d, n) => progress(`${t.id}: trace`, d, n),
        });
      } finally {
        theta2.dispose();
      }
      h.diagonal.stderr.dispose();
      const eig = topEigen(op, { k: o.k, seed: o.seed, steps, onStep: (d, n) => progress(`${t.id}: lanczos`, d, n) });
      const diag = h.diagonal.estimate;
      const r = ranks(noGrad(() => scope(() => diag.to('float64').data<'float64'>())));
      const masks = new Map<number, Map<string, Tensor>>();
      for (const q of o.sparsities) masks.set(q, obdMask(op, diag, q));
      per.push({ op, diag, ranks: r, vectors: eig.vectors, masks });
      spectra.push({
        task: t.id,
        images: t.batches.reduce((a, b) => a + b.x.shape[0]!, 0),
        loss: op.lossValue(),
        trace: { estimate: h.trace.estimate, stderr: h.trace.stderr, probes: o.probes },
        weightedTrace: pick2(h.weightedTrace!),
        topEigenvalues: eig.values,
        residuals: eig.residuals,
        lanczosSteps: eig.steps,
        ...(o.perLayer === false
          ? {}
          : {
              layers: op.layout.names.map((name, i) => ({ name, size: blocks[i]!.size, ...pick(h.blockTraces[i]!) })),
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

function pick(e: ScalarEstimate): { trace: number; stderr: number } {
  return { trace: e.estimate, stderr: e.stderr };
}

function pick2(e: ScalarEstimate): { estimate: number; stderr: number } {
  return { estimate: e.estimate, stderr: e.stderr };
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

/** OBD mask (score ½ Hⱼⱼ θⱼ², higher = keep) at sparsity q, by src/prune's global allocation. */
export function obdMask(op: HessianOperator, diag: Tensor, q: number): Map<string, Tensor> {
  const scores = noGrad(() =>
    scope(() => {
      const theta = op.flatParams();
      const s = diag.mul(theta.square()).mul(0.5);
      const parts = unflatten(op.layout, s);
      return new Map(op.layout.names.map((n, i) => [n, parts[i]!.contiguous()] as const));
    }),
  );
  try {
    return allocate(scores, { sparsity: q, allocation: { kind: 'global' } }).masks;
  } finally {
    for (const t of scores.values()) t.dispose();
  }
}
