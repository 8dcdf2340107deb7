/**
 * Spectral density by stochastic Lanczos quadrature (Lin, Saad & Yang 2016; Ghorbani, Krishnan & Xiao 2019,
 * as PyHessian's `density`). Each run starts Lanczos from a random unit vector v; the eigenvalues θᵢ of T and
 * the squared first components τᵢ = s₀ᵢ² of its eigenvectors form a Gauss quadrature of vᵀ f(A) v, so
 * φ(t) ≈ mean over runs of Σᵢ τᵢ · N(t; θᵢ, σ²) estimates the (normalised) eigenvalue density of A.
 * The same nodes give a trace estimate: tr(A) ≈ dim · mean over runs of Σᵢ τᵢ θᵢ.
 */
import type { LinearOperator } from './operator.js';
import { lanczos, tridiagonalEigen } from './lanczos.js';
import { meanStderr, type ScalarEstimate } from './hutchinson.js';
import { checkCount, checkSeed } from './random.js';

export interface SpectralDensity {
  /** Quadrature nodes per run. */
  nodes: number[][];
  /** Quadrature weights per run (each run's weights sum to 1). */
  weights: number[][];
  /** tr(A) from the same runs, with its standard error over runs. */
  trace: ScalarEstimate;
}

export interface SlqOptions {
  runs: number;
  steps: number;
  seed: number;
  onRun?: (done: number, total: number) => void;
}

export function spectralDensity(op: LinearOperator, o: SlqOptions): SpectralDensity {
  checkCount(o.runs, 'runs', 'spectralDensity');
  checkSeed(o.seed, 'spectralDensity');
  const nodes: number[][] = [];
  const weights: number[][] = [];
  const traces: number[] = [];
  for (let r = 0; r < o.runs; r++) {
    // Runs use seeds seed, seed+1, …: independent starts, reproducible from one seed.
    const run = lanczos(op, { steps: o.steps, seed: o.seed + r, keepBasis: false });
    const { values, vectors } = tridiagonalEigen(run.alphas, run.betas);
    const w = vectors.map((s) => s[0]! ** 2);
    nodes.push(values);
    weights.push(w);
    traces.push(op.dim * values.reduce((a, t, i) => a + t * w[i]!, 0));
    o.onRun?.(r + 1, o.runs);
  }
  return { nodes, weights, trace: { ...meanStderr(traces), samples: traces } };
}

/** The density on `grid`, each node broadened by a Gaussian of width `sigma`. Integrates to ~1. */
export function densityOn(d: SpectralDensity, grid: readonly number[], sigma: number): number[] {
  const c = 1 / (Math.sqrt(2 * Math.PI) * sigma);
  return grid.map((t) => {
    let s = 0;
    d.nodes.forEach((ns, r) =>
      ns.forEach((x, i) => (s += d.weights[r]![i]! * c * Math.exp(-((t - x) ** 2) / (2 * sigma * sigma)))),
    );
    return s / d.nodes.length;
  });
}
