/**
 * Engine benchmark: the zoo's ResNet-18 (torchvision layout, 128 px) and ViT-Tiny/16 (timm layout, 224 px) at batch
 * 32 in float32, run through the graph interpreter as users run them (`graph.forward`, train mode: BN on batch
 * statistics) — forward (no grad), forward+backward (cross-entropy, gradients of all parameters) and a
 * Hessian-vector product by double backward — timed in tapir and in PyTorch (bench/peers/engine.py: torchvision's
 * resnet18 and a timm-layout ViT loaded with the very same weights by name) on the same inputs, labels and vectors,
 * with the same threads and allocator. By default the two sides alternate run by run (`--schedule interleaved`);
 * `--schedule sequential` runs all of tapir, then the peer. `--device cuda` runs both sides on the GPU (the addon
 * built against a CUDA PyTorch: `make setup-cuda`).
 *
 *   npm run bench:engine -- --runs 5 --models resnet18,vit_tiny@224 --cases forward,forward+backward,hvp
 *
 * Options (or env BENCH_RUNS, BENCH_WARMUP, BENCH_MODELS, BENCH_CASES, BENCH_BATCH, BENCH_SEED, BENCH_SCHEDULE,
 * BENCH_DEVICE). Prints a table, then one JSON line:
 * {"bench":"engine","device","threads","n","cases":[…],"ratio": worst tapir/peer}.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  cudaAvailable,
  getNumThreads,
  gradStrict,
  hvp,
  liveTensors,
  nn,
  noGrad,
  randint,
  randn,
  scope,
  synchronize,
  type Device,
  type Tensor,
} from '../src/engine/index.js';
import { disposeGraph, useChannelsLast, type Graph } from '../src/graph/index.js';
import { BenchOptionError, choiceOption, intOption, listOption, option, parseFlags } from './lib/args.js';
import { checkTorch, PeerError, PeerSession, runPeer, tcmallocPreloaded } from './lib/peer.js';
import { emitSummary, progress, renderTable, round } from './lib/report.js';
import { mad, median, relDiff } from './lib/stats.js';
import { timeRuns } from './lib/timer.js';
import {
  graphToDevice,
  loadBenchModel,
  numClasses,
  numParams,
  parseModels,
  specOf,
  trainable,
  trainLogits,
  writeModelFiles,
  type ModelChoice,
} from './lib/zoo.js';

const CASES = ['forward', 'forward+backward', 'hvp'] as const;
type CaseId = (typeof CASES)[number];
const DEVICES = ['cpu', 'cuda'] as const satisfies readonly Device[];
type BenchDevice = (typeof DEVICES)[number];
/** Summary numbers both sides compute on the first (untimed) run, proving they ran the same model. */
type Checks = Record<string, number>;
/** Same libtorch and op order: here the sides agree bit for bit; 1e-3 leaves room for other builds yet flags a different model. */
const PARITY_TOL = 1e-3;

const sumSquares = (ts: readonly Tensor[]): number => ts.reduce((a, t) => a + t.square().sum().item(), 0);

/** One model's graph and inputs, shared with the peer through files. */
interface Fixture {
  choice: ModelChoice;
  g: Graph;
  /** The graph's trainable parameters (what `grad` and `hvp` differentiate), in graph order. */
  list: Tensor[];
  v: Tensor[];
  x: Tensor;
  labels: Tensor;
  device: BenchDevice;
}

/**
 * Builds the zoo model (seeded init), then draws the HVP vectors, the input and the labels on the cpu whatever the
 * device, so a seed gives the same numbers on every device; writes them for the peer, then moves them to the device.
 * Parameters are moved without grad and marked again, so they stay leaves that `grad` and `hvp` differentiate.
 */
async function makeFixture(
  c: ModelChoice,
  batch: number,
  seed: number,
  device: BenchDevice,
  dir: string,
): Promise<Fixture> {
  const g = await loadBenchModel(c, seed);
  const t = trainable(g);
  const v = t.tensors.map((p) => randn(p.shape));
  const x = randn([batch, 3, c.size, c.size]);
  const classes = numClasses(c, g);
  const labels = randint(0, classes, [batch]);
  writeModelFiles(
    dir,
    c.id,
    c,
    g,
    x,
    new Map([['input', x], ['labels', labels], ...t.names.map((n, i) => [`v.${n}`, v[i]!] as const)]),
    device,
  );
  graphToDevice(g, device);
  const move = (u: Tensor): Tensor => {
    if (device === 'cpu') return u;
    const d = noGrad(() => u.to(null, device));
    u.dispose();
    return d;
  };
  const f: Fixture = {
    choice: c,
    g,
    list: trainable(g).tensors,
    v: v.map(move),
    x: move(x),
    labels: move(labels),
    device,
  };
  progress(
    `${specOf(c)} (zoo, interpreter): ${numParams(g).toLocaleString('en-US')} parameters in ${f.list.length} tensors, ` +
      `input [${f.x.shape.join(', ')}] ${useChannelsLast(g, f.x) ? 'channels-last' : 'NCHW'}, ${classes} classes`,
  );
  return f;
}

/** cuda queues kernels and returns: wait for them before reading the clock, or a run times its launches only. */
function settle(device: BenchDevice): void {
  if (device !== 'cpu') synchronize();
}

/** The work of one case; returns the check numbers when `check` is set (untimed run only). */
function step(f: Fixture, c: CaseId, check: boolean): Checks {
  const loss = (): Tensor => {
    const logits = trainLogits(f.g, f.x);
    const l = nn.crossEntropy(logits, f.labels);
    logits.dispose();
    return l;
  };
  switch (c) {
    case 'forward': {
      const logits = noGrad(() => trainLogits(f.g, f.x));
      return check ? { logits_norm: Math.sqrt(sumSquares([logits])) } : {};
    }
    case 'forward+backward': {
      const l = loss();
      const g = gradStrict(l, f.list);
      return check ? { loss: l.item(), grad_norm: Math.sqrt(sumSquares(g)) } : {};
    }
    case 'hvp': {
      const r = hvp(loss, f.list, f.v);
      return check ? { loss: r.loss.item(), hv_norm: Math.sqrt(sumSquares(r.hv)) } : {};
    }
  }
}

/** Per case: both sides' samples and checks, and tapir's worst live-tensor drift across runs. */
interface Result {
  /** Zoo spec, e.g. resnet18@128. */
  model: string;
  case: CaseId;
  tapirMs: number[];
  peerMs: number[];
  tapirChecks: Checks;
  peerChecks: Checks;
  liveDelta: number;
}

/** One timed tapir run; everything it creates is freed by the scope before the clock stops. */
function tapirRun(f: Fixture, c: CaseId): number {
  settle(f.device);
  const t0 = performance.now();
  scope(() => void step(f, c, false));
  settle(f.device);
  return performance.now() - t0;
}

interface Plan {
  models: ModelChoice[];
  cases: CaseId[];
  runs: number;
  warmup: number;
  batch: number;
  seed: number;
  threads: number;
  device: BenchDevice;
  dir: string;
  script: string;
  torch: string;
}

/**
 * Alternates tapir and torch run by run (starting side swapped every run), so load from other
 * processes on a shared machine lands on both sides alike instead of on whichever ran second.
 */
async function interleaved(plan: Plan): Promise<{ results: Result[]; torch: string }> {
  const peer = new PeerSession(plan.script, [
    '--serve',
    '--data',
    plan.dir,
    '--threads',
    String(plan.threads),
    '--device',
    plan.device,
  ]);
  const results: Result[] = [];
  try {
    for (const m of plan.models) {
      const id = m.id;
      const f = await makeFixture(m, plan.batch, plan.seed, plan.device, plan.dir);
      for (const c of plan.cases) {
        const before = liveTensors();
        const tapirChecks = scope(() => step(f, c, true));
        const { checks: peerChecks } = await peer.request<{ checks: Checks }>({ cmd: 'case', model: id, case: c });
        for (let i = 0; i < plan.warmup; i++) {
          tapirRun(f, c);
          await peer.request({ cmd: 'run' });
        }
        const r: Result = {
          model: specOf(m),
          case: c,
          tapirMs: [],
          peerMs: [],
          tapirChecks,
          peerChecks,
          liveDelta: liveTensors() - before,
        };
        for (let i = 0; i < plan.runs; i++) {
          const peerRun = async (): Promise<void> =>
            void r.peerMs.push((await peer.request<{ ms: number }>({ cmd: 'run' })).ms);
          if (i % 2 === 1) await peerRun();
          r.tapirMs.push(tapirRun(f, c));
          const d = liveTensors() - before;
          if (Math.abs(d) > Math.abs(r.liveDelta)) r.liveDelta = d;
          if (i % 2 === 0) await peerRun();
          progress(
            `  ${specOf(m)} ${c} run ${i + 1}/${plan.runs}: tapir ${r.tapirMs[i]!.toFixed(1)} ms, torch ${r.peerMs[i]!.toFixed(1)} ms (live tensors ${liveTensors()})`,
          );
        }
        results.push(r);
      }
      disposeFixture(f);
    }
  } finally {
    await peer.close();
  }
  return { results, torch: plan.torch };
}

/** tapir runs every case, then the peer runs every case in one process (the simplest schedule; fair only on an idle machine). */
async function sequential(plan: Plan): Promise<{ results: Result[]; torch: string }> {
  const results: Result[] = [];
  for (const m of plan.models) {
    const id = specOf(m);
    const f = await makeFixture(m, plan.batch, plan.seed, plan.device, plan.dir);
    for (const c of plan.cases) {
      const before = liveTensors();
      const tapirChecks = scope(() => step(f, c, true));
      let liveDelta = liveTensors() - before;
      const t = timeRuns(
        () => {
          scope(() => void step(f, c, false));
          settle(f.device);
        },
        {
          warmup: plan.warmup,
          runs: plan.runs,
          after: (i, ms) => {
            const d = liveTensors() - before;
            if (Math.abs(d) > Math.abs(liveDelta)) liveDelta = d;
            progress(`  tapir ${id} ${c} run ${i + 1}/${plan.runs}: ${ms.toFixed(1)} ms (live tensors ${before + d})`);
          },
        },
      );
      results.push({ model: id, case: c, tapirMs: t.samplesMs, peerMs: [], tapirChecks, peerChecks: {}, liveDelta });
    }
    disposeFixture(f);
  }
  const peer = runPeer(plan.script, [
    '--data',
    plan.dir,
    '--threads',
    String(plan.threads),
    '--device',
    plan.device,
    '--runs',
    String(plan.runs),
    '--warmup',
    String(plan.warmup),
    '--models',
    plan.models.map((m) => m.id).join(','),
    '--cases',
    plan.cases.join(','),
  ]) as PeerOut;
  if (peer.threads !== plan.threads)
    throw new PeerError(
      `PyTorch peer ran with ${peer.threads} threads, tapir with ${plan.threads}`,
      'pass the same thread count to both',
    );
  for (const r of results) {
    const p = peer.cases.find((q) => q.model === r.model && q.case === r.case);
    if (!p)
      throw new PeerError(
        `PyTorch peer returned no result for ${r.model} ${r.case}`,
        'check bench/peers/engine.py case names',
      );
    r.peerMs = p.samples_ms;
    r.peerChecks = p.checks;
  }
  return { results, torch: peer.torch };
}

/** Frees the vectors, input and labels, and the graph (its parameters and BN buffers). */
function disposeFixture(f: Fixture): void {
  for (const t of [...f.v, f.x, f.labels]) t.dispose();
  disposeGraph(f.g);
}

interface PeerOut {
  torch: string;
  threads: number;
  cases: { model: string; case: string; median_ms: number; samples_ms: number[]; checks: Checks }[];
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), [
    'runs',
    'warmup',
    'models',
    'cases',
    'batch',
    'seed',
    'schedule',
    'device',
  ]);
  const runs = intOption(flags, 'runs', 5, 1);
  const warmup = intOption(flags, 'warmup', 1, 1);
  const batch = intOption(flags, 'batch', 32, 1);
  const seed = intOption(flags, 'seed', 0, 0);
  const models = parseModels(option(flags, 'models'));
  const cases = listOption(flags, 'cases', CASES);
  const schedule = choiceOption(flags, 'schedule', ['interleaved', 'sequential']);
  const device = choiceOption(flags, 'device', DEVICES);
  if (device === 'cuda' && !cudaAvailable())
    throw new BenchOptionError(
      '--device cuda: the tapir addon sees no CUDA device (built against a CPU-only libtorch, or no GPU here)',
      'device',
      'on a machine with a GPU and a CUDA PyTorch for python3, run `make setup-cuda`, then rerun',
    );
  const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'peers', 'engine.py');
  if (!existsSync(script))
    throw new PeerError(
      `PyTorch peer script not found at ${script}`,
      'run from a tapir checkout built with `npx tsc -p .`',
    );
  const torchVersion = checkTorch(['torch', 'torchvision']); // fail before spending minutes on the tapir side; the peer needs no numpy
  if (!tcmallocPreloaded())
    progress(
      'warning: tcmalloc is not preloaded into this process, but is for the PyTorch peer; run `npm run bench:engine` or `make bench-engine` for a fair comparison',
    );
  const threads = getNumThreads();
  progress(
    `engine bench: ${models.map(specOf).join(', ')} (zoo graphs, interpreter) × ${cases.join(', ')}; batch ${batch}, float32 on ${device}, ${threads} threads, ` +
      `${warmup} warm-up + ${runs} timed runs, ${schedule}; torch ${torchVersion}`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'tapir-bench-engine-'));
  // Ctrl-C would skip `finally`: the fixtures are ~100 MB of weights, so remove them on the way out.
  process.once('SIGINT', () => {
    rmSync(dir, { recursive: true, force: true });
    process.exit(130);
  });
  try {
    const plan: Plan = { models, cases, runs, warmup, batch, seed, threads, device, dir, script, torch: torchVersion };
    const { results, torch } = schedule === 'sequential' ? await sequential(plan) : await interleaved(plan);
    report(results, { threads, runs, batch, torch, schedule, device });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(
  results: readonly Result[],
  o: { threads: number; runs: number; batch: number; torch: string; schedule: string; device: BenchDevice },
): void {
  const rows = results.map((r) => {
    const keys = Object.keys(r.tapirChecks);
    const parity = Math.max(...keys.map((k) => relDiff(r.tapirChecks[k]!, r.peerChecks[k] ?? Number.NaN)));
    const tapir = median(r.tapirMs);
    const peer = median(r.peerMs);
    return { r, tapir, peer, ratio: tapir / peer, parity };
  });
  console.log(
    renderTable(
      ['model', 'case', 'tapir ms', '±', 'torch ms', '±', 'ratio', 'live Δ', 'parity'],
      rows.map(({ r, tapir, peer, ratio, parity }) => [
        r.model,
        r.case,
        tapir,
        mad(r.tapirMs),
        peer,
        mad(r.peerMs),
        ratio,
        r.liveDelta,
        parity,
      ]),
    ),
  );
  console.log(
    `medians of ${o.runs} runs (${o.schedule}); ± = median absolute deviation; batch ${o.batch}; float32 on ${o.device}; ${o.threads} threads; torch ${o.torch}.`,
  );
  console.log(
    'live Δ: change in tapir live tensors across timed runs (0 = no leak); parity: worst relative difference of loss / norms between the two sides.',
  );
  const bad = rows.filter((q) => !(q.parity <= PARITY_TOL));
  for (const q of bad)
    console.log(
      `PARITY FAILURE: ${q.r.model} ${q.r.case}: tapir ${JSON.stringify(q.r.tapirChecks)} vs torch ${JSON.stringify(q.r.peerChecks)}`,
    );
  for (const q of rows.filter((x) => x.r.liveDelta !== 0))
    console.log(`LEAK: ${q.r.model} ${q.r.case}: live tensors changed by ${q.r.liveDelta}`);
  emitSummary({
    bench: 'engine',
    device: o.device,
    threads: o.threads,
    n: o.runs,
    batch: o.batch,
    cases: rows.map(({ r, tapir, peer, ratio, parity }) => ({
      model: r.model,
      case: r.case,
      tapir_ms: round(tapir, 1),
      peer_ms: round(peer, 1),
      ratio: round(ratio),
      live_delta: r.liveDelta,
      parity: Number(parity.toPrecision(2)),
    })),
    ratio: round(Math.max(...rows.map((q) => q.ratio))),
  });
  if (bad.length > 0 || rows.some((q) => q.r.liveDelta !== 0)) process.exitCode = 1;
}

main().catch((e: unknown) => {
  const fix = (e as { fix?: string }).fix;
  process.stderr.write(`bench engine: ${(e as Error).message}${fix ? `\n  fix: ${fix}` : ''}\n`);
  process.exitCode = 1;
});
