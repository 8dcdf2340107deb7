/**
 * Layer rules of the reconstruction pruners: for each IR op that multiplies a prunable weight, how its weight
 * splits into rows and groups, and how a batch of its inputs becomes the columns X those rows multiply, so that the
 * layer's output is `W_g X_g` per group g. One row per op type (conv2d, linear); a prunable weight read by another op,
 * or by two nodes, raises `UnsupportedOpError` naming the pruner.
 *
 * Layout: a weight [out, ...] is viewed as [G, out/G, d] (G groups, d = inputs per output: conv in/G·kh·kw in the
 * order of the flattened weight, linear in). Columns are [N, G, d, L]: per image, group and input, the L output
 * positions (or tokens) it is read at; H_g = Σ_n X_ng X_ngᵀ.
 */
import { nn, scope, type Tensor } from '../../engine/index.js';
import { convGeometry, UnsupportedOpError, type Graph, type Node } from '../../graph/index.js';
import { PruneError } from '../errors.js';

export interface LayerRule {
  groups(node: Node, w: readonly number[]): number;
  /** Columns of one batch of inputs `x`: [N, G, d, L]. */
  columns(x: Tensor, node: Node, w: readonly number[]): Tensor;
}

const conv2d: LayerRule = {
  groups: (node) => (typeof node.attrs.groups === 'number' ? node.attrs.groups : 1),
  columns(x, node, w) {
    return scope(() => {
      const { stride, dilation, groups, pads: p } = convGeometry(x, node.attrs, w);
      const xp = p.some((v) => v !== 0) ? nn.pad(x, [p[1], p[3], p[0], p[2]]) : x;
      const cols = nn.unfold(xp, [w[2]!, w[3]!], { stride, dilation });
      const [n, , l] = cols.shape as [number, number, number];
      return cols.reshape([n, groups, cols.shape[1]! / groups, l]);
    });
  },
};

const linear: LayerRule = {
  groups: () => 1,
  columns: (x, _node, w) => scope(() => x.reshape([x.shape[0]!, -1, w[1]!]).transpose(1, 2).unsqueeze(1)),
};

export const LAYER_RULES: Readonly<Record<string, LayerRule>> = { conv2d, linear };

export interface Layer {
  /** The weight's parameter name. */
  param: string;
  node: Node;
  /** Position of the node in `g.nodes`. */
  index: number;
  rule: LayerRule;
  groups: number;
  /** Weight shape. */
  shape: readonly number[];
}

/** The layers of `params` in graph order, each with its rule; a weight no rule covers throws (or is left out with `skipUnsupported`). */
export function layersOf(
  g: Graph,
  params: readonly string[],
  pruner: string,
  o: { skipUnsupported?: boolean } = {},
): Layer[] {
  const readers = new Map<string, number[]>();
  g.nodes.forEach((n, i) =>
    n.inputs.forEach((v) => {
      if (params.includes(v)) readers.set(v, [...(readers.get(v) ?? []), i]);
    }),
  );
  const layers: Layer[] = [];
  for (const p of params) {
    const at = readers.get(p) ?? [];
    const node = at.length === 1 ? g.nodes[at[0]!]! : null;
    const rule = node ? LAYER_RULES[node.op] : undefined;
    if (!node || !rule || node.inputs[1] !== p) {
      if (o.skipUnsupported) continue;
      if (!node)
        throw new PruneError(`${pruner}: '${p}' is read by ${at.length} nodes; a layer-wise pass needs exactly one`, {
          context: { param: p },
          fix: 'use a score that is not layer-wise (e.g. magnitude) for shared weights',
        });
      throw new UnsupportedOpError(node.op, node.name, Object.keys(LAYER_RULES), pruner);
    }
    const shape = g.params.get(p)!.tensor.shape;
    layers.push({ param: p, node, index: at[0]!, rule, groups: rule.groups(node, shape), shape });
  }
  return layers.sort((a, b) => a.index - b.index);
}

/** [out, ...] → [G, out/G, d]. */
export function toRows(w: Tensor, groups: number): Tensor {
  return w.reshape([groups, w.shape[0]! / groups, -1]);
}
