/** SNIP (Lee et al. 2019): |∂L/∂c| at c = 1, i.e. |g ⊙ θ| with g the mean-loss gradient on the calibration set. */
import { noGrad } from '../../engine/index.js';
import { effective, meanGradient } from './common.js';
import type { Score } from './types.js';

export const snip: Score = {
  name: 'snip',
  needs: 'grad',
  dataFree: false,
  description: '|g ⊙ θ| (connection sensitivity)',
  score(ctx) {
    const gs = meanGradient(ctx.graph, ctx.batches, { ...ctx, what: 'snip' });
    const scores = new Map(
      ctx.params.map((p, i) => {
        const t = effective(ctx.graph, p);
        const s = noGrad(() => gs[i]!.mul(t).abs());
        t.dispose();
        gs[i]!.dispose();
        return [p, s] as const;
      }),
    );
    return { scores, info: { score: 'snip', loss: ctx.loss } };
  },
};
