/** The pruning layer: losses, curvature estimators, scores, allocation, schedules, the pruner, BN re-estimation. */
export {
  allocate,
  checkSparsity,
  parseAllocation,
  allocationLabel,
  AllocationError,
  ALLOCATIONS,
  errorCounts,
  type Allocation,
  type ErrorCurve,
  type AllocateOptions,
  type AllocationResult,
  type ParamMap,
} from './allocation.js';
export { roundDensities, SCHEDULES, type Schedule } from './schedule.js';
export { LOSSES, LOSS_NAMES, lossDef, lossFn, type LossName, type LossDef, type CalibBatch } from './loss.js';
export { PruneError, NondeterministicGraphError } from './errors.js';
export { calibrationHash, checkCalibration, checkWeights, checkMode } from './calib.js';
export { PER_SAMPLE_RULES, findSites, factorPass } from './per-sample.js';
export {
  ESTIMATORS,
  ESTIMATOR_NAMES,
  type CurvatureEstimator,
  type CurvatureResult,
  type EstimatorName,
  type EstimatorOptions,
} from './estimators/index.js';
export { blockStats, inverseBlocks, type BlockOptions, type BlockStats } from './estimators/block.js';
export {
  SCORES,
  SCORE_NAMES,
  compensateBlocks,
  type Score,
  type ScoreContext,
  type ScoreName,
  type ScoreResult,
} from './scores/index.js';
export { prune, resolveScore, type PruneOptions, type PruneReport, type TensorReport } from './pruner.js';
export { shuffleMasks, maskSummary, type TensorDensity } from './masks.js';
export {
  calibrationSet,
  labelByModel,
  disposeCalibSet,
  parseCalibData,
  calibDataLabel,
  type CalibData,
  type CalibSet,
  type CalibSetOptions,
} from './calib-set.js';
export {
  reestimateBatchNorm,
  repairBatchNorm,
  denseCopy,
  BN_REPAIRS,
  type BnRepair,
  type BnRepairResult,
} from './bn.js';
export {
  ACTIVATION_STORES,
  RECONSTRUCT_TARGETS,
  reconstructSweep,
  layerErrors,
  forEachLayerInput,
  checkWalkMemory,
  Frontier,
  squaredError,
  type ActivationStore,
  type ReconstructSettings,
  type ReconstructTarget,
  type LayerError,
  type LayerRecord,
} from './reconstruct/sweep.js';
export { errorCurves, CURVE_DENSITIES, type CurveOptions, type LayerCurve } from './reconstruct/curves.js';
export { solveLayer, type KeepRule, type SolveOptions, type SolveResult } from './reconstruct/solver.js';
export { layersOf, LAYER_RULES, type Layer, type LayerRule } from './reconstruct/layers.js';
