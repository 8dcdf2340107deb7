/**
 * Percentile-bootstrap intervals for the numbers a study reports: accuracy retained on held-out tasks, averaged over
 * tasks and over replicates (cells that differ only by seed or source split).
 *
 * What is resampled is what varies between two runs of the same study on new data and new seeds:
 * - the test images of each task, with replacement, the SAME draw for the pruned model and the dense reference
 *   (paired: both read the same images) and for every replicate (the test split does not depend on the cell seed);
 * - the replicates themselves, with replacement (seeds, source splits), when there are several.
 * Each draw recomputes the statistic (mean over replicates of the mean over tasks of a per-task statistic: retained
 * = pruned / dense accuracy, or the difference between two results on the same images); the 2.5 and 97.5 percentiles of
 * the draws are the interval. `pairsInterval` does the same for numbers defined on pairs of tasks (curvature alignment),
 * resampling the tasks. Deterministic for a given `seed`.
 */
import { TapirError } from '../engine/index.js';
import { mulberry32 } from '../data/rng.js';

/**
 * One task of one replicate: per test image, 1 where the prediction is right (same images, same order in every array).
 * `other` is a second result on the same images to compare with `pruned`: the same cell after fine-tuning, or a
 * control cell (its differences are the `change` and `accuracyGap` statistics).
 */
export interface PairedTask {
  task: string;
  pruned: Uint8Array;
  dense: Uint8Array;
  other?: Uint8Array;
}
/** One replicate (a cell): its held-out tasks. Every replicate of one interval must hold the same tasks. */
export type Replicate = readonly PairedTask[];

export interface Interval {
  /** The statistic on the data as measured. */
  value: number;
  lo: number;
  hi: number;
}

export interface BootstrapOptions {
  /** Bootstrap draws (default 1000). */
  draws?: number;
  seed?: number;
  /** Central coverage (default 0.95). */
  level?: number;
}

/** Right answers of one task in one draw: pruned, dense and other (0 without one), out of `n` images. */
export interface TaskSums {
  pruned: number;
  dense: number;
  other: number;
  n: number;
}
/** A per-task statistic; the reported number is its mean over tasks (null: task left out), then over replicates. */
export type TaskStatistic = (s: TaskSums) => number | null;

/** The statistics the reports use. */
export const STATISTICS = {
  /** pruned / dense accuracy (tasks whose dense sum is 0 are skipped). */
  retained: (s: TaskSums) => (s.dense > 0 ? s.pruned / s.dense : null),
  /** Retained of `other` minus retained of `pruned`: e.g. after fine-tuning minus zero-shot. */
  change: (s: TaskSums) => (s.dense > 0 ? (s.other - s.pruned) / s.dense : null),
  /** Accuracy of `other` minus accuracy of `pruned`: e.g. a control minus the score's own mask. */
  accuracyGap: (s: TaskSums) => (s.n > 0 ? (s.other - s.pruned) / s.n : null),
} satisfies Record<string, TaskStatistic>;

function checkReplicates(reps: readonly Replicate[], needsOther: boolean): void {
  if (reps.length === 0)
    throw new TapirError('E_ARG', 'bootstrap: no replicates', { fix: 'pass at least one cell with per-image results' });
  const first = reps[0]!;
  for (const r of reps) {
    if (r.length !== first.length || r.some((t, i) => t.task !== first[i]!.task))
      throw new TapirError('E_ARG', 'bootstrap: replicates hold different tasks', {
        context: { expected: first.map((t) => t.task), got: r.map((t) => t.task) },
        fix: 'group only cells evaluated on the same held-out tasks',
      });
    r.forEach((t, i) => {
      const n = first[i]!.pruned.length;
      if (t.pruned.length !== n || t.dense.length !== n || (t.other !== undefined && t.other.length !== n))
        throw new TapirError('E_ARG', `bootstrap: task ${t.task} has test sets of different sizes`, {
          context: { pruned: t.pruned.length, dense: t.dense.length, other: t.other?.length ?? null, expected: n },
          fix: 'pair results evaluated on the same test split',
        });
      if (needsOther && !t.other)
        throw new TapirError('E_ARG', `bootstrap: task ${t.task} has no second result to compare with`, {
          fix: 'set `other` on every task for a difference statistic',
        });
    });
  }
}

const sumOver = (bits: Uint8Array | undefined, idx: Int32Array | null): number => {
  if (!bits) return 0;
  let s = 0;
  if (idx) for (let i = 0; i < idx.length; i++) s += bits[idx[i]!]!;
  else for (let i = 0; i < bits.length; i++) s += bits[i]!;
  return s;
};

/** mean over `repIdx` of the mean over tasks of `stat` on the images `imgIdx` (null: every image once). */
function statistic(
  reps: readonly Replicate[],
  stat: TaskStatistic,
  repIdx: ArrayLike<number>,
  imgIdx: readonly (Int32Array | null)[],
): number {
  let total = 0;
  for (let k = 0; k < repIdx.length; k++) {
    const r = reps[repIdx[k]!]!;
    let sum = 0;
    let tasks = 0;
    for (let t = 0; t < r.length; t++) {
      const { pruned, dense, other } = r[t]!;
      const idx = imgIdx[t]!;
      const v = stat({
        pruned: sumOver(pruned, idx),
        dense: sumOver(dense, idx),
        other: sumOver(other, idx),
        n: idx ? idx.length : pruned.length,
      });
      if (v !== null) {
        sum += v;
        tasks++;
      }
    }
    total += tasks ? sum / tasks : Number.NaN;
  }
  return total / repIdx.length;
}

function options(o: BootstrapOptions): { draws: number; level: number } {
  const draws = o.draws ?? 1000;
  const level = o.level ?? 0.95;
  if (!Number.isInteger(draws) || draws < 10 || !(level > 0 && level < 1))
    throw new TapirError('E_ARG', `bootstrap: draws ${draws} must be an integer >= 10 and level ${level} in (0, 1)`, {
      fix: 'e.g. draws 1000, level 0.95',
    });
  return { draws, level };
}

const quantile = (sorted: Float64Array, q: number): number => {
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
};

/** Any per-task statistic (mean over tasks and replicates) with its percentile-bootstrap interval. */
export function bootstrapInterval(reps: readonly Replicate[], stat: TaskStatistic, o: BootstrapOptions = {}): Interval {
  checkReplicates(reps, stat !== STATISTICS.retained);
  const { draws, level } = options(o);
  const rand = mulberry32(o.seed ?? 0);
  const all = Int32Array.from(reps, (_, i) => i);
  const value = statistic(
    reps,
    stat,
    all,
    reps[0]!.map(() => null),
  );
  const out = new Float64Array(draws);
  const repIdx = new Int32Array(reps.length);
  const sizes = reps[0]!.map((t) => t.pruned.length);
  const imgIdx = sizes.map((n) => new Int32Array(n));
  for (let b = 0; b < draws; b++) {
    for (let k = 0; k < repIdx.length; k++) repIdx[k] = Math.floor(rand() * reps.length);
    imgIdx.forEach((idx, t) => {
      for (let i = 0; i < idx.length; i++) idx[i] = Math.floor(rand() * sizes[t]!);
    });
    out[b] = statistic(reps, stat, repIdx, imgIdx);
  }
  const finite = out.filter(Number.isFinite).sort();
  if (finite.length === 0) return { value, lo: Number.NaN, hi: Number.NaN };
  return { value, lo: quantile(finite, (1 - level) / 2), hi: quantile(finite, 1 - (1 - level) / 2) };
}

/** Retained fraction (pruned / dense accuracy, mean over tasks and replicates) with its bootstrap interval. */
export const retainedInterval = (reps: readonly Replicate[], o: BootstrapOptions = {}): Interval =>
  bootstrapInterval(reps, STATISTICS.retained, o);

/**
 * A statistic of unordered pairs of distinct items (e.g. the curvature alignment of two tasks), averaged over pairs,
 * with a percentile-bootstrap interval that resamples the items (what varies if the study drew other tasks): each draw
 * takes items with replacement and averages `value` over the pairs of positions holding two different items.
 * `value(a, b)` must equal `value(b, a)`; it returns null for a pair it has no number for (left out). Null when no pair
 * has a number.
 */
export function pairsInterval(
  items: readonly string[],
  value: (a: string, b: string) => number | null,
  o: BootstrapOptions = {},
): Interval | null {
  const { draws, level } = options(o);
  const n = items.length;
  const v = (i: number, j: number) => (i === j ? null : value(items[i]!, items[j]!));
  const table = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => v(i, j)));
  const meanOver = (idx: ArrayLike<number>): number => {
    let s = 0;
    let k = 0;
    for (let a = 0; a < idx.length; a++)
      for (let b = a + 1; b < idx.length; b++) {
        const x = table[idx[a]!]![idx[b]!];
        if (x !== null && x !== undefined) {
          s += x;
          k++;
        }
      }
    return k ? s / k : Number.NaN;
  };
  const point = meanOver(Int32Array.from(items, (_, i) => i));
  if (!Number.isFinite(point)) return null;
  const rand = mulberry32(o.seed ?? 0);
  const idx = new Int32Array(n);
  const out = new Float64Array(draws);
  for (let b = 0; b < draws; b++) {
    for (let i = 0; i < n; i++) idx[i] = Math.floor(rand() * n);
    out[b] = meanOver(idx);
  }
  const finite = out.filter(Number.isFinite).sort();
  return { value: point, lo: quantile(finite, (1 - level) / 2), hi: quantile(finite, 1 - (1 - level) / 2) };
}
