/** Summary statistics for benchmark samples. Benchmarks quote medians (DESIGN §6): robust to a stray slow run. */

/** Median of `xs` (mean of the two middle values for an even count). Throws on an empty list. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError('median: no samples');
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Median absolute deviation around the median: the noise scale reported next to a median. */
export function mad(xs: readonly number[]): number {
  const m = median(xs);
  return median(xs.map((x) => Math.abs(x - m)));
}

/** Relative difference |a − b| / max(|a|, |b|, tiny), symmetric and safe at 0. */
export function relDiff(a: number, b: number): number {
  const d = Math.abs(a - b);
  return d === 0 ? 0 : d / Math.max(Math.abs(a), Math.abs(b), 1e-30);
}
