/**
 * The report's "Second-order diagnostics" section, read from the diag_* tables (diagnostics-store.ts): tables of
 * spectra, alignment and loss change, and three vega-lite plots — spectrum per task (trace, top eigenvalues and the
 * scale-free Σθ²Hⱼⱼ / L, one column per model: pre-trained | random init), the task × task heat map of the Hessian
 * diagonals' cosine (one panel per model), and predicted (second-order) vs measured loss change of every mask on
 * every task with the y = x line. Only when the database holds diagnostics.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { Plot } from './plots.js';
import type { Table } from './report.js';
import type { StudyStore } from './store.js';

export interface DiagModel {
  model: string;
  settings: string;
  random: boolean;
  info: Record<string, unknown>;
  wallS: number;
}
export interface DiagSpectrum {
  model: string;
  task: string;
  images: number;
  loss: number | null;
  trace: number | null;
  traceStderr: number | null;
  weightedTrace: number | null;
  weightedStderr: number | null;
  eigenvalues: (number | null)[];
  head: { alpha?: number; trainAccuracy?: number; images?: number; featureRms?: number };
}
export interface DiagPair {
  model: string;
  a: string;
  b: string;
  cosine: number | null;
  spearman: number | null;
  overlap: number | null;
  iou: { sparsity: number; iou: number | null }[];
}
export interface DiagLoss {
  model: string;
  kind: 'obd' | 'cell';
  from: string;
  score: string;
  target: number | null;
  task: string;
  sparsity: number | null;
  first: number | null;
  second: number | null;
  measured: number | null;
}
export interface DiagnosticsData {
  models: DiagModel[];
  spectra: DiagSpectrum[];
  pairs: DiagPair[];
  lossChange: DiagLoss[];
}

/** The latest diagnostics run of every model, or null when the database has none (or predates the tables). */
export function readDiagnostics(store: StudyStore): DiagnosticsData | null {
  const latest = new Map<string, { model: string; settings: string; info: string; wall_s: number }>();
  for (const r of store.diagnosticsRuns()) latest.set(r.model, r);
  if (latest.size === 0) return null;
  const models: DiagModel[] = [...latest.values()]
    .map((r) => ({
      model: r.model,
      settings: r.settings,
      random: r.model.startsWith('random:'),
      info: JSON.parse(r.info) as Record<string, unknown>,
      wallS: r.wall_s,
    }))
    .sort((a, b) => Number(a.random) - Number(b.random) || a.model.localeCompare(b.model));
  const spectra: DiagSpectrum[] = [];
  const pairs: DiagPair[] = [];
  const lossChange: DiagLoss[] = [];
  for (const m of models) {
    for (const s of store.diagnosticsSpectra(m.model, m.settings)) {
      spectra.push({
        model: m.model,
        task: s.task,
        images: s.images,
        loss: s.loss,
        trace: s.trace,
        traceStderr: s.trace_stderr,
        weightedTrace: s.weighted_trace,
        weightedStderr: s.weighted_stderr,
        eigenvalues: JSON.parse(s.eigenvalues) as (number | null)[],
        head: JSON.parse(s.head) as DiagSpectrum['head'],
      });
    }
    for (const p of store.diagnosticsPairs(m.model, m.settings)) {
      pairs.push({
        model: m.model,
        a: p.a,
        b: p.b,
        cosine: p.cosine,
        spearman: p.spearman,
        overlap: p.overlap,
        iou: JSON.parse(p.iou) as DiagPair['iou'],
      });
    }
    for (const l of store.diagnosticsLossChange(m.model, m.settings)) {
      lossChange.push({
        model: m.model,
        kind: l.mask_kind,
        from: l.mask_from,
        score: l.score,
        target: l.target,
        task: l.task,
        sparsity: l.sparsity,
        first: l.first,
        second: l.second,
        measured: l.measured,
      });
    }
  }
  return { models, spectra, pairs, lossChange };
}

const f = (x: number | null | undefined, d = 3): string => {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  return x !== 0 && (Math.abs(x) >= 1e4 || Math.abs(x) < 1e-3) ? x.toExponential(Math.max(d - 1, 1)) : x.toFixed(d);
};
const pm = (x: number | null, se: number | null) => `${f(x)} ± ${f(se, 2)}`;
const ratio = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? null : a / b);
const pct = (q: number | null) => (q === null ? '–' : `${Math.round(100 * q)}%`);

/** Label of a loss-change row's mask: `obd(<task>) 50%` or `<score> 50%` (a study cell). */
export function maskLabel(l: DiagLoss): string {
  return l.kind === 'obd' ? `obd(${l.from}) ${pct(l.target)}` : `${l.score} ${pct(l.target)}`;
}

export function diagnosticsTables(d: DiagnosticsData): Table[] {
  const sparsities = [...new Set(d.pairs.flatMap((p) => p.iou.map((x) => x.sparsity)))].sort((a, b) => a - b);
  return [
    {
      title: 'Curvature per task (Hessian of the task loss in the prunable backbone weights, dense model)',
      header: [
        'model',
        'task',
        'images',
        'head alpha',
        'head train acc',
        'loss L',
        'trace ± se',
        'top eigenvalues',
        'Σθ²Hⱼⱼ ± se',
        'trace / L',
        'Σθ²Hⱼⱼ / L',
      ],
      rows: d.spectra.map((s) => [
        s.model,
        s.task,
        String(s.images),
        s.head.alpha === undefined ? '–' : String(s.head.alpha),
        f(s.head.trainAccuracy),
        f(s.loss),
        pm(s.trace, s.traceStderr),
        s.eigenvalues.map((v) => f(v)).join(' '),
        pm(s.weightedTrace, s.weightedStderr),
        f(ratio(s.trace, s.loss)),
        f(ratio(s.weightedTrace, s.loss)),
      ]),
      note:
        'Each task reads the backbone through a scale-free ridge head (std floored relative to the mean std, fitted on ' +
        "the dense model's features; docs/ANALYSIS.md). " +
        "The raw trace and eigenvalues depend on the scale of the loss and of each layer's weights; Σθ²Hⱼⱼ / L " +
        '(curvature felt by a relative weight perturbation, per unit loss) does not, so compare models on it.',
    },
    {
      title: 'Curvature alignment between tasks',
      header: [
        'model',
        'task a',
        'task b',
        'diag cosine',
        'diag Spearman',
        'top-k overlap',
        ...sparsities.map((q) => `OBD IoU @ ${pct(q)}`),
      ],
      rows: d.pairs.map((p) => [
        p.model,
        p.a,
        p.b,
        f(p.cosine),
        f(p.spearman),
        f(p.overlap),
        ...sparsities.map((q) => f(p.iou.find((x) => x.sparsity === q)?.iou)),
      ]),
      note:
        'diag: Hutchinson Hessian diagonals (cosine is scale-invariant); overlap: mean cos² of the principal angles ' +
        "between the top-k eigenvector spans (≈ k / dim for unrelated spans); IoU: kept sets of each task's OBD mask.",
    },
    {
      title: 'Predicted vs measured loss change of each mask on each task',
      header: ['model', 'mask', 'task', 'removed', 'gᵀδ', 'gᵀδ + ½δᵀHδ', 'measured ΔL'],
      rows: d.lossChange.map((l) => [
        l.model,
        maskLabel(l),
        l.task,
        f(l.sparsity),
        f(l.first),
        f(l.second),
        f(l.measured),
      ]),
      note:
        "Masks: the OBD mask (½ Hⱼⱼ θⱼ²) of the first task, and the study's own cell masks (score, target sparsity) " +
        'applied to the dense weights; removed = fraction of the analysed weights.',
    },
  ];
}

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
/** Axis label of a task: `folder:` ids by their last path component (`folder:/data/cifar10[0-4]` → `cifar10[0-4]`). */
const short = (task: string) =>
  task.startsWith('folder:')
    ? task
        .replace(/^folder:/, '')
        .replace(/\/+(?=\[|$)/, '')
        .split('/')
        .pop()!
    : task;
const finite = (x: number | null | undefined): x is number => x !== null && x !== undefined && Number.isFinite(x);

export function diagnosticsPlots(d: DiagnosticsData): Plot[] {
  const plots: Plot[] = [];
  const spec = d.spectra.flatMap((s) => [
    ...(finite(s.trace)
      ? [{ model: s.model, task: short(s.task), measure: 'trace', series: 'trace', value: s.trace }]
      : []),
    ...s.eigenvalues.flatMap((v, i) =>
      finite(v)
        ? [{ model: s.model, task: short(s.task), measure: 'top eigenvalues', series: `λ${i + 1}`, value: v }]
        : [],
    ),
    ...(finite(s.weightedTrace) && finite(s.loss) && s.loss !== 0
      ? [
          {
            model: s.model,
            task: short(s.task),
            measure: 'Σθ²Hⱼⱼ / L (scale-free)',
            series: 'Σθ²Hⱼⱼ / L',
            value: s.weightedTrace / s.loss,
          },
        ]
      : []),
  ]);
  const order = d.models.map((m) => m.model);
  if (spec.length > 0) {
    const measures = [...new Set(spec.map((x) => x.measure))];
    plots.push({
      title: 'Curvature spectrum per task: pre-trained vs random init',
      caption:
        'Rows: Hutchinson trace of H, its top eigenvalues (Lanczos), and Σθ²Hⱼⱼ / L (trace of H in relative weight ' +
        "units, per unit loss: comparable across models). Columns: models, sharing each row's symmetric-log y axis.",
      spec: {
        $schema: SCHEMA,
        data: { values: spec },
        // One faceted chart per measure: the models of a row share its y scale; rows differ in units.
        vconcat: measures.map((m) => ({
          transform: [{ filter: { field: 'measure', equal: m } }],
          facet: { column: { field: 'model', type: 'nominal', title: null, sort: order } },
          spec: {
            width: 60 + 40 * new Set(spec.map((x) => x.task)).size,
            height: 120,
            mark: { type: 'point', filled: true, size: 50 },
            encoding: {
              x: { field: 'task', type: 'nominal', title: null },
              y: { field: 'value', type: 'quantitative', scale: { type: 'symlog' }, title: m },
              color: { field: 'series', type: 'nominal', title: null },
            },
          },
        })),
      } as TopLevelSpec,
    });
  }
  const cells = d.models
    .flatMap((m) => {
      const tasks = [...new Set(d.spectra.filter((s) => s.model === m.model).map((s) => s.task))];
      return tasks.flatMap((a) =>
        tasks.map((b) => {
          const p = d.pairs.find((x) => x.model === m.model && ((x.a === a && x.b === b) || (x.a === b && x.b === a)));
          return { model: m.model, a: short(a), b: short(b), cosine: a === b ? 1 : (p?.cosine ?? null) };
        }),
      );
    })
    .filter((x) => x.cosine !== null);
  if (d.pairs.length > 0) {
    plots.push({
      title: 'Curvature alignment: cosine of the Hessian diagonals, task × task',
      caption:
        "Cosine between two tasks' Hutchinson Hessian diagonals (1 on the diagonal by definition; scale-invariant). " +
        'One panel per model: pre-trained | random init.',
      spec: {
        $schema: SCHEMA,
        data: { values: cells },
        facet: { column: { field: 'model', type: 'nominal', title: null, sort: order } },
        spec: {
          width: 36 * Math.max(2, new Set(cells.map((c) => c.a)).size),
          height: 36 * Math.max(2, new Set(cells.map((c) => c.a)).size),
          layer: [
            {
              mark: 'rect',
              encoding: {
                x: { field: 'a', type: 'nominal', title: null },
                y: { field: 'b', type: 'nominal', title: null },
                color: { field: 'cosine', type: 'quantitative', scale: { domain: [-1, 1], scheme: 'blueorange' } },
              },
            },
            {
              mark: { type: 'text', fontSize: 9 },
              encoding: {
                x: { field: 'a', type: 'nominal' },
                y: { field: 'b', type: 'nominal' },
                text: { field: 'cosine', type: 'quantitative', format: '.2f' },
              },
            },
          ],
        },
      } as TopLevelSpec,
    });
  }
  const pts = d.lossChange
    .filter((l) => finite(l.measured) && finite(l.second))
    .map((l) => ({
      model: l.model,
      mask: maskLabel(l),
      task: short(l.task),
      sparsity: l.target === null ? 'given' : pct(l.target),
      measured: l.measured!,
      predicted: l.second!,
    }));
  if (pts.length > 0) {
    const all = pts.flatMap((p) => [p.measured, p.predicted]);
    const lo = Math.min(...all);
    const hi = Math.max(...all);
    plots.push({
      title: 'Predicted (second-order) vs measured loss change',
      caption:
        "Each point: one mask (OBD of the first task, or a study cell's mask) on one task; x: measured L(θ ⊙ c) − " +
        'L(θ), y: gᵀδ + ½δᵀHδ. Grey: y = x (a perfect quadratic model). Colour: target sparsity; shape: model. ' +
        'Symmetric-log axes.',
      spec: {
        $schema: SCHEMA,
        width: 380,
        height: 300,
        layer: [
          {
            data: {
              values: [
                { measured: lo, predicted: lo },
                { measured: hi, predicted: hi },
              ],
            },
            mark: { type: 'line', color: '#999', strokeDash: [4, 3] },
            encoding: {
              x: { field: 'measured', type: 'quantitative' },
              y: { field: 'predicted', type: 'quantitative' },
            },
          },
          {
            data: { values: pts },
            mark: { type: 'point', filled: true, size: 40, opacity: 0.8 },
            encoding: {
              x: { field: 'measured', type: 'quantitative', scale: { type: 'symlog' }, title: 'measured ΔL' },
              y: {
                field: 'predicted',
                type: 'quantitative',
                scale: { type: 'symlog' },
                title: 'predicted ΔL (second order)',
              },
              color: { field: 'sparsity', type: 'ordinal', title: 'sparsity' },
              shape: { field: 'model', type: 'nominal', title: 'model' },
              tooltip: [{ field: 'mask' }, { field: 'task' }],
            },
          },
        ],
      } as TopLevelSpec,
    });
  }
  return plots;
}
