/** `tapir eval`: zero-shot transfer of a (pruned / fine-tuned) model to tasks, with ridge heads. */
import { Command } from 'commander';
import cliProgress from 'cli-progress';
import { TapirError } from '../../engine/index.js';
import { disposeGraph, RUNTIMES, type Runtime } from '../../graph/index.js';
import { splitTaskList } from '../../data/index.js';
import {
  applyMaskDir,
  FeatureCache,
  HEAD_MODES,
  openModel,
  pixelBaseline,
  zeroShot,
  type HeadMode,
  type ZeroShotRow,
} from '../../transfer/index.js';
import { emit, table, type Io } from '../output.js';

/** A progress bar on stderr that appears only once work has run for `delayMs` (short runs stay quiet). */
export function lazyBar(
  enabled: boolean,
  label: string,
  delayMs = 2000,
): { update(done: number, total: number, what?: string): void; stop(): void } {
  const t0 = Date.now();
  let bar: cliProgress.SingleBar | null = null;
  return {
    update(done, total, what = '') {
      if (!enabled) return;
      if (!bar && Date.now() - t0 < delayMs) return;
      if (!bar) {
        bar = new cliProgress.SingleBar(
          { stream: process.stderr, format: `${label} {bar} {value}/{total} | {what} | {eta_formatted}` },
          cliProgress.Presets.shades_classic,
        );
        bar.start(total, done, { what });
      }
      bar.setTotal(total);
      bar.update(done, { what });
    },
    stop() {
      bar?.stop();
    },
  };
}

/** A decimal number (no hex, no empty string, no 'Infinity'), as a user writes one on the command line. */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

export function parseNumber(
  opt: string,
  s: string,
  o: { int?: boolean; min?: number; max?: number; maxOpen?: number; positive?: boolean } = {},
): number {
  const n = Number(s);
  const ok =
    DECIMAL.test(s.trim()) &&
    Number.isFinite(n) &&
    (!o.int || Number.isInteger(n)) &&
    (o.min === undefined || n >= o.min) &&
    (!o.positive || n > 0) &&
    (o.max === undefined || n <= o.max) &&
    (o.maxOpen === undefined || n < o.maxOpen);
  const range = [
    o.min !== undefined ? `>= ${o.min}` : '',
    o.positive ? '> 0' : '',
    o.max !== undefined ? `<= ${o.max}` : '',
    o.maxOpen !== undefined ? `< ${o.maxOpen}` : '',
  ]
    .filter((x) => x)
    .join(' and ');
  if (!ok)
    throw new TapirError(
      'E_ARG',
      `${opt} must be ${o.int ? 'an integer' : 'a decimal number'}${range ? ` ${range}` : ''}, got '${s}'`,
      { context: { option: opt }, fix: `e.g. ${opt} ${o.min ?? (o.positive ? 1 : 0)}` },
    );
  return n;
}

/** `auto` or a ridge penalty > 0 (0 makes the ridge system singular on rank-deficient features). */
export function parseAlpha(s: string, opt = '--alpha'): number | 'auto' {
  return s === 'auto' ? 'auto' : parseNumber(opt, s, { positive: true });
}

export function oneOf<T extends string>(opt: string, s: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(s))
    throw new TapirError('E_ARG', `${opt} must be one of ${allowed.join(', ')}, got '${s}'`, {
      context: { option: opt },
      fix: `e.g. ${opt} ${allowed[0]}`,
    });
  return s as T;
}

/** The `--runtime` option of every command that runs feature or eval passes. */
export const RUNTIME_OPTION = [
  '--runtime <name>',
  'inference runtime of feature/eval passes: auto (onnxruntime where the model exports, else libtorch), torch or ort',
  'auto',
] as const;
export const parseRuntime = (s: string): Runtime => oneOf<Runtime>('--runtime', s, RUNTIMES);

interface EvalFlags {
  model: string;
  mask?: string;
  tasks: string;
  head: string;
  alpha: string;
  cap?: string;
  seed: string;
  batchSize: string;
  reference?: string;
  pixels?: boolean;
  runtime: string;
  progress: boolean;
  json?: boolean;
}

export function evalCommand(io: Io): Command {
  return new Command('eval')
    .description("zero-shot transfer: ridge heads on frozen features, accuracy on each task's test split")
    .requiredOption(
      '--model <id|path>',
      'zoo spec (e.g. mobilenet_v2@96), .onnx file, or a `tapir finetune` output directory',
    )
    .option('--mask <dir>', 'directory with mask.safetensors (as `tapir prune` writes) applied to the model')
    .requiredOption('--tasks <a,b,c>', 'comma-separated task ids, e.g. mnist,fashion-mnist[0-4]')
    .option(
      '--head <mode>',
      'dense: head fitted on the unpruned model (zero-shot); refit: on the evaluated backbone',
      'dense',
    )
    .option(
      '--alpha <a>',
      'ridge penalty on standardised features, or auto (chosen per task on a hold-out of the train split)',
      'auto',
    )
    .option('--cap <n>', 'at most this many images per class (all splits together)')
    .option('--seed <n>', 'split seed', '0')
    .option('--batch-size <n>', 'feature-extraction batch size', '64')
    .option(
      '--reference <id|path>',
      "dense model for --head dense (default: the model without mask, or a fine-tuned model's base)",
    )
    .option('--pixels', 'add a raw-pixel ridge baseline row per task')
    .option(...RUNTIME_OPTION)
    .option('--no-progress', 'no progress bar')
    .option('--json', 'print one JSON document')
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .action(async (o: EvalFlags) => {
      const head = oneOf<HeadMode>('--head', o.head, HEAD_MODES);
      const alpha = parseAlpha(o.alpha);
      const runtime = parseRuntime(o.runtime);
      const taskOptions = {
        seed: parseNumber('--seed', o.seed, { int: true, min: 0 }),
        ...(o.cap !== undefined ? { cap: parseNumber('--cap', o.cap, { int: true, min: 3 }) } : {}),
      };
      const batchSize = parseNumber('--batch-size', o.batchSize, { int: true, min: 1 });
      const tasks = splitTaskList(o.tasks);
      if (tasks.length === 0)
        throw new TapirError('E_ARG', '--tasks is empty', { fix: 'e.g. --tasks mnist,fashion-mnist' });
      const m = await openModel(o.model);
      const mask = o.mask ? await applyMaskDir(m.graph, o.mask) : null;
      // The dense reference (its head gives the `dense` column in both modes): loaded only when the evaluated state
      // differs from the base model.
      const needRef =
        o.reference !== undefined ||
        mask !== null ||
        m.kind === 'finetuned' ||
        m.graph.masks.size > 0 ||
        m.base !== o.model;
      const ref = needRef ? (await openModel(o.reference ?? m.base)).graph : null;
      if (ref) for (const msk of ref.masks.values()) msk.dispose();
      ref?.masks.clear();
      const cache = new FeatureCache({ runtime });
      const bar = lazyBar(o.progress && !o.json, 'eval');
      const rows: ZeroShotRow[] = [];
      try {
        rows.push(
          ...(await zeroShot(m.graph, tasks, {
            head,
            alpha,
            taskOptions,
            batchSize,
            cache,
            ...(ref ? { reference: ref } : {}),
            onProgress: (p) => bar.update(p.done, p.total, `${p.task}: ${p.step}`),
          })),
        );
        if (o.pixels)
          for (const t of tasks)
            rows.push(await pixelBaseline(t, { alpha, taskOptions, size: m.graph.preprocessing.size[0] }));
      } finally {
        bar.stop();
        cache.dispose();
        m.head && (m.head.weight.dispose(), m.head.bias.dispose());
        disposeGraph(m.graph);
        if (ref) disposeGraph(ref);
      }
      const doc = {
        model: o.model,
        mask: mask?.file ?? null,
        reference: ref ? (o.reference ?? m.base) : o.model,
        head,
        alpha,
        runtime,
        ...taskOptions,
        rows,
      };
      emit(
        io,
        !!o.json,
        doc,
        () =>
          table(
            ['task', 'classes', 'head', 'accuracy', 'dense', 'retained', 'train', 'test'],
            rows.map((r) => [
              r.task,
              r.classes.length,
              r.head,
              r.accuracy,
              r.denseAccuracy,
              r.denseAccuracy > 0 ? r.accuracy / r.denseAccuracy : 0,
              r.nTrain,
              r.nTest,
            ]),
          ) +
          `\nalpha ${alpha === 'auto' ? `auto (chosen: ${rows.map((r) => r.alpha).join(', ')})` : alpha}; head '${head}'${mask ? `; mask ${mask.file}` : ''}`,
      );
    });
}
