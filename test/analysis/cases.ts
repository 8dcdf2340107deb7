/**
 * Tiny float64 problems for the analysis tests, with brute-force references: the exact Hessian by double
 * backward over every coordinate (grad of each gradient entry), independent of the engine's `hvp`.
 */
import {
  cat,
  grad,
  linalg,
  manualSeed,
  ones,
  randint,
  randn,
  scope,
  tensor,
  zeros,
  type Tensor,
} from '../../src/engine/index.js';
import { makeParam, type Graph, type Node } from '../../src/graph/index.js';
import { batchLoss, countImages, type LabelledBatch, type LossName } from '../../src/analysis/loss.js';

const node = (name: string, op: string, inputs: string[], attrs: Node['attrs'] = {}, outputs = [name]): Node => ({
  name,
  op,
  inputs,
  outputs,
  attrs,
});

/** conv(2→3, 3×3) → BN → tanh → GAP → linear(3→4), float64, smooth so every Hessian entry is well defined. */
export function tinyNet(seed = 1, o: { dropout?: number } = {}): Graph {
  manualSeed(seed);
  const f64 = { dtype: 'float64' as const };
  const params = [
    makeParam('conv.weight', randn([3, 2, 3, 3], f64).mul(0.5), 'weight'),
    makeParam('bn.weight', ones([3], f64), 'norm'),
    makeParam('bn.bias', randn([3], f64).mul(0.1), 'norm'),
    makeParam('bn.running_mean', randn([3], f64).mul(0.1), 'buffer'),
    makeParam('bn.running_var', ones([3], f64).mul(1.5), 'buffer'),
    makeParam('fc.weight', randn([4, 3], f64), 'weight'),
    makeParam('fc.bias', zeros([4], f64), 'bias'),
  ];
  const nodes = [
    node('conv', 'conv2d', ['x', 'conv.weight'], { padding: 1 }),
    node('bn', 'batchnorm', ['conv', 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var']),
    node('act', 'tanh', ['bn']),
    node('gap', 'globalavgpool', ['act']),
    node('feat', 'flatten', ['gap']),
    ...(o.dropout ? [node('drop', 'dropout', ['feat'], { p: o.dropout })] : []),
    node('logits', 'linear', [o.dropout ? 'drop' : 'feat', 'fc.weight', 'fc.bias']),
  ];
  return {
    name: 'tiny',
    inputs: [{ name: 'x', shape: [null, 2, null, null] }],
    outputs: ['logits'],
    nodes,
    params: new Map(params.map((p) => [p.name, p])),
    constants: new Map(),
    masks: new Map(),
    featureTap: 'feat',
    preprocessing: { size: [4, 4], range: [0, 1] },
    meta: {},
  };
}

/** Seeded batches of `[b, 2, 4, 4]` images with labels in 0..3 (sizes may differ per batch). */
export function tinyBatches(seed: number, sizes: readonly number[]): LabelledBatch[] {
  manualSeed(seed);
  return sizes.map((b) => ({ x: randn([b, 2, 4, 4], { dtype: 'float64' }), y: randint(0, 4, [b]) }));
}

/** The exact Hessian of the mean loss w.r.t. `names`, `[dim, dim]`, by grad of each gradient entry. */
export function exactHessian(
  g: Graph,
  loss: LossName,
  batches: readonly LabelledBatch[],
  names: readonly string[],
): Tensor {
  const ps = names.map((n) => g.params.get(n)!.tensor);
  const n = countImages(batches);
  return scope(() => {
    let H: Tensor | null = null;
    for (const b of batches) {
      const l = batchLoss(g, loss, b, 'eval-bn', 1 / n);
      const gs = grad(l, ps, { createGraph: true }) as Tensor[];
      const flat = cat(
        gs.map((t) => t.reshape([-1])),
        0,
      );
      const dim = flat.shape[0]!;
      const rows: Tensor[] = [];
      for (let j = 0; j < dim; j++) {
        const hs = grad(flat.index(0, j), ps, { retainGraph: true, allowUnused: true });
        rows.push(
          cat(
            hs.map((t, i) => (t ?? zeros(ps[i]!.shape, { dtype: 'float64' })).reshape([-1])),
            0,
          ).reshape([1, dim]),
        );
      }
      const Hb = cat(rows, 0);
      H = H === null ? Hb : H.add(Hb);
    }
    return H!.add(H!.t()).div(2);
  });
}

/** A random symmetric matrix with the given eigenvalues (Q diag(λ) Qᵀ, Q from QR of a Gaussian). */
export function symmetricWithSpectrum(values: readonly number[], seed: number): { matrix: Tensor; vectors: Tensor } {
  manualSeed(seed);
  return scope(() => {
    const n = values.length;
    const q = linalg.qr(randn([n, n], { dtype: 'float64' })).q;
    const d = tensor(values as number[], [n], { dtype: 'float64' });
    return { matrix: q.mul(d.reshape([1, n])).matmul(q.t()), vectors: q.t().contiguous() };
  });
}
