/**
 * A task = dataset + class subset + split. Splits are stratified and deterministic: each class's examples are
 * shuffled by a generator seeded from (dataset, class name, seed), so a class gets the same images in every
 * task that selects it (class-split tasks of one dataset are therefore disjoint), and only the seed changes them.
 */
import { DataError } from './errors.js';
import { drawKey, type Dataset, type Example } from './dataset.js';
import { openDataset } from './registry.js';
import { hashString, mulberry32, shuffled } from './rng.js';
import { parseTaskId, resolveClasses } from './task-id.js';

export type SplitName = 'train' | 'calib' | 'test';
export const SPLIT_NAMES: readonly SplitName[] = ['train', 'calib', 'test'];

export interface TaskOptions {
  /** Split seed (default 0). */
  seed?: number;
  /** At most this many images per class over all three splits (default: every image). */
  cap?: number;
  /** Share of each class's images per split (default 0.7 / 0.1 / 0.2); must sum to 1. */
  fractions?: { train: number; calib: number; test: number };
}

export interface Split {
  readonly name: SplitName;
  readonly examples: readonly Example[];
  /** Task labels 0..K-1 (position in `Task.classes`), one per example. */
  readonly labels: Int32Array;
}

export interface Task {
  /** Canonical id: `<dataset>` or `<dataset>[i,j,…]`. */
  readonly id: string;
  readonly dataset: Dataset;
  /** Class names, in task-label order. */
  readonly classes: readonly string[];
  /** Dataset class index of each task label. */
  readonly classIndices: readonly number[];
  readonly seed: number;
  readonly cap: number | null;
  readonly splits: Readonly<Record<SplitName, Split>>;
}

export const DEFAULT_FRACTIONS = { train: 0.7, calib: 0.1, test: 0.2 } as const;

/**
 * Opens a task by id (see task-id.ts). With an official test set (MNIST, Fashion-MNIST, a folder with
 * train/ and test/), `test` is drawn from it and `train`/`calib` from the official training images; the cap is
 * shared out by the same fractions. Otherwise all three splits come from one pool.
 */
export async function openTask(id: string, o: TaskOptions = {}): Promise<Task> {
  const { dataset: dsName, selection } = parseTaskId(id);
  const ds = await openDataset(dsName);
  const seed = o.seed ?? 0;
  const f = o.fractions ?? DEFAULT_FRACTIONS;
  checkOptions(id, seed, o.cap, f);
  const classIndices = resolveClasses(id, selection, ds.classes);
  if (classIndices.length < 2) {
    throw new DataError(
      `task '${id}' has ${classIndices.length} class${classIndices.length === 1 ? ` ('${ds.classes[classIndices[0]!]}')` : 'es'}; a classification ` +
        `task needs at least 2`,
      {
        context: { task: id, classes: classIndices.map((c) => ds.classes[c]) },
        fix: `select two or more classes, e.g. ${dsName}[0-1]`,
      },
    );
  }
  const byClass = new Map<number, Example[]>(classIndices.map((c) => [c, []]));
  for (const e of ds.examples) byClass.get(e.label)?.push(e);

  const parts: Record<SplitName, Example[][]> = { train: [], calib: [], test: [] };
  for (const c of classIndices) {
    const name = ds.classes[c]!;
    const all = byClass.get(c)!;
    if (all.length === 0)
      throw new DataError(`task '${id}': class '${name}' is empty`, {
        context: { task: id, class: name },
        fix: 'drop the class from the task or add images to it',
      });
    const rand = mulberry32(hashString(`${drawKey(ds)}\0${name}\0${seed}`));
    const s = ds.officialTest ? splitOfficial(all, rand, f, o.cap) : splitPooled(all, rand, f, o.cap);
    for (const k of SPLIT_NAMES) {
      if (s[k].length === 0 && f[k] > 0) {
        throw new DataError(
          `task '${id}': class '${name}' gets no ${k} images (${all.length} available${o.cap ? `, cap ${o.cap}` : ''})`,
          {
            context: { task: id, class: name, available: all.length, cap: o.cap ?? null },
            fix: 'raise the cap (at least 3 images per class) or drop the class',
          },
        );
      }
      parts[k].push(s[k]);
    }
  }
  const mk = (k: SplitName): Split => {
    const examples = parts[k].flat();
    const labels = new Int32Array(examples.length);
    let i = 0;
    parts[k].forEach((xs, label) => xs.forEach(() => (labels[i++] = label)));
    return { name: k, examples, labels };
  };
  const canonical = selection === null ? ds.name : `${ds.name}[${classIndices.join(',')}]`;
  return {
    id: canonical,
    dataset: ds,
    classes: classIndices.map((c) => ds.classes[c]!),
    classIndices,
    seed,
    cap: o.cap ?? null,
    splits: { train: mk('train'), calib: mk('calib'), test: mk('test') },
  };
}

type Parts = Record<SplitName, Example[]>;

function splitPooled(all: Example[], rand: () => number, f: TaskOptions['fractions'] & {}, cap?: number): Parts {
  const xs = shuffled(all, rand).slice(0, cap ?? all.length);
  const n = xs.length;
  const nTest = f.test > 0 ? Math.max(1, Math.round(n * f.test)) : 0;
  const nCalib = f.calib > 0 ? Math.max(1, Math.round(n * f.calib)) : 0;
  const nTrain = Math.max(0, n - nTest - nCalib);
  return {
    train: xs.slice(0, nTrain),
    calib: xs.slice(nTrain, nTrain + nCalib),
    test: xs.slice(nTrain + nCalib, nTrain + nCalib + nTest),
  };
}

function splitOfficial(all: Example[], rand: () => number, f: TaskOptions['fractions'] & {}, cap?: number): Parts {
  const fit = f.train + f.calib;
  const capFit = cap === undefined ? undefined : Math.round(cap * fit);
  const fitPool = shuffled(
    all.filter((e) => e.pool === 'train'),
    rand,
  ).slice(0, capFit);
  const testPool = shuffled(
    all.filter((e) => e.pool === 'test'),
    rand,
  );
  const test = f.test > 0 ? testPool.slice(0, cap === undefined ? testPool.length : cap - capFit!) : [];
  const n = fitPool.length;
  const nCalib = f.calib > 0 ? Math.min(n - 1, Math.max(1, Math.round((n * f.calib) / fit))) : 0;
  return { train: fitPool.slice(nCalib), calib: fitPool.slice(0, nCalib), test };
}

function checkOptions(
  id: string,
  seed: number,
  cap: number | undefined,
  f: { train: number; calib: number; test: number },
): void {
  const bad = (opt: string, why: string, fix: string) =>
    new DataError(`task '${id}': option ${opt} ${why}`, { context: { task: id, option: opt }, fix });
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw bad('seed', `must be a non-negative integer, got ${seed}`, 'pass e.g. --seed 0');
  if (cap !== undefined && (!Number.isSafeInteger(cap) || cap < 3))
    throw bad('cap', `must be an integer >= 3 (one image per split), got ${cap}`, 'pass e.g. --cap 100');
  const vals = [f.train, f.calib, f.test];
  if (
    vals.some((v) => !Number.isFinite(v) || v < 0) ||
    f.train <= 0 ||
    Math.abs(vals.reduce((a, b) => a + b, 0) - 1) > 1e-9
  ) {
    throw bad(
      'fractions',
      `must be non-negative with train > 0 and sum to 1, got ${vals.join('/')}`,
      'use e.g. 0.7/0.1/0.2',
    );
  }
}
