/**
 * Tables of the study's second-order diagnostics (docs/ANALYSIS.md, "Study diagnostics"). One run per (model,
 * settings hash) — the hash covers the diagnostics section, the study protocol and the cells whose masks are
 * evaluated — written in ONE transaction with its done marker (`diag_done`), like a cell: a killed run leaves
 * nothing, a finished one is never recomputed. Measurements that are NaN are stored as NULL (SQLite has no NaN).
 */

export const DIAGNOSTICS_SCHEMA = `
CREATE TABLE IF NOT EXISTS diag_done (
  model TEXT NOT NULL, settings TEXT NOT NULL, study TEXT NOT NULL, spec TEXT NOT NULL, info TEXT NOT NULL, wall_s REAL NOT NULL, finished_at TEXT NOT NULL,
  PRIMARY KEY (model, settings));
CREATE TABLE IF NOT EXISTS diag_spectra (
  model TEXT NOT NULL, settings TEXT NOT NULL, task TEXT NOT NULL, ord INTEGER NOT NULL, images INTEGER NOT NULL, loss REAL,
  trace REAL, trace_stderr REAL, weighted_trace REAL, weighted_stderr REAL,
  eigenvalues TEXT NOT NULL, residuals TEXT NOT NULL, layers TEXT NOT NULL, head TEXT NOT NULL,
  PRIMARY KEY (model, settings, task));
CREATE TABLE IF NOT EXISTS diag_pairs (
  model TEXT NOT NULL, settings TEXT NOT NULL, a TEXT NOT NULL, b TEXT NOT NULL, cosine REAL, spearman REAL, overlap REAL, iou TEXT NOT NULL,
  PRIMARY KEY (model, settings, a, b));
CREATE TABLE IF NOT EXISTS diag_loss_change (
  model TEXT NOT NULL, settings TEXT NOT NULL, mask_kind TEXT NOT NULL, mask_from TEXT NOT NULL, score TEXT NOT NULL, target REAL NOT NULL,
  task TEXT NOT NULL, sparsity REAL, first REAL, second REAL, measured REAL,
  PRIMARY KEY (model, settings, mask_kind, mask_from, target, task));
`;

/** One task's spectrum (JSON columns: eigenvalues, residuals, per-layer traces, the head). */
export interface DiagSpectrumRow {
  task: string;
  images: number;
  loss: number;
  trace: number;
  traceStderr: number;
  weightedTrace: number;
  weightedStderr: number;
  eigenvalues: number[];
  residuals: number[];
  layers: { name: string; size: number; trace: number; stderr: number }[];
  head: Record<string, unknown>;
}
/** Alignment of two tasks' curvature; `iou` is the OBD-mask IoU per sparsity. */
export interface DiagPairRow {
  a: string;
  b: string;
  cosine: number;
  spearman: number;
  overlap: number;
  iou: { sparsity: number; iou: number }[];
}
/**
 * Predicted (first, second order) and measured loss change of one mask on one task. `maskKind` 'obd': the OBD mask
 * of task `maskFrom` at sparsity `target`; 'cell': the mask of study cell `maskFrom` (score `score`, its target
 * sparsity). `sparsity`: the fraction of the analysed weights the mask removes.
 */
export interface DiagLossRow {
  maskKind: 'obd' | 'cell';
  maskFrom: string;
  score: string;
  target: number;
  task: string;
  sparsity: number;
  first: number;
  second: number;
  measured: number;
}

export interface DiagnosticsRecord {
  model: string;
  settings: string;
  study: string;
  spec: unknown;
  info: Record<string, unknown>;
  wallS: number;
  spectra: DiagSpectrumRow[];
  pairs: DiagPairRow[];
  lossChange: DiagLossRow[];
}
