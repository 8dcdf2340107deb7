import type { Graph } from './ir.js';

/**
 * The model's preprocessing in the data layer's `Preprocess` shape (structurally typed: the graph layer does not
 * import data): input size, value range, optional per-channel mean/std, RGB.
 */
export function preprocessOf(g: Graph): {
  size: [number, number];
  range: [number, number];
  mean?: readonly number[];
  std?: readonly number[];
  channels: 3;
} {
  const p = g.preprocessing;
  return {
    size: [p.size[0], p.size[1]],
    range: [p.range[0], p.range[1]],
    ...(p.mean ? { mean: p.mean } : {}),
    ...(p.std ? { std: p.std } : {}),
    channels: 3,
  };
}
