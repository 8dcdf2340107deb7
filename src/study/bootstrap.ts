/**
 * Percentile-bootstrap intervals for the numbers a study reports: accuracy retained on held-out tasks, averaged over
 * tasks and over replicates (cells that differ only by seed or source split).
 *
 * What is resampled is what varies between two runs of the same study on new data and new seeds:
 * - the test images of each task, with replacement, the SAME draw for the pruned model and the dense reference
 *   (paired: both read the same images) and for every replicate (the test split does not depend on the cell seed);
 * - the replicates themselves, with replacement (seeds, source splits), when there are several.
 * Each draw recomputes the statistic (mean over replicates of the mean over tasks of pruned / dense accuracy); the
 * 2.5 and 97.5 percentiles of the draws are the interval. Deterministic for a given `seed`.
 */
import { TapirError } from '../engine/index.js';
import { mulberry32 } from '../data/rng.js';

/** One task of one replicate: per test image, 1 where the prediction is right (same images, same order in both). */
export interface PairedTask {
  task: string;
  pruned: Uint8Array;
  dense: Uint8Array;
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

function checkReplicates(reps: readonly Replicate[]): string[] {
  if (reps.length === 0)
    throw new TapirError('E_ARG', 'bootstrap: no replicates', { fix: 'pass at least one cell with per-image results' });
  const tasks = reps[0]!.map((t) => t.task);
  for (const r of reps) {
    if (r.length !== tasks.length || r.some((t, i) => t.task !== tasks[i]))
      throw new TapirError('E_ARG', 'bootstrap: replicates hold different tasks', {
        context: { expected: tasks, got: r.map((t) => t.task) },
        fix: 'group only cells evaluated on the same held-out tasks',
      });
    for (const t of r)
      if (
        t.pruned.length !== t.dense.length ||
        t.pruned.length !== reps[0]!.find((x) => x.task === t.task)!.pruned.length
      )
        throw new TapirError('E_ARG', `bootstrap: task ${t.task} has test sets of different sizes`, {
          context: { pruned: t.pruned.length, dense: t.dense.length },
          fix: 'pair results evaluated on the same test split',
        });
  }
  return tasks;
}

/** mean over `reps` (indices) of mean over tasks of Σ pruned[idx] / Σ dense[idx] (tasks whose dense sum is 0 are skipped). */
function statistic(
  reps: readonly Replicate[],
  repIdx: ArrayLike<number>,
  imgIdx: readonly (Int32Array | null)[],
): number {
  let total = 0;
  for (let k = 0; k < repIdx.length; k++) {
    const r = reps[repIdx[k]!]!;
    let sum = 0;
    let tasks = 0;
    for (let t = 0; t < r.length; t++) {
      const { pruned, dense } = r[t]!;
      const idx = imgIdx[t];
      let p = 0;
      let d = 0;
      if (idx) {
        for (let i = 0; i < idx.length; i++) {
          p += pruned[idx[i]!]!;
          d += dense[idx[i]!]!;
        }
      } else {
        for (let i = 0; i < pruned.length; i++) {
          p += pruned[i]!;
          d += dense[i]!;
        }
      }
      if (d > 0) {
        sum += p / d;
        tasks++;
      }
    }
    total += tasks ? sum / tasks : Number.NaN;
  }
  return total / repIdx.length;
}

const quantile = (sorted: Float64Array, q: number): number => {
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
};

/** Retained fraction (pruned / dense accuracy, mean over tasks and replicates) with its bootstrap interval. */
export function retainedInterval(reps: readonly Replicate[], o: BootstrapOptions = {}): Interval {
  checkReplicates(reps);
  const draws = o.draws ?? 1000;
  const level = o.level ?? 0.95;
  if (!Number.isInteger(draws) || draws < 10 || !(level > 0 && level < 1))
    throw new TapirError('E_ARG', `bootstrap: draws ${draws} must be an integer >= 10 and level ${level} in (0, 1)`, {
      fix: 'e.g. draws 1000, level 0.95',
    });
  const rand = mulberry32(o.seed ?? 0);
  const all = Int32Array.from(reps, (_, i) => i);
  const value = statistic(
    reps,
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
    out[b] = statistic(reps, repIdx, imgIdx);
  }
  const finite = out.filter(Number.isFinite).sort();
  if (finite.length === 0) return { value, lo: Number.NaN, hi: Number.NaN };
  return { value, lo: quantile(finite, (1 - level) / 2), hi: quantile(finite, 1 - (1 - level) / 2) };
}
