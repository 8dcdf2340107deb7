/**
 * Engine benchmark: ResNet-18 (CIFAR, 32 px) and ViT-Tiny (224 px) at batch 32 in float32 —
 * forward (no grad), forward+backward (cross-entropy, gradients of all parameters) and a Hessian-vector
 * product by double backward — timed in tapir and in PyTorch (bench/peers/engine.py) on the very same
 * weights, inputs, labels and vectors, with the same threads and allocator. By default the two sides
 * alternate run by run (`--schedule interleaved`); `--schedule sequential` runs all of tapir, then the peer.
 * `--device cuda` runs both sides on the GPU (the addon built against a CUDA PyTorch: `make setup-cuda`).
 *
 *   npm run bench:engine -- --runs 5 --models resnet18,vit_tiny --cases forward,forward+backward,hvp
 *
 * Options (or env BENCH_RUNS, BENCH_WARMUP, BENCH_MODELS, BENCH_CASES, BENCH_BATCH, BENCH_SEED, BENCH_SCHEDULE,
 * BENCH_DEVICE). Prints a table, then one JSON line:
 * {"bench":"engine","device","threads","n","cases":[…],"ratio": worst tapir/peer}.
 */
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  cudaAvailable,
  getNumThreads,
  gradStrict,
  hvp,
  liveTensors,
  manualSeed,
  nn,
  noGrad,
  randint,
  randn,
  scope,
  synchronize,
  type Device,
  type Tensor,
} from '../src/engine/index.js';
import { BenchOptionError, choiceOption, intOption, listOption, parseFlags } from './lib/args.js';
import { checkTorch, PeerError, PeerSession, runPeer, tcmallocPreloaded } from './lib/peer.js';
import { emitSummary, progress, renderTable, round } from './lib/report.js';
import { mad, median, relDiff } from './lib/stats.js';
import { timeRuns } from './lib/timer.js';
import { initParams, MODEL_IDS, MODELS, numParams, type BenchModel, type ModelId } from './models/index.js';

const CASES = ['forward', 'forward+backward', 'hvp'] as const;
type CaseId = (typeof CASES)[number];
const DEVICES = ['cpu', 'cuda'] as const satisfies readonly Device[];
type BenchDevice = (typeof DEVICES)[number];
/** Summary numbers both sides compute on the first (untimed) run, proving they ran the same model. */
type Checks = Record<string, number>;
/** Same libtorch and op order: here the sides agree bit for bit; 1e-3 leaves room for other builds yet flags a different model. */
const PARITY_TOL = 1e-3;

const sumSquares = (ts: readonly Tensor[]): number => ts.reduce((a, t) => a + t.square().sum().item(), 0);

/** One model's inputs, shared with the peer through files. */
interface Fixture {
  model: BenchModel;
  params: Map<string, Tensor>;
  list: Tensor[];
  v: Tensor[];
  x: Tensor;
  labels: Tensor;
  device: BenchDevice;
}

/** Draws on the cpu whatever the device, so a seed gives the same numbers on every device (see toDevice). */
function makeFixture(id: ModelId, batch: number, seed: number, device: BenchDevice): Fixture {
  const model = MODELS[id](device);
  manualSeed(seed);
  const params = initParams(model.specs);
  const list = model.specs.map((s) => params.get(s.name)!);
  const v = list.map((p) => randn(p.shape));
  const x = randn([batch, ...model.inputShape]);
  const labels = randint(0, model.numClasses, [batch]);
  progress(
    `${id}: ${numParams(model.specs).toLocaleString('en-US')} parameters in ${model.specs.length} tensors, input [${x.shape.join(', ')}]`,
  );
  return { model, params, list, v, x, labels, device };
}

/**
 * The fixture's tensors moved to its device (cpu: as they are); the cpu copies are freed. Parameters are moved
 * without grad and marked again, so they stay leaves that `grad` and `hvp` differentiate with respect to.
 */
function toDevice(f: Fixture): Fixture {
  if (f.device === 'cpu') return f;
  const move = (t: Tensor): Tensor => {
    const d = noGrad(() => t.to(null, f.device));
    if (t.requiresGrad) d.requiresGrad_(true);
    t.dispose();
    return d;
  };
  const list = f.list.map(move);
  const params = new Map(f.model.specs.map((s, i) => [s.name, list[i]!]));
  return { ...f, params, list, v: f.v.map(move), x: move(f.x), labels: move(f.labels) };
}

/** cuda queues kernels and returns: wait for them before reading the clock, or a run times its launches only. */
function settle(device: BenchDevice): void {
  if (device !== 'cpu') synchronize();
}

/** Writes params, then v, then x (float32, spec order) and the labels (int64) for the peer; returns `f`. */
function writeFixture(dir: string, id: ModelId, f: Fixture): Fixture {
  const fd = openSync(join(dir, `${id}.f32`), 'w');
  try {
    for (const t of [...f.list, ...f.v, f.x]) {
      const a = t.data<'float32'>();
      writeSync(fd, new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    }
  } finally {
    closeSync(fd);
  }
  const l = f.labels.data<'int64'>();
  writeFileSync(join(dir, `${id}.i64`), new Uint8Array(l.buffer, l.byteOffset, l.byteLength));
  const manifest = {
    model: id,
    input: f.x.shape,
    params: f.model.specs.map((s) => ({ name: s.name, shape: s.shape })),
  };
  writeFileSync(join(dir, `${id}.json`), JSON.stringify(manifest));
  return f;
}

/** The work of one case; returns the check numbers when `check` is set (untimed run only). */
function step(f: Fixture, c: CaseId, check: boolean): Checks {
  const loss = (ps: readonly Tensor[]): Tensor => {
    const byName = new Map(f.model.specs.map((s, i) => [s.name, ps[i]!]));
    const logits = f.model.forward(byName, f.x);
    const l = nn.crossEntropy(logits, f.labels);
    logits.dispose();
    return l;
  };
  switch (c) {
    case 'forward': {
      const logits = noGrad(() => f.model.forward(f.params, f.x));
      return check ? { logits_norm: Math.sqrt(sumSquares([logits])) } : {};
    }
    case 'forward+backward': {
      const l = loss(f.list);
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
  model: ModelId;
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
  models: ModelId[];
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
    for (const id of plan.models) {
      const f = toDevice(writeFixture(plan.dir, id, makeFixture(id, plan.batch, plan.seed, plan.device)));
      for (const c of plan.cases) {
        const before = liveTensors();
        const tapirChecks = scope(() => step(f, c, true));
        const { checks: peerChecks } = await peer.request<{ checks: Checks }>({ cmd: 'case', model: id, case: c });
        for (let i = 0; i < plan.warmup; i++) {
          tapirRun(f, c);
          await peer.request({ cmd: 'run' });
        }
        const r: Result = {
          model: id,
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
            `  ${id} ${c} run ${i + 1}/${plan.runs}: tapir ${r.tapirMs[i]!.toFixed(1)} ms, torch ${r.peerMs[i]!.toFixed(1)} ms (live tensors ${liveTensors()})`,
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
function sequential(plan: Plan): { results: Result[]; torch: string } {
  const results: Result[] = [];
  for (const id of plan.models) {
    const f = toDevice(writeFixture(plan.dir, id, makeFixture(id, plan.batch, plan.seed, plan.device)));
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
    plan.models.join(','),
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

function disposeFixture(f: Fixture): void {
  for (const t of [...f.list, ...f.v, f.x, f.labels]) t.dispose();
  f.model.dispose();
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
  const models = listOption(flags, 'models', MODEL_IDS);
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
  const torchVersion = checkTorch(['torch']); // fail before spending minutes on the tapir side; the peer needs no numpy
  if (!tcmallocPreloaded())
    progress(
      'warning: tcmalloc is not preloaded into this process, but is for the PyTorch peer; run `npm run bench:engine` or `make bench-engine` for a fair comparison',
    );
  const threads = getNumThreads();
  progress(
    `engine bench: ${models.join(', ')} × ${cases.join(', ')}; batch ${batch}, float32 on ${device}, ${threads} threads, ` +
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
    const { results, torch } = schedule === 'sequential' ? sequential(plan) : await interleaved(plan);
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
