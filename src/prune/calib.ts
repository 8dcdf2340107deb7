/**
 * Calibration data and weights, checked before any scoring: finite values, enough images, a deterministic
 * forward. The hash identifies exactly which images (and labels) a score saw, for the report.
 */
import { createHash } from 'node:crypto';
import { noGrad, scope, type Tensor } from '../engine/index.js';
import type { Graph, Mode } from '../graph/index.js';
import { NondeterministicGraphError, PruneError } from './errors.js';
import type { CalibBatch } from './loss.js';

/** Number of images over all batches. */
export function countImages(batches: readonly CalibBatch[]): number {
  return batches.reduce((a, b) => a + b.x.shape[0]!, 0);
}

function nonFinite(t: Tensor): number {
  return scope(() => noGrad(() => t.isfinite().logicalNot().sum().item()));
}

/** Throws unless there are at least `need` images, all finite, with one label each. */
export function checkCalibration(batches: readonly CalibBatch[], o: { need?: number } = {}): void {
  const n = countImages(batches);
  if (n === 0)
    throw new PruneError('the calibration set is empty', { fix: 'pass calibration images (--calib N with N ≥ 1)' });
  if (o.need !== undefined && n < o.need)
    throw new PruneError(`asked for ${o.need} calibration images but the calibration set has only ${n}`, {
      context: { asked: o.need, available: n },
      fix: `lower --calib to at most ${n}, or raise the task's cap`,
    });
  batches.forEach((b, i) => {
    if (b.y.shape[0] !== b.x.shape[0])
      throw new PruneError(`calibration batch ${i}: ${b.x.shape[0]} images but ${b.y.shape[0]} labels`, {
        context: { batch: i },
      });
    const bad = nonFinite(b.x);
    if (bad > 0)
      throw new PruneError(`calibration batch ${i} has ${bad} NaN/Inf pixel values`, {
        context: { batch: i, nonFinite: bad },
        fix: 'check the images and the preprocessing (mean/std) of the calibration data',
      });
  });
}

/** Throws if a parameter the score reads holds NaN/Inf. */
export function checkWeights(g: Graph): void {
  for (const p of g.params.values()) {
    if (p.tensor.dtype === 'int64' || p.tensor.dtype === 'bool') continue;
    const bad = nonFinite(p.tensor);
    if (bad > 0)
      throw new PruneError(`parameter '${p.name}' of '${g.name}' has ${bad} NaN/Inf entries`, {
        context: { param: p.name, nonFinite: bad },
        fix: 're-import the model; a diverged or corrupt checkpoint cannot be scored',
      });
  }
}

/**
 * Scoring needs a recorded, deterministic forward: `eval-bn` by default. `train` is refused when the graph has
 * BatchNorm or dropout unless the caller opts in; `eval` records no autograd graph, so nothing can be scored.
 */
export function checkMode(
  g: Graph,
  mode: Mode,
  o: { allowTrainMode?: boolean; what: string; perSample?: boolean },
): void {
  if (mode === 'eval')
    throw new PruneError(`${o.what}: mode 'eval' records no gradients`, {
      context: { mode },
      fix: "use mode 'eval-bn' (same numerics, gradients recorded)",
    });
  if (mode !== 'train') return;
  const node = g.nodes.find((n) => n.op === 'batchnorm' || n.op === 'dropout');
  if (!node) return;
  // Per-sample gradients are only per-sample when samples do not interact: train-mode BN couples them.
  if (!o.allowTrainMode || (o.perSample && node.op === 'batchnorm'))
    throw new NondeterministicGraphError(node.name, node.op, o.what);
}

/** SHA-256 over the shapes, pixels and labels of every batch, in order (first 16 hex digits). */
export function calibrationHash(batches: readonly CalibBatch[]): string {
  const h = createHash('sha256');
  for (const b of batches) {
    h.update(JSON.stringify([b.x.shape, b.x.dtype]));
    for (const t of [b.x, b.y]) {
      const d = t.data() as ArrayBufferView;
      h.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    }
  }
  return h.digest('hex').slice(0, 16);
}
