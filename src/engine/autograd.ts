/**
 * Autograd helpers over libtorch's engine: gradients, no-grad regions, and Hessian-vector
 * products by double backward (Pearlmutter: Hv = ∂/∂θ (∇L(θ) · v)).
 */
import { native } from './native.js';
import { ShapeError } from './errors.js';
import { Tensor, keep, scope, zerosLike } from './tensor.js';

export interface GradOptions {
  /** Seeds for non-scalar outputs (same shapes as `outputs`). */
  gradOutputs?: readonly Tensor[];
  /** Keep the graph for another backward (defaults to `createGraph`). */
  retainGraph?: boolean;
  /** Build a graph of the gradient itself, for higher derivatives. */
  createGraph?: boolean;
  /** Return null for inputs the outputs do not depend on instead of throwing. */
  allowUnused?: boolean;
}

/** ∂(Σ outputs)/∂inputs, one tensor per input (null only with `allowUnused`). */
export function grad(
  outputs: Tensor | readonly Tensor[],
  inputs: readonly Tensor[],
  o: GradOptions = {},
): (Tensor | null)[] {
  const outs = outputs instanceof Tensor ? [outputs] : outputs;
  const hs = native.grad(
    outs.map((t) => t.handle),
    inputs.map((t) => t.handle),
    o.gradOutputs?.map((t) => t.handle),
    o.retainGraph,
    o.createGraph ?? false,
    o.allowUnused ?? false,
  );
  return hs.map((h) => (h === null ? null : new Tensor(h)));
}

/** Like `grad`, but every input must be used: returns Tensor[]. */
export function gradStrict(
  outputs: Tensor | readonly Tensor[],
  inputs: readonly Tensor[],
  o: Omit<GradOptions, 'allowUnused'> = {},
): Tensor[] {
  return grad(outputs, inputs, o) as Tensor[];
}

/** Runs `fn` with gradient recording off (torch.no_grad). */
export function noGrad<T>(fn: () => T): T {
  const prev = native.setGradEnabled(false);
  try {
    return fn();
  } finally {
    native.setGradEnabled(prev);
  }
}
/** Runs `fn` with gradient recording on, even inside `noGrad`. */
export function enableGrad<T>(fn: () => T): T {
  const prev = native.setGradEnabled(true);
  try {
    return fn();
  } finally {
    native.setGradEnabled(prev);
  }
}
export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

/**
 * Hessian-vector product of a scalar function. `f(params)` must return a scalar built from
 * `params` (which must require grad); `v` matches `params` shape by shape.
 * Returns the loss, its gradient and H v, all detached; intermediates are freed.
 */
export function hvp(
  f: (params: readonly Tensor[]) => Tensor,
  params: readonly Tensor[],
  v: readonly Tensor[],
): { loss: Tensor; grad: Tensor[]; hv: Tensor[] } {
  if (v.length !== params.length) throw new ShapeError(`hvp: ${params.length} params but ${v.length} vectors`);
  params.forEach((p, i) => {
    const vs = v[i]!.shape;
    if (vs.length !== p.shape.length || vs.some((d, k) => d !== p.shape[k]))
      throw new ShapeError(`hvp: vector ${i} has shape [${vs.join(', ')}] but param ${i} has [${p.shape.join(', ')}]`);
  });
  return scope(() => {
    const loss = enableGrad(() => f(params));
    const g = gradStrict(loss, params, { createGraph: true });
    let dot: Tensor | null = null;
    for (let i = 0; i < g.length; i++) {
      // A gradient without a graph is constant (the loss is linear in that param): its Hessian rows are zero.
      if (!g[i]!.requiresGrad) continue;
      const term = g[i]!.mul(v[i]!).sum();
      dot = dot === null ? term : dot.add(term);
    }
    const hs = dot === null ? params.map(() => null) : grad(dot, params, { allowUnused: true });
    const hv = hs.map((h, i) => h ?? zerosLike(params[i]!));
    return { loss: loss.detach(), grad: g.map((t) => t.detach()), hv };
  });
}

/** The gradient of a scalar with its autograd graph kept, for many Hessian-vector products at one point. */
export interface GradGraph {
  /** ∇f with a graph (do not modify). */
  readonly grad: readonly Tensor[];
  /** H v by one double backward through the kept graph (no new forward); results are owned by the caller. */
  hv(v: readonly Tensor[]): Tensor[];
  /** Frees the gradient and its graph. */
  dispose(): void;
}

/**
 * `f(params)` and its gradient once, with the graph kept: every `hv(v)` afterwards costs one double backward
 * instead of the forward + backward + double backward of `hvp`. The params must not change until `dispose()`.
 */
export function gradGraph(f: (params: readonly Tensor[]) => Tensor, params: readonly Tensor[]): GradGraph {
  const g = scope(() => enableGrad(() => gradStrict(f(params), params, { createGraph: true })));
  for (const t of g) keep(t);
  const live = g.map((t, i) => (t.requiresGrad ? i : -1)).filter((i) => i >= 0);
  return {
    grad: g,
    hv(v) {
      if (v.length !== params.length)
        throw new ShapeError(`gradGraph.hv: ${params.length} params but ${v.length} vectors`);
      return scope(() => {
        if (live.length === 0) return params.map((p) => zerosLike(p));
        const dot = enableGrad(() => live.map((i) => g[i]!.mul(v[i]!).sum()).reduce((a, b) => a.add(b)));
        const hs = enableGrad(() => grad(dot, params, { allowUnused: true, retainGraph: true }));
        return hs.map((h, i) => h ?? zerosLike(params[i]!));
      });
    },
    dispose() {
      for (const t of g) t.dispose();
    },
  };
}
