/**
 * The Hessian of a task loss with respect to a set of graph parameters, as a LinearOperator. This is the one
 * place data enters the analysis layer: each matvec is a Hessian-vector product by double backward
 * (Pearlmutter 1994) on every batch, summed with weights n_b / N so the operator is the Hessian of the mean
 * loss over all N images.
 *
 * Restricting the parameter set gives a diagonal block of the full Hessian (∂²L/∂θ_b², the other
 * parameters held fixed): `restrict(['conv1.weight'])` is the per-layer Hessian.
 */
import { enableGrad, grad, gradGraph, hvp, noGrad, scope, type GradGraph, type Tensor } from '../engine/index.js';
import { prunableParams, type Graph, type Param } from '../graph/index.js';
import { AnalysisError, NondeterministicGraphError } from './errors.js';
import { batchLoss, checkLoss, countImages, type LabelledBatch, type LossName } from './loss.js';
import { flatten, makeLayout, unflatten, type FlatLayout, type LinearOperator } from './operator.js';

export interface HessianOptions {
  /** Parameter names (default: the graph's prunable parameters). */
  params?: readonly string[];
  /** Forward mode: only 'eval-bn' (BN running statistics, no dropout) gives a deterministic loss. */
  mode?: 'eval-bn' | 'train';
  /** Evaluate the loss twice on the first batch and refuse when the values differ (default true). */
  check?: boolean;
  /** Called after each matvec (progress). */
  onMatvec?: () => void;
  /**
   * Inside `session(fn)`, keep each batch's first-order gradient ∇L_b (with its autograd graph) between matvecs, so
   * a matvec is one double backward per batch instead of forward + backward + double backward (about 15% less on
   * MobileNetV2). Costs the memory of every batch's graph at once. Default: when the batches hold ≤ 512 images.
   */
  cacheGraph?: boolean;
}

export interface HessianOperator extends LinearOperator {
  readonly layout: FlatLayout;
  readonly graph: Graph;
  readonly loss: LossName;
  readonly batches: readonly LabelledBatch[];
  /** Matvecs done so far (each costs one double backward per batch). */
  readonly matvecs: number;
  /** The mean loss over all images. */
  lossValue(): number;
  /** The mean loss and its flat gradient `[dim]` (owned by the caller). */
  lossAndGrad(): { loss: number; grad: Tensor };
  /** Current parameter values as one flat vector (owned by the caller). */
  flatParams(): Tensor;
  /** The diagonal block of H for a subset of this operator's parameters. */
  restrict(names: readonly string[]): HessianOperator;
  /** Runs `fn` with the first-order graphs cached between matvecs (see `cacheGraph`); the weights must not change inside. */
  session<T>(fn: () => T): T;
}

/** Names the node that makes the loss depend on more than the weights, or null. */
export function nondeterministicNode(
  g: Graph,
  mode: 'eval-bn' | 'train' | 'eval',
): { node: string; op: string } | null {
  if (mode !== 'train') return null;
  for (const n of g.nodes) {
    if (n.op === 'batchnorm') return { node: n.name, op: n.op };
    if (n.op === 'dropout' && (typeof n.attrs.p === 'number' ? n.attrs.p : 0.5) > 0) return { node: n.name, op: n.op };
  }
  return null;
}

export function hessianOperator(
  g: Graph,
  loss: LossName,
  batches: readonly LabelledBatch[],
  o: HessianOptions = {},
): HessianOperator {
  checkLoss(loss);
  const mode = o.mode ?? 'eval-bn';
  const bad = nondeterministicNode(g, mode);
  if (bad)
    throw new NondeterministicGraphError(
      `hessianOperator: node '${bad.node}' (${bad.op}) makes the loss random or batch-dependent in mode '${mode}', so every Hessian-vector product ` +
        `would see a different matrix`,
      { node: bad.node, op: bad.op, mode },
      "use mode 'eval-bn' (batch norm with running statistics, dropout off)",
    );
  const params = pickParams(g, o.params);
  const n = countImages(batches);
  const layout = makeLayout(params.map((p) => ({ name: p.name, shape: p.tensor.shape })));
  const dtype = params[0]!.tensor.dtype;
  if (o.check ?? true) checkDeterministic(g, loss, batches[0]!, mode, n);
  const tensors = () => params.map((p) => p.tensor);
  let matvecs = 0;
  /** Per batch: ∇L_b with its graph (only inside `session`). */
  let cache: (GradGraph | undefined)[] | null = null;

  const op: HessianOperator = {
    dim: layout.dim,
    selfAdjoint: true,
    dtype,
    layout,
    graph: g,
    loss,
    batches,
    get matvecs() {
      return matvecs;
    },
    matvec(v: Tensor): Tensor {
      const vs = unflatten(layout, v.dtype === dtype ? v : v.to(dtype));
      try {
        let acc: Tensor | null = null;
        batches.forEach((b, i) => {
          const hv = scope(() => {
            if (cache === null)
              return flatten(
                layout,
                enableGrad(() => hvp(() => batchLoss(g, loss, b, mode, 1 / n), tensors(), vs).hv),
              );
            const gg = cache[i] ?? (cache[i] = gradGraph(() => batchLoss(g, loss, b, mode, 1 / n), tensors()));
            return flatten(layout, gg.hv(vs));
          });
          if (acc === null) acc = hv;
          else {
            noGrad(() => acc!.add_(hv));
            hv.dispose();
          }
        });
        matvecs++;
        o.onMatvec?.();
        return acc!;
      } finally {
        for (const t of vs) t.dispose();
      }
    },
    session<T>(fn: () => T): T {
      if (cache !== null || !(o.cacheGraph ?? n <= 512)) return fn();
      cache = [];
      try {
        return fn();
      } finally {
        for (const gg of cache) gg?.dispose();
        cache = null;
      }
    },
    lossValue(): number {
      return batches.reduce((a, b) => a + scope(() => batchLoss(g, loss, b, 'eval', 1 / n).item()), 0);
    },
    lossAndGrad() {
      let total = 0;
      let acc: Tensor | null = null;
      for (const b of batches) {
        const r = enableGrad(() =>
          scope(() => {
            const l = batchLoss(g, loss, b, mode, 1 / n);
            const gs = grad(l, tensors()) as Tensor[];
            return { l: l.item(), g: flatten(layout, gs) };
          }),
        );
        total += r.l;
        if (acc === null) acc = r.g;
        else {
          noGrad(() => acc!.add_(r.g));
          r.g.dispose();
        }
      }
      return { loss: total, grad: acc! };
    },
    flatParams: () => flatten(layout, tensors()),
    restrict: (names) => {
      for (const nm of names)
        if (!layout.names.includes(nm))
          throw new AnalysisError(`restrict: '${nm}' is not one of this operator's parameters`, {
            context: { param: nm },
            fix: `pick from ${layout.names.slice(0, 5).join(', ')}${layout.names.length > 5 ? ', …' : ''}`,
          });
      return hessianOperator(g, loss, batches, { ...o, params: names, check: false });
    },
  };
  return op;
}

function pickParams(g: Graph, names: readonly string[] | undefined): Param[] {
  const ps =
    names === undefined
      ? prunableParams(g)
      : names.map((nm) => {
          const p = g.params.get(nm);
          if (!p)
            throw new AnalysisError(`hessianOperator: graph '${g.name}' has no parameter '${nm}'`, {
              context: { param: nm },
              fix: 'list parameter names with `tapir info <model>`',
            });
          return p;
        });
  if (ps.length === 0)
    throw new AnalysisError(`hessianOperator: graph '${g.name}' has no parameters to differentiate`, {
      fix: 'pass params, or mark some parameters prunable',
    });
  for (const p of ps) {
    if (!p.tensor.requiresGrad || !p.trainable)
      throw new AnalysisError(
        `hessianOperator: parameter '${p.name}' is not trainable (role ${p.role}); its Hessian is undefined`,
        { context: { param: p.name }, fix: 'drop buffers (BN running statistics) from params' },
      );
    if (p.tensor.dtype !== ps[0]!.tensor.dtype)
      throw new AnalysisError(
        `hessianOperator: parameters mix dtypes (${ps[0]!.name}: ${ps[0]!.tensor.dtype}, ${p.name}: ${p.tensor.dtype})`,
        { fix: 'convert the graph with toDType(graph, dtype)' },
      );
  }
  return ps;
}

/** Two passes over one batch must give the same loss (catches random ops the mode inspection does not know). */
function checkDeterministic(g: Graph, loss: LossName, b: LabelledBatch, mode: 'eval-bn' | 'train', n: number): void {
  const once = () => noGrad(() => scope(() => batchLoss(g, loss, b, mode, 1 / n).item()));
  const a = once();
  const c = once();
  if (!(Math.abs(a - c) <= 1e-6 * Math.max(Math.abs(a), 1e-30)))
    throw new NondeterministicGraphError(
      `hessianOperator: two evaluations of the loss on the same batch differ (${a} vs ${c}); the graph is not deterministic in mode '${mode}'`,
      { first: a, second: c, mode },
      "use mode 'eval-bn' and remove random ops (dropout with p > 0 in eval-bn is off; check custom ops)",
    );
}
