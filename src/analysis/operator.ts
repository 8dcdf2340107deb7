/**
 * One linear-operator abstraction for every curvature matrix: an operator is a
 * dimension, a self-adjointness flag and a matrix-vector product over flat 1-D vectors. Trace, Lanczos,
 * spectral density and alignment are free functions over it, so a dense 10×10 matrix tests them all.
 *
 * Vectors are flat tensors of the operator's dtype; `FlatLayout` maps a flat vector to per-parameter tensors
 * (parameter order, row-major) and back.
 */
import { cat, noGrad, scope, ShapeError, TapirError, tensor, type DType, type Tensor } from '../engine/index.js';

export interface LinearOperator {
  readonly dim: number;
  readonly selfAdjoint: boolean;
  readonly dtype: DType;
  /** A v for a flat `[dim]` vector; the result is a new `[dim]` tensor owned by the caller. */
  matvec(v: Tensor): Tensor;
  /** Optional: runs `fn`, a burst of matvecs with A fixed, letting the operator cache work between them. */
  session?<T>(fn: () => T): T;
}

/** `op.session(fn)` where the operator has one, else `fn()`. */
export function inSession<T>(op: LinearOperator, fn: () => T): T {
  return op.session ? op.session(fn) : fn();
}

/** Per-parameter tensors ↔ one flat vector. */
export interface FlatLayout {
  readonly names: readonly string[];
  readonly shapes: readonly (readonly number[])[];
  /** Start of each parameter in the flat vector. */
  readonly offsets: readonly number[];
  readonly dim: number;
}

export function makeLayout(entries: readonly { name: string; shape: readonly number[] }[]): FlatLayout {
  const offsets: number[] = [];
  let dim = 0;
  for (const e of entries) {
    offsets.push(dim);
    dim += e.shape.reduce((a, b) => a * b, 1);
  }
  return { names: entries.map((e) => e.name), shapes: entries.map((e) => [...e.shape]), offsets, dim };
}

/** Concatenates per-parameter tensors (in layout order) into one flat vector. */
export function flatten(layout: FlatLayout, parts: readonly Tensor[] | ReadonlyMap<string, Tensor>): Tensor {
  const list =
    parts instanceof Map
      ? layout.names.map((n) => {
          const t = parts.get(n);
          if (!t) throw new ShapeError(`flatten: no tensor for parameter '${n}'`, { context: { param: n } });
          return t;
        })
      : (parts as readonly Tensor[]);
  if (list.length !== layout.names.length)
    throw new ShapeError(`flatten: ${list.length} tensors for a layout of ${layout.names.length} parameters`);
  return scope(() =>
    cat(
      list.map((t, i) => {
        if (t.numel !== layout.shapes[i]!.reduce((a, b) => a * b, 1))
          throw new ShapeError(
            `flatten: '${layout.names[i]}' has shape [${t.shape.join(', ')}], the layout expects [${layout.shapes[i]!.join(', ')}]`,
            { context: { param: layout.names[i] } },
          );
        return t.detach().reshape([-1]);
      }),
      0,
    ),
  );
}

/** Splits a flat `[dim]` vector into per-parameter tensors (views reshaped to each parameter's shape). */
export function unflatten(layout: FlatLayout, v: Tensor): Tensor[] {
  checkVector(layout.dim, v, 'unflatten');
  return layout.names.map((_, i) => {
    const n = layout.shapes[i]!.reduce((a, b) => a * b, 1);
    return scope(() => v.narrow(0, layout.offsets[i]!, n).reshape(layout.shapes[i]!));
  });
}

export function checkVector(dim: number, v: Tensor, where: string): void {
  if (v.ndim !== 1 || v.shape[0] !== dim)
    throw new ShapeError(`${where}: expected a flat vector of length ${dim}, got shape [${v.shape.join(', ')}]`, {
      fix: 'flatten per-parameter tensors with flatten(layout, tensors)',
    });
}

/** A dense symmetric (or general) matrix as an operator; for tests and small blocks. The matrix is copied. */
export function denseOperator(matrix: Tensor, o: { selfAdjoint?: boolean } = {}): LinearOperator & { dispose(): void } {
  if (matrix.ndim !== 2 || matrix.shape[0] !== matrix.shape[1])
    throw new ShapeError(`denseOperator: matrix must be square [n, n], got [${matrix.shape.join(', ')}]`);
  const m = noGrad(() => matrix.detach().clone());
  const dim = m.shape[0]!;
  const selfAdjoint =
    o.selfAdjoint ??
    noGrad(() => scope(() => m.sub(m.t()).abs().max().item() <= 1e-12 * Math.max(1, m.abs().max().item())));
  return {
    dim,
    selfAdjoint,
    dtype: m.dtype,
    matvec: (v) => {
      checkVector(dim, v, 'denseOperator.matvec');
      return noGrad(() => m.matmul(v));
    },
    dispose: () => m.dispose(),
  };
}

/** The dense matrix of an operator, column by column (dim matvecs; for tests on tiny problems). */
export function materialize(op: LinearOperator): Tensor {
  if (op.dim > 20000)
    throw new TapirError('E_CONFIG', `materialize: dim ${op.dim} is too large for a dense matrix`, {
      fix: 'use the matrix-free estimators (trace, lanczos) instead',
    });
  return scope(() => {
    const cols: Tensor[] = [];
    for (let j = 0; j < op.dim; j++) {
      const e = basis(op.dim, j, op.dtype);
      cols.push(op.matvec(e).reshape([op.dim, 1]));
      e.dispose();
    }
    return cat(cols, 1);
  });
}

function basis(n: number, j: number, dtype: DType): Tensor {
  const a = new Float64Array(n);
  a[j] = 1;
  return fromFloat64(a, dtype);
}

/** A float64 JS array as a tensor of `dtype`. */
export function fromFloat64(a: Float64Array, dtype: DType): Tensor {
  return scope(() => {
    const t = tensor(a, [a.length], { dtype: 'float64' });
    return dtype === 'float64' ? t : t.to(dtype);
  });
}
