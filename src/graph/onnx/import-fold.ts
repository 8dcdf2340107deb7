/**
 * Folding rules of the ONNX importer: shape arithmetic evaluated at import when every input is known
 * (Shape, Constant, Gather/Slice/Concat/Unsqueeze of shape vectors, Equal/Where, ConstantOfShape, Cast...).
 * A rule returns null when it cannot fold; the node then runs as a compute op if it has one.
 */
import type { Ctx, FloatValue, Known } from './import.js';
import { readTensor } from './proto.js';
import {
  dimAdd,
  dimDiv,
  dimEq,
  dimMul,
  dimSub,
  intBinary,
  intConcat,
  intGather,
  intSlice,
  isNum,
  reshapeOut,
  type Dim,
  type IntValue,
} from './shapes.js';

export type Fold = (c: Ctx) => Known[] | null;

const int = (dims: number[], data: Dim[]): IntValue => ({ kind: 'int', dims, data });
const asInt = (c: Ctx, i: number): IntValue | null => {
  const k = c.k(i);
  return k && k.kind === 'int' ? k : null;
};
const norm = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/** Axes from an input (opset ≥ 13) or an attribute (older opsets). */
export function axesOf(c: Ctx, i: number, attr = 'axes'): number[] | undefined {
  if (c.has(i)) return c.nums(i, attr);
  return c.list(attr);
}

export function transpose2d(v: FloatValue): FloatValue {
  const [r, k] = v.dims as [number, number];
  const out = new Float32Array(r * k);
  for (let i = 0; i < r; i++) for (let j = 0; j < k; j++) out[j * r + i] = v.data[i * k + j]!;
  return { kind: 'float', dims: [k, r], data: out };
}

/** Shape vectors only (equal dims, or one side a single value): anything else is left to import-const.ts. */
const vectorLike = (vs: readonly IntValue[]) =>
  vs.every((v) => v.dims.length <= 1) &&
  new Set(vs.filter((v) => v.data.length !== 1).map((v) => v.data.length)).size <= 1;

function binaryFold(f: (a: Dim, b: Dim) => Dim): Fold {
  return (c) => {
    const a = asInt(c, 0);
    const b = asInt(c, 1);
    return a && b && vectorLike([a, b]) ? [intBinary(a, b, f)] : null;
  };
}

export const FOLD: Record<string, Fold> = {
  Constant: (c) => {
    const t = c.a.get('value');
    if (t && typeof t === 'object' && !Array.isArray(t)) {
      const v = readTensor(t, 'Constant value', c.im.file);
      return [v.kind === 'float' ? { kind: 'float', dims: v.dims, data: v.data } : int(v.dims, v.data)];
    }
    const ints = c.a.get('value_ints') ?? c.a.get('value_int');
    if (ints !== undefined)
      return [Array.isArray(ints) ? int([ints.length], ints as number[]) : int([], [ints as number])];
    const f = c.a.get('value_floats') ?? c.a.get('value_float');
    if (f !== undefined)
      return [
        Array.isArray(f)
          ? { kind: 'float', dims: [f.length], data: Float32Array.from(f as number[]) }
          : { kind: 'float', dims: [], data: Float32Array.of(f as number) },
      ];
    return c.im.fail(c.n, 'Constant without a supported value attribute');
  },
  Shape: (c) => {
    const s = c.sh(0);
    const r = s.length;
    const start = norm(c.num('start', 0), r);
    const end = c.a.has('end') ? Math.min(norm(c.num('end', r), r), r) : r;
    const data = s.slice(start, end);
    return [int([data.length], data)];
  },
  Identity: (c) => [c.k(0)!],
  /** A transposed constant matrix (tapir's own exports write linear weights as Transpose(W [out, in]) → MatMul). */
  Transpose: (c) => {
    const k = c.k(0)!;
    const perm = c.list('perm') ?? [1, 0];
    if (k.kind !== 'float' || k.dims.length !== 2 || perm[0] !== 1) return null;
    c.im.transposedFrom.set(c.n.output![0]!, c.name(0));
    return [transpose2d(k)];
  },
  Cast: (c) => {
    const k = c.k(0)!;
    const to = c.num('to', 1);
    const toFloat = to === 1 || to === 10 || to === 11 || to === 16;
    if (k.kind === 'int' && !toFloat) return [k];
    if (k.kind === 'float' && toFloat) return [k];
    if (k.kind === 'int' && k.data.every(isNum))
      return [{ kind: 'float', dims: k.dims, data: Float32Array.from(k.data as number[]) }];
    if (k.kind === 'float') return [int(k.dims, Array.from(k.data, Math.trunc))];
    return null;
  },
  Gather: (c) => {
    const d = asInt(c, 0);
    const i = asInt(c, 1);
    return d && i ? [intGather(d, i, c.num('axis', 0))] : null;
  },
  Slice: (c) => {
    const d = asInt(c, 0);
    if (!d) return null;
    const starts = c.has(1) ? c.nums(1, 'starts') : c.list('starts')!;
    const ends = c.has(2) ? c.nums(2, 'ends') : c.list('ends')!;
    return [intSlice(d, starts, ends, axesOf(c, 3) ?? [0], c.has(4) ? c.nums(4, 'steps') : [1])];
  },
  Concat: (c) => {
    const vs = c.inputs.filter((x) => x !== '').map((_, i) => asInt(c, i));
    return vs.every((v) => v !== null && v.dims.length === 1) ? [intConcat(vs as IntValue[])] : null;
  },
  Unsqueeze: (c) => {
    const d = asInt(c, 0);
    if (!d) return null;
    const axes = axesOf(c, 1)!;
    const rank = d.dims.length + axes.length;
    const ax = axes.map((a) => norm(a, rank));
    const dims: number[] = [];
    for (let i = 0, k = 0; i < rank; i++) dims.push(ax.includes(i) ? 1 : d.dims[k++]!);
    return [int(dims, d.data)];
  },
  Squeeze: (c) => {
    const d = asInt(c, 0);
    if (!d) return null;
    const axes = (axesOf(c, 1) ?? d.dims.flatMap((x, i) => (x === 1 ? [i] : []))).map((a) => norm(a, d.dims.length));
    return [
      int(
        d.dims.filter((_, i) => !axes.includes(i)),
        d.data,
      ),
    ];
  },
  Reshape: (c) => {
    const d = asInt(c, 0);
    if (!d) return null;
    const dims = reshapeOut(d.dims, c.nums(1, 'shape'), c.num('allowzero', 0) === 1);
    if (!dims.every(isNum)) return null;
    return [int(dims as number[], d.data)];
  },
  ConstantOfShape: (c) => {
    const dims = c.nums(0, 'shape');
    const t = c.a.get('value');
    const v =
      t && typeof t === 'object' && !Array.isArray(t) ? readTensor(t, 'ConstantOfShape value', c.im.file) : null;
    const n = dims.reduce((p, x) => p * x, 1);
    if (n > 1 << 24) c.im.fail(c.n, `constant of ${n} elements is too large to fold`);
    if (v && v.kind === 'float') return [{ kind: 'float', dims, data: new Float32Array(n).fill(v.data[0] ?? 0) }];
    return [int(dims, new Array<Dim>(n).fill(v ? ((v.data[0] as number) ?? 0) : 0))];
  },
  Add: binaryFold(dimAdd),
  Sub: binaryFold(dimSub),
  Mul: binaryFold(dimMul),
  Div: binaryFold(dimDiv),
  Equal: binaryFold(dimEq),
  Where: (c) => {
    const [cond, a, b] = [asInt(c, 0), asInt(c, 1), asInt(c, 2)];
    if (!cond || !a || !b || !vectorLike([cond, a, b])) return null;
    const n = Math.max(cond.data.length, a.data.length, b.data.length);
    const at = (v: IntValue, i: number) => v.data[v.data.length === 1 ? 0 : i]!;
    const data = Array.from({ length: n }, (_, i) => (at(cond, i) ? at(a, i) : at(b, i)));
    return [int([n], data)];
  },
};
