/** `tapir worker --redis URL`: runs study cells from a Redis queue until stopped (docs/SCALING.md). */
import { Command } from 'commander';
import { TapirError } from '../../engine/index.js';
import { DEFAULT_QUEUE, runWorker } from '../../study/index.js';
import { emit, table, type Io } from '../output.js';
import { parseNumber } from './eval.js';

/** BullMQ queue names: no ':' (it separates Redis key parts). */
export function parseQueueName(s: string): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(s))
    throw new TapirError('E_USAGE', `--queue '${s}': letters, digits, '_', '.', '-' only`, {
      fix: `pass e.g. --queue ${DEFAULT_QUEUE}-mine (the coordinator and its workers must use the same name)`,
    });
  return s;
}

export function workerCommand(io: Io): Command {
  return new Command('worker')
    .description(
      'run study cells from a Redis queue (what `tapir study <config> --redis URL` enqueues) until stopped; see docs/SCALING.md',
    )
    .requiredOption('--redis <url>', 'Redis of the study, e.g. redis://host:6379')
    .option('--queue <name>', "queue name (the same as the coordinator's --queue)", DEFAULT_QUEUE)
    .option(
      '--concurrency <n>',
      'cells at once, each in its own process with TAPIR_THREADS = cores / n unless TAPIR_THREADS is set',
      '1',
    )
    .option('--lock-duration <ms>', 'a worker silent this long is taken for dead and its cell handed on', '30000')
    .option('--stalled-interval <ms>', 'how often this worker looks for cells of dead workers', '30000')
    .option(
      '--idle-exit <s>',
      'stop once the queue has been empty this long (0: run until stopped with Ctrl-C / SIGTERM)',
      '0',
    )
    .option('--json', 'print one JSON document when the worker stops')
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .action(
      async (o: {
        redis: string;
        queue: string;
        concurrency: string;
        lockDuration: string;
        stalledInterval: string;
        idleExit: string;
        json?: boolean;
      }) => {
        const concurrency = parseNumber('--concurrency', o.concurrency, { int: true, min: 1 });
        const lockDurationMs = parseNumber('--lock-duration', o.lockDuration, { int: true, min: 1000 });
        const stalledIntervalMs = parseNumber('--stalled-interval', o.stalledInterval, { int: true, min: 100 });
        const idleExitS = parseNumber('--idle-exit', o.idleExit, { min: 0 });
        const queue = parseQueueName(o.queue);
        // The first Ctrl-C / SIGTERM finishes the running cells and stops; a second one ends the process at once.
        const stop = new AbortController();
        const onSignal = (sig: NodeJS.Signals) => {
          if (stop.signal.aborted) process.kill(process.pid, sig);
          io.err(`worker: ${sig}: finishing the running cells, then stopping (again to stop at once)`);
          stop.abort();
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        try {
          const s = await runWorker({
            redis: o.redis,
            queue,
            concurrency,
            lockDurationMs,
            stalledIntervalMs,
            idleExitS,
            signal: stop.signal,
            log: (l) => io.err(l),
          });
          emit(
            io,
            !!o.json,
            s,
            () =>
              `${table(
                ['cell', 'what', 'state', 'seconds'],
                s.cells.map((c) => [c.key, c.label, c.state, c.wallS]),
              )}\n\n` +
              `${s.cells.filter((c) => c.state === 'done').length} cells done, ${s.cells.filter((c) => c.state === 'failed').length} failed, by ` +
              `${s.name} (${s.build}) in ${s.wallS.toFixed(1)} s`,
          );
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      },
    );
}
