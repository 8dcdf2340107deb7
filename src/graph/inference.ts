/**
 * Inference passes (eval mode, no autograd) over a Graph in one of two runtimes (docs/GRAPH.md, "Inference runtime"):
 *
 * - `torch`: the libtorch interpreter (`forward`), which runs every graph and every dtype and device.
 * - `ort`: onnxruntime-node on the graph's ONNX export (`exportOnnxBytes`: masks applied, BN statistics as they are,
 *   the requested values, e.g. the feature tap, as the graph outputs). Measured on nsfwjs MobileNetV2, one thread,
 *   batch 64: 2.6x (96 px) and 2.8x (224 px) faster than the interpreter per batch; features within 1.5e-5 of the interpreter's
 *   (max |Δ| / max |f| over 1,030 CIFAR-10 images, bench/eval.ts).
 * - `auto` (default): `ort` where it applies (float32 parameters on the CPU, a graph the exporter and onnxruntime
 *   accept), else `torch`.
 *
 * One onnxruntime session serves every pass over one model state: sessions are cached by a fingerprint of the
 * exported part of the graph (`stateFingerprint`: nodes, parameters, masks, constants) and the thread count, so a
 * pruned, repaired or fine-tuned graph gets a new session and an unchanged one reuses its own. A graph that cannot
 * be exported or loaded runs in the interpreter; the reason is emitted once per graph name and reason as a process
 * warning (code `TAPIR_ORT_FALLBACK`) and kept in the runner's `fallback`.
 */
import ort from 'onnxruntime-node';
import { getNumThreads, scope, tensor, TapirError, waitPolicy, type Tensor } from '../engine/index.js';
import type { Graph } from './ir.js';
import { forward } from './interpreter.js';
import { exportOnnxBytes } from './onnx/export.js';
import { graphDtype } from './params.js';
import { stateFingerprint, subgraph } from './subgraph.js';

/** Which runtime runs inference passes: `auto` picks `ort` where the graph allows it. */
export type Runtime = 'auto' | 'torch' | 'ort';
export const RUNTIMES: readonly Runtime[] = ['auto', 'torch', 'ort'];

export function checkRuntime(r: unknown, option = 'runtime'): Runtime {
  if ((RUNTIMES as readonly unknown[]).includes(r)) return r as Runtime;
  throw new TapirError('E_ARG', `${option} must be one of ${RUNTIMES.join(', ')}, got '${String(r)}'`, {
    context: { option },
    fix: `use ${RUNTIMES.join(', ')} (--runtime)`,
  });
}

/** Runs eval-mode passes of one graph state; `close()` when done (the cached session stays for the next pass). */
export interface InferenceRunner {
  /** The runtime that actually runs the passes. */
  readonly runtime: 'torch' | 'ort';
  /** Why onnxruntime was not used although it was asked for or allowed (`auto`); null otherwise. */
  readonly fallback: string | null;
  /** The onnxruntime session (null for `torch`): the same object for every pass over the same state. */
  readonly session: ort.InferenceSession | null;
  /** Values `outputs` (in order) for the NCHW input batch `x`; the caller owns them. */
  run(x: Tensor): Promise<Tensor[]>;
  /**
   * The same for a float32 input batch held in a JS array, with the values returned as arrays in the graph's dtype:
   * no engine tensor on the way in or out of onnxruntime (at 224 px a batch of 64 is 38 MB).
   */
  runArray(x: Float32Array, shape: readonly number[]): Promise<ArrayValue[]>;
  close(): void;
}

/** A value computed by `runArray`: row-major data and its shape. */
export interface ArrayValue {
  readonly data: Float32Array | Float64Array;
  readonly dims: readonly number[];
}

export interface RunnerOptions {
  /** Value names to compute (node outputs, e.g. the feature tap or the logits). */
  outputs: readonly string[];
  /** Default `auto`. */
  runtime?: Runtime;
  /** Where sessions are cached (default: the process-wide `ortSessions`). */
  sessions?: OrtSessions;
}

interface Entry {
  readonly key: string;
  readonly session: ort.InferenceSession | null;
  readonly fallback: string | null;
  users: number;
}

/**
 * onnxruntime sessions by model state, least recently used dropped (and released) past `maxEntries`; a session that a
 * runner still holds is never dropped. Failed exports are cached too, so they are not retried for the same state.
 */
export class OrtSessions {
  readonly #entries = new Map<string, Promise<Entry>>();
  readonly maxEntries: number;
  /** Sessions created so far (tests check reuse with it). */
  created = 0;

  constructor(o: { maxEntries?: number } = {}) {
    this.maxEntries = o.maxEntries ?? 4;
  }

  /** The session for the values `outputs` of `g` in its current state (made on first use), or why there is none. */
  async acquire(g: Graph, outputs: readonly string[]): Promise<Entry> {
    const threads = getNumThreads();
    const key = `${stateFingerprint(g, outputs)}/${threads}`;
    let p = this.#entries.get(key);
    if (p)
      this.#entries.delete(key); // re-inserted below: most recently used last
    else p = this.#create(g, outputs, key, threads);
    this.#entries.set(key, p);
    const e = await p;
    e.users++;
    await this.#evict();
    return e;
  }

  async #create(g: Graph, outputs: readonly string[], key: string, threads: number): Promise<Entry> {
    let bytes: Uint8Array;
    try {
      bytes = exportOnnxBytes(subgraph(g, outputs));
    } catch (e) {
      // The exporter's own message ends with the whole list of supported ops: the warning keeps only what failed.
      const why = (e as Error).message.split('. Supported ops:')[0];
      return { key, session: null, fallback: `ONNX export failed: ${why}`, users: 0 };
    }
    try {
      const session = await ort.InferenceSession.create(bytes, {
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
        // Idle intra-op threads spin or sleep as the engine's wait policy says (src/engine/wait.ts).
        extra: { session: { intra_op: { allow_spinning: waitPolicy() === 'spin' ? '1' : '0' } } },
      });
      this.created++;
      return { key, session, fallback: null, users: 0 };
    } catch (e) {
      return { key, session: null, fallback: `onnxruntime refused the export: ${(e as Error).message}`, users: 0 };
    }
  }

  async #evict(): Promise<void> {
    for (const [key, p] of this.#entries) {
      if (this.#entries.size <= this.maxEntries) break;
      const e = await p;
      if (e.users > 0) continue;
      this.#entries.delete(key);
      await e.session?.release();
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Releases every session no runner holds. */
  async release(): Promise<void> {
    for (const [key, p] of [...this.#entries]) {
      const e = await p;
      if (e.users > 0) continue;
      this.#entries.delete(key);
      await e.session?.release();
    }
  }
}

/** The process-wide session cache used when a caller passes none. */
export const ortSessions = new OrtSessions();

const noted = new Set<string>();
function noteFallback(g: Graph, reason: string): void {
  const key = `${g.name}\0${reason}`;
  if (noted.has(key)) return;
  noted.add(key);
  process.emitWarning(`graph '${g.name}' runs in the libtorch interpreter, not onnxruntime: ${reason}`, {
    code: 'TAPIR_ORT_FALLBACK',
  });
}

/** Why `g` cannot run in onnxruntime before trying to export it, or null. */
function ortObstacle(g: Graph): string | null {
  if (graphDtype(g) !== 'float32') return 'float64 parameters (the ONNX export is float32)';
  for (const p of g.params.values())
    if (p.tensor.device !== 'cpu') return `parameters on ${p.tensor.device} (onnxruntime-node runs on the CPU here)`;
  return null;
}

function torchRunner(g: Graph, outputs: readonly string[], fallback: string | null): InferenceRunner {
  const run = (x: Tensor) => {
    const r = forward(g, x, { mode: 'eval', taps: outputs, outputs: [] });
    return outputs.map((v) => r.taps.get(v)!);
  };
  const dtype = graphDtype(g);
  return {
    runtime: 'torch',
    fallback,
    session: null,
    run: (x) => Promise.resolve(run(x)),
    runArray: (x, shape) =>
      Promise.resolve(
        scope(() =>
          run(tensor(x, [...shape]).to(dtype)).map((t) => ({
            data: t.data() as Float32Array | Float64Array,
            dims: t.shape,
          })),
        ),
      ),
    close: () => {},
  };
}

/**
 * A runner for eval-mode passes over `g` that compute `o.outputs`. With `ort` or `auto` the graph's current state is
 * exported once and its session reused by later runners over the same state; the runner reads the graph's state
 * when it is opened, so open a new one after changing weights, masks or BN statistics.
 */
export async function openRunner(g: Graph, o: RunnerOptions): Promise<InferenceRunner> {
  const runtime = checkRuntime(o.runtime ?? 'auto');
  const outputs = [...new Set(o.outputs)];
  if (runtime === 'torch') return torchRunner(g, outputs, null);
  const obstacle = ortObstacle(g);
  if (obstacle) {
    if (runtime === 'ort') noteFallback(g, obstacle);
    return torchRunner(g, outputs, obstacle);
  }
  const sessions = o.sessions ?? ortSessions;
  const e = await sessions.acquire(g, outputs);
  if (!e.session) {
    e.users--;
    noteFallback(g, e.fallback!);
    return torchRunner(g, outputs, e.fallback);
  }
  const session = e.session;
  const input = session.inputNames[0]!;
  const runArray = async (x: Float32Array, shape: readonly number[]): Promise<ArrayValue[]> => {
    const r = await session.run({ [input]: new ort.Tensor('float32', x, [...shape]) });
    return outputs.map((v) => ({ data: r[v]!.data as Float32Array, dims: r[v]!.dims.map(Number) }));
  };
  let open = true;
  return {
    runtime: 'ort',
    fallback: null,
    session,
    run: async (x) => {
      const data = scope(() => (x.dtype === 'float32' ? x : x.to('float32')).data<'float32'>());
      return (await runArray(data, x.shape)).map((v) => tensor(v.data, [...v.dims]));
    },
    runArray,
    close: () => {
      if (open) e.users--;
      open = false;
    },
  };
}
