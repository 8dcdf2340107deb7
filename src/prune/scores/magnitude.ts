/** Magnitude θ²: the OBD score under H ≈ λI (docs/PRUNE.md), data-free. */
import { noGrad } from '../../engine/index.js';
import { effective } from './common.js';
import type { Score } from './types.js';

export const magnitude: Score = {
  name: 'magnitude',
  needs: 'none',
  dataFree: true,
  description: 'θ² (data-free)',
  score: (ctx) => ({
    scores: new Map(
      ctx.params.map((p) => {
        const t = effective(ctx.graph, p);
        const s = noGrad(() => t.square());
        t.dispose();
        return [p, s] as const;
      }),
    ),
    info: { score: 'magnitude' },
  }),
};
