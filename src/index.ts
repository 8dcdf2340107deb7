/** tapir's public API. Anything not re-exported here is internal. */
export * from './engine/index.js';
export * as data from './data/index.js';
export * as graph from './graph/index.js';
export * as prune from './prune/index.js';
export * as transfer from './transfer/index.js';
export * as analysis from './analysis/index.js';
export * as study from './study/index.js';
