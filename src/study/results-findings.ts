/**
 * Findings for docs/RESULTS.md: plain sentences COMPUTED from a study's report data, each returned with the table
 * that backs it (the table's numbers are the ones the sentence reads). Nothing here is typed in by hand: thresholds
 * are parameters, and a sentence changes when the data does.
 *
 * Conventions: "retained" = accuracy / dense accuracy of the same model on the same task; "held-out" = mean over the
 * study's held-out tasks; cells that differ only by source or seed are averaged. A configuration is a score plus
 * the values of every ablation axis that varies in the study (bn, allocation, calibration, calib_data).
 * Where the database keeps per-image results, held-out numbers carry a 95 % bootstrap interval in brackets
 * (results-intervals.ts), and a sentence calls one configuration ahead of another only when their intervals separate.
 */
import type { Table } from './report.js';
import type { CellRow, ReportData } from './report-data.js';
import { controlGap, groupChange, groupInterval, separates, type Interval } from './results-intervals.js';

export interface Thresholds {
  /** P1 holds where held-out zero-shot retained ≥ p1. */
  p1: number;
  /** P2 holds where fine-tuning raised held-out retained by ≥ p2Gain (fraction of dense, 0.01 = 1 point). */
  p2Gain: number;
  /** The issue's target: held-out zero-shot retained ≥ `retained` at `sparsity`, on every target task. */
  target: { sparsity: number; retained: number }[];
  /** Held-out tasks the target is checked on (regular expression over task ids; default every one, a study's `target_tasks` narrows it). */
  targetTasks: RegExp;
  /** A tensor keeping less than this fraction of its weights counts as emptied. */
  collapse: number;
}

export const DEFAULT_THRESHOLDS: Thresholds = {
  p1: 0.9,
  p2Gain: 0.01,
  target: [
    { sparsity: 0.5, retained: 0.9 },
    { sparsity: 0.7, retained: 0.8 },
  ],
  targetTasks: /./,
  collapse: 0.01,
};

export interface Finding {
  id: string;
  title: string;
  sentences: string[];
  table: Table | null;
  /** Target findings only: per head, the configuration with the largest worst-case margin over the target points. */
  closest?: { head: string; label: string; margin: number; reached: boolean; worst: string }[];
}

/** Ablation axes a cell may carry (H2's grid axes); absent ones read as null. */
export const AXES = ['bn', 'allocation', 'calibration', 'calibData'] as const;
export type Axis = (typeof AXES)[number];
const AXIS_NAMES: Record<Axis, string> = {
  bn: 'bn',
  allocation: 'allocation',
  calibration: 'calibration',
  calibData: 'calib_data',
};

export const pct = (x: number | null | undefined, digits = 1): string =>
  x === null || x === undefined || !Number.isFinite(x) ? '–' : `${(100 * x).toFixed(digits)}%`;
const pts = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(100 * x).toFixed(1)}`;
/** A share with its interval when there is one: `46.7% [42–52]`. */
export const pctIv = (x: number | null | undefined, iv: Interval | null): string =>
  iv && x !== null && x !== undefined && Number.isFinite(iv.lo)
    ? `${pct(x)} [${(100 * iv.lo).toFixed(0)}–${(100 * iv.hi).toFixed(0)}]`
    : pct(x);
/** A change in points with its interval when there is one: `+15.5 [+9.8, +21.0]`. */
const ptsIv = (x: number, iv: Interval | null): string =>
  iv && Number.isFinite(iv.lo) ? `${pts(x)} [${pts(iv.lo)}, ${pts(iv.hi)}]` : pts(x);
const mean = (xs: readonly number[]): number | null => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
const listing = (xs: readonly string[]) =>
  xs.length <= 1 ? xs.join('') : `${xs.slice(0, -1).join(', ')} and ${xs.at(-1)}`;

/** A task id for sentences and tables: a folder task by its folder name (`folder:../data/cifar10[0-4]` → `cifar10[0-4]`), each task of a `mix:` too. */
export const taskName = (t: string): string =>
  t.startsWith('mix:') ? `mix:${t.slice(4).split('+').map(taskName).join('+')}` : t.replace(/^folder:(.*[\\/])?/, '');

/** The value of an ablation axis on a cell: a field of the cell row, else of its info JSON (or info.prune). */
export function axisValue(c: CellRow, axis: Axis): string | null {
  const row = c as unknown as Record<string, unknown>;
  const info = (c.info ?? {}) as Record<string, unknown>;
  const prune = (info.prune ?? {}) as Record<string, unknown>;
  const bnInfo = info.bn as Record<string, unknown> | string | undefined;
  const v =
    row[axis] ??
    info[axis] ??
    (axis === 'bn' && bnInfo && typeof bnInfo === 'object' ? bnInfo.mode : bnInfo) ??
    prune[axis] ??
    null;
  return v === null || v === undefined ? null : String(v);
}

/** Axes with more than one value among the cells. */
export function varyingAxes(cells: readonly CellRow[]): Axis[] {
  return AXES.filter((a) => new Set(cells.map((c) => axisValue(c, a))).size > 1);
}

function sortAxisValues(vs: string[]): string[] {
  return vs.every((v) => v !== '' && Number.isFinite(Number(v))) ? vs.sort((a, b) => Number(a) - Number(b)) : vs;
}

/** Score plus the varying axis values in brackets, e.g. `magnitude [bn=match-dense]` (brackets, so that a list of
 * configurations joined with commas stays readable). */
export function configLabel(c: CellRow, axes: readonly Axis[]): string {
  const vs = axes.map((a) => `${AXIS_NAMES[a]}=${taskName(String(axisValue(c, a)))}`);
  return vs.length === 0 ? c.score : `${c.score} [${vs.join(', ')}]`;
}

/** Mean over the cell's held-out rows of `field` for one phase and head (null when there is none). */
export function heldMean(
  d: ReportData,
  cell: string,
  phase: string,
  head: string,
  field: 'retained' | 'accuracy' = 'retained',
): number | null {
  return mean(
    d.acc
      .filter((a) => a.cell === cell && a.heldout && a.phase === phase && a.head === head && a[field] !== null)
      .map((a) => a[field] as number),
  );
}

export interface Grouped {
  label: string;
  sparsity: number;
  cells: CellRow[];
}
/** Cells grouped by label × sparsity (the replicates: seeds, source splits). */
export function groupBy(cells: readonly CellRow[], label: (c: CellRow) => string): Grouped[] {
  const m = new Map<string, Grouped>();
  for (const c of cells) {
    const l = label(c);
    const k = `${l}\0${c.sparsity}`;
    if (!m.has(k)) m.set(k, { label: l, sparsity: c.sparsity, cells: [] });
    m.get(k)!.cells.push(c);
  }
  return [...m.values()];
}
export const groupMean = (
  d: ReportData,
  g: Grouped,
  phase: string,
  head: string,
  field: 'retained' | 'accuracy' = 'retained',
) => mean(g.cells.map((c) => heldMean(d, c.key, phase, head, field)).filter((x): x is number => x !== null));

const sparsitiesOf = (cells: readonly CellRow[]) => [...new Set(cells.map((c) => c.sparsity))].sort((a, b) => a - b);
const labelsOf = (gs: readonly Grouped[]) => [...new Set(gs.map((g) => g.label))];
const headsOf = (d: ReportData, keys: Set<string>) =>
  ['dense', 'refit'].filter((h) => d.acc.some((a) => keys.has(a.cell) && a.head === h && a.heldout));

/** Largest sparsity s such that `ok` holds at every grid sparsity ≤ s (null when it fails at the lowest). */
export function holdsUpTo(
  values: readonly { sparsity: number; value: number | null }[],
  ok: (v: number) => boolean,
): number | null {
  let best: number | null = null;
  for (const x of [...values].sort((a, b) => a.sparsity - b.sparsity)) {
    if (x.value === null || !ok(x.value)) break;
    best = x.sparsity;
  }
  return best;
}

/** P1 per configuration and head, the best configuration per sparsity, and the paper's score order. */
export function p1Finding(d: ReportData, t: Thresholds): Finding | null {
  const cells = d.cells.filter((c) => c.control === 'none');
  const keys = new Set(cells.map((c) => c.key));
  const heads = headsOf(d, keys);
  if (cells.length === 0 || heads.length === 0) return null;
  const axes = varyingAxes(cells);
  const groups = groupBy(cells, (c) => configLabel(c, axes));
  const sps = sparsitiesOf(cells);
  const labels = labelsOf(groups);
  const groupOf = (label: string, sp: number) => groups.find((x) => x.label === label && x.sparsity === sp);
  const val = (label: string, sp: number, head: string) => {
    const g = groupOf(label, sp);
    return g ? groupMean(d, g, 'zero-shot', head) : null;
  };
  const iv = (label: string, sp: number, head: string) => {
    const g = groupOf(label, sp);
    return g ? groupInterval(d, g.cells, 'zero-shot', head) : null;
  };
  const shown = (label: string, sp: number, head: string) => pctIv(val(label, sp, head), iv(label, sp, head));
  const sentences: string[] = [];
  for (const head of heads) {
    const holds: string[] = [];
    const never: string[] = [];
    for (const l of labels) {
      const up = holdsUpTo(
        sps.map((sp) => ({ sparsity: sp, value: val(l, sp, head) })),
        (v) => v >= t.p1,
      );
      if (up === null) never.push(l);
      else holds.push(`${l} up to ${pct(up, 0)} sparsity${iv(l, up, head) ? ` (${shown(l, up, head)} there)` : ''}`);
    }
    sentences.push(
      `P1 (${head} head: held-out zero-shot accuracy ≥ ${pct(t.p1, 0)} of dense at every sparsity up to the one named) ` +
        (holds.length ? `holds for ${listing(holds)}` : 'holds for no configuration at any sparsity of the grid') +
        (holds.length && never.length ? `; it fails already at ${pct(sps[0], 0)} for ${listing(never)}` : '') +
        '.',
    );
  }
  const head = heads[0]!;
  const best = sps.map((sp) => {
    const vs = labels
      .map((l) => ({ l, v: val(l, sp, head), iv: iv(l, sp, head) }))
      .filter((x): x is { l: string; v: number; iv: Interval | null } => x.v !== null)
      .sort((a, b) => b.v - a.v);
    const top = vs[0]!.v;
    const tops = vs.filter((x) => x.v === top);
    const next = vs.find((x) => x.v < top);
    const named = `${pct(sp, 0)}: ${tops.map((x) => x.l).join(' = ')} (${pctIv(top, tops[0]!.iv)})`;
    if (!next || !tops[0]!.iv || !next.iv) return named;
    return `${named}, ${separates(tops[0]!.iv, next.iv) ? 'ahead of' : 'not separable from'} ${next.l} (${pctIv(next.v, next.iv)})`;
  });
  if (labels.length > 1)
    sentences.push(
      `Best configuration by held-out zero-shot retained accuracy (${head} head) at each sparsity` +
        (sps.some((sp) => labels.some((l) => iv(l, sp, head) !== null))
          ? ', against the runner-up (ahead of: the 95 % intervals separate)'
          : '') +
        `: ${best.join('; ')}.`,
    );
  const order = paperOrder(labels, (l) =>
    mean(sps.map((sp) => val(l, sp, head)).filter((x): x is number => x !== null)),
  );
  if (order) sentences.push(order);
  const pairwise = orderIntervals(labels, sps, (l, sp) => iv(l, sp, head));
  if (pairwise) sentences.push(`The same order at each sparsity (${head} head), by interval: ${pairwise}.`);
  return {
    id: 'p1',
    title: 'Does P1 hold? (zero-shot transfer after pruning on the source)',
    sentences,
    table: {
      title:
        'Held-out zero-shot accuracy retained (mean over held-out tasks of accuracy / dense accuracy) [95 % bootstrap interval]',
      header: ['configuration', 'head', ...sps.map((s) => pct(s, 0))],
      rows: labels.flatMap((l) => heads.map((h) => [l, h, ...sps.map((sp) => shown(l, sp, h))])),
    },
  };
}

/** The paper's claim on ResNet: magnitude and block-Hessian ahead of diagonal Hessian (means over sparsities). */
export function paperOrder(labels: readonly string[], avg: (l: string) => number | null): string | null {
  // A label is the score (`magnitude`, `block-hessian(16,fisher)`) plus, in ablations, ` [axis=value, …]`.
  const fam = (prefix: string) =>
    labels.filter((l) => l === prefix || l.startsWith(`${prefix}(`) || l.startsWith(`${prefix} [`));
  const bestOf = (ls: string[]) =>
    ls
      .map((l) => ({ l, v: avg(l) }))
      .filter((x): x is { l: string; v: number } => x.v !== null)
      .sort((a, b) => b.v - a.v)[0] ?? null;
  const mag = bestOf(fam('magnitude'));
  const blk = bestOf(fam('block-hessian'));
  const diag = bestOf(fam('diag-hessian'));
  if (!diag || (!mag && !blk)) return null;
  const ahead = [mag, blk].filter((x): x is { l: string; v: number } => x !== null);
  const holds = ahead.every((x) => x.v > diag.v);
  const best = labels.some((l) => l.includes(' [')) ? ', each score family at its best configuration' : '';
  return (
    `The paper's order (magnitude and block-Hessian ahead of diagonal Hessian) ${holds ? 'holds' : 'does not hold'} here: mean retained over the ` +
    `grid's sparsities${best}: ` +
    `${ahead.map((x) => `${x.l} ${pct(x.v)}`).join(', ')} vs ${diag.l} ${pct(diag.v)}.`
  );
}

/**
 * The paper's order per sparsity with intervals: for magnitude and block-Hessian (each family's first label) against
 * diagonal Hessian, where each is above, below or not separable (intervals overlap). Null without intervals.
 */
export function orderIntervals(
  labels: readonly string[],
  sps: readonly number[],
  iv: (label: string, sparsity: number) => Interval | null,
): string | null {
  const first = (prefix: string) =>
    labels.find((l) => l === prefix || l.startsWith(`${prefix}(`) || l.startsWith(`${prefix} [`));
  const diag = first('diag-hessian');
  const others = [first('magnitude'), first('block-hessian')].filter((l): l is string => l !== undefined);
  if (!diag || others.length === 0) return null;
  const parts: string[] = [];
  for (const l of others) {
    const by = new Map<string, number[]>();
    for (const sp of sps) {
      const a = iv(l, sp);
      const b = iv(diag, sp);
      if (!a || !b) continue;
      const word = a.lo > b.hi ? 'ahead' : a.hi < b.lo ? 'behind' : 'not separable';
      by.set(word, [...(by.get(word) ?? []), sp]);
    }
    if (by.size === 0) continue;
    parts.push(
      `${l} vs ${diag}: ` +
        ['ahead', 'behind', 'not separable']
          .filter((w) => by.has(w))
          .map(
            (w) =>
              `${w} at ${by
                .get(w)!
                .map((sp) => pct(sp, 0))
                .join(', ')}`,
          )
          .join('; '),
    );
  }
  return parts.length ? parts.join(' — ') : null;
}

/** P2: does masked fine-tuning on the source raise held-out accuracy? */
export function p2Finding(d: ReportData, t: Thresholds): Finding | null {
  const cells = d.cells.filter((c) => c.control === 'none');
  if (!d.acc.some((a) => a.phase === 'finetuned' && a.heldout && cells.some((c) => c.key === a.cell))) return null;
  const keys = new Set(cells.map((c) => c.key));
  const heads = headsOf(d, keys);
  const axes = varyingAxes(cells);
  const groups = groupBy(cells, (c) => configLabel(c, axes));
  const sps = sparsitiesOf(cells);
  const sentences: string[] = [];
  for (const head of heads) {
    const pairs = groups
      .map((g) => ({ g, zs: groupMean(d, g, 'zero-shot', head), ft: groupMean(d, g, 'finetuned', head) }))
      .filter((x): x is { g: Grouped; zs: number; ft: number } => x.zs !== null && x.ft !== null);
    if (pairs.length === 0) continue;
    const up = pairs.filter((x) => x.ft - x.zs >= t.p2Gain);
    const down = pairs.filter((x) => x.ft - x.zs <= -t.p2Gain);
    const recovered = pairs.filter((x) => x.zs < t.p1 && x.ft >= t.p1);
    const dMean = mean(pairs.map((x) => x.ft - x.zs))!;
    const ivs = pairs.map((x) => groupChange(d, x.g.cells, head));
    const sure = ivs.every((iv) => iv !== null)
      ? `; the change's 95 % interval lies above zero in ${ivs.filter((iv) => iv!.lo > 0).length} and below zero in ` +
        `${ivs.filter((iv) => iv!.hi < 0).length}`
      : '';
    sentences.push(
      `P2 (${head} head: fine-tuning on the source raised held-out retained accuracy by ≥ ${(100 * t.p2Gain).toFixed(1)} points) holds for ` +
        `${up.length} of ${pairs.length} configuration × sparsity cells; it lowered it by as much in ${down.length}${sure}; mean change ${pts(dMean)} points` +
        (recovered.length
          ? `; fine-tuning brought ${recovered.length} cell(s) from below ${pct(t.p1, 0)} back to ≥ ` +
            `${pct(t.p1, 0)} (${listing(recovered.map((x) => `${x.g.label} at ${pct(x.g.sparsity, 0)}`))})`
          : '') +
        '.',
    );
  }
  const src = (g: Grouped, phase: string, head: string) =>
    mean(
      d.acc
        .filter((a) => g.cells.some((c) => c.key === a.cell) && !a.heldout && a.phase === phase && a.head === head)
        .map((a) => a.accuracy),
    );
  const labels = labelsOf(groups);
  const cell = (l: string, sp: number, head: string) => {
    const g = groups.find((x) => x.label === l && x.sparsity === sp);
    if (!g) return '–';
    const zs = groupMean(d, g, 'zero-shot', head);
    const ft = groupMean(d, g, 'finetuned', head);
    return `${pct(zs)} → ${pct(ft)}${zs !== null && ft !== null ? ` (${ptsIv(ft - zs, groupChange(d, g.cells, head))})` : ''}`;
  };
  const rows = labels.flatMap((l) => heads.map((h) => [l, h, ...sps.map((sp) => cell(l, sp, h))]));
  rows.push(
    ...labels.map((l) => [
      l,
      'source (trained head)',
      ...sps.map((sp) => {
        const g = groups.find((x) => x.label === l && x.sparsity === sp);
        return g ? `${pct(src(g, 'zero-shot', 'dense'))} → ${pct(src(g, 'finetuned', 'trained'))}` : '–';
      }),
    ]),
  );
  return {
    id: 'p2',
    title: 'Does P2 hold? (masked fine-tuning on the source)',
    sentences,
    table: {
      title:
        'Held-out retained accuracy, zero-shot → after fine-tuning (change in points [95 % bootstrap interval]); source accuracy zero-shot (dense head) → fine-tuned (trained head)',
      header: ['configuration', 'head', ...sps.map((s) => pct(s, 0))],
      rows,
    },
  };
}

/** Per varying ablation axis: its best value at each sparsity (averaged over scores and the other axes). */
export function axisFindings(d: ReportData): Finding[] {
  const cells = d.cells.filter((c) => c.control === 'none');
  const keys = new Set(cells.map((c) => c.key));
  const heads = headsOf(d, keys);
  const sps = sparsitiesOf(cells);
  return varyingAxes(cells).map((axis) => {
    const groups = groupBy(cells, (c) => String(axisValue(c, axis)));
    const values = sortAxisValues(labelsOf(groups));
    const val = (v: string, sp: number, head: string) => {
      const g = groups.find((x) => x.label === v && x.sparsity === sp);
      return g ? groupMean(d, g, 'zero-shot', head) : null;
    };
    const sentences = heads.map(
      (head) =>
        `Best ${AXIS_NAMES[axis]} by held-out zero-shot retained accuracy (${head} head, mean over scores${
          varyingAxes(cells).length > 1 ? ' and the ' + 'other axes' : ''
        }) at each sparsity: ` +
        sps
          .map((sp) => {
            const vs = values
              .map((v) => ({ v, x: val(v, sp, head) }))
              .filter((x): x is { v: string; x: number } => x.x !== null)
              .sort((a, b) => b.x - a.x);
            if (!vs.length) return `${pct(sp, 0)}: –`;
            const top = vs.filter((x) => x.x === vs[0]!.x);
            const rest = vs.slice(top.length);
            return `${pct(sp, 0)}: ${top.map((x) => taskName(x.v)).join(' = ')} (${pct(vs[0]!.x)}${
              rest.length ? `; then ` + `${rest.map((x) => `${taskName(x.v)} ${pct(x.x)}`).join(', ')}` : ''
            })`;
          })
          .join('; ') +
        '.',
    );
    // Values reached by different scores (a score's own options beside its pinned axis value, e.g. a damping set only
    // on the 512-image score) compare those options too: say so, naming each value's scores.
    const byValue = values.map((v) => ({
      v,
      scores: [...new Set(cells.filter((c) => String(axisValue(c, axis)) === v).map((c) => c.score))].sort(),
    }));
    const pinText = new RegExp(`(; |, )?${AXIS_NAMES[axis]}=[^,;)]*`);
    const bases = byValue.map((x) => x.scores.map((sc) => sc.replace(pinText, '')).join('|'));
    if (new Set(bases).size > 1)
      sentences.push(
        `The ${AXIS_NAMES[axis]} values are not reached by the same scores (${byValue
          .map((x) => `${taskName(x.v)}: ${x.scores.join(', ')}`)
          .join('; ')}), so differences between them also carry those scores' other options.`,
      );
    return {
      id: `axis-${axis}`,
      title: `What ${AXIS_NAMES[axis]} changes`,
      sentences,
      table: {
        title: `Held-out zero-shot retained accuracy by ${AXIS_NAMES[axis]} (mean over scores)`,
        header: [AXIS_NAMES[axis], 'head', ...sps.map((s) => pct(s, 0))],
        rows: values.flatMap((v) => heads.map((h) => [taskName(v), h, ...sps.map((sp) => pct(val(v, sp, h)))])),
      },
    };
  });
}

/** Dense features vs raw pixels (and vs the random-init model when the study has that control). */
export function denseFinding(d: ReportData): Finding | null {
  const tasks = [...new Set(d.dense.map((x) => x.task))];
  const models = [...new Set(d.dense.map((x) => x.model))];
  const pre = models.find((m) => !m.startsWith('random:'));
  if (!pre || tasks.length === 0) return null;
  const acc = (m: string, task: string) => d.dense.find((x) => x.model === m && x.task === task)?.accuracy ?? null;
  const pix = (task: string) => d.pixels.find((x) => x.task === task)?.accuracy ?? null;
  const withPix = tasks.filter((task) => acc(pre, task) !== null && pix(task) !== null);
  const beat = withPix.filter((task) => acc(pre, task)! > pix(task)!);
  const close = withPix.filter((task) => acc(pre, task)! - pix(task)! < 0.05);
  const sentences = [
    `The dense pre-trained features (${pre}) beat the raw-pixel ridge baseline on ${beat.length} of ${withPix.length} tasks` +
      (close.length
        ? `; they are within 5 points of the pixels (or below) on ${listing(
            close.map((task) => `${taskName(task)} (${pct(acc(pre, task))} vs ` + `${pct(pix(task))})`),
          )}, where the task says little about pre-training`
        : '') +
      '.',
  ];
  const rnd = models.find((m) => m.startsWith('random:'));
  if (rnd) {
    const gaps = tasks
      .map((task) => ({
        task,
        g: acc(pre, task) !== null && acc(rnd, task) !== null ? acc(pre, task)! - acc(rnd, task)! : null,
      }))
      .filter((x): x is { task: string; g: number } => x.g !== null);
    sentences.push(
      `Pre-trained vs random-init dense features (${rnd}): ahead on ${gaps.filter((x) => x.g > 0).length} of ${gaps.length} tasks, by ` +
        `${pts(mean(gaps.map((x) => x.g))!)} points on average.`,
    );
  }
  // Sampling noise of the small test sets: one binomial standard error of the dense accuracy, in accuracy points
  // and as a share of dense (the unit of "retained"). Pruned and dense are scored on the same images, so a
  // difference between them is less noisy than this, but differences between tasks or studies are not.
  const ref = (task: string) => d.dense.find((x) => x.model === pre && x.task === task);
  const ses = tasks.flatMap((task) => {
    const r = ref(task);
    return r && r.nTest > 0 && r.accuracy > 0
      ? [{ task, rel: Math.sqrt((r.accuracy * (1 - r.accuracy)) / r.nTest) / r.accuracy }]
      : [];
  });
  if (ses.length) {
    const nt = tasks.map((task) => ref(task)?.nTest).filter((n): n is number => n !== undefined);
    const lo = ses.reduce((a, b) => (a.rel <= b.rel ? a : b));
    const hi = ses.reduce((a, b) => (a.rel >= b.rel ? a : b));
    const [n0, n1] = [Math.min(...nt), Math.max(...nt)];
    sentences.push(
      `The test sets are small (${n0 === n1 ? n0 : `${n0}–${n1}`} images per task): one binomial standard error of the dense accuracy is ` +
        `${pct(lo.rel)} of dense (${taskName(lo.task)}) to ${pct(hi.rel)} (${taskName(hi.task)}) in retained terms, so retained accuracies a few ` +
        `points above 100% ` +
        `and differences of a few points between configurations are within sampling noise.`,
    );
  }
  return {
    id: 'dense',
    title: 'Dense reference: what pre-training buys on each task',
    sentences,
    table: {
      title:
        'Dense accuracy (ridge head on standardised features) and the raw-pixel baseline; test images and one standard error as a share of dense',
      header: ['task', ...models, 'raw pixels', 'test images', '1 s.e. / dense'],
      rows: tasks.map((task) => [
        taskName(task),
        ...models.map((m) => pct(acc(m, task))),
        pct(pix(task)),
        String(ref(task)?.nTest ?? '–'),
        pct(ses.find((x) => x.task === task)?.rel ?? null),
      ]),
    },
  };
}

/** Controls: shuffled masks vs the score's own masks; pruned random-init vs pruned pre-trained (absolute accuracy).
 * Per head (dense, refit). A pair where both accuracies are within `CHANCE_BAND` of chance (mean over the held-out
 * tasks of 1 / classes) compares constant features and is reported as uninformative, not as evidence. */
const CHANCE_BAND = 0.02;
export function controlsFinding(d: ReportData): Finding | null {
  const controls = [...new Set(d.cells.map((c) => c.control))].filter((c) => c !== 'none');
  if (controls.length === 0) return null;
  const heads = ['dense', 'refit'].filter((h) => d.acc.some((a) => a.head === h && a.phase === 'zero-shot'));
  const sentences: string[] = [];
  const main = d.cells.filter((c) => c.control === 'none');
  const twin = (c: CellRow) =>
    main.filter((m) => m.score === c.score && m.sparsity === c.sparsity && m.source === c.source && m.seed === c.seed);
  const classesOf = new Map(d.dense.map((x) => [x.task, x.classes.length]));
  const chance = (cell: string): number | null =>
    mean(
      d.acc
        .filter((a) => a.cell === cell && a.heldout && a.phase === 'zero-shot' && a.head === heads[0])
        .map((a) => classesOf.get(a.task))
        .filter((k): k is number => k !== undefined && k > 0)
        .map((k) => 1 / k),
    );
  const rows: string[][] = [];
  for (const control of controls) {
    for (const head of heads) {
      const pairs = d.cells
        .filter((c) => c.control === control)
        .map((c) => {
          const own = twin(c);
          return {
            c,
            x: heldMean(d, c.key, 'zero-shot', head, 'accuracy'),
            r: heldMean(d, c.key, 'zero-shot', head),
            chance: chance(c.key),
            own: mean(
              own.map((m) => heldMean(d, m.key, 'zero-shot', head, 'accuracy')).filter((v): v is number => v !== null),
            ),
            gap: controlGap(d, c, own, head),
          };
        })
        .filter((p) => p.x !== null);
      for (const p of pairs)
        rows.push([
          control,
          head,
          p.c.score,
          pct(p.c.sparsity, 0),
          pct(p.x),
          pct(p.r),
          pct(p.own),
          p.own === null ? '–' : ptsIv(p.x! - p.own, p.gap),
          pct(p.chance),
        ]);
      const cmp = pairs.filter((p) => p.own !== null);
      if (cmp.length === 0) continue;
      const atChance = (v: number, ch: number | null) => ch !== null && Math.abs(v - ch) <= CHANCE_BAND;
      const flat = cmp.filter((p) => atChance(p.x!, p.chance) && atChance(p.own!, p.chance));
      const info = cmp.filter((p) => !flat.includes(p));
      const what =
        control === 'shuffled-mask'
          ? 'Layer-wise shuffled masks (same density per tensor, random positions)'
          : control === 'random-init'
            ? 'The pruned random-init model'
            : `Control ${control}`;
      let sentence = `${what}, ${head} head: held-out zero-shot accuracy vs the pre-trained model pruned with the score's own mask`;
      if (info.length === 0) {
        sentence +=
          `: both within ${(100 * CHANCE_BAND).toFixed(0)} points of chance in all ${cmp.length} cells (constant features), so the control ` +
          `cannot tell here.`;
      } else {
        const diff = mean(info.map((p) => p.x! - p.own!))!;
        const lower = info.filter((p) => p.x! < p.own! - 1e-9).length;
        const higher = info.filter((p) => p.x! > p.own! + 1e-9).length;
        const sure = info.every((p) => p.gap !== null)
          ? ` (95 % interval below zero in ${info.filter((p) => p.gap!.hi < 0).length}, above in ${info.filter((p) => p.gap!.lo > 0).length})`
          : '';
        sentence +=
          `: lower in ${lower} and higher in ${higher} of ${info.length} cells${sure}, mean difference ${pts(diff)} points (control − own mask)` +
          (flat.length
            ? `; ${flat.length} more cell(s) have both within ${(100 * CHANCE_BAND).toFixed(0)} points of chance and are left out`
            : '');
        sentence +=
          control !== 'shuffled-mask'
            ? '.'
            : diff < -0.01
              ? ': which weights the score keeps matters, not only how many per layer.'
              : diff > 0.01
                ? `: random positions at the same densities do better, the score's choice of weights hurts here.`
                : ': the per-layer densities, not the positions, carry the effect here.';
      }
      sentences.push(sentence);
    }
  }
  return {
    id: 'controls',
    title: 'Controls',
    sentences,
    table: {
      title: 'Controls: mean held-out zero-shot accuracy',
      header: [
        'control',
        'head',
        'score',
        'sparsity',
        'held-out accuracy',
        'retained (own dense)',
        'pre-trained, own mask',
        'control − own (points) [95 %]',
        'chance',
      ],
      rows,
    },
  };
}

/** Tensors emptied by pruning (below `collapse` density), per configuration and sparsity. */
export function collapseFinding(d: ReportData, t: Thresholds): Finding | null {
  const main = new Map(d.cells.filter((c) => c.control === 'none').map((c) => [c.key, c]));
  if (main.size === 0 || d.layers.length === 0) return null;
  const axes = varyingAxes([...main.values()]);
  const hits = d.layers.filter((l) => main.has(l.cell) && l.density < t.collapse);
  const seen = new Map<string, { label: string; sparsity: number; tensors: Map<string, number> }>();
  for (const h of hits) {
    const c = main.get(h.cell)!;
    const k = `${configLabel(c, axes)}\0${c.sparsity}`;
    if (!seen.has(k)) seen.set(k, { label: configLabel(c, axes), sparsity: c.sparsity, tensors: new Map() });
    const e = seen.get(k)!;
    e.tensors.set(h.tensor, Math.min(e.tensors.get(h.tensor) ?? 1, h.density));
  }
  const groups = [...seen.values()].sort((a, b) => a.sparsity - b.sparsity || a.label.localeCompare(b.label));
  const sentences =
    groups.length === 0
      ? [`No prunable tensor keeps fewer than ${pct(t.collapse, 0)} of its weights in any cell.`]
      : [
          `Pruning empties tensors (< ${pct(t.collapse, 0)} of weights kept) in ${groups.length} configuration × sparsity cell(s); first at ` +
            `${pct(groups[0]!.sparsity, 0)} (${groups
              .filter((g) => g.sparsity === groups[0]!.sparsity)
              .map((g) => g.label)
              .join(', ')}).` +
            ' An emptied layer before the feature tap makes every feature constant: accuracy falls to chance whatever the head.',
        ];
  return {
    id: 'collapse',
    title: 'Emptied layers',
    sentences,
    table:
      groups.length === 0
        ? null
        : {
            title: `Tensors keeping < ${pct(t.collapse, 0)} of their weights`,
            header: ['configuration', 'sparsity', 'tensors (density)'],
            rows: groups.map((g) => [
              g.label,
              pct(g.sparsity, 0),
              [...g.tensors].map(([n, v]) => `${n} (${pct(v, 2)})`).join(', '),
            ]),
          },
  };
}

/**
 * A 95 % interval for a retained fraction a / d, where a (pruned) and d (dense) are accuracies on the same n test
 * images, averaged over m cells (sources/seeds): the delta method on log(a / d), with a and d treated as independent
 * binomials, which is conservative (the same images make them positively correlated), and each shrunk by half an
 * image, (k + ½) / (n + 1), so 0 % and 100 % keep a finite interval.
 */
export function retainedInterval(a: number, d: number, n: number, m = 1): [number, number] {
  const shrink = (p: number) => (p * n + 0.5) / (n + 1);
  const as = shrink(a);
  const ds = shrink(d);
  const se = Math.sqrt(((1 - as) / (n * as) + (1 - ds) / (n * ds)) / m);
  const r = as / ds;
  return [r * Math.exp(-1.96 * se), r * Math.exp(1.96 * se)];
}

/** The issue's target: held-out zero-shot ≥ 90% of dense at 50% and ≥ 80% at 70%, on every CIFAR-10 / clip-art held-out task. */
export function targetFinding(d: ReportData, t: Thresholds): Finding | null {
  const cells = d.cells.filter((c) => c.control === 'none');
  const tasks = [...new Set(d.acc.filter((a) => a.heldout && t.targetTasks.test(a.task)).map((a) => a.task))].sort();
  if (cells.length === 0 || tasks.length === 0) return null;
  const keys = new Set(cells.map((c) => c.key));
  const heads = headsOf(d, keys);
  const axes = varyingAxes(cells);
  const groups = groupBy(cells, (c) => configLabel(c, axes));
  const labels = labelsOf(groups);
  const spec = t.target.map((x) => `≥ ${pct(x.retained, 0)} of dense at ${pct(x.sparsity, 0)}`).join(' and ');
  const what = `Target (held-out zero-shot accuracy ${spec} sparsity on every held-out target task: ${tasks.map(taskName).join(', ')})`;
  const missing = t.target.filter((x) => !cells.some((c) => Math.abs(c.sparsity - x.sparsity) < 1e-9));
  if (missing.length) {
    return {
      id: 'target',
      title: "The issue's target",
      sentences: [
        `${what}: cannot be checked, no finished cell at ${missing.map((x) => pct(x.sparsity, 0)).join(' or ')} sparsity.`,
      ],
      table: null,
    };
  }
  /** Worst target task (mean over sources/seeds per task) at a sparsity, with its 95 % interval (retainedInterval). */
  const worst = (label: string, sp: number, head: string) => {
    const g = groups.find((x) => x.label === label && Math.abs(x.sparsity - sp) < 1e-9);
    if (!g) return null;
    const per = tasks
      .flatMap((task) => {
        const rows = d.acc.filter(
          (a) =>
            g.cells.some((c) => c.key === a.cell) &&
            a.task === task &&
            a.phase === 'zero-shot' &&
            a.head === head &&
            a.retained !== null &&
            a.dense !== null,
        );
        const v = mean(rows.map((a) => a.retained!));
        const n = d.dense.find((r) => r.model === rows[0]?.model && r.task === task)?.nTest;
        if (v === null) return [];
        const ci = n
          ? retainedInterval(mean(rows.map((a) => a.accuracy))!, mean(rows.map((a) => a.dense!))!, n, rows.length)
          : null;
        return [{ task, v, ci }];
      })
      .sort((a, b) => a.v - b.v);
    return per[0] ?? null;
  };
  const withCi = (w: { task: string; v: number; ci: [number, number] | null }) =>
    `${pct(w.v)}${w.ci ? ` [${pct(w.ci[0], 0)}–${pct(w.ci[1], 0)}]` : ''} (${taskName(w.task)})`;
  /** The target points whose threshold lies inside the worst task's 95 % interval: the test sets cannot decide them. */
  const undecided = (w: { x: { sparsity: number; retained: number }; w: { ci: [number, number] | null } | null }[]) =>
    w.filter((y) => y.w?.ci && y.w.ci[0] < y.x.retained && y.x.retained < y.w.ci[1]).map((y) => pct(y.x.sparsity, 0));
  const res = heads.flatMap((head) =>
    labels.map((label) => {
      const w = t.target.map((x) => ({ x, w: worst(label, x.sparsity, head) }));
      return {
        head,
        label,
        w,
        reached: w.every((y) => y.w !== null && y.w.v >= y.x.retained),
        margin: Math.min(...w.map((y) => (y.w ? y.w.v - y.x.retained : -Infinity))),
      };
    }),
  );
  const sentences: string[] = [];
  const reachedBy = (head: string) => res.filter((r) => r.head === head && r.reached).map((r) => r.label);
  const worstText = (r: (typeof res)[number]) =>
    r.w.map((y) => `${y.w ? withCi(y.w) : '–'} at ${pct(y.x.sparsity, 0)}`).join(', ');
  /** Per head, the configuration with the largest worst-case margin (reached or not). */
  const closest = heads.flatMap((head) => {
    const r = res.filter((x) => x.head === head).sort((a, b) => b.margin - a.margin)[0];
    return r
      ? [{ head, label: r.label, margin: r.margin, reached: r.reached, worst: `worst target task ${worstText(r)}` }]
      : [];
  });
  for (const head of heads) {
    const ok = reachedBy(head);
    if (ok.length) sentences.push(`${what}, ${head} head: reached by ${listing(ok)}.`);
    else {
      const close = closest.find((c) => c.head === head);
      sentences.push(
        `${what}, ${head} head: not reached by any configuration of this study` +
          (close ? `; closest: ${close.label} (${close.worst})` : '') +
          '.',
      );
    }
    // Reached or missed by less than the test sets can resolve: say so (brackets: 95 % intervals, retainedInterval).
    const unsure = res
      .filter((r) => r.head === head && (r.reached || r.label === closest.find((c) => c.head === head)?.label))
      .flatMap((r) => {
        const at = undecided(r.w);
        return at.length ? [`${r.label} (${at.join(', ')})`] : [];
      });
    if (unsure.length)
      sentences.push(
        `${head} head: the threshold lies inside the worst task's 95 % interval for ${listing(unsure)}, so at these test-set sizes reached and missed ` +
          `cannot be told apart there.`,
      );
  }
  if (
    heads.includes('dense') &&
    heads.includes('refit') &&
    reachedBy('dense').length === 0 &&
    reachedBy('refit').length > 0
  ) {
    sentences.push(
      'With a refitted head the target is reached but not with the dense head: the pruned features still separate these classes but no longer match ' +
        'the features the dense head was fitted on, a drift that stale BN statistics can cause (docs/PRUNE.md, BN repair; the ablation-bn study measures it).',
    );
  }
  return {
    id: 'target',
    title: "The issue's target",
    sentences,
    closest,
    table: {
      title: `Worst held-out target task: zero-shot retained accuracy, [95 % interval] (${tasks.map(taskName).join(', ')})`,
      header: [
        'configuration',
        'head',
        ...t.target.map((x) => `${pct(x.sparsity, 0)} (need ${pct(x.retained, 0)})`),
        'reached',
      ],
      rows: res.map((r) => [r.label, r.head, ...r.w.map((y) => (y.w ? withCi(y.w) : '–')), r.reached ? 'yes' : 'no']),
    },
  };
}

/** Held-out tasks some main cell used as calibration data (`calib_data: <task>`): no longer unseen for it. */
export function calibrationTasks(d: ReportData): string[] {
  const main = d.cells.filter((c) => c.control === 'none');
  return [
    ...new Set(
      main
        .map((c) => axisValue(c, 'calibData'))
        .filter((x): x is string => x !== null && x !== 'source' && x !== 'noise'),
    ),
  ]
    .filter((t) => d.acc.some((a) => a.heldout && a.task === t))
    .sort();
}

/**
 * Every finding the data supports, in reading order. Held-out tasks used as calibration data are left out of
 * every held-out mean (all rows then average the same tasks), and a first finding says so.
 */
export function computeFindings(d: ReportData, t: Thresholds = DEFAULT_THRESHOLDS): Finding[] {
  const excluded = calibrationTasks(d);
  const view: ReportData = excluded.length
    ? { ...d, acc: d.acc.filter((a) => !(a.heldout && excluded.includes(a.task))) }
    : d;
  const note: Finding | null = excluded.length
    ? {
        id: 'excluded',
        title: 'Tasks left out of the held-out means',
        table: null,
        sentences: [
          `${listing(excluded.map(taskName))} ${excluded.length > 1 ? 'are' : 'is'} the calibration data of some cells (calib_data), so ` +
            `${excluded.length > 1 ? 'they are' : 'it is'} not unseen there: every held-out mean below leaves ` +
            `${excluded.length > 1 ? 'them' : 'it'} out (per-task numbers are in the report tables).`,
        ],
      }
    : null;
  return [
    note,
    denseFinding(d),
    p1Finding(view, t),
    p2Finding(view, t),
    ...axisFindings(view),
    controlsFinding(view),
    collapseFinding(view, t),
    targetFinding(view, t),
  ].filter((f): f is Finding => f !== null);
}
