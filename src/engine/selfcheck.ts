/**
 * A one-minute engine self-check a user can run on their machine (`tapir selftest`): a tiny CNN in
 * float64, its gradient and Hessian-vector product against central finite differences, and a few
 * SGD steps that must lower the loss.
 */
import { grad, hvp, noGrad } from './autograd.js';
import * as nn from './nn.js';
import { manualSeed } from './runtime.js';
import { randn, randint, scope, Tensor, liveTensors, type Device } from './tensor.js';

export interface SelfCheck {
  gradRelErr: number;
  hvpRelErr: number;
  lossBefore: number;
  lossAfter: number;
  liveTensorDrift: number;
  device: Device;
  ok: boolean;
}

function tinyCnn(params: readonly Tensor[], x: Tensor): Tensor {
  const [w1, b1, g, b, w2, b2] = params as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
  let h = nn.conv2d(x, w1, b1, { padding: 1 });
  h = nn.batchNorm(h, { weight: g, bias: b, training: true });
  h = nn.gelu(h);
  h = nn.adaptiveAvgPool2d(h, 2).flatten(1);
  return nn.linear(h, w2, b2);
}

export function selfCheck(seed = 0, device: Device = 'cpu'): SelfCheck {
  manualSeed(seed);
  const live0 = liveTensors();
  const r = scope(() => {
    const o = { dtype: 'float64' as const, device, requiresGrad: true };
    const params = [
      randn([4, 3, 3, 3], o),
      randn([4], o),
      randn([4], o),
      randn([4], o),
      randn([3, 16], o),
      randn([3], o),
    ];
    const x = randn([6, 3, 5, 5], { dtype: 'float64', device });
    const y = randint(0, 3, [6], { device });
    const loss = (ps: readonly Tensor[]) => nn.crossEntropy(tinyCnn(ps, x), y);
    // Directional checks: d/dt L(θ + t u) ≈ gᵀu and d/dt ∇L(θ + t u)·w ≈ wᵀHu.
    const u = params.map((p) => randn(p.shape, { dtype: 'float64', device }));
    const w = params.map((p) => randn(p.shape, { dtype: 'float64', device }));
    const eps = 1e-5;
    const shifted = (t: number) => noGrad(() => params.map((p, i) => p.add(u[i]!, t)));
    const gu = grad(loss(params), params).reduce((s, g, i) => s + g!.mul(u[i]!).sum().item(), 0);
    const fd = (noGrad(() => loss(shifted(eps)).item()) - noGrad(() => loss(shifted(-eps)).item())) / (2 * eps);
    const { hv } = hvp(loss, params, u);
    const whu = hv.reduce((s, h, i) => s + h.mul(w[i]!).sum().item(), 0);
    const gradDot = (t: number) => {
      const ps = shifted(t).map((p) => p.requiresGrad_(true));
      return grad(loss(ps), ps).reduce((s, g, i) => s + g!.mul(w[i]!).sum().item(), 0);
    };
    const fdH = (gradDot(eps) - gradDot(-eps)) / (2 * eps);
    // SGD on the same batch.
    const lossBefore = loss(params).item();
    for (let step = 0; step < 20; step++) {
      scope(() => {
        const gs = grad(loss(params), params);
        noGrad(() => params.forEach((p, i) => p.add_(gs[i]!, -0.1)));
      });
    }
    const lossAfter = loss(params).item();
    return {
      gradRelErr: Math.abs(gu - fd) / Math.max(1e-12, Math.abs(fd)),
      hvpRelErr: Math.abs(whu - fdH) / Math.max(1e-12, Math.abs(fdH)),
      lossBefore,
      lossAfter,
    };
  });
  const liveTensorDrift = liveTensors() - live0;
  return {
    ...r,
    liveTensorDrift,
    device,
    ok: r.gradRelErr < 1e-6 && r.hvpRelErr < 1e-5 && r.lossAfter < r.lossBefore && liveTensorDrift === 0,
  };
}
