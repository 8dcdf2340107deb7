/** The curvature estimators, by name; the CLI's --estimator choices come from these keys. */
import { fisher } from './fisher.js';
import { ggn } from './ggn.js';
import { hutchinson } from './hutchinson.js';
import type { CurvatureEstimator, EstimatorName } from './types.js';

export const ESTIMATORS: Readonly<Record<EstimatorName, CurvatureEstimator>> = { fisher, ggn, hutchinson };
export const ESTIMATOR_NAMES = Object.keys(ESTIMATORS) as EstimatorName[];
export * from './types.js';
export { fisher, ggn, hutchinson };
