"""PyTorch peer of bench/hessian.ts: Hutchinson trace (Rademacher probes) and the top Hessian eigenvalue
(Lanczos with full re-orthogonalisation) on the same model, weights, batch and probes as tapir.

The model is bench/peers/engine.py's (torchvision resnet18 or the timm-layout ViT, train mode) with the zoo graph's
weights loaded by name; images and labels come from the files bench/hessian.ts writes (--data DIR). As on the tapir
side (src/analysis sessions), the trace and the Lanczos run each build the first-order gradient with its graph once
and do one double backward per matvec through it. Probes are generated with the same mulberry32 stream as
src/analysis/random.ts (vectorised here: its state advances by a constant per draw), so both sides use the
same vectors. Prints one JSON object as its last stdout line; progress goes to stderr.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine import load_model, logits_fn  # noqa: E402


def mulberry32_u32(seed, start, count):
    """Draws start..start+count-1 of mulberry32(seed) as uint32 (r * 2^32 of the JS generator)."""
    i = np.arange(start + 1, start + count + 1, dtype=np.uint64)
    a = ((seed + i * 0x6D2B79F5) & 0xFFFFFFFF).astype(np.uint32)
    t = a
    t = (t ^ (t >> np.uint32(15))) * (t | np.uint32(1))
    t = t ^ (t + (t ^ (t >> np.uint32(7))) * (t | np.uint32(61)))
    return t ^ (t >> np.uint32(14))


def rademacher(dim, seed, index):
    """The index-th probe of a stream seeded with `seed`: 32 signs per draw, bit k → entry 32j + k."""
    draws = (dim + 31) // 32
    u = mulberry32_u32(seed, index * draws, draws)
    bits = (u[:, None] >> np.arange(32, dtype=np.uint32)[None, :]) & np.uint32(1)
    signs = np.where(bits.reshape(-1)[:dim] == 1, 1.0, -1.0).astype(np.float32)
    return torch.from_numpy(signs)


def load(data_dir, model):
    fx = load_model(data_dir, model, "cpu")
    logits, params, labels = logits_fn(fx), fx["params"], fx["extra"]["labels"]
    sizes = [p.numel() for p in params]
    kept = []  # the first-order gradient with its graph, inside session()

    def loss():
        return F.cross_entropy(logits(), labels)

    def matvec(v):
        vs = torch.split(v, sizes)
        g = kept[0] if kept else torch.autograd.grad(loss(), params, create_graph=True)
        live = [i for i, gi in enumerate(g) if gi.requires_grad]
        dot = sum((g[i] * vs[i].reshape(g[i].shape)).sum() for i in live)
        hv = torch.autograd.grad(dot, params, retain_graph=bool(kept), allow_unused=True)
        return torch.cat([(h if h is not None else torch.zeros_like(p)).reshape(-1) for h, p in zip(hv, params)])

    def session(fn):
        kept.append(torch.autograd.grad(loss(), params, create_graph=True))
        try:
            return fn()
        finally:
            kept.clear()

    return matvec, session, sum(sizes)


def trace(matvec, dim, probes, seed):
    samples = []
    for i in range(probes):
        v = rademacher(dim, seed, i)
        samples.append(float(torch.dot(v.double(), matvec(v).double())))
    return statistics.mean(samples), samples


def top_eigenvalue(matvec, dim, steps, seed):
    v = rademacher(dim, seed, 0)
    q = v / v.norm()
    basis, alphas, betas = [], [], []
    for _ in range(min(steps, dim)):
        basis.append(q)
        w = matvec(q)
        alphas.append(float(torch.dot(w, q)))
        Q = torch.stack(basis)
        with torch.no_grad():
            for _pass in range(2):
                w = w - Q.t() @ (Q @ w)
        beta = float(w.norm())
        betas.append(beta)
        if beta <= 1e-10 * max(max(abs(a) for a in alphas), max(betas)):
            break
        q = w / beta
    m = len(alphas)
    T = np.diag(np.array(alphas)) + np.diag(np.array(betas[: m - 1]), 1) + np.diag(np.array(betas[: m - 1]), -1)
    return float(np.linalg.eigvalsh(T)[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--model", default="resnet18")
    p.add_argument("--probes", type=int, default=4)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    matvec, session, dim = load(a.data, a.model)
    rademacher(dim, a.seed, 0)
    matvec(torch.zeros(dim))  # warm-up (oneDNN primitive creation)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "trace_ms": [], "eig_ms": []}
    for r in range(a.runs):
        t0 = time.perf_counter()
        est, samples = session(lambda: trace(matvec, dim, a.probes, a.seed))
        t1 = time.perf_counter()
        top = session(lambda: top_eigenvalue(matvec, dim, a.steps, a.seed))
        t2 = time.perf_counter()
        out["trace_ms"].append((t1 - t0) * 1000)
        out["eig_ms"].append((t2 - t1) * 1000)
        out["trace"], out["samples"], out["top"] = est, samples, top
        print(f"  torch run {r + 1}/{a.runs}: trace {out['trace_ms'][-1]:.0f} ms, top eigenvalue {out['eig_ms'][-1]:.0f} ms", file=sys.stderr, flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
