#!/usr/bin/python3
"""Exports one small, seeded instance of each torchvision classifier family to ONNX, with torch's logits, for
tapir's family import/prune/export test (test/graph/onnx-families.test.ts). Debian python3-torch 1.13 and
python3-torchvision 0.14, offline; `make onnx-families` runs it when the output is missing or older than this file.

Usage: /usr/bin/python3 scripts/onnx_families.py OUT_DIR [--only a,b] [--opsets 13,17] [--batch 2]

--only writes a folder holding just those families: use it with another OUT_DIR (the test takes whatever the manifest
in .cache/onnx-families lists, and writes the docs table from it).
Writes into a temp folder beside OUT_DIR, then renames it over OUT_DIR (an interrupted run leaves the old one):
  <family>_opset{k}.onnx   batch dim symbolic ('batch'), TrainingMode.PRESERVE (BN stays a node, as in
                           scripts/export_onnx.py), constant folding on
  <family>_input.f32       a fixed input batch, raw little-endian float32
  <family>_output.f32      torch's logits on it (eval mode), raw float32
  manifest.json            per family: files, shapes, parameter count, what the instance is, export seconds, or the
                           export error (a family torch cannot export is recorded, not fatal)

Every instance is a torchvision model class; where the stock configuration is large, a smaller configuration of
the same class (the `note`). Parameters that torchvision initialises to a constant (biases, norm scales, ConvNeXt's
1e-6 layer scale, ViT's zero head) get N(0, 0.1^2) noise, and BN running statistics are the model's own (a few
random batches with BN in train mode, then a shift of 0.1 standard deviations), so a wrong bias, norm or scale in the importer changes the logits
instead of hiding behind a zero or a one, and the logits depend on the input.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models import convnext, resnet, swin_transformer, vgg


class OpsNet(nn.Module):
    """The common activations, reductions, Resize and Einsum that the families do not use, in one small CNN."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.prelu = nn.PReLU(8)
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(8, 8, 1)
        self.proj = nn.Parameter(torch.randn(8, 8) * 0.3)
        self.head = nn.Linear(8 * 5, classes)

    def forward(self, x):
        x = self.conv1(x)
        a = torch.maximum(F.leaky_relu(x, 0.1), self.prelu(x))
        b = torch.minimum(F.elu(x, 0.7), F.selu(x))
        c = F.gelu(x) + F.gelu(x, approximate='tanh') + F.softplus(x) + F.mish(x)
        y = a + b + c + torch.exp(-x.abs()) + torch.log(x.abs() + 1)
        y = F.interpolate(self.conv2(y), scale_factor=2, mode='nearest')
        y = y + F.interpolate(self.conv3(y), size=(y.shape[2], y.shape[3]), mode='bilinear', align_corners=False)
        t = y.flatten(2)                                       # [N, C, L]
        t = torch.einsum('ncl,dc->ndl', t, self.proj)          # a channel mix written as einsum
        s = torch.einsum('ncl,nkl->nck', t, t) / t.shape[2]    # a Gram matrix (attention-score shaped)
        feats = torch.cat([t.sum(2), t.amax(2), t.amin(2), t.norm(p=2, dim=2), s.mean(2)], 1)
        return self.head(feats)


def small_resnet(**kw):
    """torchvision's ResNet with Bottleneck blocks, one block per stage and the last stage dropped (to stay small)."""
    m = resnet.ResNet(resnet.Bottleneck, [1, 1, 1, 1], num_classes=10, **kw)
    m.layer4 = nn.Identity()
    m.fc = nn.Linear(1024, 10)
    return m


def small_vgg():
    m = vgg.VGG(vgg.make_layers([16, 'M', 32, 'M', 64, 64, 'M', 64, 64], batch_norm=True), num_classes=10)
    # The stock head is Linear(512*7*7, 4096) ...: the same layout, narrower (AdaptiveAvgPool2d(7) kept).
    m.classifier = nn.Sequential(nn.Linear(64 * 7 * 7, 64), nn.ReLU(True), nn.Dropout(), nn.Linear(64, 64), nn.ReLU(True),
                                 nn.Dropout(), nn.Linear(64, 10))
    return m


def small_alexnet():
    m = torchvision.models.AlexNet(num_classes=10)
    m.classifier = nn.Sequential(nn.Dropout(), nn.Linear(256 * 6 * 6, 64), nn.ReLU(True), nn.Dropout(), nn.Linear(64, 64),
                                 nn.ReLU(True), nn.Linear(64, 10))
    return m


def small_convnext():
    c = convnext.CNBlockConfig
    return convnext.ConvNeXt([c(16, 32, 1), c(32, 64, 1), c(64, 128, 2), c(128, None, 1)], num_classes=10)


# name → (constructor, input size, note). Input sizes: 32 px unless the architecture needs more (AlexNet's and VGG's
# AdaptiveAvgPool2d(6 / 7) export only when the feature map is a multiple of 6 / 7).
FAMILIES = {
    'mobilenet_v3_small': (lambda: torchvision.models.mobilenet_v3_small(num_classes=10), 32, 'stock'),
    'mobilenet_v3_large': (lambda: torchvision.models.mobilenet_v3_large(num_classes=10), 32, 'stock'),
    'efficientnet_b0': (lambda: torchvision.models.efficientnet_b0(num_classes=10), 32, 'stock'),
    'regnet_y_400mf': (lambda: torchvision.models.regnet_y_400mf(num_classes=10), 32, 'stock'),
    'shufflenet_v2_x0_5': (lambda: torchvision.models.shufflenet_v2_x0_5(num_classes=10), 32, 'stock'),
    'squeezenet1_1': (lambda: torchvision.models.squeezenet1_1(num_classes=10), 64, 'stock'),
    'densenet': (lambda: torchvision.models.DenseNet(growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16, bn_size=2, num_classes=10),
                 32, 'DenseNet(growth 8, blocks 2-2-2-2, 16 init features)'),
    'googlenet': (lambda: torchvision.models.GoogLeNet(num_classes=10, aux_logits=False, init_weights=True), 32, 'stock, no aux heads'),
    'mnasnet0_5': (lambda: torchvision.models.mnasnet0_5(num_classes=10), 32, 'stock'),
    'vgg': (small_vgg, 56, 'VGG-BN, channels 16-32-64-64-64-64, 3 pools, head 64-64'),
    'alexnet': (small_alexnet, 224, 'stock features, head 64-64'),
    'resnext': (lambda: small_resnet(groups=32, width_per_group=4), 32, 'ResNeXt 32x4d bottlenecks, 1 block per stage, stages 1-3'),
    'wide_resnet': (lambda: small_resnet(width_per_group=128), 32, 'Wide-ResNet (width 128) bottlenecks, 1 block per stage, stages 1-3'),
    'convnext': (small_convnext, 32, 'ConvNeXt, dims 16-32-64-128, blocks 1-1-2-1'),
    'vit': (lambda: torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=10),
            32, 'ViT, patch 8, 2 layers, dim 32, 2 heads'),
    'swin': (lambda: swin_transformer.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[1, 2], window_size=[4, 4], num_classes=10),
             32, 'Swin, patch 4, dim 16, depths 2-2, window 4'),
    'ops': (OpsNet, 32, 'LeakyRelu PRelu Elu Selu Gelu Softplus Mish Exp Log Max Min Resize Einsum ReduceSum/Max/Min/L2'),
}


def perturb(model, seed, size):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() == 1 or float(p.std()) == 0.0:
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
        # BN running statistics of the model's own activations (a cumulative average over a few random batches):
        # made-up statistics let the signal vanish through a deep net, and logits that do not depend on the input
        # would let a wrong op pass the parity check.
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        if bns:
            # only BN in train mode: dropout and stochastic depth off, as in the eval-mode forward the statistics serve
            for m in bns:
                m.train()
            for _ in range(3):
                model(torch.randn(16, 3, size, size, generator=g))
            model.eval()
            for m in bns:
                m.running_mean.add_(torch.randn(m.num_features, generator=g) * m.running_var.sqrt() * 0.1)


def export_family(name, out, opsets, batch):
    make, size, note = FAMILIES[name]
    seed = sum(map(ord, name))
    torch.manual_seed(seed)
    model = make().eval()
    perturb(model, seed, size)
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        y = model(x)
    x.numpy().astype('<f4').tofile(os.path.join(out, f'{name}_input.f32'))
    y.numpy().astype('<f4').tofile(os.path.join(out, f'{name}_output.f32'))
    entry = {'input': f'{name}_input.f32', 'output': f'{name}_output.f32', 'input_shape': list(x.shape), 'output_shape': list(y.shape),
             'parameters': sum(p.numel() for p in model.parameters()), 'note': note, 'onnx': {}, 'errors': {}}
    t0 = time.time()
    for k in opsets:
        f = f'{name}_opset{k}.onnx'
        try:
            torch.onnx.export(model, x, os.path.join(out, f), opset_version=k, input_names=['input'], output_names=['logits'],
                              dynamic_axes={'input': {0: 'batch'}, 'logits': {0: 'batch'}}, do_constant_folding=True,
                              training=torch.onnx.TrainingMode.PRESERVE)
            entry['onnx'][str(k)] = f
        except Exception as e:  # recorded in the manifest: the test reports it as "does not export"
            entry['errors'][str(k)] = f'{type(e).__name__}: {str(e).splitlines()[0][:300]}'
    entry['export_seconds'] = round(time.time() - t0, 2)
    return entry


def main():
    warnings.filterwarnings('ignore')
    ap = argparse.ArgumentParser()
    ap.add_argument('out')
    ap.add_argument('--only', default='', help='comma-separated family names (default: all)')
    ap.add_argument('--opsets', default='13,17')
    ap.add_argument('--batch', type=int, default=2)
    a = ap.parse_args()
    names = [n for n in a.only.split(',') if n] or list(FAMILIES)
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        sys.exit(f'unknown families {unknown}; known: {", ".join(FAMILIES)}')
    opsets = [int(s) for s in a.opsets.split(',')]
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    parent = os.path.dirname(os.path.abspath(a.out))
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix='.onnx-families-', dir=parent)
    try:
        t0 = time.time()
        manifest = {'torch': torch.__version__, 'torchvision': torchvision.__version__, 'opsets': opsets, 'families': {}}
        for n in names:
            manifest['families'][n] = export_family(n, work, opsets, a.batch)
            e = manifest['families'][n]
            print(f'{n}: {e["parameters"]} parameters, {e["export_seconds"]} s' + (f', errors {e["errors"]}' if e['errors'] else ''), file=sys.stderr)
        manifest['seconds'] = round(time.time() - t0, 1)
        with open(os.path.join(work, 'manifest.json'), 'w') as fh:
            json.dump(manifest, fh, indent=1)
        if os.path.exists(a.out):
            shutil.rmtree(a.out)
        os.replace(work, a.out)
    finally:
        if os.path.exists(work):
            shutil.rmtree(work)
    print(json.dumps({'out': a.out, 'families': names, 'seconds': manifest['seconds']}))


if __name__ == '__main__':
    main()
