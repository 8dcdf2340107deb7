/** Process-wide engine settings: threads, seeding, devices (the threads' wait policy: wait.ts). */
import { availableParallelism, freemem } from 'node:os';
import { TapirError } from './errors.js';
import { native } from './native.js';
import { WAIT_POLICIES, waitEnvironmentProblem } from './wait.js';
import type { Device } from './tensor.js';

/** Intra-op threads. libtorch defaults to 1 here; tapir uses every core unless TAPIR_THREADS says otherwise. */
export function setNumThreads(n: number): void {
  native.setNumThreads(n);
}
export function getNumThreads(): number {
  return native.getNumThreads();
}
/**
 * Bytes of memory this process can still get: the OS's available memory after the allocator has returned its cached
 * free pages (tcmalloc keeps freed tensors' memory for reuse, which the OS counts as used), so that a check made after
 * a large earlier computation in the same process sees what that computation freed.
 */
export function availableMemory(): number {
  native.releaseFreeMemory();
  return freemem();
}
/** Seeds libtorch's global generator (randn, rand, randint, randperm, bernoulli, dropout). */
export function manualSeed(seed: number): void {
  native.manualSeed(seed);
}
export function cudaAvailable(): boolean {
  return native.cudaAvailable();
}
/** Waits for queued device work (for timing on cuda; a no-op on cpu). */
export function synchronize(): void {
  native.cudaSynchronize();
}
/** `TAPIR_DEVICE` if set, else cpu. */
export function defaultDevice(): Device {
  return (process.env.TAPIR_DEVICE as Device | undefined) ?? 'cpu';
}
export function buildInfo(): { torchVersion: string; config: string; parallel: string } {
  return native.buildInfo();
}

const rawThreads = process.env.TAPIR_THREADS;
const envThreads = Number(rawThreads);
const threadsOk =
  rawThreads === undefined || rawThreads.trim() === '' || (/^\d+$/.test(rawThreads.trim()) && envThreads > 0);
setNumThreads(threadsOk && envThreads > 0 ? envThreads : availableParallelism());

/** A bad TAPIR_THREADS or TAPIR_WAIT (the engine then uses its default): the CLI refuses to start with it. */
export function environmentError(): TapirError | null {
  const wait = waitEnvironmentProblem();
  if (wait)
    return new TapirError('E_ENV', wait, {
      context: { TAPIR_WAIT: process.env.TAPIR_WAIT },
      fix: `unset it (auto: spin on an idle machine, passive beside busy processes) or set TAPIR_WAIT=${WAIT_POLICIES.join(' or ')}`,
    });
  return threadsOk
    ? null
    : new TapirError('E_ENV', `TAPIR_THREADS must be a positive integer, got '${rawThreads}'`, {
        context: { TAPIR_THREADS: rawThreads },
        fix: 'unset it (every core is used) or set e.g. TAPIR_THREADS=2',
      });
}
