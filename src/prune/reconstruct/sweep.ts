/**
 * Layer by layer through a graph, holding only the live activations: a `Frontier` keeps, per calibration batch, the
 * values computed so far that later nodes still read, and advances them one segment (from one prunable layer to the
 * next) at a time through the interpreter (`forwardFrom`). So the pruned network's input to layer l+1 is computed
 * after layer l was pruned and updated, at the cost of one forward pass in all.
 *
 * `reconstructSweep` prunes each layer in graph order with the reconstruction solver; `layerErrors` measures the
 * relative output error of every layer against the dense network, ‖f_dense − f_pruned‖² / ‖f_dense‖², on the same
 * images. Both run in eval mode (BatchNorm with running statistics).
 */
import { freemem } from 'node:os';
import { availableMemory, eye, linalg, noGrad, scope, type DType, type Tensor } from '../../engine/index.js';
import { forwardFrom, neededNodes, setMask, type Graph, type Node } from '../../graph/index.js';
import { PruneError } from '../errors.js';
import type { CalibBatch } from '../loss.js';
import type { Layer } from './layers.js';
import { toRows } from './layers.js';
import { solveLayer, type KeepRule } from './solver.js';

/**
 * How a layer walk holds its activations between segments, and the layer outputs it taps: `full` as computed, `half`
 * rounded to float16 (half the memory of float32, about 5e-4 relative rounding per value; each segment still computes
 * in the images' dtype, and `covariance` and `squaredError` widen what they read). Peeks come back as computed.
 */
export type ActivationStore = 'full' | 'half';
export const ACTIVATION_STORES: readonly ActivationStore[] = ['full', 'half'];

/** The activations of a graph at a point of its node order, one map per batch. */
export class Frontier {
  readonly #g: Graph;
  readonly #nodes: number[];
  readonly #produced = new Map<string, number>();
  readonly #half: boolean;
  /** The dtype segments compute in: the images'. */
  readonly #dtype: DType;
  #values: Map<string, Tensor>[];
  #at = -1;

  /** `wanted`: the values the walk must reach (e.g. every layer's output). */
  constructor(g: Graph, batches: readonly CalibBatch[], wanted: readonly string[], store: ActivationStore = 'full') {
    if (g.inputs.length !== 1)
      throw new PruneError(`graph '${g.name}' has ${g.inputs.length} inputs; layer-wise passes need one image input`);
    this.#g = g;
    this.#half = store === 'half';
    this.#dtype = batches[0]?.x.dtype ?? 'float32';
    this.#nodes = neededNodes(g, wanted);
    for (const i of this.#nodes) for (const o of g.nodes[i]!.outputs) this.#produced.set(o, i);
    this.#values = batches.map((b) => new Map([[g.inputs[0]!.name, b.x]]));
  }

  /**
   * Batch `b`'s held values as the interpreter reads them: half-stored values widened to the input's dtype (the
   * widened copies are returned in `made`, owned by the caller).
   */
  #computable(b: number): { vals: Map<string, Tensor>; made: Set<Tensor> } {
    const vals = this.#values[b]!;
    const made = new Set<Tensor>();
    if (!this.#half) return { vals, made };
    const dtype = this.#dtype;
    const out = new Map<string, Tensor>();
    for (const [name, t] of vals) {
      if (t.dtype !== 'float16') out.set(name, t);
      else {
        const w = noGrad(() => t.to(dtype));
        made.add(w);
        out.set(name, w);
      }
    }
    return { vals: out, made };
  }

  /** Node indices (graph order) the wanted values depend on. */
  get nodes(): readonly number[] {
    return this.#nodes;
  }

  /** Values produced before node `index` (or graph inputs) that a needed node at or after `index` reads. */
  #liveAt(index: number): string[] {
    const live = new Set<string>();
    for (const i of this.#nodes) {
      if (i < index) continue;
      for (const v of this.#g.nodes[i]!.inputs) {
        if (v === '') continue;
        const p = this.#produced.get(v);
        if ((p !== undefined && p < index) || (p === undefined && this.#g.inputs.some((x) => x.name === v)))
          live.add(v);
      }
    }
    return [...live];
  }

  /**
   * Advances every batch to just before node `index` (Infinity: the end) and returns, per batch, the `taps` computed
   * on the way (owned by the caller). Inputs (batch images) are never disposed here.
   */
  advance(index: number, taps: readonly string[] = []): Map<string, Tensor>[] {
    if (index === this.#at && taps.length === 0) return [];
    if (index <= this.#at) throw new PruneError(`frontier: cannot go back from node ${this.#at} to ${index}`);
    const live = index === Infinity ? [] : this.#liveAt(index);
    const out: Map<string, Tensor>[] = [];
    const input = this.#g.inputs[0]!.name;
    this.#values = this.#values.map((vals, b) => {
      const { vals: wide, made } = this.#computable(b);
      const r = forwardFrom(this.#g, wide, { mode: 'eval', outputs: live, taps });
      // How a computed value is held (and tapped): as is, or rounded to float16 once; a value carried through a
      // segment unchanged keeps its stored copy. The images are the caller's and never rounded.
      const stored = new Map<Tensor, Tensor>();
      const held = (t: Tensor): Tensor => {
        if (!this.#half || t.dtype === 'float16' || t === vals.get(input)) return t;
        let h = stored.get(t);
        if (!h) {
          for (const [name, w] of wide) if (w === t && vals.get(name) !== w) h = vals.get(name);
          h ??= noGrad(() => t.to('float16'));
          stored.set(t, h);
        }
        return h;
      };
      const next = new Map(live.map((v, i) => [v, held(r.outputs[i]!)]));
      const tapped = new Map([...r.taps].map(([name, t]) => [name, held(t)]));
      out.push(tapped);
      const kept = new Set([...next.values(), ...tapped.values(), vals.get(input)]);
      for (const t of new Set([...vals.values(), ...made, ...r.outputs, ...r.taps.values()]))
        if (!kept.has(t)) t.dispose();
      return next;
    });
    this.#at = index;
    return out;
  }

  /** Frees tap tensors returned by `advance` that the frontier does not hold. */
  release(taps: readonly Map<string, Tensor>[]): void {
    taps.forEach((m, b) => {
      const held = new Set(this.#values[b]?.values() ?? []);
      for (const t of new Set(m.values())) if (!held.has(t)) t.dispose();
    });
  }

  /** The current value `name` of batch `b`. */
  value(b: number, name: string): Tensor {
    const t = this.#values[b]!.get(name);
    if (!t) throw new PruneError(`frontier: value '${name}' is not live at node ${this.#at}`);
    return t;
  }

  get batches(): number {
    return this.#values.length;
  }

  /**
   * Runs batch `b` from the current point to `outputs` without advancing and hands them to `use`; results the
   * frontier does not hold are freed afterwards.
   */
  peek<T>(b: number, outputs: readonly string[], use: (ts: Tensor[]) => T): T {
    const { vals, made } = this.#computable(b);
    const r = forwardFrom(this.#g, vals, { mode: 'eval', outputs: [...outputs] });
    try {
      return use(r.outputs);
    } finally {
      const held = new Set(this.#values[b]!.values());
      for (const t of new Set([...r.outputs, ...made])) if (!held.has(t)) t.dispose();
    }
  }

  /** Bytes of the activations held now (graph inputs excluded: the caller owns them). */
  heldBytes(): number {
    const input = this.#g.inputs[0]!.name;
    let n = 0;
    for (const vals of this.#values)
      for (const t of new Set([...vals].filter(([name]) => name !== input).map(([, t]) => t))) n += bytesOf(t);
    return n;
  }

  dispose(): void {
    const input = this.#g.inputs[0]!.name;
    for (const vals of this.#values) for (const [name, t] of vals) if (name !== input) t.dispose();
    this.#values = [];
  }
}

const outputsOf = (layers: readonly { node: Node }[]): string[] => layers.map((l) => l.node.outputs[0]!);

const bytesOf = (t: Tensor): number => t.numel * DTYPE_BYTES[t.dtype];
const DTYPE_BYTES: Record<DType, number> = {
  float64: 8,
  int64: 8,
  float32: 4,
  int32: 4,
  float16: 2,
  bfloat16: 2,
  uint8: 1,
  bool: 1,
};

/**
 * The layer walks hold every calibration image's live activations at once (one `Frontier` per network walked), so
 * their memory grows with the number of images: 4096 images of MobileNetV2 at 96 px (two networks) were killed by the
 * kernel at 16.9 GB resident, where this estimate gives 14.8 GB before its margin. It measures the widest point of
 * the walk (held activations plus the tapped layer output) on one image and refuses, before any work, a walk whose
 * activations would need more than the memory available now (`available`, bytes; default: the engine's
 * `availableMemory`, the OS's figure after the allocator has handed back its cached free pages), with a 25 % margin for
 * the temporaries of each segment; `store`: how the walk holds activations. Returns the estimate in bytes.
 */
export function checkWalkMemory(
  g: Graph,
  batches: readonly CalibBatch[],
  layers: readonly Layer[],
  networks: number,
  o: { available?: number; store?: ActivationStore } = {},
): number {
  const store = o.store ?? 'full';
  const need = walkMemory(g, batches, layers, networks, store);
  // Null when it fits; else the bytes available.
  const short = o.available === undefined ? memoryFor(need) : need > o.available ? o.available : null;
  if (short !== null) {
    const images = batches.reduce((a, b) => a + b.x.shape[0]!, 0);
    const perImage = need / images;
    const gb = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
    throw new PruneError(
      `the layer-by-layer pass over ${images} calibration images needs about ${gb(need)} of activations ` +
        `(${(perImage / 1.25 / networks / 2 ** 20).toFixed(2)} MiB per image at the widest layer × ${networks} network${networks > 1 ? 's' : ''}, ` +
        `+25 %), but ${gb(short)} of memory is available`,
      {
        fix:
          `use at most ${Math.max(1, Math.floor(short / perImage))} calibration images (--calib, study 'calibration:'), a smaller resolution, ` +
          (store === 'full' ? `half-precision activations (--activations half), ` : '') +
          'or free memory',
      },
    );
  }
  return need;
}

/**
 * Null when `need` bytes fit in the memory available now, else the bytes available. The allocator's cached pages are
 * handed back (engine `availableMemory`) only when the OS's figure alone is short: re-faulting them costs time.
 */
export function memoryFor(need: number): number | null {
  if (need <= freemem()) return null;
  const available = availableMemory();
  return need <= available ? null : available;
}

/**
 * Bytes a walk over `batches` stopping at `stops` (graph order) needs, with the 25 % margin (see checkWalkMemory):
 * the widest point of the walk on one image, times the images and the networks walked.
 */
export function walkMemory(
  g: Graph,
  batches: readonly CalibBatch[],
  stops: readonly { index: number; node: Node }[],
  networks: number,
  store: ActivationStore = 'full',
): number {
  if (batches.length === 0 || stops.length === 0) return 0;
  const images = batches.reduce((a, b) => a + b.x.shape[0]!, 0);
  const one = scope(() => noGrad(() => batches[0]!.x.narrow(0, 0, 1).contiguous()));
  const f = new Frontier(g, [{ x: one, y: batches[0]!.y }], outputsOf(stops), store);
  let peak = 0;
  try {
    // As the sweep walks: to the stop, then past it with its output tapped (the error pass holds both at once).
    stops.forEach((l, k) => {
      f.advance(l.index);
      const out = l.node.outputs[0]!;
      const taps = f.advance(stops[k + 1]?.index ?? l.index + 1, [out]);
      const tapped = taps.reduce((a, m) => a + bytesOf(m.get(out)!), 0);
      peak = Math.max(peak, f.heldBytes() + tapped);
      f.release(taps);
    });
  } finally {
    f.dispose();
    one.dispose();
  }
  return peak * images * networks * 1.25;
}

/** A half-stored activation (ActivationStore) as float32 for arithmetic; anything else as it is. */
const widen = (t: Tensor): Tensor => (t.dtype === 'float16' ? t.to('float32') : t);

/** ‖a − b‖² and ‖a‖² (norms in the values' dtype, float16 widened to float32; squared in float64). */
export function squaredError(a: Tensor, b: Tensor): [number, number] {
  return scope(() =>
    noGrad(() => {
      const [x, y] = [widen(a), widen(b)];
      return [x.sub(y).norm().item() ** 2, x.norm().item() ** 2];
    }),
  );
}

/** Σ over batches of ‖a − b‖² over Σ ‖a‖² for one value. */
function accumulateError(
  dense: readonly Map<string, Tensor>[],
  pruned: readonly Map<string, Tensor>[],
  name: string,
): number {
  let num = 0;
  let den = 0;
  dense.forEach((d, b) => {
    const [e, n] = squaredError(d.get(name)!, pruned[b]!.get(name)!);
    num += e;
    den += n;
  });
  return den > 0 ? num / den : num > 0 ? Infinity : 0;
}

export interface LayerError {
  /** The layer's weight. */
  tensor: string;
  node: string;
  /** ‖f_dense − f_pruned‖² / ‖f_dense‖² at the layer's output, over the calibration images. */
  relError: number;
}

/** Relative output error of every layer of `layers` in `g` against `dense` on the batches. */
export function layerErrors(
  g: Graph,
  dense: Graph,
  batches: readonly CalibBatch[],
  layers: readonly Layer[],
  store: ActivationStore = 'full',
): LayerError[] {
  checkWalkMemory(g, batches, layers, 2, { store });
  const fp = new Frontier(g, batches, outputsOf(layers), store);
  const fd = new Frontier(dense, batches, outputsOf(layers), store);
  try {
    return layers.map((l, k) => {
      const next = layers[k + 1]?.index ?? Infinity;
      const out = l.node.outputs[0]!;
      fp.advance(l.index);
      fd.advance(l.index);
      const p = fp.advance(next === Infinity ? l.index + 1 : next, [out]);
      const d = fd.advance(next === Infinity ? l.index + 1 : next, [out]);
      try {
        return { tensor: l.param, node: l.node.name, relError: accumulateError(d, p, out) };
      } finally {
        fp.release(p);
        fd.release(d);
      }
    });
  } finally {
    fp.dispose();
    fd.dispose();
  }
}

/**
 * Calls `visit(layer, inputs)` for every layer in graph order with its input activations (one tensor per batch,
 * owned by the walk), without changing the graph: one forward pass in all.
 */
export function forEachLayerInput(
  g: Graph,
  batches: readonly CalibBatch[],
  layers: readonly Layer[],
  visit: (l: Layer, xs: readonly Tensor[]) => void,
  store: ActivationStore = 'full',
): void {
  checkWalkMemory(g, batches, layers, 1, { store });
  const f = new Frontier(g, batches, outputsOf(layers), store);
  try {
    for (const l of layers) {
      f.advance(l.index);
      visit(
        l,
        Array.from({ length: f.batches }, (_, b) => f.value(b, l.node.inputs[0]!)),
      );
    }
  } finally {
    f.dispose();
  }
}

export type ReconstructTarget = 'dense-weights' | 'dense-output';

/** A reconstruction pruner's settings (defaults: the score's, e.g. SPARSEGPT_DEFAULTS; activations `full`). */
export interface ReconstructSettings {
  target?: ReconstructTarget;
  blockSize?: number;
  damping?: number;
  activations?: ActivationStore;
}
export const RECONSTRUCT_TARGETS: readonly ReconstructTarget[] = ['dense-weights', 'dense-output'];

export interface SweepOptions {
  target: ReconstructTarget;
  blockSize: number;
  damping: number;
  /** The keep rule of each layer (from the allocation). */
  keep: (layer: Layer) => KeepRule;
  /** How the two walks hold their activations (default `full`). */
  activations?: ActivationStore;
  onProgress?: (done: number, total: number) => void;
}

export interface LayerRecord extends LayerError {
  /** λ (mean over groups) and rows that fell back to masking alone. */
  lambda: number;
  reverted: number;
  /** The layer's own squared output error (on its pruned inputs) after masking alone and after reconstruction. */
  maskedError: number;
  reconstructedError: number;
}

/** Elements per column chunk: images are unfolded a few at a time so [G, d, S] stays near this size. */
const CHUNK = 16_000_000;

/** Σ cols(y) cols(x)ᵀ over every batch, [G, d, d] in float64 (`ys` absent: x with itself). */
export function covariance(l: Layer, xs: readonly Tensor[], ys?: readonly Tensor[]): Tensor {
  let acc: Tensor | null = null;
  xs.forEach((x, b) => {
    const per = Math.max(1, x.numel / x.shape[0]!) * (l.node.op === 'conv2d' ? l.shape[2]! * l.shape[3]! : 1);
    const step = Math.max(1, Math.floor(CHUNK / per));
    for (let i = 0; i < x.shape[0]!; i += step) {
      const n = Math.min(step, x.shape[0]! - i);
      const part = scope(() =>
        noGrad(() => {
          // [N, G, d, L]. Per image and group X Xᵀ, summed over images, when each image has many positions (L > 4d: one
          // gemm per image and group beats copying X); otherwise (deep layers with few positions: N·d² outputs to sum, or
          // many tiny gemms) one gemm per group over [G, d, N·L] after a transposed copy. Measured on MobileNetV2 shapes:
          // up to 35× on the 1×1 projections at 3×3 positions.
          // Half-stored activations (ActivationStore) are widened a chunk at a time.
          const chunk = (t: Tensor) => widen(t.narrow(0, i, n));
          const cp = l.rule.columns(chunk(x), l.node, l.shape);
          const cq = ys ? l.rule.columns(chunk(ys[b]!), l.node, l.shape) : cp;
          const [nn_, G, d, L] = cp.shape as [number, number, number, number];
          if (L > 4 * d) return cq.matmul(cp.transpose(2, 3)).sum([0]).to('float64');
          const flat = (t: Tensor) => t.permute([1, 2, 0, 3]).reshape([G, d, nn_ * L]);
          const fp = flat(cp);
          const fq = ys ? flat(cq) : fp;
          return fq.matmul(fp.transpose(1, 2)).to('float64');
        }),
      );
      if (acc) {
        acc.add_(part);
        part.dispose();
      } else acc = part;
    }
  });
  return acc!;
}

/**
 * Prunes `layers` of `g` one after the other (graph order), each with the reconstruction solver on its inputs from
 * the already-pruned network: `dense-weights` keeps W X_p (W: the layer's current weights; SparseGPT's usual target),
 * `dense-output` keeps the dense network's own layer output W_d X_d, i.e. runs the solver on the least-squares target
 * W* = W_d (X_d X_pᵀ + λI)(X_p X_pᵀ + λI)⁻¹ (the ridge pulls unseen directions towards W_d). Weights and masks are
 * written into `g` as it goes; returns the masks (caller owns) and one record per layer.
 */
export function reconstructSweep(
  g: Graph,
  dense: Graph,
  batches: readonly CalibBatch[],
  layers: readonly Layer[],
  o: SweepOptions,
): { masks: Map<string, Tensor>; records: LayerRecord[]; timings: Record<string, number> } {
  const store = o.activations ?? 'full';
  checkWalkMemory(g, batches, layers, 2, { store });
  const fp = new Frontier(g, batches, outputsOf(layers), store);
  const fd = new Frontier(dense, batches, outputsOf(layers), store);
  const masks = new Map<string, Tensor>();
  const records: LayerRecord[] = [];
  // Milliseconds per phase over all layers: where the sweep's time goes.
  const timings: Record<string, number> = { forward: 0, covariance: 0, solve: 0, error: 0 };
  const time = <T>(phase: string, f: () => T): T => {
    const t0 = performance.now();
    try {
      return f();
    } finally {
      timings[phase]! += performance.now() - t0;
    }
  };
  try {
    layers.forEach((l, k) => {
      o.onProgress?.(k, layers.length);
      time('forward', () => {
        fp.advance(l.index);
        fd.advance(l.index);
      });
      const input = l.node.inputs[0]!;
      const xp = Array.from({ length: fp.batches }, (_, b) => fp.value(b, input));
      const xd = Array.from({ length: fd.batches }, (_, b) => fd.value(b, input));
      const H = time('covariance', () => covariance(l, xp));
      // dense-output also needs the cross covariance C = X_d X_pᵀ (computed here, outside the solve's timing).
      const C = o.target === 'dense-output' ? time('covariance', () => covariance(l, xp, xd)) : null;
      const wCur = g.params.get(l.param)!.tensor;
      const mCur = g.masks.get(l.param);
      const res = time('solve', () =>
        scope(() =>
          noGrad(() => {
            const current = toRows(mCur ? wCur.mul(mCur) : wCur, l.groups).to('float64');
            let target = current;
            if (C) {
              const wd = toRows(dense.params.get(l.param)!.tensor, l.groups).to('float64');
              const lam = H.diagonal(0, 1, 2).mean([1]).mul(o.damping).add(1e-12).reshape([l.groups, 1, 1]);
              const I = eye(H.shape[1]!, { dtype: 'float64' }).unsqueeze(0).mul(lam);
              // W* (H + λI) = W_d (C + λI) with C = X_d X_pᵀ; H + λI is symmetric, so W*ᵀ = (H + λI)⁻¹ (W_d (C + λI))ᵀ.
              target = linalg
                .solve(H.add(I), wd.matmul(C.add(I)).transpose(1, 2))
                .transpose(1, 2)
                .contiguous();
            }
            const r = solveLayer(target, H, {
              blockSize: o.blockSize,
              damping: o.damping,
              keep: o.keep(l),
              base: current,
              // An earlier round's pruned weights stay pruned (iterative schedules).
              ...(mCur ? { pruned: toRows(mCur, l.groups).eq(0) } : {}),
            });
            return {
              w: r.weights.reshape(l.shape).to(wCur.dtype),
              m: r.mask.reshape(l.shape).to('float32'),
              lambda: r.lambda.reduce((a, b) => a + b, 0) / r.lambda.length,
              reverted: r.reverted,
              error: r.error,
            };
          }),
        ),
      );
      H.dispose();
      C?.dispose();
      noGrad(() => wCur.copy_(res.w));
      setMask(g, l.param, res.m);
      res.w.dispose();
      masks.set(l.param, res.m);
      const next = layers[k + 1]?.index ?? l.index + 1;
      const out = l.node.outputs[0]!;
      const [tp, td] = time('forward', () => [fp.advance(next, [out]), fd.advance(next, [out])]);
      records.push({
        tensor: l.param,
        node: l.node.name,
        relError: time('error', () => accumulateError(td, tp, out)),
        lambda: res.lambda,
        reverted: res.reverted,
        maskedError: res.error.masked,
        reconstructedError: res.error.reconstructed,
      });
      fp.release(tp);
      fd.release(td);
    });
    o.onProgress?.(layers.length, layers.length);
    return { masks, records, timings };
  } catch (e) {
    for (const m of masks.values()) m.dispose();
    throw e;
  } finally {
    fp.dispose();
    fd.dispose();
  }
}
