/**
 * ONNX Resize (nearest and linear) over the last two axes, composed from index_select and a lerp, so every ONNX
 * coordinate transformation and nearest rounding mode is reproduced exactly (ATen's interpolate kernels implement
 * only some of them) and gradients come from the engine. Source coordinates follow the ONNX spec (opset 11–19):
 *
 *   half_pixel          x = (o + 0.5) / s − 0.5
 *   pytorch_half_pixel  x = out > 1 ? (o + 0.5) / s − 0.5 : 0        (torch's align_corners=False export)
 *   align_corners       x = out > 1 ? o (in − 1) / (out − 1) : 0
 *   asymmetric          x = o / s                                    (torch's nearest export)
 *
 * with s = scale (or out / in when sizes are given). Linear clamps x to [0, in − 1], as onnxruntime does.
 */
import { scope, ShapeError, tensor, type Tensor } from '../engine/index.js';

export type ResizeMode = 'nearest' | 'linear';
export const COORD_MODES = ['half_pixel', 'pytorch_half_pixel', 'align_corners', 'asymmetric'] as const;
export type CoordMode = (typeof COORD_MODES)[number];
export const NEAREST_MODES = ['round_prefer_floor', 'round_prefer_ceil', 'floor', 'ceil'] as const;
export type NearestMode = (typeof NEAREST_MODES)[number];

export interface ResizeSpec {
  mode: ResizeMode;
  coord: CoordMode;
  nearest: NearestMode;
  /** Output size of the last two axes, or ... */
  sizes?: readonly number[];
  /** ... their scale factors (output = floor(in · scale)). */
  scales?: readonly number[];
}

function source(o: number, inN: number, outN: number, s: number, coord: CoordMode): number {
  switch (coord) {
    case 'half_pixel':
      return (o + 0.5) / s - 0.5;
    case 'pytorch_half_pixel':
      return outN > 1 ? (o + 0.5) / s - 0.5 : 0;
    case 'align_corners':
      return outN > 1 ? (o * (inN - 1)) / (outN - 1) : 0;
    case 'asymmetric':
      return o / s;
  }
}

function roundNearest(x: number, m: NearestMode): number {
  switch (m) {
    case 'floor':
      return Math.floor(x);
    case 'ceil':
      return Math.ceil(x);
    case 'round_prefer_floor':
      return Math.ceil(x - 0.5);
    case 'round_prefer_ceil':
      return Math.floor(x + 0.5);
  }
}

const i64 = (v: readonly number[]) =>
  tensor(
    BigInt64Array.from(v, (x) => BigInt(x)),
    [v.length],
    { dtype: 'int64' },
  );

/** Resizes axis `axis` of x from its size to `outN`. */
function resizeAxis(x: Tensor, axis: number, outN: number, scale: number, r: ResizeSpec): Tensor {
  const inN = x.shape[axis]!;
  if (outN === inN && scale === 1) return x;
  const clampI = (i: number) => Math.min(Math.max(i, 0), inN - 1);
  const src = Array.from({ length: outN }, (_, o) => source(o, inN, outN, scale, r.coord));
  if (r.mode === 'nearest') return x.indexSelect(axis, i64(src.map((v) => clampI(roundNearest(v, r.nearest)))));
  const c = src.map((v) => Math.min(Math.max(v, 0), inN - 1));
  const lo = c.map(Math.floor);
  const hi = lo.map((i) => clampI(i + 1));
  const shape = x.shape.map((_, d) => (d === axis ? outN : 1));
  const w = tensor(
    Float64Array.from(c, (v, k) => v - lo[k]!),
    shape,
    { dtype: x.dtype },
  );
  const a = x.indexSelect(axis, i64(lo));
  const b = x.indexSelect(axis, i64(hi));
  return a.add(b.sub(a).mul(w));
}

/** x [..., H, W] → [..., H', W']. */
export function resize(x: Tensor, r: ResizeSpec): Tensor {
  if (x.ndim < 2) throw new ShapeError(`resize: input must have at least 2 dims, got [${x.shape.join(', ')}]`);
  return scope(() => {
    let y = x;
    for (const k of [0, 1]) {
      const axis = x.ndim - 2 + k;
      const inN = x.shape[axis]!;
      let outN: number;
      let s: number;
      if (r.sizes) {
        outN = r.sizes[k]!;
        s = outN / inN;
      } else if (r.scales) {
        s = r.scales[k]!;
        outN = Math.floor(inN * s);
      } else throw new ShapeError('resize: needs sizes or scales');
      if (!(outN > 0)) throw new ShapeError(`resize: output size ${outN} along axis ${axis} (input ${inN})`);
      y = resizeAxis(y, axis, outN, s, r);
    }
    return y === x ? x.clone() : y;
  });
}
