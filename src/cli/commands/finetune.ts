/** `tapir finetune`: masked fine-tuning on the source task; writes weights, mask and finetune.json to --out. */
import { Command } from 'commander';
import { mkdir } from 'node:fs/promises';
import { TapirError } from '../../engine/index.js';
import { disposeGraph } from '../../graph/index.js';
import {
  applyMaskDir,
  finetune,
  openModel,
  OPTIMIZER_NAMES,
  removeCheckpoint,
  saveFinetuned,
  type BnPolicy,
  type FinetuneLoss,
  type HeadInit,
  type LrSchedule,
  type OptimizerName,
} from '../../transfer/index.js';
import { emit, table, type Io } from '../output.js';
import { lazyBar, oneOf, parseAlpha, parseNumber, parseRuntime, RUNTIME_OPTION } from './eval.js';

interface FinetuneFlags {
  model: string;
  mask?: string;
  task: string;
  epochs?: string;
  steps?: string;
  batchSize: string;
  lr?: string;
  optimizer: string;
  momentum: string;
  nesterov?: boolean;
  weightDecay?: string;
  schedule: string;
  milestones: string;
  gamma: string;
  loss: string;
  bn: string;
  augment?: boolean;
  pad: string;
  headInit: string;
  alpha: string;
  cap?: string;
  seed: string;
  out: string;
  resume?: boolean;
  runtime: string;
  progress: boolean;
  json?: boolean;
}

export function finetuneCommand(io: Io): Command {
  return new Command('finetune')
    .description('fine-tune a (pruned) model on the source task; masked weights stay exactly zero')
    .requiredOption(
      '--model <id|path>',
      'zoo spec (e.g. mobilenet_v2@96), .onnx file, or a `tapir finetune` output directory',
    )
    .option('--mask <dir>', 'directory with mask.safetensors (as `tapir prune` writes)')
    .requiredOption('--task <id>', 'source task id, e.g. clipart')
    .option('--epochs <n>', 'passes over the train split (default 5)')
    .option('--steps <n>', 'total optimizer steps (overrides --epochs)')
    .option('--batch-size <n>', 'batch size', '32')
    .option('--lr <x>', 'base learning rate (default 1e-4)')
    .option('--optimizer <name>', 'sgd or adamw', 'sgd')
    .option('--momentum <x>', 'SGD momentum', '0.9')
    .option('--nesterov', 'Nesterov momentum')
    .option('--weight-decay <x>', 'weight decay (default 5e-4 sgd, 0.01 adamw); weights and head only')
    .option('--schedule <kind>', 'cosine, multistep or constant', 'cosine')
    .option('--milestones <e1,e2>', 'multistep: epochs at which the lr is multiplied by --gamma', '')
    .option('--gamma <x>', 'multistep factor', '0.1')
    .option('--loss <name>', 'ce or mse (to one-hot)', 'ce')
    .option('--bn <policy>', 'frozen (BN statistics fixed, eval-bn) or train', 'frozen')
    .option('--augment', 'random crop with padding + horizontal flip')
    .option('--pad <n>', 'padding of the random crop', '4')
    .option(
      '--head-init <how>',
      'task head start: refit (ridge on the pruned model), dense (ridge on the dense model) or zero',
      'refit',
    )
    .option(
      '--alpha <a>',
      'ridge penalty of the initial head, or auto (chosen on a hold-out of the train split)',
      'auto',
    )
    .option('--cap <n>', 'at most this many images per class (all splits together)')
    .option('--seed <n>', 'split and training seed', '0')
    .requiredOption(
      '--out <dir>',
      'output directory (model.safetensors, mask.safetensors, finetune.json; checkpoint while running)',
    )
    .option('--resume', 'continue from the checkpoint in --out')
    .option(...RUNTIME_OPTION)
    .option('--no-progress', 'no progress bar')
    .option('--json', 'print finetune.json')
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .action(async (o: FinetuneFlags) => {
      const optimizer = oneOf<OptimizerName>('--optimizer', o.optimizer, OPTIMIZER_NAMES);
      const kind = oneOf('--schedule', o.schedule, ['cosine', 'multistep', 'constant'] as const);
      const milestones = o.milestones
        .split(',')
        .filter((s) => s.trim() !== '')
        .map((s) => parseNumber('--milestones', s, { min: 0 }));
      if (kind === 'multistep' && milestones.length === 0)
        throw new TapirError('E_ARG', '--schedule multistep needs --milestones', { fix: 'e.g. --milestones 3,4' });
      const schedule: LrSchedule =
        kind === 'multistep'
          ? { kind, milestones, gamma: parseNumber('--gamma', o.gamma, { positive: true }) }
          : { kind };
      const headInit = oneOf<HeadInit>('--head-init', o.headInit, ['dense', 'refit', 'zero']);
      const seed = parseNumber('--seed', o.seed, { int: true, min: 0 });
      const runtime = parseRuntime(o.runtime);
      const m = await openModel(o.model);
      const mask = o.mask ? await applyMaskDir(m.graph, o.mask) : null;
      const ref = headInit === 'dense' ? (await openModel(m.base)).graph : null;
      if (ref) for (const msk of ref.masks.values()) msk.dispose();
      ref?.masks.clear();
      await mkdir(o.out, { recursive: true });
      const bar = lazyBar(o.progress && !o.json, 'finetune');
      try {
        const r = await finetune(m.graph, {
          task: o.task,
          taskOptions: {
            seed,
            ...(o.cap !== undefined ? { cap: parseNumber('--cap', o.cap, { int: true, min: 3 }) } : {}),
          },
          ...(o.epochs !== undefined ? { epochs: parseNumber('--epochs', o.epochs, { int: true, min: 1 }) } : {}),
          ...(o.steps !== undefined ? { steps: parseNumber('--steps', o.steps, { int: true, min: 1 }) } : {}),
          batchSize: parseNumber('--batch-size', o.batchSize, { int: true, min: 1 }),
          ...(o.lr !== undefined ? { lr: parseNumber('--lr', o.lr, { positive: true }) } : {}),
          optimizer,
          momentum: parseNumber('--momentum', o.momentum, { min: 0, maxOpen: 1 }),
          nesterov: !!o.nesterov,
          ...(o.weightDecay !== undefined
            ? { weightDecay: parseNumber('--weight-decay', o.weightDecay, { min: 0 }) }
            : {}),
          schedule,
          loss: oneOf<FinetuneLoss>('--loss', o.loss, ['ce', 'mse']),
          bn: oneOf<BnPolicy>('--bn', o.bn, ['frozen', 'train']),
          augment: o.augment ? { pad: parseNumber('--pad', o.pad, { int: true, min: 0 }), flip: true } : false,
          headInit,
          ...(ref ? { reference: ref } : {}),
          alpha: parseAlpha(o.alpha),
          seed,
          checkpointDir: o.out,
          resume: !!o.resume,
          runtime,
          onProgress: (p) =>
            bar.update(
              p.step,
              p.totalSteps,
              `epoch ${p.epoch + 1}/${p.epochs} loss ${p.loss.toFixed(4)} lr ${p.lr.toExponential(2)}`,
            ),
        });
        bar.stop();
        const info = await saveFinetuned(o.out, m.graph, r, { model: m.base, mask: mask?.file ?? null });
        r.head.weight.dispose();
        r.head.bias.dispose();
        await removeCheckpoint(o.out);
        emit(
          io,
          !!o.json,
          info,
          () =>
            table(
              ['epoch', 'step', 'loss', 'lr'],
              info.history.map((h) => [h.epoch + 1, h.step, h.loss, h.lr]),
            ) +
            `\n${info.task}: train loss ${info.before.loss.toFixed(4)} → ${info.after.loss.toFixed(4)}, train accuracy ` +
            `${info.before.accuracy.toFixed(4)} → ${info.after.accuracy.toFixed(4)}, test accuracy ${info.testAccuracy.toFixed(4)}` +
            `\n${info.maskedEntries} masked weights checked exactly zero${
              info.resumedFrom !== null ? `; resumed from step ` + `${info.resumedFrom}` : ''
            }\nwrote ${o.out}/{model.safetensors,${m.graph.masks.size ? 'mask.safetensors,' : ''}finetune.json}`,
        );
      } finally {
        bar.stop();
        m.head && (m.head.weight.dispose(), m.head.bias.dispose());
        disposeGraph(m.graph);
        if (ref) disposeGraph(ref);
      }
    });
}
