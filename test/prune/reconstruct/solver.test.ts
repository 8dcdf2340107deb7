/**
 * The reconstruction solver against exact answers in float64: with one row and one block the kept weights are the
 * least-squares solution on the kept support; reconstruction never increases the layer's error over masking alone;
 * keep rules (count, rowwise, N:M) are exact; dead inputs are pruned first; results are deterministic.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eye, linalg, manualSeed, noGrad, randn, scope, tensor, type Tensor } from '../../../src/engine/index.js';
import { solveLayer } from '../../../src/prune/reconstruct/solver.js';
import { expectClose } from '../../helpers/check.js';

const f64 = { dtype: 'float64' as const };

/** H = X Xᵀ of S random samples with correlated inputs, [G, d, d]. */
function covariance(G: number, d: number, S: number, seed: number): Tensor {
  manualSeed(seed);
  return scope(() => {
    const mix = randn([G, d, d], f64).mul(0.5).add(eye(d, f64).unsqueeze(0));
    const x = mix.matmul(randn([G, d, S], f64));
    return x.matmul(x.transpose(1, 2));
  });
}

const arr = (t: Tensor) => t.toArray() as number[];

test('one row, one block: the kept weights are the exact least-squares solution on the kept support', () =>
  scope(() => {
    const d = 12;
    const H = covariance(1, d, 40, 1);
    manualSeed(2);
    const W = randn([1, 1, d], f64);
    const r = solveLayer(W, H, { blockSize: d, damping: 0, keep: { kind: 'count', prune: 5 } });
    const mask = arr(r.mask);
    assert.equal(mask.filter((v) => v === 0).length, 5);
    // LS on support S: minimise (v − w) H (v − w)ᵀ with v_P = 0 ⇒ v_S = w_S + H_SS⁻¹ H_SP w_P.
    const S = mask.flatMap((v, i) => (v === 1 ? [i] : []));
    const P = mask.flatMap((v, i) => (v === 0 ? [i] : []));
    const h = arr(H.reshape([d * d]));
    const w = arr(W.reshape([d]));
    const sub = (rows: number[], cols: number[]) =>
      tensor(Float64Array.from(rows.flatMap((i) => cols.map((j) => h[i * d + j]!))), [rows.length, cols.length]);
    const wP = tensor(Float64Array.from(P.map((i) => w[i]!)), [P.length, 1]);
    const vS = tensor(Float64Array.from(S.map((i) => w[i]!)), [S.length, 1]).add(
      linalg.solve(sub(S, S), sub(S, P).matmul(wP)),
    );
    const got = arr(r.weights.reshape([d]));
    expectClose(
      S.map((i) => got[i]!),
      vS,
      { rtol: 1e-9, atol: 1e-11 },
    );
    for (const i of P) assert.ok(got[i] === 0);
    assert.equal(r.reverted, 0);
    assert.ok(r.error.reconstructed <= r.error.masked);
  }));

test('reconstruction never increases the layer error over masking alone (several blocks, groups, rows)', () =>
  scope(() => {
    for (const [G, R, d, B, seed] of [
      [1, 6, 20, 4, 3],
      [3, 4, 9, 9, 4],
      [2, 5, 16, 3, 5],
    ] as const) {
      const H = covariance(G, d, 50, seed);
      manualSeed(seed + 10);
      const W = randn([G, R, d], f64);
      const r = solveLayer(W, H, {
        blockSize: B,
        damping: 0.01,
        keep: { kind: 'count', prune: Math.floor(G * R * d * 0.6) },
      });
      // Recompute both errors here from scratch: Σ_rows (v − W) H (v − W)ᵀ.
      const err = (v: Tensor) =>
        noGrad(() => {
          const dl = v.sub(W);
          return dl.matmul(H).mul(dl).sum([2]);
        });
      const masked = err(W.mul(r.mask));
      const rec = err(r.weights);
      const a = arr(rec.reshape([-1]));
      const b = arr(masked.reshape([-1]));
      a.forEach((x, i) => assert.ok(x <= b[i]! * (1 + 1e-9) + 1e-12, `row ${i}: ${x} > ${b[i]}`));
      assert.ok(a.reduce((x, y) => x + y) < 0.9 * b.reduce((x, y) => x + y), 'reconstruction lowers the error clearly');
      expectClose(
        r.error.reconstructed,
        a.reduce((x, y) => x + y),
        { rtol: 1e-9 },
      );
      // Pruned weights are exactly 0.
      const mk = arr(r.mask.reshape([-1]));
      arr(r.weights.reshape([-1])).forEach((v, i) => {
        if (mk[i] === 0) assert.ok(v === 0);
      });
    }
  }));

test('keep rules: count prunes exactly P, rowwise the same share per row, N:M exactly N in every M columns', () =>
  scope(() => {
    const [G, R, d] = [2, 3, 10];
    const H = covariance(G, d, 30, 7);
    manualSeed(8);
    const W = randn([G, R, d], f64);
    const count = solveLayer(W, H, { blockSize: 4, damping: 0.01, keep: { kind: 'count', prune: 31 } });
    assert.equal(arr(count.mask.reshape([-1])).filter((v) => v === 0).length, 31);
    const row = solveLayer(W, H, { blockSize: 4, damping: 0.01, keep: { kind: 'rowwise', prune: 31 } });
    const perRow = arr(row.mask.reshape([G * R, d]).sum([1]))
      .map((k) => d - k)
      .sort();
    assert.deepEqual(perRow, [5, 5, 5, 5, 5, 6]);
    const nm = solveLayer(W, H, { blockSize: 6, damping: 0.01, keep: { kind: 'nm', n: 2, m: 4 } });
    const flat = arr(nm.mask.reshape([-1]));
    for (let i = 0; i < G * R; i++) {
      const r = flat.slice(i * d, (i + 1) * d);
      assert.deepEqual(
        [r.slice(0, 4), r.slice(4, 8)].map((g) => g.reduce((a, b) => a + b)),
        [2, 2],
      );
      assert.equal(r[8]! + r[9]!, 2, 'a tail of 2 < M keeps min(N, 2)');
    }
  }));

test('inputs that are always 0 are pruned first and their weights set to 0; same input, same result', () =>
  scope(() => {
    const d = 6;
    const H = covariance(1, d, 20, 9);
    // Column 2 never sees a non-zero input.
    const h = arr(H.reshape([d * d])).map((v, i) => (Math.floor(i / d) === 2 || i % d === 2 ? 0 : v));
    const H0 = tensor(Float64Array.from(h), [1, d, d]);
    const W = tensor(Float64Array.from([0.1, -0.2, 5, 0.3, -0.4, 0.5, 1, 2, -3, 4, 5, -6]), [1, 2, d]);
    // 4 pruned over 2 blocks of 3 columns: 2 per block, and in the first block the two dead weights go first.
    const r = solveLayer(W, H0, { blockSize: 3, damping: 0.01, keep: { kind: 'count', prune: 4 } });
    const mask = arr(r.mask.reshape([-1]));
    assert.deepEqual([mask[2], mask[d + 2]], [0, 0]);
    const again = solveLayer(W, H0, { blockSize: 3, damping: 0.01, keep: { kind: 'count', prune: 4 } });
    assert.deepEqual(arr(again.weights.reshape([-1])), arr(r.weights.reshape([-1])));
  }));

test('already-pruned weights (an earlier round) stay pruned; counts stay exact; too few to cover them is an error', () =>
  scope(() => {
    const [G, R, d] = [2, 3, 10];
    const H = covariance(G, d, 30, 11);
    manualSeed(12);
    const W = randn([G, R, d], f64);
    // Three pruned weights per row, crowded into the second block (columns 4-7): its share of a row's 5-6 pruned
    // weights is 2, and the first block's OBS update makes them non-zero again before that block is reached.
    const p = new Float64Array(G * R * d);
    for (let r = 0; r < G * R; r++) [4, 5, 6 + (r % 2)].forEach((j) => (p[r * d + j] = 1));
    const pruned = tensor(p, [G, R, d]);
    for (const keep of [
      { kind: 'count' as const, prune: 31 },
      { kind: 'rowwise' as const, prune: 31 },
    ]) {
      const res = solveLayer(W.mul(pruned.neg().add(1)), H, { blockSize: 4, damping: 0.01, keep, pruned });
      const m = arr(res.mask);
      m.forEach((v, i) => {
        if (p[i] === 1) assert.equal(v, 0, `${keep.kind}: weight ${i} was pruned and came back`);
      });
      assert.equal(m.filter((v) => v === 0).length, 31, keep.kind);
      arr(res.weights).forEach((v, i) => assert.ok(m[i] === 1 || v === 0));
    }
    assert.throws(
      () => solveLayer(W, H, { blockSize: 4, damping: 0.01, keep: { kind: 'count', prune: 5 }, pruned }),
      /must prune 5 weights but 18 are already pruned/,
    );
  }));
