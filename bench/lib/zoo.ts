/**
 * The models of the engine and Hessian benches: zoo graphs (src/graph/zoo, torchvision / timm parameter names) run
 * through the graph interpreter, the path users run. Their PyTorch peers (bench/peers/engine.py) load the same
 * weights by name into torchvision's resnet18 and a timm-layout ViT, from the files `writeModelFiles` leaves.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { keep, noGrad, type Device, type Tensor } from '../../src/engine/index.js';
import {
  encodeSafetensors,
  forward,
  loadModel,
  trainableParams,
  useChannelsLast,
  type Graph,
} from '../../src/graph/index.js';
import { BenchOptionError } from './args.js';

/** Bench model ids and their default input size (px). ResNet-18 has torchvision's ImageNet stem (7×7/2 conv, max-pool). */
export const BENCH_MODELS = { resnet18: 128, vit_tiny: 224 } as const;
export type ModelId = keyof typeof BENCH_MODELS;
export const MODEL_IDS = Object.keys(BENCH_MODELS) as ModelId[];

export interface ModelChoice {
  id: ModelId;
  size: number;
}

/** `resnet18,vit_tiny@112`: ids from BENCH_MODELS, each with an optional `@<size>` (default BENCH_MODELS[id]). */
export function parseModels(raw: string | undefined, option = 'models'): ModelChoice[] {
  if (raw === undefined) return MODEL_IDS.map((id) => ({ id, size: BENCH_MODELS[id] }));
  const out: ModelChoice[] = [];
  for (const item of raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')) {
    const m = /^([a-z0-9_]+)(?:@(\d+))?$/.exec(item);
    if (!m || !(m[1]! in BENCH_MODELS))
      throw new BenchOptionError(
        `--${option}: unknown model '${item}'`,
        option,
        `choose from ${MODEL_IDS.join(', ')}, each optionally @<size> (e.g. resnet18@64)`,
      );
    out.push({ id: m[1] as ModelId, size: m[2] ? Number(m[2]) : BENCH_MODELS[m[1] as ModelId] });
  }
  if (out.length === 0)
    throw new BenchOptionError(`--${option} is empty`, option, `choose from ${MODEL_IDS.join(', ')}`);
  return out;
}

/** The zoo spec of a choice, e.g. `resnet18@128`. */
export const specOf = (c: ModelChoice): string => `${c.id}@${c.size}`;

/** The zoo model, fresh torch-like init from `seed` (torchvision / timm init, as `tapir` builds it). */
export function loadBenchModel(c: ModelChoice, seed: number): Promise<Graph> {
  return loadModel(specOf(c), { seed });
}

/** The tensors `grad` and `hvp` differentiate: the graph's trainable parameters, in graph order. */
export function trainable(g: Graph): { names: string[]; tensors: Tensor[] } {
  const ps = trainableParams(g);
  return { names: ps.map((p) => p.name), tensors: ps.map((p) => p.tensor) };
}

/** Width of the logits (the head's output features). */
export function numClasses(c: ModelChoice, g: Graph): number {
  return g.params.get(c.id === 'vit_tiny' ? 'head.weight' : 'fc.weight')!.tensor.shape[0]!;
}

export function numParams(g: Graph): number {
  return trainableParams(g).reduce((a, p) => a + p.tensor.numel, 0);
}

/** Moves every parameter and buffer to `device` (cpu: nothing to do); trainable ones stay grad-requiring leaves. */
export function graphToDevice(g: Graph, device: Device): void {
  if (device === 'cpu') return;
  for (const p of g.params.values()) {
    const d = keep(noGrad(() => p.tensor.to(null, device)));
    if (p.trainable) d.requiresGrad_(true);
    p.tensor.dispose();
    p.tensor = d;
  }
}

/** Logits of the interpreter's train-mode pass (BN on batch statistics, running statistics updated, as fine-tuning). */
export function trainLogits(g: Graph, x: Tensor): Tensor {
  return forward(g, x, { mode: 'train' }).outputs[0]!;
}

/**
 * Files for the peer, all in `dir`: `<id>.safetensors`, the graph's state dict (every parameter and BN buffer under
 * its torchvision / timm name); `<id>.fixture.safetensors`, the tensors `extra` (input, labels, HVP vectors…);
 * `<id>.json`, the manifest: zoo spec, input shape, the memory format the interpreter lays the input out in on
 * `device`, and the trainable parameters (name, shape) in the order gradients, vectors and flat layouts use.
 */
export function writeModelFiles(
  dir: string,
  id: string,
  c: ModelChoice,
  g: Graph,
  x: Tensor,
  extra: ReadonlyMap<string, Tensor>,
  device: Device = 'cpu',
): void {
  const state = new Map([...g.params.values()].map((p) => [p.name, p.tensor] as const));
  writeFileSync(join(dir, `${id}.safetensors`), encodeSafetensors(state));
  writeFileSync(join(dir, `${id}.fixture.safetensors`), encodeSafetensors(extra));
  const manifest = {
    model: c.id,
    spec: specOf(c),
    size: c.size,
    input: x.shape,
    // `x` is still on the cpu here; the interpreter keeps NCHW on other devices (memory-format.ts).
    memory_format: device === 'cpu' && useChannelsLast(g, x) ? 'channels-last' : 'nchw',
    num_classes: numClasses(c, g),
    params: trainableParams(g).map((p) => ({ name: p.name, shape: p.tensor.shape })),
  };
  writeFileSync(join(dir, `${id}.json`), JSON.stringify(manifest));
}
