/**
 * Simple training augmentation on model-ready NCHW batches: random crop after zero padding, and horizontal flip.
 * Randomness comes from a seeded JS generator (not the engine's global one), so an epoch's augmentation depends
 * only on (seed, epoch, batch) and a resumed run draws exactly what the uninterrupted run drew.
 */
import { cat, nn, scope, type Tensor } from '../engine/index.js';
import { mulberry32 } from '../data/rng.js';

export interface AugmentOptions {
  /** Zero padding on each side before the random crop back to the input size (0: no crop). */
  pad?: number;
  /** Flip each image left-right with probability 1/2. */
  flip?: boolean;
}

/** mulberry32 seeded by a 32-bit mix of the given integers. */
export function seededRandom(...keys: number[]): () => number {
  let a = 0x9e3779b9;
  for (const k of keys) a = Math.imul(a ^ (k >>> 0), 0x85ebca6b) ^ (a >>> 13);
  return mulberry32(a >>> 0);
}

/** A new augmented batch (the input is not modified). */
export function augmentBatch(x: Tensor, o: AugmentOptions, rand: () => number): Tensor {
  const pad = o.pad ?? 0;
  const flip = o.flip ?? false;
  const [n, , h, w] = x.shape as [number, number, number, number];
  return scope(() => {
    const padded = pad > 0 ? nn.pad(x, [pad, pad, pad, pad]) : x;
    const items: Tensor[] = [];
    for (let i = 0; i < n; i++) {
      const dy = pad > 0 ? Math.floor(rand() * (2 * pad + 1)) : 0;
      const dx = pad > 0 ? Math.floor(rand() * (2 * pad + 1)) : 0;
      let xi = padded.narrow(0, i, 1).narrow(2, dy, h).narrow(3, dx, w);
      if (flip && rand() < 0.5) xi = xi.flip(3);
      items.push(xi);
    }
    return cat(items, 0).contiguous();
  });
}
