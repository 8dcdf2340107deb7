/**
 * Seeded probe vectors. Generated in JS (mulberry32) rather than by libtorch's global generator, so an
 * estimate depends only on its own seed, not on what else ran before it in the process.
 */
import { tensor, TapirError, type DType, type Tensor } from '../engine/index.js';

/** The same seeded generator the data layer's splits use (one implementation). */
export { mulberry32 } from '../data/rng.js';

export function checkSeed(seed: number, where: string): void {
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new TapirError('E_CONFIG', `${where}: seed must be a non-negative integer, got ${seed}`, {
      context: { seed },
      fix: 'pass e.g. seed: 0',
    });
}

export function checkCount(n: number, name: string, where: string, min = 1): void {
  if (!Number.isInteger(n) || n < min)
    throw new TapirError('E_CONFIG', `${where}: ${name} must be an integer >= ${min}, got ${n}`, {
      context: { [name]: n },
      fix: `pass ${name} >= ${min}`,
    });
}

/** A Rademacher vector (entries ±1 with equal probability). */
export function rademacher(dim: number, rand: () => number, dtype: DType): Tensor {
  const a = new Float32Array(dim);
  // One 32-bit draw gives 32 signs.
  for (let i = 0; i < dim; i += 32) {
    const bits = (rand() * 4294967296) >>> 0;
    const n = Math.min(32, dim - i);
    for (let k = 0; k < n; k++) a[i + k] = (bits >>> k) & 1 ? 1 : -1;
  }
  const t = tensor(a, [dim]);
  if (dtype === 'float32') return t;
  const c = t.to(dtype);
  t.dispose();
  return c;
}
