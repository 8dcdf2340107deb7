#!/usr/bin/python3
"""PyTorch peer of bench/score.ts: the same curvature quantities on the same MobileNetV2, weights and images.

  prepare: torchvision MobileNetV2 (random init, seeded, eval mode, BN kept as BatchNormalization) exported to
           ONNX, plus the calibration images and labels as raw files.
  run:     times a plain forward+backward over the images, then fisher (per-sample squared gradients from layer
           inputs and output gradients, unfold + einsum, as BackPACK / Opacus), exact ggn (C backward passes with
           the mse loss-Hessian square-root seeds), hutchinson (Rademacher probes, double-backward HVPs) and the
           block-hessian OBS score (damped Fisher blocks, Gram + inverse). Prints one JSON line.
Loss: mse to one-hot, mean over N·C (the authors' harness); every quantity is for the mean loss over all images.
"""
import argparse, json, math, os, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


def build(seed, classes):
    torch.manual_seed(seed)
    m = torchvision.models.mobilenet_v2(num_classes=classes)
    m.eval()
    return m


def prepare(a):
    m = build(a.seed, a.classes)
    os.makedirs(a.dir, exist_ok=True)
    x = torch.randn(2, 3, a.size, a.size)
    torch.onnx.export(m, x, os.path.join(a.dir, 'mnv2.onnx'), opset_version=14, input_names=['input'], output_names=['logits'],
                      dynamic_axes={'input': {0: 'n'}, 'logits': {0: 'n'}}, training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    g = torch.Generator().manual_seed(a.seed + 1)
    imgs = torch.randn(a.n, 3, a.size, a.size, generator=g)
    labels = torch.randint(0, a.classes, (a.n,), generator=g)
    imgs.numpy().tofile(os.path.join(a.dir, 'x.f32'))
    labels.numpy().astype('int64').tofile(os.path.join(a.dir, 'y.i64'))
    print(json.dumps({'prepared': a.dir}))


def load(a):
    m = build(a.seed, a.classes)
    x = torch.from_numpy(__import__('numpy').fromfile(os.path.join(a.dir, 'x.f32'), dtype='float32')).reshape(a.n, 3, a.size, a.size)
    y = torch.from_numpy(__import__('numpy').fromfile(os.path.join(a.dir, 'y.i64'), dtype='int64'))
    return m, list(zip(x.split(a.batch), y.split(a.batch)))


def layers(m, prunable):
    out = [mod for mod in m.modules() if isinstance(mod, nn.Conv2d)]
    if prunable == 'all':
        out += [mod for mod in m.modules() if isinstance(mod, nn.Linear)]
    return out


def per_sample_loss(f, y, classes):
    return (f - F.one_hot(y, classes).to(f.dtype)).pow(2).mean(1)


def per_sample_grads(mod, x, d):
    """[N, *weight.shape] per-sample gradients of a Conv2d / Linear from its input x and output gradient d."""
    n = x.shape[0]
    if isinstance(mod, nn.Linear):
        return torch.einsum('no,ni->noi', d, x)
    g, (kh, kw) = mod.groups, mod.kernel_size
    cout, cin_g = mod.out_channels, mod.in_channels // mod.groups
    X = F.unfold(x, (kh, kw), dilation=mod.dilation, padding=mod.padding, stride=mod.stride)  # [N, Cin*k*k, L]
    X = X.reshape(n, g, cin_g * kh * kw, -1)
    D = d.reshape(n, g, cout // g, -1)
    return torch.einsum('ngol,ngil->ngoi', D, X).reshape(n, cout, cin_g, kh, kw)


class Taps:
    """Forward hooks keeping each layer's input and (graph-connected) output."""
    def __init__(self, mods):
        self.inputs, self.outputs = {}, {}
        self.hs = [mod.register_forward_hook(self.hook) for mod in mods]
        self.mods = mods

    def hook(self, mod, inp, out):
        self.inputs[mod] = inp[0].detach()
        self.outputs[mod] = out

    def close(self):
        for h in self.hs:
            h.remove()


def squared_factor_diag(m, batches, mods, classes, seeds):
    diag = {mod: torch.zeros_like(mod.weight) for mod in mods}
    taps = Taps(mods)
    n_total = 0
    for x, y in batches:
        n_total += x.shape[0]
        f = m(x)
        outs = [taps.outputs[mod] for mod in mods]
        if seeds == 'grad':
            passes = [(per_sample_loss(f, y, classes).sum(), None)]
        else:
            s = math.sqrt(2 / classes)
            passes = [(f, torch.zeros_like(f).index_fill_(1, torch.tensor([c]), s)) for c in range(classes)]
        for k, (out, seed) in enumerate(passes):
            ds = torch.autograd.grad(out, outs, grad_outputs=seed, retain_graph=k < len(passes) - 1)
            with torch.no_grad():
                for mod, d in zip(mods, ds):
                    diag[mod] += per_sample_grads(mod, taps.inputs[mod], d).pow(2).sum(0)
    taps.close()
    return {mod: t / n_total for mod, t in diag.items()}


def hutchinson(m, batches, mods, classes, probes, seed):
    params = [mod.weight for mod in mods]
    n_total = sum(x.shape[0] for x, _ in batches)
    torch.manual_seed(seed)
    acc = [torch.zeros_like(p) for p in params]
    for _ in range(probes):
        v = [torch.randint(0, 2, p.shape).to(p.dtype) * 2 - 1 for p in params]
        hv = [torch.zeros_like(p) for p in params]
        for x, y in batches:
            loss = per_sample_loss(m(x), y, classes).mean()
            g = torch.autograd.grad(loss, params, create_graph=True)
            dot = sum((gi * vi).sum() for gi, vi in zip(g, v))
            for h, t in zip(hv, torch.autograd.grad(dot, params)):
                h += t * (x.shape[0] / n_total)
        for a_, vi, h in zip(acc, v, hv):
            a_ += vi * h / probes
    return dict(zip(mods, acc))


def block_hessian(m, batches, mods, classes, B, damping):
    taps = Taps(mods)
    grams, n_total = {}, 0
    for x, y in batches:
        n_total += x.shape[0]
        f = m(x)
        ds = torch.autograd.grad(per_sample_loss(f, y, classes).sum(), [taps.outputs[mod] for mod in mods])
        with torch.no_grad():
            for mod, d in zip(mods, ds):
                ps = per_sample_grads(mod, taps.inputs[mod], d)
                n, rows = ps.shape[0], ps.shape[1]
                cols = ps[0].numel() // rows
                b = min(B, cols)
                nb = -(-cols // b)
                G = F.pad(ps.reshape(n, rows, cols), (0, nb * b - cols)).reshape(n, rows * nb, b).permute(1, 0, 2)
                gram = G.transpose(1, 2) @ G
                grams[mod] = grams[mod] + gram if mod in grams else gram
    taps.close()
    scores = {}
    with torch.no_grad():
        for mod in mods:
            H = grams[mod] / n_total
            lam = damping * H.diagonal(dim1=1, dim2=2).mean().item()
            inv = torch.linalg.inv(H + lam * torch.eye(H.shape[1]))
            w = mod.weight.reshape(mod.weight.shape[0], -1)
            cols, b = w.shape[1], H.shape[1]
            th = F.pad(w, (0, -(-cols // b) * b - cols)).reshape(-1, b)
            s = th.pow(2) / (2 * inv.diagonal(dim1=1, dim2=2))
            scores[mod] = s.reshape(w.shape[0], -1)[:, :cols].reshape(mod.weight.shape)
    return scores


def fwd_bwd(m, batches, classes):
    n_total = sum(x.shape[0] for x, _ in batches)
    for x, y in batches:
        (per_sample_loss(m(x), y, classes).sum() / n_total).backward()
    m.zero_grad(set_to_none=True)
    return {}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('mode', choices=['prepare', 'run'])
    ap.add_argument('--dir', required=True)
    ap.add_argument('--size', type=int, default=96)
    ap.add_argument('--n', type=int, default=128)
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--classes', type=int, default=10)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--probes', type=int, default=8)
    ap.add_argument('--block-size', type=int, default=64)
    ap.add_argument('--damping', type=float, default=0.01)
    ap.add_argument('--prunable', choices=['conv', 'all'], default='conv')
    ap.add_argument('--runs', type=int, default=1)
    ap.add_argument('--cases', default='fwd_bwd,fisher,ggn,hutchinson,block_hessian')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.mode == 'prepare':
        return prepare(a)
    m, batches = load(a)
    for p in m.parameters():
        p.requires_grad_(True)
    mods = layers(m, a.prunable)
    todo = {
        'fwd_bwd': lambda: fwd_bwd(m, batches, a.classes),
        'fisher': lambda: squared_factor_diag(m, batches, mods, a.classes, 'grad'),
        'ggn': lambda: squared_factor_diag(m, batches, mods, a.classes, 'sqrt-hessian'),
        'hutchinson': lambda: hutchinson(m, batches, mods, a.classes, a.probes, a.seed),
        'block_hessian': lambda: block_hessian(m, batches, mods, a.classes, a.block_size, a.damping),
    }
    # Warm-up: one batch forward+backward (allocator, oneDNN primitives), untimed, as the tapir side does.
    fwd_bwd(m, batches[:1], a.classes)
    res = {'threads': torch.get_num_threads(), 'prunable': sum(mod.weight.numel() for mod in mods), 'times_ms': {}, 'checks': {}}
    for case in a.cases.split(','):
        ts = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            out = todo[case]()
            ts.append((time.perf_counter() - t0) * 1000)
        res['times_ms'][case] = sorted(ts)[len(ts) // 2]
        if out:
            res['checks'][case] = sum(t.double().sum().item() for t in out.values())
        print(f'peer {case}: {res["times_ms"][case]:.0f} ms', file=sys.stderr, flush=True)
    print(json.dumps(res))


if __name__ == '__main__':
    main()
