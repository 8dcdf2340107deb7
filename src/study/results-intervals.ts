/**
 * Held-out retained accuracy with 95 % bootstrap intervals (bootstrap.ts): per score × sparsity, head and phase, the
 * mean over held-out tasks of pruned / dense accuracy, averaged over the cells that differ only by seed or source split;
 * the interval resamples test images (paired with the dense reference) and those cells. Needs the per-image results
 * the store keeps (older databases: no finding).
 */
import { unpackBits } from '../graph/index.js';
import { retainedInterval, type Interval, type PairedTask } from './bootstrap.js';
import type { CellRow, ReportData } from './report-data.js';
import { AXES, configLabel, pct, type Axis, type Finding } from './results-findings.js';

const PANELS: readonly { phase: string; head: string; name: string }[] = [
  { phase: 'zero-shot', head: 'dense', name: 'zero-shot, dense head' },
  { phase: 'zero-shot', head: 'refit', name: 'zero-shot, refit head' },
  { phase: 'finetuned', head: 'dense', name: 'after fine-tuning, dense head' },
];

const fmt = (i: Interval) => `${pct(i.value)} [${pct(i.lo, 0)}–${pct(i.hi, 0)}]`;
const separates = (a: Interval, b: Interval) => a.lo > b.hi || b.lo > a.hi;

export interface IntervalPanel {
  phase: string;
  head: string;
  name: string;
  /** Per score label: one interval per sparsity (null where a cell lacks per-image results). */
  rows: Map<string, (Interval | null)[]>;
}
export interface RetainedIntervals {
  heldout: string[];
  /** Held-out test images per replicate (sum over tasks). */
  images: number;
  /** Most cells pooled into one interval. */
  replicates: number;
  sparsities: number[];
  panels: IntervalPanel[];
}

const memo = new WeakMap<ReportData, Map<number, RetainedIntervals | null>>();

/** Bootstrap intervals of held-out retained accuracy for every score × sparsity × panel (null: no per-image data). */
export function retainedIntervals(d: ReportData, draws = 1000): RetainedIntervals | null {
  const cached = memo.get(d)?.get(draws);
  if (cached !== undefined) return cached;
  const out = computeIntervals(d, draws);
  if (!memo.has(d)) memo.set(d, new Map());
  memo.get(d)!.set(draws, out);
  return out;
}

function computeIntervals(d: ReportData, draws: number): RetainedIntervals | null {
  const correct = d.correct ?? new Map<string, Uint8Array>();
  const denseCorrect = d.denseCorrect ?? new Map<string, Uint8Array>();
  if (correct.size === 0 || denseCorrect.size === 0) return null;
  const protocolOf = new Map(d.cells.map((c) => [c.key, c.protocol]));
  const nTest = new Map(d.dense.map((r) => [`${r.model}\t${r.task}`, r.nTest]));
  const heldout = [...new Set(d.acc.filter((a) => a.heldout && a.head !== 'trained').map((a) => a.task))].sort();
  const varying = AXES.filter((a: Axis) => new Set(d.cells.map((c) => String(c[a]))).size > 1);
  const cells = d.cells.filter((c) => c.control === 'none');
  const manyModels = new Set(cells.map((x) => x.model)).size > 1;
  const labelOf = (c: CellRow) => `${manyModels ? `${c.model} ` : ''}${configLabel(c, varying)}`;

  /** One cell's held-out tasks as paired bits, or null when any is missing. */
  const replicate = (c: CellRow, phase: string, head: string): PairedTask[] | null => {
    const out: PairedTask[] = [];
    for (const task of heldout) {
      const n = nTest.get(`${c.model}\t${task}`);
      const p = correct.get([c.key, task, phase, head].join('\t'));
      const q = denseCorrect.get([c.model, protocolOf.get(c.key), task, 'dense'].join('\t'));
      if (n === undefined || !p || !q) return null;
      out.push({ task, pruned: Uint8Array.from(unpackBits(p, n)), dense: Uint8Array.from(unpackBits(q, n)) });
    }
    return out;
  };

  const labels = [...new Set(cells.map(labelOf))];
  const sparsities = [...new Set(cells.map((c) => c.sparsity))].sort((a, b) => a - b);
  let replicates = 0;
  const panels: IntervalPanel[] = [];
  for (const panel of PANELS) {
    const rows = new Map<string, (Interval | null)[]>();
    for (const label of labels) {
      const row = sparsities.map((s) => {
        const reps = cells
          .filter((c) => labelOf(c) === label && c.sparsity === s)
          .map((c) => replicate(c, panel.phase, panel.head));
        if (reps.length === 0 || reps.some((r) => r === null)) return null;
        replicates = Math.max(replicates, reps.length);
        return retainedInterval(reps as PairedTask[][], { draws, seed: 0 });
      });
      if (row.some((x) => x !== null)) rows.set(label, row);
    }
    if (rows.size) panels.push({ ...panel, rows });
  }
  if (panels.length === 0) return null;
  const images = heldout.reduce((a, t) => a + Math.max(...d.dense.filter((r) => r.task === t).map((r) => r.nTest)), 0);
  return { heldout, images, replicates, sparsities, panels };
}

/** The finding, or null when the database has no per-image results for these cells. */
export function intervalsFinding(d: ReportData, o: { draws?: number } = {}): Finding | null {
  const iv = retainedIntervals(d, o.draws ?? 1000);
  if (!iv) return null;
  const rows: string[][] = [];
  const sentences: string[] = [];
  for (const panel of iv.panels) {
    for (const [label, row] of panel.rows) rows.push([panel.name, label, ...row.map((i) => (i ? fmt(i) : '–'))]);
    if (panel.rows.size < 2) continue;
    // Per sparsity: the best score, and whether its interval separates from the runner-up's.
    const parts = iv.sparsities.flatMap((s, j) => {
      const ranked = [...panel.rows]
        .map(([l, r]) => [l, r[j]] as const)
        .filter((x): x is readonly [string, Interval] => x[1] !== null && x[1] !== undefined)
        .sort((a, b) => b[1].value - a[1].value);
      if (ranked.length < 2) return [];
      const [best, next] = [ranked[0]!, ranked[1]!];
      return [
        `${pct(s, 0)}: ${best[0]} ${fmt(best[1])}, ${separates(best[1], next[1]) ? 'ahead of' : 'not separable from'} ${next[0]} ${fmt(next[1])}`,
      ];
    });
    if (parts.length) sentences.push(`${panel.name[0]!.toUpperCase()}${panel.name.slice(1)}: ${parts.join('; ')}.`);
  }
  return {
    id: 'intervals',
    title: 'Held-out retained accuracy with 95 % bootstrap intervals',
    sentences: [
      `Mean over the ${iv.heldout.length} held-out tasks (${iv.images} test images) of pruned / dense accuracy, averaged over ` +
        `the cells that differ only by seed or source split (up to ${iv.replicates}); brackets: 95 % percentile-bootstrap ` +
        `interval, resampling test images (paired with the dense reference) and those cells. A difference is called ` +
        `real below only when the intervals separate.`,
      ...sentences,
    ],
    table: {
      title: 'Held-out retained accuracy [95 % interval]',
      header: ['panel', 'score', ...iv.sparsities.map((s) => pct(s, 0))],
      rows,
    },
  };
}
