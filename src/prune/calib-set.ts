/**
 * Calibration sets: the images a data-driven score, a reconstruction pruner and BN repair see. What they are is a
 * first-class choice (`CalibData`), reported with every pruning result:
 * - `source`: the source task's train split (its first n images in a seeded order), with the source labels;
 * - a task id T: T's train split the same way, with T's labels (the score then reads T's head);
 * - `mix:A+B+…`: equal shares of several tasks' train splits;
 * - `noise`: n images of uniform random pixels in [0, 255], through the model's own preprocessing.
 * `mix` and `noise` images carry no labels of the task the loss is read through: the caller labels them with the
 * dense model's own predictions (`labelByModel`), so no label information enters.
 * The train split is used because the calibration split of a capped task is small (10 %); the zero-shot heads are
 * fitted on the same split, never on the test split.
 */
import { noGrad, scope, zeros, type Tensor } from '../engine/index.js';
import { forward, preprocessOf, withTaskHead, type Graph, type LinearHead } from '../graph/index.js';
import {
  batches as makeBatches,
  imagesToTensor,
  loadSplit,
  openTask,
  type ImageSet,
  type Preprocess,
  type Task,
  type TaskOptions,
} from '../data/index.js';
import { mulberry32 } from '../data/rng.js';
import { PruneError } from './errors.js';
import type { CalibBatch } from './loss.js';

export type CalibData =
  { kind: 'source' } | { kind: 'task'; task: string } | { kind: 'mix'; tasks: string[] } | { kind: 'noise' };

/** Parses the string form: 'source', 'noise', 'mix:A+B' or a task id. */
export function parseCalibData(s: string): CalibData {
  const v = s.trim();
  if (v === 'source') return { kind: 'source' };
  if (v === 'noise') return { kind: 'noise' };
  if (v.startsWith('mix:')) {
    const tasks = v
      .slice(4)
      .split('+')
      .map((t) => t.trim())
      .filter((t) => t !== '');
    if (tasks.length === 0)
      throw new PruneError(`calibration data '${s}' names no task`, {
        context: { calibData: s },
        fix: "list tasks after 'mix:', joined by '+', e.g. mix:mnist+emoji",
      });
    return { kind: 'mix', tasks };
  }
  if (v === '')
    throw new PruneError('calibration data is empty', { fix: "use 'source', 'noise', 'mix:A+B' or a task id" });
  return { kind: 'task', task: v };
}

/** The string form of `c` (inverse of `parseCalibData`). */
export function calibDataLabel(c: CalibData): string {
  switch (c.kind) {
    case 'source':
      return 'source';
    case 'noise':
      return 'noise';
    case 'mix':
      return `mix:${c.tasks.join('+')}`;
    case 'task':
      return c.task;
  }
}

export interface CalibSetOptions {
  /** The source task: its head reads the loss unless the data is another single task. */
  source: string;
  /** Images wanted (fewer if the splits are smaller). */
  n: number;
  /** Seed of the image order (and of the noise pixels). */
  seed: number;
  /** Split seed and cap of each task. */
  taskOptions: (task: string) => TaskOptions;
  /** Opens a task (default: data's openTask); a cache may serve it. */
  open?: (id: string, o: TaskOptions) => Promise<Task>;
  batchSize?: number;
}

export interface CalibSet {
  /** NCHW images and int64 labels; owned by the caller (`disposeCalibSet`). */
  batches: CalibBatch[];
  /** The task whose head the loss is read through (its resolved id), and its class count. */
  task: string;
  /** That task as it was asked for (the spec the caller's per-task options are keyed by) and the options it was opened with. */
  taskSpec: string;
  taskOptions: TaskOptions;
  numClasses: number;
  data: CalibData;
  /** True when the labels must come from the model (`labelByModel`): mix and noise. */
  needsLabels: boolean;
  images: number;
}

/** Seed of a cell's noise images (a different stream from the score's and the split's seeds). */
const noiseSeed = (seed: number) => (Math.imul(seed + 1, 0x9e3779b1) ^ 0x6e6f6973) >>> 0;
/** Seed of the calibration order within a split. */
const orderSeed = (seed: number) => seed * 104729 + 17;

/** The first `n` images of `set` in a seeded order, as batches. */
function firstImages(set: ImageSet, pre: Preprocess, n: number, seed: number, batchSize: number): CalibBatch[] {
  const want = Math.min(n, set.n);
  const out: CalibBatch[] = [];
  let have = 0;
  for (const b of makeBatches(set, pre, {
    batchSize: Math.min(batchSize, Math.max(1, want)),
    shuffle: true,
    seed: orderSeed(seed),
  })) {
    const k = Math.min(b.indices.length, want - have);
    if (k <= 0) {
      b.x.dispose();
      b.y.dispose();
      continue;
    }
    if (k === b.indices.length) out.push({ x: b.x, y: b.y });
    else {
      out.push(scope(() => ({ x: b.x.narrow(0, 0, k).contiguous(), y: b.y.narrow(0, 0, k).contiguous() })));
      b.x.dispose();
      b.y.dispose();
    }
    have += k;
  }
  return out;
}

/** The calibration images of `data` for model `g` (its input size and preprocessing). */
export async function calibrationSet(g: Graph, data: CalibData, o: CalibSetOptions): Promise<CalibSet> {
  if (!(Number.isInteger(o.n) && o.n >= 1))
    throw new PruneError(`calibration size must be a positive integer, got ${o.n}`, { fix: 'pass e.g. --calib 128' });
  const open = o.open ?? ((id: string, opts: TaskOptions) => openTask(id, opts));
  const pre: Preprocess = preprocessOf(g);
  const bs = o.batchSize ?? 32;
  const sourceOptions = o.taskOptions(o.source);
  const source = await open(o.source, sourceOptions);
  const size = g.preprocessing.size;
  const done = (
    batches: CalibBatch[],
    task: Task,
    spec: string,
    taskOptions: TaskOptions,
    needsLabels: boolean,
  ): CalibSet => ({
    batches,
    task: task.id,
    taskSpec: spec,
    taskOptions,
    numClasses: task.classes.length,
    data,
    needsLabels,
    images: batches.reduce((k, b) => k + b.x.shape[0]!, 0),
  });
  switch (data.kind) {
    case 'source':
      return done(
        firstImages(await loadSplit(source, 'train', size), pre, o.n, o.seed, bs),
        source,
        o.source,
        sourceOptions,
        false,
      );
    case 'task': {
      const options = o.taskOptions(data.task);
      const t = await open(data.task, options);
      return done(firstImages(await loadSplit(t, 'train', size), pre, o.n, o.seed, bs), t, data.task, options, false);
    }
    case 'mix': {
      const out: CalibBatch[] = [];
      try {
        for (const [i, id] of data.tasks.entries()) {
          // Equal shares; the first n mod T tasks give one image more.
          const share = Math.floor(o.n / data.tasks.length) + (i < o.n % data.tasks.length ? 1 : 0);
          if (share === 0) continue;
          const t = await open(id, o.taskOptions(id));
          out.push(...firstImages(await loadSplit(t, 'train', size), pre, share, o.seed, bs));
        }
      } catch (e) {
        disposeCalibSet({ batches: out });
        throw e;
      }
      return done(out, source, o.source, sourceOptions, true);
    }
    case 'noise': {
      const [h, w] = size;
      const rand = mulberry32(noiseSeed(o.seed));
      const images = new Uint8Array(o.n * 3 * h * w);
      for (let i = 0; i < images.length; i++) images[i] = Math.floor(rand() * 256);
      const set: ImageSet = {
        task: 'noise',
        split: 'train',
        classes: source.classes,
        size: [h, w],
        n: o.n,
        images,
        labels: new Int32Array(o.n),
        keys: [],
        skipped: [],
      };
      const out: CalibBatch[] = [];
      const step = Math.min(bs, o.n);
      for (let i = 0; i < o.n; i += step) {
        const idx = Int32Array.from({ length: Math.min(step, o.n - i) }, (_, j) => i + j);
        const x = imagesToTensor(set, idx, pre);
        out.push({ x, y: zeros([idx.length], { dtype: 'int64' }) });
      }
      return done(out, source, o.source, sourceOptions, true);
    }
  }
}

/** Replaces every label by the argmax of `reference` read through `head` (the model's own prediction). */
export function labelByModel(set: CalibSet, reference: Graph, head: LinearHead): void {
  const hg = withTaskHead(reference, head);
  set.batches = set.batches.map((b) => {
    const y = scope(() => noGrad(() => forward(hg, b.x, { mode: 'eval' }).outputs[0]!.argmax(1).to('int64')));
    b.y.dispose();
    return { x: b.x, y };
  });
  set.needsLabels = false;
}

export function disposeCalibSet(set: { batches: readonly { x: Tensor; y: Tensor }[] }): void {
  for (const b of set.batches) {
    b.x.dispose();
    b.y.dispose();
  }
}
