/**
 * Frozen features of a task split, extracted once per (model state, task, split) and reused.
 *
 * A model's state is its weights AND masks: the same graph object changes state when it is pruned or fine-tuned,
 * so the cache key is a content hash of every parameter and mask (plus the tap and preprocessing), never the
 * object's identity. Hashing MobileNetV2's 2.6 M weights costs a few tens of ms, a small fraction of one
 * feature pass, and it cannot go stale the way a hand-maintained version counter can.
 */
import { createHash } from 'node:crypto';
import { noGrad, scope, tensor, TapirError, type Tensor } from '../engine/index.js';
import { checkRuntime, openRunner, preprocessOf, type Graph, type OrtSessions, type Runtime } from '../graph/index.js';
import {
  arrayBatches,
  loadSplit,
  openTask,
  type ImageSet,
  type Preprocess,
  type SplitName,
  type Task,
  type TaskOptions,
} from '../data/index.js';

/** SHA-256 (hex, 16 chars) of everything that decides a graph's features: weights, masks, tap, preprocessing. */
export function modelFingerprint(g: Graph, tap: string = g.featureTap): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ name: g.name, tap, pre: g.preprocessing, outputs: g.outputs }));
  const feed = (kind: string, name: string, t: Tensor) => {
    h.update(`\0${kind}\0${name}\0${t.dtype}\0${t.shape.join(',')}\0`);
    const a = noGrad(() => scope(() => t.detach().contiguous().data() as ArrayBufferView));
    h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  };
  for (const name of [...g.params.keys()].sort()) feed('p', name, g.params.get(name)!.tensor);
  for (const name of [...g.masks.keys()].sort()) feed('m', name, g.masks.get(name)!);
  return h.digest('hex').slice(0, 16);
}

export interface ExtractOptions {
  /** Value name to read (default: the graph's feature tap). */
  tap?: string;
  batchSize?: number;
  /** Inference runtime (default `auto`: onnxruntime where the graph exports, else the libtorch interpreter). */
  runtime?: Runtime;
  /** Session cache for the `ort` runtime (default: the process-wide one). */
  sessions?: OrtSessions;
  /** Called after each batch with images done and the total. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Features [N, D] (the tap flattened per image, in the graph's dtype) of every image of `set`, in set order,
 * computed in `eval` mode (BN running statistics, no autograd) by `o.runtime` (see `openRunner`). The caller owns
 * the result.
 */
export async function extractFeatures(g: Graph, set: ImageSet, o: ExtractOptions = {}): Promise<Tensor> {
  const tap = o.tap ?? g.featureTap;
  if (set.n === 0)
    throw new TapirError('E_FEATURES', `${set.task}/${set.split} has no images to extract features from`, {
      context: { task: set.task, split: set.split },
      fix: 'raise --cap or check the dataset',
    });
  const runner = await openRunner(g, {
    outputs: [tap],
    ...(o.runtime ? { runtime: o.runtime } : {}),
    ...(o.sessions ? { sessions: o.sessions } : {}),
  });
  // Batches as JS arrays: onnxruntime reads and writes those, and the features fill one array of the result.
  let out: Float32Array | Float64Array | null = null;
  let dim = 0;
  try {
    for (const b of arrayBatches(set, preprocessOf(g), { batchSize: o.batchSize ?? 64 })) {
      const [f] = await runner.runArray(b.x, b.shape);
      if (!out) {
        dim = f!.data.length / b.indices.length;
        out = f!.data instanceof Float64Array ? new Float64Array(set.n * dim) : new Float32Array(set.n * dim);
      }
      out.set(f!.data, b.indices[0]! * dim);
      o.onProgress?.(b.indices[0]! + b.indices.length, set.n);
    }
  } finally {
    runner.close();
  }
  return tensor(out!, [set.n, dim]);
}

/** Features and labels of one split; `features` belongs to the cache that returned it (do not dispose). */
export interface SplitFeatures {
  readonly features: Tensor;
  /** [N] task labels 0..K-1. */
  readonly labels: Int32Array;
  readonly numClasses: number;
  readonly task: string;
  readonly split: SplitName;
  readonly fingerprint: string;
}

export interface FeatureRequest extends ExtractOptions {
  /** Task id (e.g. `fashion-mnist[0-4]`) or an opened task. */
  task: string | Task;
  split: SplitName;
  /** Split seed and per-class cap (ignored when `task` is already opened). */
  taskOptions?: TaskOptions;
  /** A fingerprint computed earlier for this graph state (skips hashing the weights again). */
  fingerprint?: string;
}

/**
 * An in-memory cache of split features keyed by (model fingerprint, tap, task, seed, cap, split). Least recently
 * used entries are dropped past `maxEntries`. The runtime is not part of the key: both give the same features
 * (within 1e-5 relative, tested). Call `dispose()` when done.
 */
export class FeatureCache {
  readonly #entries = new Map<string, SplitFeatures>();
  readonly #tasks = new Map<string, Promise<Task>>();
  readonly maxEntries: number;
  /** The runtime of feature passes whose request names none (default `auto`). */
  readonly runtime: Runtime;
  hits = 0;
  misses = 0;

  constructor(o: { maxEntries?: number; runtime?: Runtime } = {}) {
    this.maxEntries = o.maxEntries ?? 64;
    this.runtime = checkRuntime(o.runtime ?? 'auto');
  }

  /** Opens (once) a task by id and options. */
  task(id: string | Task, o: TaskOptions = {}): Promise<Task> {
    if (typeof id !== 'string') return Promise.resolve(id);
    const key = JSON.stringify([id, o.seed ?? 0, o.cap ?? null, o.fractions ?? null]);
    let p = this.#tasks.get(key);
    if (!p) {
      p = openTask(id, o);
      p.catch(() => this.#tasks.delete(key));
      this.#tasks.set(key, p);
    }
    return p;
  }

  async get(g: Graph, r: FeatureRequest): Promise<SplitFeatures> {
    const tap = r.tap ?? g.featureTap;
    const task = await this.task(r.task, r.taskOptions);
    const fingerprint = r.fingerprint ?? modelFingerprint(g, tap);
    const key = JSON.stringify([fingerprint, tap, task.id, task.seed, task.cap, r.split, g.preprocessing.size]);
    const hit = this.#entries.get(key);
    if (hit) {
      this.hits++;
      this.#entries.delete(key);
      this.#entries.set(key, hit);
      return hit;
    }
    this.misses++;
    const set = await loadSplit(task, r.split, g.preprocessing.size);
    const features = await extractFeatures(g, set, { ...r, runtime: r.runtime ?? this.runtime });
    const entry: SplitFeatures = {
      features,
      labels: set.labels,
      numClasses: task.classes.length,
      task: task.id,
      split: r.split,
      fingerprint,
    };
    this.#entries.set(key, entry);
    while (this.#entries.size > this.maxEntries) {
      const [k, old] = this.#entries.entries().next().value as [string, SplitFeatures];
      this.#entries.delete(k);
      old.features.dispose();
    }
    return entry;
  }

  get size(): number {
    return this.#entries.size;
  }

  dispose(): void {
    for (const e of this.#entries.values()) e.features.dispose();
    this.#entries.clear();
  }
}
