/**
 * `tapir prune`: score a model's prunable weights on one task's calibration images (or data-free), allocate a
 * mask, write `<out>/mask.safetensors`, `<out>/model.onnx` (masked weights zeroed) and `<out>/prune.json`.
 * Data-dependent scores read the loss through a task head: a class-balanced ridge head fitted on the dense
 * model's features of the same calibration images (the model's own classifier predicts other classes); the head
 * is never pruned.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';
import { noGrad, scope, TapirError, tensor } from '../../engine/index.js';
import { disposeGraph, exportOnnx, writeMaskFile } from '../../graph/index.js';
import { batches as makeBatches, loadSplit, openTask } from '../../data/index.js';
import { ALLOCATIONS, BN_REPAIRS, denseCopy, ESTIMATOR_NAMES, LOSS_NAMES, prune, repairBatchNorm, SCHEDULES, SCORE_NAMES, SCORES, type Allocation, type CalibBatch, type EstimatorName, type LossName, type Schedule, type ScoreName } from '../../prune/index.js';
import { disposeHead, extractFeatures, fitRidgeHead, openModel, preprocessOf, ridgeToLinear, withTaskHead, disposeTaskHead } from '../../transfer/index.js';
import { VERSION } from '../program.js';
import { emit, table, type Io } from '../output.js';
import { lazyBar, oneOf, parseNumber } from './eval.js';

interface PruneFlags {
  model: string; score: string; estimator: string; probes: string; ggn: string; sparsity: string; source?: string; calib: string; cap?: string;
  loss: string; allocation: string; minDensity: string; schedule: string; rounds: string; seed: string; blockSize: string; damping: string;
  curvature: string; compensate?: boolean; bn: string; batchSize: string; out: string; progress: boolean; json?: boolean; onnx: boolean;
}

async function writeAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

/** The first `n` images of the shuffled calibration split, as batches (fewer if the split is smaller). */
function calibBatches(set: Parameters<typeof makeBatches>[0], pre: Parameters<typeof makeBatches>[1], n: number, batchSize: number, seed: number): CalibBatch[] {
  const out: CalibBatch[] = [];
  let have = 0;
  for (const b of makeBatches(set, pre, { batchSize, shuffle: true, seed })) {
    if (have >= n) { b.x.dispose(); b.y.dispose(); continue; }
    const k = Math.min(b.x.shape[0]!, n - have);
    if (k === b.x.shape[0]) out.push({ x: b.x, y: b.y });
    else {
      out.push(scope(() => ({ x: b.x.narrow(0, 0, k).contiguous(), y: b.y.narrow(0, 0, k).contiguous() })));
      b.x.dispose();
      b.y.dispose();
    }
    have += k;
  }
  return out;
}

export function pruneCommand(io: Io): Command {
  return new Command('prune')
    .description('score prunable weights (data-free or on one task\'s calibration images) and write a mask')
    .requiredOption('--model <id|path>', 'zoo spec (e.g. mobilenet_v2@96) or .onnx file')
    .requiredOption('--score <name>', `one of: ${SCORE_NAMES.map((n) => `${n} (${SCORES[n].description})`).join('; ')}`)
    .option('--estimator <name>', `diag-hessian curvature: ${ESTIMATOR_NAMES.join(' | ')}`, 'hutchinson')
    .option('--probes <n>', 'hutchinson Rademacher probes', '8')
    .option('--ggn <variant>', 'ggn: exact (C backward passes) | mc (1 sample)', 'exact')
    .requiredOption('--sparsity <q>', 'fraction of prunable weights to remove, in [0, 1)')
    .option('--source <task>', 'task whose calibration split the score sees (required unless the score is data-free)')
    .option('--calib <n>', 'calibration images', '128')
    .option('--cap <n>', 'at most this many images per class when splitting the task')
    .option('--loss <name>', `${LOSS_NAMES.join(' | ')} (mse: to one-hot, the authors' harness)`, 'mse')
    .option('--allocation <kind>', ALLOCATIONS.join(' | '), 'global')
    .option('--min-density <d>', 'every tensor keeps at least this fraction (collapse guard)', '0')
    .option('--schedule <kind>', SCHEDULES.join(' | '), 'oneshot')
    .option('--rounds <R>', 'iterative: rounds', '5')
    .option('--block-size <n>', 'block-hessian: weights per block', '64')
    .option('--damping <d>', 'block-hessian: relative damping λ / mean diag', '0.01')
    .option('--curvature <kind>', 'block-hessian: fisher | ggn blocks', 'fisher')
    .option('--compensate', 'block-hessian: apply the OBS update to surviving weights')
    .option('--bn <repair>', 'BN repair after masking: none | reestimate (recompute running statistics on the calibration images) | match-dense (shift/scale each BN output to the dense model\'s per-channel mean/variance on them)', 'none')
    .option('--batch-size <n>', 'calibration batch size', '32')
    .option('--seed <n>', 'seed of probes, sampling, random scores and the calibration draw', '0')
    .option('--no-onnx', 'do not write model.onnx')
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
      const calib = parseNumber('--calib', o.calib, { int: true, min: 1 });
      const allocation = { kind: oneOf('--allocation', o.allocation, ALLOCATIONS) } as Allocation;
      const scheduleKind = oneOf('--schedule', o.schedule, SCHEDULES);
      const schedule: Schedule = scheduleKind === 'iterative' ? { kind: 'iterative', rounds: parseNumber('--rounds', o.rounds, { int: true, min: 1 }) } : { kind: 'oneshot' };
      const bn = oneOf('--bn', o.bn, BN_REPAIRS);
      const block = {
        blockSize: parseNumber('--block-size', o.blockSize, { int: true, min: 1 }), damping: parseNumber('--damping', o.damping, { positive: true }),
        curvature: oneOf('--curvature', o.curvature, ['fisher', 'ggn'] as const), compensate: !!o.compensate,
      };
      const needData = !score.dataFree || bn !== 'none';
      if (needData && !o.source) throw new TapirError('E_ARG', `--score ${scoreName}${score.dataFree ? ` with --bn ${bn}` : ''} needs calibration images: pass --source <task>`, { context: { option: '--source' }, fix: '--source fashion-mnist[0-4] (or a data-free score: magnitude, synflow, random)' });
      const t0 = performance.now();
      const m = await openModel(o.model, { seed });
      const g = m.graph;
      const bar = lazyBar(o.progress && !o.json, 'prune', 500);
      let batches: CalibBatch[] = [];
      let hg = g;
      // match-dense needs the unpruned model as the reference: an own copy of its tensors, taken before masking.
      let dense: typeof g | null = null;
      const loadMs = { model: performance.now() - t0, data: 0, head: 0 };
      try {
        if (o.source) {
          const t1 = performance.now();
          const task = await openTask(o.source, { seed, ...(o.cap !== undefined ? { cap: parseNumber('--cap', o.cap, { int: true, min: 3 }) } : {}) });
          const pre = preprocessOf(g);
          const set = await loadSplit(task, 'calib', pre.size);
          batches = calibBatches(set, pre, calib, parseNumber('--batch-size', o.batchSize, { int: true, min: 1 }), seed);
          loadMs.data = performance.now() - t1;
          if (!score.dataFree) {
            const t2 = performance.now();
            const x = scope(() => noGrad(() => extractFeatures(g, set, { batchSize: 64 })));
            const yAll = tensor(BigInt64Array.from(set.labels, (v) => BigInt(v)), [set.n]);
            const head = fitRidgeHead(x, yAll, { numClasses: task.classes.length });
            hg = withTaskHead(g, ridgeToLinear(head, g.params.values().next().value!.tensor.dtype));
            disposeHead(head);
            x.dispose();
            yAll.dispose();
            loadMs.head = performance.now() - t2;
          }
        }
        if (bn === 'match-dense') dense = denseCopy(g);
        const report = prune(hg, {
          score, sparsity, allocation, minDensity: parseNumber('--min-density', o.minDensity, { min: 0 }), schedule, batches, calib: o.source ? calib : undefined, loss, seed,
          estimator, probes: parseNumber('--probes', o.probes, { int: true, min: 1 }), ggn: oneOf('--ggn', o.ggn, ['exact', 'mc'] as const), block, bn: 'none',
          onProgress: (phase, d, t) => bar.update(d, t, phase),
        });
        // BN repair after the masks (and any OBS compensation), before anything is written.
        const tb = performance.now();
        const repair = repairBatchNorm(g, dense ?? g, batches, bn);
        report.timings.bn = performance.now() - tb;
        bar.stop();
        await mkdir(o.out, { recursive: true });
        const t3 = performance.now();
        await writeMaskFile(join(o.out, 'mask.safetensors'), g, {
          score: scoreName, estimator: score.needs === 'diag' ? estimator : undefined, loss, allocation: allocation.kind, schedule: JSON.stringify(schedule),
          sourceTask: o.source, calibrationCount: report.calibration.images, seed, tapirVersion: VERSION,
        });
        if (o.onnx) await exportOnnx(g, join(o.out, 'model.onnx'));
        const doc = {
          format: 'tapir-prune/1', tapirVersion: VERSION, model: o.model, source: o.source ?? null, ...report,
          bn: { mode: repair.mode, layers: repair.layers, degenerate: repair.degenerate }, batchNormsReestimated: bn === 'reestimate' ? repair.layers : 0,
          timings: { ...report.timings, loadModel: loadMs.model, loadData: loadMs.data, taskHead: loadMs.head, write: performance.now() - t3 },
          taskHead: hg !== g ? 'ridge head on the dense model\'s features of the calibration split (not pruned)' : null,
          files: { mask: 'mask.safetensors', model: o.onnx ? 'model.onnx' : null },
        };
        await writeAtomic(join(o.out, 'prune.json'), JSON.stringify(doc, null, 2) + '\n');
        for (const w of report.warnings) io.err(`tapir: warning: ${w}`);
        emit(io, !!o.json, doc, () => table(['tensor', 'shape', 'kept', 'density'], report.tensors.map((t) => [t.name, t.shape.join('x'), t.kept, t.density]))
          + `\nscore ${scoreName}${score.needs === 'diag' ? ` (${estimator})` : ''}; sparsity ${report.sparsity} → achieved ${report.achievedSparsity.toFixed(6)}; ${report.calibration.images} calibration images; wrote ${o.out}`);
      } finally {
        bar.stop();
        for (const b of batches) { b.x.dispose(); b.y.dispose(); }
        if (hg !== g) disposeTaskHead(hg);
        if (dense) disposeGraph(dense);
        disposeGraph(g);
      }
    });
}
