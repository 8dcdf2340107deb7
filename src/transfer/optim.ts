/**
 * Masked optimizers and learning-rate schedules for fine-tuning a pruned model.
 *
 * Invariant (docs/TRANSFER.md): a masked weight stays EXACTLY zero. Each step (1) multiplies the gradient by the mask,
 * (2) updates, (3) zeroes the optimizer state of masked entries and (4) re-masks the weight. Step (1) alone is not
 * enough: decoupled weight decay and a momentum buffer filled before the mask was set would move masked entries.
 * Update rules follow torch.optim.SGD (dampening 0, coupled weight decay) and torch.optim.AdamW (decoupled decay).
 */
import { keep, noGrad, scope, TapirError, zerosLike, type Tensor } from '../engine/index.js';

export type OptimizerName = 'sgd' | 'adamw';
export const OPTIMIZER_NAMES: readonly OptimizerName[] = ['sgd', 'adamw'];

export interface OptimizerOptions {
  name: OptimizerName;
  /** SGD momentum (default 0.9). */
  momentum?: number;
  nesterov?: boolean;
  /** L2 (SGD) or decoupled (AdamW) weight decay, applied to slots with `decay` (default 0 SGD, 0.01 AdamW). */
  weightDecay?: number;
  betas?: readonly [number, number];
  eps?: number;
}

export interface Slot {
  readonly name: string;
  /** The parameter tensor, updated in place. */
  readonly param: Tensor;
  /** 0/1 mask of the same shape and dtype, or null. */
  readonly mask: Tensor | null;
  /** Whether weight decay applies (weights and heads, not biases or norms). */
  readonly decay: boolean;
}

const STATE_KEYS: Record<OptimizerName, readonly string[]> = {
  sgd: ['momentum_buffer'],
  adamw: ['exp_avg', 'exp_avg_sq'],
};

export class MaskedOptimizer {
  readonly slots: readonly Slot[];
  readonly o: Required<Omit<OptimizerOptions, 'betas'>> & { betas: readonly [number, number] };
  /** Per slot name: state tensors by key (created lazily on the first step). */
  readonly state = new Map<string, Map<string, Tensor>>();
  /** Steps taken (AdamW bias correction). */
  stepCount = 0;

  constructor(slots: readonly Slot[], o: OptimizerOptions) {
    if (!OPTIMIZER_NAMES.includes(o.name))
      throw new TapirError('E_ARG', `unknown optimizer '${String(o.name)}'`, {
        context: { optimizer: o.name },
        fix: `use one of: ${OPTIMIZER_NAMES.join(', ')}`,
      });
    this.slots = slots;
    this.o = {
      name: o.name,
      momentum: o.momentum ?? 0.9,
      nesterov: o.nesterov ?? false,
      weightDecay: o.weightDecay ?? (o.name === 'adamw' ? 0.01 : 0),
      betas: o.betas ?? [0.9, 0.999],
      eps: o.eps ?? 1e-8,
    };
    for (const [k, v] of [
      ['momentum', this.o.momentum],
      ['weightDecay', this.o.weightDecay],
      ['eps', this.o.eps],
      ['beta1', this.o.betas[0]],
      ['beta2', this.o.betas[1]],
    ] as const)
      if (!(v >= 0) || !Number.isFinite(v) || (k.startsWith('beta') && v >= 1))
        throw new TapirError('E_ARG', `optimizer option ${k} = ${v} is out of range`, {
          context: { option: k },
          fix: 'momentum/weight decay >= 0, betas in [0, 1)',
        });
  }

  /** One update with `grads[i]` the gradient of `slots[i]` and learning rate `lr`. */
  step(grads: readonly Tensor[], lr: number): void {
    if (grads.length !== this.slots.length)
      throw new TapirError('E_ARG', `optimizer step: ${grads.length} gradients for ${this.slots.length} parameters`);
    this.stepCount++;
    noGrad(() =>
      this.slots.forEach((s, i) =>
        scope(() => {
          const g = s.mask ? grads[i]!.mul(s.mask) : grads[i]!;
          if (this.o.name === 'sgd') this.sgd(s, g, lr);
          else this.adamw(s, g, lr);
          if (s.mask) {
            for (const t of this.state.get(s.name)!.values()) t.mul_(s.mask);
            s.param.mul_(s.mask);
          }
        }),
      ),
    );
  }

  private stateOf(s: Slot): Map<string, Tensor> {
    let st = this.state.get(s.name);
    if (!st) {
      st = new Map();
      // keep(): the state outlives the scope of the step that creates it.
      for (const k of STATE_KEYS[this.o.name]) st.set(k, keep(noGrad(() => zerosLike(s.param))));
      this.state.set(s.name, st);
    }
    return st;
  }

  private sgd(s: Slot, grad: Tensor, lr: number): void {
    const { momentum: mu, weightDecay: wd, nesterov } = this.o;
    const st = this.stateOf(s);
    let d = wd > 0 && s.decay ? grad.add(s.param, wd) : grad;
    if (mu > 0) {
      const buf = st.get('momentum_buffer')!;
      // torch initialises the buffer with the first gradient; the lazily created zero buffer gives the same result.
      buf.mul_(mu).add_(d);
      d = nesterov ? d.add(buf, mu) : buf;
    }
    s.param.add_(d, -lr);
  }

  private adamw(s: Slot, grad: Tensor, lr: number): void {
    const { weightDecay: wd, eps } = this.o;
    const [b1, b2] = this.o.betas;
    const st = this.stateOf(s);
    if (wd > 0 && s.decay) s.param.mul_(1 - lr * wd);
    const m = st
      .get('exp_avg')!
      .mul_(b1)
      .add_(grad, 1 - b1);
    const v = st
      .get('exp_avg_sq')!
      .mul_(b2)
      .addcmul_(grad, grad, 1 - b2);
    const c1 = 1 - b1 ** this.stepCount;
    const c2 = 1 - b2 ** this.stepCount;
    const denom = v.div(c2).sqrt().add(eps);
    s.param.addcdiv_(m, denom, -lr / c1);
  }

  /** State tensors by `<param>::<key>` (for checkpoints; shared, not copies). */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const s of this.slots) for (const [k, t] of this.stateOf(s)) out.set(`${s.name}::${k}`, t);
    return out;
  }

  /** Copies state written by `stateDict` back in; every slot's state must be present. */
  loadStateDict(get: (key: string) => Tensor | undefined, stepCount: number, file = 'checkpoint'): void {
    noGrad(() => {
      for (const s of this.slots)
        for (const [k, t] of this.stateOf(s)) {
          const src = get(`${s.name}::${k}`);
          if (!src)
            throw new TapirError('E_CHECKPOINT', `${file}: optimizer state '${s.name}::${k}' is missing`, {
              fix: 'resume with the same optimizer and model, or start without --resume',
            });
          t.copy_(src);
        }
    });
    this.stepCount = stepCount;
  }

  dispose(): void {
    for (const st of this.state.values()) for (const t of st.values()) t.dispose();
    this.state.clear();
  }
}

/** Learning-rate schedules over global steps. Multistep milestones are in epochs (fractions allowed). */
export type LrSchedule =
  | { kind: 'constant' }
  | { kind: 'cosine'; minLr?: number }
  | { kind: 'multistep'; milestones: readonly number[]; gamma?: number };

export function lrAt(base: number, s: LrSchedule, step: number, totalSteps: number, stepsPerEpoch: number): number {
  switch (s.kind) {
    case 'constant':
      return base;
    case 'cosine': {
      const min = s.minLr ?? 0;
      return (
        min + (base - min) * 0.5 * (1 + Math.cos((Math.PI * Math.min(step, totalSteps)) / Math.max(1, totalSteps)))
      );
    }
    case 'multistep': {
      const passed = s.milestones.filter((m) => step >= Math.round(m * stepsPerEpoch)).length;
      return base * (s.gamma ?? 0.1) ** passed;
    }
    default:
      throw new TapirError('E_ARG', `unknown lr schedule ${JSON.stringify(s)}`, {
        fix: 'use constant, cosine or multistep',
      });
  }
}

/** Checks every masked entry of every slot's weight and optimizer state is exactly 0; throws naming the first violation. */
export function assertMaskedZero(opt: MaskedOptimizer): { checked: number } {
  let checked = 0;
  for (const s of opt.slots) {
    if (!s.mask) continue;
    const tensors: [string, Tensor][] = [
      [s.name, s.param],
      ...[...(opt.state.get(s.name) ?? new Map<string, Tensor>())].map(
        ([k, t]) => [`${s.name}::${k}`, t] as [string, Tensor],
      ),
    ];
    for (const [name, t] of tensors) {
      const bad = scope(() => noGrad(() => t.detach().mul(s.mask!.eq(0).to(t.dtype)).ne(0).sum().item()));
      if (bad > 0)
        throw new TapirError(
          'E_MASK_VIOLATED',
          `${bad} masked entries of '${name}' are not exactly zero after fine-tuning`,
          { context: { tensor: name, count: bad }, fix: 'this is a bug in the masked optimizer; please report it' },
        );
    }
    checked += scope(() => s.mask!.eq(0).sum().item());
  }
  return { checked };
}
