/**
 * Feature-pass benchmark: the zero-shot feature pass (`transfer.extractFeatures`, the default runtime, as `tapir eval`
 * runs it) over the test images of a real task (CIFAR-10 from ../shared/data by default, ≥ 1,000 images) through
 * nsfwjs MobileNetV2 at 96 and 224 px, against onnxruntime-node run by hand on the same ONNX file (the feature
 * subgraph tapir exports) with the same thread count, in the same run. tapir's time includes what a user pays on a
 * fresh model state: hashing the state, the ONNX export and the session creation (the session cache is emptied
 * before each run); the peer's includes its session creation. Both convert the same uint8 images to model input
 * per batch. The features of both sides must agree (max |Δ| / max |f| ≤ 1e-4, else it fails), and so must one
 * pass of the libtorch interpreter, timed once for reference.
 *
 *   npm run bench:eval -- [--runs 3] [--n 1024] [--batch 64] [--sizes 96,224] [--threads N] [--task folder:<dir>]
 * Prints a table, then one JSON line: `ratio` (tapir / peer, best of `runs` each, worst over sizes; goal ≤ 1.05) and
 * `ratio_loaded` (the same with one busy-looping process beside the bench).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import ort from 'onnxruntime-node';
import { getNumThreads, setNumThreads, type Tensor } from '../src/index.js';
import { data, graph, transfer } from '../src/index.js';
import { intOption, listOption, option, parseFlags } from './lib/args.js';
import { busy } from './lib/busy.js';
import { emitSummary, progress, renderTable, round } from './lib/report.js';

const flags = parseFlags(process.argv.slice(2), ['runs', 'n', 'batch', 'sizes', 'threads', 'task']);
const runs = intOption(flags, 'runs', 3, 1);
const n = intOption(flags, 'n', 1024, 1);
const batch = intOption(flags, 'batch', 64, 1);
const SIZES = ['96', '224'] as const;
const sizes = listOption(flags, 'sizes', SIZES).map(Number);
setNumThreads(intOption(flags, 'threads', getNumThreads(), 1));
const threads = getNumThreads();
/** Present when node runs with --expose-gc (the npm script and make target pass it). */
const gc = (globalThis as { gc?: () => void }).gc;
const taskId = option(flags, 'task') ?? `folder:${resolve('..', 'shared', 'data', 'cifar10')}`;
if (!process.env.LD_PRELOAD?.includes('tcmalloc'))
  progress(
    'warning: tcmalloc is not preloaded (run `npm run bench:eval`): the interpreter row is slower than users see',
  );

/** max |a − b| / max |b|. */
function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
}

/** onnxruntime by hand: session from the file, the model's value mapping written out, batches, outputs concatenated. */
async function peerPass(file: string, set: data.ImageSet, pre: graph.Preprocessing): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(new Uint8Array(readFileSync(file)), {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const [lo, hi] = pre.range;
  const table = [0, 1, 2].map((c) =>
    Float32Array.from(
      { length: 256 },
      (_, v) => (lo + ((hi - lo) * v) / 255 - (pre.mean?.[c] ?? 0)) / (pre.std?.[c] ?? 1),
    ),
  );
  const per = 3 * set.size[0] * set.size[1];
  const hw = set.size[0] * set.size[1];
  const chunks: Float32Array[] = [];
  for (let s0 = 0; s0 < set.n; s0 += batch) {
    const b = Math.min(batch, set.n - s0);
    const x = new Float32Array(b * per);
    for (let j = 0; j < b; j++)
      for (let c = 0; c < 3; c++) {
        const t = table[c]!;
        const src = (s0 + j) * per + c * hw;
        const dst = j * per + c * hw;
        for (let k = 0; k < hw; k++) x[dst + k] = t[set.images[src + k]!]!;
      }
    const r = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', x, [b, 3, set.size[0], set.size[1]]) });
    chunks.push(r[s.outputNames[0]!]!.data as Float32Array);
  }
  await s.release();
  const out = new Float32Array(chunks.reduce((a, c) => a + c.length, 0));
  let o = 0;
  for (const c of chunks) (out.set(c, o), (o += c.length));
  return out;
}

/** tapir: the library call `tapir eval` makes for a split, on a fresh model state (no cached session). */
async function tapirPass(g: graph.Graph, set: data.ImageSet): Promise<Tensor> {
  await graph.ortSessions.release();
  return transfer.extractFeatures(g, set, { batchSize: batch });
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

/** Best of `runs` for both sides, alternating who goes first; checks every run's features against the peer's. */
async function measure(g: graph.Graph, set: data.ImageSet, file: string, what: string) {
  const tapirMs: number[] = [];
  const peerMs: number[] = [];
  let err = 0;
  for (let r = 0; r < runs; r++) {
    const one = async (side: 'tapir' | 'peer') => {
      gc?.(); // the other side's garbage is not this side's time
      if (side === 'tapir') {
        const t = await timed(() => tapirPass(g, set));
        tapirMs.push(t.ms);
        const f = t.value.data<'float32'>();
        t.value.dispose();
        await graph.ortSessions.release(); // the peer releases its session too
        return f;
      }
      const p = await timed(() => peerPass(file, set, g.preprocessing));
      peerMs.push(p.ms);
      return p.value;
    };
    const order = r % 2 === 0 ? (['tapir', 'peer'] as const) : (['peer', 'tapir'] as const);
    const a = await one(order[0]);
    const b = await one(order[1]);
    err = Math.max(err, maxRel(order[0] === 'tapir' ? a : b, order[0] === 'tapir' ? b : a));
    progress(
      `  ${what} run ${r + 1}/${runs}: tapir ${tapirMs.at(-1)!.toFixed(0)} ms, peer ${peerMs.at(-1)!.toFixed(0)} ms`,
    );
  }
  if (!(err <= 1e-4)) throw new Error(`PARITY FAILURE (${what}): tapir vs onnxruntime features, max rel. error ${err}`);
  return { tapir: Math.min(...tapirMs), peer: Math.min(...peerMs), err };
}

if (taskId.startsWith('folder:') && !existsSync(taskId.slice('folder:'.length)))
  throw new Error(`${taskId} does not exist: pass --task <task id> (e.g. folder:<dir with train/ and test/>)`);
const dir = mkdtempSync(join(tmpdir(), 'tapir-bench-eval-'));
const rows: Record<string, number>[] = [];
try {
  const task = await data.openTask(taskId);
  const perClass = Math.ceil(n / task.classes.length);
  for (const size of sizes) {
    progress(`MobileNetV2 @ ${size} px, ${task.id} test split, ${perClass} images per class, ${threads} thread(s)`);
    const g = await graph.loadModel(`mobilenet_v2@${size}`);
    const set = await data.loadSample(task, 'test', [size, size], perClass);
    if (set.n < 1000) progress(`warning: only ${set.n} images (the bench wants ≥ 1000)`);
    // The peer's file: the same export tapir runs (the feature subgraph, masks applied), written once, untimed.
    const file = join(dir, `mobilenet_v2_${size}.onnx`);
    writeFileSync(file, graph.exportOnnxBytes(graph.subgraph(g, [g.featureTap])));
    const interp = await timed(() => transfer.extractFeatures(g, set, { batchSize: batch, runtime: 'torch' }));
    const interpF = interp.value.data<'float32'>();
    interp.value.dispose();
    const idle = await measure(g, set, file, `${size} px`);
    const ort1 = await tapirPass(g, set);
    const interpErr = maxRel(ort1.data<'float32'>(), interpF);
    ort1.dispose();
    if (!(interpErr <= 1e-4))
      throw new Error(`PARITY FAILURE (${size} px): onnxruntime vs the interpreter, max rel. error ${interpErr}`);
    const child = await busy();
    let loaded: Awaited<ReturnType<typeof measure>>;
    try {
      loaded = await measure(g, set, file, `${size} px, loaded`);
    } finally {
      child.kill();
    }
    rows.push({
      size,
      images: set.n,
      tapir_ms: Math.round(idle.tapir),
      peer_ms: Math.round(idle.peer),
      ratio: round(idle.tapir / idle.peer),
      loaded_tapir_ms: Math.round(loaded.tapir),
      loaded_peer_ms: Math.round(loaded.peer),
      ratio_loaded: round(loaded.tapir / loaded.peer),
      interpreter_ms: Math.round(interp.ms),
      parity: Math.max(idle.err, loaded.err),
      interpreter_parity: interpErr,
    });
    graph.disposeGraph(g);
  }
  await graph.ortSessions.release();
} finally {
  rmSync(dir, { recursive: true, force: true });
}

console.log(
  renderTable(
    ['size', 'images', 'tapir ms', 'ort ms', 'ratio', 'loaded tapir', 'loaded ort', 'ratio loaded', 'interpreter ms'],
    rows.map((r) => [
      `${r.size} px`,
      String(r.images),
      r.tapir_ms!,
      r.peer_ms!,
      r.ratio!,
      r.loaded_tapir_ms!,
      r.loaded_peer_ms!,
      r.ratio_loaded!,
      r.interpreter_ms!,
    ]),
  ),
);
console.log(
  `tapir: extractFeatures (runtime auto) incl. state hash, ONNX export and session; ort: onnxruntime-node by hand on ` +
    `the same file incl. session; best of ${runs}; interpreter: one run of runtime 'torch'; loaded: one busy process beside`,
);
emitSummary({
  bench: 'eval',
  model: 'nsfwjs mobilenet_v2 (feature tap)',
  task: taskId.replace(/^folder:.*[\\/]/, 'folder:'),
  batch,
  threads,
  runs,
  n: rows[0]?.images ?? 0,
  sizes: rows,
  tapir_ms: rows.reduce((a, r) => a + r.tapir_ms!, 0),
  peer_ms: rows.reduce((a, r) => a + r.peer_ms!, 0),
  ratio: Math.max(...rows.map((r) => r.ratio!)),
  ratio_loaded: Math.max(...rows.map((r) => r.ratio_loaded!)),
});
