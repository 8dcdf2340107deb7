/**
 * OBD (LeCun et al. 1990): removing weight j changes the loss by ½ Hⱼⱼ θⱼ² under a diagonal quadratic model
 * around a minimum (gradient term dropped). Hⱼⱼ from the chosen estimator: hutchinson (exact-Hessian
 * diagonal), ggn or fisher.
 */
import { noGrad } from '../../engine/index.js';
import { ESTIMATORS } from '../estimators/index.js';
import { effective } from './common.js';
import type { Score } from './types.js';

export const diagHessian: Score = {
  name: 'diag-hessian',
  needs: 'diag',
  dataFree: false,
  description: '½ Hⱼⱼ θⱼ² (OBD), H from --estimator hutchinson | ggn | fisher',
  score(ctx) {
    const e = ctx.estimator ?? 'hutchinson';
    const est = typeof e === 'string' ? ESTIMATORS[e] : e;
    const r = est.diag(ctx.graph, ctx.batches, {
      loss: ctx.loss,
      seed: ctx.seed,
      mode: ctx.mode,
      allowTrainMode: ctx.allowTrainMode,
      probes: ctx.probes,
      ggn: ctx.ggn,
      params: ctx.params,
      onProgress: ctx.onProgress,
    });
    const scores = new Map(
      ctx.params.map((p) => {
        const t = effective(ctx.graph, p);
        const h = r.diag.get(p)!;
        const s = noGrad(() => h.mul(t.square()).mul(0.5));
        t.dispose();
        h.dispose();
        return [p, s] as const;
      }),
    );
    for (const t of r.stderr?.values() ?? []) t.dispose();
    return { scores, info: { score: 'diag-hessian', ...r.info } };
  },
};
