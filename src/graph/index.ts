/** The graph layer's public surface: the one model IR, its interpreter, importers, exporters and the zoo. */
export * from './ir.js';
export * from './errors.js';
export { OPS, OP_NAMES, opDef, convGeometry, type OpDef, type OpContext, type OpName, type Attrs } from './ops.js';
export * from './interpreter.js';
export {
  MEMORY_FORMATS,
  memoryFormat,
  memoryFormatError,
  useChannelsLast,
  type MemoryFormat,
} from './memory-format.js';
export * from './params.js';
export { GraphBuilder } from './builder.js';
export * from './tfjs/index.js';
export * from './zoo/index.js';
export * from './mask-file.js';
export * from './onnx/index.js';
export * from './safetensors.js';
export * from './task-head.js';
export * from './preprocess.js';
export { subgraph, stateFingerprint } from './subgraph.js';
export {
  checkRuntime,
  openRunner,
  OrtSessions,
  ortSessions,
  RUNTIMES,
  type ArrayValue,
  type InferenceRunner,
  type Runtime,
  type RunnerOptions,
} from './inference.js';
