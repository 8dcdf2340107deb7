/**
 * Reconstruction benchmark: SparseGPT-style layer-wise reconstruction (src/prune/reconstruct, target dense-weights,
 * the same kept count in every layer) over every prunable layer of a torchvision MobileNetV2 (random init, exported
 * to ONNX by the PyTorch peer) at 96 px, 128 calibration images in batches of 32. Times tapir's sweep and the PyTorch
 * implementation of the same algorithm (bench/peers/reconstruct.py: a torch.fx walk holding only live values, the
 * same solver), with the same weights, images and threads, in this same run, and checks that the two masks agree.
 *
 *   npm run bench:reconstruct -- [--runs 1] [--n 128] [--size 96] [--sparsity 0.5] [--block-size 32]
 * Prints a table, then one JSON line: `ratio` (tapir sweep / PyTorch sweep, goal <= 1), `over_forward` (tapir sweep /
 * one plain forward over the calibration images), `mask_agreement` (share of weights with the same keep bit).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getNumThreads, noGrad, scope, setNumThreads, tensor } from '../src/engine/index.js';
import { disposeGraph, forward, importOnnx, prunableParams } from '../src/graph/index.js';
import { layersOf, prune, type CalibBatch } from '../src/prune/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const PEER = resolve(here, '..', '..', 'bench', 'peers', 'reconstruct.py');

function flag(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1]
    ? process.argv[i + 1]!
    : (process.env[`BENCH_${name.toUpperCase().replace(/-/g, '_')}`] ?? dflt);
}
const runs = Number(flag('runs', '1'));
const n = Number(flag('n', '128'));
const size = Number(flag('size', '96'));
const batch = Number(flag('batch', '32'));
const sparsity = Number(flag('sparsity', '0.5'));
const blockSize = Number(flag('block-size', '32'));
const damping = Number(flag('damping', '0.01'));
setNumThreads(Number(flag('threads', String(cpus().length))));
const threads = getNumThreads();

function peer(mode: 'prepare' | 'run', dir: string): Record<string, unknown> {
  const args = [
    PEER,
    mode,
    '--dir',
    dir,
    '--size',
    String(size),
    '--n',
    String(n),
    '--batch',
    String(batch),
    '--threads',
    String(threads),
    '--sparsity',
    String(sparsity),
    '--block-size',
    String(blockSize),
    '--damping',
    String(damping),
    '--runs',
    String(runs),
  ];
  const r = spawnSync('/usr/bin/python3', args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, OMP_NUM_THREADS: String(threads) },
  });
  if (r.status !== 0)
    throw new Error(
      `peer ${mode} failed (exit ${r.status}); is python3-torch installed? (/usr/bin/python3 -c 'import torch')`,
    );
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const dir = mkdtempSync(join(tmpdir(), 'tapir-bench-reconstruct-'));
try {
  process.stderr.write(`exporting torchvision MobileNetV2 at ${size} px (PyTorch peer)…\n`);
  peer('prepare', dir);
  const raw = (f: string) => {
    const b = readFileSync(join(dir, f));
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  };
  const all = tensor(new Float32Array(raw('x.f32')), [n, 3, size, size]);
  const labels = tensor(new BigInt64Array(raw('y.i64')), [n]);
  const batches: CalibBatch[] = [];
  for (let s = 0; s < n; s += batch)
    batches.push({
      x: all.narrow(0, s, Math.min(batch, n - s)).contiguous(),
      y: labels.narrow(0, s, Math.min(batch, n - s)).contiguous(),
    });
  const dense = await importOnnx(join(dir, 'mnv2.onnx'));
  const params = prunableParams(dense).map((p) => p.name);
  // One plain forward over the calibration images (warm-up first): the unit of `over_forward`.
  const fwd = () => {
    const t0 = performance.now();
    for (const b of batches)
      scope(() => {
        noGrad(() => forward(dense, b.x, { mode: 'eval' }));
      });
    return performance.now() - t0;
  };
  fwd();
  const forwardMs = median([fwd(), fwd(), fwd()]);
  const sweeps: number[] = [];
  const sweepPhases: { ms: number; phases: Record<string, number> }[] = [];
  let masks: number[] = [];
  let layerNames: string[] = [];
  for (let r = 0; r < runs; r++) {
    const g = await importOnnx(join(dir, 'mnv2.onnx'));
    const rep = prune(g, {
      score: 'sparsegpt',
      sparsity,
      allocation: { kind: 'layerwise' },
      batches,
      params,
      dense,
      reconstruct: { target: 'dense-weights', blockSize, damping },
    });
    sweeps.push(rep.timings.reconstruct!);
    const phases = (rep.reconstruction as { timings: Record<string, number> }).timings;
    sweepPhases.push({ ms: rep.timings.reconstruct!, phases });
    process.stderr.write(
      `tapir sweep: ${rep.timings.reconstruct!.toFixed(0)} ms (${Object.entries(phases)
        .map(([k, v]) => `${k} ${v.toFixed(0)}`)
        .join(', ')} ms)\n`,
    );
    layerNames = layersOf(g, params, 'bench').map((l) => l.param);
    masks = layerNames.flatMap((p) => g.masks.get(p)!.toArray() as number[]);
    disposeGraph(g);
  }
  const tapirMs = median(sweeps);
  // The phases of the run closest to the median time (what the table compares with the peer's median run).
  const tapirPhases = sweepPhases.reduce((a, b) =>
    Math.abs(b.ms - tapirMs) < Math.abs(a.ms - tapirMs) ? b : a,
  ).phases;
  const p = peer('run', dir) as {
    sweep_ms: number;
    phases: Record<string, number>;
    forward_ms: number;
    layers: number;
    sizes: number[];
    errors: number[];
    threads: number;
  };
  const peerMasks = new Uint8Array(raw('peer_masks.u8'));
  if (p.layers !== layerNames.length || peerMasks.length !== masks.length)
    throw new Error(
      `peer pruned ${p.layers} layers / ${peerMasks.length} weights, tapir ${layerNames.length} / ${masks.length}: not the same prunable set`,
    );
  let same = 0;
  masks.forEach((v, i) => {
    if ((v !== 0 ? 1 : 0) === peerMasks[i]) same++;
  });
  const agreement = same / masks.length;
  disposeGraph(dense);
  for (const b of batches) {
    b.x.dispose();
    b.y.dispose();
  }
  all.dispose();
  labels.dispose();
  const w = [22, 12, 12, 8];
  const line = (cells: (string | number)[]) => cells.map((v, i) => String(v).padStart(w[i]!)).join('  ');
  console.log(line(['', 'tapir ms', 'torch ms', 'ratio']));
  console.log(
    line(['sweep (52 layers)', tapirMs.toFixed(0), p.sweep_ms.toFixed(0), (tapirMs / p.sweep_ms).toFixed(2)]),
  );
  // Where each side's sweep time goes (forward: both networks' walks; error: the per-layer errors against dense).
  for (const k of ['forward', 'covariance', 'solve', 'error'])
    console.log(
      line([
        `  ${k}`,
        (tapirPhases[k] ?? 0).toFixed(0),
        (p.phases[k] ?? 0).toFixed(0),
        ((tapirPhases[k] ?? 0) / (p.phases[k] || 1)).toFixed(2),
      ]),
    );
  console.log(
    line([
      'one forward (128 img)',
      forwardMs.toFixed(0),
      p.forward_ms.toFixed(0),
      (forwardMs / p.forward_ms).toFixed(2),
    ]),
  );
  console.log(
    `masks agree on ${(100 * agreement).toFixed(3)} % of ${masks.length} weights; ${layerNames.length} layers`,
  );
  console.log(
    JSON.stringify({
      bench: 'reconstruct',
      model: 'torchvision mobilenet_v2 (random init, ONNX)',
      size,
      n,
      batch,
      sparsity,
      blockSize,
      damping,
      target: 'dense-weights',
      allocation: 'layerwise',
      threads,
      runs,
      layers: layerNames.length,
      weights: masks.length,
      tapir_ms: Math.round(tapirMs),
      peer_ms: Math.round(p.sweep_ms),
      ratio: +(tapirMs / p.sweep_ms).toFixed(3),
      forward_ms: Math.round(forwardMs),
      over_forward: +(tapirMs / forwardMs).toFixed(1),
      peer_over_forward: +(p.sweep_ms / p.forward_ms).toFixed(1),
      mask_agreement: +agreement.toFixed(5),
    }),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
