/** Second-order diagnostics: one LinearOperator, estimators as free functions over it. */
export * from './errors.js';
export {
  denseOperator,
  materialize,
  makeLayout,
  flatten,
  unflatten,
  type LinearOperator,
  type FlatLayout,
} from './operator.js';
export { LOSS_NAMES, batchLoss, type LossName, type LabelledBatch } from './loss.js';
export { hessianOperator, nondeterministicNode, type HessianOperator, type HessianOptions } from './hessian.js';
export { hutchinsonTrace, meanStderr, type ScalarEstimate, type HutchinsonOptions } from './hutchinson.js';
export {
  lanczos,
  topEigen,
  tridiagonalEigen,
  type EigenResult,
  type EigenOptions,
  type LanczosRun,
} from './lanczos.js';
export { spectralDensity, densityOn, type SpectralDensity, type SlqOptions } from './slq.js';
export { cosine, spearman, ranks, pearson, subspaceOverlap, maskIoU } from './alignment.js';
export { lossChange, type LossChange, type BasePoint } from './loss-change.js';
export {
  runDiagnostics,
  obdMask,
  type DiagnosticsOptions,
  type DiagnosticsReport,
  type TaskInput,
  type TaskSpectrum,
  type PairAlignment,
  type LossChangeRow,
} from './diagnostics.js';
