/** Warm-up-then-repeat timing shared by every benchmark. */
import { median } from './stats.js';

export interface TimingOptions {
  /** Untimed runs first: they pay for lazy init, allocator growth and kernel selection. */
  warmup: number;
  /** Timed runs; the median is reported. */
  runs: number;
  /** Called after each timed run with its index and duration (progress, leak checks). */
  after?: (run: number, ms: number) => void;
}

export interface Timing {
  samplesMs: number[];
  medianMs: number;
}

/** Runs `fn` `warmup` times untimed, then `runs` times timed with a monotonic clock. `fn` must be synchronous. */
export function timeRuns(fn: () => void, o: TimingOptions): Timing {
  if (!Number.isInteger(o.runs) || o.runs < 1)
    throw new RangeError(`timeRuns: runs must be a positive integer, got ${o.runs}`);
  if (!Number.isInteger(o.warmup) || o.warmup < 0)
    throw new RangeError(`timeRuns: warmup must be a non-negative integer, got ${o.warmup}`);
  for (let i = 0; i < o.warmup; i++) fn();
  const samplesMs: number[] = [];
  for (let i = 0; i < o.runs; i++) {
    const t0 = performance.now();
    fn();
    const ms = performance.now() - t0;
    samplesMs.push(ms);
    o.after?.(i, ms);
  }
  return { samplesMs, medianMs: median(samplesMs) };
}
