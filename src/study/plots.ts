/**
 * Report plots: vega-lite specs compiled to vega and rendered to SVG strings in Node (no browser, no network;
 * the `none` renderer measures text without a canvas). The SVGs are embedded inline in the HTML report.
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { ablations, AXIS_FIELDS, type Ablation, type LayerErr, type ReportData } from './report-data.js';
import { configLabel as cellLabel, groupBy, groupMean, varyingAxes } from './results-findings.js';
import { groupInterval } from './results-intervals.js';

/** Renders one vega-lite spec to an SVG string. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const pct = { format: '.0%' };
/** Configuration labels are long and often differ only at their end: legends show up to 720 px of them. */
const LEGEND = { labelLimit: 720 };
/** Solid = zero-shot, dashed = after fine-tuning, whatever the alphabetical order of the phase names. */
const PHASE_DASH = {
  field: 'phase',
  type: 'nominal',
  scale: {
    domain: ['zero-shot', 'finetuned'],
    range: [
      [1, 0],
      [5, 3],
    ],
  },
} as const;

export interface Plot {
  title: string;
  caption: string;
  spec: TopLevelSpec;
}

const PANELS = [
  { phase: 'zero-shot', head: 'dense', name: 'zero-shot, dense head' },
  { phase: 'zero-shot', head: 'refit', name: 'zero-shot, refit head' },
  { phase: 'finetuned', head: 'dense', name: 'after fine-tuning, dense head' },
] as const;

/**
 * Held-out retained accuracy per configuration (controls as their own series), one panel per phase × head, with 95 %
 * bootstrap bands where the database keeps per-image results (the intervals the findings print).
 */
function retainedPlot(d: ReportData): Plot | null {
  const axes = varyingAxes(d.cells.filter((c) => c.control === 'none'));
  const groups = groupBy(d.cells, (c) => `${cellLabel(c, axes)}${c.control === 'none' ? '' : ` (${c.control})`}`);
  const values = PANELS.flatMap((p) =>
    groups.flatMap((g) => {
      const value = groupMean(d, g, p.phase, p.head);
      if (value === null) return [];
      const iv = groupInterval(d, g.cells, p.phase, p.head);
      return [{ panel: p.name, score: g.label, sparsity: g.sparsity, value, lo: iv?.lo ?? null, hi: iv?.hi ?? null }];
    }),
  );
  if (values.length === 0) return null;
  const bands = values.some((v) => v.lo !== null);
  return {
    title: 'Retained fraction of dense accuracy on held-out tasks',
    caption:
      'Mean over held-out tasks of pruned / dense accuracy (lines), pooled over seeds and source splits; controls are ' +
      "their own series (random-init: relative to the random-init model's own dense accuracy). " +
      (bands
        ? 'Bands: 95 % percentile-bootstrap intervals (test images resampled paired with the dense reference, and the ' +
          'cells). Overlapping bands: the test sets cannot tell the configurations apart.'
        : 'No bands: this database keeps no per-image results.'),
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      data: { values },
      facet: { column: { field: 'panel', type: 'nominal', title: null, sort: PANELS.map((p) => p.name) } },
      spec: {
        width: 220,
        height: 170,
        encoding: {
          x: { field: 'sparsity', type: 'quantitative', axis: pct, scale: { zero: false } },
          color: { field: 'score', type: 'nominal', legend: LEGEND },
        },
        layer: [
          ...(bands
            ? [
                {
                  mark: { type: 'area', opacity: 0.15 },
                  encoding: {
                    y: { field: 'lo', type: 'quantitative', axis: pct, title: 'retained (mean over held-out)' },
                    y2: { field: 'hi' },
                  },
                } as const,
              ]
            : []),
          {
            mark: { type: 'line', point: true },
            encoding: {
              y: { field: 'value', type: 'quantitative', axis: pct, title: 'retained (mean over held-out)' },
            },
          },
        ],
      },
    },
  };
}

/** The report's plots for the data (empty sections are skipped). */
export function reportPlots(d: ReportData): Plot[] {
  const plots: Plot[] = [];
  const main = d.acc.filter((a) => a.control === 'none' && a.head !== 'trained');
  if (main.length > 0) {
    plots.push({
      title: 'Accuracy vs sparsity, per task and score',
      caption:
        'Solid: zero-shot (pruned on the source, no training); dashed: after masked fine-tuning on the source. Rows: ' +
        "head mode (dense = head fitted on the unpruned model, the paper's zero-shot; refit = head refitted on the " +
        'evaluated backbone). Grey rule: dense model.',
      spec: {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        data: {
          values: main.map((a) => ({
            task: a.heldout ? `${a.task} (held out)` : `${a.task} (source)`,
            score: a.score,
            sparsity: a.sparsity,
            phase: a.phase,
            head: a.head,
            accuracy: a.accuracy,
            dense: a.dense,
          })),
        },
        facet: {
          column: { field: 'task', type: 'nominal', title: null },
          row: { field: 'head', type: 'nominal', title: 'head' },
        },
        spec: {
          width: 170,
          height: 140,
          layer: [
            {
              mark: { type: 'line', point: true },
              encoding: {
                x: { field: 'sparsity', type: 'quantitative', axis: pct, scale: { zero: false } },
                y: { field: 'accuracy', type: 'quantitative', axis: pct, scale: { domain: [0, 1] }, title: 'accuracy' },
                color: { field: 'score', type: 'nominal', legend: LEGEND },
                strokeDash: PHASE_DASH,
              },
            },
            {
              mark: { type: 'rule', color: '#999' },
              encoding: { y: { aggregate: 'max', field: 'dense', type: 'quantitative', title: 'accuracy' } },
            },
          ],
        },
      },
    });
  }
  const retained = retainedPlot(d);
  if (retained) plots.push(retained);
  const dens = d.layers.filter((l) => l.control === 'none');
  if (dens.length > 0) {
    plots.push({
      title: 'Per-layer density of each mask',
      caption: 'Fraction of weights kept in each prunable tensor, in model order (rows: target sparsity).',
      spec: {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        data: {
          values: dens.map((l) => ({
            score: l.score,
            sparsity: l.sparsity,
            layer: l.ord,
            tensor: l.tensor,
            density: l.density,
            source: l.source,
          })),
        },
        facet: { row: { field: 'sparsity', type: 'ordinal', header: { format: '.0%' } } },
        spec: {
          width: 720,
          height: 110,
          mark: { type: 'line', point: { size: 12 } },
          encoding: {
            x: { field: 'layer', type: 'quantitative', title: 'prunable tensor (model order)' },
            y: { field: 'density', type: 'quantitative', axis: pct, scale: { domain: [0, 1] } },
            color: { field: 'score', type: 'nominal', legend: LEGEND },
            detail: { field: 'source', type: 'nominal' },
          },
        },
      },
    });
  }
  const errs = d.layerErrors.filter((e) => e.control === 'none' && e.relError !== null && e.relError > 0);
  if (errs.length > 0) {
    plots.push({
      title: 'Where the pruned network drifts from the dense one, layer by layer',
      caption:
        "Relative output error ‖f_dense − f_pruned‖² / ‖f_dense‖² at each pruned layer's output, on the cell's " +
        'calibration images after BN repair (log scale; rows: target sparsity; one line per score and ablation ' +
        'setting).',
      spec: {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        data: {
          values: errs.map((e) => ({
            config: configLabel(e),
            sparsity: e.sparsity,
            layer: e.ord,
            tensor: e.tensor,
            error: e.relError,
            source: e.source,
          })),
        },
        facet: { row: { field: 'sparsity', type: 'ordinal', header: { format: '.0%' } } },
        spec: {
          width: 720,
          height: 130,
          mark: { type: 'line', point: { size: 10 } },
          encoding: {
            x: { field: 'layer', type: 'quantitative', title: 'pruned layer (model order)' },
            y: { field: 'error', type: 'quantitative', scale: { type: 'log' }, title: 'relative output error' },
            color: { field: 'config', type: 'nominal', title: null, legend: LEGEND },
            detail: { field: 'source', type: 'nominal' },
          },
        },
      },
    });
  }
  const ov = d.overlaps.filter((o) => o.control === 'none');
  if (ov.length > 0) {
    plots.push({
      title: 'Mask overlap (IoU of kept weights) between scores',
      caption:
        'Intersection over union of the kept weights of two masks at the same sparsity (1 = identical). Random masks at density k overlap by about k / ' +
        '(2 − k).',
      spec: {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        data: { values: ov.map((o) => ({ a: o.a, b: o.b, iou: o.iou, sparsity: o.sparsity })) },
        facet: { column: { field: 'sparsity', type: 'ordinal', header: { format: '.0%' } } },
        spec: {
          width: 150,
          height: 150,
          layer: [
            {
              mark: 'rect',
              encoding: {
                x: { field: 'a', type: 'nominal', title: null },
                y: { field: 'b', type: 'nominal', title: null },
                color: { field: 'iou', type: 'quantitative', scale: { domain: [0, 1], scheme: 'blues' } },
              },
            },
            {
              mark: { type: 'text', fontSize: 9 },
              encoding: {
                x: { field: 'a', type: 'nominal' },
                y: { field: 'b', type: 'nominal' },
                text: { field: 'iou', type: 'quantitative', format: '.2f' },
                color: { condition: { test: 'datum.iou > 0.6', value: 'white' }, value: 'black' },
              },
            },
          ],
        },
      },
    });
  }
  plots.push(...ablations(d).map(ablationPlot));
  return plots;
}

/** A score with the ablation settings that differ from the defaults, e.g. `sparsegpt [global, match-dense]`. */
function configLabel(e: LayerErr): string {
  const extra = [
    e.allocation && e.allocation !== 'global' ? e.allocation : '',
    e.bn !== 'none' ? e.bn : '',
    e.calibData !== 'source' ? e.calibData.replace(/^folder:.*\//, '') : '',
  ].filter((x) => x !== '');
  return extra.length ? `${e.score} [${extra.join(', ')}]` : e.score;
}

/**
 * One plot per ablation axis: held-out zero-shot retained fraction vs sparsity, one line per axis value (solid:
 * dense head, dashed: refitted head), one column per score. With a single sparsity the x axis is the axis value
 * instead (one line per score), so the plot still shows a trend rather than a column of dots.
 */
export function ablationPlot(a: Ablation): Plot {
  const field = AXIS_FIELDS[a.axis];
  const values = a.points.flatMap((x) =>
    (
      [
        ['dense', x.heldDense],
        ['refit', x.heldRefit],
      ] as const
    )
      .filter(([, r]) => r !== null)
      .map(([head, retained]) => ({
        value: x.value,
        score: x.score,
        sparsity: x.sparsity,
        head,
        retained,
        model: x.model,
        source: x.source,
      })),
  );
  const oneSparsity = new Set(a.points.map((x) => x.sparsity)).size === 1;
  const HEAD_DASH = {
    field: 'head',
    type: 'nominal',
    title: 'head',
    scale: {
      domain: ['dense', 'refit'],
      range: [
        [1, 0],
        [5, 3],
      ],
    },
  } as const;
  const y = {
    aggregate: 'mean',
    field: 'retained',
    type: 'quantitative',
    axis: pct,
    title: 'retained (mean over held-out)',
  } as const;
  const valueEnc = { field: 'value', type: 'ordinal', title: field, sort: a.values } as const;
  return {
    title: `Ablation: ${field}, held-out retained fraction`,
    caption:
      `Mean over held-out tasks of zero-shot accuracy / dense accuracy (solid: dense head; dashed: head refitted on the pruned backbone), other ` +
      `ablation axes at their base value${
        oneSparsity ? `, at ${Math.round(100 * a.points[0]!.sparsity)}% ` + `sparsity` : ''
      }.${a.excluded.length ? ` Tasks used as calibration data are left out: ${a.excluded.join(', ')}.` : ''}`,
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      data: { values },
      facet: {
        column: oneSparsity
          ? { field: 'sparsity', type: 'ordinal', header: { format: '.0%' }, title: 'sparsity' }
          : { field: 'score', type: 'nominal', title: null },
      },
      spec: {
        width: 220,
        height: 160,
        mark: { type: 'line', point: true },
        encoding: oneSparsity
          ? { x: valueEnc, y, color: { field: 'score', type: 'nominal', legend: LEGEND }, strokeDash: HEAD_DASH }
          : {
              x: { field: 'sparsity', type: 'quantitative', axis: pct, scale: { zero: false } },
              y,
              color: { ...valueEnc, type: 'nominal', scale: { domain: a.values } },
              strokeDash: HEAD_DASH,
            },
      },
    },
  };
}
