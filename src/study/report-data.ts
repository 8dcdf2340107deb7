/**
 * Everything the report shows, read from a results database: accuracy rows joined with their cell and the dense
 * reference, per-mask efficiency, per-layer densities and mask overlaps. Pure data: rendering is report.ts.
 */
import { TapirError } from '../engine/index.js';
import { efficiency, type Efficiency } from './efficiency.js';
import { ABLATION_AXES, expandGrid, type AblationAxis } from './grid.js';
import type { StudyConfig } from './config.js';
import { maskIoU, type CellErrorRow, type CellIdentity, type LayerRow, type StudyStore } from './store.js';
import { readDiagnostics, type DiagnosticsData } from './diagnostics-report.js';

/** A cell's ablation-axis values (cells written before the axes existed: the study config's values). */
export interface CellAxes {
  allocation: string | null;
  bn: string;
  calibration: number | null;
  calibData: string;
}
export interface CellRow extends CellAxes, CellIdentity {
  achieved: number;
  wallS: number;
  info: {
    prune?: Record<string, unknown>;
    finetune?: Record<string, unknown> | null;
    calib?: Record<string, unknown>;
    bn?: Record<string, unknown>;
  };
}
/** Where a row's cell sits in the grid (rows name their cell `cell`, the cells table `key`). */
export type CellCoords = Pick<CellIdentity, 'model' | 'control' | 'score' | 'sparsity' | 'source'> & { cell: string };
export interface AccRow extends CellAxes, CellCoords {
  seed: number;
  task: string;
  heldout: boolean;
  phase: string;
  head: string;
  accuracy: number;
  dense: number | null;
  retained: number | null;
  pixels: number | null;
}
export interface DenseRef {
  model: string;
  task: string;
  accuracy: number;
  nTrain: number;
  nTest: number;
  classes: string[];
}
/** One prunable tensor of one cell (`ord`: its place in model order). */
export interface CellLayer extends Omit<CellCoords, 'model'> {
  tensor: string;
  ord: number;
}
export interface LayerDensity extends CellLayer {
  density: number;
}
/** A layer's relative output error against the dense network (on the cell's calibration images, after BN repair). */
export interface LayerErr extends CellAxes, CellLayer {
  relError: number | null;
}
export interface Overlap {
  model: string;
  control: string;
  sparsity: number;
  seed: number;
  a: string;
  b: string;
  iou: number;
}
export interface EffRow extends Efficiency, CellCoords {}

export interface ReportData {
  studies: { name: string; protocol: string; config: Record<string, unknown> }[];
  cells: CellRow[];
  acc: AccRow[];
  dense: DenseRef[];
  pixels: DenseRef[];
  layers: LayerDensity[];
  /** Per-layer relative output errors (empty for databases written before they were stored). */
  layerErrors: LayerErr[];
  overlaps: Overlap[];
  efficiency: EffRow[];
  /** What was capped (per task: images per class, train/test counts). */
  caps: { task: string; cap: number | null; nTrain: number; nTest: number }[];
  /** Second-order diagnostics (the study's `diagnostics` section), null when the database has none. */
  diagnostics?: DiagnosticsData | null;
  /** Cells that failed on a worker (`tapir study --redis`) and are not stored; absent or empty when none. */
  failed?: CellErrorRow[];
  /** Per-image correctness of result rows (store.correctBits keys); absent or empty for older databases. */
  correct?: Map<string, Uint8Array>;
  /** Per-image correctness of the dense reference rows (store.denseCorrectBits keys). */
  denseCorrect?: Map<string, Uint8Array>;
}

/**
 * Several studies' report data as one (a pool: e.g. one config per source split). Cells, results and per-image bits
 * are keyed by cell hashes and protocols, so they concatenate; the dense references, pixel baselines and caps of a
 * model × task repeat across members (same test split) and are kept once. Diagnostics are per study: left out.
 */
export function mergeReports(ds: readonly ReportData[]): ReportData {
  const once = <T>(rows: T[], key: (r: T) => string): T[] => {
    const seen = new Set<string>();
    return rows.filter((r) => !seen.has(key(r)) && (seen.add(key(r)), true));
  };
  const maps = (pick: (d: ReportData) => Map<string, Uint8Array> | undefined) =>
    new Map(ds.flatMap((d) => [...(pick(d) ?? new Map<string, Uint8Array>())]));
  return {
    studies: ds.flatMap((d) => d.studies),
    cells: ds.flatMap((d) => d.cells),
    acc: ds.flatMap((d) => d.acc),
    dense: once(
      ds.flatMap((d) => d.dense),
      (r) => `${r.model}\t${r.task}`,
    ),
    pixels: once(
      ds.flatMap((d) => d.pixels),
      (r) => `${r.model}\t${r.task}`,
    ),
    layers: ds.flatMap((d) => d.layers),
    layerErrors: ds.flatMap((d) => d.layerErrors),
    overlaps: ds.flatMap((d) => d.overlaps),
    efficiency: ds.flatMap((d) => d.efficiency),
    caps: once(
      ds.flatMap((d) => d.caps),
      (r) => r.task,
    ),
    diagnostics: null,
    failed: ds.flatMap((d) => d.failed ?? []),
    correct: maps((d) => d.correct),
    denseCorrect: maps((d) => d.denseCorrect),
  };
}

export function readReport(store: StudyStore): ReportData {
  const studies = store
    .studyRows()
    .map((s) => ({ name: s.name, protocol: s.protocol, config: JSON.parse(s.config) as Record<string, unknown> }));
  if (studies.length === 0)
    throw new TapirError('E_DB', `${store.file} holds no study`, {
      fix: 'run `tapir study <config.yaml> --db <file>` first',
    });
  const baseOf = new Map(studies.map((s) => [s.protocol, configAxes(s.config)]));
  // SELECT *: a read-only store on a database written before the axis columns existed has none of them.
  const cells = store.cellRows().map((c) => {
    const base = baseOf.get(c.protocol);
    return {
      key: c.key,
      study: c.study,
      protocol: c.protocol,
      model: c.model,
      control: c.control,
      score: c.score,
      sparsity: c.sparsity,
      source: c.source,
      seed: c.seed,
      achieved: c.achieved_sparsity,
      wallS: c.wall_s,
      info: JSON.parse(c.info) as CellRow['info'],
      allocation: c.allocation ?? base?.allocation[0] ?? null,
      bn: c.bn ?? 'none',
      calibration: c.calibration ?? base?.calibration[0] ?? null,
      calibData: c.calib_data ?? 'source',
    };
  });
  const denseRaw = store.denseRows();
  const toRef = (d: (typeof denseRaw)[number]): DenseRef => ({
    model: d.model,
    task: d.task,
    accuracy: d.accuracy,
    nTrain: d.n_train,
    nTest: d.n_test,
    classes: JSON.parse(d.classes) as string[],
  });
  const dense = denseRaw.filter((d) => d.model !== 'pixels').map(toRef);
  const pixels = denseRaw.filter((d) => d.model === 'pixels').map(toRef);
  const denseOf = new Map(denseRaw.map((d) => [`${d.model}\0${d.protocol}\0${d.task}`, d.accuracy]));
  const byKey = new Map(cells.map((c) => [c.key, c]));
  const heldoutOf = new Map(
    studies.map((s) => [s.protocol, new Set((s.config.heldout as string[] | undefined) ?? [])]),
  );
  const acc: AccRow[] = store.resultRows().map((r) => {
    const c = byKey.get(r.cell)!;
    const d = denseOf.get(`${c.model}\0${c.protocol}\0${r.task}`) ?? null;
    return {
      cell: c.key,
      model: c.model,
      control: c.control,
      score: c.score,
      sparsity: c.sparsity,
      source: c.source,
      seed: c.seed,
      task: r.task,
      allocation: c.allocation,
      bn: c.bn,
      calibration: c.calibration,
      calibData: c.calibData,
      heldout: heldoutOf.get(c.protocol)?.has(r.task) ?? r.task !== c.source,
      phase: r.phase,
      head: r.head,
      accuracy: r.accuracy,
      dense: d,
      retained: d && d > 0 ? r.accuracy / d : null,
      pixels: denseOf.get(`pixels\0${c.protocol}\0${r.task}`) ?? null,
    };
  });
  const layerRows = new Map<string, LayerRow[]>();
  for (const l of store.layerRows()) {
    if (!layerRows.has(l.model)) layerRows.set(l.model, []);
    layerRows.get(l.model)!.push({
      tensor: l.tensor,
      op: l.op,
      shape: JSON.parse(l.shape) as number[],
      numel: l.numel,
      macs: l.macs,
      prunable: l.prunable === 1,
    });
  }
  const densRaw = store.densityRows();
  const layers: LayerDensity[] = densRaw.map((d) => {
    const c = byKey.get(d.cell)!;
    return {
      cell: d.cell,
      score: c.score,
      control: c.control,
      sparsity: c.sparsity,
      source: c.source,
      tensor: d.tensor,
      ord: d.ord,
      density: d.numel ? d.kept / d.numel : 1,
    };
  });
  const efficiencyRows: EffRow[] = cells.map((c) => ({
    cell: c.key,
    model: c.model,
    control: c.control,
    score: c.score,
    sparsity: c.sparsity,
    source: c.source,
    ...efficiency(
      layerRows.get(c.model) ?? [],
      densRaw.filter((d) => d.cell === c.key),
    ),
  }));
  const caps = new Map<string, { task: string; cap: number | null; nTrain: number; nTest: number }>();
  for (const s of studies) {
    const cfg = s.config as { cap?: number | null; caps?: Record<string, number> };
    for (const d of dense.concat(pixels))
      if (!caps.has(d.task))
        caps.set(d.task, {
          task: d.task,
          cap: cfg.caps?.[d.task] ?? cfg.cap ?? null,
          nTrain: d.nTrain,
          nTest: d.nTest,
        });
  }
  const layerErrors: LayerErr[] = store.layerErrorRows().map((e) => {
    const c = byKey.get(e.cell)!;
    return {
      cell: e.cell,
      score: c.score,
      control: c.control,
      sparsity: c.sparsity,
      source: c.source,
      allocation: c.allocation,
      bn: c.bn,
      calibration: c.calibration,
      calibData: c.calibData,
      tensor: e.tensor,
      ord: e.ord,
      relError: e.rel_error,
    };
  });
  return {
    studies,
    cells,
    acc,
    dense,
    pixels,
    layers,
    layerErrors,
    overlaps: overlaps(store, cells),
    efficiency: efficiencyRows,
    caps: [...caps.values()],
    diagnostics: readDiagnostics(store),
    failed: store.cellErrors(),
    correct: store.correctBits(),
    denseCorrect: store.denseCorrectBits(),
  };
}

/** IoU of the masks of every pair of cells that differ only in score (or source), over all tensors. */
function overlaps(store: StudyStore, cells: readonly CellRow[]): Overlap[] {
  const groups = new Map<string, CellRow[]>();
  for (const c of cells) {
    const k = JSON.stringify([c.model, c.control, c.sparsity, c.seed]);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(c);
  }
  const out: Overlap[] = [];
  const masksOf = (key: string) => store.masksOf(key);
  for (const g of groups.values()) {
    const ms = g.map((c) => masksOf(c.key));
    const label = (c: CellRow) => (g.some((o) => o.source !== c.source) ? `${c.score} @ ${c.source}` : c.score);
    for (let i = 0; i < g.length; i++)
      for (let j = 0; j < g.length; j++) {
        let inter = 0;
        let union = 0;
        for (const [t, a] of ms[i]!) {
          const b = ms[j]!.get(t);
          if (!b) continue;
          const r = maskIoU(a, b);
          inter += r.inter;
          union += r.union;
        }
        out.push({
          model: g[i]!.model,
          control: g[i]!.control,
          sparsity: g[i]!.sparsity,
          seed: g[i]!.seed,
          a: label(g[i]!),
          b: label(g[j]!),
          iou: union ? inter / union : 1,
        });
      }
  }
  return out;
}

/**
 * Where a study's time goes: the stored seconds per phase of every cell (data loading, scoring head, each pruning
 * phase, zero-shot evaluation, fine-tuning, evaluation after it), summed, with their share and mean per cell.
 * Cells written before phases were stored have none and are left out (`cells` counts those that have them).
 */
export function phaseProfile(d: ReportData): {
  cells: number;
  rows: { phase: string; seconds: number; share: number; perCell: number }[];
} {
  const withPhases = d.cells
    .map((c) => (c.info as { phases?: Record<string, number> }).phases)
    .filter((x): x is Record<string, number> => !!x);
  const total = new Map<string, number>();
  for (const ph of withPhases) for (const [k, v] of Object.entries(ph)) total.set(k, (total.get(k) ?? 0) + v);
  const all = [...total.values()].reduce((a, b) => a + b, 0);
  const rows = [...total]
    .map(([phase, seconds]) => ({
      phase,
      seconds,
      share: all > 0 ? seconds / all : 0,
      perCell: seconds / withPhases.length,
    }))
    .sort((a, b) => b.seconds - a.seconds);
  return { cells: withPhases.length, rows };
}

/** Mean of the retained fraction over held-out tasks, per cell and phase (dense head): the headline numbers. */
export function summaryRows(d: ReportData): {
  model: string;
  control: string;
  score: string;
  sparsity: number;
  source: string;
  achieved: number;
  sourceZs: number | null;
  sourceFt: number | null;
  heldZs: number | null;
  heldFt: number | null;
  heldRefitZs: number | null;
  heldRefitFt: number | null;
}[] {
  const mean = (xs: (number | null)[]) => {
    const v = xs.filter((x): x is number => x !== null);
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
  };
  return d.cells.map((c) => {
    const rows = d.acc.filter((a) => a.cell === c.key);
    const pick = (phase: string, head: string, held: boolean) =>
      rows.filter((a) => a.phase === phase && a.head === head && a.heldout === held);
    return {
      model: c.model,
      control: c.control,
      score: c.score,
      sparsity: c.sparsity,
      source: c.source,
      achieved: c.achieved,
      sourceZs: mean(pick('zero-shot', 'dense', false).map((a) => a.accuracy)),
      sourceFt: mean(rows.filter((a) => a.phase === 'finetuned' && a.head === 'trained').map((a) => a.accuracy)),
      heldZs: mean(pick('zero-shot', 'dense', true).map((a) => a.retained)),
      heldFt: mean(pick('finetuned', 'dense', true).map((a) => a.retained)),
      heldRefitZs: mean(pick('zero-shot', 'refit', true).map((a) => a.retained)),
      heldRefitFt: mean(pick('finetuned', 'refit', true).map((a) => a.retained)),
    };
  });
}

/**
 * Finished vs grid cells per stored study protocol (a report on a partial database says what is missing). A stored
 * config this tapir cannot expand counts as unknown (null).
 */
export function gridStatus(d: ReportData): { study: string; protocol: string; done: number; grid: number | null }[] {
  return d.studies.map((s) => {
    let grid: number | null = null;
    try {
      grid = expandGrid(s.config as unknown as StudyConfig).filter((c) => c.protocol === s.protocol).length;
    } catch {
      grid = null;
    }
    return { study: s.name, protocol: s.protocol, done: d.cells.filter((c) => c.protocol === s.protocol).length, grid };
  });
}

/**
 * A label per protocol when a database holds cells of more than one (the same study run with other settings): the
 * config fields whose values differ, e.g. `alpha=1` vs `alpha=1000`. Empty when there is one protocol.
 */
export function protocolLabels(d: ReportData): Map<string, string> {
  const protocols = [...new Set(d.cells.map((c) => c.protocol))];
  if (protocols.length < 2) return new Map();
  const flat = (v: unknown, prefix: string, out: Map<string, string>): Map<string, string> => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v))
      for (const [k, x] of Object.entries(v)) flat(x, prefix ? `${prefix}.${k}` : k, out);
    else out.set(prefix, JSON.stringify(v));
    return out;
  };
  const cfgs = protocols.map((p) => flat(d.studies.find((s) => s.protocol === p)?.config ?? {}, '', new Map()));
  const keys = [...new Set(cfgs.flatMap((c) => [...c.keys()]))].filter(
    (k) => new Set(cfgs.map((c) => c.get(k))).size > 1 && k !== 'name',
  );
  return new Map(
    protocols.map((p, i) => [
      p,
      keys.length ? keys.map((k) => `${k}=${cfgs[i]!.get(k) ?? '–'}`).join(', ') : `protocol ${p.slice(0, 8)}`,
    ]),
  );
}

/** Axis values of a stored study config (a StudyConfig as JSON; configs from before the axes: their scalars). */
export function configAxes(cfg: Record<string, unknown>): {
  calibData: string[];
  calibration: number[];
  allocation: string[];
  bn: string[];
} {
  const prune = (cfg.prune ?? {}) as Record<string, unknown>;
  const list = <T>(xs: unknown, one: unknown, fallback: T[]): T[] =>
    Array.isArray(xs) && xs.length > 0 ? (xs as T[]) : one !== undefined && one !== null ? [one as T] : fallback;
  return {
    calibData: list<string>(cfg.calibData, undefined, ['source']),
    calibration: list<number>(cfg.calibrations, cfg.calibration, []),
    allocation: list<string>(prune.allocations, prune.allocation, []),
    bn: list<string>(prune.bns, undefined, ['none']),
  };
}

export type AblationAxisName = AblationAxis;
/** The YAML field of each axis (table and plot titles use it). */
export const AXIS_FIELDS: Record<AblationAxisName, string> = {
  calibData: 'calib_data',
  calibration: 'calibration',
  allocation: 'prune.allocation',
  bn: 'prune.bn',
};

export interface AblationPoint {
  model: string;
  source: string;
  value: string;
  score: string;
  sparsity: number;
  /** Cells averaged (seeds). */
  cells: number;
  /** Mean over held-out tasks of zero-shot accuracy / dense accuracy: dense head, refitted head. */
  heldDense: number | null;
  heldRefit: number | null;
  /** Zero-shot accuracy on the source (dense head). */
  sourceAcc: number | null;
}
export interface Ablation {
  axis: AblationAxisName;
  /** Values in grid order (the first is the base). */
  values: string[];
  points: AblationPoint[];
  /** Held-out tasks left out of every mean because some cell calibrated on them. */
  excluded: string[];
}

/**
 * One ablation per axis that takes more than one value among the main cells (control none): per (model, source,
 * axis value, score, sparsity), the mean over seeds of each cell's held-out zero-shot retained fraction and source
 * accuracy. Only cells whose OTHER axes sit at their study's base value (the config's first) enter, so each
 * table varies one thing. Held-out tasks that any cell used as calib_data are left out of every held-out mean
 * (they are no longer unseen for those cells, and all rows must average the same tasks).
 */
export function ablations(d: ReportData): Ablation[] {
  const mean = (xs: (number | null)[]) => {
    const v = xs.filter((x): x is number => x !== null);
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
  };
  const baseOf = new Map(d.studies.map((s) => [s.protocol, configAxes(s.config)]));
  const main = d.cells.filter((c) => c.control === 'none');
  const val = (c: CellRow, a: AblationAxisName) => (c[a] === null ? '–' : String(c[a]));
  const atBase = (c: CellRow, a: AblationAxisName) => {
    const b = baseOf.get(c.protocol)?.[a][0];
    return b === undefined || val(c, a) === String(b);
  };
  const excluded = [...new Set(main.map((c) => c.calibData).filter((x) => x !== 'source' && x !== 'noise'))];
  const accOf = new Map<string, AccRow[]>();
  for (const a of d.acc) {
    if (a.phase !== 'zero-shot') continue;
    if (!accOf.has(a.cell)) accOf.set(a.cell, []);
    accOf.get(a.cell)!.push(a);
  }
  const perCell = (c: CellRow) => {
    const rows = accOf.get(c.key) ?? [];
    const held = (head: string) =>
      mean(rows.filter((a) => a.heldout && a.head === head && !excluded.includes(a.task)).map((a) => a.retained));
    return {
      heldDense: held('dense'),
      heldRefit: held('refit'),
      sourceAcc: mean(rows.filter((a) => a.head === 'dense' && a.task === c.source).map((a) => a.accuracy)),
    };
  };
  const out: Ablation[] = [];
  for (const axis of ABLATION_AXES) {
    const values = [...new Set(main.map((c) => val(c, axis)))];
    if (values.length < 2) continue;
    const groups = new Map<
      string,
      { p: Omit<AblationPoint, 'cells' | 'heldDense' | 'heldRefit' | 'sourceAcc'>; cells: CellRow[] }
    >();
    for (const c of main) {
      if (!ABLATION_AXES.every((o) => o === axis || atBase(c, o))) continue;
      const p = { model: c.model, source: c.source, value: val(c, axis), score: c.score, sparsity: c.sparsity };
      const k = JSON.stringify(p);
      if (!groups.has(k)) groups.set(k, { p, cells: [] });
      groups.get(k)!.cells.push(c);
    }
    const points = [...groups.values()].map(({ p, cells }) => {
      const m = cells.map(perCell);
      return {
        ...p,
        cells: cells.length,
        heldDense: mean(m.map((x) => x.heldDense)),
        heldRefit: mean(m.map((x) => x.heldRefit)),
        sourceAcc: mean(m.map((x) => x.sourceAcc)),
      };
    });
    out.push({ axis, values, points, excluded });
  }
  return out;
}
