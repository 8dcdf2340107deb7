import { test } from 'node:test';
import assert from 'node:assert/strict';
import { disposeAll, eye, liveTensors, scope, tensor } from '../../src/engine/index.js';
import { setNumThreads as setThreads } from '../../src/engine/index.js';
import { denseOperator, flatten, makeLayout, materialize, unflatten } from '../../src/analysis/operator.js';
import { hutchinsonTrace } from '../../src/analysis/hutchinson.js';
import { topEigen } from '../../src/analysis/lanczos.js';
import { densityOn, spectralDensity } from '../../src/analysis/slq.js';
import { subspaceOverlap } from '../../src/analysis/alignment.js';
import { expectClose } from '../helpers/check.js';
import { symmetricWithSpectrum } from './cases.js';

// Tiny problems: one thread avoids OpenMP spin-waits when the shared cores are busy (26 ms vs 450 ms per matvec).
setThreads(1);

const SPECTRUM = [9, 7.5, 6, 3, 2, 1, 0.5, -0.25, -1, -4];

test('flat layout round-trips per-parameter tensors and rejects a wrong length', () =>
  scope(() => {
    const layout = makeLayout([
      { name: 'a', shape: [2, 3] },
      { name: 'b', shape: [4] },
    ]);
    assert.equal(layout.dim, 10);
    assert.deepEqual(layout.offsets, [0, 6]);
    const v = tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [10], { dtype: 'float64' });
    const [a, b] = unflatten(layout, v);
    assert.deepEqual(a!.shape, [2, 3]);
    assert.deepEqual(b!.toArray(), [6, 7, 8, 9]);
    assert.deepEqual(
      flatten(
        layout,
        new Map([
          ['a', a!],
          ['b', b!],
        ]),
      ).toArray(),
      v.toArray(),
    );
    assert.throws(() => unflatten(layout, tensor([1, 2, 3])), /length 10/);
    assert.throws(() => flatten(layout, new Map([['a', a!]])), /no tensor for parameter 'b'/);
  }));

test('denseOperator: matvec, symmetry detection, materialize', () =>
  scope(() => {
    const { matrix } = symmetricWithSpectrum(SPECTRUM, 3);
    const op = denseOperator(matrix);
    assert.equal(op.selfAdjoint, true);
    expectClose(materialize(op), matrix, { rtol: 1e-12, atol: 1e-12 });
    assert.equal(
      denseOperator(
        tensor(
          [
            [1, 2],
            [0, 1],
          ],
          null,
          { dtype: 'float64' },
        ),
      ).selfAdjoint,
      false,
    );
    assert.throws(() => denseOperator(tensor([1, 2, 3])), /square/);
    assert.throws(() => op.matvec(tensor([1, 2], null, { dtype: 'float64' })), /length 10/);
    op.dispose();
  }));

test('Hutchinson trace is exact per probe on a diagonal matrix and unbiased in expectation otherwise', () =>
  scope(() => {
    const diag = denseOperator(tensor(SPECTRUM, null, { dtype: 'float64' }).diag());
    const exact = SPECTRUM.reduce((a, b) => a + b, 0);
    const d = hutchinsonTrace(diag, { probes: 5, seed: 1 });
    for (const s of d.samples) assert.ok(Math.abs(s - exact) < 1e-12, `vᵀDv = tr(D) for Rademacher v, got ${s}`);
    assert.ok(d.stderr < 1e-12);

    const { matrix } = symmetricWithSpectrum(SPECTRUM, 4);
    const op = denseOperator(matrix);
    const r = hutchinsonTrace(op, { probes: 4000, seed: 7 });
    assert.equal(r.samples.length, 4000);
    assert.ok(Math.abs(r.estimate - exact) < 4 * r.stderr, `estimate ${r.estimate} ± ${r.stderr} vs ${exact}`);
    // Var(vᵀAv) = 2 Σ_{i≠j} A_ij² ≤ 2‖A‖²_F ≈ 409, so 4000 probes give a standard error of at most ~0.32.
    assert.ok(r.stderr < 0.33, `stderr ${r.stderr}`);
    // The same seed gives the same samples; another seed does not.
    assert.deepEqual(hutchinsonTrace(op, { probes: 3, seed: 7 }).samples, r.samples.slice(0, 3));
    assert.notDeepEqual(hutchinsonTrace(op, { probes: 3, seed: 8 }).samples, r.samples.slice(0, 3));
    assert.throws(() => hutchinsonTrace(op, { probes: 0, seed: 1 }), /probes must be an integer >= 1/);
    assert.throws(() => hutchinsonTrace(op, { probes: 2, seed: -1 }), /seed/);

    op.dispose();
    diag.dispose();
  }));

test('Lanczos with full re-orthogonalisation finds the top eigenpairs of a dense symmetric matrix', () =>
  scope(() => {
    const { matrix, vectors } = symmetricWithSpectrum(SPECTRUM, 5);
    const op = denseOperator(matrix);
    const before = liveTensors();
    topEigen(op, { k: 3, seed: 0, steps: 10 }).vectors.dispose();
    assert.equal(liveTensors(), before, 'the Lanczos basis is freed');
    const r = topEigen(op, { k: 3, seed: 0, steps: 10 });
    expectClose(r.values, [9, 7.5, 6], { rtol: 1e-10 });
    for (let i = 0; i < 3; i++) {
      const c = Math.abs(r.vectors.index(0, i).dot(vectors.index(0, i)).item());
      assert.ok(Math.abs(c - 1) < 1e-8, `eigenvector ${i}: |cos| = ${c}`);
    }
    for (const x of r.residuals) assert.ok(x < 1e-8);
    assert.ok(Math.abs(subspaceOverlap(r.vectors, vectors.narrow(0, 0, 3)) - 1) < 1e-10);
    const mag = topEigen(op, { k: 2, seed: 0, steps: 10, which: 'magnitude' });
    expectClose(mag.values, [9, 7.5], { rtol: 1e-10 });
    const small = topEigen(op, { k: 1, seed: 0, steps: 10 });
    assert.ok(Math.abs(small.values[0]! - 9) < 1e-10);
    assert.throws(() => topEigen(op, { k: 11, seed: 0 }), /exceeds the operator dimension/);
    assert.throws(
      () =>
        topEigen(
          denseOperator(
            tensor(
              [
                [1, 2],
                [0, 1],
              ],
              null,
              { dtype: 'float64' },
            ),
          ),
          { k: 1, seed: 0 },
        ),
      /not self-adjoint/,
    );
    op.dispose();
  }));

test('Lanczos converges to the extreme eigenvalue of a larger matrix within few steps', () =>
  scope(() => {
    const values = Array.from({ length: 200 }, (_, i) => (i === 0 ? 50 : i === 1 ? 40 : Math.sin(i)));
    const { matrix } = symmetricWithSpectrum(values, 9);
    const op = denseOperator(matrix);
    const r = topEigen(op, { k: 2, seed: 3, steps: 30 });
    expectClose(r.values, [50, 40], { rtol: 1e-8 });
    r.vectors.dispose();
    op.dispose();
  }));

test('stochastic Lanczos quadrature: weights sum to one, the density integrates to one, the trace is unbiased', () =>
  scope(() => {
    const { matrix } = symmetricWithSpectrum(SPECTRUM, 6);
    const op = denseOperator(matrix);
    const d = spectralDensity(op, { runs: 400, steps: 10, seed: 0 });
    for (const w of d.weights) assert.ok(Math.abs(w.reduce((a, b) => a + b, 0) - 1) < 1e-10);
    // With steps = dim, each run's nodes are the exact eigenvalues.
    expectClose(
      [...d.nodes[0]!].sort((a, b) => a - b),
      [...SPECTRUM].sort((a, b) => a - b),
      { rtol: 1e-8, atol: 1e-8 },
    );
    const exact = SPECTRUM.reduce((a, b) => a + b, 0);
    assert.ok(
      Math.abs(d.trace.estimate - exact) < 4 * d.trace.stderr + 1e-9,
      `${d.trace.estimate} ± ${d.trace.stderr}`,
    );
    const grid = Array.from({ length: 601 }, (_, i) => -10 + i * 0.04);
    const phi = densityOn(d, grid, 0.3);
    const mass = phi.reduce((a, b) => a + b, 0) * 0.04;
    assert.ok(Math.abs(mass - 1) < 1e-3, `mass ${mass}`);
    // Each eigenvalue holds mass 1/n in expectation: the density near 9 is ≈ that of one Gaussian bump / 10.
    const at9 = phi[grid.findIndex((t) => Math.abs(t - 9) < 1e-9)]!;
    const bump = 1 / (Math.sqrt(2 * Math.PI) * 0.3) / 10;
    assert.ok(Math.abs(at9 - bump) < 0.25 * bump, `density at 9: ${at9} vs ${bump}`);
    op.dispose();
    assert.deepEqual(eye(2).shape, [2, 2]);
  }));
