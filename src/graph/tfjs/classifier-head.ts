/**
 * The classifier head of an imported model: the single path of dense layers (with their activations and dropout)
 * that ends at the model output. Its input is the default feature tap — the pooled backbone output, as the zoo
 * sets for the nsfwjs models — and its kernels are role 'head' (not prunable). Found on the IR, so a head kept in
 * a nested model (Teachable Machine: `Sequential[Dense 1280→100, Dense 100→5]`) is found like a flat one.
 */
import type { Node } from '../ir.js';

/** What may sit in a head besides `linear`: element-wise activations, dropout, and the identity a dropped softmax leaves. */
const HEAD_OPS: ReadonlySet<string> = new Set([
  'linear',
  'dropout',
  'identity',
  'relu',
  'relu6',
  'clip',
  'sigmoid',
  'tanh',
  'silu',
  'gelu',
  'softmax',
]);

export interface ClassifierHead {
  /** Value the head reads: the default feature tap. */
  tap: string;
  /** The head's linear nodes, input side first. */
  linears: Node[];
}

/** The head ending at `output`, or null when the output is not reached through dense layers alone. */
export function findClassifierHead(nodes: readonly Node[], output: string): ClassifierHead | null {
  const producer = new Map<string, Node>();
  const uses = new Map<string, number>();
  for (const n of nodes) {
    for (const o of n.outputs) producer.set(o, n);
    for (const i of n.inputs) uses.set(i, (uses.get(i) ?? 0) + 1);
  }
  const chain: Node[] = [];
  for (let v = output; ;) {
    const n = producer.get(v);
    if (!n || !HEAD_OPS.has(n.op)) break;
    chain.unshift(n);
    v = n.inputs[0]!;
    // A value read by anything else too is a branch point: the head is one path, the backbone ends there.
    if ((uses.get(v) ?? 0) !== 1) break;
  }
  // Activations before the first dense layer are the backbone's last stage, not the head.
  while (chain.length > 0 && chain[0]!.op !== 'linear' && chain[0]!.op !== 'dropout') chain.shift();
  const linears = chain.filter((n) => n.op === 'linear');
  return linears.length === 0 ? null : { tap: chain[0]!.inputs[0]!, linears };
}
