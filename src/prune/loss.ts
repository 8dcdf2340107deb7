/**
 * Losses over a graph's logits, as the scores and estimators see them. Both are means over the batch of a
 * per-sample loss ℓₙ, so every curvature estimate is one of the same mean loss L = (1/N) Σₙ ℓₙ:
 *
 * - `mse`: ℓₙ = (1/C) Σ_c (f_c − y_c)² against one-hot targets y (torch `F.mse_loss(f, one_hot)`, mean over N·C:
 *   the authors' harness). ∂²ℓₙ/∂f² = (2/C) I.
 * - `ce`: ℓₙ = −log softmax(f)_{yₙ}. ∂²ℓₙ/∂f² = diag(p) − p pᵀ, p = softmax(f).
 *
 * Each loss also gives a square root S of its Hessian in f (S Sᵀ = ∂²ℓ/∂f², one column per backward pass of the
 * exact GGN) and a random seed s with E[s sᵀ] = ∂²ℓ/∂f² (the 1-sample Monte-Carlo GGN).
 */
import { nn, rand, randint, scope, ShapeError, tensor, type Tensor } from '../engine/index.js';
import { forward, graphDtype, type Graph, type Mode } from '../graph/index.js';
import { PruneError } from './errors.js';

export type LossName = 'mse' | 'ce';
export const LOSS_NAMES: readonly LossName[] = ['mse', 'ce'];

/** One calibration batch: images NCHW and int64 labels (structurally a `data.Batch`). */
export interface CalibBatch {
  readonly x: Tensor;
  readonly y: Tensor;
}

export interface LossDef {
  /** ℓₙ for every sample: [N]. logits [N, C], y [N] int64. */
  perSample(logits: Tensor, y: Tensor): Tensor;
  /** S with S Sᵀ = ∂²ℓₙ/∂f², as [N, C, C]; column c seeds the c-th backward pass. */
  sqrtHessian(logits: Tensor): Tensor;
  /** A random seed s [N, C] with E[s sᵀ] = ∂²ℓₙ/∂f² (call manualSeed first for reproducibility). */
  sampleSqrt(logits: Tensor): Tensor;
}

const mse: LossDef = {
  perSample: (f, y) => scope(() => nn.oneHot(y, f.shape[1]!).to(f.dtype).sub(f).square().mean(1)),
  sqrtHessian: (f) =>
    scope(() => {
      const [n, c] = [f.shape[0]!, f.shape[1]!];
      return nn
        .oneHot(
          tensor(
            BigInt64Array.from({ length: c }, (_, i) => BigInt(i)),
            [c],
          ),
          c,
        )
        .to(f.dtype)
        .mul(Math.sqrt(2 / c))
        .unsqueeze(0)
        .expand([n, c, c])
        .contiguous();
    }),
  // Rademacher v: E[(√(2/C) v)(√(2/C) v)ᵀ] = (2/C) I.
  sampleSqrt: (f) =>
    scope(() =>
      randint(0, 2, f.shape)
        .to(f.dtype)
        .mul(2)
        .sub(1)
        .mul(Math.sqrt(2 / f.shape[1]!)),
    ),
};

const ce: LossDef = {
  perSample: (f, y) => nn.crossEntropy(f, y, { reduction: 'none' }),
  // BackPACK's factor: column c = √p_c (e_c − p), so Σ_c p_c (e_c − p)(e_c − p)ᵀ = diag(p) − p pᵀ.
  sqrtHessian: (f) =>
    scope(() => {
      const c = f.shape[1]!;
      const p = nn.softmax(f.detach(), 1);
      const eye = nn
        .oneHot(
          tensor(
            BigInt64Array.from({ length: c }, (_, i) => BigInt(i)),
            [c],
          ),
          c,
        )
        .to(f.dtype);
      const diff = eye.unsqueeze(0).sub(p.unsqueeze(1)); // [N, c(col), C]: e_c − p
      return diff.mul(p.sqrt().unsqueeze(2)).transpose(1, 2).contiguous(); // [N, C(row), c(col)]
    }),
  // ŷ ~ Categorical(p): s = p − e_ŷ, E[s sᵀ] = diag(p) − p pᵀ.
  sampleSqrt: (f) =>
    scope(() => {
      const p = nn.softmax(f.detach(), 1);
      const u = rand([f.shape[0]!, 1], { dtype: f.dtype });
      const cls = p
        .cumsum(1)
        .lt(u)
        .sum(1)
        .clamp(null, f.shape[1]! - 1)
        .to('int64');
      return p.sub(nn.oneHot(cls, f.shape[1]!).to(f.dtype));
    }),
};

export const LOSSES: Readonly<Record<LossName, LossDef>> = { mse, ce };

export function lossDef(name: string): LossDef {
  if (!Object.prototype.hasOwnProperty.call(LOSSES, name))
    throw new PruneError(`unknown loss '${name}'`, {
      context: { loss: name },
      fix: `use one of: ${LOSS_NAMES.join(', ')}`,
    });
  return LOSSES[name as LossName];
}

/** Checks the logits are [N, C] and every label is a class index below C. */
export function checkLogits(g: Graph, logits: Tensor, y: Tensor): void {
  if (logits.ndim !== 2)
    throw new ShapeError(
      `graph '${g.name}': output '${g.outputs[0]}' must be logits [N, C] for a loss, got [${logits.shape.join(', ')}]`,
    );
  const c = logits.shape[1]!;
  const maxLabel = scope(() => y.max().item());
  if (y.shape[0] !== logits.shape[0] || maxLabel >= c || scope(() => y.min().item()) < 0)
    throw new PruneError(
      `labels must be ${logits.shape[0]} class indices in [0, ${c}) for the ${c} outputs of '${g.name}', got [${y.shape.join(', ')}] with max ${maxLabel}`,
      {
        context: { classes: c, maxLabel },
        fix: 'use a task with at most as many classes as the model has outputs, or attach a matching head',
      },
    );
}

/**
 * The mean loss over one batch through the real interpreter, plus the logits and any taps asked for.
 * `mode` defaults to `eval-bn` (BN running statistics, autograd recorded).
 */
export function lossFn(
  g: Graph,
  batch: CalibBatch,
  o: { loss: LossName; mode?: Mode; taps?: readonly string[] },
): { loss: Tensor; logits: Tensor; taps: Map<string, Tensor> } {
  // Images come as float32; a float64 graph (exact-answer tests) takes them in its own dtype.
  const dtype = graphDtype(g);
  const x = batch.x.dtype === dtype ? batch.x : batch.x.to(dtype);
  const r = forward(g, x, { mode: o.mode ?? 'eval-bn', taps: o.taps });
  if (x !== batch.x) x.dispose();
  const logits = r.outputs[0]!;
  checkLogits(g, logits, batch.y);
  const per = lossDef(o.loss).perSample(logits, batch.y);
  const loss = per.mean();
  per.dispose();
  return { loss, logits, taps: r.taps };
}
