/** `tapir study <config.yaml>`: runs a study grid into a SQLite file (resumable), then prints its summary table. */
import { Command } from 'commander';
import cliProgress from 'cli-progress';
import { TapirError } from '../../engine/index.js';
import {
  checkPortable,
  connectRedis,
  defaultSteps,
  expandGrid,
  runStudyOnQueue,
  type QueueRunSummary,
  loadStudy,
  markdownTable,
  phaseProfile,
  readReport,
  reportTables,
  resolveStudy,
  runStudy,
  StudyStore,
  type RunSummary,
  type StudyConfig,
  type StudyProgress,
} from '../../study/index.js';
import { emit, type Io } from '../output.js';
import { parseNumber } from './eval.js';
import { parseQueueName } from './worker.js';

/**
 * Progress with ETA on stderr (units: cells; the running cell advances by its stages): a bar on a terminal, one
 * line per stage otherwise (logs, CI, the resume test reads these lines).
 */
export function studyBar(
  enabled: boolean,
  stream: NodeJS.WriteStream = process.stderr,
): { update(p: StudyProgress): void; stop(): void } {
  let bar: cliProgress.SingleBar | null = null;
  const t0 = Date.now();
  let last = '';
  return {
    update(p) {
      if (!enabled || p.total === 0) return;
      if (!stream.isTTY) {
        if (p.what === last) return;
        last = p.what;
        const el = (Date.now() - t0) / 1000;
        const eta = p.done > 0 ? `${Math.round((el / p.done) * (p.total - p.done))} s` : '?';
        stream.write(`study ${p.done.toFixed(2)}/${p.total} cells | ${el.toFixed(0)} s | ETA ${eta} | ${p.what}\n`);
        return;
      }
      if (!bar) {
        bar = new cliProgress.SingleBar(
          {
            stream,
            format: 'study {bar} {percentage}% | {value}/{total} cells | ETA {eta_formatted} | {what}',
            etaBuffer: 50,
            fps: 2,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(p.total, 0, { what: p.what });
      }
      bar.update(Math.round(p.done * 100) / 100, { what: p.what.slice(0, 60) });
    },
    stop() {
      bar?.stop();
    },
  };
}

/** Grids larger than this need --yes; the estimate uses a rough per-cell time (MobileNetV2 at 96 px, no fine-tuning). */
const BIG_GRID = 1000;
const SECONDS_PER_CELL = 60;

/** Runs `config` into `db` with a progress bar; returns the run summary and the summary table rows. */
export async function runWithProgress(
  config: StudyConfig,
  db: string,
  o: { progress: boolean; maxCells?: number },
): Promise<{ run: RunSummary; store: StudyStore }> {
  const store = new StudyStore(db);
  const bar = studyBar(o.progress);
  try {
    const run = await runStudy(config, store, {
      steps: defaultSteps,
      onProgress: (p) => bar.update(p),
      ...(o.maxCells ? { maxCells: o.maxCells } : {}),
    });
    return { run, store };
  } catch (e) {
    store.close();
    throw e;
  } finally {
    bar.stop();
  }
}

export function studyCommand(io: Io): Command {
  return new Command('study')
    .description(
      'run a study grid (models × scores × sparsities × sources × seeds) into SQLite; re-running skips finished cells',
    )
    .argument('<config>', 'study config (YAML); see docs/STUDY.md and studies/demo.yaml')
    .option('--db <file>', 'results database', 'results.sqlite')
    .option('--max-cells <n>', 'stop after this many new cells')
    .option('--no-progress', 'no progress bar')
    .option('--profile', "also print where the time went: seconds per phase over the study's cells")
    .option(
      '--yes',
      `start a grid of more than ${BIG_GRID} cells (without it, tapir prints the grid's size and estimated time and stops)`,
    )
    .option(
      '--redis <url>',
      'spread the cells over `tapir worker` processes on any machine through this Redis, e.g. redis://host:6379 (docs/SCALING.md)',
    )
    .option('--queue <name>', 'with --redis: the queue name (workers pass the same)', 'tapir')
    .option('--retry-failed', 'with --redis: enqueue again the cells whose failure is stored (after fixing its cause)')
    .option('--json', 'print one JSON document')
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .action(
      async (
        file: string,
        o: {
          db: string;
          maxCells?: string;
          progress: boolean;
          profile?: boolean;
          yes?: boolean;
          json?: boolean;
          redis?: string;
          queue: string;
          retryFailed?: boolean;
        },
      ) => {
        const config = loadStudy(file);
        const maxCells =
          o.maxCells === undefined ? undefined : parseNumber('--max-cells', o.maxCells, { int: true, min: 1 });
        // Everything the grid needs must resolve before the database is created or touched.
        await resolveStudy(config, file);
        const cells = expandGrid(config).length;
        if (cells > BIG_GRID && !o.yes)
          throw new TapirError(
            'E_BIG_GRID',
            `${file} expands to ${cells} cells, about ${((cells * SECONDS_PER_CELL) / 3600).toFixed(1)} h at ~${SECONDS_PER_CELL} s a cell on 2 cores`,
            {
              context: { cells },
              fix: 'pass --yes to start it (it resumes if stopped), or shrink the grid (fewer scores, sparsities, sources, seeds or axis values)',
            },
          );
        if (o.redis && maxCells)
          throw new TapirError('E_USAGE', '--max-cells does not combine with --redis', {
            fix: 'drop --max-cells (stop the workers to pause a study on a queue; it resumes)',
          });
        if (!o.redis && o.retryFailed)
          throw new TapirError(
            'E_USAGE',
            '--retry-failed needs --redis (a single-machine run stops at a failing cell and retries it when rerun)',
            { fix: 'drop --retry-failed, or add --redis URL' },
          );
        if (o.redis) {
          checkPortable(config, file);
          return runOnQueue(io, config, file, {
            db: o.db,
            redis: o.redis,
            queue: parseQueueName(o.queue),
            retryFailed: !!o.retryFailed,
            progress: o.progress && !o.json,
            json: !!o.json,
          });
        }
        const { run, store } = await runWithProgress(config, o.db, {
          progress: o.progress && !o.json,
          ...(maxCells ? { maxCells } : {}),
        });
        try {
          const data = readReport(store);
          const summary = reportTables(data)[0]!;
          const prof = o.profile ? phaseProfile(data) : null;
          const profText = prof
            ? `\n\n${markdownTable({
                title: `Time per phase (${prof.cells} cells)`,
                header: ['phase', 'seconds', 'share', 'per cell (s)'],
                rows: prof.rows.map((r) => [
                  r.phase,
                  r.seconds.toFixed(1),
                  `${(100 * r.share).toFixed(1)}%`,
                  r.perCell.toFixed(1),
                ]),
              })}`
            : '';
          emit(
            io,
            !!o.json,
            {
              db: o.db,
              run,
              summary: { header: summary.header, rows: summary.rows },
              ...(prof ? { profile: prof } : {}),
            },
            () =>
              `${markdownTable(summary)}${profText}\n\n${run.ran} cells run, ${run.skipped} already done, ${run.wallS.toFixed(1)} s; results in ${o.db}`,
          );
        } finally {
          store.close();
        }
      },
    );
}

/** `tapir study --redis`: the coordinator (src/study/queue/coordinator.ts), then the same summary table. */
async function runOnQueue(
  io: Io,
  config: StudyConfig,
  file: string,
  o: { db: string; redis: string; queue: string; retryFailed: boolean; progress: boolean; json: boolean },
): Promise<void> {
  // An unreachable Redis fails before the database is created.
  (await connectRedis(o.redis)).disconnect();
  const store = new StudyStore(o.db);
  const bar = studyBar(o.progress);
  let run: QueueRunSummary;
  try {
    run = await runStudyOnQueue(config, store, {
      redis: o.redis,
      queue: o.queue,
      retryFailed: o.retryFailed,
      steps: defaultSteps,
      onProgress: (p) => bar.update(p),
      log: (l) => io.err(`study: ${l}`),
    });
  } catch (e) {
    store.close();
    throw e;
  } finally {
    bar.stop();
  }
  try {
    const summary = reportTables(readReport(store))[0]!;
    const failed = run.failed.map(
      (f) =>
        `${f.key} (${f.model} ${f.score} ${Math.round(f.sparsity * 100)}% ${f.source} seed ${f.seed}${f.worker ? `, on ${f.worker}` : ''}): ${f.error}`,
    );
    if (!o.json) {
      io.out(
        `${markdownTable(summary)}\n\n${run.ran} cells run by ` +
          `${run.workers.length} worker${run.workers.length === 1 ? '' : 's'} (${run.enqueued} enqueued, ${run.pickedUp} picked up finished from Redis, ` +
          `${run.stalled} handed on after a worker died), ${run.skipped} already done, ${run.failed.length} failed, ${run.wallS.toFixed(1)} s; coordinator ` +
          `${run.coordinator.enqueueMsPerCell.toFixed(2)} ms a cell to enqueue, ${run.coordinator.collectMsPerCell.toFixed(2)} ms to collect; results ` +
          `in ${o.db}`,
      );
    }
    if (run.failed.length > 0)
      throw new TapirError(
        'E_CELLS_FAILED',
        `${run.failed.length} cell${run.failed.length === 1 ? '' : 's'} of ${file} failed (stored in ${o.db}, table cell_errors; tapir report shows ` +
          `them):\n  - ${failed.join('\n  - ')}`,
        {
          context: { db: o.db, run },
          fix: `fix what the error names, then rerun with --retry-failed to run ${run.failed.length === 1 ? 'it' : 'them'} again`,
        },
      );
    if (o.json) emit(io, true, { db: o.db, run, summary: { header: summary.header, rows: summary.rows } }, () => '');
  } finally {
    store.close();
  }
}
