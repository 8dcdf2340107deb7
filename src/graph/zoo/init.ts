/**
 * Torch-like random initialisation, used by the built-in architectures and by `random:` models (the paper's
 * control: same architecture, fresh weights). Seeded through the engine's global generator.
 */
import { full, keep, manualSeed, noGrad, randn, rand, scope, zeros, type Tensor } from '../../engine/index.js';
import type { Graph, ParamRole } from '../ir.js';

// Each draw runs in a scope, so its intermediates (the raw randn / rand) are freed now, not left to the GC.

/** Kaiming normal, fan_out, gain √2 (torchvision ResNet convs). */
export const kaimingConv = (shape: readonly number[]): Tensor =>
  draw(() => {
    const fanOut = shape[0]! * shape.slice(2).reduce((p, d) => p * d, 1);
    return randn(shape).mul(Math.sqrt(2 / fanOut));
  });
/** torch.nn.Linear / Conv default: U(−1/√fan_in, 1/√fan_in). */
export const uniformFanIn = (shape: readonly number[], fanIn = shape.slice(1).reduce((p, d) => p * d, 1)): Tensor =>
  draw(() => {
    const b = 1 / Math.sqrt(fanIn);
    return rand(shape)
      .mul(2 * b)
      .sub(b);
  });
/** timm's trunc_normal_(std) with cutoffs at ±2σ. */
export const truncNormal = (shape: readonly number[], std = 0.02): Tensor =>
  draw(() => randn(shape).clamp(-2, 2).mul(std));

function draw(f: () => Tensor): Tensor {
  return scope(() => noGrad(f));
}

/** A fresh value for a parameter of this role, name and shape. */
export function freshParam(name: string, role: ParamRole, shape: readonly number[]): Tensor {
  switch (role) {
    case 'weight':
    case 'head':
      return shape.length === 4 ? kaimingConv(shape) : uniformFanIn(shape);
    case 'bias':
      return zeros(shape);
    case 'norm':
      return /(weight|gamma)$/.test(name) ? full(shape, 1) : zeros(shape);
    case 'buffer':
      return /var(iance)?$/.test(name) ? full(shape, 1) : zeros(shape);
    case 'embedding':
      return truncNormal(shape);
  }
}

/** Replaces every parameter by a fresh draw (masks and structure kept). */
export function reinitialize(g: Graph, seed: number): Graph {
  manualSeed(seed);
  noGrad(() => {
    for (const p of g.params.values()) {
      const f = freshParam(p.name, p.role, p.tensor.shape);
      const t = keep(f.to(p.tensor.dtype));
      if (f !== t) f.dispose();
      p.tensor.dispose();
      p.tensor = p.trainable ? t.requiresGrad_(true) : t;
    }
  });
  g.meta = { ...g.meta, randomInit: { seed } };
  return g;
}
