/**
 * Per-sample weight gradients in batch, BackPACK-style: for a layer y = W ⋆ x, the gradient of sample n's
 * loss is a product of that sample's layer input xₙ and output gradient δₙ = ∂ℓₙ/∂yₙ (linear: δₙᵀ xₙ; conv:
 * the correlation of xₙ with δₙ: one grouped convolution for depthwise layers, else strided slices, one per
 * kernel offset — an unfold made of engine ops). One forward and one backward to the layer outputs give every sample's gradient: no backward
 * per image. Valid only when samples do not interact (no train-mode BN): `checkMode` enforces that.
 *
 * One rule per IR op that multiplies a prunable weight; a prunable weight read anywhere else raises
 * `UnsupportedOpError` naming the estimator.
 */
import { grad, nn, noGrad, scope, stack, zeros, type Tensor } from '../engine/index.js';
import {
  convGeometry,
  forward,
  UnsupportedOpError,
  type Attrs,
  type Graph,
  type Mode,
  type Node,
} from '../graph/index.js';
import { checkLogits, lossDef, type CalibBatch, type LossName } from './loss.js';

export interface PerSampleRule {
  /** Per-sample gradients [N, ...weight] from the layer input x and output gradient d (both batched). */
  perSample(x: Tensor, d: Tensor, attrs: Attrs, w: readonly number[]): Tensor;
  /** Σₙ of their squares [...weight], without materialising [N, ...weight] where that is cheaper. */
  sumSquares(x: Tensor, d: Tensor, attrs: Attrs, w: readonly number[]): Tensor;
}

/**
 * Per kernel offset (i, j): the input pixels that offset multiplies, [N, Cin, Ho, Wo], against δ [N, Cout, Ho, Wo];
 * per group, Σ_pixels δ xᵀ gives [N, Cout, Cin/G]. `reduce` turns that into what the caller keeps.
 */
function convOffsets(x: Tensor, d: Tensor, a: Attrs, w: readonly number[], reduce: (r: Tensor) => Tensor): Tensor[] {
  const [cout, cinG, kh, kw] = [w[0]!, w[1]!, w[2]!, w[3]!];
  const { stride: s, dilation: dl, groups, pads: p } = convGeometry(x, a, w);
  const coutG = cout / groups;
  const [n, ho, wo] = [d.shape[0]!, d.shape[2]!, d.shape[3]!];
  const xp = p.some((v) => v !== 0) ? nn.pad(x, [p[1], p[3], p[0], p[2]]) : x;
  const dd = cinG === 1 && coutG === 1 ? d : d.reshape([n, groups, coutG, ho * wo]);
  const out: Tensor[] = [];
  for (let i = 0; i < kh; i++)
    for (let j = 0; j < kw; j++)
      out.push(
        scope(() => {
          const xs = xp
            .slice(2, i * dl[0], i * dl[0] + s[0] * (ho - 1) + 1, s[0])
            .slice(3, j * dl[1], j * dl[1] + s[1] * (wo - 1) + 1, s[1]);
          // Depthwise: one input and one output channel per group, so the "matmul" is a dot product per channel.
          const r =
            cinG === 1 && coutG === 1
              ? xs.mul(dd).sum([2, 3]).unsqueeze(2)
              : dd.matmul(xs.reshape([n, groups, cinG, ho * wo]).transpose(2, 3)).reshape([n, cout, cinG]);
          return reduce(r);
        }),
      );
  if (xp !== x) xp.dispose();
  if (dd !== d) dd.dispose();
  return out;
}

/**
 * Depthwise conv (one input and one output channel per group): every sample's kernel gradient in ONE grouped
 * convolution. The correlation of xₙ,c with δₙ,c is a conv of the padded input [1, N·C, H, W] with the output
 * gradients as N·C kernels [Ho, Wo], stride and dilation swapped; it yields at least kh × kw positions (more when
 * the forward stride skipped trailing pixels), of which the first kh × kw are the gradient. 3–4× faster than one
 * strided slice per kernel offset.
 */
function depthwisePerSample(x: Tensor, d: Tensor, a: Attrs, w: readonly number[]): Tensor {
  const [c, kh, kw] = [w[0]!, w[2]!, w[3]!];
  const { stride: s, dilation: dl, pads: p } = convGeometry(x, a, w);
  const [n, ho, wo] = [d.shape[0]!, d.shape[2]!, d.shape[3]!];
  const xp = p.some((v) => v !== 0) ? nn.pad(x, [p[1], p[3], p[0], p[2]]) : x;
  const r = nn.conv2d(xp.reshape([1, n * c, xp.shape[2]!, xp.shape[3]!]), d.reshape([n * c, 1, ho, wo]), null, {
    stride: [dl[0], dl[1]],
    dilation: [s[0], s[1]],
    groups: n * c,
  });
  return r.narrow(2, 0, kh).narrow(3, 0, kw).reshape([n, c, 1, kh, kw]);
}

const isDepthwise = (a: Attrs, w: readonly number[]): boolean =>
  w[1] === 1 && typeof a.groups === 'number' && a.groups === w[0];

const conv2d: PerSampleRule = {
  perSample: (x, d, a, w) =>
    scope(() =>
      isDepthwise(a, w)
        ? depthwisePerSample(x, d, a, w)
        : stack(
            convOffsets(x, d, a, w, (r) => r),
            3,
          ).reshape([d.shape[0]!, ...w]),
    ),
  sumSquares: (x, d, a, w) =>
    scope(() =>
      isDepthwise(a, w)
        ? depthwisePerSample(x, d, a, w).square().sum(0)
        : stack(
            convOffsets(x, d, a, w, (r) => r.mul_(r).sum(0)),
            2,
          ).reshape(w),
    ),
};

/** x [N, ..., in], d [N, ..., out] → per sample Σ over the middle dims of δ xᵀ. */
const linear: PerSampleRule = {
  perSample: (x, d) =>
    scope(() => {
      if (x.ndim === 2) return d.unsqueeze(2).mul(x.unsqueeze(1));
      const n = x.shape[0]!;
      return d
        .reshape([n, -1, d.shape[d.ndim - 1]!])
        .transpose(1, 2)
        .bmm(x.reshape([n, -1, x.shape[x.ndim - 1]!]));
    }),
  // 2-D input: Σₙ (δₙ xₙᵀ)² = (δ²)ᵀ (x²) elementwise, one matmul.
  sumSquares: (x, d, a, w) =>
    scope(() => (x.ndim === 2 ? d.square().t().mm(x.square()) : linear.perSample(x, d, a, w).square().sum(0))),
};

export const PER_SAMPLE_RULES: Readonly<Record<string, PerSampleRule>> = { conv2d, linear };

/** Where a prunable weight enters the forward: the node, its input value and its output value. */
export interface Site {
  readonly node: Node;
  readonly input: string;
  readonly output: string;
}

/** The sites of each parameter; throws UnsupportedOpError for a use no rule covers. */
export function findSites(g: Graph, params: readonly string[], estimator: string): Map<string, Site[]> {
  const want = new Set(params);
  const sites = new Map<string, Site[]>(params.map((p) => [p, []]));
  for (const node of g.nodes)
    node.inputs.forEach((v, k) => {
      if (!want.has(v)) return;
      if (!(node.op in PER_SAMPLE_RULES) || k !== 1)
        throw new UnsupportedOpError(
          node.op,
          node.name,
          Object.keys(PER_SAMPLE_RULES),
          `${estimator} (per-sample gradients of '${v}')`,
        );
      sites.get(v)!.push({ node, input: node.inputs[0]!, output: node.outputs[0]! });
    });
  return sites;
}

/** How backward passes are seeded at the logits: ∂ℓₙ/∂f (empirical Fisher), columns of √H (exact GGN), or one sample (MC GGN). */
export type Seeds = 'grad' | 'sqrt-hessian' | 'mc';

export interface FactorPass {
  loss: LossName;
  mode: Mode;
  seeds: Seeds;
  /** Σₙ G² per parameter (cheap) or the per-sample gradients G [N, ...w] themselves. */
  want: 'sumSquares' | 'perSample';
}

/**
 * One batch: forward once, then one backward to the layer outputs per seed, and `visit(param, t)` with either
 * Σₙ Gₙ² or the per-sample gradients Gₙ of each parameter (masked: a pruned weight gets 0). Returns the number of
 * backward passes. Tensors passed to `visit` are freed after it returns.
 */
export function factorPass(
  g: Graph,
  batch: CalibBatch,
  sites: ReadonlyMap<string, readonly Site[]>,
  o: FactorPass,
  visit: (param: string, t: Tensor) => void,
): number {
  return scope(() => {
    const all = [...sites.values()].flat();
    const inputs = [...new Set(all.map((s) => s.input))];
    const outputs = [...new Set(all.map((s) => s.output))];
    const r = forward(g, batch.x, { mode: o.mode, taps: [...inputs, ...outputs] });
    const logits = r.outputs[0]!;
    checkLogits(g, logits, batch.y);
    const def = lossDef(o.loss);
    const outT = outputs.map((v) => r.taps.get(v)!);
    const seeds: ((last: boolean) => (Tensor | null)[])[] = [];
    if (o.seeds === 'grad') {
      seeds.push((last) => grad(def.perSample(logits, batch.y).sum(), outT, { allowUnused: true, retainGraph: !last }));
    } else {
      const s = o.seeds === 'mc' ? def.sampleSqrt(logits).unsqueeze(2) : def.sqrtHessian(logits);
      for (let c = 0; c < s.shape[2]!; c++)
        seeds.push((last) =>
          grad(logits, outT, { gradOutputs: [s.index(2, c)], allowUnused: true, retainGraph: !last }),
        );
    }
    seeds.forEach((run, k) =>
      scope(() => {
        const ds = run(k === seeds.length - 1);
        const delta = new Map(outputs.map((v, i) => [v, ds[i]]));
        noGrad(() => {
          for (const [param, ss] of sites) {
            const w = g.params.get(param)!.tensor.shape;
            const mask = g.masks.get(param);
            scope(() => {
              const live = ss.filter((s) => delta.get(s.output));
              let t: Tensor;
              if (live.length === 0)
                t = o.want === 'sumSquares' ? zerosOf(w, logits) : zerosOf([logits.shape[0]!, ...w], logits);
              else if (live.length === 1 && o.want === 'sumSquares')
                t = rule(live[0]!).sumSquares(
                  r.taps.get(live[0]!.input)!,
                  delta.get(live[0]!.output)!,
                  live[0]!.node.attrs,
                  w,
                );
              else {
                // Several uses of one weight: per-sample gradients add up before squaring.
                t = live
                  .map((s) => rule(s).perSample(r.taps.get(s.input)!, delta.get(s.output)!, s.node.attrs, w))
                  .reduce((a, b) => a.add(b));
                if (o.want === 'sumSquares') t = t.square().sum(0);
              }
              if (mask) t = t.mul(mask);
              visit(param, t);
            });
          }
        });
      }),
    );
    return seeds.length;
  });
}

const rule = (s: Site): PerSampleRule => PER_SAMPLE_RULES[s.node.op]!;
const zerosOf = (shape: readonly number[], like: Tensor): Tensor =>
  zeros(shape, { dtype: like.dtype, device: like.device });
