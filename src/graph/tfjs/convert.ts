/** Layout conversions shared by the TF.js importers: TF (NHWC, HWIO) → tapir (NCHW, OIHW), once, at import. */
import { noGrad, tensor, type Tensor } from '../../engine/index.js';
import { ModelFormatError } from '../errors.js';
import type { DecodedWeight } from './artifacts.js';

/** NHWC axis → NCHW axis for 4-D activations. */
export const nhwcAxis = (axis: number, rank: number): number => {
  const a = axis < 0 ? axis + rank : axis;
  return rank === 4 ? [0, 2, 3, 1][a]! : a;
};

/** Engine tensor from a decoded weight, permuted (and reshaped) to tapir's layout. */
export function weightTensor(w: DecodedWeight, perm?: readonly number[], reshape?: readonly number[]): Tensor {
  return noGrad(() => {
    const t = tensor(w.values, w.shape);
    if (!perm && !reshape) return t;
    const p = perm ? t.permute(perm) : t;
    const c = reshape ? p.reshape(reshape) : p.contiguous();
    if (p !== t) p.dispose();
    t.dispose();
    return c;
  });
}

/** HWIO conv kernel → OIHW. */
export const convKernel = (w: DecodedWeight): Tensor => weightTensor(w, [3, 2, 0, 1]);
/** TF depthwise kernel [kh, kw, in, mult] → grouped conv weight [in·mult, 1, kh, kw] (output channel i·mult + m, as TF). */
export const depthwiseKernel = (w: DecodedWeight): Tensor => {
  const [kh, kw, cin, mult] = w.shape as [number, number, number, number];
  return weightTensor(w, [2, 3, 0, 1], [cin * mult, 1, kh, kw]);
};
/** Dense kernel [in, out] → linear weight [out, in]. */
export const denseKernel = (w: DecodedWeight): Tensor => weightTensor(w, [1, 0]);

/** Looks weights up by `<layer>/<key>` (TF.js names, with or without a ':0' suffix or a scope prefix). */
export class WeightIndex {
  private readonly byName = new Map<string, DecodedWeight>();
  constructor(
    weights: ReadonlyMap<string, DecodedWeight>,
    private readonly file: string,
  ) {
    for (const [k, v] of weights) this.byName.set(k.replace(/:0$/, ''), v);
  }
  has(name: string): boolean {
    return this.find(name) !== undefined;
  }
  private find(name: string): DecodedWeight | undefined {
    const direct = this.byName.get(name);
    if (direct) return direct;
    for (const [k, v] of this.byName) if (k.endsWith(`/${name}`)) return v;
    return undefined;
  }
  get(name: string, expectRank?: number): DecodedWeight {
    const w = this.find(name);
    if (!w)
      throw new ModelFormatError(`${this.file}: weight '${name}' is missing from the weights manifest`, {
        context: { file: this.file, weight: name },
        fix: 'the topology and the weight shards do not belong together; re-export the model',
      });
    if (expectRank !== undefined && w.shape.length !== expectRank)
      throw new ModelFormatError(
        `${this.file}: weight '${name}' has shape [${w.shape.join(', ')}], expected rank ${expectRank}`,
        { context: { file: this.file, weight: name } },
      );
    return w;
  }
}
