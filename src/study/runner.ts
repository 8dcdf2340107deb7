/**
 * Runs a study grid (DESIGN §1 protocol) into a StudyStore. Per cell: prune on the source task, zero-shot eval on
 * every task (each head mode), fine-tune on the source with the mask held, eval again. Dense reference accuracies
 * (and a raw-pixel baseline) are computed once per model. Finished cells are skipped; a cell is committed in one
 * transaction, so an interrupted run redoes only the cell it was in.
 *
 * Pruning is a step the caller supplies (`StudySteps.prune`): the runner never branches on the score's name.
 */
import { keep, noGrad, scope, tensor, type Tensor } from '../engine/index.js';
import { applyMasksInPlace, clearMasks, disposeGraph, setMask, type Graph } from '../graph/index.js';
import { batches, loadSplit, type TaskOptions } from '../data/index.js';
import { FeatureCache, finetune, openModel, pixelBaseline, preprocessOf, zeroShot, type HeadMode } from '../transfer/index.js';
import type { ScoreSpec, StudyConfig } from './config.js';
import { layerTable } from './efficiency.js';
import { capOf, expandGrid, protocolHash, studyTasks, type CellSpec } from './grid.js';
import { packBits, type DensityRow, type ResultRow, type StudyStore } from './store.js';

export interface CalibSet {
  /** Batches of source images (NCHW) and source labels (int64); owned by the runner. */
  batches: { x: Tensor; y: Tensor }[];
  numClasses: number;
  task: string;
}

export interface PruneStepOptions {
  score: ScoreSpec;
  sparsity: number;
  calib: CalibSet;
  /** The unpruned model (a source head fitted on its features gives the loss that data-driven scores need). */
  reference: Graph;
  loss: StudyConfig['prune']['loss'];
  allocation: StudyConfig['prune']['allocation'];
  minDensity: number;
  alpha: number;
  seed: number;
  cache: FeatureCache;
  taskOptions: TaskOptions;
}

export interface StudySteps {
  /** Loads a model by effective spec (zoo id, `random:` id, ONNX path). */
  loadModel(spec: string): Promise<Graph>;
  /** Sets masks on `g` (prunable backbone weights only) for the score and sparsity; returns report info. */
  prune(g: Graph, o: PruneStepOptions): Promise<Record<string, unknown>>;
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
  wallS: number;
}

/** setMask with its temporaries freed (setMask leaves the intermediate of its dtype conversion to the scope). */
export function installMask(g: Graph, name: string, m: Tensor): void {
  scope(() => {
    setMask(g, name, m);
    keep(g.masks.get(name)!);
  });
}

/** Overwrites `work`'s parameters with `dense`'s and drops its masks. */
export function restoreFrom(work: Graph, dense: Graph): void {
  clearMasks(work);
  noGrad(() => {
    for (const [name, p] of dense.params) work.params.get(name)!.tensor.copy_(p.tensor);
  });
}

/** A layer-wise permutation of every mask (same density per tensor, positions random): the shuffled-mask control. */
export function shuffleMasks(g: Graph, seed: number): void {
  let s = (seed * 2654435761 + 12345) >>> 0;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  for (const name of [...g.masks.keys()].sort()) {
    const m = g.masks.get(name)!;
    const a = Float32Array.from(scope(() => m.to('float32').contiguous().data() as Float32Array));
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      const t = a[i]!;
      a[i] = a[j]!;
      a[j] = t;
    }
    const t = tensor(a, [...m.shape]);
    installMask(g, name, t);
    t.dispose();
  }
}

/** Per-tensor kept counts and packed masks of every masked parameter, in parameter order. */
export function maskSummary(g: Graph): { densities: DensityRow[]; packed: Map<string, Uint8Array>; achieved: number } {
  const densities: DensityRow[] = [];
  const packed = new Map<string, Uint8Array>();
  let kept = 0;
  let total = 0;
  for (const p of g.params.values()) {
    if (!p.prunable) continue;
    const m = g.masks.get(p.name);
    const numel = p.tensor.numel;
    if (!m) {
      densities.push({ tensor: p.name, numel, kept: numel });
      kept += numel;
      total += numel;
      continue;
    }
    const a = scope(() => m.to('float32').contiguous().data() as Float32Array);
    let k = 0;
    for (let i = 0; i < a.length; i++) if (a[i] !== 0) k++;
    densities.push({ tensor: p.name, numel, kept: k });
    packed.set(p.name, packBits(a));
    kept += k;
    total += numel;
  }
  return { densities, packed, achieved: total === 0 ? 0 : 1 - kept / total };
}

/** The first `n` images of the source's train split (seeded order), batched. */
export async function calibrationSet(g: Graph, config: StudyConfig, source: string, seed: number, cache: FeatureCache): Promise<CalibSet> {
  const task = await cache.task(source, taskOptionsFor(config, source));
  const set = await loadSplit(task, 'train', g.preprocessing.size);
  const want = Math.min(config.calibration, set.n);
  const out: CalibSet['batches'] = [];
  let have = 0;
  for (const b of batches(set, preprocessOf(g), { batchSize: Math.min(32, want), shuffle: true, seed: seed * 104729 + 17 })) {
    const k = Math.min(b.indices.length, want - have);
    if (k <= 0 || k === b.indices.length) {
      if (k <= 0) { b.x.dispose(); b.y.dispose(); continue; }
      out.push({ x: b.x, y: b.y });
    } else {
      out.push(scope(() => ({ x: b.x.narrow(0, 0, k).contiguous(), y: b.y.narrow(0, 0, k).contiguous() })));
      b.x.dispose();
      b.y.dispose();
    }
    have += k;
  }
  return { batches: out, numClasses: task.classes.length, task: task.id };
}

export function taskOptionsFor(c: StudyConfig, task: string): TaskOptions {
  const cap = capOf(c, task);
  return { seed: c.dataSeed, ...(cap !== undefined ? { cap } : {}) };
}

async function evalAll(g: Graph, dense: Graph, c: StudyConfig, tasks: readonly string[], phase: string, cache: FeatureCache): Promise<ResultRow[]> {
  const rows: ResultRow[] = [];
  for (const head of c.heads as HeadMode[]) {
    for (const t of tasks) {
      const [r] = await zeroShot(g, [t], { head, reference: dense, alpha: c.alpha, taskOptions: taskOptionsFor(c, t), cache });
      rows.push({ task: t, phase, head, accuracy: r!.accuracy, nTrain: r!.nTrain, nTest: r!.nTest });
    }
  }
  return rows;
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
  const models = [...new Set(cells.map((c) => c.model))].filter((m) => todo.some((c) => c.model === m) || !store.denseDone(m, protocol));
  const total = todo.length + models.filter((m) => !store.denseDone(m, protocol)).length;
  let finished = 0;
  const progress = (frac: number, what: string) => o.onProgress?.({ done: finished + frac, total, what });
  const cache = new FeatureCache({ maxEntries: 4 * tasks.length + 8 });
  try {
    if (!store.denseDone('pixels', protocol)) {
      const size = config.resolution ?? 32;
      const rows = [];
      for (const t of tasks) {
        progress(0, `pixel baseline ${t}`);
        const r = await pixelBaseline(t, { size, alpha: config.alpha, taskOptions: taskOptionsFor(config, t) });
        rows.push({ task: t, head: 'pixels', accuracy: r.accuracy, nTrain: r.nTrain, nTest: r.nTest, classes: r.classes });
      }
      store.writeDense('pixels', protocol, rows, [], { size, pool: 8 });
    }
    for (const model of models) {
      const dense = await o.steps.loadModel(model);
      const work = await o.steps.loadModel(model);
      try {
        if (!store.denseDone(model, protocol)) {
          const rows = [];
          for (const t of tasks) {
            progress(0, `${model} dense ${t}`);
            const [r] = await zeroShot(dense, [t], { head: 'dense', alpha: config.alpha, taskOptions: taskOptionsFor(config, t), cache });
            rows.push({ task: t, head: 'dense', accuracy: r!.accuracy, nTrain: r!.nTrain, nTest: r!.nTest, classes: r!.classes });
          }
          store.writeDense(model, protocol, rows, layerTable(dense), { resolution: dense.preprocessing.size });
          finished++;
        }
        for (const cell of todo.filter((c) => c.model === model)) {
          await runCell(cell, config, tasks, dense, work, store, o, cache, (f, w) => progress(f, `${cell.scoreLabel} ${Math.round(cell.sparsity * 100)}% ${cell.control === 'none' ? '' : cell.control} ${w}`));
          finished++;
          o.onCell?.(cell, finished);
        }
      } finally {
        disposeGraph(dense);
        disposeGraph(work);
      }
    }
  } finally {
    cache.dispose();
  }
  return { cells: cells.length, skipped: cells.length - todo.length, ran: todo.length, wallS: (Date.now() - t0) / 1000 };
}

async function runCell(cell: CellSpec, c: StudyConfig, tasks: readonly string[], dense: Graph, work: Graph, store: StudyStore, o: RunOptions, cache: FeatureCache,
  progress: (frac: number, what: string) => void): Promise<void> {
  const t0 = Date.now();
  restoreFrom(work, dense);
  progress(0, 'prune');
  const calib = await calibrationSet(work, c, cell.source, cell.seed, cache);
  let pruneInfo: Record<string, unknown>;
  try {
    pruneInfo = await o.steps.prune(work, {
      score: cell.score, sparsity: cell.sparsity, calib, reference: dense, loss: c.prune.loss, allocation: c.prune.allocation,
      minDensity: c.prune.minDensity, alpha: c.alpha, seed: cell.seed, cache, taskOptions: taskOptionsFor(c, cell.source),
    });
  } finally {
    for (const b of calib.batches) { b.x.dispose(); b.y.dispose(); }
  }
  if (cell.control === 'shuffled-mask') shuffleMasks(work, cell.seed);
  applyMasksInPlace(work);
  const { densities, packed, achieved } = maskSummary(work);
  progress(0.25, 'zero-shot eval');
  const results = await evalAll(work, dense, c, tasks, 'zero-shot', cache);
  let ft: Record<string, unknown> | null = null;
  if (c.finetune) {
    progress(0.5, 'fine-tune');
    const r = c.finetune;
    const res = await finetune(work, {
      task: cell.source, taskOptions: taskOptionsFor(c, cell.source), epochs: r.epochs, ...(r.steps ? { steps: r.steps } : {}), batchSize: r.batchSize, lr: r.lr,
      optimizer: r.optimizer, momentum: r.momentum, weightDecay: r.weightDecay, schedule: { kind: r.schedule }, loss: r.loss, bn: r.bn,
      headInit: 'dense', reference: dense, alpha: c.alpha, seed: cell.seed, cache,
    });
    res.head.weight.dispose();
    res.head.bias.dispose();
    ft = { steps: res.steps, before: res.before, after: res.after, testAccuracy: res.testAccuracy, maskedEntries: res.maskedEntries };
    results.push({ task: cell.source, phase: 'finetuned', head: 'trained', accuracy: res.testAccuracy, nTrain: Number(res.recipe.trainImages ?? 0), nTest: 0 });
    progress(0.75, 'eval after fine-tune');
    results.push(...await evalAll(work, dense, c, tasks, 'finetuned', cache));
  }
  store.writeCell({
    key: cell.key, study: c.name, protocol: cell.protocol, model: cell.model, control: cell.control, score: cell.scoreLabel, scoreSpec: cell.score,
    sparsity: cell.sparsity, source: cell.source, seed: cell.seed, achievedSparsity: achieved, info: { prune: pruneInfo, finetune: ft }, wallS: (Date.now() - t0) / 1000,
  }, results, densities, packed);
}

/** The default model loader: zoo specs and paths, as every command accepts them. */
export async function loadStudyModel(spec: string): Promise<Graph> {
  return (await openModel(spec)).graph;
}
