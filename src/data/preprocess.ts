/**
 * Model preprocessing and batches. A model's zoo entry records its `Preprocess` (input size, value range,
 * optional per-channel mean/std); images are cached as uint8 at `size`, and the value mapping is applied
 * here, per batch, through a 256-entry table per channel:
 *   x = lo + (hi − lo) · pixel / 255,  then  (x − mean[c]) / std[c].
 */
import { tensor, type Tensor } from '../engine/index.js';
import { DataError } from './errors.js';
import type { ImageSet } from './load.js';
import { mulberry32, shuffled } from './rng.js';

export interface Preprocess {
  /** Input resolution [height, width]. */
  readonly size: readonly [number, number];
  /** Value range pixels 0..255 map to, e.g. [0, 1] or [-1, 1]. */
  readonly range: readonly [number, number];
  /** Per-channel mean subtracted after the range mapping (RGB order). */
  readonly mean?: readonly number[];
  /** Per-channel std divided by after the mean. */
  readonly std?: readonly number[];
  readonly channels: 3;
}

/** Throws a DataError naming the bad field. */
export function checkPreprocess(p: Preprocess): void {
  const bad = (field: string, why: string) =>
    new DataError(`preprocess.${field} ${why}`, {
      context: { preprocess: p },
      fix: 'use e.g. { size: [96, 96], range: [0, 1], channels: 3 }',
    });
  if (!Array.isArray(p.size) || p.size.length !== 2 || !p.size.every((x) => Number.isInteger(x) && x >= 1 && x <= 4096))
    throw bad('size', `must be [height, width] in 1..4096, got ${JSON.stringify(p.size)}`);
  if (!Array.isArray(p.range) || p.range.length !== 2 || !p.range.every(Number.isFinite) || !(p.range[0] < p.range[1]))
    throw bad('range', `must be [lo, hi] with lo < hi, got ${JSON.stringify(p.range)}`);
  if (p.channels !== 3) throw bad('channels', `must be 3, got ${String(p.channels)}`);
  if (p.mean !== undefined && (p.mean.length !== 3 || !p.mean.every(Number.isFinite)))
    throw bad('mean', `must hold 3 finite numbers, got ${JSON.stringify(p.mean)}`);
  if (p.std !== undefined && (p.std.length !== 3 || !p.std.every((s) => Number.isFinite(s) && s > 0)))
    throw bad('std', `must hold 3 positive numbers, got ${JSON.stringify(p.std)}`);
}

/** Per-channel lookup tables: pixel value → model input value. */
export function valueTables(p: Preprocess): Float32Array[] {
  const [lo, hi] = p.range;
  return [0, 1, 2].map((c) => {
    const m = p.mean?.[c] ?? 0;
    const s = p.std?.[c] ?? 1;
    const t = new Float32Array(256);
    for (let v = 0; v < 256; v++) t[v] = (lo + ((hi - lo) * v) / 255 - m) / s;
    return t;
  });
}

/** The images at `indices` of `set` as NCHW float32 values `[indices.length, 3, h, w]` in a JS array. */
export function imagesToArray(
  set: ImageSet,
  indices: ArrayLike<number>,
  p: Preprocess,
  tables = valueTables(p),
): Float32Array {
  checkFits(set, p);
  const hw = set.size[0] * set.size[1];
  const per = 3 * hw;
  const out = new Float32Array(indices.length * per);
  for (let j = 0; j < indices.length; j++) {
    const i = indices[j]!;
    if (!(i >= 0 && i < set.n))
      throw new DataError(`image index ${i} is out of range for ${set.task}/${set.split} (${set.n} images)`, {
        context: { index: i },
      });
    const src = set.images.subarray(i * per, (i + 1) * per);
    for (let c = 0; c < 3; c++) {
      const t = tables[c]!;
      const o = j * per + c * hw;
      for (let k = 0; k < hw; k++) out[o + k] = t[src[c * hw + k]!]!;
    }
  }
  return out;
}

/** The images at `indices` of `set` as one NCHW float32 tensor `[indices.length, 3, h, w]`. */
export function imagesToTensor(
  set: ImageSet,
  indices: ArrayLike<number>,
  p: Preprocess,
  tables = valueTables(p),
): Tensor {
  return tensor(imagesToArray(set, indices, p, tables), [indices.length, 3, set.size[0], set.size[1]]);
}

/** A batch as model input values in a JS array, for a runtime outside the engine (onnxruntime). */
export interface ArrayBatch {
  /** `[b, 3, h, w]` float32, row-major. */
  readonly x: Float32Array;
  readonly shape: readonly [number, number, number, number];
  /** Positions of the batch's images in the ImageSet. */
  readonly indices: Int32Array;
}

/** One pass over `set` in set order, each batch's input as a JS array (no engine tensor on the way). */
export function* arrayBatches(set: ImageSet, p: Preprocess, o: { batchSize?: number } = {}): Generator<ArrayBatch> {
  checkPreprocess(p);
  checkFits(set, p);
  const bs = o.batchSize ?? 32;
  if (!Number.isInteger(bs) || bs < 1)
    throw new DataError(`batchSize must be a positive integer, got ${bs}`, {
      context: { batchSize: bs },
      fix: 'pass e.g. batchSize: 32',
    });
  const tables = valueTables(p);
  for (let s = 0; s < set.n; s += bs) {
    const indices = Int32Array.from({ length: Math.min(bs, set.n - s) }, (_, j) => s + j);
    const shape = [indices.length, 3, set.size[0], set.size[1]] as const;
    yield { x: imagesToArray(set, indices, p, tables), shape, indices };
  }
}

export interface Batch {
  /** `[b, 3, h, w]` float32. */
  readonly x: Tensor;
  /** `[b]` int64 task labels. */
  readonly y: Tensor;
  /** Positions of the batch's images in the ImageSet. */
  readonly indices: Int32Array;
}

export interface BatchOptions {
  batchSize?: number;
  /** Shuffle the order with `seed` (default false: set order). */
  shuffle?: boolean;
  seed?: number;
  /** Drop a last, smaller batch (default false). */
  dropLast?: boolean;
}

/**
 * One epoch of batches over `set`. The caller owns each batch's tensors: dispose them (or run the loop body
 * in `scope`) before taking the next, so the live-tensor count stays flat.
 */
export function* batches(set: ImageSet, p: Preprocess, o: BatchOptions = {}): Generator<Batch> {
  checkPreprocess(p);
  checkFits(set, p);
  const bs = o.batchSize ?? 32;
  if (!Number.isInteger(bs) || bs < 1)
    throw new DataError(`batchSize must be a positive integer, got ${bs}`, {
      context: { batchSize: bs },
      fix: 'pass e.g. batchSize: 32',
    });
  const order = Array.from({ length: set.n }, (_, i) => i);
  const idx = o.shuffle ? shuffled(order, mulberry32(o.seed ?? 0)) : order;
  const tables = valueTables(p);
  for (let s = 0; s < idx.length; s += bs) {
    if (o.dropLast && s + bs > idx.length) break;
    const indices = Int32Array.from(idx.slice(s, s + bs));
    const y = tensor(
      BigInt64Array.from(indices, (i) => BigInt(set.labels[i]!)),
      [indices.length],
    );
    yield { x: imagesToTensor(set, indices, p, tables), y, indices };
  }
}

function checkFits(set: ImageSet, p: Preprocess): void {
  if (set.size[0] !== p.size[0] || set.size[1] !== p.size[1]) {
    throw new DataError(
      `${set.task}/${set.split} was loaded at ${set.size.join('x')}, the model expects ${p.size.join('x')}`,
      {
        context: { loaded: set.size, expected: p.size },
        fix: 'load the split at the preprocess size: loadSplit(task, split, preprocess.size)',
      },
    );
  }
}
