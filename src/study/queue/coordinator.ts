/**
 * `tapir study <config> --redis URL`: the coordinator of a study spread over machines. It enqueues the cells missing
 * from the SQLite database (job id = `cell-<cell key>`, so enqueueing twice is a no-op), computes the dense references,
 * pixel baseline and diagnostics itself (once per model, as the single-machine runner does), and writes each finished
 * cell's rows into the database in one transaction, then removes the job from Redis. A coordinator killed at any point
 * loses nothing: the rerun finds finished jobs still in Redis and collects them, and enqueues only cells without a job.
 * A cell that failed on a worker is stored with its error (table cell_errors) and stays failed until `--retry-failed`.
 */
import { Queue } from 'bullmq';
import { disposeGraph } from '../../graph/index.js';
import { FeatureCache } from '../../transfer/index.js';
import { isAbsolute } from 'node:path';
import { StudyConfigError, type StudyConfig } from '../config.js';
import { planDiagnostics } from '../diagnostics.js';
import { expandGrid, protocolHash, studyTasks, type CellSpec } from '../grid.js';
import {
  cellWhat,
  runDenseReference,
  runPixelBaseline,
  runReadyDiagnostics,
  writeCellOutput,
  type RunSummary,
  type StudyProgress,
  type StudySteps,
} from '../runner.js';
import type { CellErrorRow, StudyStore } from '../store.js';
import {
  buildStamp,
  dataFingerprint,
  DEFAULT_QUEUE,
  fromWire,
  jobId,
  keyOfJob,
  manifestKey,
  refusalsKey,
  WIRE_VERSION,
  type JobData,
  type Manifest,
  type WireOutput,
} from './manifest.js';
import { bullConnection, connectRedis } from './redis.js';

export interface QueueRunOptions {
  redis: string;
  queue?: string;
  /** Enqueue again the cells whose failure is stored (after fixing what made them fail). */
  retryFailed?: boolean;
  steps: StudySteps;
  onProgress?: (p: StudyProgress) => void;
  /** Notices for the user (stderr): workers that refused the study, jobs that vanished from Redis, failed cells. */
  log?: (line: string) => void;
  /** How often Redis is asked for finished cells (ms). */
  pollMs?: number;
}

export interface QueueRunSummary extends RunSummary {
  /** Jobs this run added to the queue (the others already had one). */
  enqueued: number;
  /** Finished jobs found in Redis when this run started (left by a coordinator that was stopped). */
  pickedUp: number;
  /** Failed cells of this study, with their errors (this run's and earlier ones not retried). */
  failed: CellErrorRow[];
  /** Cells that were handed to another worker after the one running them died (BullMQ stalled-job check). */
  stalled: number;
  /** Workers whose results this run wrote. */
  workers: string[];
  /** The coordinator's own time per cell: enqueueing, and fetching + committing + removing a finished job (ms). */
  coordinator: { enqueueMsPerCell: number; collectMsPerCell: number };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runStudyOnQueue(
  config: StudyConfig,
  store: StudyStore,
  o: QueueRunOptions,
): Promise<QueueRunSummary> {
  const t0 = Date.now();
  const queueName = o.queue ?? DEFAULT_QUEUE;
  const log = o.log ?? (() => undefined);
  const protocol = protocolHash(config);
  store.recordStudy(config.name, protocol, config);
  const cells = expandGrid(config);
  const byKey = new Map(cells.map((c) => [c.key, c]));
  const done = store.doneKeys();
  const todo = cells.filter((c) => !done.has(c.key));
  const redis = await connectRedis(o.redis);
  const q = new Queue<JobData>(queueName, { connection: bullConnection(o.redis) });
  q.on('error', (e) => log(`queue: ${e.message}`));
  let enqueued = 0;
  let pickedUp = 0;
  let stalled = 0;
  let ran = 0;
  let collectMs = 0;
  const workers = new Set<string>();
  try {
    const manifest: Manifest = {
      wire: WIRE_VERSION,
      build: buildStamp(),
      name: config.name,
      protocol,
      config,
      data: await dataFingerprint(config),
      createdAt: new Date().toISOString(),
    };
    await redis.set(manifestKey(queueName, protocol), JSON.stringify(manifest));
    let refusalsSeen = await redis.llen(refusalsKey(queueName));
    // Finished jobs of cells already in the database: a coordinator stopped between its commit and the job's removal.
    for (const id of await q.getRanges(['completed'], 0, -1))
      if (done.has(keyOfJob(id)) && byKey.has(keyOfJob(id))) await q.remove(id);

    const tEnq = performance.now();
    const stored = new Set(store.cellErrors().map((e) => e.key));
    const outstanding = new Set<string>();
    const toAdd: CellSpec[] = [];
    for (let i = 0; i < todo.length; i += 200) {
      const chunk = todo.slice(i, i + 200);
      const states = await Promise.all(chunk.map((c) => q.getJobState(jobId(c.key))));
      for (const [j, c] of chunk.entries()) {
        const state = states[j]!;
        if (stored.has(c.key) && !o.retryFailed) continue; // failed before: stays failed until --retry-failed
        if (state === 'failed' && o.retryFailed) {
          await q.remove(jobId(c.key));
          store.clearCellError(c.key);
          toAdd.push(c);
        } else if (state === 'unknown') {
          if (o.retryFailed) store.clearCellError(c.key);
          toAdd.push(c);
        } else {
          if (state === 'completed') pickedUp++;
          outstanding.add(c.key);
        }
      }
    }
    const add = async (xs: CellSpec[]) => {
      for (let i = 0; i < xs.length; i += 500) {
        await q.addBulk(
          xs.slice(i, i + 500).map((c) => ({
            name: `${config.name} ${cellWhat(c, '').trim()}`,
            data: { wire: WIRE_VERSION, protocol, study: config.name, cell: c },
            // attempts 1: a cell that throws fails for good (it is deterministic); a dead worker's cell is handed on by the stalled check.
            opts: { jobId: jobId(c.key), attempts: 1, removeOnComplete: false, removeOnFail: false },
          })),
        );
      }
      for (const c of xs) outstanding.add(c.key);
    };
    await add(toAdd);
    enqueued = toAdd.length;
    const enqueueMs = performance.now() - tEnq;

    const models = [...new Set(cells.map((c) => c.model))].filter((m) => !store.denseDone(m, protocol));
    const diag = planDiagnostics(config, cells).filter((p) => !store.diagnosticsDone(p.model, p.settings));
    const total = outstanding.size + models.length + diag.length;
    let finished = 0;
    let running = '';
    const progress = (frac: number, what: string) => o.onProgress?.({ done: finished + frac, total, what });

    // The coordinator's own share: one pass per model, while the workers run cells.
    const cache = new FeatureCache({ maxEntries: 4 * studyTasks(config).length + 8, runtime: config.runtime });
    try {
      await runPixelBaseline(config, store, progress);
      for (const model of models) {
        const dense = await o.steps.loadModel(model);
        try {
          await runDenseReference(config, store, model, dense, cache, progress);
        } finally {
          disposeGraph(dense);
        }
        finished++;
      }
    } finally {
      cache.dispose();
    }

    const collect = async (key: string): Promise<void> => {
      const t = performance.now();
      const job = await q.getJob(jobId(key));
      const cell = byKey.get(key)!;
      if (!job) return;
      const state = await job.getState();
      if (state === 'completed') {
        const w = job.returnvalue as unknown as WireOutput;
        if (!done.has(key)) {
          if (w.worker.build !== manifest.build) {
            store.writeCellError(
              errorRow(
                config,
                protocol,
                cell,
                `ran on ${w.worker.build}, the coordinator is ${manifest.build}`,
                w.worker.name,
                job.attemptsMade,
              ),
            );
          } else {
            const out = fromWire(w);
            out.record.info = {
              ...out.record.info,
              queue: {
                worker: w.worker.name,
                host: w.worker.host,
                threads: w.worker.threads,
                stalled: job.stalledCounter,
                attemptsStarted: job.attemptsStarted,
              },
            };
            writeCellOutput(store, out);
            done.add(key);
            ran++;
            workers.add(w.worker.name);
            stalled += job.stalledCounter;
          }
        }
        await job.remove();
        collectMs += performance.now() - t;
      } else if (state === 'failed') {
        store.writeCellError(
          errorRow(config, protocol, cell, job.failedReason, job.processedBy ?? null, job.attemptsMade),
        );
        log(
          `cell ${key} (${cellWhat(cell, '').trim()}, seed ${cell.seed}) failed${job.processedBy ? ` on ${job.processedBy}` : ''}: ${job.failedReason}`,
        );
      } else {
        return;
      }
      outstanding.delete(key);
      finished++;
    };

    let lastReconcile = Date.now();
    let workerCount = 0;
    let lastCount = 0;
    while (outstanding.size > 0) {
      const ids = (await q.getRanges(['completed', 'failed'], 0, -1)).filter((id) => outstanding.has(keyOfJob(id)));
      for (const id of ids) await collect(keyOfJob(id));
      if (Date.now() - lastCount > 2000) {
        workerCount = await q.getWorkersCount().catch(() => workerCount);
        lastCount = Date.now();
      }
      const active = (await q.getJobs(['active'], 0, -1)).filter((j) => j.id && outstanding.has(keyOfJob(j.id)));
      const fracOf = (p: unknown) =>
        typeof p === 'object' && p !== null && typeof (p as { frac?: unknown }).frac === 'number'
          ? (p as { frac: number }).frac
          : 0;
      const frac = active.reduce((a, j) => a + fracOf(j.progress), 0);
      const first = active[0];
      running = first
        ? `${cellWhat(first.data.cell, (first.progress as { what?: string })?.what ?? '')
            .replace(/\s+/g, ' ')
            .trim()}${active.length > 1 ? ` (+${active.length - 1} more)` : ''}`
        : 'waiting for a worker';
      progress(frac, `${workerCount} worker${workerCount === 1 ? '' : 's'}, ${active.length} running | ${running}`);
      const nRef = await redis.llen(refusalsKey(queueName));
      if (nRef > refusalsSeen) {
        for (const raw of await redis.lrange(refusalsKey(queueName), refusalsSeen, nRef - 1)) {
          const r = JSON.parse(raw) as { worker: string; protocol: string; problems: string[] };
          if (r.protocol === protocol) log(`worker ${r.worker} refused this study:\n  - ${r.problems.join('\n  - ')}`);
        }
        refusalsSeen = nRef;
      }
      // A job that vanished (Redis restarted without persistence, the queue was emptied by hand) is enqueued again.
      if (Date.now() - lastReconcile > 10_000) {
        const keys = [...outstanding];
        const states = await Promise.all(keys.map((k) => q.getJobState(jobId(k))));
        const lost = keys.filter((_, i) => states[i] === 'unknown').map((k) => byKey.get(k)!);
        if (lost.length > 0) {
          log(`${lost.length} cell job(s) vanished from Redis (server restarted?): enqueued again`);
          await add(lost);
        }
        lastReconcile = Date.now();
      }
      if (ids.length === 0 && outstanding.size > 0) await sleep(o.pollMs ?? 250);
    }
    const diagRan = await runReadyDiagnostics(
      config,
      store,
      diag,
      o.steps.loadModel,
      (what, f) => progress(f, what),
      () => finished++,
    );
    const keys = new Set(cells.map((c) => c.key));
    return {
      cells: cells.length,
      skipped: cells.length - todo.length,
      ran,
      diagnostics: diagRan,
      wallS: (Date.now() - t0) / 1000,
      enqueued,
      pickedUp,
      stalled,
      workers: [...workers].sort(),
      failed: store.cellErrors().filter((e) => keys.has(e.key)),
      coordinator: {
        enqueueMsPerCell: todo.length ? enqueueMs / todo.length : 0,
        collectMsPerCell: ran ? collectMs / ran : 0,
      },
    };
  } finally {
    await q.close();
    redis.disconnect();
  }
}

function errorRow(
  c: StudyConfig,
  protocol: string,
  cell: CellSpec,
  error: string,
  worker: string | null,
  attempts: number,
): CellErrorRow {
  return {
    key: cell.key,
    study: c.name,
    protocol,
    model: cell.model,
    control: cell.control,
    score: cell.scoreLabel,
    sparsity: cell.sparsity,
    source: cell.source,
    seed: cell.seed,
    error,
    worker,
    attempts,
  };
}

/**
 * Refuses absolute dataset and model paths in a config meant for workers: they name the coordinator's disk. Workers
 * resolve relative paths under their own TAPIR_DATA (docs/SCALING.md). Zoo ids and built-in datasets need no path.
 */
export function checkPortable(c: StudyConfig, file: string): void {
  const fix =
    'write it relative to TAPIR_DATA (e.g. folder:cifar10, models/net.onnx) and set TAPIR_DATA to the data folder on every machine';
  const taskPath = (id: string) =>
    id.startsWith('folder:') ? id.slice('folder:'.length).replace(/\[[^\]]*\]$/, '') : null;
  const fields: [string, readonly string[]][] = [
    ['sources', c.sources],
    ['heldout', c.heldout],
    ['calib_data', c.calibData],
  ];
  for (const [field, ids] of fields)
    for (const [i, id] of ids.entries()) {
      const p = taskPath(id.replace(/^mix:/, ''));
      if (p !== null && isAbsolute(p))
        throw new StudyConfigError(
          file,
          `${field}[${i}]`,
          `'${id}' is an absolute path, which workers on other machines do not have`,
          fix,
        );
    }
  for (const [i, m] of c.models.entries())
    if (isAbsolute(m.replace(/^random:/, '')))
      throw new StudyConfigError(
        file,
        `models[${i}]`,
        `'${m}' is an absolute path, which workers on other machines do not have`,
        fix,
      );
}
