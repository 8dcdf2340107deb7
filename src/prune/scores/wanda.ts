/**
 * Wanda (Sun et al. 2023, "A Simple and Effective Pruning Approach for Large Language Models"): |W_ij| · ‖X_j‖₂, the
 * weight's magnitude times the norm of the input it multiplies over every calibration image and position (for a conv,
 * the unfolded input column). No gradient, no label, no weight update: one forward pass. Wanda compares weights
 * within each output row (`--allocation rowwise`); any other allocation works too.
 */
import { noGrad, scope } from '../../engine/index.js';
import { layersOf, toRows } from '../reconstruct/layers.js';
import { forEachLayerInput } from '../reconstruct/sweep.js';
import { checkCalibration } from '../calib.js';
import { effective } from './common.js';
import type { Score } from './types.js';
import type { Tensor } from '../../engine/index.js';

export const wanda: Score = {
  name: 'wanda',
  needs: 'inputs',
  dataFree: false,
  description: '|W| · ‖X_j‖₂ (Wanda: weight times input norm; no labels; compare per row with --allocation rowwise)',
  score(ctx) {
    checkCalibration(ctx.batches);
    const layers = layersOf(ctx.graph, ctx.params, 'wanda');
    const scores = new Map<string, Tensor>();
    forEachLayerInput(ctx.graph, ctx.batches, layers, (l, xs) => {
      const colSq = scope(() =>
        noGrad(() => {
          let acc: Tensor | null = null;
          for (const x of xs) {
            const c = scope(() => l.rule.columns(x, l.node, l.shape).square().sum([0, 3]).to('float64'));
            if (acc) {
              acc.add_(c);
              c.dispose();
            } else acc = c;
          }
          return acc!;
        }),
      );
      scores.set(
        l.param,
        scope(() =>
          noGrad(() => {
            const w = effective(ctx.graph, l.param);
            return toRows(w, l.groups).to('float64').abs().mul(colSq.sqrt().unsqueeze(1)).reshape(l.shape).to(w.dtype);
          }),
        ),
      );
      colSq.dispose();
    });
    return { scores, info: { score: 'wanda', images: ctx.batches.reduce((a, b) => a + b.x.shape[0]!, 0) } };
  },
};
