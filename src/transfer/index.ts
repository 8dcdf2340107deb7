/** Transfer: ridge heads, zero-shot evaluation, masked fine-tuning (docs/TRANSFER.md). See docs/TRANSFER.md. */
export {
  featureStats,
  standardise,
  fitRidgeHead,
  headLogits,
  headAccuracy,
  disposeHead,
  selectAlpha,
  ALPHA_GRID,
  type FeatureStats,
  type RidgeHead,
  type RidgeOptions,
} from './ridge.js';
export {
  modelFingerprint,
  extractFeatures,
  FeatureCache,
  type ExtractOptions,
  type SplitFeatures,
  type FeatureRequest,
} from './features.js';
export {
  zeroShot,
  pixelBaseline,
  HEAD_MODES,
  type HeadMode,
  type ZeroShotOptions,
  type ZeroShotRow,
  type PixelBaselineOptions,
} from './zero-shot.js';
export {
  ridgeToLinear,
  zeroHead,
  fitLinearHead,
  type HeadAlpha,
  type LinearHeadOptions,
  type LinearHeadFit,
} from './head.js';
export { preprocessOf } from '../graph/index.js';
export {
  withTaskHead,
  taskHeadOf,
  disposeTaskHead,
  paramsUsedBy,
  TASK_HEAD_WEIGHT,
  TASK_HEAD_BIAS,
  type LinearHead,
} from '../graph/index.js';
export {
  MaskedOptimizer,
  lrAt,
  assertMaskedZero,
  OPTIMIZER_NAMES,
  type OptimizerName,
  type OptimizerOptions,
  type Slot,
  type LrSchedule,
} from './optim.js';
export { augmentBatch, seededRandom, type AugmentOptions } from './augment.js';
export {
  finetune,
  evaluateSplit,
  assertGraphMasked,
  type FinetuneOptions,
  type FinetuneResult,
  type FinetuneLoss,
  type BnPolicy,
  type HeadInit,
  type EpochRecord,
} from './finetune.js';
export {
  checkpointPath,
  readCheckpoint,
  writeCheckpoint,
  removeCheckpoint,
  writeJsonAtomic,
  writeDirAtomic,
  readJson,
  CHECKPOINT_FORMAT,
  type Progress,
} from './checkpoint.js';
export {
  openModel,
  applyMaskDir,
  saveFinetuned,
  loadFinetuned,
  savePruned,
  loadPruned,
  FINETUNE_FORMAT,
  PRUNE_FORMAT,
  MASK_FILE,
  type OpenedModel,
  type FinetuneInfo,
  type PrunedInfo,
} from './model.js';
export {
  pruneOnTask,
  scoringHead,
  backboneParams,
  type PruneOnTaskOptions,
  type PruneOnTaskResult,
  type ScoringHeadInfo,
} from './prune-on-task.js';
