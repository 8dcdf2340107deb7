/**
 * The pruner, the one pruning entry of tapir (the CLI, studies and diagnostics all call it): score → allocation →
 * masks, once (`oneshot`) or over R rounds (`iterative`, density k^(r/R), re-scoring with the current mask each
 * round), then the optional shuffled-mask control and BN repair. It receives a `Score` value and never branches on
 * its name. Masks are set on the graph (W ⊙ c in the forward pass) and pruned weights are zeroed at the end; other
 * weights change only when the score offers an update (OBS compensation).
 *
 * A data-driven score reads the loss through `head`, a linear task head on the feature tap (the model's own
 * classifier predicts other classes); the head is not pruned and stays the caller's.
 * Sparsity counts mask entries over the scored parameters; weights that are already 0 but kept are reported
 * (`alreadyZero`), not counted as pruned.
 */
import { noGrad, scope, type Tensor } from '../engine/index.js';
import {
  applyMasksInPlace,
  disposeGraph,
  prunableParams,
  setMask,
  withTaskHead,
  type Graph,
  type LinearHead,
  type Mode,
} from '../graph/index.js';
import {
  allocate,
  AllocationError,
  allocationLabel,
  checkSparsity,
  usesErrorCurves,
  type Allocation,
  type ParamMap,
} from './allocation.js';
import { calibrationHash, checkCalibration, checkWeights, countImages } from './calib.js';
import { BN_REPAIRS, denseCopy, repairBatchNorm, type BnRepair, type BnRepairResult } from './bn.js';
import { PruneError } from './errors.js';
import type { CurvatureEstimator, EstimatorName } from './estimators/index.js';
import type { CalibBatch, LossName } from './loss.js';
import { shuffleMasks } from './masks.js';
import { layersOf } from './reconstruct/layers.js';
import { layerErrors, type LayerError, type ReconstructSettings } from './reconstruct/sweep.js';
import { roundDensities, type Schedule } from './schedule.js';
import { SCORES, type Score, type ScoreName } from './scores/index.js';

export interface PruneOptions {
  score: ScoreName | Score;
  /** Fraction of prunable weights to remove, in [0, 1). */
  sparsity: number;
  allocation?: Allocation;
  minDensity?: number;
  schedule?: Schedule;
  /** Calibration batches (required unless the score is data-free). */
  batches?: readonly CalibBatch[];
  /** Images the caller asked for: an error if the batches hold fewer. */
  calib?: number;
  loss?: LossName;
  seed?: number;
  estimator?: EstimatorName | CurvatureEstimator;
  probes?: number;
  ggn?: 'exact' | 'mc';
  block?: { curvature?: 'fisher' | 'ggn'; blockSize?: number; damping?: number; compensate?: boolean };
  mode?: Mode;
  allowTrainMode?: boolean;
  /** Linear task head on the feature tap that the loss is read through (default: the graph's own output). */
  head?: LinearHead;
  /** Parameters to score and mask (default: every prunable one). */
  params?: readonly string[];
  /** The shuffled-mask control: permute each final mask within its tensor (seeded by `seed`) before BN repair. */
  shuffle?: boolean;
  /** BN repair after masking, on the calibration images (default 'none'). */
  bn?: BnRepair;
  /** The unpruned model (same nodes, own tensors) for BN repair, reconstruction and layer errors; default: a copy of `g` taken before pruning. */
  dense?: Graph;
  /** Reconstruction pruners (sparsegpt): target, columns per block, relative damping. */
  reconstruct?: ReconstructSettings;
  onProgress?: (phase: string, done: number, total: number) => void;
}

export interface TensorReport {
  name: string;
  shape: number[];
  size: number;
  kept: number;
  density: number;
}

export interface PruneReport {
  graph: string;
  score: ScoreName;
  scoreInfo: Record<string, unknown>;
  loss: LossName;
  seed: number;
  sparsity: number;
  achievedSparsity: number;
  allocation: Allocation;
  minDensity: number;
  schedule: Schedule;
  rounds: { density: number; achievedSparsity: number }[];
  prunableParameters: number;
  keptParameters: number;
  /** Kept weights whose value is exactly 0 (not counted as pruned). */
  alreadyZero: number;
  tensors: TensorReport[];
  collapsed: string[];
  warnings: string[];
  calibration: { images: number; hash: string | null };
  /** Parameters scored and masked. */
  scoredTensors: number;
  /** Reconstruction pruners: per-layer records of the sweep (λ, reverted rows, the layer's own error before/after). */
  reconstruction: Record<string, unknown> | null;
  /** ‖f_dense − f_pruned‖² / ‖f_dense‖² at each pruned layer's output on the calibration images (null without images). */
  layerErrors: LayerError[] | null;
  shuffled: boolean;
  bn: BnRepairResult;
  compensated: boolean;
  /** Milliseconds per phase, summed over rounds. */
  timings: Record<string, number>;
}

/** The score registry's entry for a name (a Score value passes through). */
export function resolveScore(s: ScoreName | Score): Score {
  if (typeof s !== 'string') return s;
  if (!Object.prototype.hasOwnProperty.call(SCORES, s))
    throw new PruneError(`unknown score '${s}'`, {
      context: { score: s },
      fix: `use one of: ${Object.keys(SCORES).join(', ')}`,
    });
  return SCORES[s];
}

/** Scores of weights that are already pruned, pushed below every live score, so they never come back. */
function demotePruned(g: Graph, scores: Map<string, Tensor>): Map<string, Tensor> {
  if (g.masks.size === 0) return scores;
  return noGrad(() => {
    let min = Infinity;
    for (const s of scores.values())
      min = Math.min(
        min,
        scope(() => s.min().item()),
      );
    const low = min - Math.abs(min) - 1;
    return new Map(
      [...scores].map(([n, s]) => {
        const m = g.masks.get(n);
        if (!m) return [n, s] as const;
        const out = scope(() => s.mul(m).add(m.neg().add(1).mul(low)));
        s.dispose();
        return [n, out] as const;
      }),
    );
  });
}

export function prune(g: Graph, o: PruneOptions): PruneReport {
  const score = resolveScore(o.score);
  checkSparsity(o.sparsity);
  const bn = o.bn ?? 'none';
  if (!BN_REPAIRS.includes(bn))
    throw new PruneError(`unknown BN repair '${String(bn)}'`, {
      context: { bn },
      fix: `use one of: ${BN_REPAIRS.join(', ')} (--bn)`,
    });
  const params = o.params ? [...o.params] : prunableParams(g).map((p) => p.name);
  if (params.length === 0)
    throw new AllocationError(
      `graph '${g.name}' has no prunable parameters`,
      { graph: g.name },
      'mark conv/linear weights prunable (role "weight")',
    );
  for (const n of params)
    if (!g.params.get(n)?.prunable)
      throw new PruneError(`'${n}' is not a prunable parameter of '${g.name}'`, {
        context: { param: n },
        fix: 'list prunable tensors with `tapir info <model>`',
      });
  checkWeights(g);
  const batches = o.batches ?? [];
  if (!score.dataFree || bn !== 'none' || o.calib !== undefined) checkCalibration(batches, { need: o.calib });
  // match-dense, reconstruction and the per-layer errors compare with the unpruned model: take it before any mask or
  // weight update (a copy of the parameters; the nodes are shared).
  const dense = batches.length > 0 && !o.dense ? denseCopy(g) : null;
  try {
    return pruneWith(g, score, params, batches, bn, o.dense ?? dense ?? g, o);
  } finally {
    if (dense) disposeGraph(dense);
  }
}

function pruneWith(
  g: Graph,
  score: Score,
  params: string[],
  batches: readonly CalibBatch[],
  bn: BnRepair,
  dense: Graph,
  o: PruneOptions,
): PruneReport {
  const sg = o.head ? withTaskHead(g, o.head) : g;
  const schedule = o.schedule ?? { kind: 'oneshot' };
  const allocation = o.allocation ?? { kind: 'global' };
  const seed = o.seed ?? 0;
  const loss = o.loss ?? 'mse';
  const timings: Record<string, number> = {
    score: 0,
    allocate: 0,
    compensate: 0,
    reconstruct: 0,
    bn: 0,
    layerErrors: 0,
  };
  const time = <T>(phase: string, f: () => T): T => {
    const t0 = performance.now();
    try {
      return f();
    } finally {
      timings[phase] = (timings[phase] ?? 0) + performance.now() - t0;
    }
  };
  const densities = roundDensities(o.sparsity, schedule);
  if (usesErrorCurves(allocation) && !score.errorCurves)
    throw new AllocationError(
      `allocation '${allocationLabel(allocation)}' needs per-layer error curves, which ${score.name} does not measure`,
      { score: score.name },
      `use a score that measures them (${Object.values(SCORES)
        .filter((s) => s.errorCurves)
        .map((s) => s.name)
        .join(', ')}), or another allocation (global, erk, layerwise)`,
    );
  if (usesErrorCurves(allocation) && densities.length > 1)
    throw new PruneError(
      `allocation '${allocationLabel(allocation)}' is one-shot: its densities are chosen once, from the dense layers' error curves`,
      {
        context: { schedule: schedule.kind },
        fix: `use --schedule oneshot with --allocation ${allocationLabel(allocation)}, or another allocation (erk, global) for iterative rounds`,
      },
    );
  const rounds: PruneReport['rounds'] = [];
  let scoreInfo: Record<string, unknown> = {};
  let last: ReturnType<typeof allocate> | null = null;
  let compensated = false;
  let reconstruction: Record<string, unknown> | null = null;
  densities.forEach((density, r) => {
    o.onProgress?.('score', r, densities.length);
    // A scope frees whatever a score leaves behind; its result's tensors survive (OBS keeps its blocks itself).
    const res = time('score', () =>
      scope(() =>
        score.score({
          graph: sg,
          batches,
          params,
          loss,
          seed: seed + r,
          mode: o.mode,
          allowTrainMode: o.allowTrainMode,
          estimator: o.estimator,
          probes: o.probes,
          ggn: o.ggn,
          block: o.block,
          allocation,
          density,
          ...(o.reconstruct ? { reconstruct: o.reconstruct } : {}),
          onProgress: (d, t) => o.onProgress?.(`score ${r + 1}/${densities.length}`, d, t),
        }),
      ),
    );
    scoreInfo = res.info;
    try {
      const scores = demotePruned(g, res.scores);
      last?.masks.forEach((m) => m.dispose());
      last = time('allocate', () =>
        allocate(scores, {
          sparsity: 1 - density,
          allocation,
          minDensity: o.minDensity,
          ...(res.curves ? { curves: res.curves } : {}),
        }),
      );
      for (const s of scores.values()) s.dispose();
      if (res.reconstruct) {
        const r = time('reconstruct', () => res.reconstruct!({ allocation, kept: last!.kept, dense }));
        last!.masks.forEach((m) => m.dispose());
        last!.masks = r.masks;
        reconstruction = r.info;
      }
      if (res.compensate) {
        time('compensate', () => {
          const next = res.compensate!(last!.masks as ParamMap);
          noGrad(() => {
            for (const [n, t] of next) {
              g.params.get(n)!.tensor.copy_(t);
              t.dispose();
            }
          });
        });
        compensated = true;
      }
    } finally {
      res.dispose?.();
    }
    for (const [n, m] of last.masks) setMask(g, n, m);
    rounds.push({ density, achievedSparsity: last.achievedSparsity });
  });
  const final = last!;
  if (o.shuffle) shuffleMasks(g, seed);
  const tensors: TensorReport[] = params.map((n) => {
    const size = g.params.get(n)!.tensor.numel;
    const kept = final.kept.get(n)!;
    return { name: n, shape: [...g.params.get(n)!.tensor.shape], size, kept, density: kept / size };
  });
  const alreadyZero = params.reduce(
    (a, n) =>
      a + scope(() => noGrad(() => g.params.get(n)!.tensor.eq(0).logicalAnd(g.masks.get(n)!.ne(0)).sum().item())),
    0,
  );
  applyMasksInPlace(g);
  // BN repair after the final masks (and any weight update), on the same calibration images.
  const bnResult = time('bn', () => repairBatchNorm(g, dense, batches, bn));
  // Where the pruned network's output drifts from the dense one, layer by layer (after BN repair), on the same images.
  const errors =
    batches.length > 0 && dense !== g && g.inputs.length === 1
      ? time('layerErrors', () =>
          layerErrors(
            g,
            dense,
            batches,
            layersOf(g, params, 'layer errors', { skipUnsupported: true }),
            o.reconstruct?.activations,
          ),
        )
      : null;
  const warnings = final.collapsed.map(
    (n) =>
      `tensor '${n}' is fully pruned (layer collapse): every output of it is constant; raise --min-density or lower --sparsity`,
  );
  // Exact counts make the achieved sparsity the asked one up to one weight; anything else must be said.
  if (Math.abs(final.achievedSparsity - o.sparsity) > 1 / final.total)
    warnings.push(
      `achieved sparsity ${final.achievedSparsity.toFixed(6)} differs from the requested ${o.sparsity} (the allocation's per-tensor limits); check ` +
        `--min-density and --allocation`,
    );
  final.masks.forEach((m) => m.dispose());
  return {
    graph: g.name,
    score: score.name,
    scoreInfo,
    loss,
    seed,
    sparsity: o.sparsity,
    achievedSparsity: final.achievedSparsity,
    allocation,
    minDensity: o.minDensity ?? 0,
    schedule,
    rounds,
    prunableParameters: final.total,
    keptParameters: final.totalKept,
    alreadyZero,
    tensors,
    collapsed: final.collapsed,
    warnings,
    calibration: { images: countImages(batches), hash: batches.length > 0 ? calibrationHash(batches) : null },
    scoredTensors: params.length,
    shuffled: !!o.shuffle,
    bn: bnResult,
    compensated,
    reconstruction,
    layerErrors: errors,
    timings,
  };
}
