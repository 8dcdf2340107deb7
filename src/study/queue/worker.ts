/**
 * `tapir worker`: takes study cells from a BullMQ queue and runs them, each in a child process (cell-child.ts) through
 * the single-machine runner's `runCell`, returning the rows as the job's result. Before the first cell of a study
 * it checks the study's manifest (same build, same protocol hash, same data) and refuses the study otherwise: the job
 * goes back to the queue for another worker, this worker stops with the fix. A cell that throws fails once
 * (UnrecoverableError, no retry: cells are deterministic, so a retry fails the same way); a worker that dies mid-cell
 * loses its lock, and BullMQ's stalled-job check hands the cell to another worker.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { availableParallelism, hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import { TapirError } from '../../engine/index.js';
import { cellWhat } from '../runner.js';
import {
  buildStamp,
  DEFAULT_QUEUE,
  manifestKey,
  manifestProblems,
  refusalsKey,
  WIRE_VERSION,
  type JobData,
  type Manifest,
} from './manifest.js';
import type { FromChild, ToChild } from './cell-child.js';
import { bullConnection, connectRedis } from './redis.js';

const CHILD = fileURLToPath(new URL('./cell-child.js', import.meta.url));

export interface WorkerOptions {
  redis: string;
  queue?: string;
  /** Cells run at once (one child process each). */
  concurrency?: number;
  /** BullMQ lock duration: a worker silent this long is taken for dead (ms). */
  lockDurationMs?: number;
  /** How often this worker looks for stalled cells of dead workers (ms). */
  stalledIntervalMs?: number;
  /** Stop after the queue has been idle this long (s); 0 = run until stopped. */
  idleExitS?: number;
  log?: (line: string) => void;
  /** Aborting stops the worker after its running cells. */
  signal?: AbortSignal;
}

export interface WorkerSummary {
  name: string;
  build: string;
  cells: { key: string; label: string; state: 'done' | 'failed'; wallS: number; error?: string }[];
  wallS: number;
}

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;
interface Slot {
  proc: ChildProcess;
  waiters: Map<number, (m: FromChild) => void>;
  exited: string | null;
}

export async function runWorker(o: WorkerOptions): Promise<WorkerSummary> {
  const t0 = Date.now();
  const queue = o.queue ?? DEFAULT_QUEUE;
  const concurrency = o.concurrency ?? 1;
  const log = o.log ?? (() => undefined);
  const name = `${hostname()}:${process.pid}`;
  const build = buildStamp();
  const redis = await connectRedis(o.redis);
  const cells: WorkerSummary['cells'] = [];
  // Threads per cell: the cores shared out over the slots, unless TAPIR_THREADS says otherwise.
  const childEnv = {
    ...process.env,
    ...(process.env.TAPIR_THREADS
      ? {}
      : { TAPIR_THREADS: String(Math.max(1, Math.floor(availableParallelism() / concurrency))) }),
  };
  const idle: Slot[] = [];
  const all = new Set<Slot>();
  let nextId = 1;

  const spawnSlot = (): Slot => {
    const slot: Slot = {
      proc: fork(CHILD, [], { env: childEnv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
      waiters: new Map(),
      exited: null,
    };
    slot.proc.on('message', (m: FromChild) => slot.waiters.get(m.id)?.(m));
    slot.proc.on('exit', (code, sig) => {
      slot.exited = sig ?? `exit code ${code}`;
      all.delete(slot);
      for (const [id, w] of slot.waiters)
        w({
          type: 'error',
          id,
          error: {
            code: 'E_WORKER_CHILD',
            message: `the cell's process ended (${slot.exited}) while running it`,
            fix: "see the worker's stderr; out of memory? lower --concurrency",
          },
        });
    });
    all.add(slot);
    return slot;
  };
  const ask = (
    slot: Slot,
    m: WithoutId<ToChild>,
    onProgress?: (frac: number, what: string) => void,
  ): Promise<FromChild> =>
    new Promise((resolve) => {
      const id = nextId++;
      slot.waiters.set(id, (r) => {
        if (r.type === 'progress') return onProgress?.(r.frac, r.what);
        slot.waiters.delete(id);
        resolve(r);
      });
      if (slot.exited)
        return slot.waiters.get(id)!({
          type: 'error',
          id,
          error: { code: 'E_WORKER_CHILD', message: `the cell's process had ended (${slot.exited})` },
        });
      slot.proc.send({ ...m, id } as ToChild);
    });

  // Per study protocol: the manifest and what is wrong with it on this machine (checked once).
  const checked = new Map<string, Promise<{ manifest: Manifest | null; problems: string[] }>>();
  const check = (protocol: string, slot: Slot) => {
    let p = checked.get(protocol);
    if (!p) {
      p = (async () => {
        const raw = await redis.get(manifestKey(queue, protocol));
        if (!raw)
          return {
            manifest: null,
            problems: [
              `no manifest for study protocol ${protocol} in Redis: start the study with \`tapir study <config> --redis ${o.redis}\` (it enqueues the ` +
                `cells and writes the manifest)`,
            ],
          };
        const manifest = JSON.parse(raw) as Manifest;
        if (manifest.build !== build || manifest.wire !== WIRE_VERSION)
          return {
            manifest,
            problems: manifestProblems(manifest, { build, protocol: manifest.protocol, data: manifest.data }),
          };
        const r = await ask(slot, { type: 'check', config: manifest.config });
        if (r.type === 'error')
          return { manifest, problems: [`${r.error.message}${r.error.fix ? ` (${r.error.fix})` : ''}`] };
        if (r.type !== 'checked') throw new Error('unexpected reply');
        return { manifest, problems: manifestProblems(manifest, { build, protocol: r.protocol, data: r.data }) };
      })();
      checked.set(protocol, p);
    }
    return p;
  };

  let stopError: TapirError | null = null;
  let active = 0;
  let lastActive = Date.now();
  let worker: Worker<JobData> | null = null;
  let stopping: Promise<void> | null = null;
  const stop = (err: TapirError | null) => {
    stopError ??= err;
    stopping ??= (async () => {
      await worker?.close();
      for (const s of all) s.proc.kill('SIGTERM');
    })();
    return stopping;
  };

  const processor = async (job: Job<JobData>, token?: string) => {
    active++;
    const slot = idle.pop() ?? spawnSlot();
    const d = job.data;
    const t = Date.now();
    const label = `${d.cell.model} ${cellWhat(d.cell, '').trim()} seed ${d.cell.seed}`;
    try {
      const { manifest, problems } =
        d.wire === WIRE_VERSION
          ? await check(d.protocol, slot)
          : {
              manifest: null,
              problems: [
                `job layout v${d.wire}, this worker reads v${WIRE_VERSION}: run the same tapir build everywhere`,
              ],
            };
      if (problems.length > 0 || !manifest) {
        await redis.rpush(
          refusalsKey(queue),
          JSON.stringify({
            worker: name,
            build,
            study: d.study,
            protocol: d.protocol,
            problems,
            at: new Date().toISOString(),
          }),
        );
        await job.moveToWait(token);
        void stop(
          new TapirError(
            'E_QUEUE_MISMATCH',
            `worker ${name} refuses study ${d.study} (protocol ${d.protocol}):\n  - ${problems.join('\n  - ')}`,
            {
              context: { study: d.study, protocol: d.protocol, problems },
              fix: 'each line above ends with its fix; the cell went back to the queue for the other workers',
            },
          ),
        );
        throw new WaitingError();
      }
      log(`cell ${d.cell.key} ${label}: start`);
      const r = await ask(
        slot,
        {
          type: 'run',
          protocol: d.protocol,
          config: manifest.config,
          cell: d.cell,
          worker: { name, host: hostname(), pid: process.pid, build },
        },
        (frac, what) => {
          log(`cell ${d.cell.key} ${label}: ${what}`);
          job.updateProgress({ frac, what }).catch(() => undefined);
        },
      );
      if (r.type === 'error') {
        const msg = `${r.error.code}: ${r.error.message}${r.error.fix ? ` (fix: ${r.error.fix})` : ''}`;
        cells.push({ key: d.cell.key, label, state: 'failed', wallS: (Date.now() - t) / 1000, error: msg });
        log(`cell ${d.cell.key} ${label}: failed: ${msg}`);
        // Cells are deterministic: a retry would fail the same way, so the failure is final.
        throw new UnrecoverableError(msg);
      }
      if (r.type !== 'done') throw new UnrecoverableError(`unexpected reply '${r.type}' from the cell's process`);
      cells.push({ key: d.cell.key, label, state: 'done', wallS: (Date.now() - t) / 1000 });
      log(`cell ${d.cell.key} ${label}: done in ${((Date.now() - t) / 1000).toFixed(1)} s`);
      return r.output;
    } finally {
      if (!slot.exited) idle.push(slot);
      active--;
      lastActive = Date.now();
    }
  };

  worker = new Worker<JobData>(queue, processor, {
    connection: bullConnection(o.redis),
    concurrency,
    name,
    lockDuration: o.lockDurationMs ?? 30_000,
    stalledInterval: o.stalledIntervalMs ?? 30_000,
    // A cell whose worker died is handed on; one that kills two workers in a row fails (out of memory, say).
    maxStalledCount: 2,
    autorun: false,
  });
  worker.on('error', (e) => log(`worker: ${e.message}`));
  log(
    `worker ${name} ready: queue '${queue}' at ${o.redis}, concurrency ${concurrency}, ${childEnv.TAPIR_THREADS} threads a cell, ${build}`,
  );
  o.signal?.addEventListener('abort', () => void stop(null), { once: true });
  const idleTimer = o.idleExitS
    ? setInterval(() => {
        if (active === 0 && Date.now() - lastActive > o.idleExitS! * 1000) void stop(null);
      }, 250)
    : null;
  try {
    await worker.run();
    await stop(null);
  } finally {
    if (idleTimer) clearInterval(idleTimer);
    for (const s of all) s.proc.kill('SIGTERM');
    redis.disconnect();
  }
  if (stopError) throw stopError;
  return { name, build, cells, wallS: (Date.now() - t0) / 1000 };
}
