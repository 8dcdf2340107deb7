/**
 * The study grid: one cell per (model, control, score, sparsity, source, seed). A cell's key is a hash of the
 * cell AND of everything else that decides its numbers (the protocol: tasks, caps, calibration, heads, recipe…),
 * so editing the protocol makes new cells instead of silently mixing results in one database.
 */
import { createHash } from 'node:crypto';
import type { ScoreSpec, StudyConfig } from './config.js';
import { scoreLabel } from './config.js';

export type Control = 'none' | 'random-init' | 'shuffled-mask';

export interface CellSpec {
  key: string;
  protocol: string;
  /** Effective zoo spec, e.g. `mobilenet_v2@64` or `random:mobilenet_v2@64`. */
  model: string;
  control: Control;
  score: ScoreSpec;
  scoreLabel: string;
  sparsity: number;
  source: string;
  seed: number;
}

const hash = (v: unknown) => createHash('sha256').update(JSON.stringify(v)).digest('hex').slice(0, 16);

/** Every task a cell is evaluated on: the sources first, then the held-out tasks. */
export function studyTasks(c: StudyConfig): string[] {
  return [...new Set([...c.sources, ...c.heldout])];
}

/** Hash of the protocol settings shared by every cell of the study. */
export function protocolHash(c: StudyConfig): string {
  return hash({
    v: 1, tasks: studyTasks(c), calibration: c.calibration, resolution: c.resolution, cap: c.cap, caps: c.caps, dataSeed: c.dataSeed,
    heads: c.heads, alpha: c.alpha, prune: c.prune, finetune: c.finetune,
  });
}

/** `base` rebuilt at the study resolution, with a `random:` prefix for the random-init control. */
export function effectiveModel(base: string, c: StudyConfig, random: boolean): string {
  let s = base.trim();
  const wasRandom = s.startsWith('random:');
  if (wasRandom) s = s.slice('random:'.length);
  if (c.resolution !== null && !/[\\/]|\.onnx$/i.test(s)) s = `${s.replace(/@\d+$/, '')}@${c.resolution}`;
  return (random || wasRandom) ? `random:${s}` : s;
}

/** Cells in run order: the main grid, then the controls (cheapest evidence first within each). */
export function expandGrid(c: StudyConfig): CellSpec[] {
  const protocol = protocolHash(c);
  const cells: CellSpec[] = [];
  const add = (model: string, control: Control, scores: readonly ScoreSpec[], sparsities: readonly number[]) => {
    for (const source of c.sources) for (const seed of c.seeds) for (const score of scores) for (const sparsity of sparsities) {
      const key = hash({ protocol, model, control, score, sparsity, source, seed });
      cells.push({ key, protocol, model, control, score, scoreLabel: scoreLabel(score), sparsity, source, seed });
    }
  };
  for (const m of c.models) add(effectiveModel(m, c, false), 'none', c.scores, c.sparsities);
  for (const m of c.models) {
    if (c.controls.randomInit) add(effectiveModel(m, c, true), 'random-init', c.controls.randomInit.scores, c.controls.randomInit.sparsities);
    if (c.controls.shuffledMask) add(effectiveModel(m, c, false), 'shuffled-mask', c.controls.shuffledMask.scores, c.controls.shuffledMask.sparsities);
  }
  return cells;
}

/** Per-task cap: the task's own entry, else the study default. */
export function capOf(c: StudyConfig, task: string): number | undefined {
  return c.caps[task] ?? c.cap ?? undefined;
}
