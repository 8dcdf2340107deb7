/**
 * How idle worker threads wait between parallel regions: `spin` (busy-wait a while, then sleep: libgomp's and
 * onnxruntime's own default) or `passive` (sleep at once). Chosen by `TAPIR_WAIT` (spin | passive), else the default
 * below, measured by bench/threads.ts (docs/BENCH.md, "Threads"). Applied to libtorch's OpenMP through
 * `OMP_WAIT_POLICY`, which libgomp reads once when it loads: this module runs before the addon is loaded (native.ts
 * imports it first), and leaves OpenMP alone when the user set `OMP_WAIT_POLICY` or `GOMP_SPINCOUNT` themselves.
 * onnxruntime sessions read `waitPolicy()` for their intra-op spinning (src/graph/inference.ts).
 */
export type WaitPolicy = 'spin' | 'passive';
export const WAIT_POLICIES: readonly WaitPolicy[] = ['spin', 'passive'];
export const DEFAULT_WAIT: WaitPolicy = 'passive';

const raw = process.env.TAPIR_WAIT?.trim();
const valid = raw === undefined || raw === '' || (WAIT_POLICIES as readonly string[]).includes(raw);
const policy: WaitPolicy = valid && raw ? (raw as WaitPolicy) : DEFAULT_WAIT;
const userOmp = ['OMP_WAIT_POLICY', 'GOMP_SPINCOUNT'].filter((k) => process.env[k] !== undefined);
if (userOmp.length === 0 && policy === 'passive') process.env.OMP_WAIT_POLICY = 'PASSIVE';

/** The wait policy of this process. */
export function waitPolicy(): WaitPolicy {
  return policy;
}

/** What decides OpenMP's waiting here: the user's own variables, or tapir's policy. */
export function waitSettings(): { policy: WaitPolicy; source: string; openmp: string } {
  const source = raw && valid ? 'TAPIR_WAIT' : 'default';
  const openmp = userOmp.length
    ? userOmp.map((k) => `${k}=${process.env[k]}`).join(' ') + ' (set by the user)'
    : policy === 'passive'
      ? 'OMP_WAIT_POLICY=PASSIVE'
      : "libgomp's default (spin, then sleep)";
  return { policy, source, openmp };
}

/** A bad TAPIR_WAIT (the default is used): the CLI refuses to start with it. */
export function waitEnvironmentProblem(): string | null {
  return valid ? null : `TAPIR_WAIT must be one of ${WAIT_POLICIES.join(', ')}, got '${raw}'`;
}
