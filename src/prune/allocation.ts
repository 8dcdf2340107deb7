/**
 * Allocation: turn per-parameter scores (higher = keep) into 0/1 masks that keep exactly
 * round(density × N) of the N prunable weights.
 *
 * - `global`: one ranking over every prunable weight (the paper's default).
 * - `layerwise`: the same density in every tensor.
 * - `erk`: Erdős–Rényi-kernel densities (Evci et al. 2020, RigL): density_l ∝ (Σ dims_l) / (Π dims_l), scaled so the
 *   total hits the target; tensors whose density would exceed 1 are kept dense and the rest re-scaled.
 * - `rowwise`: the same density in every output row (first dimension) of every tensor (Wanda's comparison group).
 * - `error`: the densities that minimise the predicted error at the network's output, Σ_l gain_l · e_l(d_l), where
 *   e_l(d) is layer l's relative output error when it alone keeps density d (measured by the score at a grid of
 *   densities, `ErrorCurve`) and gain_l how much of a relative error at its output reaches the network's output
 *   (OBC's non-uniform compression by an error database, with the additive model SPDY starts from). On the lower
 *   convex hull of each curve the optimum is a greedy fill: weights go first where they remove the most error per
 *   weight, and the last segment is filled in part, so the total is exact. Only scores that measure curves offer it
 *   (sparsegpt). `error-layer`: the same with every gain 1, i.e. the sum of the layers' own relative errors (OBC's
 *   proxy), the ablation that says what the measured gains add.
 * - `N:M` (`{kind: 'nm', n, m}`): exactly N weights kept in every M consecutive weights of a row (the row flattened
 *   in the weight's own order: for a conv [out, in, kh, kw], kernel positions then input channels); a row whose
 *   length is not a multiple of M ends with a shorter group that keeps min(N, its length). The sparsity must be
 *   1 − N/M (2:4 → 0.5).
 *
 * Ties are broken deterministically: among equal scores, the weight that comes first (tensor order, then flat index)
 * is kept. A per-tensor minimum density (`minDensity`) reserves each tensor's best weights before the ranking, which
 * guards against layer collapse; tensors that still end up empty are reported in `collapsed`.
 */
import { arange, cat, noGrad, scope, tensor, TapirError, zeros, type Tensor } from '../engine/index.js';

/** Parameter name → tensor of that parameter's shape. */
export type ParamMap = ReadonlyMap<string, Tensor>;

export type Allocation =
  | { kind: 'global' }
  | { kind: 'layerwise' }
  | { kind: 'erk'; power?: number }
  | { kind: 'rowwise' }
  | { kind: 'error' }
  | { kind: 'error-layer' }
  | { kind: 'nm'; n: number; m: number };
/** The named allocations; N:M is written `N:M`, e.g. `2:4`. */
export const ALLOCATIONS = ['global', 'layerwise', 'erk', 'rowwise', 'error', 'error-layer'] as const;

/** Allocations that read the score's per-layer error curves (`ErrorCurve`). */
export const usesErrorCurves = (a: Allocation): boolean => a.kind === 'error' || a.kind === 'error-layer';

/**
 * A tensor's predicted error as a function of its density, for the `error` allocation: `errors[j]` is the relative
 * output error of the layer when it alone keeps `densities[j]` (ascending, in [0, 1]; density 1 must cost 0), and
 * `gain` the share of a relative error at the layer's output that reaches the network's output.
 */
export interface ErrorCurve {
  densities: number[];
  errors: number[];
  gain: number;
  /** At most this many weights may be kept (a tensor already pruned keeps no more than it has); default: all. */
  max?: number;
}

/** Parses an allocation's string form: a name of ALLOCATIONS or `N:M`. */
export function parseAllocation(s: string): Allocation {
  const nm = /^(\d+):(\d+)$/.exec(s.trim());
  if (nm) {
    const n = Number(nm[1]);
    const m = Number(nm[2]);
    if (!(m >= 1 && n < m))
      throw new AllocationError(
        `allocation '${s}': N:M needs 0 <= N < M`,
        { allocation: s },
        'e.g. 2:4 (keep 2 of every 4)',
      );
    return { kind: 'nm', n, m };
  }
  if ((ALLOCATIONS as readonly string[]).includes(s.trim())) return { kind: s.trim() } as Allocation;
  throw new AllocationError(
    `unknown allocation '${s}'`,
    { allocation: s },
    `use one of: ${ALLOCATIONS.join(', ')}, or N:M such as 2:4`,
  );
}

/** The string form of an allocation (inverse of parseAllocation). */
export function allocationLabel(a: Allocation): string {
  return a.kind === 'nm' ? `${a.n}:${a.m}` : a.kind;
}

export interface AllocateOptions {
  /** Fraction of prunable weights to remove, in [0, 1). */
  sparsity: number;
  allocation?: Allocation;
  /** Every tensor keeps at least ceil(minDensity × size) weights (0 = no guard). */
  minDensity?: number;
  /** The `error` allocation's curves, one per tensor (from the score). */
  curves?: ReadonlyMap<string, ErrorCurve>;
}

export interface AllocationResult {
  /** Parameter name → float32 0/1 mask of the parameter's shape (same order as the scores). */
  masks: Map<string, Tensor>;
  /** Kept weights per tensor and overall. */
  kept: Map<string, number>;
  totalKept: number;
  total: number;
  achievedSparsity: number;
  /** Tensors left with no weight at all (layer collapse). */
  collapsed: string[];
}

export class AllocationError extends TapirError {
  constructor(message: string, context: Record<string, unknown>, fix: string) {
    super('E_ALLOCATION', message, { context, fix });
  }
}

/** Checks the sparsity argument: a number in [0, 1). */
export function checkSparsity(sparsity: number): void {
  if (!Number.isFinite(sparsity) || sparsity < 0 || sparsity >= 1)
    throw new AllocationError(
      `sparsity must be in [0, 1), got ${sparsity}`,
      { sparsity },
      'pass the fraction of weights to remove, e.g. --sparsity 0.7 (1 would remove every weight)',
    );
}

export function allocate(scores: ParamMap, o: AllocateOptions): AllocationResult {
  checkSparsity(o.sparsity);
  const minDensity = o.minDensity ?? 0;
  if (!(minDensity >= 0 && minDensity <= 1))
    throw new AllocationError(`minDensity must be in [0, 1], got ${minDensity}`, { minDensity }, 'use e.g. 0.01');
  const names = [...scores.keys()];
  if (names.length === 0)
    throw new AllocationError('no prunable parameters to allocate over', {}, 'mark at least one parameter prunable');
  const sizes = names.map((n) => scores.get(n)!.numel);
  const total = sizes.reduce((a, b) => a + b, 0);
  const target = Math.round((1 - o.sparsity) * total);
  for (const n of names) {
    const bad = scope(() => scores.get(n)!.isfinite().logicalNot().sum().item());
    if (bad > 0)
      throw new AllocationError(
        `score of '${n}' has ${bad} NaN/Inf entries`,
        { tensor: n },
        'check the weights and calibration data for NaN/Inf (tapir info, tapir data show) or use another estimator',
      );
  }
  const alloc = o.allocation ?? { kind: 'global' };
  if (alloc.kind === 'nm') return allocateNM(scores, names, alloc, o.sparsity);
  const reserve = sizes.map((s) => Math.min(s, Math.ceil(minDensity * s)));
  const reserved = reserve.reduce((a, b) => a + b, 0);
  if (reserved > target)
    throw new AllocationError(
      `minDensity ${minDensity} keeps at least ${reserved} weights (${((100 * reserved) / total).toFixed(1)} %), more than the ` +
        `${target} (${((100 * target) / total).toFixed(1)} %) that sparsity ${o.sparsity} keeps`,
      { minDensity, sparsity: o.sparsity },
      `lower --min-density below ${+(1 - o.sparsity).toFixed(6)} (1 − sparsity), or lower --sparsity`,
    );
  let perTensor: number[];
  switch (alloc.kind) {
    case 'global':
      perTensor = globalCounts(scores, names, sizes, reserve, target);
      break;
    case 'layerwise':
      perTensor = spreadRounding(
        sizes.map((s) => s * (1 - o.sparsity)),
        sizes,
        target,
      );
      break;
    case 'erk':
      perTensor = spreadRounding(
        erkDensities(scores, names, target, total, alloc.power ?? 1).map((d, i) => d * sizes[i]!),
        sizes,
        target,
      );
      break;
    case 'rowwise':
      perTensor = spreadRounding(
        sizes.map((s) => s * (1 - o.sparsity)),
        sizes,
        target,
      );
      break;
    case 'error':
    case 'error-layer':
      perTensor = errorCounts(names, sizes, reserve, target, o.curves, { gains: alloc.kind === 'error' });
      break;
  }
  perTensor = perTensor.map((k, i) => Math.max(k, reserve[i]!));
  const masks = new Map<string, Tensor>();
  const kept = new Map<string, number>();
  const collapsed: string[] = [];
  names.forEach((n, i) => {
    masks.set(
      n,
      alloc.kind === 'rowwise' ? rowwiseMask(scores.get(n)!, perTensor[i]!) : topkMask(scores.get(n)!, perTensor[i]!),
    );
    kept.set(n, perTensor[i]!);
    if (perTensor[i] === 0) collapsed.push(n);
  });
  const totalKept = perTensor.reduce((a, b) => a + b, 0);
  return { masks, kept, totalKept, total, achievedSparsity: 1 - totalKept / total, collapsed };
}

/** How many weights of each tensor a global ranking keeps (after reserving `reserve[i]` per tensor). */
function globalCounts(scores: ParamMap, names: string[], sizes: number[], reserve: number[], target: number): number[] {
  return scope(() =>
    noGrad(() => {
      const remaining = Math.max(0, target - reserve.reduce((a, b) => a + b, 0));
      // Rank each weight by score; weights inside a tensor's reserve outrank everything.
      const flat = names.map((n, i) => {
        const s = scores.get(n)!.detach().flatten().to('float64');
        if (reserve[i] === 0) return s;
        const idx = s.sort(0, true, true).indices.narrow(0, 0, reserve[i]!);
        return s.scatter(0, idx, Infinity);
      });
      const all = cat(flat);
      const owner = cat(names.map((_, i) => zeros([sizes[i]!], { dtype: 'int64' }).add(i)));
      // Stable descending sort keeps the earlier weight among equal scores.
      const order = all.sort(0, true, true).indices.narrow(0, 0, remaining + reserve.reduce((a, b) => a + b, 0));
      const counts = zeros([names.length], { dtype: 'int64' }).scatterAdd(
        0,
        owner.indexSelect(0, order),
        zeros([order.numel], { dtype: 'int64' }).add(1),
      );
      return counts.toArray();
    }),
  );
}

/**
 * Kept counts minimising Σ gain_i · e_i(k_i / n_i) with Σ k_i = target, each k_i ≥ reserve_i: on the lower convex
 * hull of each curve (in kept count and weighted error, linear between grid points) the segments are taken in order
 * of error removed per weight (steepest first; within a tensor the hull keeps them in order), the last one in part.
 */
export function errorCounts(
  names: readonly string[],
  sizes: readonly number[],
  reserve: readonly number[],
  target: number,
  curves: ReadonlyMap<string, ErrorCurve> | undefined,
  o: { gains?: boolean } = {},
): number[] {
  const gains = o.gains ?? true;
  const hulls = names.map((n, i) => {
    const c = curves?.get(n);
    if (!c)
      throw new AllocationError(
        `allocations 'error' and 'error-layer' need the per-layer error curve of '${n}', which the score did not measure (sparsegpt measures them)`,
        { tensor: n },
        'use a score that measures error curves (sparsegpt), or another allocation (global, erk, layerwise)',
      );
    const ok =
      c.densities.length >= 2 &&
      c.densities.length === c.errors.length &&
      c.densities.every((d, j) => d >= 0 && d <= 1 && (j === 0 || d > c.densities[j - 1]!)) &&
      c.densities[c.densities.length - 1] === 1 &&
      c.errors.every((e) => Number.isFinite(e) && e >= 0) &&
      Number.isFinite(c.gain) &&
      c.gain >= 0;
    if (!ok)
      throw new AllocationError(
        `error curve of '${n}' is malformed (densities ascending in [0, 1] ending at 1, one finite error >= 0 each, a finite gain >= 0)`,
        { tensor: n, densities: c.densities, errors: c.errors, gain: c.gain },
        'this is a bug in the score that measured it: report it with the model and options',
      );
    // Points in (kept weights, weighted error); density 1 costs nothing by definition.
    const gain = gains ? c.gain : 1;
    const pts = c.densities.map((d, j) => [d * sizes[i]!, j === c.densities.length - 1 ? 0 : gain * c.errors[j]!]);
    return lowerHull(pts as [number, number][]);
  });
  const at = (h: [number, number][], k: number): number => {
    if (k <= h[0]![0]) return h[0]![1];
    for (let j = 1; j < h.length; j++)
      if (k <= h[j]![0]) {
        const [k0, e0] = h[j - 1]!;
        const [k1, e1] = h[j]!;
        return e0 + ((e1 - e0) * (k - k0)) / (k1 - k0);
      }
    return h[h.length - 1]![1];
  };
  const counts = reserve.map((r, i) => Math.max(r, Math.ceil(hulls[i]![0]![0] - 1e-9)));
  let left = target - counts.reduce((a, b) => a + b, 0);
  if (left < 0)
    throw new AllocationError(
      `the error curves start above the target: ${target} weights cannot cover every tensor's smallest measured density`,
      { target },
      'lower --sparsity, or measure the curves down to density 0',
    );
  const caps = names.map((n, i) => Math.max(counts[i]!, Math.min(sizes[i]!, curves!.get(n)!.max ?? sizes[i]!)));
  if (caps.reduce((a, b) => a + b, 0) < target)
    throw new AllocationError(
      `the tensors can keep at most ${caps.reduce((a, b) => a + b, 0)} weights (some are already pruned), fewer than the ${target} asked`,
      { target },
      'raise --sparsity to at least the current sparsity',
    );
  // Segments above each tensor's start, as [slope (error per weight, ≤ 0), tensor, from, to].
  const segs: [number, number, number, number][] = [];
  hulls.forEach((h, i) => {
    for (let j = 1; j < h.length; j++) {
      const from = Math.max(h[j - 1]![0], counts[i]!);
      const to = Math.min(h[j]![0], caps[i]!);
      if (to <= from) continue;
      segs.push([(at(h, to) - at(h, from)) / (to - from), i, from, to]);
    }
  });
  segs.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
  for (const [, i, , to] of segs) {
    if (left === 0) break;
    const add = Math.min(left, Math.floor(to + 1e-9) - counts[i]!);
    if (add <= 0) continue;
    counts[i]! += add;
    left -= add;
  }
  // Rounding to whole weights can leave a few: the first tensors with room take them.
  for (let i = 0; left > 0 && i < counts.length; i++) {
    const add = Math.min(left, caps[i]! - counts[i]!);
    counts[i]! += add;
    left -= add;
  }
  return counts;
}

/** Lower convex hull of points sorted by x (Andrew's monotone chain, lower half). */
function lowerHull(pts: [number, number][]): [number, number][] {
  const h: [number, number][] = [];
  for (const p of pts) {
    while (h.length >= 2) {
      const [a, b] = [h[h.length - 2]!, h[h.length - 1]!];
      // Drop b when it lies on or above the segment a → p.
      if ((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]) <= 0) h.pop();
      else break;
    }
    h.push(p);
  }
  return h;
}

/** Keeps the k highest scores of one tensor (stable: earlier index wins ties) as a float32 0/1 mask. */
function topkMask(score: Tensor, k: number): Tensor {
  return scope(() =>
    noGrad(() => {
      const flat = score.detach().flatten().to('float64');
      const mask = zeros([flat.numel], { dtype: 'float32' });
      const out = k > 0 ? mask.scatter(0, flat.sort(0, true, true).indices.narrow(0, 0, k), 1) : mask;
      return out.reshape(score.shape);
    }),
  );
}

/** Keeps `k` weights of one tensor, the same share in every row (largest remainders), each row its highest scores. */
function rowwiseMask(score: Tensor, k: number): Tensor {
  const rows = score.shape[0] ?? 1;
  const cols = score.numel / rows;
  const per = spreadRounding(new Array<number>(rows).fill(k / rows), new Array<number>(rows).fill(cols), k);
  return scope(() =>
    noGrad(() => {
      const s = score.detach().reshape([rows, cols]).to('float64');
      // Rank within each row (stable: earlier column first among ties), keep ranks below the row's count.
      const rank = zeros([rows, cols], { dtype: 'float64' }).scatter(
        1,
        s.sort(1, true, true).indices,
        arange(0, cols, 1, { dtype: 'float64' }).expand([rows, cols]).contiguous(),
      );
      return rank
        .lt(tensor(Float64Array.from(per), [rows, 1]))
        .to('float32')
        .reshape(score.shape);
    }),
  );
}

/** N:M masks: in each group of M consecutive weights of a row, the N highest scores. */
function allocateNM(
  scores: ParamMap,
  names: string[],
  a: { n: number; m: number },
  sparsity: number,
): AllocationResult {
  if (Math.abs(sparsity - (1 - a.n / a.m)) > 1e-9)
    throw new AllocationError(
      `allocation ${a.n}:${a.m} prunes ${+(1 - a.n / a.m).toFixed(6)} of the weights, not ${sparsity}`,
      { allocation: `${a.n}:${a.m}`, sparsity },
      `set the sparsity to ${+(1 - a.n / a.m).toFixed(6)} (1 − N/M)`,
    );
  const masks = new Map<string, Tensor>();
  const kept = new Map<string, number>();
  let total = 0;
  let totalKept = 0;
  for (const n of names) {
    const sc = scores.get(n)!;
    const rows = sc.shape[0] ?? 1;
    const cols = sc.numel / rows;
    const mask = scope(() =>
      noGrad(() => {
        const s = sc.detach().reshape([rows, cols]).to('float64');
        const parts: Tensor[] = [];
        for (let c = 0; c < cols; c += a.m) {
          const w = Math.min(a.m, cols - c);
          const g = s.narrow(1, c, w);
          const rank = zeros([rows, w], { dtype: 'float64' }).scatter(
            1,
            g.sort(1, true, true).indices,
            arange(0, w, 1, { dtype: 'float64' }).expand([rows, w]).contiguous(),
          );
          parts.push(rank.lt(Math.min(a.n, w)).to('float32'));
        }
        return cat(parts, 1).reshape(sc.shape);
      }),
    );
    const k = scope(() => mask.sum().item());
    masks.set(n, mask);
    kept.set(n, k);
    total += sc.numel;
    totalKept += k;
  }
  return {
    masks,
    kept,
    totalKept,
    total,
    achievedSparsity: 1 - totalKept / total,
    collapsed: names.filter((n) => kept.get(n) === 0),
  };
}

/** ERK densities per tensor, capped at 1, scaled so Σ density × size = target. */
function erkDensities(scores: ParamMap, names: string[], target: number, total: number, power: number): number[] {
  const shapes = names.map((n) => scores.get(n)!.shape);
  const sizes = shapes.map((s) => s.reduce((a, b) => a * b, 1));
  const raw = shapes.map((s, i) => Math.pow(s.reduce((a, b) => a + b, 0) / sizes[i]!, power));
  const dense = new Set<number>();
  for (;;) {
    const budget = target - [...dense].reduce((a, i) => a + sizes[i]!, 0);
    const denom = raw.reduce((a, r, i) => (dense.has(i) ? a : a + r * sizes[i]!), 0);
    const eps = denom > 0 ? budget / denom : 0;
    const over = raw.findIndex((r, i) => !dense.has(i) && eps * r > 1);
    if (over < 0) return raw.map((r, i) => (dense.has(i) ? 1 : eps * r));
    // Keep the most over-budget tensor dense, then re-scale the rest.
    let worst = over;
    raw.forEach((r, i) => {
      if (!dense.has(i) && r > raw[worst]!) worst = i;
    });
    dense.add(worst);
    if (dense.size === names.length) return raw.map(() => target / total);
  }
}

/** Rounds fractional per-tensor counts to integers that sum exactly to `target` (largest remainders first). */
function spreadRounding(want: number[], sizes: number[], target: number): number[] {
  const base = want.map((w, i) => Math.min(sizes[i]!, Math.floor(w)));
  let left = target - base.reduce((a, b) => a + b, 0);
  const order = want.map((w, i) => [w - Math.floor(w), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (let pass = 0; left > 0 && pass < 2; pass++) {
    for (const [, i] of order) {
      if (left === 0) break;
      if (base[i]! < sizes[i]!) {
        base[i]!++;
        left--;
      }
    }
  }
  return base;
}
