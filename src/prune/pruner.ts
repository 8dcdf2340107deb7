/**
 * The pruner: score → allocation → masks, once (`oneshot`) or over R rounds (`iterative`, density k^(r/R),
 * re-scoring with the current mask each round). It receives a `Score` value and never branches on its name.
 * Masks are set on the graph (W ⊙ c in the forward pass); weights change only with OBS compensation.
 * Sparsity counts mask entries over the prunable parameters; weights that are already 0 but kept are reported
 * (`alreadyZero`), not counted as pruned.
 */
import { keep, noGrad, scope, type Tensor } from '../engine/index.js';
import { prunableParams, setMask, type Graph, type Mode } from '../graph/index.js';
import { allocate, AllocationError, checkSparsity, type Allocation, type ParamMap } from './allocation.js';
import { calibrationHash, checkCalibration, checkWeights, countImages } from './calib.js';
import { reestimateBatchNorm } from './bn.js';
import { PruneError } from './errors.js';
import type { EstimatorName } from './estimators/index.js';
import type { CalibBatch, LossName } from './loss.js';
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
  estimator?: EstimatorName;
  probes?: number;
  ggn?: 'exact' | 'mc';
  block?: { curvature?: 'fisher' | 'ggn'; blockSize?: number; damping?: number; compensate?: boolean };
  mode?: Mode;
  allowTrainMode?: boolean;
  /** Recompute BN running statistics on the calibration images after masking. */
  bn?: 'none' | 'reestimate';
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
  bn: 'none' | 'reestimate';
  batchNormsReestimated: number;
  compensated: boolean;
  /** Milliseconds per phase, summed over rounds. */
  timings: Record<string, number>;
}

function resolveScore(s: ScoreName | Score): Score {
  if (typeof s !== 'string') return s;
  if (!Object.prototype.hasOwnProperty.call(SCORES, s))
    throw new PruneError(`unknown score '${s}'`, { context: { score: s }, fix: `use one of: ${Object.keys(SCORES).join(', ')}` });
  return SCORES[s];
}

/** Scores of weights that are already pruned, pushed below every live score, so they never come back. */
function demotePruned(g: Graph, scores: Map<string, Tensor>): Map<string, Tensor> {
  if (g.masks.size === 0) return scores;
  return noGrad(() => {
    let min = Infinity;
    for (const s of scores.values()) min = Math.min(min, scope(() => s.min().item()));
    const low = min - Math.abs(min) - 1;
    return new Map([...scores].map(([n, s]) => {
      const m = g.masks.get(n);
      if (!m) return [n, s] as const;
      const out = scope(() => s.mul(m).add(m.neg().add(1).mul(low)));
      s.dispose();
      return [n, out] as const;
    }));
  });
}

/**
 * setMask, with its temporaries freed: graph/params.ts setMask leaks the intermediate of `mask.to(dtype)` (one
 * tensor per call); a scope frees it and keep() rescues the mask the graph now owns.
 */
function installMask(g: Graph, name: string, m: Tensor): void {
  scope(() => {
    setMask(g, name, m);
    keep(g.masks.get(name)!);
  });
}

export function prune(g: Graph, o: PruneOptions): PruneReport {
  const score = resolveScore(o.score);
  checkSparsity(o.sparsity);
  const params = prunableParams(g).map((p) => p.name);
  if (params.length === 0) throw new AllocationError(`graph '${g.name}' has no prunable parameters`, { graph: g.name }, 'mark conv/linear weights prunable (role "weight")');
  checkWeights(g);
  const batches = o.batches ?? [];
  if (!score.dataFree || o.bn === 'reestimate' || o.calib !== undefined) checkCalibration(batches, { need: o.calib });
  const schedule = o.schedule ?? { kind: 'oneshot' };
  const allocation = o.allocation ?? { kind: 'global' };
  const seed = o.seed ?? 0;
  const loss = o.loss ?? 'mse';
  const timings: Record<string, number> = { score: 0, allocate: 0, compensate: 0, bn: 0 };
  const time = <T>(phase: string, f: () => T): T => {
    const t0 = performance.now();
    try { return f(); } finally { timings[phase] = (timings[phase] ?? 0) + performance.now() - t0; }
  };
  const densities = roundDensities(o.sparsity, schedule);
  const rounds: PruneReport['rounds'] = [];
  let scoreInfo: Record<string, unknown> = {};
  let last: ReturnType<typeof allocate> | null = null;
  let compensated = false;
  densities.forEach((density, r) => {
    o.onProgress?.('score', r, densities.length);
    // A scope frees whatever a score leaves behind; its result's tensors survive (OBS keeps its blocks itself).
    const res = time('score', () => scope(() => score.score({
      graph: g, batches, params, loss, seed: seed + r, mode: o.mode, allowTrainMode: o.allowTrainMode, estimator: o.estimator, probes: o.probes, ggn: o.ggn, block: o.block,
      onProgress: (d, t) => o.onProgress?.(`score ${r + 1}/${densities.length}`, d, t),
    })));
    scoreInfo = res.info;
    try {
      const scores = demotePruned(g, res.scores);
      last?.masks.forEach((m) => m.dispose());
      last = time('allocate', () => allocate(scores, { sparsity: 1 - density, allocation, minDensity: o.minDensity }));
      for (const s of scores.values()) s.dispose();
      if (res.compensate) {
        time('compensate', () => {
          const next = res.compensate!(last!.masks as ParamMap);
          noGrad(() => { for (const [n, t] of next) { g.params.get(n)!.tensor.copy_(t); t.dispose(); } });
        });
        compensated = true;
      }
    } finally {
      res.dispose?.();
    }
    for (const [n, m] of last.masks) installMask(g, n, m);
    rounds.push({ density, achievedSparsity: last.achievedSparsity });
  });
  const final = last!;
  let bnCount = 0;
  if (o.bn === 'reestimate') bnCount = time('bn', () => reestimateBatchNorm(g, batches));
  const tensors: TensorReport[] = params.map((n) => {
    const size = g.params.get(n)!.tensor.numel;
    const kept = final.kept.get(n)!;
    return { name: n, shape: [...g.params.get(n)!.tensor.shape], size, kept, density: kept / size };
  });
  const alreadyZero = params.reduce((a, n) => a + scope(() => noGrad(() => g.params.get(n)!.tensor.eq(0).logicalAnd(g.masks.get(n)!.ne(0)).sum().item())), 0);
  const warnings = final.collapsed.map((n) => `tensor '${n}' is fully pruned (layer collapse): every output of it is constant; raise --min-density or lower --sparsity`);
  final.masks.forEach((m) => m.dispose());
  return {
    graph: g.name, score: score.name, scoreInfo, loss, seed, sparsity: o.sparsity, achievedSparsity: final.achievedSparsity, allocation,
    minDensity: o.minDensity ?? 0, schedule, rounds, prunableParameters: final.total, keptParameters: final.totalKept, alreadyZero, tensors,
    collapsed: final.collapsed, warnings, calibration: { images: countImages(batches), hash: batches.length > 0 ? calibrationHash(batches) : null },
    bn: o.bn ?? 'none', batchNormsReestimated: bnCount, compensated, timings,
  };
}
