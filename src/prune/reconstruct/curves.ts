/**
 * Error curves for the `error` allocation (allocation.ts): for every layer, how much output error SparseGPT's layer
 * solve leaves at each density of a grid, and how much of a layer's output error reaches the network's output.
 *
 * One walk through the unpruned graph (one forward pass, as `forEachLayerInput`). At layer l, on its dense inputs X:
 * - e_l(d) = ‖(W − Ŵ_d) X‖² / ‖W X‖², Ŵ_d the solver's result when the layer keeps density d (e_l(0) = 1, e_l(1) = 0);
 * - gain_l = r_out / r_l: the layer alone is set to Ŵ at the reference density (the round's), and r_l, r_out are the
 *   relative errors it causes at its own output and at the network's output (the feature tap), on the first
 *   `gainImages` images, by running the rest of the network from the walk's current activations.
 * Summing gain_l · e_l(d_l) over layers predicts the output error of a whole mask to first order (errors of different
 * layers treated as independent): OBC's error database with a measured propagation factor per layer.
 */
import { noGrad, scope, type Tensor } from '../../engine/index.js';
import type { Graph } from '../../graph/index.js';
import type { ErrorCurve } from '../allocation.js';
import { PruneError } from '../errors.js';
import type { CalibBatch } from '../loss.js';
import type { Layer } from './layers.js';
import { toRows } from './layers.js';
import { solveLayer } from './solver.js';
import { checkWalkMemory, covariance, Frontier, squaredError, type ActivationStore } from './sweep.js';

/** Densities the curves are measured at (0 and 1 are exact without a solve). */
export const CURVE_DENSITIES: readonly number[] = [0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1];

export interface CurveOptions {
  blockSize: number;
  damping: number;
  /** Density at which each layer's gain is measured (the round's target density). */
  density: number;
  /** Images the gains are measured on (whole batches from the first; default 128; 0: no gains, each 1). */
  gainImages?: number;
  densities?: readonly number[];
  /** How the walk holds its activations (default `full`). */
  activations?: ActivationStore;
  onProgress?: (done: number, total: number) => void;
}

export interface LayerCurve extends ErrorCurve {
  tensor: string;
  /**
   * Relative error at the layer's own output and at the network's output when it alone keeps `density` (null when
   * no gain was measured: `gainImages` 0, gain 1).
   */
  layerError: number | null;
  outputError: number | null;
}

export function errorCurves(
  g: Graph,
  batches: readonly CalibBatch[],
  layers: readonly Layer[],
  o: CurveOptions,
): LayerCurve[] {
  const grid = [...(o.densities ?? CURVE_DENSITIES)];
  if (grid[0] !== 0 || grid[grid.length - 1] !== 1 || grid.some((d, j) => j > 0 && !(d > grid[j - 1]!)))
    throw new PruneError(`error-curve densities must ascend from 0 to 1, got ${grid.join(', ')}`);
  const output = g.featureTap ?? g.outputs[0]!;
  const ref = Math.min(0.95, Math.max(0.05, o.density));
  // Whole batches from the first until gainImages images.
  const want = o.gainImages ?? 128;
  let nb = 0;
  for (let n = 0; nb < batches.length && n < want; nb++) n += batches[nb]!.x.shape[0]!;
  const store = o.activations ?? 'full';
  checkWalkMemory(g, batches, layers, 1, { store });
  const f = new Frontier(g, batches, [...layers.map((l) => l.node.outputs[0]!), output], store);
  const dense: Tensor[] = [];
  try {
    // The network's output on the gain images, before any change.
    for (let b = 0; b < nb; b++) dense.push(f.peek(b, [output], ([t]) => scope(() => noGrad(() => t!.clone()))));
    return layers.map((l, k) => {
      o.onProgress?.(k, layers.length);
      f.advance(l.index);
      const xs = Array.from({ length: f.batches }, (_, b) => f.value(b, l.node.inputs[0]!));
      const H = covariance(l, xs);
      const param = g.params.get(l.param)!;
      const mask = g.masks.get(l.param);
      const n = param.tensor.numel;
      const { errors, wRef } = scope(() =>
        noGrad(() => {
          const w = toRows(mask ? param.tensor.mul(mask) : param.tensor, l.groups).to('float64');
          const energy = w.matmul(H).mul(w).sum().item();
          const solve = (d: number) =>
            solveLayer(w, H, {
              blockSize: o.blockSize,
              damping: o.damping,
              keep: { kind: 'count', prune: n - Math.round(d * n) },
            });
          // The reference density's solution sets the gain; when it is a grid point, that solve serves both.
          let atRef: Tensor | null = null;
          const errors = grid.map((d) => {
            if (d === 0) return 1;
            if (d === 1) return 0;
            const r = solve(d);
            if (Math.round(d * n) === Math.round(ref * n)) atRef = r.weights;
            return energy > 0 ? r.error.reconstructed / energy : 0;
          });
          if (nb === 0) return { errors, wRef: null };
          return { errors, wRef: (atRef ?? solve(ref).weights).reshape(l.shape).to(param.tensor.dtype) };
        }),
      );
      H.dispose();
      let layerError: number | null = null;
      let outputError: number | null = null;
      let gain = 1;
      if (wRef) {
        // The gain: the layer alone at the reference density, the rest of the network as it is.
        const original = scope(() => noGrad(() => param.tensor.clone()));
        const out = l.node.outputs[0]!;
        let layer = [0, 0];
        let net = [0, 0];
        try {
          const denseOut: Tensor[] = [];
          for (let b = 0; b < nb; b++) denseOut.push(f.peek(b, [out], ([t]) => scope(() => noGrad(() => t!.clone()))));
          noGrad(() => param.tensor.copy_(wRef));
          for (let b = 0; b < nb; b++)
            f.peek(b, [out, output], ([y, z]) => {
              const a = squaredError(denseOut[b]!, y!);
              const c = squaredError(dense[b]!, z!);
              layer = [layer[0]! + a[0], layer[1]! + a[1]];
              net = [net[0]! + c[0], net[1]! + c[1]];
            });
          for (const t of denseOut) t.dispose();
        } finally {
          noGrad(() => param.tensor.copy_(original));
          original.dispose();
          wRef.dispose();
        }
        layerError = layer[1]! > 0 ? layer[0]! / layer[1]! : 0;
        outputError = net[1]! > 0 ? net[0]! / net[1]! : 0;
        // A layer the reference solve leaves exact gives no ratio: count its errors at face value.
        gain = layerError > 1e-12 ? outputError / layerError : 1;
      }
      // A tensor pruned before (an earlier call) keeps no more than it has.
      const max = mask ? scope(() => mask.ne(0).sum().item()) : n;
      return { tensor: l.param, densities: grid, errors, gain, max, layerError, outputError };
    });
  } finally {
    o.onProgress?.(layers.length, layers.length);
    for (const t of dense) t.dispose();
    f.dispose();
  }
}
