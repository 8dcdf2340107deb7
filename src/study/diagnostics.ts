/**
 * The study's `diagnostics` section: after the cells of a model, second-order diagnostics of the DENSE
 * model on the study's tasks (src/analysis runDiagnostics over the shared task inputs of diagnostics-inputs.ts),
 * once per model — the pre-trained one and, with `control`, its `random:` init — into the study's SQLite file:
 * spectra per task, pairwise curvature alignment, and predicted vs measured loss change of the OBD masks of the
 * first task AND of the study's own cell masks (main grid for the pre-trained model, random-init cells for the
 * control) at the diagnostics sparsities, on every task. Resumable: a done marker per (model, settings hash).
 */
import { createHash } from 'node:crypto';
import { tensor, type Tensor } from '../engine/index.js';
import { disposeGraph, type Graph } from '../graph/index.js';
import { runDiagnostics } from '../analysis/index.js';
import type { StudyConfig } from './config.js';
import { buildTaskInputs } from './diagnostics-inputs.js';
import type { DiagLossRow } from './diagnostics-store.js';
import { effectiveModel, taskOptionsFor, protocolHash, type CellSpec } from './grid.js';
import type { StudyStore } from './store.js';

/** One diagnostics run: a model, the cells whose masks it evaluates, and the hash that identifies its results. */
export interface DiagnosticsPlan {
  model: string;
  /** true for the `random:` control. */
  random: boolean;
  /** Hash of the diagnostics settings, the protocol, the model and the mask cells. */
  settings: string;
  /** Cells whose masks are evaluated (they must be finished before the run). */
  maskCells: { key: string; score: string; sparsity: number }[];
}

const hash = (v: unknown) => createHash('sha256').update(JSON.stringify(v)).digest('hex').slice(0, 16);

/** The diagnostics runs of a study (none without a `diagnostics` section). */
export function planDiagnostics(c: StudyConfig, cells: readonly CellSpec[]): DiagnosticsPlan[] {
  const d = c.diagnostics;
  if (!d) return [];
  const plans: DiagnosticsPlan[] = [];
  const add = (model: string, random: boolean, control: CellSpec['control']) => {
    if (plans.some((p) => p.model === model)) return;
    const maskCells = cells
      .filter((x) => x.model === model && x.control === control && d.sparsities.includes(x.sparsity))
      .map((x) => ({ key: x.key, score: x.scoreLabel, sparsity: x.sparsity }));
    plans.push({
      model,
      random,
      maskCells,
      settings: hash({ v: 1, spec: d, protocol: protocolHash(c), model, masks: maskCells.map((m) => m.key).sort() }),
    });
  };
  for (const m of c.models) add(effectiveModel(m, c, false), false, 'none');
  // `random:` re-initialises zoo ids and model files alike (transfer's openModel).
  if (d.control) for (const m of c.models) add(effectiveModel(m, c, true), true, 'random-init');
  return plans;
}

/** A stored cell mask as name → 0/1 float32 tensors of the graph's parameter shapes (names the graph lacks are skipped). */
export function cellMask(store: StudyStore, cell: string, g: Graph): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, bits] of store.masksOf(cell)) {
    const p = g.params.get(name);
    if (!p || !p.prunable) continue;
    const n = p.tensor.numel;
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = (bits[i >> 3]! >> (i & 7)) & 1;
    out.set(name, tensor(a, [...p.tensor.shape]));
  }
  return out;
}

/** Runs one plan on a freshly loaded model and stores it (one transaction with the done marker). */
export async function runModelDiagnostics(
  plan: DiagnosticsPlan,
  c: StudyConfig,
  store: StudyStore,
  loadModel: (spec: string) => Promise<Graph>,
  onProgress?: (what: string, frac: number) => void,
): Promise<void> {
  const d = c.diagnostics!;
  const t0 = Date.now();
  const g = await loadModel(plan.model);
  const masks: { from: string; mask: Map<string, Tensor> }[] = [];
  try {
    const built = await buildTaskInputs(g, d.tasks, {
      images: d.images,
      headImages: d.headImages,
      alpha: d.alpha,
      batchSize: 32,
      taskOptions: (t) => taskOptionsFor(c, t),
      onProgress: (what) => onProgress?.(what, 0),
    });
    try {
      for (const m of plan.maskCells) masks.push({ from: m.key, mask: cellMask(store, m.key, g) });
      const r = runDiagnostics(built.inputs, {
        loss: d.loss,
        probes: d.probes,
        k: d.k,
        ...(d.steps !== null ? { steps: d.steps } : {}),
        seed: d.seed,
        sparsities: d.sparsities,
        masks,
        onProgress: (stage, done, total) => onProgress?.(stage, total > 0 ? done / total : 0),
      });
      const cellOf = new Map(plan.maskCells.map((m) => [m.key, m]));
      const lossChange: DiagLossRow[] = r.lossChange.map((x) => {
        const cell = cellOf.get(x.maskFrom);
        if (cell)
          return {
            maskKind: 'cell',
            maskFrom: x.maskFrom,
            score: cell.score,
            target: cell.sparsity,
            task: x.task,
            sparsity: x.sparsity,
            first: x.firstOrder,
            second: x.secondOrder,
            measured: x.measured,
          };
        return {
          maskKind: 'obd',
          maskFrom: x.maskFrom,
          score: 'obd',
          target: x.target,
          task: x.task,
          sparsity: x.sparsity,
          first: x.firstOrder,
          second: x.secondOrder,
          measured: x.measured,
        };
      });
      const headOf = new Map(built.heads.map((h) => [h.task, h]));
      store.writeDiagnostics({
        model: plan.model,
        settings: plan.settings,
        study: c.name,
        spec: d,
        wallS: (Date.now() - t0) / 1000,
        info: { params: r.params, settings: r.settings, random: plan.random },
        spectra: r.tasks.map((t) => ({
          task: t.task,
          images: t.images,
          loss: t.loss,
          trace: t.trace.estimate,
          traceStderr: t.trace.stderr,
          weightedTrace: t.weightedTrace.estimate,
          weightedStderr: t.weightedTrace.stderr,
          eigenvalues: t.topEigenvalues,
          residuals: t.residuals,
          layers: t.layers ?? [],
          head: { ...headOf.get(t.task) },
        })),
        pairs: r.pairs.map((p) => ({
          a: p.a,
          b: p.b,
          cosine: p.diagCosine,
          spearman: p.diagSpearman,
          overlap: p.eigenOverlap,
          iou: p.maskIoU,
        })),
        lossChange,
      });
    } finally {
      built.dispose();
    }
  } finally {
    for (const m of masks) for (const t of m.mask.values()) t.dispose();
    disposeGraph(g);
  }
}
