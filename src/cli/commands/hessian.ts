/**
 * `tapir hessian`: second-order diagnostics of a model on several tasks. Each task reads the
 * backbone's features through its own scale-free ridge head (fitted on the DENSE model's features of the task's
 * training images), so every task's loss is a function of the same backbone weights; the analysis then runs on
 * the prunable backbone weights only (heads fixed). Library work: study (the task inputs, shared with the study's
 * `diagnostics` section), analysis (everything else).
 */
import { Command } from 'commander';
import { existsSync } from 'node:fs';
import { TapirError, type Tensor } from '../../engine/index.js';
import { disposeGraph } from '../../graph/index.js';
import { splitTaskList } from '../../data/index.js';
import { applyMaskDir, openModel } from '../../transfer/index.js';
import { LOSS_NAMES, runDiagnostics, type DiagnosticsReport, type LossName } from '../../analysis/index.js';
import { buildTaskInputs, type HeadInfo, type TaskInputs } from '../../study/diagnostics-inputs.js';
import { emit, table, type Io } from '../output.js';
import { lazyBar, oneOf, parseNumber } from './eval.js';

interface HessianFlags {
  model: string;
  size: string;
  tasks: string;
  mask?: string;
  loss: string;
  images: string;
  headImages: string;
  probes: string;
  k: string;
  steps?: string;
  sparsity: string;
  batchSize: string;
  alpha: string;
  seed: string;
  layers?: boolean;
  progress: boolean;
  json?: boolean;
}

/** Defaults sized so 3 tasks on mobilenet_v2@64 finish within 10 minutes on 2 cores (docs/ANALYSIS.md). */
export const HESSIAN_DEFAULTS = {
  size: 64,
  images: 32,
  headImages: 30,
  probes: 16,
  k: 4,
  sparsity: '0.5,0.9',
  batchSize: 32,
  loss: 'mse' as LossName,
  alpha: 'images',
};

export function hessianCommand(io: Io): Command {
  const d = HESSIAN_DEFAULTS;
  return new Command('hessian')
    .description(
      'curvature of the loss on each task: Hessian trace, top eigenvalues, cross-task alignment, predicted vs measured loss change of a mask',
    )
    .requiredOption(
      '--model <id|path>',
      'zoo spec (e.g. mobilenet_v2, random:mobilenet_v2 for the control) or .onnx file',
    )
    .option('--size <px>', 'input resolution for zoo conv nets given without @size', String(d.size))
    .requiredOption('--tasks <a,b,c>', 'comma-separated task ids, e.g. clipart,emoji,fashion-mnist')
    .option(
      '--mask <dir>',
      "mask (mask.safetensors, as `tapir prune` writes) whose loss change to predict and measure; default: the first task's OBD masks",
    )
    .option('--loss <name>', `loss: ${LOSS_NAMES.join(' | ')}`, d.loss)
    .option('--images <n>', 'calibration images per task the curvature is taken over', String(d.images))
    .option('--head-images <n>', "training images per class for each task's ridge head", String(d.headImages))
    .option('--probes <n>', 'Rademacher probes per task (trace, diagonal, per-layer traces)', String(d.probes))
    .option('--k <n>', 'top eigenvalues per task (Lanczos)', String(d.k))
    .option('--steps <n>', 'Lanczos steps (default max(2k + 10, 20))')
    .option('--sparsity <list>', 'sparsities for mask IoU and the loss-change table', d.sparsity)
    .option('--batch-size <n>', 'images per HVP batch', String(d.batchSize))
    .option(
      '--alpha <a>',
      'ridge penalty of the task heads (standardised features): a number, images (= the number of head training images) or auto (per task from 100, ' +
        '1000, 10000)',
      d.alpha,
    )
    .option('--seed <n>', 'seed of probes, Lanczos start and task splits', '0')
    .option('--layers', 'print the per-layer trace table')
    .option('--no-progress', 'no progress bar')
    .option('--json', 'print one JSON document')
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .action(async (o: HessianFlags) => {
      const loss = oneOf<LossName>('--loss', o.loss, LOSS_NAMES);
      const int = (opt: string, s: string, min = 1) => parseNumber(opt, s, { int: true, min });
      const images = int('--images', o.images);
      const headImages = int('--head-images', o.headImages);
      const probes = int('--probes', o.probes, 2);
      const k = int('--k', o.k);
      const steps = o.steps === undefined ? undefined : int('--steps', o.steps);
      const batchSize = int('--batch-size', o.batchSize);
      const seed = int('--seed', o.seed, 0);
      const alpha =
        o.alpha.trim() === 'auto' || o.alpha.trim() === 'images'
          ? (o.alpha.trim() as 'auto' | 'images')
          : parseNumber('--alpha', o.alpha, { min: 0 });
      const sparsities = o.sparsity.split(',').map((s) => parseNumber('--sparsity', s, { min: 0 }));
      for (const q of sparsities)
        if (q >= 1)
          throw new TapirError('E_ARG', `--sparsity values must be in [0, 1), got ${q}`, {
            fix: 'e.g. --sparsity 0.5,0.9',
          });
      const ids = splitTaskList(o.tasks);
      if (ids.length === 0) throw new TapirError('E_ARG', '--tasks is empty', { fix: 'e.g. --tasks clipart,emoji' });
      const spec =
        /^(random:)?[A-Za-z0-9_]+$/.test(o.model.trim()) && !existsSync(o.model)
          ? `${o.model.trim()}@${int('--size', o.size, 16)}`
          : o.model;

      const bar = lazyBar(o.progress && !o.json, 'hessian', 500);
      const m = await openModel(spec);
      const g = m.graph;
      let built: TaskInputs | undefined;
      let givenMask: Map<string, Tensor> | undefined;
      try {
        if (o.mask) {
          await applyMaskDir(g, o.mask);
          // Analyse at the dense weights; the mask is the perturbation whose effect is predicted.
          givenMask = new Map(g.masks);
          g.masks.clear();
        }
        built = await buildTaskInputs(g, ids, {
          images,
          headImages,
          alpha,
          batchSize,
          taskOptions: () => ({ seed }),
          onProgress: (what, done, total) => bar.update(done, total, what),
        });
        const inputs = built.inputs;
        const report = runDiagnostics(inputs, {
          loss,
          probes,
          k,
          ...(steps !== undefined ? { steps } : {}),
          seed,
          sparsities,
          ...(givenMask ? { mask: givenMask } : {}),
          onProgress: (stage, done, total) => bar.update(done, total, stage),
        });
        bar.stop();
        const heads = built.heads;
        const doc = { model: spec, heads, ...report };
        emit(io, !!o.json, doc, () => renderReport(spec, report, !!o.layers, heads));
      } finally {
        bar.stop();
        built?.dispose();
        for (const t of givenMask?.values() ?? []) t.dispose();
        disposeGraph(g);
      }
    });
}

const f = (x: number, d = 4) =>
  Number.isFinite(x)
    ? Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-3 && x !== 0)
      ? x.toExponential(d - 1)
      : x.toFixed(d)
    : String(x);

export function renderReport(
  model: string,
  r: DiagnosticsReport,
  layers: boolean,
  heads: readonly HeadInfo[] = [],
): string {
  const s = r.settings;
  const out: string[] = [];
  out.push(
    `model ${model}: ${r.params.count} prunable weights in ${r.params.tensors} tensors; loss ${s.loss}; ${s.probes} probes, k ${s.k}, ` +
      `${s.steps} Lanczos steps, seed ${s.seed}`,
  );
  if (heads.length > 0) {
    out.push('', 'Task heads (scale-free ridge heads on the dense features; docs/ANALYSIS.md)');
    out.push(
      table(
        ['task', 'classes', 'train images', 'alpha', 'train accuracy', 'feature rms'],
        heads.map((h) => [h.task, h.classes, h.images, String(h.alpha), f(h.trainAccuracy, 3), f(h.featureRms, 3)]),
      ),
    );
  }
  out.push(
    '',
    "Spectrum per task (Hessian of the mean loss over the task's calibration images; Σθ²Hⱼⱼ / L is scale-free)",
  );
  out.push(
    table(
      [
        'task',
        'images',
        'loss',
        'trace',
        '± stderr',
        'top eigenvalues',
        'max residual',
        'Σθ²Hⱼⱼ',
        '± stderr',
        'Σθ²Hⱼⱼ / L',
      ],
      r.tasks.map((t) => [
        t.task,
        t.images,
        f(t.loss),
        f(t.trace.estimate),
        f(t.trace.stderr),
        t.topEigenvalues.map((v) => f(v, 3)).join(' '),
        f(Math.max(...t.residuals), 2),
        f(t.weightedTrace.estimate),
        f(t.weightedTrace.stderr),
        f(t.weightedTrace.estimate / t.loss),
      ]),
    ),
  );
  if (layers)
    for (const t of r.tasks) {
      out.push('', `Per-layer trace, ${t.task} (block of H; same probes)`);
      out.push(
        table(
          ['tensor', 'size', 'trace', '± stderr'],
          (t.layers ?? []).map((l) => [l.name, l.size, f(l.trace), f(l.stderr)]),
        ),
      );
    }
  if (r.pairs.length > 0) {
    out.push(
      '',
      'Cross-task alignment (diag: Hutchinson Hessian diagonals; overlap: mean cos² of principal angles of top-k eigenvectors; IoU: OBD masks)',
    );
    out.push(
      table(
        [
          'task a',
          'task b',
          'diag cosine',
          'diag spearman',
          `top-${s.k} overlap`,
          ...s.sparsities.map((q) => `IoU@${q}`),
        ],
        r.pairs.map((p) => [
          p.a,
          p.b,
          f(p.diagCosine),
          f(p.diagSpearman),
          f(p.eigenOverlap),
          ...p.maskIoU.map((x) => f(x.iou)),
        ]),
      ),
    );
  }
  out.push('', `Predicted vs measured loss change of the mask (mask from: ${r.lossChange[0]?.maskFrom ?? '-'})`);
  out.push(
    table(
      ['task', 'sparsity', 'gᵀδ', 'gᵀδ + ½δᵀHδ', 'measured ΔL'],
      r.lossChange.map((x) => [x.task, f(x.sparsity, 3), f(x.firstOrder), f(x.secondOrder), f(x.measured)]),
    ),
  );
  return out.join('\n');
}
