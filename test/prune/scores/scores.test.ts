import { test } from 'node:test';
import assert from 'node:assert/strict';
import { disposeAll, manualSeed, ones, rand, randint, randn, scope, tensor } from '../../../src/engine/index.js';
import { GraphBuilder, type Graph } from '../../../src/graph/index.js';
import { allocate } from '../../../src/prune/allocation.js';
import { SCORES, type ScoreContext } from '../../../src/prune/scores/index.js';
import { disposeCase, makeCase } from '../../cases/index.js';
import { expectClose } from '../../helpers/check.js';
import { exactGgnDiag, flat, jacobiansAndLossHessians, names, perSampleGrads } from '../reference.js';

const ctxOf = (
  c: { graph: Graph; batches: ScoreContext['batches'] },
  extra: Partial<ScoreContext> = {},
): ScoreContext => ({ graph: c.graph, batches: c.batches, params: names(c.graph), loss: 'ce', seed: 0, ...extra });

/** Solves A x = b (dense, partial pivoting). */
function solve(A: number[][], b: number[]): number[] {
  const n = b.length;
  const M = A.map((r, i) => [...r, b[i]!]);
  for (let k = 0; k < n; k++) {
    let p = k;
    for (let i = k + 1; i < n; i++) if (Math.abs(M[i]![k]!) > Math.abs(M[p]![k]!)) p = i;
    [M[k], M[p]] = [M[p]!, M[k]!];
    for (let i = k + 1; i < n; i++) {
      const f = M[i]![k]! / M[k]![k]!;
      for (let j = k; j <= n; j++) M[i]![j]! -= f * M[k]![j]!;
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let i = n - 1; i >= 0; i--) {
    let s = M[i]![n]!;
    for (let j = i + 1; j < n; j++) s -= M[i]![j]! * x[j]!;
    x[i] = s / M[i]![i]!;
  }
  return x;
}
const quad = (H: number[][], d: number[]) =>
  0.5 * d.reduce((a, di, i) => a + di * H[i]!.reduce((s, h, j) => s + h * d[j]!, 0), 0);
/** min ½δᵀHδ subject to δ_P = −θ_P, by eliminating the free coordinates (no inverse of H involved). */
function constrainedMin(H: number[][], theta: number[], P: number[]): { value: number; delta: number[] } {
  const F = theta.map((_, i) => i).filter((i) => !P.includes(i));
  const d = theta.map(() => 0);
  for (const p of P) d[p] = -theta[p]!;
  if (F.length > 0) {
    const rhs = F.map((f) => -P.reduce((a, p) => a + H[f]![p]! * d[p]!, 0));
    solve(
      F.map((f) => F.map((g) => H[f]![g]!)),
      rhs,
    ).forEach((v, i) => {
      d[F[i]!] = v;
    });
  }
  return { value: quad(H, d), delta: d };
}

/** Explicit per-block curvature matrices of one parameter [rows, cols] (flattened), from reference factors. */
function explicitBlocks(
  rowsOfFactors: number[][],
  offset: number,
  rows: number,
  cols: number,
  B: number,
  N: number,
  lambda: number,
): { idx: number[]; H: number[][] }[] {
  const out: { idx: number[]; H: number[][] }[] = [];
  for (let r = 0; r < rows; r++)
    for (let s = 0; s < cols; s += B) {
      const idx = Array.from({ length: Math.min(B, cols - s) }, (_, k) => offset + r * cols + s + k);
      const H = idx.map((a, i) =>
        idx.map((b, j) => rowsOfFactors.reduce((acc, f) => acc + f[a]! * f[b]!, 0) / N + (i === j ? lambda : 0)),
      );
      out.push({ idx, H });
    }
  return out;
}

/** Factor rows: fisher = per-sample gradients; ggn = Jₙᵀ Sₙ columns with Sₙ Sₙᵀ = Hₙ (here via eigen-free Cholesky of Hₙ + 0). */
function ggnRows(
  c: ReturnType<typeof makeCase>,
  loss: 'ce' | 'mse',
  ns: string[],
): { rows: number[][]; M: number[][][] } {
  const per = jacobiansAndLossHessians(c.graph, c.batches, loss, ns);
  return {
    rows: [],
    M: per.map(({ J, H }) =>
      J[0]!.map((_, a) =>
        J[0]!.map((__, b) => J.reduce((s, Ja, i) => s + J.reduce((t, Jb, k) => t + Ja[a]! * H[i]![k]! * Jb[b]!, 0), 0)),
      ),
    ),
  };
}

test('magnitude is θ² and random is seeded', () => {
  const c = makeCase('mlp');
  scope(() => {
    const ns = names(c.graph);
    const r = SCORES.magnitude.score(ctxOf(c));
    expectClose(
      flat(r.scores, ns),
      ns.flatMap((n) =>
        c.graph.params
          .get(n)!
          .tensor.toArray()
          .map((v) => v * v),
      ),
      { rtol: 0, atol: 0 },
    );
    const a = flat(SCORES.random.score(ctxOf(c, { seed: 4 })).scores, ns);
    assert.deepEqual(a, flat(SCORES.random.score(ctxOf(c, { seed: 4 })).scores, ns));
    assert.notDeepEqual(a, flat(SCORES.random.score(ctxOf(c, { seed: 5 })).scores, ns));
  });
  disposeCase(c);
});

test('OBD (diag-hessian) equals the quadratic-model loss increase of removing each single weight', () => {
  const c = makeCase('conv-bn');
  scope(() => {
    const ns = names(c.graph);
    const theta = ns.flatMap((n) => c.graph.params.get(n)!.tensor.toArray());
    for (const loss of ['ce', 'mse'] as const) {
      // GGN: the quadratic model's matrix (1/N) Σ Jᵀ H J, built explicitly (its diagonal is all δ = −θⱼeⱼ reads).
      const Gd = exactGgnDiag(c.graph, c.batches, loss, ns);
      const obd = flat(SCORES['diag-hessian'].score(ctxOf(c, { loss, estimator: 'ggn' })).scores, ns);
      const want = theta.map((t, j) => quad([[Gd[j]!]], [-t]));
      expectClose(obd, want, { rtol: 1e-9, atol: 1e-15 }, `obd/ggn ${loss}`);
      // Fisher: the same with the explicit empirical Fisher.
      const per = perSampleGrads(c.graph, c.batches, loss, ns);
      const obdF = flat(SCORES['diag-hessian'].score(ctxOf(c, { loss, estimator: 'fisher' })).scores, ns);
      expectClose(
        obdF,
        theta.map((t, j) => quad([[per.reduce((a, g) => a + g[j]! ** 2, 0) / per.length]], [-t])),
        { rtol: 1e-9, atol: 1e-15 },
        `obd/fisher ${loss}`,
      );
    }
  });
  disposeCase(c);
});

for (const [sizes, B, path] of [
  [[3, 2], 2, 'Gram'],
  [[2, 1], 4, 'Woodbury'],
  [[3, 2], 3, 'Gram, padded blocks'],
] as const)
  test(`OBS score equals the brute-force minimum of the quadratic model over the block (fisher, ${path})`, () => {
    const c = makeCase('mlp', { sizes: [...sizes] });
    scope(() => {
      const ns = names(c.graph);
      const r = SCORES['block-hessian'].score(ctxOf(c, { block: { blockSize: B, damping: 0.05 } }));
      const per = perSampleGrads(c.graph, c.batches, 'ce', ns);
      const theta = ns.flatMap((n) => c.graph.params.get(n)!.tensor.toArray());
      const got = flat(r.scores, ns);
      let offset = 0;
      for (const n of ns) {
        const [rows, cols] = c.graph.params.get(n)!.tensor.shape as [number, number];
        const lambda = (r.info.damping as Record<string, number>)[n]!;
        for (const { idx, H } of explicitBlocks(per, offset, rows, cols, Math.min(B, cols), per.length, lambda))
          idx.forEach((j, k) => {
            const { value } = constrainedMin(
              H,
              idx.map((i) => theta[i]!),
              [k],
            );
            expectClose(got[j]!, value, { rtol: 1e-7, atol: 1e-15 }, `${n}[${j - offset}]`);
          });
        offset += rows * cols;
      }
    });
    disposeCase(c);
  });

test('OBS with ggn blocks matches the brute-force minimum with H_b = (1/N) Σ Jᵀ H J + λI', () => {
  const c = makeCase('mlp', { sizes: [2, 2] });
  scope(() => {
    const ns = names(c.graph);
    const r = SCORES['block-hessian'].score(
      ctxOf(c, { loss: 'mse', block: { curvature: 'ggn', blockSize: 3, damping: 0.1 } }),
    );
    const G = ggnRows(c, 'mse', ns).M;
    const theta = ns.flatMap((n) => c.graph.params.get(n)!.tensor.toArray());
    const got = flat(r.scores, ns);
    let offset = 0;
    for (const n of ns) {
      const [rows, cols] = c.graph.params.get(n)!.tensor.shape as [number, number];
      const lambda = (r.info.damping as Record<string, number>)[n]!;
      for (let row = 0; row < rows; row++)
        for (let s = 0; s < cols; s += 3) {
          const idx = Array.from({ length: Math.min(3, cols - s) }, (_, k) => offset + row * cols + s + k);
          const H = idx.map((a, i) =>
            idx.map((b, j) => G.reduce((acc, Gn) => acc + Gn[a]![b]!, 0) / G.length + (i === j ? lambda : 0)),
          );
          idx.forEach((j, k) =>
            expectClose(
              got[j]!,
              constrainedMin(
                H,
                idx.map((i) => theta[i]!),
                [k],
              ).value,
              { rtol: 1e-7, atol: 1e-15 },
              `${n}`,
            ),
          );
        }
      offset += rows * cols;
    }
  });
  disposeCase(c);
});

test('OBS compensation is the joint constrained minimiser and lowers the quadratic loss vs none', () => {
  const c = makeCase('mlp', { sizes: [3, 3] });
  scope(() => {
    const ns = names(c.graph);
    const B = 3;
    const r = SCORES['block-hessian'].score(ctxOf(c, { block: { blockSize: B, damping: 0.05, compensate: true } }));
    const alloc = allocate(r.scores, { sparsity: 0.5 });
    const next = r.compensate!(alloc.masks);
    r.dispose!();
    const per = perSampleGrads(c.graph, c.batches, 'ce', ns);
    const theta = ns.flatMap((n) => c.graph.params.get(n)!.tensor.toArray());
    const mask = flat(alloc.masks, ns);
    const after = flat(next, ns);
    let offset = 0;
    let qComp = 0;
    let qNone = 0;
    for (const n of ns) {
      const [rows, cols] = c.graph.params.get(n)!.tensor.shape as [number, number];
      const lambda = (r.info.damping as Record<string, number>)[n]!;
      for (const { idx, H } of explicitBlocks(per, offset, rows, cols, B, per.length, lambda)) {
        const th = idx.map((i) => theta[i]!);
        const P = idx.map((i, k) => (mask[i] === 0 ? k : -1)).filter((k) => k >= 0);
        const best = constrainedMin(H, th, P);
        const dComp = idx.map((i) => after[i]! - theta[i]!);
        const dNone = idx.map((i) => (mask[i] === 0 ? -theta[i]! : 0));
        expectClose(dComp, best.delta, { rtol: 1e-7, atol: 1e-12 }, `${n} block update`);
        idx.forEach((i) => {
          if (mask[i] === 0) assert.ok(after[i] === 0, 'pruned weights are exactly 0');
        });
        qComp += quad(H, dComp);
        qNone += quad(H, dNone);
      }
      offset += rows * cols;
    }
    assert.ok(qComp < qNone, `compensated quadratic loss ${qComp} < uncompensated ${qNone}`);
  });
  disposeCase(c);
});

/** One linear layer y = W x (no bias) over [N, 3] inputs with 2 outputs. */
function linearNet(): { g: Graph; x: number[][]; y: number[]; W: number[][] } {
  manualSeed(3);
  const b = new GraphBuilder();
  b.param('w', randn([2, 3], { dtype: 'float64' }), 'weight');
  const out = b.op('linear', ['x', 'w']);
  const g = b.build({
    name: 'lin',
    inputs: [{ name: 'x', shape: [null, 3] }],
    outputs: [out],
    featureTap: out,
    preprocessing: { size: [1, 1], range: [0, 1] },
  });
  const W = [0, 1].map((i) =>
    g.params
      .get('w')!
      .tensor.toArray()
      .slice(3 * i, 3 * i + 3),
  );
  return {
    g,
    W,
    x: [
      [1, 2, -1],
      [0.5, -1, 3],
      [-2, 0, 1],
    ],
    y: [0, 1, 1],
  };
}

test('SNIP and GraSP match hand-computed values on a linear layer with mse', () => {
  const { g, W, x, y } = linearNet();
  scope(() => {
    const batches = [{ x: tensor(x, null, { dtype: 'float64' }), y: tensor(BigInt64Array.from(y.map(BigInt)), [3]) }];
    const N = 3,
      C = 2;
    // L = (1/(N C)) Σₙ ||W xₙ − yₙ||²: G = (2/(NC)) Σₙ (W xₙ − yₙ) xₙᵀ, H = (2/(NC)) (Σₙ xₙ xₙᵀ) per output row.
    const G = [0, 1].map((i) =>
      [0, 1, 2].map((j) =>
        x.reduce(
          (a, xn, n) =>
            a + (2 / (N * C)) * (W[i]!.reduce((s, w, k) => s + w * xn[k]!, 0) - (y[n] === i ? 1 : 0)) * xn[j]!,
          0,
        ),
      ),
    );
    const X = [0, 1, 2].map((a) => [0, 1, 2].map((b) => x.reduce((s, xn) => s + xn[a]! * xn[b]!, 0)));
    const Hg = G.map((row) => [0, 1, 2].map((j) => (2 / (N * C)) * row.reduce((s, gk, k) => s + gk * X[k]![j]!, 0)));
    const ctx = { graph: g, batches, params: ['w'], loss: 'mse' as const, seed: 0 };
    expectClose(
      SCORES.snip.score(ctx).scores.get('w')!,
      W.flatMap((r, i) => r.map((w, j) => Math.abs(w * G[i]![j]!))),
      { rtol: 1e-10 },
    );
    expectClose(
      SCORES.grasp.score(ctx).scores.get('w')!,
      W.flatMap((r, i) => r.map((w, j) => w * Hg[i]![j]!)),
      { rtol: 1e-10 },
    );
    disposeAll(batches);
  });
});

test('SynFlow matches the hand-computed path norm through linear → BN (eval, |·| stats) → relu → linear', () => {
  manualSeed(9);
  const b = new GraphBuilder();
  const T = (s: number[]) => randn(s, { dtype: 'float64' });
  b.param('w1', T([3, 2]), 'weight');
  b.param('b1', T([3]), 'bias');
  b.param('gamma', T([3]), 'norm');
  b.param('beta', T([3]), 'norm');
  b.param('mu', T([3]).mul(0.1), 'buffer');
  b.param('var', rand([3], { dtype: 'float64' }).add(0.5).neg(), 'buffer'); // negative on purpose: |var| is used
  b.param('w2', T([2, 3]), 'weight');
  const h = b.op('relu', [
    b.op('batchnorm', [b.op('linear', ['x', 'w1', 'b1']), 'gamma', 'beta', 'mu', 'var'], { eps: 1e-5 }),
  ]);
  const g = b.build({
    name: 'sf',
    inputs: [{ name: 'x', shape: [null, 2] }],
    outputs: [b.op('linear', [h, 'w2'])],
    featureTap: h,
    preprocessing: { size: [1, 1], range: [0, 1] },
  });
  scope(() => {
    const A = (n: string) => g.params.get(n)!.tensor.toArray().map(Math.abs);
    const [w1, b1, ga, be, mu, va, w2] = ['w1', 'b1', 'gamma', 'beta', 'mu', 'var', 'w2'].map(A) as [
      number[],
      number[],
      number[],
      number[],
      number[],
      number[],
      number[],
    ];
    const pre = [0, 1, 2].map((i) => w1[2 * i]! + w1[2 * i + 1]! + b1[i]!);
    const scale = [0, 1, 2].map((i) => ga[i]! / Math.sqrt(va[i]! + 1e-5));
    const bn = pre.map((p, i) => (p - mu[i]!) * scale[i]! + be[i]!);
    const up = [0, 1, 2].map((i) => (bn[i]! > 0 ? scale[i]! * (w2[i]! + w2[3 + i]!) : 0)); // ∂R/∂pre_i
    const r = SCORES.synflow.score({ graph: g, batches: [], params: ['w1', 'w2'], loss: 'ce', seed: 0 });
    expectClose(
      r.scores.get('w1')!,
      w1.map((w, k) => w * up[Math.floor(k / 2)]!),
      { rtol: 1e-10 },
    );
    expectClose(
      r.scores.get('w2')!,
      w2.map((w, k) => w * Math.max(bn[k % 3]!, 0)),
      { rtol: 1e-10 },
    );
    // The graph's own weights are untouched (signs kept).
    assert.ok(
      g.params
        .get('w1')!
        .tensor.toArray()
        .some((v) => v < 0),
    );
  });
});

test('same seed ⇒ identical scores for every stochastic score; data-free scores need no data', () => {
  const c = makeCase('depthwise');
  scope(() => {
    const ns = names(c.graph);
    for (const extra of [
      { estimator: 'hutchinson' as const, probes: 2 },
      { estimator: 'ggn' as const, ggn: 'mc' as const },
    ]) {
      const a = flat(SCORES['diag-hessian'].score(ctxOf(c, { ...extra, seed: 11 })).scores, ns);
      assert.deepEqual(a, flat(SCORES['diag-hessian'].score(ctxOf(c, { ...extra, seed: 11 })).scores, ns));
    }
    // Data-free scores need no batch: each still gives a finite score of every parameter's shape.
    for (const s of Object.values(SCORES).filter((x) => x.dataFree)) {
      const r = s.score({ ...ctxOf(c), batches: [] });
      for (const n of ns) {
        const t = r.scores.get(n)!;
        assert.deepEqual(t.shape, c.graph.params.get(n)!.tensor.shape, `${s.name}: ${n}`);
        assert.ok((t.toArray() as number[]).every(Number.isFinite), `${s.name}: ${n} finite`);
      }
    }
    const y = randint(0, 3, [1]);
    disposeAll(y);
    ones([1]).dispose();
  });
  disposeCase(c);
});
