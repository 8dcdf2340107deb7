/**
 * Scoring benchmark: torchvision MobileNetV2 (random init, exported to ONNX by the PyTorch peer,
 * BN kept), 96 px, 128 calibration images in batches of 32, mse loss over 10 classes. Times in tapir and in
 * PyTorch (bench/peers/score.py, same weights, images and threads, in this same run):
 *   fwd_bwd      one plain forward+backward over the 128 images (gradients of every parameter)
 *   fisher       empirical-Fisher diagonal, per-sample gradients in batch
 *   ggn          exact GGN diagonal (10 backward passes per batch)
 *   hutchinson   Hessian diagonal, 8 Rademacher probes (one HVP per probe and batch)
 *   block_hessian OBS score with damped Fisher blocks of 64
 * and checks that both sides computed the same numbers (sum of each diagonal / score; hutchinson uses different
 * random probes on each side, so only its order of magnitude is compared).
 *
 *   node dist/bench/score.js [--runs 1] [--n 128] [--size 96] [--batch 32] [--cases fisher,ggn,...]
 * Prints a table, then one JSON line with `ratio` (worst tapir/PyTorch) and `fisher_over_backward`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getNumThreads, gradStrict, setNumThreads, scope, tensor, type Tensor } from '../src/engine/index.js';
import { disposeGraph, importOnnx, prunableParams, trainableParams, type Graph } from '../src/graph/index.js';
import { ESTIMATORS, lossFn, SCORES, type CalibBatch } from '../src/prune/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const PEER = resolve(here, '..', '..', 'bench', 'peers', 'score.py');
const CASES = ['fwd_bwd', 'fisher', 'ggn', 'hutchinson', 'block_hessian'] as const;
type CaseId = (typeof CASES)[number];

function flag(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : (process.env[`BENCH_${name.toUpperCase()}`] ?? dflt);
}
const runs = Number(flag('runs', '1'));
const n = Number(flag('n', '128'));
const size = Number(flag('size', '96'));
const batch = Number(flag('batch', '32'));
const probes = Number(flag('probes', '8'));
const blockSize = Number(flag('block-size', '64'));
const cases = flag('cases', CASES.join(',')).split(',') as CaseId[];
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
    '--probes',
    String(probes),
    '--block-size',
    String(blockSize),
    '--runs',
    String(runs),
    '--cases',
    cases.join(','),
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

const sumOf = (m: ReadonlyMap<string, Tensor>): number =>
  scope(() => [...m.values()].reduce((a, t) => a + t.to('float64').sum().item(), 0));

function tapirCase(c: CaseId, g: Graph, batches: CalibBatch[]): number | null {
  const o = { loss: 'mse' as const, seed: 0 };
  switch (c) {
    case 'fwd_bwd': {
      const ps = trainableParams(g).map((p) => p.tensor);
      for (const b of batches)
        scope(() => {
          gradStrict(lossFn(g, b, { loss: 'mse' }).loss.mul(b.x.shape[0]! / n), ps);
        });
      return null;
    }
    case 'fisher':
    case 'ggn':
      return scope(() => sumOf(ESTIMATORS[c].diag(g, batches, o).diag));
    case 'hutchinson':
      return scope(() => sumOf(ESTIMATORS.hutchinson.diag(g, batches, { ...o, probes }).diag));
    case 'block_hessian':
      return scope(() =>
        sumOf(
          SCORES['block-hessian'].score({
            graph: g,
            batches,
            params: prunableParams(g).map((p) => p.name),
            loss: 'mse',
            seed: 0,
            block: { blockSize },
          }).scores,
        ),
      );
  }
}

const dir = mkdtempSync(join(tmpdir(), 'tapir-bench-score-'));
try {
  process.stderr.write(`exporting torchvision MobileNetV2 at ${size} px (PyTorch peer)…\n`);
  peer('prepare', dir);
  const g = await importOnnx(join(dir, 'mnv2.onnx'));
  const raw = (f: string) => {
    const b = readFileSync(join(dir, f));
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  };
  const x = new Float32Array(raw('x.f32'));
  const y = new BigInt64Array(raw('y.i64'));
  const all = tensor(x, [n, 3, size, size]);
  const labels = tensor(y, [n]);
  const batches: CalibBatch[] = [];
  for (let s = 0; s < n; s += batch)
    batches.push({
      x: all.narrow(0, s, Math.min(batch, n - s)).contiguous(),
      y: labels.narrow(0, s, Math.min(batch, n - s)).contiguous(),
    });
  tapirCase('fwd_bwd', g, batches.slice(0, 1)); // warm-up, untimed
  const tapirMs: Record<string, number> = {};
  const tapirChecks: Record<string, number> = {};
  for (const c of cases) {
    const ts: number[] = [];
    let chk: number | null = null;
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      chk = tapirCase(c, g, batches);
      ts.push(performance.now() - t0);
    }
    tapirMs[c] = ts.sort((a, b) => a - b)[Math.floor(ts.length / 2)]!;
    if (chk !== null) tapirChecks[c] = chk;
    process.stderr.write(`tapir ${c}: ${tapirMs[c]!.toFixed(0)} ms\n`);
  }
  const prunable = prunableParams(g).reduce((a, p) => a + p.tensor.numel, 0);
  disposeGraph(g);
  for (const b of batches) {
    b.x.dispose();
    b.y.dispose();
  }
  all.dispose();
  labels.dispose();
  const p = peer('run', dir) as {
    times_ms: Record<string, number>;
    checks: Record<string, number>;
    prunable: number;
    threads: number;
  };
  if (p.prunable !== prunable)
    throw new Error(`peer scores ${p.prunable} weights, tapir ${prunable}: not the same prunable set`);
  const rows = cases.map((c) => {
    const rel =
      tapirChecks[c] !== undefined && p.checks[c] !== undefined
        ? Math.abs(tapirChecks[c]! - p.checks[c]!) / Math.abs(p.checks[c]!)
        : null;
    return {
      case: c,
      tapir_ms: Math.round(tapirMs[c]!),
      peer_ms: Math.round(p.times_ms[c]!),
      ratio: tapirMs[c]! / p.times_ms[c]!,
      check_rel_diff: rel,
    };
  });
  const w = [14, 10, 10, 7, 14];
  const line = (cells: (string | number)[]) => cells.map((v, i) => String(v).padStart(w[i]!)).join('  ');
  console.log(line(['case', 'tapir ms', 'torch ms', 'ratio', 'sum rel diff']));
  for (const r of rows)
    console.log(
      line([
        r.case,
        r.tapir_ms,
        r.peer_ms,
        r.ratio.toFixed(2),
        r.check_rel_diff === null ? '-' : r.check_rel_diff.toExponential(1),
      ]),
    );
  const fob = tapirMs.fisher !== undefined && tapirMs.fwd_bwd !== undefined ? tapirMs.fisher / tapirMs.fwd_bwd : null;
  const peerFob =
    p.times_ms.fisher !== undefined && p.times_ms.fwd_bwd !== undefined ? p.times_ms.fisher / p.times_ms.fwd_bwd : null;
  console.log(
    JSON.stringify({
      bench: 'score',
      model: 'torchvision mobilenet_v2 (random init, ONNX)',
      size,
      n,
      batch,
      probes,
      blockSize,
      threads,
      runs,
      prunable,
      tapir_ms: tapirMs,
      peer_ms: p.times_ms,
      cases: rows,
      ratio: Math.max(...rows.filter((r) => r.case !== 'fwd_bwd').map((r) => r.ratio)),
      fisher_over_backward: fob,
      peer_fisher_over_backward: peerFob,
    }),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
