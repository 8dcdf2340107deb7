/** Uniform random scores, seeded: the control every criterion must beat. */
import { manualSeed, rand } from '../../engine/index.js';
import type { Score } from './types.js';

export const random: Score = {
  name: 'random',
  needs: 'none',
  dataFree: true,
  description: 'U(0, 1) per weight (seeded)',
  score: (ctx) => {
    manualSeed(ctx.seed);
    return {
      scores: new Map(
        ctx.params.map((p) => [p, rand(ctx.graph.params.get(p)!.tensor.shape, { dtype: 'float64' })] as const),
      ),
      info: { score: 'random', seed: ctx.seed },
    };
  },
};
