/** `tapir data`: list datasets, fill the cache for tasks, write a montage of a task to check it by eye. */
import { Command } from 'commander';
import cliProgress from 'cli-progress';
import {
  AssetMissingError,
  DataError,
  describeDatasets,
  ensureDigits,
  loadSample,
  loadSplits,
  openTask,
  parseTaskId,
  writeMontage,
  SPLIT_NAMES,
  type Size,
  type SkippedFile,
  type SplitName,
  type Task,
  type TaskOptions,
} from '../../data/index.js';
import { emit, table, type Io } from '../output.js';

interface TaskFlags {
  seed: string;
  cap?: string;
  json?: boolean;
}

interface PrepareRow {
  task: string;
  size: Size;
  classes: readonly string[];
  seed: number;
  cap: number | null;
  counts: Record<string, number>;
  decoded: number;
  cached: number;
  skipped: number;
  skippedFiles: readonly SkippedFile[];
  skippedWhileListing: number;
  rebuiltCacheFiles: string[];
}

export function dataCommand(io: Io): Command {
  const data = new Command('data').description(
    'datasets and tasks: list what is installed, fill the cache, show a montage',
  );
  // addCommand does not pass the parent's output settings on, so each subcommand gets them here.
  const sub = (name: string) =>
    new Command(name).configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) });
  data.addCommand(
    sub('list')
      .description('show each dataset, whether its files are present, its classes and per-class counts')
      .argument('[datasets...]', 'extra datasets to describe, e.g. folder:/data/pets')
      .option('--json', 'print one JSON document')
      .action(async (extra: string[], o: { json?: boolean }) => {
        const infos = await describeDatasets(extra);
        emit(io, !!o.json, { datasets: infos }, () =>
          infos
            .map((d) =>
              d.present
                ? `${d.name}  (${d.total} images, ${d.classes.length} classes${d.officialTest ? ', official test set' : ''}) ${d.path}\n` +
                  table(
                    ['class', 'train', 'test'],
                    d.classes.map((c) => [c.name, c.train, c.test]),
                  ) +
                  Object.entries(d.skipped)
                    .map(([r, n]) => `\nskipped ${n}: ${r}`)
                    .join('')
                : `${d.name}  MISSING: ${d.error?.message}\n  fix: ${d.error?.fix ?? d.install}`,
            )
            .join('\n\n'),
        );
      })
      .exitOverride(),
  );

  data.addCommand(
    taskOptions(sub('prepare'))
      .description(
        'decode and cache the images of tasks at a resolution (progress on stderr); fetches the digits asset if missing',
      )
      .argument('<tasks...>', 'task ids, e.g. fashion-mnist[0-4] mnist clipart folder:/data/pets')
      .option('--size <HxW>', 'resolution to cache, e.g. 96 or 96x96', '96')
      .option('--no-progress', 'no progress bar')
      .action(async (ids: string[], o: TaskFlags & { size: string; progress: boolean }) => {
        const size = parseSize(o.size);
        const rows: PrepareRow[] = [];
        for (const id of ids) {
          const task = await openTaskFetching(id, taskOpts(o));
          const bar =
            o.progress && !o.json
              ? new cliProgress.SingleBar(
                  { stream: process.stderr, format: `${task.id} {bar} {value}/{total} images | {eta_formatted}` },
                  cliProgress.Presets.shades_classic,
                )
              : null;
          bar?.start(
            SPLIT_NAMES.reduce((a, s) => a + task.splits[s].examples.length, 0),
            0,
          );
          try {
            const { sets, stats } = await loadSplits(task, size, SPLIT_NAMES, { onProgress: (d) => bar?.update(d) });
            rows.push({
              task: task.id,
              size,
              classes: task.classes,
              seed: task.seed,
              cap: task.cap,
              counts: Object.fromEntries(SPLIT_NAMES.map((s) => [s, sets[s]!.n])),
              decoded: stats.decoded,
              cached: stats.cached,
              skipped: stats.skipped.length,
              skippedFiles: stats.skipped,
              skippedWhileListing: task.dataset.skipped.length,
              rebuiltCacheFiles: stats.rebuilt,
            });
          } finally {
            bar?.stop();
          }
        }
        emit(
          io,
          !!o.json,
          { prepared: rows },
          () =>
            table(
              ['task', 'classes', 'train', 'calib', 'test', 'decoded', 'cached', 'skipped', 'rebuilt'],
              rows.map((r) => [
                r.task,
                r.classes.length,
                r.counts.train!,
                r.counts.calib!,
                r.counts.test!,
                r.decoded,
                r.cached,
                r.skipped + r.skippedWhileListing,
                r.rebuiltCacheFiles.length,
              ]),
            ) + rows.flatMap((r) => r.skippedFiles.map((s) => `\nskipped ${s.file}: ${s.reason}`)).join(''),
        );
      })
      .exitOverride(),
  );

  data.addCommand(
    taskOptions(sub('show'))
      .description('write a PNG montage of a task (a row of images per class) to check it by eye')
      .argument('<task>', 'task id, e.g. fashion-mnist[0-4]')
      .requiredOption('--out <file.png>', 'output PNG')
      .option('--split <name>', 'train, calib or test', 'train')
      .option('--per-class <n>', 'images per class', '8')
      .option('--size <HxW>', 'cell resolution', '64')
      .action(async (id: string, o: TaskFlags & { out: string; split: string; perClass: string; size: string }) => {
        if (!(SPLIT_NAMES as string[]).includes(o.split))
          throw new DataError(`--split must be one of ${SPLIT_NAMES.join(', ')}, got '${o.split}'`, {
            context: { option: '--split' },
          });
        const task = await openTaskFetching(id, taskOpts(o));
        const set = await loadSample(
          task,
          o.split as SplitName,
          parseSize(o.size),
          positiveInt('--per-class', o.perClass),
        );
        const m = await writeMontage(set, o.out, { perClass: positiveInt('--per-class', o.perClass) });
        const res = { task: task.id, split: o.split, out: o.out, ...m, classes: task.classes, skipped: set.skipped };
        emit(
          io,
          !!o.json,
          res,
          () =>
            `wrote ${o.out}: ${m.width}x${m.height} px, ${m.shown} images, ${task.classes.length} classes (${task.id} ${o.split})` +
            set.skipped.map((s) => `\nskipped ${s.file}: ${s.reason}`).join(''),
        );
      })
      .exitOverride(),
  );
  return data;
}

function taskOptions(c: Command): Command {
  return c
    .option('--seed <n>', 'split seed', '0')
    .option('--cap <n>', 'at most this many images per class (all splits together)')
    .option('--json', 'print one JSON document');
}

function taskOpts(o: TaskFlags): TaskOptions {
  return { seed: nonNegInt('--seed', o.seed), ...(o.cap !== undefined ? { cap: positiveInt('--cap', o.cap) } : {}) };
}

/** `digits` is the one asset tapir can fetch itself (apt-get download + dpkg-deb -x); others need an install. */
async function openTaskFetching(id: string, o: TaskOptions): Promise<Task> {
  try {
    return await openTask(id, o);
  } catch (e) {
    if (!(e instanceof AssetMissingError) || parseTaskId(id).dataset !== 'digits') throw e;
    await ensureDigits();
    return openTask(id, o);
  }
}

function parseSize(s: string): Size {
  const m = /^(\d+)(?:x(\d+))?$/.exec(s.trim());
  const h = m ? Number(m[1]) : NaN;
  const w = m?.[2] !== undefined ? Number(m[2]) : h;
  if (!m || h < 1 || w < 1 || h > 4096 || w > 4096)
    throw new DataError(`--size must be N or HxW in 1..4096, got '${s}'`, {
      context: { option: '--size' },
      fix: 'e.g. --size 96 or --size 224x224',
    });
  return [h, w];
}

function nonNegInt(opt: string, s: string): number {
  const n = Number(s);
  if (!/^\d+$/.test(s.trim()) || !Number.isSafeInteger(n))
    throw new DataError(`${opt} must be a non-negative integer, got '${s}'`, { context: { option: opt } });
  return n;
}

function positiveInt(opt: string, s: string): number {
  const n = nonNegInt(opt, s);
  if (n < 1) throw new DataError(`${opt} must be at least 1, got '${s}'`, { context: { option: opt } });
  return n;
}
