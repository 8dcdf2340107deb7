#!/usr/bin/python3
"""PyTorch peer of bench/reconstruct.ts: the same layer-wise reconstruction (src/prune/reconstruct) on the same
torchvision MobileNetV2, weights and calibration images (prepared by bench/peers/score.py).

The network is walked node by node through its torch.fx graph, for every calibration batch at once, holding only
the values later nodes still read (tapir's Frontier). At each Conv2d / Linear: H = sum X X^T of its unfolded inputs
from the already-pruned network, the solver below (columns in blocks, OBS saliency, joint per-row OBS update over
the remaining columns, Schur complement to freeze the block, fallback to masking alone for a row that got worse),
the new weights, then the node's output on the pruned and on the dense side and the layer's relative output error.
Target: the layer's own dense weights on the pruned inputs (dense-weights); the same keep count per layer.
Prints one JSON line (time of the sweep, of one plain forward over the images, and the masks' file).
"""
import argparse, json, os, time
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.fx

import score  # prepare / build / load: the same model and images as the scoring benchmark


def columns(mod, x):
    """[N, G, d, L]: the inputs the rows of each group multiply, per image (tapir's layer rules)."""
    if isinstance(mod, nn.Linear):
        return x.reshape(x.shape[0], -1, mod.in_features).transpose(1, 2).unsqueeze(1)
    g = mod.groups
    cols = F.unfold(x, mod.kernel_size, dilation=mod.dilation, padding=mod.padding, stride=mod.stride)
    n, _, l = cols.shape
    return cols.reshape(n, g, cols.shape[1] // g, l)


def covariance(mod, xs):
    """Sum of X X^T over the batches, [G, d, d] float64, with tapir's choice between one gemm per image (L > 4d) and
    one gemm per group over [G, d, N*L]."""
    h = None
    for x in xs:
        c = columns(mod, x)
        n, g, d, l = c.shape
        if l > 4 * d:
            p = (c @ c.transpose(2, 3)).sum(0).double()
        else:
            f = c.permute(1, 2, 0, 3).reshape(g, d, n * l)
            p = (f @ f.transpose(1, 2)).double()
        h = p if h is None else h + p
    return h


def solve_layer(W, H, prune, B, damping):
    """tapir's solveLayer with the 'count' keep rule: W [G, R, d] float64, H [G, d, d] float64."""
    G, R, d = W.shape
    target = W
    diag = torch.diagonal(H, dim1=1, dim2=2)
    dead = (diag == 0).double()
    lam = diag.mean(1) * damping
    lam = torch.where(lam > 0, lam, torch.full_like(lam, 1e-12))
    I = torch.eye(d, dtype=torch.float64).unsqueeze(0)
    hd = H + I * dead.unsqueeze(2) + I * lam.reshape(G, 1, 1)
    w = target * (1 - dead).unsqueeze(1)
    hr = torch.cholesky_inverse(torch.linalg.cholesky(hd))
    widths = [min(B, d - i) for i in range(0, d, B)]
    # The layer's pruned count spread over the blocks by width (largest remainders, earlier block first on ties).
    want = [prune * b / d for b in widths]
    counts = [min(G * R * b, int(x)) for x, b in zip(want, widths)]
    left = prune - sum(counts)
    order = sorted(range(len(widths)), key=lambda i: (-(want[i] - int(want[i])), i))
    for _ in range(2):
        for i in order:
            if left == 0:
                break
            if counts[i] < G * R * widths[i]:
                counts[i] += 1
                left -= 1
    masks = []
    col = 0
    for b, bw in enumerate(widths):
        rest = d - col
        wb = w[:, :, col:col + bw]
        sal = wb.square() / torch.diagonal(hr, dim1=1, dim2=2)[:, :bw].unsqueeze(1)
        k = counts[b]
        pr = torch.zeros(G * R * bw, dtype=torch.float64)
        if k > 0:
            pr[torch.sort(sal.reshape(-1), stable=True).indices[:k]] = 1
        pr = pr.reshape(G, R, bw)
        hbb = hr[:, :bw, :bw].unsqueeze(1)
        hbr = hr[:, :bw, :]
        eye_b = torch.eye(bw, dtype=torch.float64)
        step = max(1, 8_000_000 // (G * bw * bw))
        deltas = []
        for r0 in range(0, R, step):
            p = pr[:, r0:r0 + step]
            A = hbb * p.unsqueeze(3) * p.unsqueeze(2) + eye_b * (1 - p).unsqueeze(3)
            u = torch.linalg.solve(A, (p * wb[:, r0:r0 + step]).unsqueeze(3)).squeeze(3)
            deltas.append(u @ hbr)
        delta = torch.cat(deltas, 1)
        keep = torch.cat([1 - pr, torch.ones(G, R, rest - bw, dtype=torch.float64)], 2)
        w = torch.cat([w[:, :, :col], (w[:, :, col:] - delta) * keep], 2)
        if rest > bw:
            hff, hfr = hr[:, :bw, :bw], hr[:, :bw, bw:]
            hr = hr[:, bw:, bw:] - hfr.transpose(1, 2) @ torch.linalg.solve(hff, hfr)
        masks.append(pr)
        col += bw
    mask = 1 - torch.cat(masks, 2)
    def row_error(x):
        dl = x - target
        return ((dl @ H) * dl).sum(2)
    base = target * mask
    e_rec, e_mask = row_error(w), row_error(base)
    worse = (e_rec > e_mask * (1 + 1e-9) + 1e-300).double().unsqueeze(2)
    return w * (1 - worse) + base * worse, mask


def run_node(node, env, modules):
    """One fx node on every batch: env maps node names to per-batch lists."""
    def arg(a, b):
        if isinstance(a, torch.fx.Node):
            return env[a.name][b]
        if isinstance(a, (list, tuple)):
            return type(a)(arg(v, b) for v in a)
        return a
    nb = len(next(iter(env.values())))
    out = []
    for b in range(nb):
        args = [arg(v, b) for v in node.args]
        kwargs = {k: arg(v, b) for k, v in node.kwargs.items()}
        if node.op == 'call_module':
            out.append(modules[node.target](*args, **kwargs))
        elif node.op == 'call_function':
            out.append(node.target(*args, **kwargs))
        elif node.op == 'call_method':
            out.append(getattr(args[0], node.target)(*args[1:], **kwargs))
        else:
            raise ValueError(f'unsupported fx node {node.op}')
    return out


def sweep(m, dense, batches, sparsity, B, damping, kinds, phases):
    """phases: milliseconds per phase (forward, covariance, solve, error), added to as tapir's sweep reports them."""
    def timed(phase, f):
        t0 = time.perf_counter()
        r = f()
        phases[phase] = phases.get(phase, 0.0) + (time.perf_counter() - t0) * 1000
        return r
    gm, gd = torch.fx.symbolic_trace(m), torch.fx.symbolic_trace(dense)
    mods, dmods = dict(gm.named_modules()), dict(gd.named_modules())
    nodes = list(gm.graph.nodes)
    last = {}
    for i, n in enumerate(nodes):
        for a in n.all_input_nodes:
            last[a.name] = i
    xs = [x for x, _ in batches]
    envp, envd = {}, {}
    masks, errors = [], []
    for i, n in enumerate(nodes):
        if n.op == 'placeholder':
            envp[n.name], envd[n.name] = list(xs), list(xs)
            continue
        if n.op == 'output':
            break
        mod = mods.get(n.target) if n.op == 'call_module' else None
        if isinstance(mod, kinds):
            inp = n.all_input_nodes[0].name
            H = timed('covariance', lambda: covariance(mod, envp[inp]))
            g = mod.groups if isinstance(mod, nn.Conv2d) else 1
            W = mod.weight.detach().reshape(g, mod.weight.shape[0] // g, -1).double()
            numel = W.numel()
            w, mask = timed('solve', lambda: solve_layer(W, H, numel - round(numel * (1 - sparsity)), B, damping))
            mod.weight.data.copy_(w.reshape(mod.weight.shape).float())
            masks.append(mask.reshape(-1).to(torch.uint8))
        envp[n.name] = timed('forward', lambda: run_node(n, envp, mods))
        envd[n.name] = timed('forward', lambda: run_node(n, envd, dmods))
        if isinstance(mod, kinds):
            def error():
                num = sum(float((a - b).norm()) ** 2 for a, b in zip(envd[n.name], envp[n.name]))
                den = sum(float(a.norm()) ** 2 for a in envd[n.name])
                return num / den if den > 0 else 0.0
            errors.append(timed('error', error))
        for a in n.all_input_nodes:
            if last.get(a.name) == i:
                envp.pop(a.name, None)
                envd.pop(a.name, None)
    return masks, errors


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
    ap.add_argument('--sparsity', type=float, default=0.5)
    ap.add_argument('--block-size', type=int, default=32)
    ap.add_argument('--damping', type=float, default=0.01)
    ap.add_argument('--runs', type=int, default=1)
    ap.add_argument('--prunable', choices=['conv', 'all'], default='conv', help="tapir's ONNX import leaves the classifier out of the prunable set")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.mode == 'prepare':
        score.prepare(a)
        return
    with torch.no_grad():
        m, batches = score.load(a)
        fwd = []
        for _ in range(4):  # the first is a warm-up
            t0 = time.perf_counter()
            for x, _ in batches:
                m(x)
            fwd.append((time.perf_counter() - t0) * 1000)
        forward_ms = sorted(fwd[1:])[1]
        times, runs_phases = [], []
        for r in range(a.runs):
            m, _ = score.load(a)
            dense, _ = score.load(a)
            phases = {}
            t0 = time.perf_counter()
            masks, errors = sweep(m, dense, batches, a.sparsity, a.block_size, a.damping, (nn.Conv2d, nn.Linear) if a.prunable == 'all' else (nn.Conv2d,), phases)
            times.append((time.perf_counter() - t0) * 1000)
            runs_phases.append((times[-1], phases))
    torch.cat(masks).numpy().tofile(os.path.join(a.dir, 'peer_masks.u8'))
    times.sort()
    # The phases of the run whose time is reported (the median).
    phases = next(p for t, p in runs_phases if t == times[len(times) // 2])
    print(json.dumps({'sweep_ms': times[len(times) // 2], 'phases': phases, 'forward_ms': forward_ms, 'layers': len(masks), 'sizes': [int(t.numel()) for t in masks],
                      'errors': errors, 'threads': torch.get_num_threads()}))


if __name__ == '__main__':
    main()
