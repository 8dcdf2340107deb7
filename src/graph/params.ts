/**
 * Parameter helpers over the IR: the default prunable rule, listings, masks, dtype conversion, disposal.
 */
import { keep, noGrad, scope, ShapeError, type DType, type Tensor } from '../engine/index.js';
import { GraphError } from './errors.js';
import type { Graph, Param, ParamRole } from './ir.js';

/**
 * The paper's rule: conv / linear / attention-projection weights of the backbone are prunable; biases, norms,
 * buffers, embeddings (class token, position table) and the task head are not.
 */
export function defaultPrunable(role: ParamRole): boolean {
  return role === 'weight';
}

/**
 * A graph parameter. Trainable float parameters require grad, so a forward in `train` / `eval-bn`
 * records what backward needs.
 */
export function makeParam(
  name: string,
  t: Tensor,
  role: ParamRole,
  o: { trainable?: boolean; prunable?: boolean } = {},
): Param {
  const trainable = o.trainable ?? role !== 'buffer';
  if (trainable && !t.requiresGrad) t.requiresGrad_(true);
  // The graph owns its tensors: an enclosing scope must not free them.
  keep(t);
  return { name, tensor: t, role, trainable, prunable: o.prunable ?? defaultPrunable(role) };
}

/** Re-applies the default prunable rule to every parameter (e.g. after changing roles). */
export function resetPrunable(g: Graph): void {
  for (const p of g.params.values()) p.prunable = defaultPrunable(p.role);
}

export function trainableParams(g: Graph): Param[] {
  return [...g.params.values()].filter((p) => p.trainable);
}
/** The dtype inputs must have: float64 when the graph's parameters are float64. */
export function graphDtype(g: Graph): 'float32' | 'float64' {
  for (const p of g.params.values()) if (p.tensor.dtype === 'float64') return 'float64';
  return 'float32';
}

export function prunableParams(g: Graph): Param[] {
  return [...g.params.values()].filter((p) => p.prunable);
}

export interface ParamCounts {
  totalParameters: number;
  trainableParameters: number;
  prunableParameters: number;
}
/** Element counts; `totalParameters` counts trainable parameters and buffers alike. */
export function countParams(g: Graph): ParamCounts {
  let total = 0;
  let trainable = 0;
  let prunable = 0;
  for (const p of g.params.values()) {
    const n = p.tensor.numel;
    total += n;
    if (p.trainable) trainable += n;
    if (p.prunable) prunable += n;
  }
  return { totalParameters: total, trainableParameters: trainable, prunableParameters: prunable };
}

function param(g: Graph, name: string): Param {
  const p = g.params.get(name);
  if (!p)
    throw new GraphError(`graph '${g.name}' has no parameter '${name}'`, {
      context: { param: name },
      fix: 'list parameter names with `tapir info <model>`',
    });
  return p;
}

/** Sets the 0/1 mask of a parameter (copied, converted to the parameter's dtype); replaces an earlier one. */
export function setMask(g: Graph, name: string, mask: Tensor): void {
  const p = param(g, name);
  const ps = p.tensor.shape;
  if (mask.ndim !== ps.length || mask.shape.some((d, i) => d !== ps[i]))
    throw new ShapeError(
      `mask for '${name}' has shape [${mask.shape.join(', ')}], the parameter is [${ps.join(', ')}]`,
      { context: { param: name } },
    );
  // One new tensor: to() copies (clone() when the dtype already matches); the graph owns it. The scope frees any
  // intermediate of the conversion, keep() lifts the copy out of every enclosing scope.
  const m = keep(scope(() => noGrad(() => (mask.dtype === p.tensor.dtype ? mask.clone() : mask.to(p.tensor.dtype)))));
  g.masks.get(name)?.dispose();
  g.masks.set(name, m);
}

/**
 * Overwrites `work`'s parameter values and constants with `source`'s and drops its masks, so a graph that was
 * pruned (weights updated, BatchNorms repaired: values only, never the graph) is the `source` model again. `source`
 * is an unpruned load of the same model: same parameter names and shapes.
 */
export function restoreFrom(work: Graph, source: Graph): void {
  clearMasks(work);
  noGrad(() => {
    for (const [name, p] of source.params) {
      const w = work.params.get(name);
      if (!w)
        throw new GraphError(`restore: graph '${work.name}' has no parameter '${name}' of '${source.name}'`, {
          context: { param: name },
          fix: 'restore from a load of the same model',
        });
      w.tensor.copy_(p.tensor);
    }
    for (const [name, t] of source.constants) {
      const w = work.constants.get(name);
      if (w && w !== t) w.copy_(t);
    }
  });
  if (work.params.size !== source.params.size)
    throw new GraphError(
      `restore: graph '${work.name}' has ${work.params.size} parameters, '${source.name}' ${source.params.size}`,
      { fix: 'restore from a load of the same model' },
    );
}

export function clearMasks(g: Graph): void {
  for (const m of g.masks.values()) m.dispose();
  g.masks.clear();
}

/** Zeroes masked entries in place (W ← W ⊙ c), e.g. before export or after an optimizer step. */
export function applyMasksInPlace(g: Graph): void {
  noGrad(() => {
    for (const [name, m] of g.masks) param(g, name).tensor.mul_(m);
  });
}

/** Converts every floating parameter, constant and mask to `dtype` in place (float64 for exact tests). */
export function toDType(g: Graph, dtype: DType): Graph {
  const isFloat = (t: Tensor) =>
    t.dtype === 'float32' || t.dtype === 'float64' || t.dtype === 'float16' || t.dtype === 'bfloat16';
  noGrad(() => {
    for (const p of g.params.values()) {
      if (!isFloat(p.tensor) || p.tensor.dtype === dtype) continue;
      const t = keep(p.tensor.to(dtype).detach());
      p.tensor.dispose();
      p.tensor = p.trainable ? t.requiresGrad_(true) : t;
    }
    for (const map of [g.constants, g.masks])
      for (const [k, t] of map) {
        if (!isFloat(t) || t.dtype === dtype) continue;
        map.set(k, keep(t.to(dtype)));
        t.dispose();
      }
  });
  return g;
}

/** Frees every tensor the graph owns. */
export function disposeGraph(g: Graph): void {
  for (const p of g.params.values()) p.tensor.dispose();
  for (const t of g.constants.values()) t.dispose();
  for (const t of g.masks.values()) t.dispose();
}

/** Checks names are unique and every node input is provided; returns the graph. */
export function validateGraph(g: Graph): Graph {
  const known = new Set<string>([...g.inputs.map((i) => i.name), ...g.params.keys(), ...g.constants.keys(), '']);
  const names = new Set<string>();
  for (const n of g.nodes) {
    if (names.has(n.name))
      throw new GraphError(`graph '${g.name}': duplicate node name '${n.name}'`, { context: { node: n.name } });
    names.add(n.name);
    for (const i of n.inputs)
      if (!known.has(i))
        throw new GraphError(`graph '${g.name}': node '${n.name}' reads '${i}' before anything produces it`, {
          context: { node: n.name, value: i },
        });
    for (const o of n.outputs) known.add(o);
  }
  for (const o of [...g.outputs, g.featureTap])
    if (!known.has(o))
      throw new GraphError(`graph '${g.name}': output/feature tap '${o}' is not produced by any node`, {
        context: { value: o },
      });
  return g;
}
