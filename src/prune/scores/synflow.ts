/**
 * SynFlow (Tanaka et al. 2020), data-free: every parameter is replaced by its absolute value, an all-ones image
 * goes through the network in float64, R = 1ᵀ f(1) (= 1ᵀ(Π|W|)1 for a linear chain), and the score is
 * |θ| ⊙ ∂R/∂|θ|. BatchNorm as in the official code (`state_dict().abs_()` under `model.eval()`): eval mode with
 * |γ|, |β|, |running mean| and |running variance| — every BN tensor made non-negative, statistics frozen.
 * The graph itself is not modified: a shadow copy of its parameters is used.
 */
import { gradStrict, noGrad, ones, scope, type Tensor } from '../../engine/index.js';
import { forward, type Graph } from '../../graph/index.js';
import type { Score } from './types.js';

const isFloat = (t: Tensor) =>
  t.dtype === 'float32' || t.dtype === 'float64' || t.dtype === 'float16' || t.dtype === 'bfloat16';

export const synflow: Score = {
  name: 'synflow',
  needs: 'none',
  dataFree: true,
  description: '|θ| ⊙ ∂R/∂|θ|, R = 1ᵀ f(1) with |θ| everywhere (data-free path norm)',
  score(ctx) {
    const g = ctx.graph;
    return scope(() => {
      const want = new Set(ctx.params);
      const params = new Map(
        [...g.params].map(([n, p]) => {
          const t = noGrad(() => (isFloat(p.tensor) ? p.tensor.detach().to('float64').abs() : p.tensor.detach()));
          if (want.has(n)) t.requiresGrad_(true);
          return [n, { ...p, tensor: t }] as const;
        }),
      );
      const f64 = (m: ReadonlyMap<string, Tensor>) =>
        new Map([...m].map(([n, t]) => [n, isFloat(t) ? noGrad(() => t.to('float64')) : t] as const));
      const shadow: Graph = { ...g, params, masks: f64(g.masks), constants: f64(g.constants) };
      const shape = g.inputs[0]!.shape.map((d, i) => d ?? (i === 0 ? 1 : (g.preprocessing.size[i - 2] ?? 1)));
      const out = forward(shadow, ones(shape, { dtype: 'float64' }), { mode: 'eval-bn' }).outputs[0]!;
      const ts = ctx.params.map((p) => params.get(p)!.tensor);
      const gs = gradStrict(out.sum(), ts);
      const scores = new Map(
        ctx.params.map(
          (p, i) =>
            [
              p,
              noGrad(() => {
                const m = shadow.masks.get(p);
                const a = m ? ts[i]!.detach().mul(m) : ts[i]!.detach();
                return a.mul(gs[i]!);
              }),
            ] as const,
        ),
      );
      return { scores, info: { score: 'synflow', input: shape, dtype: 'float64' } };
    });
  },
};
