/**
 * Predicted vs measured loss change of a mask (docs/ANALYSIS.md): removing the weights a mask c drops is the step
 * δ = −θ ⊙ (1 − c). Around θ,
 *   first order:  ΔL ≈ gᵀδ
 *   second order: ΔL ≈ gᵀδ + ½ δᵀHδ   (one Hessian-vector product in the direction δ)
 * and the measured change is L(θ + δ) − L(θ), evaluated with the masked weights set to zero.
 * For a quadratic loss the second-order prediction is exact.
 */
import { noGrad, ones, scope, type Tensor } from '../engine/index.js';
import { AnalysisError } from './errors.js';
import type { HessianOperator } from './hessian.js';
import { flatten } from './operator.js';

export interface LossChange {
  /** L(θ), mean over the operator's images. */
  base: number;
  firstOrder: number;
  /** ½ δᵀHδ. */
  curvatureTerm: number;
  secondOrder: number;
  measured: number;
  /** Fraction of the operator's weights the mask removes. */
  sparsity: number;
  /** ‖δ‖₂. */
  deltaNorm: number;
}

/** The loss and gradient at θ, to share between several masks. Dispose `grad` when done. */
export type BasePoint = { loss: number; grad: Tensor };

/**
 * ΔL for a mask: name → 0/1 tensor of the parameter's shape, over (a subset of) the operator's parameters;
 * parameters without a mask entry are kept whole. The graph's weights are restored afterwards.
 */
export function lossChange(
  h: HessianOperator,
  mask: ReadonlyMap<string, Tensor>,
  o: { base?: BasePoint } = {},
): LossChange {
  for (const name of mask.keys())
    if (!h.layout.names.includes(name))
      throw new AnalysisError(`lossChange: the mask covers '${name}', which is not one of the operator's parameters`, {
        context: { param: name },
        fix: 'build the operator over the masked parameters (hessianOperator(..., { params }))',
      });
  const base = o.base ?? h.lossAndGrad();
  try {
    const { delta, c, removed } = noGrad(() =>
      scope(() => {
        const parts = h.layout.names.map((nm, i) => {
          const m = mask.get(nm);
          if (!m) return ones(h.layout.shapes[i]!, { dtype: h.dtype });
          if (m.numel !== h.layout.shapes[i]!.reduce((a, b) => a * b, 1))
            throw new AnalysisError(
              `lossChange: mask '${nm}' has shape [${m.shape.join(', ')}], the parameter is [${h.layout.shapes[i]!.join(', ')}]`,
              { context: { param: nm } },
            );
          return m.to(h.dtype).reshape(h.layout.shapes[i]!);
        });
        const c = flatten(h.layout, parts);
        const theta = h.flatParams();
        return { delta: theta.mul(c.neg().add(1)).neg(), c, removed: h.dim - c.sum().item() };
      }),
    );
    try {
      const hd = h.matvec(delta);
      const { gd, dhd, norm } = noGrad(() =>
        scope(() => ({ gd: base.grad.dot(delta).item(), dhd: delta.dot(hd).item(), norm: delta.norm().item() })),
      );
      hd.dispose();
      const measured = withMaskedWeights(h, c, () => h.lossValue()) - base.loss;
      return {
        base: base.loss,
        firstOrder: gd,
        curvatureTerm: dhd / 2,
        secondOrder: gd + dhd / 2,
        measured,
        sparsity: removed / h.dim,
        deltaNorm: norm,
      };
    } finally {
      delta.dispose();
      c.dispose();
    }
  } finally {
    if (!o.base) base.grad.dispose();
  }
}

/** Runs `fn` with the operator's parameters multiplied by the flat 0/1 vector `c`, then restores them. */
function withMaskedWeights<T>(h: HessianOperator, c: Tensor, fn: () => T): T {
  const params = h.layout.names.map((nm) => h.graph.params.get(nm)!);
  // scope: the detach() views are freed now (only the clones are kept).
  const saved = noGrad(() => scope(() => params.map((p) => p.tensor.detach().clone())));
  try {
    noGrad(() =>
      h.layout.names.forEach((_, i) =>
        scope(() => {
          const n = h.layout.shapes[i]!.reduce((a, b) => a * b, 1);
          params[i]!.tensor.mul_(c.narrow(0, h.layout.offsets[i]!, n).reshape(h.layout.shapes[i]!));
        }),
      ),
    );
    return fn();
  } finally {
    noGrad(() => params.forEach((p, i) => p.tensor.copy_(saved[i]!)));
    for (const t of saved) t.dispose();
  }
}
