/**
 * Symbolic shapes and folding of ONNX shape arithmetic at import (Shape → Gather → Unsqueeze → Concat →
 * Reshape chains, ConstantOfShape/Equal/Where for `expand(-1)`...). A dimension is a number or a symbol: the
 * name of a free input dimension (`batch`) or an expression over symbols (`(batch*3)`). Shape tensors are
 * small integer vectors whose entries may be symbols; they are evaluated here, once, so the IR only sees
 * attributes (one IR, no shape ops at run time).
 */
import { ModelFormatError } from '../errors.js';

export type Dim = number | string;

/** An integer tensor known at import (rank ≤ 1 in practice), entries possibly symbolic. */
export interface IntValue {
  kind: 'int';
  dims: number[];
  data: Dim[];
}

export const isNum = (d: Dim): d is number => typeof d === 'number';

export function dimMul(a: Dim, b: Dim): Dim {
  if (isNum(a) && isNum(b)) return a * b;
  if (a === 1) return b;
  if (b === 1) return a;
  return `(${a}*${b})`;
}
export function dimDiv(a: Dim, b: Dim): Dim {
  if (isNum(a) && isNum(b)) return b === 0 ? 0 : Math.trunc(a / b);
  if (b === 1) return a;
  if (a === b) return 1;
  const m = typeof a === 'string' ? /^\((.+)\*(\d+)\)$/.exec(a) : null;
  if (m && Number(m[2]) === b) return m[1]!;
  return `(${a}/${b})`;
}
export function dimAdd(a: Dim, b: Dim): Dim {
  if (isNum(a) && isNum(b)) return a + b;
  if (a === 0) return b;
  if (b === 0) return a;
  return `(${a}+${b})`;
}
export function dimSub(a: Dim, b: Dim): Dim {
  if (isNum(a) && isNum(b)) return a - b;
  if (b === 0) return a;
  if (a === b) return 0;
  return `(${a}-${b})`;
}
export const dimProd = (ds: readonly Dim[]): Dim => ds.reduce<Dim>((p, d) => dimMul(p, d), 1);

/** Output size of a conv/pool window along one axis. */
export function windowOut(n: Dim, k: number, s: number, padTotal: number, dil = 1, ceil = false): Dim {
  const eff = dil * (k - 1) + 1;
  if (isNum(n)) return (ceil ? Math.ceil : Math.floor)((n + padTotal - eff) / s) + 1;
  return `win(${n},${k},${s},${padTotal},${dil}${ceil ? ',ceil' : ''})`;
}

/** Numpy broadcasting over symbolic shapes (a symbol against 1 keeps the symbol). */
export function broadcast(shapes: readonly (readonly Dim[])[], where: string): Dim[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const e = s[s.length - rank + i] ?? 1;
      if (e === 1 || e === d) continue;
      if (d === 1) d = e;
      else if (isNum(d) && isNum(e))
        throw new ModelFormatError(
          `${where}: shapes [${shapes.map((x) => x.join(', ')).join('] and [')}] do not broadcast`,
        );
      else if (isNum(e)) d = e; // a symbol meeting a concrete size > 1 must be that size
    }
    out.push(d);
  }
  return out;
}

/** Resolves an ONNX Reshape target against the input shape (0 copies unless allowzero, -1 inferred). */
export function reshapeOut(input: readonly Dim[], target: readonly Dim[], allowZero: boolean): Dim[] {
  const out = target.map((d, i) => (d === 0 && !allowZero ? input[i]! : d));
  const neg = out.findIndex((d) => d === -1);
  if (neg < 0) return out;
  const known = out.filter((_, i) => i !== neg);
  out[neg] = quotient(input, known);
  return out;
}

/** prod(a) / prod(b), cancelling symbols that appear in both. */
function quotient(a: readonly Dim[], b: readonly Dim[]): Dim {
  const rest = [...a];
  let den = 1;
  const leftover: Dim[] = [];
  for (const d of b) {
    if (isNum(d)) den *= d;
    else {
      const k = rest.indexOf(d);
      if (k >= 0) rest.splice(k, 1);
      else leftover.push(d);
    }
  }
  let num = 1;
  const syms: Dim[] = [];
  for (const d of rest)
    if (isNum(d)) num *= d;
    else syms.push(d);
  let q: Dim = dimProd([...syms, num]);
  q = dimDiv(q, den);
  for (const d of leftover) q = dimDiv(q, d);
  return q;
}

// ---- folding of integer shape tensors ----------------------------------------------------------------

const norm = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);
function clampIndex(v: number, n: number): number {
  return Math.min(Math.max(v < 0 ? v + n : v, 0), n);
}

/** Elementwise op over int values with scalar/vector broadcasting. */
export function intBinary(a: IntValue, b: IntValue, f: (x: Dim, y: Dim) => Dim): IntValue {
  const n = Math.max(a.data.length, b.data.length);
  if (a.data.length !== n && a.data.length !== 1) throw new Error(`cannot broadcast [${a.dims}] with [${b.dims}]`);
  if (b.data.length !== n && b.data.length !== 1) throw new Error(`cannot broadcast [${a.dims}] with [${b.dims}]`);
  const data = Array.from({ length: n }, (_, i) =>
    f(a.data[a.data.length === 1 ? 0 : i]!, b.data[b.data.length === 1 ? 0 : i]!),
  );
  return { kind: 'int', dims: a.dims.length >= b.dims.length ? a.dims : b.dims, data };
}

/** Dims are ≥ 0, so a symbol never equals a negative constant; anything else undecidable is an error. */
export function dimEq(x: Dim, y: Dim): Dim {
  if (x === y) return 1;
  if (isNum(x) && isNum(y)) return 0;
  const c = isNum(x) ? x : (y as number);
  if (isNum(c) && c < 0) return 0;
  throw new Error(`cannot decide whether ${x} equals ${y} at import`);
}

export function intGather(data: IntValue, idx: IntValue, axis: number): IntValue {
  if (data.dims.length !== 1 || norm(axis, 1) !== 0)
    throw new Error('only 1-D shape tensors can be gathered at import');
  const n = data.data.length;
  const out = idx.data.map((i) => {
    if (!isNum(i)) throw new Error('symbolic gather index');
    const v = data.data[i < 0 ? i + n : i];
    if (v === undefined) throw new Error(`gather index ${i} out of range for ${n} entries`);
    return v;
  });
  return { kind: 'int', dims: idx.dims, data: out };
}

export function intSlice(data: IntValue, starts: number[], ends: number[], axes: number[], steps: number[]): IntValue {
  if (data.dims.length !== 1) throw new Error('only 1-D shape tensors can be sliced at import');
  if (axes.some((a) => norm(a, 1) !== 0)) throw new Error('slice axis out of range');
  const n = data.data.length;
  const step = steps[0] ?? 1;
  const out: Dim[] = [];
  if (step > 0) for (let i = clampIndex(starts[0]!, n); i < clampIndex(ends[0]!, n); i += step) out.push(data.data[i]!);
  else {
    const s = Math.min(starts[0]! < 0 ? starts[0]! + n : starts[0]!, n - 1);
    const e = ends[0]! < -n ? -1 : ends[0]! < 0 ? ends[0]! + n : ends[0]!;
    for (let i = s; i > e; i += step) out.push(data.data[i]!);
  }
  return { kind: 'int', dims: [out.length], data: out };
}

export function intConcat(vs: IntValue[]): IntValue {
  const data = vs.flatMap((v) => v.data);
  return { kind: 'int', dims: [data.length], data };
}
