/**
 * Brute-force float64 references for the estimator and score tests: explicit per-sample loops, Jacobians built
 * row by row, the loss Hessian in the logits by double backward, and the exact Hessian of the mean loss over the
 * prunable parameters from one HVP per coordinate. Slow on purpose; tiny nets only.
 */
import {
  cat,
  enableGrad,
  grad,
  gradStrict,
  hvp,
  nn,
  noGrad,
  scope,
  tensor,
  zeros,
  type Tensor,
} from '../../src/engine/index.js';
import { forward, prunableParams, type Graph } from '../../src/graph/index.js';
import { lossDef, lossFn, type CalibBatch, type LossName } from '../../src/prune/loss.js';

export const names = (g: Graph): string[] => prunableParams(g).map((p) => p.name);
export const tensors = (g: Graph, ns: string[]): Tensor[] => ns.map((n) => g.params.get(n)!.tensor);

/** Concatenated flat values of a ParamMap in `ns` order. */
export function flat(m: ReadonlyMap<string, Tensor>, ns: string[]): number[] {
  return ns.flatMap((n) => m.get(n)!.toArray());
}

function samples(batches: readonly CalibBatch[]): CalibBatch[] {
  const out: CalibBatch[] = [];
  for (const b of batches)
    for (let i = 0; i < b.x.shape[0]!; i++) out.push({ x: b.x.narrow(0, i, 1), y: b.y.narrow(0, i, 1) });
  return out;
}

/** ∂ℓₙ/∂θ for each sample n, one backward per image (flattened over `ns`). */
export function perSampleGrads(g: Graph, batches: readonly CalibBatch[], loss: LossName, ns: string[]): number[][] {
  return scope(() =>
    samples(batches).map((s) =>
      scope(() => {
        const { loss: l } = lossFn(g, s, { loss, mode: 'eval-bn' });
        const gs = gradStrict(l, tensors(g, ns));
        return noGrad(() =>
          gs.map((t, i) => {
            const m = g.masks.get(ns[i]!);
            return m ? t.mul(m) : t;
          }),
        ).flatMap((t) => t.toArray());
      }),
    ),
  );
}

/** Per sample: the Jacobian of the logits [C][P] (C backward passes) and the loss Hessian in the logits [C][C]. */
export function jacobiansAndLossHessians(
  g: Graph,
  batches: readonly CalibBatch[],
  loss: LossName,
  ns: string[],
): { J: number[][]; H: number[][] }[] {
  return scope(() =>
    samples(batches).map((s) =>
      scope(() => {
        const f = forward(g, s.x, { mode: 'eval-bn' }).outputs[0]!;
        const C = f.shape[1]!;
        const J: number[][] = [];
        for (let c = 0; c < C; c++) {
          const gs = gradStrict(f.index(1, c).sum(), tensors(g, ns), { retainGraph: true });
          J.push(
            gs.flatMap((t, i) => {
              const m = g.masks.get(ns[i]!);
              return (m ? t.mul(m) : t).toArray();
            }),
          );
        }
        const z = f.detach().requiresGrad_(true);
        const H = enableGrad(() => {
          const l = lossDef(loss).perSample(z, s.y).sum();
          const [gz] = gradStrict(l, [z], { createGraph: true });
          return Array.from({ length: C }, (_, c) =>
            gradStrict(gz!.index(1, c).sum(), [z], { retainGraph: true })[0]!.toArray(),
          );
        });
        return { J, H };
      }),
    ),
  );
}

/** diag((1/N) Σₙ Jₙᵀ Hₙ Jₙ), built explicitly. */
export function exactGgnDiag(g: Graph, batches: readonly CalibBatch[], loss: LossName, ns: string[]): number[] {
  const per = jacobiansAndLossHessians(g, batches, loss, ns);
  const P = per[0]!.J[0]!.length;
  const out = new Array<number>(P).fill(0);
  for (const { J, H } of per)
    for (let p = 0; p < P; p++) {
      let s = 0;
      for (let a = 0; a < J.length; a++) for (let b = 0; b < J.length; b++) s += J[a]![p]! * H[a]![b]! * J[b]![p]!;
      out[p]! += s / per.length;
    }
  return out;
}

/** The mean loss over all batches (weighted by batch size), as a function for hvp. */
export function meanLoss(g: Graph, batches: readonly CalibBatch[], loss: LossName): () => Tensor {
  const n = batches.reduce((a, b) => a + b.x.shape[0]!, 0);
  return () =>
    batches.map((b) => lossFn(g, b, { loss, mode: 'eval-bn' }).loss.mul(b.x.shape[0]! / n)).reduce((a, b) => a.add(b));
}

/** The exact Hessian of the mean loss over `ns` [P][P], one HVP per unit vector (double backward). */
export function exactHessian(g: Graph, batches: readonly CalibBatch[], loss: LossName, ns: string[]): number[][] {
  const ps = tensors(g, ns);
  const sizes = ps.map((p) => p.numel);
  const P = sizes.reduce((a, b) => a + b, 0);
  const f = meanLoss(g, batches, loss);
  return Array.from({ length: P }, (_, i) =>
    scope(() => {
      const e = zeros([P], { dtype: 'float64' });
      e.index(0, i).fill_(1);
      const vs = e.split(sizes).map((t, k) => t.reshape(ps[k]!.shape));
      return cat(hvp(f, ps, vs).hv.map((t) => t.flatten())).toArray();
    }),
  );
}

/** The mean-loss gradient over `ns`, flattened. */
export function meanGrad(g: Graph, batches: readonly CalibBatch[], loss: LossName, ns: string[]): number[] {
  return scope(() => gradStrict(meanLoss(g, batches, loss)(), tensors(g, ns)).flatMap((t) => t.toArray()));
}

export { grad, nn, tensor };
