/**
 * ONNX fixtures for the importer/exporter tests, generated at test time by scripts/export_onnx.py (Debian
 * python3-torch) into a temp directory keyed by the script's hash, so the two ONNX test files share one run.
 * Returns null (and the tests skip, saying why) only when /usr/bin/python3 has no torch/torchvision.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { tensor, type Tensor } from '../../src/engine/index.js';

export const PYTHON = '/usr/bin/python3';
const SCRIPT = resolve('scripts/export_onnx.py');

export interface FixtureModel {
  input: string;
  output: string;
  input_shape: number[];
  output_shape: number[];
  onnx: Record<string, string>;
}
export interface Fixtures {
  dir: string;
  opsets: number[];
  models: Record<'resnet18' | 'vit', FixtureModel>;
  /** torchvision / timm state dicts as safetensors, with an input and torch's output on it. */
  safetensors: Record<
    'resnet18' | 'vit_tiny_d1',
    { file: string; input: string; output: string; input_shape: number[]; output_shape: number[] }
  >;
}

export function torchMissing(): string | null {
  const r = spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { encoding: 'utf8' });
  return r.status === 0
    ? null
    : `${PYTHON} lacks torch/torchvision (apt-get install python3-torch python3-torchvision): ${r.stderr.trim().split('\n').pop()}`;
}

export function onnxFixtures(): Fixtures | null {
  if (torchMissing()) return null;
  const hash = createHash('sha256').update(readFileSync(SCRIPT, 'utf8')).digest('hex').slice(0, 12);
  const dir = join(tmpdir(), `tapir-onnx-fixtures-${hash}`);
  if (!existsSync(join(dir, 'manifest.json'))) {
    const work = mkdtempSync(join(tmpdir(), 'tapir-onnx-gen-'));
    execFileSync(PYTHON, [SCRIPT, work, '--opsets', '14,17', '--size', '32', '--safetensors'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    try {
      renameSync(work, dir);
    } catch {
      rmSync(work, { recursive: true, force: true }); // another test process won the race
    }
  }
  return { dir, ...JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) } as Fixtures;
}

export function readF32(path: string, shape: readonly number[]): Tensor {
  const b = readFileSync(path);
  return tensor(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)), shape);
}

/** max |a − b| / max |b|: relative to the output's scale, so entries near zero do not dominate. */
export function maxRelError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return Number.isFinite(d) ? d / m : Infinity;
}
