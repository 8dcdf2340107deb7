/**
 * The part of a graph that computes some of its values, and a content hash of that part's state.
 *
 * An inference runtime compiles a graph once per state, so it needs a key that changes whenever anything it
 * compiled changes: the nodes and their attributes, and the values of every parameter, mask and constant the
 * requested values depend on (BN repair adjusts γ/β in place, and importers may hold them as constants). Hashing
 * MobileNetV2's 3.5 M parameters costs a few tens of ms, a small fraction of one feature pass over a task split.
 */
import { createHash } from 'node:crypto';
import { noGrad, scope, type Tensor } from '../engine/index.js';
import type { Graph } from './ir.js';
import { neededNodes } from './interpreter.js';

/**
 * A view of `g` that computes only `outputs`: the nodes they depend on and the parameters, masks and constants those
 * nodes read (tensors shared with `g`, not copied). Its outputs are `outputs`, e.g. a feature tap.
 */
export function subgraph(g: Graph, outputs: readonly string[]): Graph {
  const nodes = neededNodes(g, outputs).map((i) => g.nodes[i]!);
  const read = new Set(nodes.flatMap((n) => n.inputs));
  const pick = <T>(m: Map<string, T>) => new Map([...m].filter(([name]) => read.has(name)));
  return {
    ...g,
    outputs: [...outputs],
    nodes,
    params: pick(g.params),
    masks: pick(g.masks),
    constants: pick(g.constants),
  };
}

/**
 * SHA-256 (hex, 16 chars) of everything that decides the values `outputs` of `g` in eval mode: the nodes they need
 * (ops, attributes, wiring), the graph inputs, and the contents of the parameters, masks and constants those nodes
 * read. Two graphs with the same fingerprint compute the same function.
 */
export function stateFingerprint(g: Graph, outputs: readonly string[]): string {
  const sub = subgraph(g, outputs);
  const h = createHash('sha256');
  h.update(JSON.stringify({ inputs: sub.inputs, outputs: sub.outputs, nodes: sub.nodes }));
  const feed = (kind: string, name: string, t: Tensor) => {
    h.update(`\0${kind}\0${name}\0${t.dtype}\0${t.device}\0${t.shape.join(',')}\0`);
    const a = noGrad(() => scope(() => t.detach().contiguous().data() as ArrayBufferView));
    h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  };
  for (const name of [...sub.params.keys()].sort()) feed('p', name, sub.params.get(name)!.tensor);
  for (const name of [...sub.masks.keys()].sort()) feed('m', name, sub.masks.get(name)!);
  for (const name of [...sub.constants.keys()].sort()) feed('c', name, sub.constants.get(name)!);
  return h.digest('hex').slice(0, 16);
}
