/**
 * Where the pruned network drifts from the dense one, layer by layer: findings over the per-layer relative output
 * errors a study stores (‖f_dense − f_pruned‖² / ‖f_dense‖² at each pruned layer's output, on the cell's calibration
 * images, after BN repair). Per configuration and sparsity: the error at the last pruned layer, the first layer where
 * it reaches `level`, and the layer where one layer multiplies it most.
 */
import type { ReportData } from './report-data.js';
import { configLabel, pct, varyingAxes, type Finding } from './results-findings.js';

interface Curve {
  label: string;
  sparsity: number;
  errors: { tensor: string; ord: number; e: number }[];
}

const fmt = (x: number) => (x >= 0.01 ? x.toFixed(3) : x.toExponential(1));

export function layerErrorFindings(d: ReportData, level = 0.1): Finding[] {
  const cells = d.cells.filter((c) => c.control === 'none');
  const byCell = new Map<string, { tensor: string; ord: number; e: number }[]>();
  for (const r of d.layerErrors) {
    if (r.relError === null || r.control !== 'none') continue;
    if (!byCell.has(r.cell)) byCell.set(r.cell, []);
    byCell.get(r.cell)!.push({ tensor: r.tensor, ord: r.ord, e: r.relError });
  }
  if (byCell.size === 0) return [];
  const axes = varyingAxes(cells);
  // Mean curve over the cells of a configuration (sources, seeds), layer by layer.
  const groups = new Map<
    string,
    { label: string; sparsity: number; curves: { tensor: string; ord: number; e: number }[][] }
  >();
  for (const c of cells) {
    const errs = byCell.get(c.key);
    if (!errs) continue;
    const label = configLabel(c, axes);
    const k = `${label}\0${c.sparsity}`;
    if (!groups.has(k)) groups.set(k, { label, sparsity: c.sparsity, curves: [] });
    groups.get(k)!.curves.push([...errs].sort((a, b) => a.ord - b.ord));
  }
  const curves: Curve[] = [...groups.values()].map((g) => ({
    label: g.label,
    sparsity: g.sparsity,
    errors: g.curves[0]!.map((x, i) => ({
      tensor: x.tensor,
      ord: x.ord,
      e: g.curves.reduce((a, c) => a + (c[i]?.e ?? 0), 0) / g.curves.length,
    })),
  }));
  const rows = curves.map((c) => {
    const n = c.errors.length;
    const last = c.errors[n - 1]!.e;
    const first = c.errors.find((x) => x.e >= level);
    let jump = { at: '–', factor: 1 };
    c.errors.forEach((x, i) => {
      const prev = i > 0 ? c.errors[i - 1]!.e : 0;
      const f = prev > 0 ? x.e / prev : x.e > 0 ? Infinity : 1;
      if (i > 0 && f > jump.factor) jump = { at: `${x.tensor} (${i + 1}/${n})`, factor: f };
    });
    const max = Math.max(...c.errors.map((x) => x.e));
    return {
      c,
      n,
      last,
      first: first ? `${first.tensor} (${c.errors.indexOf(first) + 1}/${n})` : `never (max ${fmt(max)})`,
      reach: first
        ? `first reaches ${level} at ${first.tensor} (layer ${c.errors.indexOf(first) + 1} of ${n})`
        : `stays below ${level} (max ${fmt(max)})`,
      jump,
    };
  });
  const sps = [...new Set(curves.map((c) => c.sparsity))].sort((a, b) => a - b);
  const sentences = sps.map((sp) => {
    const at = rows.filter((r) => r.c.sparsity === sp).sort((a, b) => a.last - b.last);
    const best = at[0]!;
    const worst = at[at.length - 1]!;
    return (
      `At ${pct(sp, 0)} sparsity the relative output error at the last pruned layer ranges from ${fmt(best.last)} (${best.c.label}) to ` +
      `${fmt(worst.last)} (${worst.c.label}); ` +
      `with ${best.c.label} it ${best.reach}, with ${worst.c.label} it ${worst.reach}.`
    );
  });
  return [
    {
      id: 'layer-errors',
      title: 'Where the error concentrates, layer by layer',
      sentences,
      table: {
        title:
          `Relative output error against the dense network (calibration images, after BN repair): at the last pruned layer, the first layer where ` +
          `it reaches ${level}, the layer that multiplies it most`,
        header: ['configuration', 'sparsity', 'last layer', `first ≥ ${level}`, 'largest jump (× previous layer)'],
        rows: rows
          .sort((a, b) => a.c.sparsity - b.c.sparsity || a.last - b.last)
          .map((r) => [
            r.c.label,
            pct(r.c.sparsity, 0),
            fmt(r.last),
            r.first,
            r.jump.factor > 1
              ? `${r.jump.at}, ×${Number.isFinite(r.jump.factor) ? r.jump.factor.toFixed(1) : '∞'}`
              : '–',
          ]),
      },
    },
  ];
}
