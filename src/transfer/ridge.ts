/**
 * Closed-form, class-balanced ridge heads on frozen features (the zero-shot transfer probe, docs/TRANSFER.md).
 *
 * Features are standardised with given statistics (by default their own; for the paper's zero-shot protocol, the
 * DENSE model's statistics on the task's training split, so `alpha` means the same for every model and a head fitted on
 * dense features can be attached to a pruned backbone). With X = [standardised features, 1], one-hot targets Y and
 * per-sample weights ω (class-balanced: ωₙ = N / (C · N_class(n))), the head solves, in float64,
 *     (Xᵀ Ω X + α I₀) Θ = Xᵀ Ω Y,        I₀ = identity with 0 on the bias row (the bias is not shrunk).
 */
import { cat, linalg, nn, noGrad, scope, ShapeError, TapirError, tensor, type Tensor } from '../engine/index.js';

export interface FeatureStats {
  /** [D] float64 */
  readonly mean: Tensor;
  /** [D] float64, floored so constant features do not blow up */
  readonly std: Tensor;
}

export interface RidgeHead {
  /** [C, D] float64, applied to standardised features */
  readonly weight: Tensor;
  /** [C] float64 */
  readonly bias: Tensor;
  readonly stats: FeatureStats;
  readonly alpha: number;
  readonly numClasses: number;
}

export interface RidgeOptions {
  numClasses: number;
  /** L2 penalty on standardised features (default 1). */
  alpha?: number;
  /** Standardisation statistics (default: computed from `features`). */
  stats?: FeatureStats;
  /** Weight samples so every class counts equally (default true). */
  balanced?: boolean;
}

const STD_FLOOR = 1e-8;

/**
 * Per-feature mean and standard deviation (population) of [N, D] features, in float64. Each std is raised to at least
 * max(`absoluteFloor`, `relativeFloor` · mean std). `relativeFloor` r keeps a nearly constant feature from being blown
 * up to unit variance, which keeps the head's weights on raw features (W / std) bounded, as a head that is trained
 * further needs. `absoluteFloor` (default 1e-8) guards constant features; with 0 and r > 0 the floor is relative only,
 * so the statistics scale with the features (scale-free heads, docs/ANALYSIS.md): features that are all constant are
 * then refused, since no floor is left.
 */
export function featureStats(
  features: Tensor,
  o: { relativeFloor?: number; absoluteFloor?: number } = {},
): FeatureStats {
  return scope(() =>
    noGrad(() => {
      const f = features.detach().to('float64');
      const mean = f.mean(0);
      let std = f.var(0, false, 0).sqrt();
      const avg = std.mean().item();
      const floor = Math.max(o.absoluteFloor ?? STD_FLOOR, (o.relativeFloor ?? 0) * avg);
      if (!(floor > 0) || !Number.isFinite(floor))
        throw new TapirError(
          'E_FEATURES',
          `every feature is constant over the head's training images (mean std ${avg}); the task head would be a constant`,
          { fix: 'check the model (an all-zero mask?) and the task images' },
        );
      std = std.clamp(floor);
      return { mean, std };
    }),
  );
}

export function standardise(features: Tensor, stats: FeatureStats): Tensor {
  return scope(() => features.detach().to('float64').sub(stats.mean).div(stats.std));
}

export function fitRidgeHead(features: Tensor, labels: Tensor, o: RidgeOptions): RidgeHead {
  const alpha = o.alpha ?? 1;
  if (!(alpha >= 0) || !Number.isFinite(alpha))
    throw new TapirError('E_RIDGE', `ridge alpha must be a finite number >= 0, got ${alpha}`, {
      fix: 'pass e.g. --alpha 1',
    });
  if (features.ndim !== 2)
    throw new ShapeError(`fitRidgeHead: features must be [N, D], got [${features.shape.join(', ')}]`);
  if (labels.ndim !== 1 || labels.shape[0] !== features.shape[0])
    throw new ShapeError(`fitRidgeHead: labels must be [${features.shape[0]}], got [${labels.shape.join(', ')}]`);
  const C = o.numClasses;
  return noGrad(() => {
    // The head owns its statistics (a copy when given), so disposeHead frees exactly what the head holds.
    const stats = o.stats
      ? scope(() => ({ mean: o.stats!.mean.to('float64').clone(), std: o.stats!.std.to('float64').clone() }))
      : featureStats(features);
    const head = scope(() => {
      const n = features.shape[0]!;
      const d = features.shape[1]!;
      const x = standardise(features, stats);
      const counts = labels.toArray().reduce((acc, c) => {
        acc[c] = (acc[c] ?? 0) + 1;
        return acc;
      }, new Array<number>(C).fill(0));
      const present = counts.filter((c) => c > 0).length;
      if (present < 2)
        throw new TapirError('E_RIDGE', `fitRidgeHead: need at least 2 classes with samples, got ${present}`, {
          fix: 'check the task has several classes',
        });
      const w =
        (o.balanced ?? true)
          ? tensor(
              labels.toArray().map((c) => n / (present * counts[c]!)),
              null,
              { dtype: 'float64' },
            )
          : tensor(new Float64Array(n).fill(1), [n]);
      const X = x.reshape([n, d]).contiguous();
      const ones = tensor(new Float64Array(n).fill(1), [n, 1]);
      const Xa = cat([X, ones], 1);
      const Y = nn.oneHot(labels.to('int64'), C).to('float64');
      const Xw = Xa.mul(w.unsqueeze(1));
      const reg = tensor(Float64Array.from({ length: d + 1 }, (_, i) => (i < d ? alpha : 0))).diag();
      const A = Xw.t().matmul(Xa).add(reg);
      const B = Xw.t().matmul(Y);
      const theta = linalg.solve(A, B); // [D+1, C]
      return { weight: theta.narrow(0, 0, d).t().contiguous(), bias: theta.index(0, d).contiguous() };
    });
    return { ...head, stats, alpha, numClasses: C };
  });
}

/** Logits [N, C] of a head on raw (unstandardised) features. */
export function headLogits(head: RidgeHead, features: Tensor): Tensor {
  return scope(() => noGrad(() => nn.linear(standardise(features, head.stats), head.weight, head.bias)));
}

/** Fraction of samples whose argmax logit equals the label. */
export function headAccuracy(head: RidgeHead, features: Tensor, labels: Tensor): number {
  return scope(() => headLogits(head, features).argmax(1).eq(labels.to('int64')).to('float64').mean().item());
}

export function disposeHead(head: RidgeHead): void {
  for (const t of [head.weight, head.bias, head.stats.mean, head.stats.std]) t.dispose();
}

/** The default grid of `selectAlpha` (penalties on standardised features; XᵀΩX has diagonal ≈ N). */
export const ALPHA_GRID: readonly number[] = [0.1, 1, 10, 100, 1000, 10000];

/**
 * Chooses `alpha` on a deterministic, stratified hold-out of the training features (every 5th sample of each class,
 * in order), by class-balanced accuracy of a head fitted on the rest; ties go to the larger alpha. Standardisation
 * uses `stats` (default: the statistics of all of `features`), as the final head will. A fixed alpha is not
 * scale-free in N and D (measured: MobileNetV2 features on Fashion-MNIST, 700 images, 0.33 at alpha 1 vs 0.63 at
 * 1000), so reports use this unless an alpha is given.
 */
export function selectAlpha(
  features: Tensor,
  labels: Tensor,
  o: { numClasses: number; grid?: readonly number[]; stats?: FeatureStats },
): { alpha: number; scores: { alpha: number; accuracy: number }[] } {
  const grid = [...(o.grid ?? ALPHA_GRID)].sort((a, b) => a - b);
  const y = labels.toArray();
  const seen = new Array<number>(o.numClasses).fill(0);
  const fitIdx: number[] = [];
  const valIdx: number[] = [];
  y.forEach((c, i) => ((seen[c] = (seen[c] ?? 0) + 1) % 5 === 0 ? valIdx : fitIdx).push(i));
  if (valIdx.length === 0 || new Set(fitIdx.map((i) => y[i])).size < 2)
    return { alpha: grid.includes(1) ? 1 : grid[0]!, scores: [] };
  return scope(() => {
    const stats = o.stats ?? featureStats(features);
    const idx = (xs: number[]) =>
      tensor(
        BigInt64Array.from(xs, (v) => BigInt(v)),
        [xs.length],
      );
    const fx = features.indexSelect(0, idx(fitIdx));
    const fy = labels.to('int64').indexSelect(0, idx(fitIdx));
    const vx = features.indexSelect(0, idx(valIdx));
    const vy = valIdx.map((i) => y[i]!);
    const scores = grid.map((alpha) => {
      const head = fitRidgeHead(fx, fy, { numClasses: o.numClasses, alpha, stats });
      const pred = headLogits(head, vx).argmax(1).toArray();
      disposeHead(head);
      const hit = new Array<number>(o.numClasses).fill(0);
      const tot = new Array<number>(o.numClasses).fill(0);
      vy.forEach((c, k) => {
        tot[c]!++;
        if (pred[k] === c) hit[c]!++;
      });
      const present = tot.map((t, c) => [t, c]).filter(([t]) => t! > 0);
      return { alpha, accuracy: present.reduce((s, [t, c]) => s + hit[c!]! / t!, 0) / present.length };
    });
    let best = scores[0]!;
    for (const s of scores) if (s.accuracy >= best.accuracy) best = s;
    return { alpha: best.alpha, scores };
  });
}
