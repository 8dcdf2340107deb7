/**
 * One `Score` interface (STYLE §2, §7.6): per-parameter tensors, higher = keep. Scores are pure: everything
 * they read comes in the context, nothing is kept between calls. The pruner never branches on a score's name.
 */
import type { Tensor } from '../../engine/index.js';
import type { Graph, Mode } from '../../graph/index.js';
import type { ParamMap } from '../allocation.js';
import type { EstimatorName } from '../estimators/index.js';
import type { CalibBatch, LossName } from '../loss.js';

export type ScoreName = 'magnitude' | 'diag-hessian' | 'block-hessian' | 'snip' | 'grasp' | 'synflow' | 'random';

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
  estimator?: EstimatorName;
  probes?: number;
  ggn?: 'exact' | 'mc';
  /** block-hessian: factors, block size, relative damping, whether to return the OBS weight update. */
  block?: { curvature?: 'fisher' | 'ggn'; blockSize?: number; damping?: number; compensate?: boolean };
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
  dispose?: () => void;
}

export interface Score {
  readonly name: ScoreName;
  /** What it reads: nothing, the gradient, a curvature diagonal, or curvature blocks. */
  readonly needs: 'none' | 'grad' | 'diag' | 'block';
  readonly dataFree: boolean;
  readonly description: string;
  score(ctx: ScoreContext): ScoreResult;
}
