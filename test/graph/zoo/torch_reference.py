"""Reference outputs for tapir's built-in architectures: torchvision ResNet-18 and a timm-style ViT written out in
plain torch (timm is not packaged in Debian). Writes weights.safetensors (torch names), x.f32 and y.f32.
Usage: /usr/bin/python3 torch_reference.py <out_dir> <resnet18|vit> <size>"""
import json, struct, sys
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

out, arch, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.manual_seed(0)


class Attention(nn.Module):  # timm.models.vision_transformer.Attention
    def __init__(s, dim, heads):
        super().__init__()
        s.heads, s.scale = heads, (dim // heads) ** -0.5
        s.qkv, s.proj = nn.Linear(dim, dim * 3), nn.Linear(dim, dim)

    def forward(s, x):
        B, N, C = x.shape
        qkv = s.qkv(x).reshape(B, N, 3, s.heads, C // s.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        a = ((q @ k.transpose(-2, -1)) * s.scale).softmax(dim=-1)
        return s.proj((a @ v).transpose(1, 2).reshape(B, N, C))


class Mlp(nn.Module):
    def __init__(s, dim):
        super().__init__()
        s.fc1, s.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(s, x):
        return s.fc2(F.gelu(s.fc1(x)))


class Block(nn.Module):
    def __init__(s, dim, heads):
        super().__init__()
        s.norm1, s.attn, s.norm2, s.mlp = nn.LayerNorm(dim, eps=1e-6), Attention(dim, heads), nn.LayerNorm(dim, eps=1e-6), Mlp(dim)

    def forward(s, x):
        x = x + s.attn(s.norm1(x))
        return x + s.mlp(s.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(s, dim):
        super().__init__()
        s.proj = nn.Conv2d(3, dim, 16, 16)


class ViT(nn.Module):
    def __init__(s, size, dim=192, heads=3, depth=2, classes=1000):
        super().__init__()
        s.patch_embed = PatchEmbed(dim)
        s.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        s.pos_embed = nn.Parameter(torch.zeros(1, (size // 16) ** 2 + 1, dim))
        s.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        s.norm, s.head = nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, classes)

    def forward(s, x):
        x = s.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([s.cls_token.expand(x.shape[0], -1, -1), x], 1) + s.pos_embed
        return s.head(s.norm(s.blocks(x))[:, 0])


model = torchvision.models.resnet18() if arch == 'resnet18' else ViT(size)
with torch.no_grad():  # non-trivial norms and running statistics, so every tensor matters
    for name, t in model.state_dict().items():
        if name.endswith('running_var'):
            t.uniform_(0.5, 1.5)
        elif name.endswith('running_mean') or (('bn' in name or 'downsample.1' in name or 'norm' in name) and t.dtype == torch.float32):
            t.normal_(0, 0.2).add_(1.0 if name.endswith('weight') else 0.0)
        elif arch == 'vit' and t.dtype == torch.float32:
            t.normal_(0, 0.05)
model.eval()
x = torch.rand(2, 3, size, size)
with torch.no_grad():
    y = model(x)

tensors = {k: v.contiguous() for k, v in model.state_dict().items() if not k.endswith('num_batches_tracked')}
header, off, blobs = {}, 0, []
for k, v in tensors.items():
    b = v.numpy().astype('<f4').tobytes()
    header[k] = {'dtype': 'F32', 'shape': list(v.shape), 'data_offsets': [off, off + len(b)]}
    off += len(b)
    blobs.append(b)
h = json.dumps(header).encode()
with open(f'{out}/weights.safetensors', 'wb') as f:
    f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))
x.numpy().astype('<f4').tofile(f'{out}/x.f32')
y.numpy().astype('<f4').tofile(f'{out}/y.f32')
