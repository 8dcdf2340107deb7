"""PyTorch peer of bench/engine.ts: the same ResNet-18 (CIFAR) and ViT-Tiny, written op for op like
bench/models/*.ts with plain torch.nn.functional, timed the same way (warm-up, then medians).

Weights, inputs, labels and HVP vectors come from the files bench/engine.ts writes (--data DIR), so both
sides run the same numbers; the shapes declared here are checked against them. --device cuda moves them to
the GPU and synchronises it around every timed run, like the tapir side. Progress goes to stderr.
Batch mode prints one JSON object as the last stdout line: {"torch", "threads", "device", "cases": [{model, case,
median_ms, samples_ms, checks}]}. --serve mode runs one step per request, so engine.ts can alternate
tapir and torch runs (see serve()).

Run with Debian's /usr/bin/python3 (python3-torch) and LD_PRELOAD=libtcmalloc_minimal.so.4, like tapir.
Needs torch only (no numpy: CUDA PyTorch installs do not always bring it).
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

CASES = ("forward", "forward+backward", "hvp")


# ---- ResNet-18, CIFAR variant (mirrors bench/models/resnet18.ts) --------------------------------

STAGES = (64, 128, 256, 512)
BLOCKS = 2


def resnet18_shapes():
    s = []

    def conv(name, cout, cin, k):
        s.append((f"{name}.weight", (cout, cin, k, k)))

    def bn(name, c):
        s.extend([(f"{name}.weight", (c,)), (f"{name}.bias", (c,))])

    conv("conv1", 64, 3, 3)
    bn("bn1", 64)
    cin = 64
    for i, c in enumerate(STAGES):
        for b in range(BLOCKS):
            pre = f"layer{i + 1}.{b}"
            conv(f"{pre}.conv1", c, cin if b == 0 else c, 3)
            bn(f"{pre}.bn1", c)
            conv(f"{pre}.conv2", c, c, 3)
            bn(f"{pre}.bn2", c)
            if b == 0 and (i > 0 or cin != c):
                conv(f"{pre}.downsample.0", c, cin, 1)
                bn(f"{pre}.downsample.1", c)
        cin = c
    s.extend([("fc.weight", (10, 512)), ("fc.bias", (10,))])
    return s


def resnet18_buffers(shapes):
    return {n[: -len(".bias")]: (torch.zeros(sh), torch.ones(sh)) for n, sh in shapes if n.endswith(".bias") and n != "fc.bias"}


def resnet18_forward(p, buffers, x):
    def bn(t, name):
        mean, var = buffers[name]
        return F.batch_norm(t, mean, var, p[f"{name}.weight"], p[f"{name}.bias"], training=True, momentum=0.1, eps=1e-5)

    def conv(t, name, stride, padding):
        return F.conv2d(t, p[f"{name}.weight"], None, stride=stride, padding=padding)

    h = F.relu(bn(F.conv2d(x, p["conv1.weight"], None, stride=1, padding=1), "bn1"))
    cin = 64
    for i, c in enumerate(STAGES):
        for b in range(BLOCKS):
            pre = f"layer{i + 1}.{b}"
            stride = 2 if b == 0 and i > 0 else 1
            out = F.relu(bn(conv(h, f"{pre}.conv1", stride, 1), f"{pre}.bn1"))
            out = bn(conv(out, f"{pre}.conv2", 1, 1), f"{pre}.bn2")
            shortcut = bn(conv(h, f"{pre}.downsample.0", stride, 0), f"{pre}.downsample.1") if b == 0 and (i > 0 or cin != c) else h
            h = F.relu(out + shortcut)
        cin = c
    h = F.adaptive_avg_pool2d(h, 1).flatten(1)
    return F.linear(h, p["fc.weight"], p["fc.bias"])


# ---- ViT-Tiny/16 (mirrors bench/models/vit-tiny.ts) ---------------------------------------------

IMG, PATCH, DIM, DEPTH, HEADS, MLP, VIT_CLASSES, EPS = 224, 16, 192, 12, 3, 768, 1000, 1e-6
TOKENS = (IMG // PATCH) ** 2 + 1


def vit_tiny_shapes():
    s = [("patch_embed.proj.weight", (DIM, 3, PATCH, PATCH)), ("patch_embed.proj.bias", (DIM,)),
         ("cls_token", (1, 1, DIM)), ("pos_embed", (1, TOKENS, DIM))]

    def lin(name, out, inp):
        s.extend([(f"{name}.weight", (out, inp)), (f"{name}.bias", (out,))])

    def ln(name):
        s.extend([(f"{name}.weight", (DIM,)), (f"{name}.bias", (DIM,))])

    for i in range(DEPTH):
        pre = f"blocks.{i}"
        ln(f"{pre}.norm1")
        lin(f"{pre}.attn.qkv", 3 * DIM, DIM)
        lin(f"{pre}.attn.proj", DIM, DIM)
        ln(f"{pre}.norm2")
        lin(f"{pre}.mlp.fc1", MLP, DIM)
        lin(f"{pre}.mlp.fc2", DIM, MLP)
    ln("norm")
    lin("head", VIT_CLASSES, DIM)
    return s


def vit_tiny_forward(p, _buffers, x):
    n = x.shape[0]

    def norm(t, name):
        return F.layer_norm(t, (DIM,), p[f"{name}.weight"], p[f"{name}.bias"], EPS)

    def linear(t, name):
        return F.linear(t, p[f"{name}.weight"], p[f"{name}.bias"])

    def attention(h, pre):
        qkv = linear(h, f"{pre}.qkv").reshape(n, TOKENS, 3, HEADS, DIM // HEADS).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = torch.softmax(q.matmul(k.transpose(-2, -1)) * (1 / math.sqrt(DIM // HEADS)), -1)
        o = a.matmul(v).transpose(1, 2).reshape(n, TOKENS, DIM)
        return linear(o, f"{pre}.proj")

    h = F.conv2d(x, p["patch_embed.proj.weight"], p["patch_embed.proj.bias"], stride=PATCH).flatten(2).transpose(1, 2)
    h = torch.cat([p["cls_token"].expand(n, 1, DIM), h], 1) + p["pos_embed"]
    for i in range(DEPTH):
        pre = f"blocks.{i}"
        h = h + attention(norm(h, f"{pre}.norm1"), f"{pre}.attn")
        h = h + linear(F.gelu(linear(norm(h, f"{pre}.norm2"), f"{pre}.mlp.fc1")), f"{pre}.mlp.fc2")
    return linear(norm(h, "norm")[:, 0], "head")


MODELS = {
    "resnet18": (resnet18_shapes, resnet18_buffers, resnet18_forward),
    "vit_tiny": (vit_tiny_shapes, lambda _s: {}, vit_tiny_forward),
}


# ---- fixtures, cases, timing ---------------------------------------------------------------------

def read_raw(path, dtype):
    """The file's bytes as a 1-D tensor of `dtype` (what numpy.fromfile gives, without numpy)."""
    with open(path, "rb") as fh:
        return torch.frombuffer(bytearray(fh.read()), dtype=dtype)


def load_fixture(data_dir, model, device):
    with open(os.path.join(data_dir, f"{model}.json")) as fh:
        manifest = json.load(fh)
    shapes_fn, buffers_fn, forward = MODELS[model]
    shapes = shapes_fn()
    theirs = [(q["name"], tuple(q["shape"])) for q in manifest["params"]]
    if theirs != shapes:
        diff = next((f"{a} vs {b}" for a, b in zip(theirs, shapes) if a != b), f"{len(theirs)} vs {len(shapes)} tensors")
        raise SystemExit(f"engine.py: {model}: tapir's parameters differ from the peer's model ({diff}); fix bench/models or this file")
    flat = read_raw(os.path.join(data_dir, f"{model}.f32"), torch.float32)
    sizes = [math.prod(sh) for _, sh in shapes]
    in_shape = tuple(manifest["input"])
    expect = 2 * sum(sizes) + math.prod(in_shape)
    if flat.numel() != expect:
        raise SystemExit(f"engine.py: {model}.f32 holds {flat.numel()} floats, expected {expect}")
    chunks = list(torch.split(flat, sizes + sizes + [math.prod(in_shape)]))
    # Moved before requires_grad_, so the parameters are leaves on the device (as on the tapir side).
    params = [c.reshape(sh).clone().to(device).requires_grad_(True) for c, (_, sh) in zip(chunks[: len(sizes)], shapes)]
    vecs = [c.reshape(sh).clone().to(device) for c, (_, sh) in zip(chunks[len(sizes): 2 * len(sizes)], shapes)]
    x = chunks[-1].reshape(in_shape).clone().to(device)
    labels = read_raw(os.path.join(data_dir, f"{model}.i64"), torch.int64).clone().to(device)
    names = [n for n, _ in shapes]
    buffers = {k: tuple(b.to(device) for b in mv) for k, mv in buffers_fn(shapes).items()}
    return names, params, vecs, x, labels, buffers, forward


def make_step(names, params, vecs, x, labels, buffers, forward, case):
    def loss_of(ps):
        return F.cross_entropy(forward(dict(zip(names, ps)), buffers, x), labels)

    def sq(ts):
        return sum(float(t.square().sum()) for t in ts)

    if case == "forward":
        def step(check):
            with torch.no_grad():
                logits = forward(dict(zip(names, params)), buffers, x)
            return {"logits_norm": math.sqrt(sq([logits]))} if check else {}
    elif case == "forward+backward":
        def step(check):
            loss = loss_of(params)
            g = torch.autograd.grad(loss, params)
            return {"loss": float(loss.detach()), "grad_norm": math.sqrt(sq(g))} if check else {}
    else:
        def step(check):
            loss = loss_of(params)
            g = torch.autograd.grad(loss, params, create_graph=True)
            dot = sum((gi * vi).sum() for gi, vi in zip(g, vecs))
            hv = torch.autograd.grad(dot, params)
            return {"loss": float(loss.detach()), "hv_norm": math.sqrt(sq(hv))} if check else {}
    return step


def run_batch(a):
    """Runs every case (check run, warm-up, timed runs) and returns one result per case."""
    out = []
    for model in [m for m in a.models.split(",") if m]:
        fixture = load_fixture(a.data, check_model(model), a.device)
        for case in [c for c in a.cases.split(",") if c]:
            step = make_step(*fixture, check_case(case))
            checks = step(True)
            for _ in range(a.warmup):
                step(False)
            samples = []
            for i in range(a.runs):
                ms = timed(step, a.device)
                samples.append(ms)
                print(f"  torch {model} {case} run {i + 1}/{a.runs}: {ms:.1f} ms", file=sys.stderr, flush=True)
            out.append({"model": model, "case": case, "median_ms": statistics.median(samples), "samples_ms": samples, "checks": checks})
    return out


def serve(a):
    """One JSON request per stdin line, one JSON reply per stdout line (bench/lib/peer.ts PeerSession):
    {"cmd": "case", "model", "case"} → {"checks"}; {"cmd": "run"} → {"ms"}; {"cmd": "quit"}."""
    fixtures, step = {}, None
    for line in sys.stdin:
        req = json.loads(line)
        if req["cmd"] == "quit":
            return
        if req["cmd"] == "case":
            model = check_model(req["model"])
            if model not in fixtures:
                fixtures.clear()  # one model's weights and graphs at a time, like the tapir side
                fixtures[model] = load_fixture(a.data, model, a.device)
            step = make_step(*fixtures[model], check_case(req["case"]))
            reply = {"checks": step(True)}
        elif req["cmd"] == "run":
            if step is None:
                raise SystemExit("engine.py: 'run' before 'case'")
            reply = {"ms": timed(step, a.device)}
        else:
            raise SystemExit(f"engine.py: unknown command {req['cmd']!r}")
        print(json.dumps(reply), flush=True)


def timed(step, device):
    settle(device)
    t0 = time.perf_counter()
    step(False)
    settle(device)
    return (time.perf_counter() - t0) * 1000


def settle(device):
    """cuda queues kernels and returns: wait for them before reading the clock, or a run times its launches only."""
    if device != "cpu":
        torch.cuda.synchronize()


def check_model(model):
    if model not in MODELS:
        raise SystemExit(f"engine.py: unknown model '{model}' (choose from {', '.join(MODELS)})")
    return model


def check_case(case):
    if case not in CASES:
        raise SystemExit(f"engine.py: unknown case '{case}' (choose from {', '.join(CASES)})")
    return case


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="folder written by bench/engine.ts")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--serve", action="store_true", help="answer requests on stdin instead of running every case")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--cases", default=",".join(CASES))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"engine.py: --device cuda, but torch {torch.__version__} finds no CUDA device (torch.version.cuda = {torch.version.cuda})")
    if a.serve:
        serve(a)
    else:
        print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "device": a.device, "cases": run_batch(a)}))


if __name__ == "__main__":
    main()
