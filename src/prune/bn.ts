/**
 * BatchNorm repair after masking (docs/PRUNE.md), one entry point `repairBatchNorm(g, dense, batches, mode)`:
 *
 * - `none`: nothing changes.
 * - `reestimate`: every BN's running statistics are recomputed on the calibration images (torch
 *   `swa_utils.update_bn`): a train-mode forward with the cumulative-average momentum bₖ / Σᵢ≤ₖ bᵢ for batch k, so
 *   after the last batch the running mean is the image-weighted mean of the per-batch means (and the running
 *   variance that of the per-batch unbiased variances). Dropout is switched off. No weight changes.
 * - `match-dense`: per BN and channel, the pruned model's BN *output* y gets the mean m_d and variance v_d of the
 *   dense model's BN output over (N, H, W) of all calibration images (eval mode, running statistics):
 *   y' = (y − m_p)·s + m_d, s = √(v_d / v_p), folded into the BN's affine parameters
 *   (γ' = s·γ, β' = s·(β − m_p) + m_d; running statistics untouched). Each BN is measured after every BN upstream
 *   of it was repaired (sequential exactness): in one walk over all images stopping before each BN (`BnMeasure`),
 *   or, when those activations do not fit, in topological "levels" (a BN's level is one more than the highest level
 *   among the BNs upstream of it), one pruned-model pass per level. The dense model is only read: its BN-output
 *   statistics come from one pass per batch, and the zero-shot head fitted on its features stays valid. Channels with v_p ≤ 1e-12·v_d (or v_p = 0),
 *   i.e. a (nearly) constant pruned output, keep s = 1 and are only shifted; they are counted as `degenerate`.
 *   The repair changes γ/β values in place and never the graph: a BN without γ or β, or one whose γ/β another node
 *   reads, is refused (importers give every BN its own γ and β; folding the scale into the running variance instead,
 *   (rv + eps)/s² − eps, turns negative for large s). γ/β held as constants are adjusted in place like parameters.
 */
import { keep, noGrad, scope, tensor, type Tensor } from '../engine/index.js';
import { forward, type Graph, type Node } from '../graph/index.js';
import { checkCalibration, countImages } from './calib.js';
import { PruneError } from './errors.js';
import type { CalibBatch } from './loss.js';
import { Frontier, memoryFor, walkMemory } from './reconstruct/sweep.js';

export type BnRepair = 'none' | 'reestimate' | 'match-dense';
export const BN_REPAIRS: readonly BnRepair[] = ['none', 'reestimate', 'match-dense'];

export interface BnRepairResult {
  mode: BnRepair;
  /** BatchNorm nodes changed (0 for `none`). */
  layers: number;
  /** Calibration images used (0 for `none`). */
  images: number;
  /** match-dense: channels whose pruned output variance was ~0 (shifted only). */
  degenerate: number;
}

/** Pruned channels with variance at most this fraction of the dense one are shifted, not scaled. */
const DEGENERATE_REL = 1e-12;

/** Returns the number of BatchNorm nodes updated. */
export function reestimateBatchNorm(g: Graph, batches: readonly CalibBatch[]): number {
  const bns = g.nodes.filter((n) => n.op === 'batchnorm');
  if (bns.length === 0) return 0;
  checkCalibration(batches);
  let seen = 0;
  for (const b of batches) {
    const n = b.x.shape[0]!;
    seen += n;
    const momentum = n / seen;
    const shadow: Graph = {
      ...g,
      nodes: g.nodes.map((node) =>
        node.op === 'batchnorm'
          ? { ...node, attrs: { ...node.attrs, momentum } }
          : node.op === 'dropout'
            ? { ...node, attrs: { ...node.attrs, p: 0 } }
            : node,
      ),
    };
    scope(() => {
      noGrad(() => forward(shadow, b.x, { mode: 'train' }));
    });
  }
  return bns.length;
}

/**
 * Repairs the BatchNorms of the masked model `g` after masking. `dense` is the unpruned model with the same nodes
 * and parameter names, holding its own tensors (read only by `match-dense`; see `denseCopy`).
 */
export function repairBatchNorm(
  g: Graph,
  dense: Graph,
  batches: readonly CalibBatch[],
  mode: BnRepair,
  /** match-dense: how the pruned model's BN outputs are measured (the same repair either way; tests pin it). */
  how: BnMeasure = 'auto',
): BnRepairResult {
  if (!BN_REPAIRS.includes(mode))
    throw new PruneError(`unknown BN repair '${String(mode)}'`, {
      context: { bn: mode },
      fix: `use one of: ${BN_REPAIRS.join(', ')} (--bn)`,
    });
  if (mode === 'none') return { mode, layers: 0, images: 0, degenerate: 0 };
  if (mode === 'reestimate') {
    const layers = reestimateBatchNorm(g, batches);
    return { mode, layers, images: layers > 0 ? countImages(batches) : 0, degenerate: 0 };
  }
  return { mode, ...matchDenseBatchNorm(g, dense, batches, how) };
}

/**
 * An independent copy of `g` without masks (cloned parameters and constants, same nodes) to serve as the dense
 * reference of `match-dense`; take it before pruning, free it with `disposeGraph`.
 */
export function denseCopy(g: Graph): Graph {
  return noGrad(() => ({
    ...g,
    inputs: [...g.inputs],
    outputs: [...g.outputs],
    nodes: [...g.nodes],
    meta: { ...g.meta },
    params: new Map([...g.params].map(([n, p]) => [n, { ...p, tensor: keep(p.tensor.clone()) }])),
    constants: new Map([...g.constants].map(([n, t]) => [n, keep(t.clone())])),
    masks: new Map(),
  }));
}

/** Per-channel mean and sum of squared deviations over every axis but 1, merged over batches in float64 (Chan et al.). */
class ChannelStats {
  n = 0;
  mean: Float64Array = new Float64Array(0);
  m2: Float64Array = new Float64Array(0);

  add(t: Tensor, what: string): void {
    if (t.ndim < 2) throw new PruneError(`${what}: BatchNorm output must be [N, C, ...], got [${t.shape.join(', ')}]`);
    const c = t.shape[1]!;
    const count = t.numel / c;
    const dims = [0, ...Array.from({ length: t.ndim - 2 }, (_, i) => i + 2)];
    const [mb, m2b] = scope(() => {
      const x = t.to('float64');
      const m = x.mean(dims);
      const dev = x
        .sub(m.view([1, c, ...new Array<number>(t.ndim - 2).fill(1)]))
        .square()
        .sum(dims);
      return [m.toArray(), dev.toArray()];
    });
    if (this.n === 0) {
      this.mean = Float64Array.from(mb);
      this.m2 = Float64Array.from(m2b);
      this.n = count;
      return;
    }
    if (c !== this.mean.length)
      throw new PruneError(`${what}: ${c} channels in one batch, ${this.mean.length} in another`);
    const n = this.n + count;
    for (let k = 0; k < c; k++) {
      const d = mb[k]! - this.mean[k]!;
      this.mean[k] = this.mean[k]! + (d * count) / n;
      this.m2[k] = this.m2[k]! + m2b[k]! + (d * d * this.n * count) / n;
    }
    this.n = n;
  }
  variance(): Float64Array {
    return this.m2.map((v) => v / this.n);
  }
}

/** Statistics of the given BN nodes' outputs over all batches, one eval pass per batch. */
function measure(g: Graph, bns: readonly Node[], batches: readonly CalibBatch[]): ChannelStats[] {
  const stats = bns.map(() => new ChannelStats());
  const taps = bns.map((n) => n.outputs[0]!);
  for (const b of batches) {
    scope(() => {
      const r = forward(g, b.x, { mode: 'eval', taps, outputs: [] });
      bns.forEach((n, i) => stats[i]!.add(r.taps.get(taps[i]!)!, `batchnorm '${n.name}' of '${g.name}'`));
    });
  }
  return stats;
}

/** Level of every BN node: 1 + the highest level of the BNs it depends on. */
function bnLevels(g: Graph): Map<string, number> {
  const valueLevel = new Map<string, number>();
  const levels = new Map<string, number>();
  for (const node of g.nodes) {
    const inLevel = Math.max(0, ...node.inputs.map((v) => valueLevel.get(v) ?? 0));
    const level = node.op === 'batchnorm' ? inLevel + 1 : inLevel;
    if (node.op === 'batchnorm') levels.set(node.name, level);
    for (const o of node.outputs) valueLevel.set(o, level);
  }
  return levels;
}

function tensorOf(g: Graph, name: string): Tensor | undefined {
  return g.params.get(name)?.tensor ?? g.constants.get(name);
}

/** Checks `dense` can serve as the reference for `g`: same BN nodes, and γ/β that will be adjusted in place are not its tensors. */
function checkPair(g: Graph, dense: Graph, bns: readonly Node[]): void {
  const denseNodes = new Map(dense.nodes.map((n) => [n.name, n]));
  for (const n of bns) {
    const d = denseNodes.get(n.name);
    if (!d || d.op !== 'batchnorm' || d.outputs[0] !== n.outputs[0])
      throw new PruneError(
        `BN repair match-dense: the dense model '${dense.name}' has no batchnorm node '${n.name}' with output '${n.outputs[0]}'`,
        {
          context: { node: n.name },
          fix: 'pass the unpruned copy of the same model as the dense reference (denseCopy before pruning, or a second load)',
        },
      );
    for (const v of n.inputs.slice(1, 3)) {
      const t = v === '' ? undefined : tensorOf(g, v);
      if (t && t === tensorOf(dense, v))
        throw new PruneError(
          `BN repair match-dense: '${v}' of batchnorm '${n.name}' is the same tensor in the pruned and the dense model`,
          {
            context: { node: n.name, value: v },
            fix: 'the dense reference must hold its own tensors: take denseCopy(g) before pruning',
          },
        );
    }
    const beta = n.inputs[2] ?? '';
    if (beta !== '' && g.masks.has(beta))
      throw new PruneError(`BN repair match-dense: the shift '${beta}' of batchnorm '${n.name}' is masked`, {
        context: { node: n.name, value: beta },
        fix: 'BN shifts are never prunable; clear that mask',
      });
  }
}

/**
 * The tensor of a BN's γ (slot 1) or β (slot 2), changed in place by the repair. The repair never edits the graph:
 * a BN without γ/β, or whose γ/β another node reads too, cannot be repaired alone and is refused (the importers give
 * every BatchNorm its own γ and β, ones and zeros where the source model had none).
 */
function affineOf(g: Graph, node: Node, slot: 1 | 2): Tensor {
  const what = slot === 1 ? 'γ (weight)' : 'β (bias)';
  const v = node.inputs[slot] ?? '';
  const t = v === '' ? undefined : tensorOf(g, v);
  if (!t)
    throw new PruneError(`BN repair match-dense: batchnorm '${node.name}' has no ${what} to rescale through`, {
      context: { node: node.name },
      fix: "give each BatchNorm its own weight and bias (ones and zeros where it had none), as tapir's importers do",
    });
  const readers = g.nodes.filter((n) => n.inputs.includes(v)).length;
  if (readers > 1)
    throw new PruneError(
      `BN repair match-dense: the ${what} '${v}' of batchnorm '${node.name}' is read by ${readers} nodes; repairing it would change the others`,
      {
        context: { node: node.name, value: v },
        fix: 'give each BatchNorm its own weight and bias',
      },
    );
  return t;
}

/**
 * Folds y' = (y − m_p)·s + m_d into the γ/β of BN `bn` of `g` (p: its pruned output's statistics, d: the dense one's);
 * returns the channels shifted only (degenerate).
 */
function fold(g: Graph, bn: Node, p: ChannelStats, d: ChannelStats): number {
  const c = p.mean.length;
  if (d.mean.length !== c)
    throw new PruneError(
      `BN repair match-dense: batchnorm '${bn.name}' has ${c} channels in the pruned model, ${d.mean.length} in the dense one`,
      { context: { node: bn.name } },
    );
  const vp = p.variance();
  const vd = d.variance();
  const s = new Float64Array(c);
  let degenerate = 0;
  for (let k = 0; k < c; k++) {
    const flat = vp[k]! === 0 || vp[k]! <= DEGENERATE_REL * vd[k]!;
    if (flat) degenerate++;
    s[k] = flat ? 1 : Math.sqrt(vd[k]! / vp[k]!);
  }
  const gamma = affineOf(g, bn, 1);
  const beta = affineOf(g, bn, 2);
  // γ' = s·γ, β' = s·(β − m_p) + m_d, computed in float64.
  scope(() =>
    noGrad(() => {
      const dev = gamma.device;
      const sT = tensor(s, [c]).to('float64', dev);
      gamma.copy_(gamma.to('float64').mul(sT));
      beta.copy_(
        beta
          .to('float64')
          .sub(tensor(p.mean, [c]).to('float64', dev))
          .mul(sT)
          .add(tensor(d.mean, [c]).to('float64', dev)),
      );
    }),
  );
  return degenerate;
}

/**
 * How the pruned model's BN outputs are measured. `walk`: one pass in all, the layer walk's frontier (reconstruct/
 * sweep.ts) stopping before each BN in graph order, measuring its output and folding the repair before going on; it
 * holds every calibration image's live activations at once. `levels`: one pass from the images per BN level, holding
 * one batch at a time (about half the network's depth in passes: ~26 on MobileNetV2). Both measure each BN after every
 * BN upstream of it was repaired, on the same values: the same repair. `auto` walks when the activations fit in the
 * memory available now.
 */
export type BnMeasure = 'auto' | 'walk' | 'levels';

function matchDenseBatchNorm(
  g: Graph,
  dense: Graph,
  batches: readonly CalibBatch[],
  how: BnMeasure,
): Omit<BnRepairResult, 'mode'> {
  const bns = g.nodes.filter((n) => n.op === 'batchnorm');
  if (bns.length === 0) return { layers: 0, images: 0, degenerate: 0 };
  checkCalibration(batches);
  checkPair(g, dense, bns);
  const denseStats = new Map(measure(dense, bns, batches).map((s, i) => [bns[i]!.name, s]));
  const index = new Map(g.nodes.map((n, i) => [n, i]));
  const stops = bns.map((node) => ({ node, index: index.get(node)! }));
  const walk =
    how === 'walk' || (how === 'auto' && g.inputs.length === 1 && memoryFor(walkMemory(g, batches, stops, 1)) === null);
  let degenerate = 0;
  if (walk) {
    const f = new Frontier(
      g,
      batches,
      bns.map((n) => n.outputs[0]!),
    );
    try {
      for (const { node, index: at } of stops) {
        f.advance(at);
        const p = new ChannelStats();
        for (let b = 0; b < f.batches; b++)
          f.peek(b, [node.outputs[0]!], ([y]) => p.add(y!, `batchnorm '${node.name}' of '${g.name}'`));
        degenerate += fold(g, node, p, denseStats.get(node.name)!);
      }
    } finally {
      f.dispose();
    }
  } else {
    const levels = bnLevels(g);
    const maxLevel = Math.max(...levels.values());
    for (let level = 1; level <= maxLevel; level++) {
      const group = g.nodes.filter((n) => n.op === 'batchnorm' && levels.get(n.name) === level);
      const pruned = measure(g, group, batches);
      group.forEach((bn, i) => (degenerate += fold(g, bn, pruned[i]!, denseStats.get(bn.name)!)));
    }
  }
  return { layers: bns.length, images: countImages(batches), degenerate };
}
