/**
 * Runs a study grid (DESIGN §1 protocol) into a StudyStore. Per cell: prune on the source task, zero-shot eval on
 * every task (each head mode), fine-tune on the source with the mask held, eval again. Dense reference accuracies
 * (and a raw-pixel baseline) are computed once per model. Finished cells are skipped; a cell is committed in one
 * transaction, so an interrupted run redoes only the cell it was in.
 *
 * Pruning is a step the caller supplies (`StudySteps.prune`): the runner never branches on the score's name.
 */
import { keep, noGrad, scope, tensor, type Tensor } from '../engine/index.js';
import { applyMasksInPlace, clearMasks, disposeGraph, forward, setMask, type Graph } from '../graph/index.js';
import { batches, imagesToTensor, loadSplit, type ImageSet, type TaskOptions } from '../data/index.js';
import { mulberry32 } from '../data/rng.js';
import { repairBatchNorm } from '../prune/index.js';
import {
  disposeHead, disposeTaskHead, FeatureCache, finetune, fitRidgeHead, openModel, pixelBaseline, preprocessOf, ridgeToLinear, withTaskHead, zeroShot,
  type HeadMode, type LinearHead,
} from '../transfer/index.js';
import type { CalibData, ScoreSpec, StudyConfig } from './config.js';
import { layerTable } from './efficiency.js';
import { capOf, expandGrid, protocolHash, studyTasks, type CellSpec } from './grid.js';
import { packBits, type DensityRow, type ResultRow, type StudyStore } from './store.js';
import { planDiagnostics, runModelDiagnostics } from './diagnostics.js';

export interface CalibSet {
  /** Batches of calibration images (NCHW) and labels (int64) of `task`; owned by the runner. */
  batches: { x: Tensor; y: Tensor }[];
  numClasses: number;
  /** The task whose head (fitted on dense features) and labels give the scoring loss. */
  task: string;
  /** What the images are: 'source', 'noise' or the task id they come from (absent: 'source'). */
  data?: CalibData;
  /** Task options of `task` (cap, split seed), for the prune step's head (absent: the source's). */
  taskOptions?: TaskOptions;
}

/** Which calibration set to build (defaults: the config's base size, the source's images). */
export interface CalibOptions {
  /** Images wanted (fewer if the split is smaller). */
  n?: number;
  data?: CalibData;
  /** The dense model whose source-head predictions label noise images (default `g`, restored to dense before pruning). */
  reference?: Graph;
}

export interface PruneStepOptions {
  score: ScoreSpec;
  sparsity: number;
  calib: CalibSet;
  /** The unpruned model (a source head fitted on its features gives the loss that data-driven scores need). */
  reference: Graph;
  loss: StudyConfig['prune']['loss'];
  allocation: StudyConfig['prune']['allocation'];
  /** BN repair the runner applies after masking (info only; the prune step does not repair). */
  bn?: StudyConfig['prune']['bns'][number];
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
  /** Diagnostics runs (one per model, `diagnostics` section) done by this call. */
  diagnostics: number;
  wallS: number;
}

/** setMask with its temporaries freed (setMask leaves the intermediate of its dtype conversion to the scope). */
export function installMask(g: Graph, name: string, m: Tensor): void {
  scope(() => {
    setMask(g, name, m);
    keep(g.masks.get(name)!);
  });
}

/**
 * Overwrites `work`'s parameters and constants with `dense`'s and drops its masks. BN repair (match-dense) may
 * have given a BatchNorm its own γ/β (a new parameter wired into the node): such nodes are rewired to the dense
 * node's inputs and the extra parameters freed, so every cell starts from the same graph.
 */
export function restoreFrom(work: Graph, dense: Graph): void {
  clearMasks(work);
  dense.nodes.forEach((d, i) => {
    const w = work.nodes[i];
    if (w && w.name === d.name && w.inputs.join('\0') !== d.inputs.join('\0')) work.nodes[i] = { ...w, inputs: [...d.inputs] };
  });
  for (const [name, p] of [...work.params]) {
    if (dense.params.has(name)) continue;
    p.tensor.dispose();
    work.params.delete(name);
  }
  noGrad(() => {
    for (const [name, p] of dense.params) work.params.get(name)!.tensor.copy_(p.tensor);
    for (const [name, t] of dense.constants) {
      const w = work.constants.get(name);
      if (w && w !== t) w.copy_(t);
    }
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

/**
 * The ridge head fitted on the dense model's train features of `taskId`, as a linear layer on the feature tap in
 * the model's dtype (the head the zero-shot protocol attaches). The caller owns the result.
 */
export async function denseTaskHead(reference: Graph, taskId: string, taskOptions: TaskOptions, alpha: number, cache: FeatureCache): Promise<LinearHead> {
  const task = await cache.task(taskId, taskOptions);
  const f = await cache.get(reference, { task, split: 'train' });
  return scope(() => {
    const y = tensor(BigInt64Array.from(f.labels, (v) => BigInt(v)), [f.labels.length]);
    const ridge = fitRidgeHead(f.features, y, { numClasses: task.classes.length, alpha });
    const lin = ridgeToLinear(ridge, reference.params.values().next().value?.tensor.dtype === 'float64' ? 'float64' : 'float32');
    disposeHead(ridge);
    return lin;
  });
}

/** Seed of a cell's noise images (a different stream from the score's and the split's seeds). */
const noiseSeed = (seed: number) => (Math.imul(seed + 1, 0x9e3779b1) ^ 0x6e6f6973) >>> 0;

/**
 * Calibration images per `o.data` (docs/STUDY.md):
 * - 'source' (default): the first `n` images of the source's train split (seeded order), source labels;
 * - a task id T: the first `n` of T's train split (same seeded order), T's labels: the prune step reads the loss
 *   through T's dense ridge head;
 * - 'noise': `n` images of uniform random pixels in [0, 255] (seeded by the cell seed) through the model's own
 *   preprocessing, labelled by the argmax of the DENSE model's logits through the source head (the loss is the
 *   dense model's own prediction, so no label information enters).
 */
export async function calibrationSet(g: Graph, config: StudyConfig, source: string, seed: number, cache: FeatureCache, o: CalibOptions = {}): Promise<CalibSet> {
  const data = o.data ?? 'source';
  const n = o.n ?? config.calibration;
  if (data === 'noise') return noiseCalibration(g, o.reference ?? g, config, source, seed, n, cache);
  const id = data === 'source' ? source : data;
  const taskOptions = taskOptionsFor(config, id);
  const task = await cache.task(id, taskOptions);
  const set = await loadSplit(task, 'train', g.preprocessing.size);
  const want = Math.min(n, set.n);
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
  return { batches: out, numClasses: task.classes.length, task: task.id, data, taskOptions };
}

async function noiseCalibration(g: Graph, reference: Graph, config: StudyConfig, source: string, seed: number, n: number, cache: FeatureCache): Promise<CalibSet> {
  const [h, w] = g.preprocessing.size;
  const rand = mulberry32(noiseSeed(seed));
  const images = new Uint8Array(n * 3 * h * w);
  for (let i = 0; i < images.length; i++) images[i] = Math.floor(rand() * 256);
  const taskOptions = taskOptionsFor(config, source);
  const task = await cache.task(source, taskOptions);
  const set: ImageSet = { task: 'noise', split: 'train', classes: task.classes, size: [h, w], n, images, labels: new Int32Array(n), keys: [], skipped: [] };
  const pre = preprocessOf(g);
  const hg = withTaskHead(reference, await denseTaskHead(reference, source, taskOptions, config.alpha, cache));
  const out: CalibSet['batches'] = [];
  try {
    const bs = Math.min(32, n);
    for (let i = 0; i < n; i += bs) {
      const x = imagesToTensor(set, Int32Array.from({ length: Math.min(bs, n - i) }, (_, j) => i + j), pre);
      out.push({ x, y: scope(() => forward(hg, x, { mode: 'eval' }).outputs[0]!.argmax(1).to('int64')) });
    }
  } catch (e) {
    for (const b of out) { b.x.dispose(); b.y.dispose(); }
    throw e;
  } finally {
    disposeTaskHead(hg);
  }
  return { batches: out, numClasses: task.classes.length, task: task.id, data: 'noise', taskOptions };
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
  // Diagnostics run once per model after the cells whose masks they evaluate (src/study/diagnostics.ts).
  const diag = planDiagnostics(config, cells).filter((p) => !store.diagnosticsDone(p.model, p.settings));
  let diagRan = 0;
  const total = todo.length + models.filter((m) => !store.denseDone(m, protocol)).length + diag.length;
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
    const finishedKeys = store.doneKeys();
    for (const plan of diag.filter((p) => p.maskCells.every((m) => finishedKeys.has(m.key)))) {
      await runModelDiagnostics(plan, config, store, o.steps.loadModel, (what, f) => progress(f, `diagnostics ${plan.model} ${what}`));
      finished++;
      diagRan++;
    }
  } finally {
    cache.dispose();
  }
  return { cells: cells.length, skipped: cells.length - todo.length, ran: todo.length, diagnostics: diagRan, wallS: (Date.now() - t0) / 1000 };
}

async function runCell(cell: CellSpec, c: StudyConfig, tasks: readonly string[], dense: Graph, work: Graph, store: StudyStore, o: RunOptions, cache: FeatureCache,
  progress: (frac: number, what: string) => void): Promise<void> {
  const t0 = Date.now();
  restoreFrom(work, dense);
  progress(0, 'prune');
  const calib = await calibrationSet(work, c, cell.source, cell.seed, cache, { n: cell.calibration, data: cell.calibData, reference: dense });
  const calibInfo = { data: cell.calibData, task: calib.task, requested: cell.calibration, images: calib.batches.reduce((k, b) => k + b.x.shape[0]!, 0) };
  let pruneInfo: Record<string, unknown>;
  let bnInfo: ReturnType<typeof repairBatchNorm>;
  // The calibration batches stay alive until the BN repair, which runs on the same images after the masks are final.
  try {
    pruneInfo = await o.steps.prune(work, {
      score: cell.score, sparsity: cell.sparsity, calib, reference: dense, loss: c.prune.loss, allocation: cell.allocation, bn: cell.bn,
      minDensity: c.prune.minDensity, alpha: c.alpha, seed: cell.seed, cache, taskOptions: calib.taskOptions ?? taskOptionsFor(c, cell.source),
    });
    if (cell.control === 'shuffled-mask') shuffleMasks(work, cell.seed);
    applyMasksInPlace(work);
    bnInfo = repairBatchNorm(work, dense, calib.batches, cell.bn);
  } finally {
    for (const b of calib.batches) { b.x.dispose(); b.y.dispose(); }
  }
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
    sparsity: cell.sparsity, source: cell.source, seed: cell.seed, achievedSparsity: achieved, info: { prune: pruneInfo, finetune: ft, calib: calibInfo, bn: bnInfo },
    wallS: (Date.now() - t0) / 1000, allocation: cell.allocation, bn: cell.bn, calibration: cell.calibration, calibData: cell.calibData,
  }, results, densities, packed);
}

/** The default model loader: zoo specs and paths, as every command accepts them. */
export async function loadStudyModel(spec: string): Promise<Graph> {
  return (await openModel(spec)).graph;
}
