/** Studies (the paper's protocol as a grid): configs, the resumable runner, the SQLite store, the report. See docs/STUDY.md. */
export {
  parseStudy,
  loadStudy,
  validateStudy,
  scoreLabel,
  StudyConfigError,
  SCORE_NAMES as STUDY_SCORE_NAMES,
  type StudyConfig,
  type ScoreSpec,
  type FinetuneRecipe,
  type ControlSpec,
  type DiagnosticsSpec,
  ALLOCATION_CHOICES,
  BN_REPAIR_CHOICES,
  type AllocationName,
  type BnRepair,
  type CalibData,
} from './config.js';
export {
  expandGrid,
  protocolHash,
  studyTasks,
  effectiveModel,
  capOf,
  taskOptionsFor,
  axisValues,
  cellKeyAxes,
  ABLATION_AXES,
  type AblationAxis,
  type CellSpec,
  type Control,
} from './grid.js';
export {
  StudyStore,
  maskIoU,
  STORE_VERSION,
  APPLICATION_ID,
  type CellRecord,
  type CellErrorRow,
  type ResultRow,
  type DensityRow,
  type LayerErrorRow,
  type DenseRow,
  type LayerRow,
} from './store.js';
export {
  runStudy,
  runCell,
  runPixelBaseline,
  runDenseReference,
  runReadyDiagnostics,
  writeCellOutput,
  cellWhat,
  loadStudyModel,
  defaultSteps,
  cellCalibData,
  scoreOptions,
  type StudySteps,
  type RunOptions,
  type RunSummary,
  type StudyProgress,
  type CellOutput,
  type CellContext,
} from './runner.js';
export { layerTable, efficiency, type Efficiency } from './efficiency.js';
export {
  readReport,
  summaryRows,
  phaseProfile,
  ablations,
  configAxes,
  AXIS_FIELDS,
  type ReportData,
  type Ablation,
  type AblationPoint,
} from './report-data.js';
export {
  reportTables,
  markdownReport,
  markdownTable,
  htmlReport,
  escapeHtml,
  writeAtomic,
  ablationTable,
  type Table,
} from './report.js';
export { renderSvg, reportPlots, ablationPlot, type Plot } from './plots.js';
export { DEMO_STUDY, demoConfig } from './demo.js';
export { resolveStudy } from './resolve.js';
export { runStudyOnQueue, checkPortable, type QueueRunOptions, type QueueRunSummary } from './queue/coordinator.js';
export { runWorker, type WorkerOptions, type WorkerSummary } from './queue/worker.js';
export { DEFAULT_QUEUE, buildStamp, dataFingerprint, jobId, manifestKey, type Manifest } from './queue/manifest.js';
export { connectRedis } from './queue/redis.js';
