/**
 * BN re-estimation after masking: every BatchNorm's running statistics are recomputed on the calibration images
 * (torch `swa_utils.update_bn`): a train-mode forward with the cumulative-average momentum bₖ / Σᵢ≤ₖ bᵢ for batch
 * k, so after the last batch the running mean is the image-weighted mean of the per-batch means (and the running
 * variance that of the per-batch unbiased variances). Dropout is switched off. No weight changes.
 */
import { noGrad, scope } from '../engine/index.js';
import { forward, type Graph } from '../graph/index.js';
import { checkCalibration } from './calib.js';
import type { CalibBatch } from './loss.js';

/** Returns the number of BatchNorm nodes updated. */
export function reestimateBatchNorm(g: Graph, batches: readonly CalibBatch[]): number {
  const bns = g.nodes.filter((n) => n.op === 'batchnorm');
  if (bns.length === 0) return 0;
  checkCalibration(batches);
  let seen = 0;
  for (const b of batches) {
    const n = b.x.shape[0]!;
    seen += n;
    const momentum = n / seen;
    const shadow: Graph = {
      ...g,
      nodes: g.nodes.map((node) => (node.op === 'batchnorm' ? { ...node, attrs: { ...node.attrs, momentum } } : node.op === 'dropout' ? { ...node, attrs: { ...node.attrs, p: 0 } } : node)),
    };
    scope(() => { noGrad(() => forward(shadow, b.x, { mode: 'train' })); });
  }
  return bns.length;
}
