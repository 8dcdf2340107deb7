/** Studies (DESIGN §1 protocol as a grid): configs, the resumable runner, the SQLite store, the report. See docs/STUDY.md. */
export { parseStudy, loadStudy, validateStudy, scoreLabel, StudyConfigError, SCORE_NAMES as STUDY_SCORE_NAMES, type StudyConfig, type ScoreSpec, type FinetuneRecipe, type ControlSpec, type DiagnosticsSpec } from './config.js';
export { expandGrid, protocolHash, studyTasks, effectiveModel, capOf, type CellSpec, type Control } from './grid.js';
export { StudyStore, packBits, maskIoU, STORE_VERSION, type CellRecord, type ResultRow, type DensityRow, type DenseRow, type LayerRow } from './store.js';
export { runStudy, restoreFrom, shuffleMasks, maskSummary, calibrationSet, loadStudyModel, type StudySteps, type PruneStepOptions, type CalibSet, type RunOptions, type RunSummary, type StudyProgress } from './runner.js';
export { pruneStep, defaultSteps } from './steps.js';
export { layerTable, efficiency, type Efficiency } from './efficiency.js';
export { readReport, summaryRows, type ReportData } from './report-data.js';
export { reportTables, markdownReport, markdownTable, htmlReport, escapeHtml, writeAtomic, type Table } from './report.js';
export { renderSvg, reportPlots, type Plot } from './plots.js';
export { DEMO_STUDY, demoConfig } from './demo.js';
