/**
 * The study grid: one cell per (model, control, score, sparsity, source, seed). A cell's key is a hash of the
 * cell AND of everything else that decides its numbers (the protocol: tasks, caps, calibration, heads, recipe…),
 * so editing the protocol makes new cells instead of silently mixing results in one database.
 */
import { createHash } from 'node:crypto';
import type { AllocationName, BnRepair, CalibData, ScoreSpec, StudyConfig } from './config.js';
import { scoreLabel } from './config.js';
import type { TaskOptions } from '../data/index.js';

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
  /** Ablation axes (see `cellAxes`): allocation, BN repair, calibration size and calibration data. */
  allocation: AllocationName;
  bn: BnRepair;
  calibration: number;
  calibData: CalibData;
}

/** The ablation axes of a cell, in the order they nest in the grid (outermost first). */
export const ABLATION_AXES = ['calibData', 'calibration', 'allocation', 'bn'] as const;
export type AblationAxis = (typeof ABLATION_AXES)[number];

const hash = (v: unknown) => createHash('sha256').update(JSON.stringify(v)).digest('hex').slice(0, 16);

/** Every task a cell is evaluated on: the sources first, then the held-out tasks. */
export function studyTasks(c: StudyConfig): string[] {
  return [...new Set([...c.sources, ...c.heldout])];
}

/**
 * The values of each ablation axis (the first is the base). Tolerates a config object made before the axes
 * existed (no lists): the scalar fields then give one-value lists.
 */
export function axisValues(c: StudyConfig): {
  calibData: CalibData[];
  calibration: number[];
  allocation: AllocationName[];
  bn: BnRepair[];
} {
  const some = <T>(xs: readonly T[] | undefined, fallback: T): T[] => (xs && xs.length > 0 ? [...xs] : [fallback]);
  return {
    calibData: some(c.calibData, 'source'),
    calibration: some(c.calibrations, c.calibration),
    allocation: some(c.prune.allocations, c.prune.allocation),
    bn: some(c.prune.bns, 'none'),
  };
}

/**
 * Hash of the protocol settings shared by every cell of the study. The ablation axes enter only through their BASE
 * value (the first of each list: calibration size and allocation, exactly the fields a scalar config always had),
 * never as lists; a cell whose axis value differs from the base adds it to its own key (`cellKeyAxes`). So a
 * scalar config hashes byte-for-byte as before the axes existed, and a list config whose first values equal an
 * older scalar config shares its protocol and its base cells.
 */
export function protocolHash(c: StudyConfig): string {
  const ax = axisValues(c);
  return hash({
    v: 1,
    tasks: studyTasks(c),
    calibration: ax.calibration[0],
    resolution: c.resolution,
    cap: c.cap,
    caps: c.caps,
    dataSeed: c.dataSeed,
    heads: c.heads,
    alpha: c.alpha,
    prune: { loss: c.prune.loss, allocation: ax.allocation[0], minDensity: c.prune.minDensity },
    finetune: c.finetune,
  });
}

/**
 * The axis values a cell key adds to the hash: only those that differ from the protocol's base (allocation and
 * calibration: the config's first value) or from the built-in default (bn 'none', calib_data 'source', which the
 * protocol hash never holds). A cell at all-base values therefore keeps its pre-ablation key.
 */
export function cellKeyAxes(c: StudyConfig, a: Pick<CellSpec, AblationAxis>): Record<string, unknown> {
  const ax = axisValues(c);
  return {
    ...(a.allocation !== ax.allocation[0] ? { allocation: a.allocation } : {}),
    ...(a.bn !== 'none' ? { bn: a.bn } : {}),
    ...(a.calibration !== ax.calibration[0] ? { calibration: a.calibration } : {}),
    ...(a.calibData !== 'source' ? { calibData: a.calibData } : {}),
  };
}

/** `base` rebuilt at the study resolution, with a `random:` prefix for the random-init control. */
export function effectiveModel(base: string, c: StudyConfig, random: boolean): string {
  let s = base.trim();
  const wasRandom = s.startsWith('random:');
  if (wasRandom) s = s.slice('random:'.length);
  if (c.resolution !== null && !/[\\/]|\.onnx$/i.test(s)) s = `${s.replace(/@\d+$/, '')}@${c.resolution}`;
  return random || wasRandom ? `random:${s}` : s;
}

/**
 * Cells in run order: the main grid, then the controls (cheapest evidence first within each). Within a source and
 * seed the ablation axes nest outside score × sparsity (calib_data, calibration, allocation, bn), so the cells at
 * the base values (first of each list) come first. Controls run at the base values only.
 */
export function expandGrid(c: StudyConfig): CellSpec[] {
  const protocol = protocolHash(c);
  const cells: CellSpec[] = [];
  const seen = new Set<string>();
  const ax = axisValues(c);
  const add = (model: string, control: Control, scores: readonly ScoreSpec[], sparsities: readonly number[]) => {
    const pick = <T>(xs: T[]) => (control === 'none' ? xs : xs.slice(0, 1));
    const [calibDatas, calibrations, allocations, bns] = [
      pick(ax.calibData),
      pick(ax.calibration),
      pick(ax.allocation),
      pick(ax.bn),
    ];
    for (const source of c.sources)
      for (const seed of c.seeds)
        for (const calibData of calibDatas)
          for (const calibration of calibrations)
            for (const allocation of allocations)
              for (const bn of bns)
                for (const score of scores)
                  for (const sparsity of sparsities) {
                    // A score's pins replace the axis values (its cells then repeat across that axis: kept once).
                    const pin = score.pin ?? {};
                    const axes = {
                      allocation: pin.allocation ?? allocation,
                      bn: pin.bn ?? bn,
                      calibration: pin.calibration ?? calibration,
                      calibData: pin.calibData ?? calibData,
                    };
                    // An N:M allocation fixes the sparsity at 1 − N/M: other sparsities have no such cell.
                    const nm = /^(\d+):(\d+)$/.exec(axes.allocation);
                    if (nm && Math.abs(sparsity - (1 - Number(nm[1]) / Number(nm[2]))) > 1e-9) continue;
                    const key = hash({
                      protocol,
                      model,
                      control,
                      score,
                      sparsity,
                      source,
                      seed,
                      ...cellKeyAxes(c, axes),
                    });
                    if (seen.has(key)) continue;
                    seen.add(key);
                    cells.push({
                      key,
                      protocol,
                      model,
                      control,
                      score,
                      scoreLabel: scoreLabel(score),
                      sparsity,
                      source,
                      seed,
                      ...axes,
                    });
                  }
  };
  for (const m of c.models) add(effectiveModel(m, c, false), 'none', c.scores, c.sparsities);
  for (const m of c.models) {
    if (c.controls.randomInit)
      add(effectiveModel(m, c, true), 'random-init', c.controls.randomInit.scores, c.controls.randomInit.sparsities);
    if (c.controls.shuffledMask)
      add(
        effectiveModel(m, c, false),
        'shuffled-mask',
        c.controls.shuffledMask.scores,
        c.controls.shuffledMask.sparsities,
      );
  }
  return cells;
}

/** Per-task cap: the task's own entry, else the study default. */
export function capOf(c: StudyConfig, task: string): number | undefined {
  return c.caps[task] ?? c.cap ?? undefined;
}

/** Split seed and cap of a task as the config names it (caps are keyed by the config's spelling, not the resolved id). */
export function taskOptionsFor(c: StudyConfig, task: string): TaskOptions {
  const cap = capOf(c, task);
  return { seed: c.dataSeed, ...(cap !== undefined ? { cap } : {}) };
}
