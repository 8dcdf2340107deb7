/** Errors of the graph layer (IR, importers, exporters, zoo). */
import { TapirError } from '../engine/index.js';

/** An op the IR's op table (or an importer) does not know. Names the op, the node and what is supported. */
export class UnsupportedOpError extends TapirError {
  constructor(op: string, node: string, supported: readonly string[], where = 'graph') {
    super('E_UNSUPPORTED_OP', `${where}: unsupported op '${op}' in node '${node}'. Supported ops: ${supported.join(', ')}`, {
      context: { op, node, supported: [...supported] },
      fix: 'export the model with supported ops only, or add a row for this op to the op table (src/graph/ops.ts)',
    });
  }
}

/** A model file (TF.js, ONNX, safetensors, mask file) that cannot be read as what it claims to be. */
export class ModelFormatError extends TapirError {
  constructor(message: string, opts: { context?: Record<string, unknown>; fix?: string; cause?: unknown } = {}) {
    super('E_MODEL_FORMAT', message, opts);
  }
}

/** A graph whose structure is inconsistent (missing value, duplicate name, unknown parameter). */
export class GraphError extends TapirError {
  constructor(message: string, opts: { context?: Record<string, unknown>; fix?: string } = {}) {
    super('E_GRAPH', message, opts);
  }
}
