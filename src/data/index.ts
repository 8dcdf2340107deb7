/** The data layer: datasets, tasks (class subsets, train/calib/test splits), preprocessing, the on-disk cache. */
export { AssetMissingError, DataError } from './errors.js';
export type { Dataset, Example, PoolName, SkippedFile } from './dataset.js';
export { classCounts, drawKey } from './dataset.js';
export { openDataset, datasetNames } from './registry.js';
export { ASSETS, cacheRoot, assetsRoot, dataRoot, dataPath, dataRootError } from './paths.js';
export { ensureDigits } from './assets.js';
export { parseTaskId, resolveClasses, splitTaskList } from './task-id.js';
export {
  openTask,
  SPLIT_NAMES,
  DEFAULT_FRACTIONS,
  type Task,
  type TaskOptions,
  type Split,
  type SplitName,
} from './task.js';
export { decodeImage, type Size } from './decode.js';
export { loadSample, loadSplit, loadSplits, type ImageSet, type LoadOptions, type LoadStats } from './load.js';
export { cacheDir, PREP_VERSION } from './cache.js';
export {
  batches,
  arrayBatches,
  imagesToArray,
  imagesToTensor,
  checkPreprocess,
  valueTables,
  type ArrayBatch,
  type Batch,
  type BatchOptions,
  type Preprocess,
} from './preprocess.js';
export { writeMontage, type MontageOptions } from './montage.js';
export { describeDatasets, type DatasetInfo } from './describe.js';
