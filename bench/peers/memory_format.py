#!/usr/bin/python3
"""PyTorch peer of bench/memory-format.ts: the same conv nets, weights and batch, NCHW and channels-last.

  prepare: torchvision MobileNetV2 and ResNet-18 (random init, seeded, 10 classes) exported to ONNX for tapir, and
           the input batch as a raw float32 file.
  run:     per model, eval forward (no grad) and train-mode forward + backward (gradients of every parameter, loss
           mean of squared logits), each in NCHW and in channels-last (model and input), median of --runs after
           --warmup. Prints one JSON line with the times (ms) and the eval logits' Σ|logit|.
"""
import argparse, json, os, time
import torch
import torchvision

MODELS = {'mobilenet_v2': torchvision.models.mobilenet_v2, 'resnet18': torchvision.models.resnet18}


def build(name, seed):
    torch.manual_seed(seed)
    return MODELS[name](num_classes=10)


def prepare(a):
    os.makedirs(a.dir, exist_ok=True)
    for name in a.models.split(','):
        m = build(name, a.seed).eval()
        x = torch.randn(2, 3, a.size, a.size)
        torch.onnx.export(m, x, os.path.join(a.dir, f'{name}.onnx'), opset_version=14, input_names=['input'],
                          output_names=['logits'], dynamic_axes={'input': {0: 'n'}, 'logits': {0: 'n'}},
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    g = torch.Generator().manual_seed(a.seed + 1)
    torch.randn(a.batch, 3, a.size, a.size, generator=g).numpy().tofile(os.path.join(a.dir, 'x.f32'))
    print(json.dumps({'prepared': a.dir}))


def timed(fn, warmup, runs):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1000)
    ts.sort()
    return ts[len(ts) // 2]


def run(a):
    torch.set_num_threads(a.threads)
    x = torch.from_file(os.path.join(a.dir, 'x.f32'), size=a.batch * 3 * a.size * a.size).view(a.batch, 3, a.size, a.size)
    out = {'threads': torch.get_num_threads(), 'times_ms': {}, 'logit_sums': {}}
    for name in a.models.split(','):
        for fmt, mf in (('nchw', torch.contiguous_format), ('channels-last', torch.channels_last)):
            m = build(name, a.seed).to(memory_format=mf)
            xx = x.contiguous(memory_format=mf)

            def fwd():
                m.eval()
                with torch.no_grad():
                    return m(xx)

            def train():
                m.train()
                m.zero_grad(set_to_none=True)
                m(xx).square().mean().backward()

            out['logit_sums'][f'{name}/{fmt}'] = float(fwd().double().abs().sum())
            out['times_ms'][f'{name}/forward/{fmt}'] = timed(fwd, a.warmup, a.runs)
            out['times_ms'][f'{name}/train/{fmt}'] = timed(train, a.warmup, a.runs)
    print(json.dumps(out))


p = argparse.ArgumentParser()
p.add_argument('mode', choices=['prepare', 'run'])
p.add_argument('--dir', required=True)
p.add_argument('--models', default='mobilenet_v2,resnet18')
p.add_argument('--size', type=int, default=96)
p.add_argument('--batch', type=int, default=32)
p.add_argument('--seed', type=int, default=0)
p.add_argument('--threads', type=int, default=1)
p.add_argument('--runs', type=int, default=5)
p.add_argument('--warmup', type=int, default=2)
a = p.parse_args()
prepare(a) if a.mode == 'prepare' else run(a)
