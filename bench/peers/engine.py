"""PyTorch peer of bench/engine.ts: the zoo's models as PyTorch users run them — torchvision's resnet18 and a
timm-layout ViT (written out below, since timm is not installed) — loaded by name with the very weights tapir's zoo
graph holds, in train mode (BN on batch statistics), timed the same way (warm-up, then medians).

Weights (the zoo graph's state dict under torchvision / timm names), inputs, labels and HVP vectors come from the
safetensors files bench/engine.ts writes (--data DIR, see bench/lib/zoo.ts), so both sides run the same numbers;
every parameter name and shape is checked against the module here. The input is laid out channels-last when the
manifest says the interpreter does so (its default for conv nets), the weights stay NCHW, as on the tapir side.
--device cuda moves everything to the GPU and synchronises it around every timed run, like the tapir side.
Progress goes to stderr. Batch mode prints one JSON object as the last stdout line: {"torch", "threads", "device",
"cases": [{model (zoo spec), case, median_ms, samples_ms, checks}]}. --serve mode runs one step per request, so
engine.ts can alternate tapir and torch runs (see serve()).

Run with Debian's /usr/bin/python3 (python3-torch, python3-torchvision) and LD_PRELOAD=libtcmalloc_minimal.so.4,
like tapir. Needs torch and torchvision only (no numpy, no safetensors: read_safetensors below).
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

CASES = ("forward", "forward+backward", "hvp")


# ---- ViT (timm's VisionTransformer layout and names; forward as src/graph/zoo/vit.ts) -------------------------

class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.scale = (dim // heads) ** -0.5

    def forward(self, x):
        n, t, d = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        # vit.ts scales the scores (timm scales q first: the same numbers, the scale being a power of two here)
        a = (q @ k.transpose(-2, -1) * self.scale).softmax(-1)
        return self.proj((a @ v).transpose(1, 2).reshape(n, t, d))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    """timm's VisionTransformer (class token, no register tokens, pre-norm blocks, token pooling, no fc_norm)."""

    def __init__(self, img_size, patch=16, dim=192, depth=12, heads=3, num_classes=1000):
        super().__init__()
        self.patch_embed = PatchEmbed(patch, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (img_size // patch) ** 2 + 1, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


VIT_TINY = {"patch": 16, "dim": 192, "depth": 12, "heads": 3}
MODELS = {
    "resnet18": lambda m: torchvision.models.resnet18(num_classes=m["num_classes"]),
    "vit_tiny": lambda m: VisionTransformer(m["size"], num_classes=m["num_classes"], **VIT_TINY),
}


# ---- fixtures ------------------------------------------------------------------------------------------------

ST_DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8,
             "BOOL": torch.bool}


def read_safetensors(path):
    """name → tensor of a safetensors file (8-byte little-endian header size, JSON header, raw little-endian data)."""
    with open(path, "rb") as fh:
        buf = bytearray(fh.read())
    n = int.from_bytes(buf[:8], "little")
    header = json.loads(buf[8: 8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        lo, hi = e["data_offsets"]
        dtype = ST_DTYPES[e["dtype"]]
        t = torch.frombuffer(buf, dtype=dtype, count=(hi - lo) // torch.empty((), dtype=dtype).element_size(),
                             offset=base + lo) if hi > lo else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(e["shape"]).clone()
    return out


def load_model(data_dir, model, device):
    """The peer's module with tapir's weights, and the fixture: {manifest, module, names, params, extra}."""
    with open(os.path.join(data_dir, f"{model}.json")) as fh:
        manifest = json.load(fh)
    module = MODELS[model](manifest)
    state = read_safetensors(os.path.join(data_dir, f"{model}.safetensors"))
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]  # torch's bookkeeping, not in the zoo
    if missing or unexpected:
        raise SystemExit(f"engine.py: {model}: tapir's state dict does not match the peer's module (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}); fix src/graph/zoo or this file")
    module = module.to(device).train()
    named = dict(module.named_parameters())
    names = [q["name"] for q in manifest["params"]]
    if sorted(names) != sorted(named):
        raise SystemExit(f"engine.py: {model}: trainable parameters differ: tapir-only {sorted(set(names) - set(named))[:5]}, "
                         f"peer-only {sorted(set(named) - set(names))[:5]}")
    for q in manifest["params"]:
        if tuple(named[q["name"]].shape) != tuple(q["shape"]):
            raise SystemExit(f"engine.py: {model}: {q['name']} is {list(named[q['name']].shape)} here, {q['shape']} in tapir")
    extra = {k: v.to(device) for k, v in read_safetensors(os.path.join(data_dir, f"{model}.fixture.safetensors")).items()}
    if tuple(extra["input"].shape) != tuple(manifest["input"]):
        raise SystemExit(f"engine.py: {model}: input is {list(extra['input'].shape)}, manifest says {manifest['input']}")
    return {"manifest": manifest, "module": module, "names": names, "params": [named[n] for n in names], "extra": extra}


def logits_fn(fx):
    """The module's train-mode logits on the fixture's input, laid out as the interpreter lays it out."""
    module, x = fx["module"], fx["extra"]["input"]
    if fx["manifest"]["memory_format"] == "channels-last":
        return lambda: module(x.contiguous(memory_format=torch.channels_last))
    return lambda: module(x)


def make_step(fx, case):
    logits = logits_fn(fx)
    params, labels = fx["params"], fx["extra"]["labels"]
    vecs = [fx["extra"][f"v.{n}"] for n in fx["names"]]

    def loss():
        return F.cross_entropy(logits(), labels)

    def sq(ts):
        return sum(float(t.square().sum()) for t in ts)

    if case == "forward":
        def step(check):
            with torch.no_grad():
                out = logits()
            return {"logits_norm": math.sqrt(sq([out]))} if check else {}
    elif case == "forward+backward":
        def step(check):
            val = loss()
            g = torch.autograd.grad(val, params)
            return {"loss": float(val.detach()), "grad_norm": math.sqrt(sq(g))} if check else {}
    else:
        def step(check):
            val = loss()
            g = torch.autograd.grad(val, params, create_graph=True)
            dot = sum((gi * vi).sum() for gi, vi in zip(g, vecs))
            hv = torch.autograd.grad(dot, params)
            return {"loss": float(val.detach()), "hv_norm": math.sqrt(sq(hv))} if check else {}
    return step


def run_batch(a):
    """Runs every case (check run, warm-up, timed runs) and returns one result per case."""
    out = []
    for model in [m for m in a.models.split(",") if m]:
        fixture = load_model(a.data, check_model(model), a.device)
        spec = fixture["manifest"]["spec"]
        for case in [c for c in a.cases.split(",") if c]:
            step = make_step(fixture, check_case(case))
            checks = step(True)
            for _ in range(a.warmup):
                step(False)
            samples = []
            for i in range(a.runs):
                ms = timed(step, a.device)
                samples.append(ms)
                print(f"  torch {spec} {case} run {i + 1}/{a.runs}: {ms:.1f} ms", file=sys.stderr, flush=True)
            out.append({"model": spec, "case": case, "median_ms": statistics.median(samples), "samples_ms": samples, "checks": checks})
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
                fixtures[model] = load_model(a.data, model, a.device)
            step = make_step(fixtures[model], check_case(req["case"]))
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
