/**
 * GraSP (Wang et al. 2020) computes S = −θ ⊙ Hg and removes the weights with the *largest* S (their removal
 * reduces gradient flow least). In tapir's convention (higher = keep) the score is therefore θ ⊙ Hg = −S.
 * g is the mean-loss gradient over the calibration set (detached), Hg one double backward per batch.
 */
import { hvp, noGrad, scope, zeros } from '../../engine/index.js';
import { countImages } from '../calib.js';
import { lossFn } from '../loss.js';
import { effective, meanGradient } from './common.js';
import type { Score } from './types.js';

export const grasp: Score = {
  name: 'grasp',
  needs: 'grad',
  dataFree: false,
  description: 'θ ⊙ Hg (GraSP; its S = −θ ⊙ Hg, largest removed)',
  score(ctx) {
    const mode = ctx.mode ?? 'eval-bn';
    const gs = meanGradient(ctx.graph, ctx.batches, { ...ctx, what: 'grasp' });
    const ps = ctx.params.map((p) => ctx.graph.params.get(p)!.tensor);
    const n = countImages(ctx.batches);
    const hg = ps.map((p) => zeros(p.shape, { dtype: p.dtype, device: p.device }));
    for (const b of ctx.batches)
      scope(() => {
        const r = hvp(() => lossFn(ctx.graph, b, { loss: ctx.loss, mode }).loss, ps, gs);
        noGrad(() => r.hv.forEach((h, i) => hg[i]!.add_(h.mul(b.x.shape[0]! / n))));
      });
    const scores = new Map(
      ctx.params.map((p, i) => {
        const t = effective(ctx.graph, p);
        const s = noGrad(() => t.mul(hg[i]!));
        for (const x of [t, hg[i]!, gs[i]!]) x.dispose();
        return [p, s] as const;
      }),
    );
    return { scores, info: { score: 'grasp', loss: ctx.loss } };
  },
};
