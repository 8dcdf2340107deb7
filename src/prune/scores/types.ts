/**
 * One `Score` interface: per-parameter tensors, higher = keep. Scores are pure: everything
 * they read comes in the context, nothing is kept between calls. The pruner never branches on a score's name.
 */
import type { Tensor } from '../../engine/index.js';
import type { Graph, Mode } from '../../graph/index.js';
import type { Allocation, ErrorCurve, ParamMap } from '../allocation.js';
import type { ReconstructSettings } from '../reconstruct/sweep.js';
import type { CurvatureEstimator, EstimatorName } from '../estimators/index.js';
import type { CalibBatch, LossName } from '../loss.js';

export type ScoreName =
  'magnitude' | 'diag-hessian' | 'block-hessian' | 'snip' | 'grasp' | 'synflow' | 'random' | 'wanda' | 'sparsegpt';

export interface ScoreContext {
  graph: Graph;
  /** Calibration batches (unused by data-free scores). */
  batches: readonly CalibBatch[];
  /** Parameters to score (the prunable ones). */
  params: readonly string[];
  loss: LossName;
  seed: number;
  /** Default 'eval-bn'. */
  mode?: Mode;
  allowTrainMode?: boolean;
  /** diag-hessian: which estimator (default 'hutchinson'), its probes and ggn variant. */
  estimator?: EstimatorName | CurvatureEstimator;
  probes?: number;
  ggn?: 'exact' | 'mc';
  /** block-hessian: factors, block size, relative damping, whether to return the OBS weight update. */
  block?: { curvature?: 'fisher' | 'ggn'; blockSize?: number; damping?: number; compensate?: boolean };
  /** Reconstruction pruners: the target, columns per block and relative damping. */
  reconstruct?: ReconstructSettings;
  /** The allocation the scores will feed (a reconstruction pruner ranks globally only when it is `global`). */
  allocation?: Allocation;
  /** The round's target density (kept fraction of the scored weights). */
  density?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface ScoreResult {
  /** Parameter name → score of that parameter's shape (the caller owns them). */
  scores: Map<string, Tensor>;
  /** Settings and diagnostics for the report (JSON-serialisable). */
  info: Record<string, unknown>;
  /**
   * OBS only: given the final masks, new values for the surviving weights (the joint OBS update of each block).
   * Owns curvature blocks until `dispose`.
   */
  compensate?: (masks: ParamMap) => Map<string, Tensor>;
  /**
   * Reconstruction pruners: given the allocation's kept count per tensor, choose the masks layer by layer and update
   * the weights, writing both into the graph as they go (each layer sees the already-pruned layers before it).
   * `dense` is the unpruned model (same nodes). Returns the masks (the caller owns them) and report info.
   */
  reconstruct?: (a: { allocation: Allocation; kept: ReadonlyMap<string, number>; dense: Graph }) => {
    masks: Map<string, Tensor>;
    info: Record<string, unknown>;
  };
  /** The `error` allocation's per-tensor error curves (scores that measure them: sparsegpt). */
  curves?: Map<string, ErrorCurve>;
  dispose?: () => void;
}

export interface Score {
  readonly name: ScoreName;
  /**
   * What it reads: nothing, the gradient, a curvature diagonal or curvature blocks (all through a loss, so they need
   * labels and a head), or only the layers' inputs on calibration images (`inputs`: no labels, no head).
   */
  readonly needs: 'none' | 'grad' | 'diag' | 'block' | 'inputs';
  readonly dataFree: boolean;
  /** Measures the per-layer error curves the `error` allocation needs (ScoreResult.curves). */
  readonly errorCurves?: boolean;
  readonly description: string;
  score(ctx: ScoreContext): ScoreResult;
}
