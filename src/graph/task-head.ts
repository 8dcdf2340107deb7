/**
 * A task head on a backbone: a linear layer `task_head.{weight,bias}` ([C, D], [C]) on the feature tap. The zoo
 * models' own classifiers predict other classes (nsfwjs: 5 NSFW classes, ResNet: 1000), so every task reads the
 * backbone through a head of its own; the model's original classifier is left out of the forward pass. Only IR
 * surgery lives here; fitting a head (ridge) is the transfer layer's job.
 */
import { ShapeError, type Tensor } from '../engine/index.js';
import type { Graph } from './ir.js';
import { makeParam, validateGraph } from './params.js';

export const TASK_HEAD_WEIGHT = 'task_head.weight';
export const TASK_HEAD_BIAS = 'task_head.bias';

export interface LinearHead {
  /** [C, D] */
  weight: Tensor;
  /** [C] */
  bias: Tensor;
}

/**
 * A view of `g` whose single output is `task_head(flatten(tap))`. Parameters, constants and masks are SHARED with
 * `g` (same Param objects, same mask map), so training the view trains `g`; the view adds only the two head
 * parameters, which it takes ownership of (free them with `disposeTaskHead`).
 */
export function withTaskHead(g: Graph, head: LinearHead, o: { tap?: string } = {}): Graph {
  const tap = o.tap ?? g.featureTap;
  if (head.weight.ndim !== 2 || head.bias.ndim !== 1 || head.bias.shape[0] !== head.weight.shape[0])
    throw new ShapeError(
      `task head must be weight [C, D] and bias [C], got [${head.weight.shape.join(', ')}] and [${head.bias.shape.join(', ')}]`,
    );
  const taken = new Set(g.nodes.flatMap((n) => [n.name, ...n.outputs]));
  const fresh = (base: string) => {
    let n = base;
    for (let i = 1; taken.has(n); i++) n = `${base}_${i}`;
    return n;
  };
  const flat = fresh('task_head.flatten');
  const out = fresh('task_head.linear');
  const params = new Map(g.params);
  params.set(TASK_HEAD_WEIGHT, makeParam(TASK_HEAD_WEIGHT, head.weight, 'head', { prunable: false }));
  params.set(TASK_HEAD_BIAS, makeParam(TASK_HEAD_BIAS, head.bias, 'bias', { prunable: false }));
  return validateGraph({
    ...g,
    nodes: [
      ...g.nodes,
      { name: flat, op: 'flatten', inputs: [tap], outputs: [flat], attrs: { axis: 1 } },
      { name: out, op: 'linear', inputs: [flat, TASK_HEAD_WEIGHT, TASK_HEAD_BIAS], outputs: [out], attrs: {} },
    ],
    params,
    outputs: [out],
    meta: { ...g.meta, taskHead: { tap } },
  });
}

/** The head parameters of a `withTaskHead` view. */
export function taskHeadOf(hg: Graph): LinearHead {
  const w = hg.params.get(TASK_HEAD_WEIGHT);
  const b = hg.params.get(TASK_HEAD_BIAS);
  if (!w || !b)
    throw new ShapeError(
      `graph '${hg.name}' has no task head (expected parameters ${TASK_HEAD_WEIGHT}, ${TASK_HEAD_BIAS})`,
    );
  return { weight: w.tensor, bias: b.tensor };
}

export function disposeTaskHead(hg: Graph): void {
  hg.params.get(TASK_HEAD_WEIGHT)?.tensor.dispose();
  hg.params.get(TASK_HEAD_BIAS)?.tensor.dispose();
}

/** Names of the parameters (trainable or not) that the values `wanted` depend on. */
export function paramsUsedBy(g: Graph, wanted: readonly string[]): Set<string> {
  const producer = new Map<string, number>();
  g.nodes.forEach((n, i) => n.outputs.forEach((v) => producer.set(v, i)));
  const used = new Set<string>();
  const seen = new Set<string>();
  const stack = [...wanted];
  while (stack.length > 0) {
    const v = stack.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    if (g.params.has(v)) used.add(v);
    const i = producer.get(v);
    if (i !== undefined) for (const inp of g.nodes[i]!.inputs) if (inp !== '') stack.push(inp);
  }
  return used;
}
