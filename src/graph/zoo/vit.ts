/** timm VisionTransformer (patch 16, class token, pre-norm blocks) as an IR graph, with timm's parameter names. */
import { full, tensor, zeros } from '../../engine/index.js';
import { GraphBuilder } from '../builder.js';
import { ShapeError } from '../../engine/index.js';
import type { Graph } from '../ir.js';
import { truncNormal, uniformFanIn } from './init.js';

export const VIT_CONFIGS = {
  vit_tiny: { dim: 192, heads: 3, depth: 12 },
  vit_small: { dim: 384, heads: 6, depth: 12 },
  vit_base: { dim: 768, heads: 12, depth: 12 },
} as const;

export interface VitOptions {
  variant: keyof typeof VIT_CONFIGS;
  size: number;
  patch?: number;
  numClasses?: number;
  /** Fewer blocks than the variant (tests). */
  depth?: number;
}

export function buildVit(o: VitOptions): Graph {
  const { dim, heads } = VIT_CONFIGS[o.variant];
  const depth = o.depth ?? VIT_CONFIGS[o.variant].depth;
  const patch = o.patch ?? 16;
  if (o.size % patch !== 0)
    throw new ShapeError(`${o.variant}: input size ${o.size} must be a multiple of the patch size ${patch}`, {
      fix: `use a size like ${Math.max(patch, Math.round(o.size / patch) * patch)}`,
    });
  const tokens = (o.size / patch) ** 2 + 1;
  const b = new GraphBuilder();
  const lin = (x: string, name: string, cin: number, cout: number, role: 'weight' | 'head' = 'weight') =>
    b.op(
      'linear',
      [x, b.param(`${name}.weight`, truncNormal([cout, cin]), role), b.param(`${name}.bias`, zeros([cout]), 'bias')],
      {},
      name,
    );
  const ln = (x: string, name: string) =>
    b.op(
      'layernorm',
      [x, b.param(`${name}.weight`, full([dim], 1), 'norm'), b.param(`${name}.bias`, zeros([dim]), 'norm')],
      { axis: -1, eps: 1e-6 },
      name,
    );

  const pw = b.param('patch_embed.proj.weight', uniformFanIn([dim, 3, patch, patch]), 'weight');
  let x = b.op(
    'conv2d',
    ['input', pw, b.param('patch_embed.proj.bias', zeros([dim]), 'bias')],
    { stride: patch },
    'patch_embed.proj',
  );
  x = b.op('reshape', [x], { shape: [0, dim, -1] }, 'patch_embed.flatten');
  x = b.op('transpose', [x], { perm: [0, 2, 1] }, 'patch_embed.transpose');
  x = b.op('prependtoken', [x, b.param('cls_token', truncNormal([1, 1, dim], 1e-6), 'embedding')], {}, 'cls');
  x = b.op('add', [x, b.param('pos_embed', truncNormal([1, tokens, dim]), 'embedding')], {}, 'pos');
  const scale = b.constant('attn_scale', tensor((dim / heads) ** -0.5, []));
  for (let i = 0; i < depth; i++) {
    const p = `blocks.${i}`;
    let h = lin(ln(x, `${p}.norm1`), `${p}.attn.qkv`, dim, 3 * dim);
    h = b.op('reshape', [h], { shape: [0, 0, 3, heads, dim / heads] }, `${p}.attn.split_heads`);
    h = b.op('transpose', [h], { perm: [2, 0, 3, 1, 4] }, `${p}.attn.qkv_first`);
    const [q, k, v] = [0, 1, 2].map((j) => b.op('select', [h], { axis: 0, index: j }, `${p}.attn.${'qkv'[j]}`));
    const kt = b.op('transpose', [k!], { perm: [0, 1, 3, 2] }, `${p}.attn.kt`);
    const s = b.op('mul', [b.op('matmul', [q!, kt], {}, `${p}.attn.scores`), scale], {}, `${p}.attn.scaled`);
    const a = b.op('softmax', [s], { axis: -1 }, `${p}.attn.softmax`);
    let o2 = b.op('matmul', [a, v!], {}, `${p}.attn.context`);
    o2 = b.op(
      'reshape',
      [b.op('transpose', [o2], { perm: [0, 2, 1, 3] }, `${p}.attn.merge`)],
      { shape: [0, 0, -1] },
      `${p}.attn.merge_heads`,
    );
    x = b.op('add', [x, lin(o2, `${p}.attn.proj`, dim, dim)], {}, `${p}.residual1`);
    const m = lin(
      b.op('gelu', [lin(ln(x, `${p}.norm2`), `${p}.mlp.fc1`, dim, 4 * dim)], {}, `${p}.mlp.act`),
      `${p}.mlp.fc2`,
      4 * dim,
      dim,
    );
    x = b.op('add', [x, m], {}, `${p}.residual2`);
  }
  const feats = b.op('select', [ln(x, 'norm')], { axis: 1, index: 0 }, 'pool');
  const logits = lin(feats, 'head', dim, o.numClasses ?? 1000, 'head');
  return b.build({
    name: o.variant,
    inputs: [{ name: 'input', shape: [null, 3, o.size, o.size] }],
    outputs: [logits],
    featureTap: feats,
    preprocessing: { size: [o.size, o.size], range: [0, 1], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
    meta: { format: 'builtin', architecture: o.variant, patch, depth, init: 'timm' },
  });
}
