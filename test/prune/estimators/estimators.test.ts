import { test } from 'node:test';
import assert from 'node:assert/strict';
import { disposeAll, liveTensors, scope } from '../../../src/engine/index.js';
import { setMask } from '../../../src/graph/index.js';
import { ESTIMATORS } from '../../../src/prune/estimators/index.js';
import { NondeterministicGraphError } from '../../../src/prune/errors.js';
import { CASE_NAMES, disposeCase, LOSS_CASES, makeCase } from '../../cases/index.js';
import { expectClose } from '../../helpers/check.js';
import { exactGgnDiag, exactHessian, flat, names, perSampleGrads } from '../reference.js';

for (const cn of CASE_NAMES)
  for (const loss of LOSS_CASES) {
    test(`fisher equals an explicit per-sample loop (${cn}, ${loss})`, () => {
      const c = makeCase(cn);
      scope(() => {
        const ns = names(c.graph);
        const got = ESTIMATORS.fisher.diag(c.graph, c.batches, { loss });
        const per = perSampleGrads(c.graph, c.batches, loss, ns);
        const want = per[0]!.map((_, p) => per.reduce((a, gn) => a + gn[p]! ** 2, 0) / per.length);
        expectClose(flat(got.diag, ns), want, { rtol: 1e-9, atol: 1e-14 }, `fisher ${cn}/${loss}`);
        assert.equal(got.info.backwardPasses, c.batches.length);
      });
      disposeCase(c);
    });

    test(`ggn (exact) equals diag of JᵀHJ built explicitly (${cn}, ${loss})`, () => {
      const c = makeCase(cn);
      scope(() => {
        const ns = names(c.graph);
        const got = ESTIMATORS.ggn.diag(c.graph, c.batches, { loss });
        expectClose(
          flat(got.diag, ns),
          exactGgnDiag(c.graph, c.batches, loss, ns),
          { rtol: 1e-9, atol: 1e-14 },
          `ggn ${cn}/${loss}`,
        );
        assert.equal(got.info.backwardPasses, c.batches.length * c.classes);
      });
      disposeCase(c);
    });
  }

test('masked weights: fisher and ggn give 0 on pruned entries and match the masked references', () => {
  const c = makeCase('conv-bn');
  scope(() => {
    const ns = names(c.graph);
    for (const n of ns) {
      const t = c.graph.params.get(n)!.tensor;
      setMask(c.graph, n, t.abs().gt(0.3).to('float64'));
    }
    for (const loss of LOSS_CASES) {
      const f = ESTIMATORS.fisher.diag(c.graph, c.batches, { loss });
      const per = perSampleGrads(c.graph, c.batches, loss, ns);
      expectClose(
        flat(f.diag, ns),
        per[0]!.map((_, p) => per.reduce((a, gn) => a + gn[p]! ** 2, 0) / per.length),
        { rtol: 1e-9, atol: 1e-14 },
      );
      const gg = ESTIMATORS.ggn.diag(c.graph, c.batches, { loss });
      expectClose(flat(gg.diag, ns), exactGgnDiag(c.graph, c.batches, loss, ns), { rtol: 1e-9, atol: 1e-14 });
      const masks = ns.flatMap((n) => c.graph.masks.get(n)!.toArray());
      flat(f.diag, ns).forEach((v, i) => {
        if (masks[i] === 0) assert.equal(v, 0);
      });
    }
  });
  disposeCase(c);
});

test('ggn Monte-Carlo is unbiased: the mean of many seeds approaches the exact ggn', () => {
  const c = makeCase('mlp');
  scope(() => {
    const ns = names(c.graph);
    for (const loss of LOSS_CASES) {
      const exact = flat(ESTIMATORS.ggn.diag(c.graph, c.batches, { loss }).diag, ns);
      const S = 150;
      const acc = new Array<number>(exact.length).fill(0);
      for (let s = 0; s < S; s++)
        scope(() =>
          flat(ESTIMATORS.ggn.diag(c.graph, c.batches, { loss, ggn: 'mc', seed: s }).diag, ns).forEach((v, i) => {
            acc[i]! += v / S;
          }),
        );
      const scale = Math.max(...exact);
      const err = Math.max(...acc.map((v, i) => Math.abs(v - exact[i]!))) / scale;
      assert.ok(err < 0.2, `${loss}: MC mean deviates by ${err} of the largest entry`);
      // A single draw is not the exact answer (it is a random estimate).
      const one = flat(ESTIMATORS.ggn.diag(c.graph, c.batches, { loss, ggn: 'mc', seed: 7 }).diag, ns);
      assert.ok(one.some((v, i) => Math.abs(v - exact[i]!) > 1e-6 * scale));
    }
  });
  disposeCase(c);
});

test('hutchinson converges to the exact Hessian diagonal with error ~ 1/√probes, and reports its stderr', () => {
  const c = makeCase('mlp', { sizes: [5] });
  scope(() => {
    const ns = names(c.graph);
    for (const loss of LOSS_CASES) {
      const H = exactHessian(c.graph, c.batches, loss, ns);
      const exact = H.map((row, i) => row[i]!);
      const rms = (K: number) => {
        let s = 0;
        const seeds = 3;
        for (let seed = 0; seed < seeds; seed++)
          scope(() => {
            const est = flat(
              ESTIMATORS.hutchinson.diag(c.graph, c.batches, { loss, probes: K, seed: 100 * K + seed }).diag,
              ns,
            );
            s += est.reduce((a, v, i) => a + (v - exact[i]!) ** 2, 0);
          });
        return Math.sqrt(s / seeds);
      };
      const Ks = [4, 16, 64];
      const errs = Ks.map(rms);
      const slope = Math.log(errs[2]! / errs[0]!) / Math.log(Ks[2]! / Ks[0]!);
      assert.ok(
        slope < -0.3 && slope > -0.75,
        `${loss}: error ∝ probes^${slope.toFixed(2)} (errors ${errs.map((e) => e.toExponential(2)).join(', ')})`,
      );
      // The variance of one probe's entry i is exactly Σ_{j≠i} H_ij²: stderr² · K must estimate it.
      const K = 96;
      const r = ESTIMATORS.hutchinson.diag(c.graph, c.batches, { loss, probes: K, seed: 3 });
      const se = flat(r.stderr!, ns);
      const trueVar = H.map((row, i) => row.reduce((a, h, j) => (j === i ? a : a + h * h), 0));
      se.forEach((s, i) =>
        assert.ok(
          Math.abs(s * s * K - trueVar[i]!) <= 0.5 * trueVar[i]! + 1e-12,
          `${loss}: variance of entry ${i}: ${s * s * K} vs ${trueVar[i]}`,
        ),
      );
      const z = flat(r.diag, ns).map((v, i) => Math.abs(v - exact[i]!) / Math.max(se[i]!, 1e-15));
      assert.ok(z.filter((v) => v > 3.5).length <= 1, `${loss}: estimates within 3.5 stderr of the exact diagonal`);
    }
  });
  disposeCase(c);
});

test('hutchinson onSample: one v ⊙ Hv per probe and parameter, whose mean is the diagonal and whose sums estimate tr H', () => {
  const c = makeCase('mlp', { sizes: [5] });
  scope(() => {
    const ns = names(c.graph);
    const H = exactHessian(c.graph, c.batches, 'ce', ns);
    const trace = H.reduce((a, row, i) => a + row[i]!, 0);
    const K = 400;
    const sums: number[][] = [];
    const per: number[] = [];
    const r = ESTIMATORS.hutchinson.diag(c.graph, c.batches, {
      loss: 'ce',
      probes: K,
      seed: 5,
      onSample: (k, parts) => {
        assert.equal(k, per.length, 'probes in order');
        assert.equal(parts.length, ns.length);
        const v = parts.flatMap((t) => t.toArray() as number[]);
        per.push(v.reduce((a, b) => a + b, 0));
        v.forEach((x, i) => (sums[i] = [...(sums[i] ?? []), x]));
      },
    });
    assert.equal(per.length, K);
    const mean = sums.map((xs) => xs.reduce((a, b) => a + b, 0) / K);
    expectClose(flat(r.diag, ns), mean, { rtol: 1e-4, atol: 1e-7 }, 'the diagonal is the mean of the samples');
    const m = per.reduce((a, b) => a + b, 0) / K;
    const se = Math.sqrt(per.reduce((a, b) => a + (b - m) ** 2, 0) / (K - 1) / K);
    assert.ok(Math.abs(m - trace) < 4 * se + 1e-9, `trace ${m} ± ${se} vs exact ${trace}`);
  });
  disposeCase(c);
});

test('hutchinson on a depthwise conv and attention agrees with the exact diagonal', () => {
  for (const [cn, p] of [
    ['depthwise', 'dw.weight'],
    ['attention', 'q.weight'],
  ] as const) {
    const c = makeCase(cn, { sizes: [4] });
    scope(() => {
      const ns = [p];
      const H = exactHessian(c.graph, c.batches, 'ce', ns);
      const r = ESTIMATORS.hutchinson.diag(c.graph, c.batches, { loss: 'ce', probes: 32, seed: 1, params: ns });
      const se = flat(r.stderr!, ns);
      const z = flat(r.diag, ns).map((v, i) => Math.abs(v - H[i]![i]!) / Math.max(se[i]!, 1e-15));
      assert.ok(
        z.filter((v) => v > 4).length <= Math.ceil(0.01 * z.length),
        `${cn}: ${z.filter((v) => v > 4).length} entries beyond 4 stderr`,
      );
    });
    disposeCase(c);
  }
});

test('same seed ⇒ identical stochastic estimates; the live-tensor count stays flat', () => {
  const c = makeCase('depthwise');
  scope(() => {
    const ns = names(c.graph);
    const a = flat(ESTIMATORS.hutchinson.diag(c.graph, c.batches, { loss: 'mse', probes: 3, seed: 5 }).diag, ns);
    const b = flat(ESTIMATORS.hutchinson.diag(c.graph, c.batches, { loss: 'mse', probes: 3, seed: 5 }).diag, ns);
    assert.deepEqual(a, b);
    const m1 = flat(ESTIMATORS.ggn.diag(c.graph, c.batches, { loss: 'ce', ggn: 'mc', seed: 2 }).diag, ns);
    const m2 = flat(ESTIMATORS.ggn.diag(c.graph, c.batches, { loss: 'ce', ggn: 'mc', seed: 2 }).diag, ns);
    assert.deepEqual(m1, m2);
  });
  for (const name of ['fisher', 'ggn', 'hutchinson'] as const) {
    const before = liveTensors();
    disposeAll(scope(() => ESTIMATORS[name].diag(c.graph, c.batches, { loss: 'ce', probes: 2 })));
    assert.equal(liveTensors(), before, `${name} leaks no tensor`);
  }
  disposeCase(c);
});

test('train mode with BatchNorm is refused unless opted in; per-sample estimators refuse it always', () => {
  const c = makeCase('conv-bn');
  assert.throws(
    () => ESTIMATORS.fisher.diag(c.graph, c.batches, { loss: 'ce', mode: 'train' }),
    NondeterministicGraphError,
  );
  assert.throws(
    () => ESTIMATORS.hutchinson.diag(c.graph, c.batches, { loss: 'ce', mode: 'train' }),
    NondeterministicGraphError,
  );
  assert.throws(
    () => ESTIMATORS.ggn.diag(c.graph, c.batches, { loss: 'ce', mode: 'train', allowTrainMode: true }),
    NondeterministicGraphError,
  );
  assert.throws(() => ESTIMATORS.fisher.diag(c.graph, c.batches, { loss: 'ce', mode: 'eval' }), /records no gradients/);
  disposeCase(c);
});
