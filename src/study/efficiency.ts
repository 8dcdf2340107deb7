/**
 * What a mask buys: parameters, bytes (dense float32, bit-mask + kept values, CSR) and multiply-accumulates of
 * every conv / linear weight at the model's resolution, dense and sparse.
 *
 * MACs of a weight W used by a conv or linear node: every output element costs (W.numel / out_channels) MACs, so
 * MACs = W.numel × (output elements per image / out_channels) (conv: × H_out·W_out). Unstructured sparsity removes
 * each zero weight's MACs at every position, so sparse MACs = MACs × density of W. Output shapes come from one
 * forward pass of a single blank image with taps on those nodes, so the numbers hold for the resolution the study
 * actually ran at. FLOPs = 2 × MACs.
 */
import { noGrad, scope, zeros } from '../engine/index.js';
import { forward, type Graph } from '../graph/index.js';
import type { DensityRow, LayerRow } from './store.js';

/** One row per parameter; conv/linear weights get their MACs per image, everything else 0. */
export function layerTable(g: Graph): LayerRow[] {
  const users = new Map<string, { op: string; out: string }>();
  for (const n of g.nodes) {
    if ((n.op === 'conv2d' || n.op === 'linear') && n.inputs[1] && g.params.has(n.inputs[1]))
      users.set(n.inputs[1], { op: n.op, out: n.outputs[0]! });
  }
  const [h, w] = g.preprocessing.size;
  const taps = [...new Set([...users.values()].map((u) => u.out))];
  const outShape = new Map<string, readonly number[]>();
  if (taps.length > 0) {
    scope(() =>
      noGrad(() => {
        const r = forward(
          g,
          zeros([1, 3, h, w], { dtype: g.params.values().next().value?.tensor.dtype ?? 'float32' }),
          { mode: 'eval', taps, outputs: [] },
        );
        for (const t of taps) outShape.set(t, r.taps.get(t)!.shape);
      }),
    );
  }
  return [...g.params.values()].map((p) => {
    const u = users.get(p.name);
    let macs = 0;
    if (u) {
      const s = outShape.get(u.out)!;
      const perImage = s.slice(1).reduce((a, b) => a * b, 1);
      const outChannels = u.op === 'conv2d' ? s[1]! : s[s.length - 1]!;
      macs = p.tensor.numel * (perImage / outChannels);
    }
    return {
      tensor: p.name,
      op: u?.op ?? p.role,
      shape: [...p.tensor.shape],
      numel: p.tensor.numel,
      macs,
      prunable: p.prunable,
    };
  });
}

export interface Efficiency {
  parameters: number;
  nonzero: number;
  /** float32 everywhere. */
  denseBytes: number;
  /** Masked tensors: 1 bit per entry + 4 bytes per kept value; others dense. */
  bitmaskBytes: number;
  /** Masked tensors as CSR over [out, rest]: 4-byte values and column indices + (rows + 1) 4-byte row pointers. */
  csrBytes: number;
  denseMacs: number;
  sparseMacs: number;
}

/** Totals for one mask (per-tensor kept counts) over the layer table of its model. */
export function efficiency(layers: readonly LayerRow[], densities: readonly DensityRow[]): Efficiency {
  const kept = new Map(densities.map((d) => [d.tensor, d.kept]));
  const e: Efficiency = {
    parameters: 0,
    nonzero: 0,
    denseBytes: 0,
    bitmaskBytes: 0,
    csrBytes: 0,
    denseMacs: 0,
    sparseMacs: 0,
  };
  for (const l of layers) {
    const k = kept.get(l.tensor);
    e.parameters += l.numel;
    e.denseBytes += 4 * l.numel;
    e.denseMacs += l.macs;
    if (k === undefined) {
      e.nonzero += l.numel;
      e.bitmaskBytes += 4 * l.numel;
      e.csrBytes += 4 * l.numel;
      e.sparseMacs += l.macs;
      continue;
    }
    const rows = l.shape.length > 1 ? l.shape[0]! : 1;
    e.nonzero += k;
    e.bitmaskBytes += Math.ceil(l.numel / 8) + 4 * k;
    e.csrBytes += 8 * k + 4 * (rows + 1);
    e.sparseMacs += l.numel === 0 ? 0 : l.macs * (k / l.numel);
  }
  return e;
}
