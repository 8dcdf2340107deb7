/**
 * One interface for every curvature estimator: a diagonal over the prunable parameters of a
 * graph, for a loss and a calibration set, as a ParamMap (parameter name → tensor of that parameter's shape).
 * Every estimate is of the curvature of the mean loss L = (1/N) Σₙ ℓₙ over the calibration images.
 */
import type { Tensor } from '../../engine/index.js';
import type { Graph, Mode } from '../../graph/index.js';
import { prunableParams } from '../../graph/index.js';
import type { CalibBatch, LossName } from '../loss.js';

export type EstimatorName = 'fisher' | 'ggn' | 'hutchinson';

export interface EstimatorOptions {
  loss: LossName;
  /** Seeds every random draw (Rademacher probes, Monte-Carlo labels). Default 0. */
  seed?: number;
  /** Default 'eval-bn'. 'train' needs allowTrainMode (and is refused for per-sample estimators when BN is present). */
  mode?: Mode;
  allowTrainMode?: boolean;
  /** ggn: exact over the C outputs (C backward passes) or a 1-sample Monte-Carlo estimate. Default 'exact'. */
  ggn?: 'exact' | 'mc';
  /** hutchinson: number of Rademacher probes. Default 8. */
  probes?: number;
  /** Parameters to estimate (default: the graph's prunable ones). */
  params?: readonly string[];
  /** Called after each unit of work (batch × pass). */
  onProgress?: (done: number, total: number) => void;
  /**
   * hutchinson: called once per probe k with v ⊙ Hv for each parameter (in `params` order; valid only during the
   * call), so traces and block traces come from the same probes as the diagonal (E[Σ v ⊙ Hv] = tr H).
   */
  onSample?: (probe: number, parts: readonly Tensor[]) => void;
}

export interface CurvatureResult {
  /** Parameter name → curvature diagonal of that parameter's shape (the caller owns and disposes them). */
  diag: Map<string, Tensor>;
  /** Stochastic estimators: per-entry standard error of the mean over probes. */
  stderr?: Map<string, Tensor>;
  /** Settings and counts for the report (JSON-serialisable). */
  info: Record<string, unknown>;
}

/**
 * A curvature estimator: one of ESTIMATORS, or a caller's own (e.g. a diagonal it already has) passed to prune() as
 * `estimator`; its `name` is what reports show.
 */
export interface CurvatureEstimator {
  readonly name: string;
  /** Whether `diag` relies on per-sample gradients (then samples must not interact). */
  readonly perSample: boolean;
  diag(g: Graph, batches: readonly CalibBatch[], o: EstimatorOptions): CurvatureResult;
}

export function targetParams(g: Graph, o: { params?: readonly string[] }): string[] {
  return o.params ? [...o.params] : prunableParams(g).map((p) => p.name);
}
