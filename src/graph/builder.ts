/**
 * A small helper that importers and the zoo use to assemble a Graph: unique node names, parameters made with
 * the default prunable rule, and a final structural check.
 */
import { keep, type Tensor } from '../engine/index.js';
import type { AttrValue, Graph, Node, ParamRole, Preprocessing, ValueInfo } from './ir.js';
import { GraphError } from './errors.js';
import { makeParam, validateGraph } from './params.js';

export class GraphBuilder {
  readonly nodes: Node[] = [];
  readonly params: Graph['params'] = new Map();
  readonly constants = new Map<string, Tensor>();
  private readonly names = new Set<string>();

  private unique(base: string): string {
    let n = base;
    for (let i = 1; this.names.has(n) || this.params.has(n) || this.constants.has(n); i++) n = `${base}_${i}`;
    this.names.add(n);
    return n;
  }

  /** Adds a node; its single output is named like the node. Returns the output name. */
  op(op: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, name: string = op): string {
    const n = this.unique(name);
    this.nodes.push({ name: n, op, inputs, outputs: [n], attrs });
    return n;
  }
  /** Adds a node with several outputs (named `<node>:<i>`). */
  opMulti(
    op: string,
    inputs: readonly string[],
    count: number,
    attrs: Record<string, AttrValue> = {},
    name: string = op,
  ): string[] {
    const n = this.unique(name);
    const outs = Array.from({ length: count }, (_, i) => `${n}:${i}`);
    this.nodes.push({ name: n, op, inputs, outputs: outs, attrs });
    return outs;
  }
  param(name: string, t: Tensor, role: ParamRole, o: { trainable?: boolean; prunable?: boolean } = {}): string {
    if (this.params.has(name)) throw new GraphError(`duplicate parameter name '${name}'`, { context: { param: name } });
    this.params.set(name, makeParam(name, t, role, o));
    return name;
  }
  constant(name: string, t: Tensor): string {
    const n = this.unique(name);
    this.constants.set(n, keep(t));
    return n;
  }

  build(o: {
    name: string;
    inputs: ValueInfo[];
    outputs: string[];
    featureTap: string;
    preprocessing: Preprocessing;
    meta?: Record<string, unknown>;
  }): Graph {
    return validateGraph({
      name: o.name,
      inputs: o.inputs,
      outputs: o.outputs,
      nodes: this.nodes,
      params: this.params,
      constants: this.constants,
      masks: new Map(),
      featureTap: o.featureTap,
      preprocessing: o.preprocessing,
      meta: o.meta ?? {},
    });
  }
}
