/** Dense linear algebra for OBS blocks and Lanczos (small matrices, usually float64). */
import { native } from './native.js';
import { Tensor } from './tensor.js';

export function matmul(a: Tensor, b: Tensor): Tensor {
  return a.matmul(b);
}
/** Lower Cholesky factor L of a symmetric positive-definite A = L Lᵀ. */
export function cholesky(a: Tensor): Tensor {
  return new Tensor(native.cholesky(a.handle));
}
/** A⁻¹ from the lower Cholesky factor L of A. */
export function choleskyInverse(l: Tensor): Tensor {
  return new Tensor(native.choleskyInverse(l.handle));
}
/** Solves A X = B. */
export function solve(a: Tensor, b: Tensor): Tensor {
  return new Tensor(native.solve(a.handle, b.handle));
}
export function inv(a: Tensor): Tensor {
  return new Tensor(native.inv(a.handle));
}
/** Eigen-decomposition of a symmetric matrix: ascending eigenvalues and column eigenvectors. */
export function eigh(a: Tensor): { values: Tensor; vectors: Tensor } {
  const [v, q] = native.eigh(a.handle);
  return { values: new Tensor(v), vectors: new Tensor(q) };
}
export function qr(a: Tensor): { q: Tensor; r: Tensor } {
  const [q, r] = native.qr(a.handle);
  return { q: new Tensor(q), r: new Tensor(r) };
}
