/** Errors of the graph layer (IR, importers, exporters, zoo). */
import { TapirError } from '../engine/index.js';

/** One unsupported op of a model and every node that uses it. */
export interface UnsupportedOp {
  op: string;
  nodes: string[];
}

/**
 * An op the IR's op table (or an importer) does not know. Names the op, the node and what is supported; an importer
 * that scans the whole model first passes `all` (every unsupported op with its nodes), so one run lists them all:
 * `context.unsupported`.
 */
export class UnsupportedOpError extends TapirError {
  readonly unsupported: readonly UnsupportedOp[];
  constructor(op: string, node: string, supported: readonly string[], where = 'graph', all?: readonly UnsupportedOp[]) {
    const list = all && all.length > 0 ? all : [{ op, nodes: [node] }];
    const nodesOf = (u: UnsupportedOp) =>
      `'${u.nodes[0]}'${u.nodes.length > 1 ? ` (+${u.nodes.length - 1} more)` : ''}`;
    const what =
      list.length === 1 && list[0]!.nodes.length === 1
        ? `unsupported op '${op}' in node '${node}'`
        : `${list.length} unsupported op${list.length > 1 ? 's' : ''}: ${list.map((u) => `'${u.op}' in node ${nodesOf(u)}`).join(', ')}`;
    super('E_UNSUPPORTED_OP', `${where}: ${what}. Supported ops: ${supported.join(', ')}`, {
      context: {
        op,
        node,
        supported: [...supported],
        unsupported: list.map((u) => ({ op: u.op, nodes: [...u.nodes] })),
      },
      fix: 'export the model with supported ops only, or add a row for this op to the op table (src/graph/ops.ts)',
    });
    this.unsupported = list;
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
