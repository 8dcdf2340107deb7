/**
 * The model zoo: one list of config objects, looked up by id. A spec string is `[random:]<id>[@<size>]`:
 * `mobilenet_v2`, `mobilenet_v2@96` (conv nets rebuilt at a smaller input), `random:resnet18` (same
 * architecture, fresh torch-like init: the paper's control).
 */
import { manualSeed, TapirError } from '../../engine/index.js';
import type { Graph } from '../ir.js';
import { loadStateDict } from '../safetensors.js';
import { reinitialize } from './init.js';
import { loadNsfwjs } from './nsfwjs.js';
import { buildResNet } from './resnet.js';
import { buildVit } from './vit.js';

export interface ZooEntry {
  readonly id: string;
  readonly description: string;
  /** Where the weights come from. */
  readonly weights: 'pre-trained (npm nsfwjs)' | 'random init (or --weights <safetensors>)';
  readonly defaultSize: number;
  /** Conv nets accept any input size; ViTs are rebuilt for one. */
  readonly convnet: boolean;
  readonly inputRange: readonly [number, number];
  build(size: number, o: { cache?: boolean }): Promise<Graph>;
}

export interface LoadModelOptions {
  /** Input resolution (overrides `@size` in the spec). */
  size?: number;
  /** Seed of `random:` models and of built-ins without weights. */
  seed?: number;
  /** A safetensors state dict with timm/torchvision names, for the built-in architectures. */
  weights?: string;
  /** Keep decoded nsfwjs files in memory for later loads (tests, studies). */
  cache?: boolean;
}

export class ConfigError extends TapirError {
  constructor(message: string, opts: { context?: Record<string, unknown>; fix?: string } = {}) {
    super('E_CONFIG', message, opts);
  }
}

const nsfwjs = (
  id: string,
  model: 'mobilenet_v2' | 'mobilenet_v2_mid' | 'inception_v3',
  size: number,
  description: string,
): ZooEntry => ({
  id,
  description,
  weights: 'pre-trained (npm nsfwjs)',
  defaultSize: size,
  convnet: true,
  inputRange: [0, 1],
  build: (s, o) => loadNsfwjs(model, s, id, o),
});
const builtin = (
  id: string,
  size: number,
  convnet: boolean,
  description: string,
  make: (s: number) => Graph,
): ZooEntry => ({
  id,
  description,
  weights: 'random init (or --weights <safetensors>)',
  defaultSize: size,
  convnet,
  inputRange: [0, 1],
  build: async (s) => make(s),
});

/** Builds the registry, refusing duplicate ids. */
export function makeZoo(entries: readonly ZooEntry[]): ReadonlyMap<string, ZooEntry> {
  const m = new Map<string, ZooEntry>();
  for (const e of entries) {
    if (m.has(e.id))
      throw new ConfigError(`model zoo: duplicate id '${e.id}'`, {
        context: { id: e.id },
        fix: 'give every zoo entry a unique id',
      });
    m.set(e.id, e);
  }
  return m;
}

export const ZOO = makeZoo([
  nsfwjs(
    'mobilenet_v2',
    'mobilenet_v2',
    224,
    'MobileNetV2 α 1.0 (nsfwjs, TF.js layers, uint8 weights; blocks 0-10 ImageNet, later blocks NSFW-fine-tuned)',
  ),
  nsfwjs('mobilenet_v2_140', 'mobilenet_v2_mid', 224, 'MobileNetV2 α 1.4 (nsfwjs mid, TF.js graph model, BN folded)'),
  nsfwjs('inception_v3', 'inception_v3', 299, 'InceptionV3 (nsfwjs, TF.js layers, uint8 weights)'),
  builtin('resnet18', 224, true, 'ResNet-18 (torchvision names)', (s) => buildResNet({ depth: 18, size: s })),
  builtin('resnet50', 224, true, 'ResNet-50 (torchvision names)', (s) => buildResNet({ depth: 50, size: s })),
  builtin('vit_tiny', 224, false, 'ViT-Tiny/16 (timm names)', (s) => buildVit({ variant: 'vit_tiny', size: s })),
  builtin('vit_small', 224, false, 'ViT-Small/16 (timm names)', (s) => buildVit({ variant: 'vit_small', size: s })),
  builtin('vit_base', 224, false, 'ViT-Base/16 (timm names)', (s) => buildVit({ variant: 'vit_base', size: s })),
]);

export const DEFAULT_MODEL = 'mobilenet_v2';

export interface ModelSpec {
  id: string;
  random: boolean;
  size?: number;
}

export function parseModelSpec(spec: string): ModelSpec {
  const m = /^(random:)?([A-Za-z0-9_]+)(?:@(\d+))?$/.exec(spec.trim());
  if (!m || !ZOO.has(m[2]!))
    throw new ConfigError(`unknown model '${spec}'. Zoo models: ${[...ZOO.keys()].join(', ')}`, {
      context: { model: spec },
      fix: 'use `[random:]<id>[@<size>]`, e.g. mobilenet_v2@96 or random:resnet18; list ids with `tapir models`',
    });
  return { id: m[2]!, random: !!m[1], ...(m[3] ? { size: Number(m[3]) } : {}) };
}

/** Builds a zoo model from a spec string. */
export async function loadModel(spec: string, o: LoadModelOptions = {}): Promise<Graph> {
  const s = parseModelSpec(spec);
  const e = ZOO.get(s.id)!;
  const size = o.size ?? s.size ?? e.defaultSize;
  if (!Number.isInteger(size) || size < 16 || size > 1024)
    throw new ConfigError(`${spec}: input size ${size} must be an integer in [16, 1024]`, { context: { model: spec } });
  if (o.weights && e.weights.startsWith('pre-trained'))
    throw new ConfigError(`${s.id} has its own pre-trained weights; --weights is for the built-in architectures`, {
      context: { model: spec },
    });
  manualSeed(o.seed ?? 0);
  const g = await e.build(size, { cache: o.cache ?? false });
  g.meta = { ...g.meta, zoo: s.id, spec };
  if (o.weights && !s.random) {
    const r = await loadStateDict(g, o.weights);
    g.meta = { ...g.meta, weightsFile: o.weights, loadedTensors: r.loaded.length, missingTensors: r.missing.length };
  }
  if (s.random) reinitialize(g, o.seed ?? 0);
  return g;
}
