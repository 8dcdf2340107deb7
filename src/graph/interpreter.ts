/**
 * Runs a Graph over the engine: nodes in their (topological) order, only those the requested values depend
 * on, stopping at the last one needed. Each intermediate is freed right after its last consumer ran (measured here:
 * holding every activation until a scope ends keeps them alive through backward, 2-3x memory); autograd
 * keeps what backward needs on its own. Masked parameters enter the forward pass as W ⊙ c, so gradients
 * reach W only where c = 1.
 */
import { noGrad, scope, ShapeError, TapirError, Tensor } from '../engine/index.js';
import { GraphError, UnsupportedOpError } from './errors.js';
import type { Graph, Mode, Node } from './ir.js';
import { useChannelsLast, type MemoryFormat } from './memory-format.js';
import { OP_NAMES, opDef } from './ops.js';

export interface ForwardOptions {
  mode: Mode;
  /** Value names to return in `taps` (e.g. the feature tap). */
  taps?: readonly string[];
  /** Value names to return in `outputs` (default: the graph's outputs; [] to compute taps only). */
  outputs?: readonly string[];
  /** How 4-D inputs are laid out in memory (default: TAPIR_MEMORY_FORMAT, else auto; memory-format.ts). */
  memoryFormat?: MemoryFormat;
}
export interface ForwardResult {
  outputs: Tensor[];
  taps: Map<string, Tensor>;
}
/** One tensor for a single-input graph, or tensors by input name (or in `g.inputs` order). */
export type GraphInput = Tensor | readonly Tensor[] | ReadonlyMap<string, Tensor>;

interface Plan {
  nodes: Node[];
  /** Value name → index in `nodes` of its last consumer. */
  lastUse: Map<string, number>;
}

/** Indices (graph order) of the nodes the values `wanted` depend on, stopping at values in `known`. */
export function neededNodes(g: Graph, wanted: Iterable<string>, known: ReadonlySet<string> = new Set()): number[] {
  const producer = new Map<string, number>();
  g.nodes.forEach((n, i) => n.outputs.forEach((o) => producer.set(o, i)));
  const need = new Set<number>();
  const stack = [...wanted];
  const seen = new Set<string>();
  while (stack.length > 0) {
    const v = stack.pop()!;
    if (seen.has(v) || known.has(v)) continue;
    seen.add(v);
    const i = producer.get(v);
    if (i === undefined || need.has(i)) continue;
    need.add(i);
    for (const inp of g.nodes[i]!.inputs) if (inp !== '') stack.push(inp);
  }
  return [...need].sort((a, b) => a - b);
}

/** The nodes needed for `wanted` (given the values in `known`), in graph order, and each value's last use among them. */
function plan(g: Graph, wanted: ReadonlySet<string>, known: ReadonlySet<string> = new Set()): Plan {
  const nodes = neededNodes(g, wanted, known).map((i) => g.nodes[i]!);
  const lastUse = new Map<string, number>();
  nodes.forEach((n, i) => n.inputs.forEach((v) => lastUse.set(v, i)));
  return { nodes, lastUse };
}

function bindInputs(g: Graph, x: GraphInput): Map<string, Tensor> {
  const bound = new Map<string, Tensor>();
  if (x instanceof Tensor) {
    if (g.inputs.length !== 1)
      throw new GraphError(
        `forward: graph '${g.name}' has ${g.inputs.length} inputs; pass a Map from input name to tensor`,
      );
    bound.set(g.inputs[0]!.name, x);
  } else if (x instanceof Map) {
    for (const [k, v] of x) bound.set(k, v);
  } else {
    (x as readonly Tensor[]).forEach((t, i) => bound.set(g.inputs[i]?.name ?? `#${i}`, t));
  }
  for (const vi of g.inputs) {
    const t = bound.get(vi.name);
    if (!t) throw new GraphError(`forward: missing graph input '${vi.name}'`, { context: { input: vi.name } });
    const bad = t.ndim !== vi.shape.length || vi.shape.some((d, i) => d !== null && d !== t.shape[i]);
    if (bad)
      throw new ShapeError(
        `forward: input '${vi.name}' of graph '${g.name}' must be [${vi.shape.map((d) => d ?? '?').join(', ')}], got [${t.shape.join(', ')}]`,
        {
          context: { input: vi.name },
          fix: 'resize the images to the model input size (see `tapir info <model>`), NCHW layout',
        },
      );
  }
  return bound;
}

/**
 * Runs the graph. `eval` runs under noGrad; `train` and `eval-bn` record the autograd graph (unless the
 * caller is inside noGrad). Returned tensors belong to the caller.
 */
export function forward(g: Graph, x: GraphInput, o: ForwardOptions): ForwardResult {
  const run = () =>
    scope(() => {
      const inputs = bindInputs(g, x);
      // A channels-last copy of each 4-D input where the rule says so; the copies die with the scope.
      for (const [k, t] of inputs) if (useChannelsLast(g, t, o.memoryFormat)) inputs.set(k, t.contiguous(true));
      return forwardInScope(g, inputs, o);
    });
  return o.mode === 'eval' ? noGrad(run) : run();
}

/**
 * Runs the part of the graph between known values and the requested ones: `values` maps value names (graph inputs
 * or any node outputs) to tensors, and only the nodes needed to get from them to `o.outputs` / `o.taps` run. Used to
 * advance a set of live activations through one segment of the graph (layer-wise reconstruction).
 */
export function forwardFrom(g: Graph, values: ReadonlyMap<string, Tensor>, o: ForwardOptions): ForwardResult {
  const run = () => scope(() => forwardInScope(g, values, o));
  return o.mode === 'eval' ? noGrad(run) : run();
}

function forwardInScope(g: Graph, inputs: ReadonlyMap<string, Tensor>, o: ForwardOptions): ForwardResult {
  const outNames = o.outputs ?? g.outputs;
  const tapNames = o.taps ?? [];
  const wanted = new Set([...outNames, ...tapNames]);
  const { nodes, lastUse } = plan(g, wanted, new Set(inputs.keys()));

  const fixed = new Set<Tensor>([
    ...inputs.values(),
    ...[...g.params.values()].map((p) => p.tensor),
    ...g.constants.values(),
  ]);
  const values = new Map<string, Tensor>();
  const refs = new Map<Tensor, number>();
  const hold = (name: string, t: Tensor) => {
    values.set(name, t);
    refs.set(t, (refs.get(t) ?? 0) + 1);
  };
  const release = (name: string) => {
    const t = values.get(name);
    if (!t || wanted.has(name)) return;
    values.delete(name);
    const r = (refs.get(t) ?? 1) - 1;
    if (r > 0) refs.set(t, r);
    else {
      refs.delete(t);
      if (!fixed.has(t)) t.dispose();
    }
  };
  const resolve = (name: string, node: Node): Tensor | null => {
    if (name === '') return null;
    const v = values.get(name) ?? inputs.get(name) ?? g.constants.get(name);
    if (v) return v;
    const p = g.params.get(name);
    if (p) {
      const m = g.masks.get(name);
      if (!m) return p.tensor;
      const masked = p.tensor.mul(m);
      hold(name, masked);
      return masked;
    }
    throw new GraphError(
      `forward: node '${node.name}' (${node.op}) reads '${name}', which no input, parameter, constant or earlier node provides`,
      {
        context: { node: node.name, value: name },
      },
    );
  };

  nodes.forEach((node, i) => {
    const def = opDef(node.op);
    if (!def) throw new UnsupportedOpError(node.op, node.name, OP_NAMES);
    const args = node.inputs.map((n) => resolve(n, node));
    let outs: Tensor[];
    try {
      outs = def.run(args, node.attrs, { mode: o.mode, node: node.name });
    } catch (e) {
      if (e instanceof TapirError) {
        e.message = `node '${node.name}' (${node.op}): ${e.message}`;
        throw e;
      }
      throw new GraphError(`node '${node.name}' (${node.op}) failed: ${(e as Error).message}`, {
        context: { node: node.name, op: node.op },
      });
    }
    if (outs.length < node.outputs.length)
      throw new GraphError(
        `node '${node.name}' (${node.op}) gave ${outs.length} outputs, the graph expects ${node.outputs.length}`,
      );
    outs.forEach((t, k) => {
      const name = node.outputs[k];
      if (name === undefined || name === '' || (!lastUse.has(name) && !wanted.has(name))) {
        if (!fixed.has(t) && !args.includes(t)) t.dispose();
      } else hold(name, t);
    });
    for (const n of new Set(node.inputs)) if (lastUse.get(n) === i) release(n);
  });

  const get = (name: string): Tensor => {
    const t = values.get(name) ?? inputs.get(name) ?? g.constants.get(name) ?? g.params.get(name)?.tensor;
    if (!t)
      throw new GraphError(`forward: graph '${g.name}' has no value '${name}'`, {
        context: { value: name },
        fix: 'list value names with graph.nodes (node outputs) or `tapir info`',
      });
    return t;
  };
  return { outputs: outNames.map(get), taps: new Map(tapNames.map((n) => [n, get(n)])) };
}
