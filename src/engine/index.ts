/** The engine: typed tensors over libtorch, autograd, scopes. */
export * from './errors.js';
export * from './tensor.js';
export * as nn from './nn.js';
export * as linalg from './linalg.js';
export * from './autograd.js';
export * from './runtime.js';
export { othersBusyCores, WAIT_POLICIES, WAIT_SETTINGS, waitPolicy, waitSettings, type WaitPolicy } from './wait.js';
export { NATIVE_OP_NAMES } from './native.js';
export { writeFileAtomic, writeFileAtomicSync } from './atomic.js';
