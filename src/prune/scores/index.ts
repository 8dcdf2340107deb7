/** The scores, by name: the CLI's --score choices and help come from these keys. */
import { magnitude } from './magnitude.js';
import { blockHessian } from './obs.js';
import { diagHessian } from './obd.js';
import { grasp } from './grasp.js';
import { random } from './random.js';
import { snip } from './snip.js';
import { synflow } from './synflow.js';
import { sparsegpt } from './sparsegpt.js';
import { wanda } from './wanda.js';
import type { Score, ScoreName } from './types.js';

export const SCORES: Readonly<Record<ScoreName, Score>> = {
  magnitude,
  'diag-hessian': diagHessian,
  'block-hessian': blockHessian,
  snip,
  grasp,
  synflow,
  random,
  wanda,
  sparsegpt,
};
export const SCORE_NAMES = Object.keys(SCORES) as ScoreName[];
export * from './types.js';
export { compensateBlocks } from './obs.js';
export { SPARSEGPT_DEFAULTS } from './sparsegpt.js';
