/**
 * RESULTS.md findings from the study diagnostics (tables in diagnostics-store.ts, read by diagnostics-report.ts into
 * the report data): cross-task curvature alignment of the pre-trained model vs the random-init control, and how
 * well the second-order Taylor model predicts the measured loss change of the study's own masks. Report data without diagnostics (older store, or a
 * study without a `diagnostics` section) gives no finding.
 */
import { pairsInterval, type Interval } from './bootstrap.js';
import type { Finding } from './results-findings.js';
import { pct } from './results-findings.js';
import type { ReportData } from './report-data.js';
import type { DiagLoss, DiagPair } from './diagnostics-report.js';

/** Per model (latest finished run of this study): task pairs a ≠ b, and the loss changes of masks with a target. */
export interface DiagSummary {
  pairs: Omit<DiagPair, 'iou'>[];
  loss: (Omit<DiagLoss, 'from' | 'sparsity' | 'target'> & { target: number })[];
  wallS: number;
}

/** The study diagnostics the report read (the latest run per model), or null when the database has none. */
export function diagSummaryOf(d: ReportData): DiagSummary | null {
  const x = d.diagnostics;
  if (!x || x.models.length === 0) return null;
  return {
    pairs: x.pairs
      .filter((p) => p.a !== p.b)
      .map((p) => ({ model: p.model, a: p.a, b: p.b, cosine: p.cosine, spearman: p.spearman, overlap: p.overlap })),
    loss: x.lossChange
      .filter((l) => l.target !== null)
      .map((l) => ({
        model: l.model,
        kind: l.kind,
        score: l.score,
        target: l.target!,
        task: l.task,
        first: l.first,
        second: l.second,
        measured: l.measured,
      })),
    wallS: x.models.reduce((a, m) => a + m.wallS, 0),
  };
}

const mean = (xs: readonly (number | null)[]) => {
  const v = xs.filter((x): x is number => x !== null && Number.isFinite(x));
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
};
const median = (xs: readonly number[]) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const f3 = (x: number | null) => (x === null ? '–' : x.toFixed(3));
const g3 = (x: number | null) => (x === null ? '–' : x.toPrecision(3));
const isRandom = (m: string) => m.startsWith('random:');

/** Alignment (pre-trained vs random init) and predicted vs measured loss change. */
export function diagnosticsFindings(s: DiagSummary | null): Finding[] {
  if (!s) return [];
  const out: Finding[] = [];
  const models = [...new Set([...s.pairs.map((p) => p.model), ...s.loss.map((l) => l.model)])].sort(
    (a, b) => Number(isRandom(a)) - Number(isRandom(b)) || a.localeCompare(b),
  );
  const al = models
    .map((m) => {
      const ps = s.pairs.filter((p) => p.model === m);
      return {
        m,
        n: ps.length,
        cos: mean(ps.map((p) => p.cosine)),
        sp: mean(ps.map((p) => p.spearman)),
        ov: mean(ps.map((p) => p.overlap)),
      };
    })
    .filter((x) => x.n > 0);
  if (al.length > 0) {
    const pre = al.find((x) => !isRandom(x.m));
    const rnd = al.find((x) => isRandom(x.m));
    const sentences: string[] = [];
    const gapRows: string[][] = [];
    if (pre && rnd && pre.cos !== null && rnd.cos !== null) {
      // The gap (pre-trained minus random init) per task pair, with an interval from resampling the tasks.
      const metric = (k: 'cosine' | 'spearman' | 'overlap') => {
        const of = (m: string, a: string, b: string) =>
          s.pairs.find((p) => p.model === m && ((p.a === a && p.b === b) || (p.a === b && p.b === a)))?.[k] ?? null;
        const tasks = [...new Set(s.pairs.filter((p) => p.model === pre.m).flatMap((p) => [p.a, p.b]))].sort();
        return pairsInterval(tasks, (a, b) => {
          const x = of(pre.m, a, b);
          const y = of(rnd.m, a, b);
          return x === null || y === null || !Number.isFinite(x) || !Number.isFinite(y) ? null : x - y;
        });
      };
      const cmp = (a: number | null, b: number | null, gap: Interval | null) =>
        a === null || b === null
          ? 'not comparable'
          : gap && gap.lo > 0
            ? 'higher'
            : gap && gap.hi < 0
              ? 'lower'
              : gap
                ? 'not separable'
                : a > b
                  ? 'higher'
                  : a < b
                    ? 'lower'
                    : 'equal';
      const sg3 = (x: number) => `${x >= 5e-4 ? '+' : x <= -5e-4 ? '−' : '±'}${Math.abs(x).toFixed(3)}`;
      const gapOf = (g: Interval | null) => (g ? `; gap ${sg3(g.value)} [${sg3(g.lo)}, ${sg3(g.hi)}]` : '');
      const [gc, gs, go] = [metric('cosine'), metric('spearman'), metric('overlap')];
      const ivText = (g: Interval | null) => (g ? `${sg3(g.value)} [${sg3(g.lo)}, ${sg3(g.hi)}]` : '–');
      gapRows.push(['gap: pre-trained − random init [95 %]', String(pre.n), ivText(gc), ivText(gs), ivText(go)]);
      const ntasks = new Set(s.pairs.filter((p) => p.model === pre.m).flatMap((p) => [p.a, p.b])).size;
      sentences.push(
        (cmp(pre.cos, rnd.cos, gc) === 'not separable'
          ? 'Curvature alignment across tasks cannot be told apart between the pre-trained model and random init: '
          : `Curvature alignment across tasks is ${cmp(pre.cos, rnd.cos, gc)} for the pre-trained model than for random init: `) +
          `mean cross-task diagonal cosine ` +
          `${f3(pre.cos)} vs ${f3(rnd.cos)}${gapOf(gc)} ` +
          `(${pre.n} task pairs); Spearman ${f3(pre.sp)} vs ${f3(rnd.sp)} (${cmp(pre.sp, rnd.sp, gs)}${gapOf(gs)}); top-k eigen-subspace overlap ${f3(pre.ov)} vs ` +
          `${f3(rnd.ov)} (${cmp(pre.ov, rnd.ov, go)}${gapOf(go)}).` +
          (gc
            ? ` Brackets: 95 % bootstrap interval of the gap (pre-trained − random init), resampling the ${ntasks} tasks; ` +
              `"higher" or "lower" only where it excludes zero.`
            : ''),
      );
    } else {
      for (const x of al)
        sentences.push(
          `${x.m}: mean cross-task diagonal cosine ${f3(x.cos)}, Spearman ${f3(x.sp)}, eigen-subspace overlap ${f3(x.ov)} (${x.n} task pairs); no ` +
            `random-init control to compare with.`,
        );
    }
    out.push({
      id: 'alignment',
      title: 'Is curvature shared across tasks? (pre-trained vs random init)',
      sentences,
      table: {
        title: 'Cross-task curvature alignment (mean over task pairs)',
        header: ['model', 'task pairs', 'diag cosine', 'diag Spearman', 'eigen-subspace overlap'],
        rows: [...al.map((x) => [x.m, String(x.n), f3(x.cos), f3(x.sp), f3(x.ov)]), ...gapRows],
      },
    });
  }
  const rows = s.loss.filter(
    (l) => l.kind === 'cell' && l.measured !== null && l.second !== null && l.first !== null && l.measured !== 0,
  );
  if (rows.length > 0) {
    const groups = [...new Set(rows.map((l) => `${l.model}\0${l.target}`))]
      .map((k) => {
        const [m, t] = k.split('\0') as [string, string];
        const g = rows.filter((l) => l.model === m && String(l.target) === t);
        const rel = (pick: (l: (typeof g)[number]) => number) =>
          median(g.map((l) => Math.abs(pick(l) - l.measured!) / Math.abs(l.measured!)));
        return {
          m,
          t: Number(t),
          n: g.length,
          measured: mean(g.map((l) => l.measured)),
          second: mean(g.map((l) => l.second)),
          relFirst: rel((l) => l.first!),
          relSecond: rel((l) => l.second!),
        };
      })
      .sort((a, b) => Number(isRandom(a.m)) - Number(isRandom(b.m)) || a.m.localeCompare(b.m) || a.t - b.t);
    const sentences = [...new Set(groups.map((g) => g.m))].map(
      (m) =>
        `Second-order prediction of the loss change of the study's masks on ${m} (median relative error |predicted − measured| / |measured| over tasks ` +
        `and scores): ` +
        groups
          .filter((g) => g.m === m)
          .map((g) => `${pct(g.relSecond)} at ${pct(g.t, 0)} sparsity (first order ${pct(g.relFirst)})`)
          .join(', ') +
        '.',
    );
    out.push({
      id: 'taylor',
      title: 'Predicted vs measured loss change',
      sentences,
      table: {
        title: "Loss change of the study cells' masks: measured vs Taylor predictions",
        header: [
          'model',
          'sparsity',
          'rows',
          'mean measured ΔL',
          'mean second-order ΔL',
          'median rel. error (1st)',
          'median rel. error (2nd)',
        ],
        rows: groups.map((g) => [
          g.m,
          pct(g.t, 0),
          String(g.n),
          g3(g.measured),
          g3(g.second),
          pct(g.relFirst),
          pct(g.relSecond),
        ]),
      },
    });
  }
  return out;
}
