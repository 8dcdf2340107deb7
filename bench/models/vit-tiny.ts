/**
 * ViT-Tiny/16 (Dosovitskiy et al. 2021; DeiT-Ti sizes): 224-px input, 16-px patches embedded by a
 * stride-16 conv, a class token and learned position embeddings, 12 pre-norm blocks (LayerNorm eps 1e-6,
 * 3-head self-attention, MLP 192 → 768 → 192 with exact GELU), final LayerNorm, head on the class token
 * 192 → 1000. Attention is written with matmul and softmax (no fused kernel) on both sides of the bench.
 * Parameter names follow timm, so bench/peers/engine.py can mirror the model line by line.
 */
import { cat, nn, type Tensor } from '../../src/engine/index.js';
import { consume, constant, normal, param, type ParamSpec, type Params } from './params.js';
import type { BenchModel } from './model.js';

const IMG = 224;
const PATCH = 16;
const DIM = 192;
const DEPTH = 12;
const HEADS = 3;
const MLP = 768;
const NUM_CLASSES = 1000;
const EPS = 1e-6;
const TOKENS = (IMG / PATCH) ** 2 + 1;

function specs(): ParamSpec[] {
  const s: ParamSpec[] = [];
  const lin = (name: string, out: number, inp: number): void => {
    s.push(
      { name: `${name}.weight`, shape: [out, inp], init: normal(0.02) },
      { name: `${name}.bias`, shape: [out], init: constant(0) },
    );
  };
  const ln = (name: string): void => {
    s.push(
      { name: `${name}.weight`, shape: [DIM], init: constant(1) },
      { name: `${name}.bias`, shape: [DIM], init: constant(0) },
    );
  };
  s.push(
    { name: 'patch_embed.proj.weight', shape: [DIM, 3, PATCH, PATCH], init: normal(0.02) },
    { name: 'patch_embed.proj.bias', shape: [DIM], init: constant(0) },
    { name: 'cls_token', shape: [1, 1, DIM], init: normal(0.02) },
    { name: 'pos_embed', shape: [1, TOKENS, DIM], init: normal(0.02) },
  );
  for (let i = 0; i < DEPTH; i++) {
    const pre = `blocks.${i}`;
    ln(`${pre}.norm1`);
    lin(`${pre}.attn.qkv`, 3 * DIM, DIM);
    lin(`${pre}.attn.proj`, DIM, DIM);
    ln(`${pre}.norm2`);
    lin(`${pre}.mlp.fc1`, MLP, DIM);
    lin(`${pre}.mlp.fc2`, DIM, MLP);
  }
  ln('norm');
  lin('head', NUM_CLASSES, DIM);
  return s;
}

export function vitTiny(): BenchModel {
  const forward = (p: Params, x: Tensor): Tensor => {
    const w = (name: string): Tensor => param(p, name, 'vit_tiny');
    const n = x.shape[0]!;
    const norm = (t: Tensor, name: string): Tensor =>
      nn.layerNorm(t, [DIM], w(`${name}.weight`), w(`${name}.bias`), EPS);
    const linear = (t: Tensor, name: string): Tensor => nn.linear(t, w(`${name}.weight`), w(`${name}.bias`));

    const attention = (h: Tensor, pre: string): Tensor => {
      let qkv = linear(h, `${pre}.qkv`);
      qkv = consume(qkv, (t) => t.reshape([n, TOKENS, 3, HEADS, DIM / HEADS]));
      qkv = consume(qkv, (t) => t.permute([2, 0, 3, 1, 4]));
      const [q, k, v] = [0, 1, 2].map((i) => qkv.index(0, i)) as [Tensor, Tensor, Tensor];
      qkv.dispose();
      let a = consume(k, (t) => t.transpose(-2, -1));
      a = consume(a, (kt) => q.matmul(kt));
      q.dispose();
      a = consume(a, (t) => t.mul(1 / Math.sqrt(DIM / HEADS)));
      a = consume(a, (t) => nn.softmax(t, -1));
      let o = consume(a, (t) => t.matmul(v));
      v.dispose();
      o = consume(o, (t) => t.transpose(1, 2));
      o = consume(o, (t) => t.reshape([n, TOKENS, DIM]));
      return consume(o, (t) => linear(t, `${pre}.proj`));
    };
    const residual = (h: Tensor, f: (t: Tensor) => Tensor): Tensor => {
      const r = f(h);
      const out = h.add(r);
      r.dispose();
      h.dispose();
      return out;
    };

    let h = nn.conv2d(x, w('patch_embed.proj.weight'), w('patch_embed.proj.bias'), { stride: PATCH });
    h = consume(h, (t) => t.flatten(2));
    h = consume(h, (t) => t.transpose(1, 2));
    const cls = w('cls_token').expand([n, 1, DIM]);
    h = consume(h, (t) => cat([cls, t], 1));
    cls.dispose();
    h = consume(h, (t) => t.add(w('pos_embed')));
    for (let i = 0; i < DEPTH; i++) {
      const pre = `blocks.${i}`;
      h = residual(h, (t) => consume(norm(t, `${pre}.norm1`), (u) => attention(u, `${pre}.attn`)));
      h = residual(h, (t) => {
        let m = norm(t, `${pre}.norm2`);
        m = consume(m, (u) => linear(u, `${pre}.mlp.fc1`));
        m = consume(m, (u) => nn.gelu(u));
        return consume(m, (u) => linear(u, `${pre}.mlp.fc2`));
      });
    }
    h = consume(h, (t) => norm(t, 'norm'));
    h = consume(h, (t) => t.index(1, 0));
    return consume(h, (t) => linear(t, 'head'));
  };

  return {
    name: 'vit_tiny',
    inputShape: [3, IMG, IMG],
    numClasses: NUM_CLASSES,
    specs: specs(),
    forward,
    dispose: () => {},
  };
}
