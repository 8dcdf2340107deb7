/**
 * Built-in architectures vs PyTorch (Debian python3-torch): torchvision ResNet-18 itself, and a timm-style ViT
 * written out in torch; the same weights (a safetensors state dict with torch names) and inputs, ≤ 1e-4.
 * Skipped when /usr/bin/python3 has no torch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { scope, tensor } from '../../../src/engine/index.js';
import { forward } from '../../../src/graph/interpreter.js';
import { disposeGraph } from '../../../src/graph/params.js';
import { loadStateDict } from '../../../src/graph/safetensors.js';
import { buildVit, loadModel } from '../../../src/graph/zoo/index.js';
import { expectClose } from '../../helpers/check.js';
import type { Graph } from '../../../src/graph/ir.js';

const SCRIPT = fileURLToPath(new URL('../../../../test/graph/zoo/torch_reference.py', import.meta.url));
const hasTorch = spawnSync('/usr/bin/python3', ['-c', 'import torch, torchvision'], { stdio: 'ignore' }).status === 0;

function reference(arch: string, size: number): { dir: string; x: Float32Array; y: Float32Array } {
  const dir = mkdtempSync(join(tmpdir(), `tapir-torch-${arch}-`));
  execFileSync('/usr/bin/python3', [SCRIPT, dir, arch, String(size)], { stdio: ['ignore', 'ignore', 'inherit'] });
  const f32 = (f: string) => {
    const b = readFileSync(join(dir, f));
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  };
  return { dir, x: f32('x.f32'), y: f32('y.f32') };
}

function compare(g: Graph, x: Float32Array, y: Float32Array, size: number): void {
  scope(() => {
    const out = forward(g, tensor(x, [2, 3, size, size]), { mode: 'eval' }).outputs[0]!;
    assert.deepEqual(out.shape, [2, 1000]);
    const scale = Math.max(...Array.from(y, Math.abs));
    expectClose(out, y, { rtol: 1e-4, atol: 1e-4 * scale }, 'logits vs torch');
  });
}

test(
  'resnet18 with a torchvision state dict matches torchvision at 64 px',
  { skip: !hasTorch && 'no python3-torch' },
  async () => {
    const r = reference('resnet18', 64);
    const g = await loadModel('resnet18@64', { weights: join(r.dir, 'weights.safetensors') });
    compare(g, r.x, r.y, 64);
    disposeGraph(g);
    rmSync(r.dir, { recursive: true });
  },
);

test(
  'a 2-block vit_tiny with timm names matches the timm layout written in torch at 32 px',
  { skip: !hasTorch && 'no python3-torch' },
  async () => {
    const r = reference('vit', 32);
    const g = buildVit({ variant: 'vit_tiny', size: 32, depth: 2 });
    const res = await loadStateDict(g, join(r.dir, 'weights.safetensors'));
    assert.deepEqual(res.missing, []);
    compare(g, r.x, r.y, 32);
    disposeGraph(g);
    rmSync(r.dir, { recursive: true });
  },
);
