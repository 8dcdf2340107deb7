/**
 * The study report: markdown tables (stdout) and one self-contained HTML file with inline SVG plots (no scripts,
 * no CDN, no network). Every name that comes from data (tasks, classes, scores, models) is HTML-escaped; the file
 * is written atomically.
 */
import { reportPlots, renderSvg } from './plots.js';
import { diagnosticsPlots, diagnosticsTables } from './diagnostics-report.js';
import {
  ablations,
  AXIS_FIELDS,
  gridStatus,
  phaseProfile,
  protocolLabels,
  summaryRows,
  type Ablation,
  type ReportData,
} from './report-data.js';
import { writeFileAtomicSync } from '../engine/index.js';

export { readReport, summaryRows, ablations, type ReportData, type Ablation } from './report-data.js';

const p = (x: number | null | undefined, digits = 1) =>
  x === null || x === undefined ? '–' : `${(100 * x).toFixed(digits)}%`;
const mb = (b: number) => `${(b / 2 ** 20).toFixed(2)} MB`;
const mf = (m: number) => `${((2 * m) / 1e6).toFixed(1)}`;

export function escapeHtml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}
/** Markdown cells must not break the table. */
const mdCell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export interface Table {
  title: string;
  header: string[];
  rows: string[][];
  note?: string;
}

/** The report's tables, in order. */
export function reportTables(d: ReportData): Table[] {
  const t: Table[] = [];
  const sum = summaryRows(d);
  // A database holding the same study run with other settings: a column says which settings each row ran with.
  const proto = protocolLabels(d);
  const pcol = (i: number) => (proto.size ? [proto.get(d.cells[i]!.protocol) ?? '–'] : []);
  t.push({
    title: 'Summary: source accuracy and retained fraction of dense accuracy on held-out tasks',
    header: [
      ...(proto.size ? ['settings'] : []),
      'model',
      'control',
      'score',
      'sparsity',
      'achieved',
      'source zs',
      'source ft',
      'held-out zs',
      'held-out ft',
      'held-out zs (refit)',
      'held-out ft (refit)',
    ],
    rows: sum.map((s, i) => [
      ...pcol(i),
      s.model,
      s.control,
      s.score,
      p(s.sparsity, 0),
      p(s.achieved),
      p(s.sourceZs),
      p(s.sourceFt),
      p(s.heldZs),
      p(s.heldFt),
      p(s.heldRefitZs),
      p(s.heldRefitFt),
    ]),
    note:
      'zs = zero-shot after pruning (dense head); ft = after masked fine-tuning on the source (source: the trained task head on the source test split; ' +
      'held-out: dense head). Held-out columns: mean of accuracy / dense accuracy.' +
      (proto.size
        ? ` This database holds ${proto.size} runs of the study with different settings; "settings" says which each row ran with.`
        : '') +
      gridStatus(d)
        .filter((g) => g.grid !== null && g.done < g.grid)
        .map(
          (g) =>
            ` INCOMPLETE: ${g.done} of ${g.grid} cells of study ${g.study} are finished; re-run \`tapir study\` on its config to finish (it resumes).`,
        )
        .join(''),
  });
  const tasks = [...new Set(d.acc.map((a) => a.task))];
  t.push({
    title: 'Dense reference and raw-pixel baseline',
    header: ['model', ...tasks],
    rows: [
      ...[...new Set(d.dense.map((x) => x.model))].map((m) => [
        m,
        ...tasks.map((task) => p(d.dense.find((x) => x.model === m && x.task === task)?.accuracy)),
      ]),
      ['raw pixels (8×8 pooled, ridge)', ...tasks.map((task) => p(d.pixels.find((x) => x.task === task)?.accuracy))],
    ],
  });
  t.push({
    title: 'Accuracy per task (zero-shot → after fine-tuning)',
    header: ['control', 'score', 'sparsity', 'head', ...tasks],
    rows: d.cells.flatMap((c) =>
      ['dense', 'refit']
        .filter((h) => d.acc.some((a) => a.cell === c.key && a.head === h))
        .map((h) => [
          c.control,
          c.score,
          p(c.sparsity, 0),
          h,
          ...tasks.map((task) => {
            const zs = d.acc.find(
              (a) => a.cell === c.key && a.task === task && a.head === h && a.phase === 'zero-shot',
            );
            const ft = d.acc.find(
              (a) => a.cell === c.key && a.task === task && a.head === h && a.phase === 'finetuned',
            );
            return `${p(zs?.accuracy)}${ft ? ` → ${p(ft.accuracy)}` : ''}`;
          }),
        ]),
    ),
  });
  t.push(...ablations(d).map(ablationTable));
  const prof = phaseProfile(d);
  if (prof.cells > 0)
    t.push({
      title: `Time per phase (${prof.cells} cells)`,
      header: ['phase', 'seconds', 'share', 'per cell (s)'],
      rows: prof.rows.map((r) => [r.phase, r.seconds.toFixed(1), p(r.share), r.perCell.toFixed(1)]),
      note: "prune.* are the pruner's own phases (score, allocate, reconstruct, bn, layerErrors); prune is the rest of the pruning call.",
    });
  const e = d.efficiency;
  if (e.length > 0) {
    t.push({
      title: 'Efficiency (whole model, float32 values)',
      header: [
        'control',
        'score',
        'sparsity',
        'parameters',
        'non-zero',
        'dense bytes',
        'bit-mask bytes',
        'CSR bytes',
        'dense MFLOPs',
        'sparse MFLOPs',
      ],
      rows: e.map((x) => [
        x.control,
        x.score,
        p(x.sparsity, 0),
        String(x.parameters),
        String(x.nonzero),
        mb(x.denseBytes),
        mb(x.bitmaskBytes),
        mb(x.csrBytes),
        mf(x.denseMacs),
        mf(x.sparseMacs),
      ]),
      note:
        'FLOPs = 2 × multiply-accumulates of conv/linear layers for one image at the study resolution; sparse FLOPs scale each layer by its ' +
        'density. Bit-mask: 1 bit per entry of masked tensors + kept values. CSR: 4-byte values and column indices + row pointers.',
    });
  }
  if (d.caps.length > 0) {
    t.push({
      title: 'Data used (caps)',
      header: ['task', 'cap (images per class, all splits)', 'train images', 'test images'],
      rows: d.caps.map((c) => [c.task, c.cap === null ? 'none' : String(c.cap), String(c.nTrain), String(c.nTest)]),
    });
  }
  if (d.failed && d.failed.length > 0) {
    t.push({
      title: 'Failed cells',
      header: ['model', 'control', 'score', 'sparsity', 'source', 'seed', 'worker', 'attempts', 'error'],
      rows: d.failed.map((f) => [
        f.model,
        f.control,
        f.score,
        p(f.sparsity, 0),
        f.source,
        String(f.seed),
        f.worker ?? '–',
        String(f.attempts),
        f.error.replace(/\s+/g, ' '),
      ]),
      note: 'These cells have no results. Fix what the error names, then rerun `tapir study <config> --redis URL --retry-failed`.',
    });
  }
  return t;
}

/** One ablation as a table: rows = (model, source,) axis value × score × measure, columns = sparsities. */
export function ablationTable(a: Ablation): Table {
  const field = AXIS_FIELDS[a.axis];
  const models = [...new Set(a.points.map((x) => x.model))];
  const sources = [...new Set(a.points.map((x) => x.source))];
  const scores = [...new Set(a.points.map((x) => x.score))];
  const sparsities = [...new Set(a.points.map((x) => x.sparsity))].sort((x, y) => x - y);
  const measures = (
    [
      ['held-out zs retained (dense head)', 'heldDense'],
      ['held-out zs retained (refit head)', 'heldRefit'],
      ['source zs accuracy', 'sourceAcc'],
    ] as const
  ).filter(([, k]) => a.points.some((x) => x[k] !== null));
  const rows: string[][] = [];
  for (const m of models)
    for (const src of sources)
      for (const v of a.values)
        for (const sc of scores) {
          const at = a.points.filter((x) => x.model === m && x.source === src && x.value === v && x.score === sc);
          if (at.length === 0) continue;
          for (const [label, k] of measures) {
            rows.push([
              ...(models.length > 1 ? [m] : []),
              ...(sources.length > 1 ? [src] : []),
              v,
              sc,
              label,
              ...sparsities.map((sp) => p(at.find((x) => x.sparsity === sp)?.[k])),
            ]);
          }
        }
  return {
    title: `Ablation: ${field} (${a.values.join(' vs ')})`,
    header: [
      ...(models.length > 1 ? ['model'] : []),
      ...(sources.length > 1 ? ['source'] : []),
      field,
      'score',
      'measure',
      ...sparsities.map((sp) => p(sp, 0)),
    ],
    rows,
    note:
      `Pre-trained weights, no control; other ablation axes at their base value (the first in the config); mean over seeds. Held-out: mean over ` +
      `held-out tasks of zero-shot accuracy / dense accuracy (dense head = fitted on the unpruned model; refit = refitted on the pruned backbone). ` +
      `Source: zero-shot accuracy on the source (dense head).${
        a.excluded.length
          ? ` Left out of the held-out mean because cells calibrated on them: ` + `${a.excluded.join(', ')}.`
          : ''
      }`,
  };
}

export function markdownTable(t: Table): string {
  return [
    `### ${t.title}`,
    '',
    `| ${t.header.map(mdCell).join(' | ')} |`,
    `|${t.header.map(() => '---').join('|')}|`,
    ...t.rows.map((r) => `| ${r.map(mdCell).join(' | ')} |`),
    ...(t.note ? ['', t.note] : []),
  ].join('\n');
}

export function markdownReport(d: ReportData): string {
  const diag = d.diagnostics
    ? `\n## Second-order diagnostics\n\n${diagnosticsTables(d.diagnostics).map(markdownTable).join('\n\n')}\n`
    : '';
  return reportTables(d).map(markdownTable).join('\n\n') + '\n' + diag;
}

function htmlTable(t: Table): string {
  return (
    `<h2>${escapeHtml(t.title)}</h2>\n<table><thead><tr>${t.header.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>\n` +
    t.rows.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`).join('\n') +
    '</tbody></table>' +
    (t.note ? `<p class="note">${escapeHtml(t.note)}</p>` : '')
  );
}

/** The self-contained HTML report. */
export async function htmlReport(d: ReportData, o: { title?: string } = {}): Promise<{ html: string; plots: number }> {
  const plots = reportPlots(d);
  const svgs: string[] = [];
  for (const pl of plots) svgs.push(await renderSvg(pl.spec));
  const title = o.title ?? `tapir study report: ${d.studies.map((s) => s.name).join(', ')}`;
  const tables = reportTables(d);
  // Second-order diagnostics (the study's `diagnostics` section): its own section, tables then plots.
  const diagPlots = d.diagnostics ? diagnosticsPlots(d.diagnostics) : [];
  const diag = d.diagnostics
    ? [`<h1 id="diagnostics">Second-order diagnostics</h1>`, ...diagnosticsTables(d.diagnostics).map(htmlTable)]
    : [];
  for (const pl of diagPlots)
    diag.push(
      `<h2>${escapeHtml(pl.title)}</h2>\n<figure>${await renderSvg(pl.spec)}<figcaption>${escapeHtml(pl.caption)}</figcaption></figure>`,
    );
  const body = [
    `<h1>${escapeHtml(title)}</h1>`,
    `<p>${d.cells.length} cells; studies: ${d.studies.map((s) => `${escapeHtml(s.name)} (protocol ${escapeHtml(s.protocol)})`).join(', ')}. Generated ` +
      `${escapeHtml(new Date().toISOString())}.</p>`,
    htmlTable(tables[0]!),
    ...plots.map(
      (pl, i) =>
        `<h2>${escapeHtml(pl.title)}</h2>\n<figure>${svgs[i]}<figcaption>${escapeHtml(pl.caption)}</figcaption></figure>`,
    ),
    ...tables.slice(1).map(htmlTable),
    ...diag,
    `<h2>Study configs</h2>${d.studies.map((s) => `<pre>${escapeHtml(JSON.stringify(s.config, null, 2))}</pre>`).join('\n')}`,
  ].join('\n');
  const css =
    'body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid ' +
    '#ccc;padding:2px 6px;text-align:right;white-space:nowrap}' +
    'th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}figure{margin:8px ' +
    '0}figcaption,.note{color:#555;font-size:12px;max-width:900px}pre{background:#f7f7f7;padding:8px;font-size:11px}';
  const head = `<meta charset="utf-8"><title>${escapeHtml(title)}</title><style>${css}</style>`;
  const html = `<!doctype html>\n<html lang="en"><head>${head}</head>\n<body>\n${body}\n</body></html>\n`;
  return { html, plots: plots.length + diagPlots.length };
}

/** Writes `text` to `file` atomically (temp file in the same folder, then rename). */
export function writeAtomic(file: string, text: string): void {
  writeFileAtomicSync(file, text);
}
