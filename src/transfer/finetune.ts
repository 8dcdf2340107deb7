/**
 * Masked fine-tuning on the source task (docs/TRANSFER.md). The backbone reads the task through a task head
 * (`head.ts`) initialised from a ridge head (default: fitted on the reference = dense model's features, the same
 * head the zero-shot protocol uses; `refit`: on the pruned model's own features; `zero`) and trained jointly.
 * Masked weights stay exactly zero (see optim.ts); a check at the end throws if any is not. Checkpoints are
 * written atomically at the end of every epoch; `resume` continues from the last one and, with the same recipe
 * and seed, ends at the same weights as an uninterrupted run (data order, augmentation and dropout are seeded
 * per epoch).
 */
import { gradStrict, manualSeed, nn, noGrad, scope, TapirError, type Tensor } from '../engine/index.js';
import { batches, loadSplit, type ImageSet, type TaskOptions } from '../data/index.js';
import { augmentBatch, seededRandom, type AugmentOptions } from './augment.js';
import { checkpointPath, readCheckpoint, writeCheckpoint, type Progress } from './checkpoint.js';
import { FeatureCache, modelFingerprint } from './features.js';
import {
  applyMasksInPlace,
  disposeTaskHead,
  forward,
  paramsUsedBy,
  preprocessOf,
  taskHeadOf,
  withTaskHead,
  TASK_HEAD_WEIGHT,
  type Graph,
  type LinearHead,
  type Mode,
  type OrtSessions,
  type Runtime,
  checkRuntime,
  openRunner,
} from '../graph/index.js';
import { fitLinearHead, zeroHead } from './head.js';
import { assertMaskedZero, lrAt, MaskedOptimizer, type LrSchedule, type OptimizerName, type Slot } from './optim.js';

export type FinetuneLoss = 'mse' | 'ce';
export type BnPolicy = 'frozen' | 'train';
export type HeadInit = 'dense' | 'refit' | 'zero';

export interface FinetuneOptions {
  /** Source task id. */
  task: string;
  taskOptions?: TaskOptions;
  /** Passes over the train split (default 5); ignored when `steps` is given. */
  epochs?: number;
  /** Total optimizer steps (overrides `epochs`). */
  steps?: number;
  batchSize?: number;
  /** Base learning rate (default 1e-4: measured on nsfwjs MobileNetV2@64, SGD 1e-3 and AdamW 1e-3 wreck it in 30 steps). */
  lr?: number;
  optimizer?: OptimizerName;
  momentum?: number;
  nesterov?: boolean;
  /** Default 5e-4 (SGD, coupled) / 0.01 (AdamW, decoupled); applied to weights and the head, not biases or norms. */
  weightDecay?: number;
  /** Default cosine to 0 over all steps. */
  schedule?: LrSchedule;
  /** `ce` (default) or `mse` against one-hot targets (mean over N·C, the authors' harness). */
  loss?: FinetuneLoss;
  /** `frozen` (default): BN running statistics fixed (`eval-bn`); `train`: batch statistics, running stats updated. */
  bn?: BnPolicy;
  /** Random crop with padding and horizontal flip (default none). */
  augment?: AugmentOptions | false;
  /** Default `refit`: a dense head on a pruned backbone starts at a high loss (CE 7.8 measured at 50% magnitude). */
  headInit?: HeadInit;
  /** The dense model for `headInit: 'dense'`. */
  reference?: Graph;
  /** Ridge penalty of the initial head, or `auto` (default, `selectAlpha`): a weakly regularised head on D ≫ N
   * features has large weights, whose gradients wreck a pre-trained backbone in a few steps. */
  alpha?: number | 'auto';
  seed?: number;
  /** Write a checkpoint here after every epoch. */
  checkpointDir?: string;
  /** Continue from the checkpoint in `checkpointDir` if there is one. */
  resume?: boolean;
  cache?: FeatureCache;
  onProgress?: (p: {
    epoch: number;
    epochs: number;
    step: number;
    totalSteps: number;
    loss: number;
    lr: number;
  }) => void;
  /** Runtime of the eval passes (train/test loss and accuracy) and feature passes (default `auto`). */
  runtime?: Runtime;
  /** Called after each optimizer step (tests throw here to simulate a kill). */
  onStep?: (step: number) => void;
}

export interface EpochRecord {
  epoch: number;
  step: number;
  loss: number;
  lr: number;
}

export interface FinetuneResult {
  task: string;
  classes: readonly string[];
  recipe: Record<string, unknown>;
  steps: number;
  epochs: number;
  /** Mean source train loss / accuracy with the task head, eval mode, before and after fine-tuning. */
  before: { loss: number; accuracy: number };
  after: { loss: number; accuracy: number };
  /** Test-split accuracy of the trained task head after fine-tuning. */
  testAccuracy: number;
  history: EpochRecord[];
  /** The step the run resumed from (null: started fresh). */
  resumedFrom: number | null;
  /** Masked entries checked to be exactly 0 at the end. */
  maskedEntries: number;
  /** The trained task head; the caller owns it. */
  head: LinearHead;
}

function perSampleLoss(kind: FinetuneLoss, logits: Tensor, y: Tensor): Tensor {
  // Same definitions as the scores' losses (src/prune/loss.ts).
  return kind === 'ce'
    ? nn.crossEntropy(logits, y, { reduction: 'none' })
    : scope(() => nn.oneHot(y, logits.shape[1]!).to(logits.dtype).sub(logits).square().mean(1));
}

/**
 * Mean loss and accuracy of a head graph over a split, in eval mode, run by `o.runtime` (default `auto`: the logits
 * come from onnxruntime where the graph exports; loss and accuracy are computed from them in the engine).
 */
export async function evaluateSplit(
  hg: Graph,
  set: ImageSet,
  loss: FinetuneLoss,
  batchSize = 64,
  o: { runtime?: Runtime; sessions?: OrtSessions } = {},
): Promise<{ loss: number; accuracy: number }> {
  let sum = 0;
  let ok = 0;
  const runner = await openRunner(hg, { outputs: hg.outputs.slice(0, 1), ...o });
  try {
    for (const b of batches(set, preprocessOf(hg), { batchSize })) {
      try {
        const [logits] = await runner.run(b.x);
        scope(() => {
          sum += perSampleLoss(loss, logits!, b.y).sum().item();
          ok += logits!.argmax(1).eq(b.y).sum().item();
          logits!.dispose();
        });
      } finally {
        b.x.dispose();
        b.y.dispose();
      }
    }
  } finally {
    runner.close();
  }
  return { loss: sum / set.n, accuracy: ok / set.n };
}

function checkOptions(o: FinetuneOptions): void {
  const bad = (opt: string, why: string, fix: string) =>
    new TapirError('E_ARG', `finetune: ${opt} ${why}`, { context: { option: opt }, fix });
  if (o.epochs !== undefined && !(Number.isInteger(o.epochs) && o.epochs >= 1))
    throw bad('epochs', `must be an integer >= 1, got ${o.epochs}`, 'e.g. --epochs 5');
  if (o.steps !== undefined && !(Number.isInteger(o.steps) && o.steps >= 1))
    throw bad('steps', `must be an integer >= 1, got ${o.steps}`, 'e.g. --steps 200');
  if (o.batchSize !== undefined && !(Number.isInteger(o.batchSize) && o.batchSize >= 1))
    throw bad('batchSize', `must be an integer >= 1, got ${o.batchSize}`, 'e.g. --batch-size 32');
  if (o.lr !== undefined && !(o.lr > 0 && Number.isFinite(o.lr)))
    throw bad('lr', `must be a positive number, got ${o.lr}`, 'e.g. --lr 0.01');
  if (o.loss !== undefined && o.loss !== 'ce' && o.loss !== 'mse')
    throw bad('loss', `must be ce or mse, got '${String(o.loss)}'`, 'use --loss ce or --loss mse');
  if (o.bn !== undefined && o.bn !== 'frozen' && o.bn !== 'train')
    throw bad('bn', `must be frozen or train, got '${String(o.bn)}'`, 'use --bn frozen or --bn train');
  if (o.headInit !== undefined && !['dense', 'refit', 'zero'].includes(o.headInit))
    throw bad(
      'headInit',
      `must be dense, refit or zero, got '${String(o.headInit)}'`,
      'use --head-init dense|refit|zero',
    );
  if (o.headInit === 'dense' && !o.reference)
    throw bad('headInit', "'dense' needs the dense reference model", 'pass reference, or use headInit refit');
  if (o.runtime !== undefined) checkRuntime(o.runtime, 'runtime');
  if (o.resume && !o.checkpointDir)
    throw bad('resume', 'needs a checkpointDir', 'pass checkpointDir (the CLI uses --out)');
}

/**
 * Fine-tunes `g` (its masks are honoured and its parameters updated in place) on the source task.
 */
export async function finetune(g: Graph, o: FinetuneOptions): Promise<FinetuneResult> {
  checkOptions(o);
  const optName = o.optimizer ?? 'sgd';
  const lossKind = o.loss ?? 'ce';
  const bn = o.bn ?? 'frozen';
  const headInit = o.headInit ?? 'refit';
  const seed = o.seed ?? 0;
  const batchSize = o.batchSize ?? 32;
  const cache = o.cache ?? new FeatureCache(o.runtime ? { runtime: o.runtime } : {});
  const evalOpts = o.runtime ? { runtime: o.runtime } : {};
  const task = await cache.task(o.task, o.taskOptions);
  const train = await loadSplit(task, 'train', g.preprocessing.size);
  const mode: Mode = bn === 'train' ? 'train' : 'eval-bn';
  const dropLast = bn === 'train' && train.n > batchSize; // a batch of one has no batch statistics
  const stepsPerEpoch = dropLast ? Math.floor(train.n / batchSize) : Math.ceil(train.n / batchSize);
  const totalSteps = o.steps ?? (o.epochs ?? 5) * stepsPerEpoch;
  const epochs = Math.ceil(totalSteps / stepsPerEpoch);
  const lr = o.lr ?? 1e-4;
  const schedule = o.schedule ?? { kind: 'cosine' };
  applyMasksInPlace(g);
  const recipe = {
    task: task.id,
    seed: task.seed,
    cap: task.cap,
    trainImages: train.n,
    model: modelFingerprint(g),
    epochs,
    totalSteps,
    batchSize,
    lr,
    optimizer: optName,
    momentum: o.momentum ?? 0.9,
    nesterov: o.nesterov ?? false,
    weightDecay: o.weightDecay ?? (optName === 'adamw' ? 0.01 : 5e-4),
    schedule,
    loss: lossKind,
    bn,
    augment: o.augment || null,
    headInit,
    alpha: o.alpha ?? 'auto',
    runSeed: seed,
  };
  const ckpt = o.checkpointDir ? checkpointPath(o.checkpointDir) : null;
  const resumed = o.resume && ckpt ? await readCheckpoint(ckpt, recipe) : null;

  let head: LinearHead;
  if (resumed) {
    const shape = resumed.file.entries.get(`param/${TASK_HEAD_WEIGHT}`)?.shape;
    if (!shape)
      throw new TapirError('E_CHECKPOINT', `${ckpt}: no task head in the checkpoint`, {
        fix: 'start without --resume',
      });
    head = zeroHead(shape[0]!, shape[1]!, g.params.values().next().value?.tensor.dtype ?? 'float32');
  } else if (headInit === 'zero') {
    const f = await cache.get(g, { task, split: 'train', ...evalOpts });
    head = zeroHead(task.classes.length, f.features.shape[1]!);
  } else {
    const f = await cache.get(headInit === 'dense' ? o.reference! : g, { task, split: 'train', ...evalOpts });
    // Relative std floor: W_raw = W / std must stay bounded for a head that keeps training (see featureStats).
    head = fitLinearHead(f.features, f.labels, {
      numClasses: task.classes.length,
      alpha: recipe.alpha,
      floor: { relative: 0.1 },
      dtype: f.features.dtype === 'float64' ? 'float64' : 'float32',
    }).head;
  }
  const hg = withTaskHead(g, head);
  const used = paramsUsedBy(hg, hg.outputs);
  const stateParams = [...used].map((n) => hg.params.get(n)!);
  const slots: Slot[] = stateParams
    .filter((p) => p.trainable)
    .map((p) => ({
      name: p.name,
      param: p.tensor,
      mask: g.masks.get(p.name) ?? null,
      decay: p.role === 'weight' || p.role === 'head',
    }));
  const opt = new MaskedOptimizer(slots, {
    name: optName,
    momentum: recipe.momentum,
    nesterov: recipe.nesterov,
    weightDecay: recipe.weightDecay,
  });
  try {
    let progress: Progress;
    if (resumed) {
      resumed.load(stateParams, opt);
      progress = resumed.progress;
    } else {
      progress = { step: 0, epoch: 0, history: [], before: await evaluateSplit(hg, train, lossKind, 64, evalOpts) };
    }
    const resumedFrom = resumed ? progress.step : null;
    for (let epoch = progress.epoch; epoch < epochs && progress.step < totalSteps; epoch++) {
      manualSeed(seed * 100003 + epoch); // dropout in `train` mode
      const rand = seededRandom(seed, epoch, 1);
      let sum = 0;
      let count = 0;
      let rate = lr;
      for (const b of batches(train, preprocessOf(g), {
        batchSize,
        shuffle: true,
        seed: seed * 7919 + epoch,
        dropLast,
      })) {
        if (progress.step >= totalSteps) {
          b.x.dispose();
          b.y.dispose();
          break;
        }
        rate = lrAt(lr, schedule, progress.step, totalSteps, stepsPerEpoch);
        const l = scope(() => {
          const x = o.augment ? augmentBatch(b.x, o.augment, rand) : b.x;
          const logits = forward(hg, x, { mode }).outputs[0]!;
          const loss = perSampleLoss(lossKind, logits, b.y).mean();
          const grads = gradStrict(
            loss,
            slots.map((s) => s.param),
          );
          opt.step(grads, rate);
          return loss.item();
        });
        b.x.dispose();
        b.y.dispose();
        if (!Number.isFinite(l))
          throw new TapirError('E_DIVERGED', `fine-tuning diverged at step ${progress.step} (loss ${l})`, {
            context: { step: progress.step, lr: rate },
            fix: 'lower --lr',
          });
        sum += l * b.indices.length;
        count += b.indices.length;
        progress.step++;
        o.onProgress?.({ epoch, epochs, step: progress.step, totalSteps, loss: l, lr: rate });
        o.onStep?.(progress.step);
      }
      progress.epoch = epoch + 1;
      progress.history.push({ epoch, step: progress.step, loss: count ? sum / count : NaN, lr: rate });
      if (ckpt) await writeCheckpoint(ckpt, recipe, progress, stateParams, opt);
    }
    const { checked } = assertMaskedZero(opt);
    assertGraphMasked(g);
    const after = await evaluateSplit(hg, train, lossKind, 64, evalOpts);
    const testSet = await loadSplit(task, 'test', g.preprocessing.size);
    const testAccuracy = (await evaluateSplit(hg, testSet, lossKind, 64, evalOpts)).accuracy;
    const out = taskHeadOf(hg);
    for (const t of [out.weight, out.bias]) noGrad(() => t.requiresGrad_(false));
    return {
      task: task.id,
      classes: task.classes,
      recipe,
      steps: progress.step,
      epochs: progress.epoch,
      before: progress.before,
      after,
      testAccuracy,
      history: progress.history,
      resumedFrom,
      maskedEntries: checked,
      head: out,
    };
  } catch (e) {
    disposeTaskHead(hg);
    throw e;
  } finally {
    opt.dispose();
    if (!o.cache) cache.dispose();
  }
}

/** Throws if any masked entry of any parameter of `g` is not exactly zero. */
export function assertGraphMasked(g: Graph): void {
  for (const [name, m] of g.masks) {
    const p = g.params.get(name);
    if (!p) continue;
    const bad = scope(() => noGrad(() => p.tensor.detach().mul(m.eq(0).to(p.tensor.dtype)).ne(0).sum().item()));
    if (bad > 0)
      throw new TapirError('E_MASK_VIOLATED', `${bad} masked entries of '${name}' are not exactly zero`, {
        context: { tensor: name, count: bad },
        fix: 'this is a bug in masked fine-tuning; please report it',
      });
  }
}
