/**
 * Memory-format benchmark: conv nets with NCHW and with channels-last (NHWC) activations, in tapir's interpreter
 * (`memoryFormat: 'nchw'` and the default rule, src/graph/memory-format.ts) and in PyTorch (bench/peers/
 * memory_format.py, model and input in each format), on the same torchvision MobileNetV2 and ResNet-18 (random init,
 * exported to ONNX by the peer), the same batch and threads, in this same run. Cases: `forward` (eval, no grad: the
 * interpreter's inference passes, BN statistics) and `train` (train-mode forward + the gradient of every parameter:
 * fine-tuning and the data-driven scores). tapir's logits in both formats must agree with each other and with
 * PyTorch's (1e-4 relative, else the bench fails).
 *
 *   npm run bench:memory-format -- [--runs 5] [--warmup 2] [--size 96] [--batch 32] [--threads N]
 * Prints a table, then one JSON line: `ratio` (tapir default / the faster PyTorch format, worst over models and
 * cases) and `speedup` (tapir NCHW / tapir default, the least over models and cases).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getNumThreads, grad, scope, setNumThreads, tensor, type Tensor } from '../src/index.js';
import { graph } from '../src/index.js';
import { intOption, parseFlags } from './lib/args.js';
import { checkTorch, runPeer } from './lib/peer.js';
import { emitSummary, progress, renderTable, round } from './lib/report.js';
import { timeRuns } from './lib/timer.js';

const MODELS = ['mobilenet_v2', 'resnet18'] as const;
const FORMATS = ['nchw', 'auto'] as const;
const PEER = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'peers', 'memory_format.py');

const flags = parseFlags(process.argv.slice(2), ['runs', 'warmup', 'size', 'batch', 'threads']);
const runs = intOption(flags, 'runs', 5, 1);
const warmup = intOption(flags, 'warmup', 2, 0);
const size = intOption(flags, 'size', 96, 32);
const batch = intOption(flags, 'batch', 32, 1);
setNumThreads(intOption(flags, 'threads', availableParallelism(), 1));
const threads = getNumThreads();

checkTorch(['torch', 'torchvision']);
const dir = mkdtempSync(join(tmpdir(), 'tapir-bench-mf-'));
try {
  const common = ['--dir', dir, '--size', String(size), '--batch', String(batch)];
  progress('exporting torchvision MobileNetV2 and ResNet-18 (PyTorch peer)');
  runPeer(PEER, ['prepare', ...common]);
  const raw = readFileSync(join(dir, 'x.f32'));
  const x = tensor(new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4), [batch, 3, size, size]);

  const times: Record<string, number> = {};
  const sums: Record<string, number> = {};
  for (const m of MODELS) {
    const g = await graph.importOnnx(join(dir, `${m}.onnx`));
    const params = graph.trainableParams(g).map((p) => p.tensor);
    // The logits first, in both formats: train-mode passes update the BN running statistics.
    for (const memoryFormat of FORMATS)
      sums[`${m}/${memoryFormat}`] = scope(() =>
        graph.forward(g, x, { mode: 'eval', memoryFormat }).outputs[0]!.to('float64').abs().sum().item(),
      );
    for (const f of FORMATS) {
      progress(`tapir: ${m}, ${f}`);
      const memoryFormat = f;
      const fwd = () => scope(() => void graph.forward(g, x, { mode: 'eval', memoryFormat }));
      times[`${m}/forward/${f}`] = timeRuns(fwd, { warmup, runs }).medianMs;
      for (const p of params) p.requiresGrad_(true);
      const train = () =>
        scope(() => {
          const out: Tensor = graph.forward(g, x, { mode: 'train', memoryFormat }).outputs[0]!;
          grad(out.square().mean(), params);
        });
      times[`${m}/train/${f}`] = timeRuns(train, { warmup, runs }).medianMs;
      for (const p of params) p.requiresGrad_(false);
    }
    graph.disposeGraph(g);
  }
  progress('PyTorch peer');
  const peer = runPeer(PEER, ['run', ...common, '--threads', String(threads), '--runs', String(runs)]) as {
    times_ms: Record<string, number>;
    logit_sums: Record<string, number>;
  };

  const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-6);
  const rows: (string | number)[][] = [];
  const cases: Record<string, unknown>[] = [];
  for (const m of MODELS) {
    const ref = peer.logit_sums[`${m}/nchw`]!;
    for (const f of FORMATS)
      if (!(rel(sums[`${m}/${f}`]!, ref) <= 1e-4))
        throw new Error(`PARITY FAILURE: ${m} logits (${f}) Σ|logit| ${sums[`${m}/${f}`]} vs PyTorch ${ref}`);
    for (const c of ['forward', 'train']) {
      const t = (f: string) => times[`${m}/${c}/${f}`]!;
      const p = (f: string) => peer.times_ms[`${m}/${c}/${f}`]!;
      const peerBest = Math.min(p('nchw'), p('channels-last'));
      rows.push([m, c, round(t('nchw'), 1), round(t('auto'), 1), round(p('nchw'), 1), round(p('channels-last'), 1)]);
      cases.push({
        model: m,
        case: c,
        tapir_nchw_ms: round(t('nchw'), 1),
        tapir_ms: round(t('auto'), 1),
        peer_nchw_ms: round(p('nchw'), 1),
        peer_cl_ms: round(p('channels-last'), 1),
        speedup: round(t('nchw') / t('auto')),
        ratio: round(t('auto') / peerBest),
      });
    }
  }
  console.log(
    renderTable(['model', 'case', 'tapir NCHW', 'tapir default', 'PyTorch NCHW', 'PyTorch channels-last'], rows),
  );
  emitSummary({
    bench: 'memory-format',
    size,
    batch,
    threads,
    runs,
    cases,
    ratio: Math.max(...cases.map((c) => c.ratio as number)),
    speedup: Math.min(...cases.map((c) => c.speedup as number)),
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
