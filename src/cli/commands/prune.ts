/**
 * `tapir prune`: score a model's prunable backbone weights (data-free or on one task's calibration images),
 * allocate a mask, write `<out>/mask.safetensors`, `<out>/model.onnx` (masked weights zeroed) and `<out>/prune.json`.
 * It runs transfer's `pruneOnTask`, the same path as a study cell: same settings, same mask.
 */
import { Command } from 'commander';
import { disposeGraph } from '../../graph/index.js';
import {
  ALLOCATIONS,
  BN_REPAIRS,
  ESTIMATOR_NAMES,
  LOSS_NAMES,
  allocationLabel,
  parseAllocation,
  parseCalibData,
  RECONSTRUCT_TARGETS,
  ACTIVATION_STORES,
  SCHEDULES,
  SCORE_NAMES,
  SCORES,
  type EstimatorName,
  type LossName,
  type Schedule,
  type ScoreName,
} from '../../prune/index.js';
import { openModel, pruneOnTask, savePruned } from '../../transfer/index.js';
import { VERSION } from '../program.js';
import { emit, table, type Io } from '../output.js';
import { lazyBar, oneOf, parseAlpha, parseNumber, parseRuntime, RUNTIME_OPTION } from './eval.js';

interface PruneFlags {
  model: string;
  score: string;
  estimator: string;
  probes: string;
  ggn: string;
  sparsity: string;
  source?: string;
  calib: string;
  calibData: string;
  cap?: string;
  loss: string;
  allocation: string;
  minDensity: string;
  schedule: string;
  rounds: string;
  seed: string;
  dataSeed: string;
  alpha: string;
  blockSize?: string;
  damping?: string;
  target: string;
  activations: string;
  curvature: string;
  compensate?: boolean;
  bn: string;
  batchSize: string;
  out: string;
  runtime: string;
  progress: boolean;
  json?: boolean;
  onnx: boolean;
}

export function pruneCommand(io: Io): Command {
  return new Command('prune')
    .description("score prunable weights (data-free or on one task's calibration images) and write a mask")
    .requiredOption('--model <id|path>', 'zoo spec (e.g. mobilenet_v2@96) or .onnx file')
    .requiredOption('--score <name>', `one of: ${SCORE_NAMES.map((n) => `${n} (${SCORES[n].description})`).join('; ')}`)
    .option('--estimator <name>', `diag-hessian curvature: ${ESTIMATOR_NAMES.join(' | ')}`, 'hutchinson')
    .option('--probes <n>', 'hutchinson Rademacher probes', '8')
    .option('--ggn <variant>', 'ggn: exact (C backward passes) | mc (1 sample)', 'exact')
    .requiredOption('--sparsity <q>', 'fraction of prunable weights to remove, in [0, 1)')
    .option('--source <task>', 'task whose calibration split the score sees (required unless the score is data-free)')
    .option('--calib <n>', 'calibration images (from the train split)', '128')
    .option('--calib-data <what>', 'calibration images: source | noise | <task id> | mix:<task>+<task>…', 'source')
    .option('--alpha <a>', 'ridge penalty of the scoring head on standardised dense features, or auto', 'auto')
    .option('--cap <n>', 'at most this many images per class when splitting the task')
    .option('--loss <name>', `${LOSS_NAMES.join(' | ')} (mse: to one-hot, the authors' harness)`, 'mse')
    .option(
      '--allocation <kind>',
      `${ALLOCATIONS.join(' | ')} | N:M (e.g. 2:4, with --sparsity 1 − N/M); error: densities that minimise the ` +
        'measured error at the features (sparsegpt; error-layer: without the measured gains)',
      'global',
    )
    .option('--min-density <d>', 'every tensor keeps at least this fraction (collapse guard)', '0')
    .option('--schedule <kind>', SCHEDULES.join(' | '), 'oneshot')
    .option('--rounds <R>', 'iterative: rounds', '5')
    .option(
      '--block-size <n>',
      'block-hessian: weights per block (default 64); sparsegpt: columns per block (default 32)',
    )
    .option('--damping <d>', 'block-hessian / sparsegpt: relative damping λ / mean diag (default 0.01)')
    .option(
      '--target <t>',
      `sparsegpt: what each layer is reconstructed toward: ${RECONSTRUCT_TARGETS.join(' | ')}`,
      'dense-weights',
    )
    .option(
      '--activations <store>',
      `sparsegpt: how its layer-by-layer passes hold the calibration images' activations: ${ACTIVATION_STORES.join(' | ')} ` +
        '(half: float16, half the memory, for more calibration images)',
      'full',
    )
    .option('--curvature <kind>', 'block-hessian: fisher | ggn blocks', 'fisher')
    .option('--compensate', 'block-hessian: apply the OBS update to surviving weights')
    .option(
      '--bn <repair>',
      'BN repair after masking: none | reestimate (recompute running statistics on the calibration images) | ' +
        "match-dense (shift/scale each BN output to the dense model's per-channel mean/variance on them)",
      'none',
    )
    .option('--batch-size <n>', 'calibration batch size', '32')
    .option('--seed <n>', 'seed of probes, sampling, random scores and the calibration draw', '0')
    .option('--data-seed <n>', "seed of the task's train/calib/test split", '0')
    .option('--no-onnx', 'do not write model.onnx')
    .option(...RUNTIME_OPTION)
    .requiredOption('--out <dir>', 'output directory')
    .option('--no-progress', 'no progress bar')
    .option('--json', 'print prune.json')
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .action(async (o: PruneFlags) => {
      const scoreName = oneOf<ScoreName>('--score', o.score, SCORE_NAMES);
      const score = SCORES[scoreName];
      const estimator = oneOf<EstimatorName>('--estimator', o.estimator, ESTIMATOR_NAMES);
      const loss = oneOf<LossName>('--loss', o.loss, LOSS_NAMES);
      const sparsity = parseNumber('--sparsity', o.sparsity);
      const seed = parseNumber('--seed', o.seed, { int: true, min: 0 });
      const dataSeed = parseNumber('--data-seed', o.dataSeed, { int: true, min: 0 });
      const calib = parseNumber('--calib', o.calib, { int: true, min: 1 });
      const allocation = parseAllocation(o.allocation);
      const scheduleKind = oneOf('--schedule', o.schedule, SCHEDULES);
      const schedule: Schedule =
        scheduleKind === 'iterative'
          ? { kind: 'iterative', rounds: parseNumber('--rounds', o.rounds, { int: true, min: 1 }) }
          : { kind: 'oneshot' };
      const bn = oneOf('--bn', o.bn, BN_REPAIRS);
      const cap = o.cap !== undefined ? parseNumber('--cap', o.cap, { int: true, min: 3 }) : undefined;
      const blockSize =
        o.blockSize !== undefined ? parseNumber('--block-size', o.blockSize, { int: true, min: 1 }) : undefined;
      const damping = o.damping !== undefined ? parseNumber('--damping', o.damping, { positive: true }) : undefined;
      const block = {
        ...(blockSize !== undefined ? { blockSize } : {}),
        ...(damping !== undefined ? { damping } : {}),
        curvature: oneOf('--curvature', o.curvature, ['fisher', 'ggn'] as const),
        compensate: !!o.compensate,
      };
      const reconstruct = {
        target: oneOf('--target', o.target, RECONSTRUCT_TARGETS),
        activations: oneOf('--activations', o.activations, ACTIVATION_STORES),
        ...(blockSize !== undefined ? { blockSize } : {}),
        ...(damping !== undefined ? { damping } : {}),
      };
      const t0 = performance.now();
      const m = await openModel(o.model, { seed });
      const g = m.graph;
      const bar = lazyBar(o.progress && !o.json, 'prune', 500);
      const loadModelMs = performance.now() - t0;
      try {
        const res = await pruneOnTask(g, {
          score,
          sparsity,
          allocation,
          minDensity: parseNumber('--min-density', o.minDensity, { min: 0 }),
          schedule,
          loss,
          seed,
          estimator,
          probes: parseNumber('--probes', o.probes, { int: true, min: 1 }),
          ggn: oneOf('--ggn', o.ggn, ['exact', 'mc'] as const),
          block,
          reconstruct,
          bn,
          ...(o.source
            ? {
                source: o.source,
                calibration: {
                  n: calib,
                  data: parseCalibData(o.calibData),
                  exact: true,
                  batchSize: parseNumber('--batch-size', o.batchSize, { int: true, min: 1 }),
                },
              }
            : {}),
          taskOptions: () => ({ seed: dataSeed, ...(cap !== undefined ? { cap } : {}) }),
          alpha: parseAlpha(o.alpha),
          runtime: parseRuntime(o.runtime),
          onProgress: (phase, d, t) => bar.update(d, t, phase),
          onStep: (step) => bar.update(0, 1, step),
        });
        const report = res.report;
        bar.stop();
        const doc = await savePruned(
          o.out,
          g,
          {
            tapirVersion: VERSION,
            source: o.source ?? null,
            dataSeed,
            ...report,
            weightsChanged: report.compensated || report.reconstruction !== null,
            calibrationSet: res.calibration,
            taskHead: res.head,
            timings: {
              ...report.timings,
              loadModel: loadModelMs,
              loadData: res.timings.data,
              taskHead: res.timings.head,
            },
          },
          {
            model: o.model,
            onnx: o.onnx,
            maskInfo: {
              score: scoreName,
              estimator: score.needs === 'diag' ? estimator : undefined,
              loss,
              allocation: allocationLabel(allocation),
              schedule: JSON.stringify(schedule),
              sourceTask: o.source,
              calibrationCount: report.calibration.images,
              seed,
              tapirVersion: VERSION,
            },
          },
        );
        for (const w of report.warnings) io.err(`tapir: warning: ${w}`);
        emit(
          io,
          !!o.json,
          doc,
          () =>
            table(
              ['tensor', 'shape', 'kept', 'density'],
              report.tensors.map((t) => [t.name, t.shape.join('x'), t.kept, t.density]),
            ) +
            `\nscore ${scoreName}${score.needs === 'diag' ? ` (${estimator})` : ''}; sparsity ${report.sparsity} → achieved ` +
            `${report.achievedSparsity.toFixed(6)}; ${report.calibration.images} calibration images; wrote ${o.out}`,
        );
      } finally {
        bar.stop();
        disposeGraph(g);
      }
    });
}
