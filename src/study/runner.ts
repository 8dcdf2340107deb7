/**
 * Runs a study grid (the paper's protocol) into a StudyStore. Per cell: prune on the source task (transfer's
 * `pruneOnTask`, the same path as `tapir prune`), zero-shot eval on every task (each head mode), fine-tune on the
 * source with the mask held, eval again. Dense reference accuracies (and a raw-pixel baseline) are computed once per
 * model. Finished cells are skipped; a cell is committed in one transaction, so an interrupted run redoes only the
 * cell it was in. The runner only sequences these steps and the storage.
 */
import { disposeGraph, packBits, restoreFrom, type Graph } from '../graph/index.js';
import { maskSummary, parseAllocation, parseCalibData, type CalibData } from '../prune/index.js';
import {
  FeatureCache,
  finetune,
  openModel,
  pixelBaseline,
  pruneOnTask,
  zeroShot,
  type HeadMode,
} from '../transfer/index.js';
import type { ScoreSpec, StudyConfig } from './config.js';
import { layerTable } from './efficiency.js';
import { expandGrid, protocolHash, studyTasks, taskOptionsFor, type CellSpec } from './grid.js';
import type { CellRecord, DensityRow, LayerErrorRow, ResultRow, StudyStore } from './store.js';
import { planDiagnostics, runModelDiagnostics } from './diagnostics.js';

export interface StudySteps {
  /** Loads a model by effective spec (zoo id, `random:` id, ONNX path). */
  loadModel(spec: string): Promise<Graph>;
}

export interface StudyProgress {
  /** Cells finished (fractional within the running cell) and the total to run now. */
  done: number;
  total: number;
  what: string;
}

export interface RunOptions {
  steps: StudySteps;
  onProgress?: (p: StudyProgress) => void;
  /** Called after each committed cell (tests kill the process from here). */
  onCell?: (cell: CellSpec, index: number) => void;
  /** Stop after this many cells (0 = all). */
  maxCells?: number;
}

export interface RunSummary {
  cells: number;
  skipped: number;
  ran: number;
  /** Diagnostics runs (one per model, `diagnostics` section) done by this call. */
  diagnostics: number;
  wallS: number;
}

async function evalAll(
  g: Graph,
  dense: Graph,
  c: StudyConfig,
  tasks: readonly string[],
  phase: string,
  cache: FeatureCache,
): Promise<ResultRow[]> {
  const rows: ResultRow[] = [];
  for (const head of c.heads as HeadMode[]) {
    for (const t of tasks) {
      const [r] = await zeroShot(g, [t], {
        head,
        reference: dense,
        alpha: c.alpha,
        taskOptions: taskOptionsFor(c, t),
        cache,
      });
      rows.push({
        task: t,
        phase,
        head,
        accuracy: r!.accuracy,
        nTrain: r!.nTrain,
        nTest: r!.nTest,
        correct: packBits(r!.correct),
      });
    }
  }
  return rows;
}

/** The pixel baseline (model 'pixels'), once per protocol. */
export async function runPixelBaseline(
  config: StudyConfig,
  store: StudyStore,
  progress: (frac: number, what: string) => void,
): Promise<void> {
  const protocol = protocolHash(config);
  if (store.denseDone('pixels', protocol)) return;
  const size = config.resolution ?? 32;
  const rows = [];
  for (const t of studyTasks(config)) {
    progress(0, `pixel baseline ${t}`);
    const r = await pixelBaseline(t, { size, alpha: config.alpha, taskOptions: taskOptionsFor(config, t) });
    rows.push({
      task: t,
      head: 'pixels',
      accuracy: r.accuracy,
      nTrain: r.nTrain,
      nTest: r.nTest,
      classes: r.classes,
      correct: packBits(r.correct),
    });
  }
  store.writeDense('pixels', protocol, rows, [], { size, pool: 8 });
}

/** A model's dense reference accuracies and layer table, once per protocol. */
export async function runDenseReference(
  config: StudyConfig,
  store: StudyStore,
  model: string,
  dense: Graph,
  cache: FeatureCache,
  progress: (frac: number, what: string) => void,
): Promise<void> {
  const protocol = protocolHash(config);
  if (store.denseDone(model, protocol)) return;
  const rows = [];
  for (const t of studyTasks(config)) {
    progress(0, `${model} dense ${t}`);
    const [r] = await zeroShot(dense, [t], {
      head: 'dense',
      alpha: config.alpha,
      taskOptions: taskOptionsFor(config, t),
      cache,
    });
    rows.push({
      task: t,
      head: 'dense',
      accuracy: r!.accuracy,
      nTrain: r!.nTrain,
      nTest: r!.nTest,
      classes: r!.classes,
      correct: packBits(r!.correct),
    });
  }
  store.writeDense(model, protocol, rows, layerTable(dense), { resolution: dense.preprocessing.size });
}

/** Runs every unfinished cell of `config` into `store`. */
export async function runStudy(config: StudyConfig, store: StudyStore, o: RunOptions): Promise<RunSummary> {
  const t0 = Date.now();
  const protocol = protocolHash(config);
  const tasks = studyTasks(config);
  store.recordStudy(config.name, protocol, config);
  const cells = expandGrid(config);
  const done = store.doneKeys();
  let todo = cells.filter((c) => !done.has(c.key));
  if (o.maxCells) todo = todo.slice(0, o.maxCells);
  const models = [...new Set(cells.map((c) => c.model))].filter(
    (m) => todo.some((c) => c.model === m) || !store.denseDone(m, protocol),
  );
  // Diagnostics run once per model after the cells whose masks they evaluate (src/study/diagnostics.ts).
  const diag = planDiagnostics(config, cells).filter((p) => !store.diagnosticsDone(p.model, p.settings));
  let diagRan = 0;
  const total = todo.length + models.filter((m) => !store.denseDone(m, protocol)).length + diag.length;
  let finished = 0;
  const progress = (frac: number, what: string) => o.onProgress?.({ done: finished + frac, total, what });
  const cache = new FeatureCache({ maxEntries: 4 * tasks.length + 8, runtime: config.runtime });
  try {
    await runPixelBaseline(config, store, progress);
    for (const model of models) {
      const dense = await o.steps.loadModel(model);
      const work = await o.steps.loadModel(model);
      try {
        if (!store.denseDone(model, protocol)) {
          await runDenseReference(config, store, model, dense, cache, progress);
          finished++;
        }
        for (const cell of todo.filter((c) => c.model === model)) {
          const out = await runCell(cell, { config, tasks, dense, work, cache }, (f, w) =>
            progress(f, cellWhat(cell, w)),
          );
          writeCellOutput(store, out);
          finished++;
          o.onCell?.(cell, finished);
        }
      } finally {
        disposeGraph(dense);
        disposeGraph(work);
      }
    }
    diagRan = await runReadyDiagnostics(
      config,
      store,
      diag,
      o.steps.loadModel,
      (what, f) => progress(f, what),
      () => finished++,
    );
  } finally {
    cache.dispose();
  }
  return {
    cells: cells.length,
    skipped: cells.length - todo.length,
    ran: todo.length,
    diagnostics: diagRan,
    wallS: (Date.now() - t0) / 1000,
  };
}

/** Runs the diagnostics plans whose mask cells are all stored; returns how many ran. */
export async function runReadyDiagnostics(
  config: StudyConfig,
  store: StudyStore,
  plans: ReturnType<typeof planDiagnostics>,
  loadModel: StudySteps['loadModel'],
  progress: (what: string, frac: number) => void,
  onDone: () => void = () => undefined,
): Promise<number> {
  const finishedKeys = store.doneKeys();
  let ran = 0;
  for (const plan of plans.filter((p) => p.maskCells.every((m) => finishedKeys.has(m.key)))) {
    await runModelDiagnostics(plan, config, store, loadModel, (what, f) =>
      progress(`diagnostics ${plan.model} ${what}`, f),
    );
    onDone();
    ran++;
  }
  return ran;
}

/** The progress label of a cell's stage. */
export function cellWhat(cell: CellSpec, stage: string): string {
  return `${cell.scoreLabel} ${Math.round(cell.sparsity * 100)}% ${cell.control === 'none' ? '' : cell.control} ${stage}`;
}

/** Everything one cell produced: what `StudyStore.writeCell` commits in one transaction. */
export interface CellOutput {
  record: CellRecord;
  results: ResultRow[];
  densities: DensityRow[];
  masks: Map<string, Uint8Array>;
  layerErrors: LayerErrorRow[];
}

/** What a cell runs on: the study, its tasks, the model's dense graph and a working copy of it, the feature cache. */
export interface CellContext {
  config: StudyConfig;
  tasks: readonly string[];
  dense: Graph;
  /** Overwritten by the cell (restored from `dense` first). */
  work: Graph;
  cache: FeatureCache;
}

/** Commits a cell's output (one transaction, see store.ts). */
export function writeCellOutput(store: StudyStore, out: CellOutput): void {
  store.writeCell(out.record, out.results, out.densities, out.masks, out.layerErrors);
}

/** The calibration data of a cell as prune reads it ('all': every study task, sources first). */
export function cellCalibData(c: StudyConfig, calibData: string): CalibData {
  return calibData === 'all' ? { kind: 'mix', tasks: studyTasks(c) } : parseCalibData(calibData);
}

/** The score options of a study score spec, as `prune()` takes them. */
export function scoreOptions(s: ScoreSpec) {
  return {
    score: s.name,
    ...(s.estimator ? { estimator: s.estimator } : {}),
    ...(s.probes ? { probes: s.probes } : {}),
    ...(s.ggn ? { ggn: s.ggn } : {}),
    block: {
      ...(s.blockSize ? { blockSize: s.blockSize } : {}),
      ...(s.curvature ? { curvature: s.curvature } : {}),
      ...(s.damping ? { damping: s.damping } : {}),
      ...(s.compensate ? { compensate: true } : {}),
    },
    reconstruct: {
      ...(s.target ? { target: s.target } : {}),
      ...(s.activations ? { activations: s.activations } : {}),
      ...(s.blockSize ? { blockSize: s.blockSize } : {}),
      ...(s.damping ? { damping: s.damping } : {}),
    },
    ...(s.rounds ? { schedule: { kind: 'iterative' as const, rounds: s.rounds } } : {}),
  };
}

/**
 * Runs one cell and returns its rows; the single-machine loop and `tapir worker` both call this (one code path), and
 * the caller commits the output. Deterministic for a fixed thread count: seeded splits, scores and fine-tuning.
 */
export async function runCell(
  cell: CellSpec,
  ctx: CellContext,
  progress: (frac: number, what: string) => void,
): Promise<CellOutput> {
  const { config: c, tasks, dense, work, cache } = ctx;
  const t0 = Date.now();
  // Seconds per phase of the cell (stored in its info, summed by `tapir study --profile`).
  const phases: Record<string, number> = {};
  let mark = performance.now();
  const lap = (phase: string) => {
    const now = performance.now();
    phases[phase] = (phases[phase] ?? 0) + (now - mark) / 1000;
    mark = now;
  };
  restoreFrom(work, dense);
  progress(0, 'prune');
  const pruned = await pruneOnTask(work, {
    ...scoreOptions(cell.score),
    sparsity: cell.sparsity,
    seed: cell.seed,
    loss: c.prune.loss,
    allocation: parseAllocation(cell.allocation),
    minDensity: c.prune.minDensity,
    bn: cell.bn,
    dense,
    shuffle: cell.control === 'shuffled-mask',
    source: cell.source,
    calibration: { n: cell.calibration, data: cellCalibData(c, cell.calibData) },
    taskOptions: (t) => taskOptionsFor(c, t),
    alpha: c.alpha,
    cache,
  });
  const r = pruned.report;
  phases.data = pruned.timings.data / 1000;
  phases.head = pruned.timings.head / 1000;
  for (const [k, v] of Object.entries(r.timings)) if (v > 0) phases[`prune.${k}`] = v / 1000;
  lap('prune');
  phases.prune = Math.max(
    0,
    phases.prune! -
      phases.data -
      phases.head -
      Object.entries(phases)
        .filter(([k]) => k.startsWith('prune.'))
        .reduce((a, [, v]) => a + v, 0),
  );
  const pruneInfo = {
    ...r.scoreInfo,
    achievedSparsity: r.achievedSparsity,
    collapsed: r.collapsed,
    calibImages: r.calibration.images,
    scoredTensors: r.scoredTensors,
    ...(r.reconstruction ? { reconstruction: r.reconstruction } : {}),
  };
  const calibInfo = pruned.calibration ? { ...pruned.calibration, data: cell.calibData } : null;
  const bnInfo = r.bn;
  const { densities, packed, achieved } = maskSummary(work);
  progress(0.25, 'zero-shot eval');
  const results = await evalAll(work, dense, c, tasks, 'zero-shot', cache);
  lap('zeroShot');
  let ft: Record<string, unknown> | null = null;
  if (c.finetune) {
    progress(0.5, 'fine-tune');
    const r = c.finetune;
    const res = await finetune(work, {
      task: cell.source,
      taskOptions: taskOptionsFor(c, cell.source),
      epochs: r.epochs,
      ...(r.steps ? { steps: r.steps } : {}),
      batchSize: r.batchSize,
      lr: r.lr,
      optimizer: r.optimizer,
      momentum: r.momentum,
      weightDecay: r.weightDecay,
      schedule: { kind: r.schedule },
      loss: r.loss,
      bn: r.bn,
      headInit: 'dense',
      reference: dense,
      alpha: c.alpha,
      seed: cell.seed,
      cache,
      runtime: c.runtime,
    });
    res.head.weight.dispose();
    res.head.bias.dispose();
    lap('finetune');
    ft = {
      steps: res.steps,
      before: res.before,
      after: res.after,
      testAccuracy: res.testAccuracy,
      maskedEntries: res.maskedEntries,
    };
    results.push({
      task: cell.source,
      phase: 'finetuned',
      head: 'trained',
      accuracy: res.testAccuracy,
      nTrain: Number(res.recipe.trainImages ?? 0),
      nTest: 0,
    });
    progress(0.75, 'eval after fine-tune');
    results.push(...(await evalAll(work, dense, c, tasks, 'finetuned', cache)));
    lap('finetunedEval');
  }
  return {
    record: {
      key: cell.key,
      study: c.name,
      protocol: cell.protocol,
      model: cell.model,
      control: cell.control,
      score: cell.scoreLabel,
      scoreSpec: cell.score,
      sparsity: cell.sparsity,
      source: cell.source,
      seed: cell.seed,
      achievedSparsity: achieved,
      info: { prune: pruneInfo, finetune: ft, calib: calibInfo, bn: bnInfo, phases },
      wallS: (Date.now() - t0) / 1000,
      allocation: cell.allocation,
      bn: cell.bn,
      calibration: cell.calibration,
      calibData: cell.calibData,
    },
    results,
    densities,
    masks: packed,
    layerErrors: (r.layerErrors ?? []).map((e) => ({ tensor: e.tensor, relError: e.relError })),
  };
}

/** The default model loader: zoo specs and paths, as every command accepts them. */
export async function loadStudyModel(spec: string): Promise<Graph> {
  return (await openModel(spec)).graph;
}

export const defaultSteps: StudySteps = { loadModel: loadStudyModel };
