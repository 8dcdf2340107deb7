/**
 * The one model IR (docs/GRAPH.md): nodes over named values, named parameters with a `prunable` flag,
 * masks, a default feature tap and the model's preprocessing. Importers return it, the zoo builds it,
 * exporters read it, the interpreter runs it. Nodes are plain data; op semantics live in one table
 * (`ops.ts`), keyed by `Node.op`.
 *
 * Conventions: activations are NCHW; conv weights [out, in/groups, kh, kw]; linear weights [out, in]
 * (torch layout). Importers convert other layouts once, at import.
 */
import type { Tensor } from '../engine/index.js';

export type AttrValue = number | string | boolean | readonly number[] | readonly string[];

export interface Node {
  /** Unique within the graph (importers keep the source layer/node name). */
  readonly name: string;
  /** A key of the op table in ops.ts. */
  readonly op: string;
  /**
   * Value names: a graph input, another node's output, a parameter name, or a constant name.
   * An empty string marks an omitted optional input.
   */
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attrs: Readonly<Record<string, AttrValue>>;
}

/** What a parameter is for; drives the default `prunable` rule. */
export type ParamRole = 'weight' | 'bias' | 'norm' | 'buffer' | 'embedding' | 'head';

export interface Param {
  readonly name: string;
  /** Owned by the graph; float32 unless converted (e.g. to float64 in tests). */
  tensor: Tensor;
  readonly role: ParamRole;
  /** Buffers (BN running statistics) are not trainable. */
  trainable: boolean;
  /** Default: conv / linear / attention-projection weights of the backbone; never biases, norms, buffers, the head. */
  prunable: boolean;
}

export interface ValueInfo {
  readonly name: string;
  /** null marks a free dimension (the batch; spatial dims of resolution-independent conv nets). */
  readonly shape: readonly (number | null)[];
}

/** How images must be prepared for this model (recorded by the zoo and importers). */
export interface Preprocessing {
  /** Input resolution [height, width]. */
  readonly size: readonly [number, number];
  /** Pixel value range fed to the model before mean/std, e.g. [0, 1] or [-1, 1]. */
  readonly range: readonly [number, number];
  readonly mean?: readonly number[];
  readonly std?: readonly number[];
}

export interface Graph {
  name: string;
  inputs: ValueInfo[];
  /** Value names of the model outputs (logits). */
  outputs: string[];
  /** Topologically ordered. */
  nodes: Node[];
  params: Map<string, Param>;
  /** Non-trainable tensors that are not parameters (folded shape arithmetic, fixed tables). */
  constants: Map<string, Tensor>;
  /** Parameter name → 0/1 mask of the same shape and dtype; the forward pass uses W ⊙ c. */
  masks: Map<string, Tensor>;
  /** Value name of the default feature tap: the backbone output that transfer heads read. */
  featureTap: string;
  preprocessing: Preprocessing;
  /** Provenance: source format, file, zoo id, notes. JSON-serialisable. */
  meta: Record<string, unknown>;
}

/**
 * Forward modes. `train`: BN uses batch statistics and updates its running statistics, dropout is active.
 * `eval`: inference; BN uses running statistics, dropout off, no autograd graph is recorded.
 * `eval-bn`: the numerics of `eval`, but the graph is recorded so weights receive gradients
 * (scoring and fine-tuning with frozen BN statistics).
 */
export type Mode = 'train' | 'eval' | 'eval-bn';
