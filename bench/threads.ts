/**
 * Threads benchmark: how the thread count and the way idle threads wait change tapir's speed on an idle machine and
 * beside one busy process (another tapir, a build, a browser), to choose the engine's defaults.
 *
 * Each setting runs in its own process (OpenMP reads its wait policy once, when libgomp loads): nsfwjs MobileNetV2 at
 * 96 px, batch 32, three workloads: `forward` (the libtorch interpreter, eval mode, no grad), `train` (forward in train
 * mode + the gradient of every trainable parameter, as in fine-tuning and scoring) and `ort` (onnxruntime on the
 * model's ONNX export, the default inference runtime). Settings: threads 1 and every core, each with the engine's
 * wait policy `TAPIR_WAIT=spin` (libgomp's and onnxruntime's own default: spin a while, then sleep) and `passive`
 * (sleep at once; src/engine/wait.ts), and for libtorch also `GOMP_SPINCOUNT=10000` (spin briefly). Every setting runs
 * idle and then with one busy-looping process beside it; median wall time and the process's CPU time per batch. The
 * engine's own default (no environment set: every core, `TAPIR_WAIT=auto`, which looks at the load when the process
 * starts) runs as the setting `default`.
 *
 *   npm run bench:threads -- [--runs 15] [--warmup 3] [--batch 32] [--size 96] [--workloads forward,train,ort]
 * Prints a table, then one JSON line: per workload, the default's idle and loaded times against the best setting's
 * (`ratio` = the default's idle time / the best idle time, worst over workloads; `ratio_loaded` the same under load),
 * and `collapse` (default's loaded time / its idle time, worst over workloads).
 */
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { grad, randn, scope, type Tensor } from '../src/index.js';
import { graph } from '../src/index.js';
import { intOption, listOption, option, parseFlags } from './lib/args.js';
import { busy } from './lib/busy.js';
import { emitSummary, progress, renderTable, round } from './lib/report.js';
import { median } from './lib/stats.js';

const WORKLOADS = ['forward', 'train', 'ort'] as const;
type Workload = (typeof WORKLOADS)[number];

interface Setting {
  readonly name: string;
  readonly threads: number;
  /** Environment for the child (on top of the parent's, with the OpenMP variables removed). */
  readonly env: Record<string, string>;
}

const flags = parseFlags(process.argv.slice(2), ['runs', 'warmup', 'batch', 'size', 'workloads', 'child', 'threads']);
const runs = intOption(flags, 'runs', 15, 1);
const warmup = intOption(flags, 'warmup', 3, 0);
const batch = intOption(flags, 'batch', 32, 1);
const size = intOption(flags, 'size', 96, 32);

if (option(flags, 'child') !== undefined) await child(option(flags, 'child') as Workload);
else await parent();

/** One setting, one workload, in this process: prints {wall, cpu} per timed batch (ms) as one JSON line. */
async function child(w: Workload): Promise<void> {
  const threads = option(flags, 'threads');
  if (threads !== undefined) (await import('../src/index.js')).setNumThreads(Number(threads));
  const g = await graph.loadModel(`mobilenet_v2@${size}`);
  const x = randn([batch, 3, size, size]);
  let step: () => Promise<void>;
  if (w === 'ort') {
    const runner = await graph.openRunner(g, { runtime: 'ort', outputs: g.outputs });
    if (runner.runtime !== 'ort') throw new Error(`onnxruntime refused the model: ${runner.fallback}`);
    const input = x.data<'float32'>();
    step = async () => void (await runner.runArray(input, x.shape));
  } else if (w === 'forward') {
    step = async () => scope(() => void graph.forward(g, x, { mode: 'eval' }));
  } else {
    const params = graph.trainableParams(g).map((p) => p.tensor.requiresGrad_(true));
    step = async () =>
      scope(() => {
        const [out] = graph.forward(g, x, { mode: 'train' }).outputs as Tensor[];
        grad(out!.square().mean(), params);
      });
  }
  for (let i = 0; i < warmup; i++) await step();
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await step();
    wall.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  process.stdout.write(JSON.stringify({ wall: median(wall), cpu: median(cpu) }) + '\n');
}

function settings(w: Workload): Setting[] {
  const cores = availableParallelism();
  const out: Setting[] = [{ name: 'default', threads: 0, env: {} }];
  for (const t of [...new Set([1, cores])]) {
    out.push({ name: `${t}t spin`, threads: t, env: { TAPIR_WAIT: 'spin' } });
    out.push({ name: `${t}t passive`, threads: t, env: { TAPIR_WAIT: 'passive' } });
    if (w !== 'ort') out.push({ name: `${t}t spin-10k`, threads: t, env: { GOMP_SPINCOUNT: '10000' } });
  }
  return out;
}

async function runChild(w: Workload, s: Setting): Promise<{ wall: number; cpu: number }> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['OMP_WAIT_POLICY', 'GOMP_SPINCOUNT', 'OMP_NUM_THREADS', 'TAPIR_THREADS', 'TAPIR_WAIT'])
    delete env[k];
  for (const [k, v] of Object.entries(s.env)) env[k] = v;
  const args = [process.argv[1]!, '--child', w, '--runs', String(runs), '--warmup', String(warmup)];
  args.push('--batch', String(batch), '--size', String(size));
  if (s.threads > 0) args.push('--threads', String(s.threads));
  const p = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code: number = await new Promise((r) => p.on('close', r));
  if (code !== 0) throw new Error(`child ${w} / ${s.name} exited with ${code}`);
  return JSON.parse(out.trim().split('\n').pop()!);
}

async function parent(): Promise<void> {
  const workloads = listOption(flags, 'workloads', WORKLOADS);
  const rows: (string | number)[][] = [];
  const summary: Record<string, unknown>[] = [];
  for (const w of workloads) {
    const res = new Map<string, { idle: number; loaded: number; idleCpu: number; loadedCpu: number }>();
    for (const s of settings(w)) {
      progress(`${w}: ${s.name}`);
      const idle = await runChild(w, s);
      const hog = await busy();
      let loaded;
      try {
        loaded = await runChild(w, s);
      } finally {
        hog.kill();
      }
      res.set(s.name, { idle: idle.wall, loaded: loaded.wall, idleCpu: idle.cpu, loadedCpu: loaded.cpu });
      rows.push([w, s.name, round(idle.wall, 1), round(idle.cpu, 1), round(loaded.wall, 1), round(loaded.cpu, 1)]);
    }
    const d = res.get('default')!;
    const bestIdle = Math.min(...[...res.values()].map((r) => r.idle));
    const bestLoaded = Math.min(...[...res.values()].map((r) => r.loaded));
    summary.push({
      workload: w,
      default_idle_ms: round(d.idle, 1),
      default_loaded_ms: round(d.loaded, 1),
      best_idle_ms: round(bestIdle, 1),
      best_idle: [...res].find(([, r]) => r.idle === bestIdle)![0],
      best_loaded_ms: round(bestLoaded, 1),
      best_loaded: [...res].find(([, r]) => r.loaded === bestLoaded)![0],
      ratio: round(d.idle / bestIdle),
      ratio_loaded: round(d.loaded / bestLoaded),
      collapse: round(d.loaded / d.idle),
    });
  }
  console.log(renderTable(['workload', 'setting', 'idle ms', 'idle cpu ms', 'loaded ms', 'loaded cpu ms'], rows));
  const worst = (k: string) => Math.max(...summary.map((s) => s[k] as number));
  emitSummary({
    bench: 'threads',
    model: `mobilenet_v2@${size}`,
    batch,
    runs,
    cores: availableParallelism(),
    workloads: summary,
    ratio: worst('ratio'),
    ratio_loaded: worst('ratio_loaded'),
    collapse: worst('collapse'),
  });
}
