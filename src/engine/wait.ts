/**
 * How idle worker threads wait between parallel regions: `spin` (busy-wait a while, then sleep: libgomp's and
 * onnxruntime's own default) or `passive` (sleep at once). Measured by bench/threads.ts (docs/BENCH.md, "Threads"):
 * on an idle machine spinning is 5–18 % faster; beside a busy process the spinning threads fight it for the cores and
 * a pass takes up to 3.9x as long as idle, while passive threads stay near their fair share. So the default, `auto`,
 * looks once, when the engine loads: if other processes keep at least half a core busy over 50 ms (/proc/stat minus
 * this process), `passive`, else `spin`. The thread count never changes with load, so results do not depend on it.
 *
 * `TAPIR_WAIT=spin|passive` fixes the policy. Applied to libtorch's OpenMP through `OMP_WAIT_POLICY`, which libgomp
 * reads once when it loads: this module runs before the addon is loaded (native.ts imports it first), and leaves
 * OpenMP alone when the user set `OMP_WAIT_POLICY` or `GOMP_SPINCOUNT` themselves. onnxruntime sessions read
 * `waitPolicy()` for their intra-op spinning when they are created (src/graph/inference.ts).
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

export type WaitPolicy = 'spin' | 'passive';
export const WAIT_POLICIES: readonly WaitPolicy[] = ['spin', 'passive'];
/** What `TAPIR_WAIT` may say: a fixed policy, or `auto` (the default). */
export const WAIT_SETTINGS = ['auto', ...WAIT_POLICIES] as const;
/** Other processes' busy cores from which `auto` waits passively. */
export const BUSY_THRESHOLD = 0.5;

/** CPU jiffies of the whole machine: [busy, total]; null where /proc/stat cannot be read (not Linux). */
function cpuJiffies(): [number, number] | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    return [total - idle, total];
  } catch {
    return null;
  }
}

/**
 * Cores kept busy by other processes over `ms` milliseconds (this process's own CPU time subtracted); null where the
 * machine's counters cannot be read.
 */
export function othersBusyCores(ms = 50): number | null {
  const a = cpuJiffies();
  const own0 = process.cpuUsage();
  const t0 = performance.now();
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  const b = cpuJiffies();
  if (!a || !b || b[1] <= a[1]) return null;
  const own = process.cpuUsage(own0);
  const wallMs = performance.now() - t0;
  const machineBusy = ((b[0] - a[0]) / (b[1] - a[1])) * availableParallelism();
  return Math.max(0, machineBusy - (own.user + own.system) / 1000 / wallMs);
}

const raw = process.env.TAPIR_WAIT?.trim() || undefined;
const valid = raw === undefined || (WAIT_SETTINGS as readonly string[]).includes(raw);
const userOmp = ['OMP_WAIT_POLICY', 'GOMP_SPINCOUNT'].filter((k) => process.env[k] !== undefined);
const fixed = valid && raw && raw !== 'auto' ? (raw as WaitPolicy) : null;
// Measured only when it decides something: not when the policy is fixed (the user's OpenMP variables decide
// OpenMP, and onnxruntime still follows `auto`).
const busy = fixed ? null : othersBusyCores();
const policy: WaitPolicy = fixed ?? (busy !== null && busy >= BUSY_THRESHOLD ? 'passive' : 'spin');
if (userOmp.length === 0 && policy === 'passive') process.env.OMP_WAIT_POLICY = 'PASSIVE';

/** The wait policy of this process. */
export function waitPolicy(): WaitPolicy {
  return policy;
}

/** What decided the policy here, and what it sets for OpenMP. */
export function waitSettings(): { policy: WaitPolicy; source: string; busyCores: number | null; openmp: string } {
  const source = fixed ? 'TAPIR_WAIT' : 'auto';
  const openmp = userOmp.length
    ? userOmp.map((k) => `${k}=${process.env[k]}`).join(' ') + ' (set by the user)'
    : policy === 'passive'
      ? 'OMP_WAIT_POLICY=PASSIVE'
      : "libgomp's default (spin, then sleep)";
  return { policy, source, busyCores: busy === null ? null : Math.round(busy * 100) / 100, openmp };
}

/** A bad TAPIR_WAIT (then `auto` is used): the CLI refuses to start with it. */
export function waitEnvironmentProblem(): string | null {
  return valid ? null : `TAPIR_WAIT must be one of ${WAIT_SETTINGS.join(', ')}, got '${raw}'`;
}
