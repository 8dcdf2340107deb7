#!/usr/bin/python3
"""Exports ONNX fixtures for tapir's importer parity tests (Debian python3-torch / python3-torchvision, offline).

Usage: /usr/bin/python3 scripts/export_onnx.py OUT_DIR [--opsets 14,17] [--size 32] [--safetensors]

Writes, for each model m in {resnet18, vit} and each opset k:
  OUT_DIR/m_opset{k}.onnx    random weights (fixed seed), batch dim symbolic ('batch'); ResNet also H and W.
                             TrainingMode.PRESERVE keeps BatchNormalization nodes (EVAL would fold them into
                             the convs), so the imported model can be fine-tuned with its BN layers.
  OUT_DIR/m_input.f32        a fixed input batch, raw little-endian float32
  OUT_DIR/m_output.f32       torch's output on that input (eval mode), raw float32
  OUT_DIR/manifest.json      shapes and file names
With --safetensors, also the state dicts (torchvision / timm names) as safetensors, for loading into tapir's
built-in architectures: resnet18.safetensors (the same ResNet-18) and vit_tiny_d1.safetensors (timm vit_tiny
dims, patch 16, one block, 32 px) with vit_tiny_d1_{input,output}.f32.
The ViT is a small timm-style model written in plain torch (timm is not packaged in Debian): patch-embed conv,
class token, position embedding, pre-norm blocks with one qkv Linear, attention by matmul/softmax, GELU MLP, head.
"""
import argparse
import json
import math
import os
import sys
import warnings

import torch
import torch.nn as nn
import torchvision


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class ViT(nn.Module):
    """timm VisionTransformer's structure and parameter names (cls token, no distillation token)."""

    def __init__(self, img=32, patch=8, dim=64, depth=2, heads=2, mlp_ratio=4.0, classes=10):
        super().__init__()
        self.patch_embed = PatchEmbed(patch, dim)
        n = (img // patch) ** 2
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self.pos_embed
        x = self.blocks(x)
        x = self.norm(x)
        return self.head(x[:, 0])


def randomize_bn(model):
    # Fresh BN layers have mean 0 / var 1, which would hide running-statistics bugs in the importer.
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


ST_DTYPES = {torch.float32: ('F32', '<f4'), torch.float64: ('F64', '<f8'), torch.int64: ('I64', '<i8')}


def save_safetensors(state, path):
    """The safetensors format by hand (the Python package is not in Debian): u64 header length, JSON, raw data."""
    header, blobs, off = {}, [], 0
    for k, v in state.items():
        dt, np_dt = ST_DTYPES[v.dtype]
        b = v.detach().contiguous().numpy().astype(np_dt).tobytes()
        header[k] = {'dtype': dt, 'shape': list(v.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header['__metadata__'] = {'format': 'pt', 'producer': 'tapir scripts/export_onnx.py'}
    h = json.dumps(header).encode()
    h += b' ' * ((8 - (len(h) + 8) % 8) % 8)
    tmp = path + '.tmp'
    with open(tmp, 'wb') as fh:
        fh.write(len(h).to_bytes(8, 'little'))
        fh.write(h)
        for b in blobs:
            fh.write(b)
    os.replace(tmp, path)


def main():
    # PRESERVE + constant folding warns about training-mode models; ours are in eval mode.
    warnings.filterwarnings('ignore', message='It is recommended that constant folding')
    ap = argparse.ArgumentParser()
    ap.add_argument('out')
    ap.add_argument('--opsets', default='14,17')
    ap.add_argument('--size', type=int, default=32, help='ResNet input size (ViT is fixed at 32)')
    ap.add_argument('--batch', type=int, default=2)
    ap.add_argument('--safetensors', action='store_true')
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(0)
    opsets = [int(s) for s in a.opsets.split(',')]
    max_opset = torch.onnx._constants.ONNX_MAX_OPSET
    models = {
        'resnet18': (torchvision.models.resnet18(num_classes=10), a.size, {0: 'batch', 2: 'height', 3: 'width'}),
        'vit': (ViT(), 32, {0: 'batch'}),
    }
    randomize_bn(models['resnet18'][0])
    manifest = {'torch': torch.__version__, 'opsets': [], 'models': {}}
    for name, (model, size, axes) in models.items():
        model.eval()
        x = torch.randn(a.batch, 3, size, size, generator=torch.Generator().manual_seed(42))
        with torch.no_grad():
            y = model(x)
        x.numpy().astype('<f4').tofile(os.path.join(a.out, f'{name}_input.f32'))
        y.numpy().astype('<f4').tofile(os.path.join(a.out, f'{name}_output.f32'))
        files = {}
        for k in opsets:
            if k > max_opset:
                print(f'opset {k} > this torch\'s maximum {max_opset}; skipped', file=sys.stderr)
                continue
            f = f'{name}_opset{k}.onnx'
            torch.onnx.export(model, x, os.path.join(a.out, f), opset_version=k, input_names=['input'],
                              output_names=['logits'], dynamic_axes={'input': axes, 'logits': {0: 'batch'}},
                              do_constant_folding=True, training=torch.onnx.TrainingMode.PRESERVE)
            files[str(k)] = f
        manifest['models'][name] = {'input': f'{name}_input.f32', 'output': f'{name}_output.f32',
                                    'input_shape': list(x.shape), 'output_shape': list(y.shape), 'onnx': files,
                                    'parameters': sum(p.numel() for p in model.parameters())}
    manifest['opsets'] = [k for k in opsets if k <= max_opset]
    if a.safetensors:
        save_safetensors(models['resnet18'][0].state_dict(), os.path.join(a.out, 'resnet18.safetensors'))
        vt = ViT(img=32, patch=16, dim=192, depth=1, heads=3, classes=10).eval()
        x = torch.randn(a.batch, 3, 32, 32, generator=torch.Generator().manual_seed(43))
        with torch.no_grad():
            y = vt(x)
        save_safetensors(vt.state_dict(), os.path.join(a.out, 'vit_tiny_d1.safetensors'))
        x.numpy().astype('<f4').tofile(os.path.join(a.out, 'vit_tiny_d1_input.f32'))
        y.numpy().astype('<f4').tofile(os.path.join(a.out, 'vit_tiny_d1_output.f32'))
        manifest['safetensors'] = {
            'resnet18': {'file': 'resnet18.safetensors', 'input': 'resnet18_input.f32', 'output': 'resnet18_output.f32',
                         'input_shape': [a.batch, 3, a.size, a.size], 'output_shape': [a.batch, 10]},
            'vit_tiny_d1': {'file': 'vit_tiny_d1.safetensors', 'input': 'vit_tiny_d1_input.f32', 'output': 'vit_tiny_d1_output.f32',
                            'input_shape': list(x.shape), 'output_shape': list(y.shape)}}
    tmp = os.path.join(a.out, 'manifest.json.tmp')
    with open(tmp, 'w') as fh:
        json.dump(manifest, fh, indent=1)
    os.replace(tmp, os.path.join(a.out, 'manifest.json'))
    print(json.dumps({'out': a.out, 'opsets': manifest['opsets'], 'models': list(models)}))


if __name__ == '__main__':
    main()
