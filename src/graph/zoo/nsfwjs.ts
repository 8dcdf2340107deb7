/**
 * The pre-trained models npm `nsfwjs` ships, as zoo graphs: the backbone ends at the pooled features
 * (the default feature tap); the NSFW dense layers after it are the head (role 'head', not prunable).
 * Rebuilding at another resolution adapts the final average pool to the new last feature map.
 */
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import { TapirError } from '../../engine/index.js';
import type { Graph, Param } from '../ir.js';
import { importTfjs, readTfjsArtifacts, type TfjsArtifacts } from '../tfjs/index.js';

export type NsfwjsModel = 'mobilenet_v2' | 'mobilenet_v2_mid' | 'inception_v3';

/** Folder of an nsfwjs model inside node_modules. */
export function nsfwjsDir(model: NsfwjsModel): string {
  let pkg: string;
  try {
    // The package's `exports` hide package.json; its main entry lies under <pkg>/dist.
    const main = createRequire(import.meta.url).resolve('nsfwjs');
    const i = main.lastIndexOf(`${sep}nsfwjs${sep}`);
    pkg = join(main.slice(0, i + sep.length + 'nsfwjs'.length), 'package.json');
  } catch {
    throw new TapirError(
      'E_ASSET_MISSING',
      `the npm package 'nsfwjs' (pre-trained weights for '${model}') is not installed`,
      { fix: 'run `make setup` (npm ci installs nsfwjs 4.3.0)' },
    );
  }
  return join(dirname(pkg), 'dist', 'models', model);
}

/** Spatial size of the last feature map at input size `s`. */
export function finalMapSize(model: NsfwjsModel, s: number): number {
  if (model !== 'inception_v3') return Math.ceil(s / 32);
  // InceptionV3: stem convs and the two grid reductions are VALID 3×3 (stride 2 or 1).
  const valid = (n: number, stride: number) => Math.floor((n - 3) / stride) + 1;
  let n = valid(s, 2);
  n = valid(n, 1);
  n = valid(n, 2);
  n = valid(n, 1);
  n = valid(n, 2);
  n = valid(n, 2);
  return valid(n, 2);
}

export const MIN_SIZE: Record<NsfwjsModel, number> = { mobilenet_v2: 32, mobilenet_v2_mid: 32, inception_v3: 75 };

/**
 * Turns an imported nsfwjs graph into the zoo model at input size `size`: feature tap = pooled features,
 * dense layers after it = head, final pool sized to the last feature map.
 */
export function adaptNsfwjs(g: Graph, model: NsfwjsModel, size: number, id: string): Graph {
  if (!Number.isInteger(size) || size < MIN_SIZE[model])
    throw new TapirError('E_CONFIG', `${id}: input size ${size} is too small (minimum ${MIN_SIZE[model]})`, {
      fix: `use ${id}@${MIN_SIZE[model] * 3} or larger`,
    });
  const k = finalMapSize(model, size);
  let poolIdx = -1;
  g.nodes.forEach((n, i) => {
    if (n.op === 'avgpool') poolIdx = i;
  });
  const pool = g.nodes[poolIdx]!;
  g.nodes[poolIdx] = { ...pool, attrs: { ...pool.attrs, kernel: [k, k], stride: [k, k], padding: 0 } };
  // Layers models: AvgPool → Flatten → Dense…; graph model: AvgPool → Squeeze → MatMul.
  const tapIdx = g.nodes.findIndex((n, i) => i > poolIdx && (n.op === 'flatten' || n.op === 'squeeze'));
  g.featureTap = g.nodes[tapIdx]!.outputs[0]!;
  for (const n of g.nodes.slice(tapIdx + 1))
    for (const name of n.inputs) {
      const p = g.params.get(name);
      if (p && p.role !== 'head') g.params.set(name, { ...p, role: 'head', prunable: false } satisfies Param);
    }
  g.inputs = g.inputs.map((v) => ({ ...v, shape: [null, 3, null, null] }));
  g.preprocessing = { size: [size, size], range: [0, 1] };
  g.name = id;
  g.meta = {
    ...g.meta,
    zoo: id,
    source: `npm nsfwjs 4.3.0 dist/models/${model}`,
    head: 'NSFW dense layers (5 classes)',
    nativeSize: model === 'inception_v3' ? 299 : 224,
  };
  return g;
}

const cache = new Map<NsfwjsModel, Promise<TfjsArtifacts>>();
/** Reads the model files once per process (decoding is the slow part; graphs are built fresh each time). */
export function nsfwjsArtifacts(model: NsfwjsModel, o: { cache?: boolean } = {}): Promise<TfjsArtifacts> {
  if (!o.cache) return readTfjsArtifacts(nsfwjsDir(model));
  let p = cache.get(model);
  if (!p) cache.set(model, (p = readTfjsArtifacts(nsfwjsDir(model))));
  return p;
}

export async function loadNsfwjs(
  model: NsfwjsModel,
  size: number,
  id: string,
  o: { cache?: boolean } = {},
): Promise<Graph> {
  return adaptNsfwjs(importTfjs(await nsfwjsArtifacts(model, o)), model, size, id);
}
