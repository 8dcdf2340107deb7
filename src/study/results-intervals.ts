/**
 * 95 % bootstrap intervals (bootstrap.ts) for the numbers the study findings and plots report on held-out tasks, from
 * the per-image results the store keeps. A group of cells (those that differ only by seed or source split) gives:
 * - `groupInterval`: retained accuracy (pruned / dense, mean over held-out tasks, then over the cells) of one phase and
 *   head;
 * - `groupChange`: the change of retained accuracy from zero-shot to after fine-tuning (same head, same images);
 * - `controlGap`: a control's held-out accuracy minus that of the pre-trained model with the score's own mask.
 * Each is null when a cell lacks per-image results (older databases): the findings then print point values only.
 */
import { unpackBits } from '../graph/index.js';
import { bootstrapInterval, STATISTICS, type Interval, type PairedTask, type TaskStatistic } from './bootstrap.js';
import type { CellRow, ReportData } from './report-data.js';

export type { Interval } from './bootstrap.js';

/** Draws per interval; a fixed seed keeps the documents reproducible. */
const DRAWS = 1000;

interface Context {
  heldout: string[];
  /** Unpacked bits per store key (result rows and dense rows), or null where missing. */
  bits: (key: string, n: number | undefined, dense: boolean) => Uint8Array | null;
  nTest: Map<string, number>;
  protocolOf: Map<string, string>;
  cache: Map<string, Interval | null>;
}
const contexts = new WeakMap<ReportData, Context | null>();

function contextOf(d: ReportData): Context | null {
  if (contexts.has(d)) return contexts.get(d)!;
  const correct = d.correct ?? new Map<string, Uint8Array>();
  const denseCorrect = d.denseCorrect ?? new Map<string, Uint8Array>();
  let ctx: Context | null = null;
  if (correct.size > 0 && denseCorrect.size > 0) {
    const unpacked = new Map<string, Uint8Array | null>();
    ctx = {
      heldout: [...new Set(d.acc.filter((a) => a.heldout && a.head !== 'trained').map((a) => a.task))].sort(),
      bits: (key, n, dense) => {
        const k = `${dense ? 'd' : 'r'}\t${key}`;
        if (!unpacked.has(k)) {
          const packed = (dense ? denseCorrect : correct).get(key);
          unpacked.set(k, packed && n !== undefined ? Uint8Array.from(unpackBits(packed, n)) : null);
        }
        return unpacked.get(k)!;
      },
      nTest: new Map(d.dense.map((r) => [`${r.model}\t${r.task}`, r.nTest])),
      protocolOf: new Map(d.cells.map((c) => [c.key, c.protocol])),
      cache: new Map(),
    };
  }
  contexts.set(d, ctx);
  return ctx;
}

/** Held-out tasks of one cell's phase/head as bits, with `other` from a second (cell, phase, head); null if missing. */
function replicate(
  ctx: Context,
  c: CellRow,
  phase: string,
  head: string,
  other?: { cell: CellRow; phase: string; head: string },
): PairedTask[] | null {
  const out: PairedTask[] = [];
  for (const task of ctx.heldout) {
    const n = ctx.nTest.get(`${c.model}\t${task}`);
    const pruned = ctx.bits([c.key, task, phase, head].join('\t'), n, false);
    const dense = ctx.bits([c.model, ctx.protocolOf.get(c.key), task, 'dense'].join('\t'), n, true);
    const o = other ? ctx.bits([other.cell.key, task, other.phase, other.head].join('\t'), n, false) : undefined;
    if (!pruned || !dense || o === null) return null;
    out.push(o ? { task, pruned, dense, other: o } : { task, pruned, dense });
  }
  return out;
}

function cached(ctx: Context, key: string, f: () => Interval | null): Interval | null {
  if (!ctx.cache.has(key)) ctx.cache.set(key, f());
  return ctx.cache.get(key)!;
}

function interval(reps: (PairedTask[] | null)[], stat: TaskStatistic): Interval | null {
  if (reps.length === 0 || reps.some((r) => r === null)) return null;
  return bootstrapInterval(reps as PairedTask[][], stat, { draws: DRAWS, seed: 0 });
}

/** Retained accuracy on held-out tasks of `cells` (pooled replicates) in one phase and head. */
export function groupInterval(d: ReportData, cells: readonly CellRow[], phase: string, head: string): Interval | null {
  const ctx = contextOf(d);
  if (!ctx || cells.length === 0) return null;
  const key = ['retained', phase, head, ...cells.map((c) => c.key)].join('\n');
  return cached(ctx, key, () =>
    interval(
      cells.map((c) => replicate(ctx, c, phase, head)),
      STATISTICS.retained,
    ),
  );
}

/** Retained after fine-tuning minus retained zero-shot (same head), on held-out tasks of `cells`. */
export function groupChange(d: ReportData, cells: readonly CellRow[], head: string): Interval | null {
  const ctx = contextOf(d);
  if (!ctx || cells.length === 0) return null;
  const key = ['change', head, ...cells.map((c) => c.key)].join('\n');
  return cached(ctx, key, () =>
    interval(
      cells.map((c) => replicate(ctx, c, 'zero-shot', head, { cell: c, phase: 'finetuned', head })),
      STATISTICS.change,
    ),
  );
}

/** Zero-shot held-out accuracy of `control` minus that of `own` (the pre-trained model, the score's own mask). */
export function controlGap(d: ReportData, control: CellRow, own: readonly CellRow[], head: string): Interval | null {
  const ctx = contextOf(d);
  if (!ctx || own.length === 0) return null;
  const key = ['gap', head, control.key, ...own.map((c) => c.key)].join('\n');
  return cached(ctx, key, () =>
    interval(
      own.map((c) => replicate(ctx, c, 'zero-shot', head, { cell: control, phase: 'zero-shot', head })),
      STATISTICS.accuracyGap,
    ),
  );
}

/** Whether two intervals are disjoint (the only case the findings call a difference real). */
export const separates = (a: Interval, b: Interval): boolean => a.lo > b.hi || b.lo > a.hi;
