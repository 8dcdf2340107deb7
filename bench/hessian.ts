/**
 * Hessian diagnostics speed: Hutchinson trace (same Rademacher probes) and the top eigenvalue (Lanczos with full
 * re-orthogonalisation, same start vector and steps) through src/analysis vs PyTorch 1.13 (bench/peers/hessian.py)
 * on the same model, weights and batch: the zoo graph run through the interpreter (default `resnet18@128`, torchvision
 * layout, batch 16, train-mode BN as in bench/engine.ts; `vit_tiny@224` with `--model vit_tiny`), and on the PyTorch
 * side torchvision's resnet18 / a timm-layout ViT loaded with the same weights by name. Both sides report their trace samples and top eigenvalue; they must agree (1e-3) or the bench
 * fails. Prints a table, then one JSON line: {"bench":"hessian", tapir_ms, peer_ms, ratio, …} (ratio = tapir/peer
 * of trace + eigenvalue time, medians).
 *
 *   node dist/bench/hessian.js [--model resnet18@128] [--batch 16] [--probes 4] [--steps 6] [--runs 2] [--seed 0]
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  enableGrad,
  getNumThreads,
  gradGraph,
  hvp,
  nn,
  randint,
  randn,
  type GradGraph,
  type Tensor,
} from '../src/engine/index.js';
import {
  flatten,
  hutchinsonTrace,
  makeLayout,
  topEigen,
  unflatten,
  type LinearOperator,
} from '../src/analysis/index.js';
import { BenchOptionError, intOption, option, parseFlags } from './lib/args.js';
import { checkTorch, PeerError, runPeer, tcmallocPreloaded } from './lib/peer.js';
import { emitSummary, progress, renderTable, round } from './lib/report.js';
import { median, relDiff } from './lib/stats.js';
import {
  loadBenchModel,
  numClasses,
  numParams,
  parseModels,
  specOf,
  trainable,
  trainLogits,
  writeModelFiles,
} from './lib/zoo.js';

const PARITY_TOL = 1e-3;

interface PeerResult {
  torch: string;
  threads: number;
  trace_ms: number[];
  eig_ms: number[];
  trace: number;
  samples: number[];
  top: number;
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), ['model', 'batch', 'probes', 'steps', 'runs', 'seed']);
  const choices = parseModels(option(flags, 'model') ?? 'resnet18', 'model');
  if (choices.length !== 1)
    throw new BenchOptionError('--model takes one model', 'model', 'e.g. --model resnet18@128 or --model vit_tiny');
  const choice = choices[0]!;
  const id = choice.id;
  const batch = intOption(flags, 'batch', 16, 1);
  const probes = intOption(flags, 'probes', 4, 1);
  const steps = intOption(flags, 'steps', 6, 2);
  const runs = intOption(flags, 'runs', 2, 1);
  const seed = intOption(flags, 'seed', 0, 0);
  const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'peers', 'hessian.py');
  if (!existsSync(script))
    throw new PeerError(
      `PyTorch peer script not found at ${script}`,
      'run from a tapir checkout built with `npx tsc -p .`',
    );
  const torchVersion = checkTorch(['torch', 'numpy', 'torchvision']);
  if (!tcmallocPreloaded())
    progress(
      'warning: tcmalloc is not preloaded here but is for the peer; run with LD_PRELOAD=libtcmalloc_minimal.so.4',
    );
  const threads = getNumThreads();

  const g = await loadBenchModel(choice, seed);
  const { names, tensors: list } = trainable(g);
  const x = randn([batch, 3, choice.size, choice.size]);
  const classes = numClasses(choice, g);
  const labels = randint(0, classes, [batch]);
  progress(
    `hessian bench: ${specOf(choice)} (zoo graph, interpreter, train mode), ${numParams(g).toLocaleString('en-US')} parameters, batch ${batch}, ${probes} probes, ${steps} Lanczos steps, ${runs} runs, ${threads} threads; torch ${torchVersion}`,
  );

  const dir = mkdtempSync(join(tmpdir(), 'tapir-bench-hessian-'));
  try {
    writeModelFiles(
      dir,
      id,
      choice,
      g,
      x,
      new Map([
        ['input', x],
        ['labels', labels],
      ]),
    );

    // The peer runs first, so a broken peer fails before minutes of tapir work.
    const peer = runPeer(script, [
      '--data',
      dir,
      '--model',
      id,
      '--probes',
      String(probes),
      '--steps',
      String(steps),
      '--seed',
      String(seed),
      '--runs',
      String(runs),
      '--threads',
      String(threads),
    ]) as PeerResult;

    const layout = makeLayout(names.map((name, i) => ({ name, shape: list[i]!.shape })));
    // As src/analysis's HessianOperator: a matvec is a full HVP, except inside a session (trace, Lanczos), where the
    // first-order graph is built once and each matvec is one double backward through it.
    const loss = () => nn.crossEntropy(trainLogits(g, x), labels);
    let kept: GradGraph | null = null;
    const op: LinearOperator = {
      dim: layout.dim,
      selfAdjoint: true,
      dtype: 'float32',
      matvec: (v: Tensor) => {
        const vs = unflatten(layout, v);
        const hv = kept ? kept.hv(vs) : enableGrad(() => hvp(loss, list, vs).hv);
        const out = flatten(layout, hv);
        for (const t of [...vs, ...hv]) t.dispose();
        return out;
      },
      session: <T>(fn: () => T): T => {
        kept = gradGraph(loss, list);
        try {
          return fn();
        } finally {
          kept.dispose();
          kept = null;
        }
      },
    };
    const warm = randn([layout.dim]);
    op.matvec(warm).dispose();
    warm.dispose();
    const traceMs: number[] = [];
    const eigMs: number[] = [];
    let trace = hutchinsonTrace(op, { probes: 1, seed });
    let top = 0;
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      trace = hutchinsonTrace(op, { probes, seed });
      const t1 = performance.now();
      const e = topEigen(op, { k: 1, steps, seed });
      const t2 = performance.now();
      e.vectors.dispose();
      top = e.values[0]!;
      traceMs.push(t1 - t0);
      eigMs.push(t2 - t1);
      progress(
        `  tapir run ${r + 1}/${runs}: trace ${(t1 - t0).toFixed(0)} ms, top eigenvalue ${(t2 - t1).toFixed(0)} ms`,
      );
    }

    const traceDiff = relDiff(trace.estimate, peer.trace);
    const topDiff = relDiff(top, peer.top);
    const sampleDiff = Math.max(...trace.samples.map((s, i) => relDiff(s, peer.samples[i]!)));
    const rows = [
      [
        'trace (Hutchinson)',
        round(median(traceMs), 0),
        round(median(peer.trace_ms), 0),
        round(median(traceMs) / median(peer.trace_ms)),
        `${trace.estimate.toPrecision(6)} vs ${peer.trace.toPrecision(6)}`,
      ],
      [
        'top eigenvalue (Lanczos)',
        round(median(eigMs), 0),
        round(median(peer.eig_ms), 0),
        round(median(eigMs) / median(peer.eig_ms)),
        `${top.toPrecision(6)} vs ${peer.top.toPrecision(6)}`,
      ],
    ];
    process.stdout.write(
      renderTable(['measure', 'tapir ms', 'torch ms', 'ratio', 'value tapir vs torch'], rows) + '\n',
    );
    if (!(sampleDiff <= PARITY_TOL && topDiff <= PARITY_TOL))
      throw new PeerError(
        `tapir and PyTorch disagree: trace samples differ by ${sampleDiff.toExponential(2)}, top eigenvalue by ${topDiff.toExponential(2)} (tolerance ${PARITY_TOL})`,
        'the two sides no longer run the same model or probes; compare src/graph/zoo with bench/peers/engine.py and the probe generators',
      );
    const tapirMs = median(traceMs) + median(eigMs);
    const peerMs = median(peer.trace_ms) + median(peer.eig_ms);
    emitSummary({
      bench: 'hessian',
      model: specOf(choice),
      batch,
      probes,
      steps,
      tapir_ms: round(tapirMs, 1),
      peer_ms: round(peerMs, 1),
      ratio: round(tapirMs / peerMs),
      trace_ratio: round(median(traceMs) / median(peer.trace_ms)),
      eig_ratio: round(median(eigMs) / median(peer.eig_ms)),
      trace_rel_diff: traceDiff,
      top_rel_diff: topDiff,
      threads,
      n: runs,
      torch: peer.torch,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench/hessian: ${(e as Error).message}\n`);
  if ((e as { fix?: string }).fix) process.stderr.write(`fix: ${(e as { fix?: string }).fix}\n`);
  process.exitCode = 1;
});
