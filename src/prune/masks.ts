/**
 * Mask operations on a pruned graph: the shuffled-mask control and the per-tensor summary a study stores. Masks
 * themselves are set by `prune()` (graph `setMask`); these read or permute them.
 */
import { scope, tensor } from '../engine/index.js';
import { packBits, setMask, type Graph } from '../graph/index.js';
import { mulberry32 } from '../data/rng.js';

/** Kept weights of one prunable tensor. */
export interface TensorDensity {
  tensor: string;
  numel: number;
  kept: number;
}

/**
 * A layer-wise permutation of every mask (same density per tensor, positions random): the shuffled-mask control.
 * Tensors are visited in name order, each shuffled by Fisher–Yates from one seeded stream.
 */
export function shuffleMasks(g: Graph, seed: number): void {
  const rand = mulberry32((seed * 2654435761 + 12345) >>> 0);
  for (const name of [...g.masks.keys()].sort()) {
    const m = g.masks.get(name)!;
    const a = Float32Array.from(scope(() => m.to('float32').contiguous().data() as Float32Array));
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      const t = a[i]!;
      a[i] = a[j]!;
      a[j] = t;
    }
    const t = tensor(a, [...m.shape]);
    setMask(g, name, t);
    t.dispose();
  }
}

/** Per-tensor kept counts and bit-packed masks of every prunable parameter, in parameter order. */
export function maskSummary(g: Graph): {
  densities: TensorDensity[];
  packed: Map<string, Uint8Array>;
  achieved: number;
} {
  const densities: TensorDensity[] = [];
  const packed = new Map<string, Uint8Array>();
  let kept = 0;
  let total = 0;
  for (const p of g.params.values()) {
    if (!p.prunable) continue;
    const m = g.masks.get(p.name);
    const numel = p.tensor.numel;
    let k = numel;
    if (m) {
      const a = scope(() => m.to('float32').contiguous().data() as Float32Array);
      k = 0;
      for (let i = 0; i < a.length; i++) if (a[i] !== 0) k++;
      packed.set(p.name, packBits(a));
    }
    densities.push({ tensor: p.name, numel, kept: k });
    kept += k;
    total += numel;
  }
  return { densities, packed, achieved: total === 0 ? 0 : 1 - kept / total };
}
