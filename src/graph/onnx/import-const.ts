/**
 * Constant evaluation at import: a node whose inputs are all known, fully numeric tensors of any rank (no free
 * dimension) is computed here, once, in plain JS. It extends the shape folding of import-fold.ts (1-D shape vectors,
 * symbolic) to what torch leaves in a graph when a mask or index table depends only on static sizes: Swin's shifted
 * window mask (ConstantOfShape → ScatterND slices → Reshape/Transpose → Sub → Equal/Not → Where) and its Range /
 * Mod / Expand index arithmetic. Trainable initializers are never folded (import.ts checks), so parameters stay
 * parameters.
 */
import type { Ctx, Known } from './import.js';
import { readTensor } from './proto.js';
import { isNum } from './shapes.js';

/** A dense numeric array: row-major data, 'int' (int64/bool in ONNX) or 'float'. */
export interface Arr {
  kind: 'int' | 'float';
  dims: number[];
  data: number[];
}
type Eval = (xs: (Arr | null)[], c: Ctx) => Arr[];

const numel = (dims: readonly number[]) => dims.reduce((p, d) => p * d, 1);
const norm = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);
const strides = (dims: readonly number[]) => {
  const s = new Array<number>(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) s[i] = s[i + 1]! * dims[i + 1]!;
  return s;
};
function need(xs: (Arr | null)[], i: number): Arr {
  const x = xs[i];
  if (!x) throw new Error(`input ${i} is missing`);
  return x;
}

/** Numpy broadcasting of two or more shapes. */
function broadcastDims(ds: readonly (readonly number[])[]): number[] {
  const rank = Math.max(...ds.map((d) => d.length));
  return Array.from({ length: rank }, (_, i) => {
    let out = 1;
    for (const d of ds) {
      const e = d[d.length - rank + i] ?? 1;
      if (e !== 1) {
        if (out !== 1 && out !== e)
          throw new Error(`shapes [${ds.map((x) => x.join(', ')).join('] and [')}] do not broadcast`);
        out = e;
      }
    }
    return out;
  });
}

/** Reads x at every index of `dims` (x broadcast to it). */
function broadcastTo(x: Arr, dims: readonly number[]): number[] {
  const n = numel(dims);
  if (x.data.length === n && x.dims.length === dims.length) return x.data;
  const xs = strides(x.dims);
  const os = strides(dims);
  const lead = dims.length - x.dims.length;
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    let src = 0;
    for (let d = 0; d < x.dims.length; d++) {
      const coord = Math.floor(i / os[d + lead]!) % dims[d + lead]!;
      src += (x.dims[d] === 1 ? 0 : coord) * xs[d]!;
    }
    out[i] = x.data[src]!;
  }
  return out;
}

function elementwise(kind: 'int' | 'float' | 'same', f: (...v: number[]) => number): (xs: (Arr | null)[]) => Arr[] {
  return (xs) => {
    const ins = xs.filter((x): x is Arr => x !== null);
    const dims = broadcastDims(ins.map((x) => x.dims));
    const cols = ins.map((x) => broadcastTo(x, dims));
    const data = Array.from({ length: numel(dims) }, (_, i) => f(...cols.map((c) => c[i]!)));
    const k = kind === 'same' ? (ins.some((x) => x.kind === 'float') ? 'float' : 'int') : kind;
    return [{ kind: k, dims, data }];
  };
}

function arith(
  f: (a: number, b: number) => number,
  intF: (a: number, b: number) => number,
): (xs: (Arr | null)[]) => Arr[] {
  return (xs) => {
    const float = xs.some((x) => x?.kind === 'float');
    return elementwise(float ? 'float' : 'int', float ? f : intF)(xs);
  };
}

function transpose(x: Arr, perm: readonly number[]): Arr {
  const dims = perm.map((p) => x.dims[p]!);
  const xs = strides(x.dims);
  const os = strides(dims);
  const data = new Array<number>(x.data.length);
  for (let i = 0; i < data.length; i++) {
    let src = 0;
    for (let d = 0; d < dims.length; d++) src += (Math.floor(i / os[d]!) % dims[d]!) * xs[perm[d]!]!;
    data[i] = x.data[src]!;
  }
  return { kind: x.kind, dims, data };
}

/** Elements of x at the index lists `idx[d]` along each axis (a cartesian selection). */
function select(x: Arr, idx: readonly (readonly number[])[]): Arr {
  const dims = idx.map((l) => l.length);
  const xs = strides(x.dims);
  const os = strides(dims);
  const data = new Array<number>(numel(dims));
  for (let i = 0; i < data.length; i++) {
    let src = 0;
    for (let d = 0; d < dims.length; d++) src += idx[d]![Math.floor(i / os[d]!) % dims[d]!]! * xs[d]!;
    data[i] = x.data[src]!;
  }
  return { kind: x.kind, dims, data };
}
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

function ints(c: Ctx, xs: (Arr | null)[], i: number, attr?: string): number[] | undefined {
  const x = xs[i];
  if (x) return x.data;
  return attr ? c.list(attr) : undefined;
}

const truncDiv = (a: number, b: number) => Math.trunc(a / b);
// ONNX Mod with fmod = 0 takes the divisor's sign (Python's %), with fmod = 1 the dividend's (C's fmod)
const pyMod = (a: number, b: number) => ((a % b) + b) % b;

export const CONST_EVAL: Record<string, Eval> = {
  Add: arith(
    (a, b) => a + b,
    (a, b) => a + b,
  ),
  Sub: arith(
    (a, b) => a - b,
    (a, b) => a - b,
  ),
  Mul: arith(
    (a, b) => a * b,
    (a, b) => a * b,
  ),
  Div: arith((a, b) => a / b, truncDiv),
  Mod: (xs, c) =>
    (c.num('fmod', 0) === 1
      ? arith(
          (a, b) => a % b,
          (a, b) => a % b,
        )
      : arith((a, b) => a - Math.floor(a / b) * b, pyMod))(xs),
  Pow: arith(
    (a, b) => a ** b,
    (a, b) => a ** b,
  ),
  Max: elementwise('same', Math.max),
  Min: elementwise('same', Math.min),
  Neg: elementwise('same', (a) => -a),
  Abs: elementwise('same', Math.abs),
  Sqrt: elementwise('float', Math.sqrt),
  Equal: elementwise('int', (a, b) => (a === b ? 1 : 0)),
  Less: elementwise('int', (a, b) => (a < b ? 1 : 0)),
  LessOrEqual: elementwise('int', (a, b) => (a <= b ? 1 : 0)),
  Greater: elementwise('int', (a, b) => (a > b ? 1 : 0)),
  GreaterOrEqual: elementwise('int', (a, b) => (a >= b ? 1 : 0)),
  Not: elementwise('int', (a) => (a ? 0 : 1)),
  And: elementwise('int', (a, b) => (a && b ? 1 : 0)),
  Or: elementwise('int', (a, b) => (a || b ? 1 : 0)),
  Where: (xs) => {
    const [a, b] = [need(xs, 1), need(xs, 2)];
    return elementwise(a.kind === 'float' || b.kind === 'float' ? 'float' : 'int', (k, p, q) => (k ? p : q))([
      need(xs, 0),
      a,
      b,
    ]);
  },
  Cast: (xs, c) => {
    const x = need(xs, 0);
    const to = c.num('to', 1);
    const float = to === 1 || to === 10 || to === 11 || to === 16;
    return [
      {
        kind: float ? 'float' : 'int',
        dims: x.dims,
        data: float || x.kind === 'int' ? x.data : x.data.map(to === 9 ? (v) => (v ? 1 : 0) : Math.trunc),
      },
    ];
  },
  Identity: (xs) => [need(xs, 0)],
  Reshape: (xs, c) => {
    const x = need(xs, 0);
    const t = need(xs, 1).data;
    const allowZero = c.num('allowzero', 0) === 1;
    const dims = t.map((d, i) => (d === 0 && !allowZero ? x.dims[i]! : d));
    const neg = dims.indexOf(-1);
    if (neg >= 0) dims[neg] = x.data.length / numel(dims.filter((_, i) => i !== neg));
    if (numel(dims) !== x.data.length) throw new Error(`cannot reshape [${x.dims.join(', ')}] to [${t.join(', ')}]`);
    return [{ ...x, dims }];
  },
  Flatten: (xs, c) => {
    const x = need(xs, 0);
    const axis = norm(c.num('axis', 1), x.dims.length);
    return [{ ...x, dims: [numel(x.dims.slice(0, axis)), numel(x.dims.slice(axis))] }];
  },
  Unsqueeze: (xs, c) => {
    const x = need(xs, 0);
    const axes = ints(c, xs, 1, 'axes')!;
    const rank = x.dims.length + axes.length;
    const ax = axes.map((a) => norm(a, rank));
    const dims: number[] = [];
    for (let i = 0, k = 0; i < rank; i++) dims.push(ax.includes(i) ? 1 : x.dims[k++]!);
    return [{ ...x, dims }];
  },
  Squeeze: (xs, c) => {
    const x = need(xs, 0);
    const axes = (ints(c, xs, 1, 'axes') ?? x.dims.flatMap((d, i) => (d === 1 ? [i] : []))).map((a) =>
      norm(a, x.dims.length),
    );
    return [{ ...x, dims: x.dims.filter((_, i) => !axes.includes(i)) }];
  },
  Transpose: (xs, c) => {
    const x = need(xs, 0);
    return [transpose(x, c.list('perm') ?? x.dims.map((_, i) => x.dims.length - 1 - i))];
  },
  Slice: (xs, c) => {
    const x = need(xs, 0);
    const starts = ints(c, xs, 1, 'starts')!;
    const ends = ints(c, xs, 2, 'ends')!;
    const axes = (ints(c, xs, 3, 'axes') ?? starts.map((_, i) => i)).map((a) => norm(a, x.dims.length));
    const steps = ints(c, xs, 4) ?? starts.map(() => 1);
    const idx = x.dims.map((n) => range(n));
    axes.forEach((ax, i) => {
      const n = x.dims[ax]!;
      const st = steps[i]!;
      const list: number[] = [];
      if (st > 0) {
        const cl = (v: number) => Math.min(Math.max(v < 0 ? v + n : v, 0), n);
        for (let k = cl(starts[i]!); k < cl(ends[i]!); k += st) list.push(k);
      } else {
        const s = Math.min(Math.max(starts[i]! < 0 ? starts[i]! + n : starts[i]!, -1), n - 1);
        const e = Math.min(Math.max(ends[i]! < 0 ? ends[i]! + n : ends[i]!, -1), n - 1);
        for (let k = s; k > e; k += st) list.push(k);
      }
      idx[ax] = list;
    });
    return [select(x, idx)];
  },
  Concat: (xs, c) => {
    const all = xs.filter((x): x is Arr => x !== null);
    const nonEmpty = all.filter((x) => x.data.length > 0);
    const ins = nonEmpty.length > 0 ? nonEmpty : all;
    const axis = norm(c.num('axis', 0), ins[0]!.dims.length);
    const dims = [...ins[0]!.dims];
    dims[axis] = ins.reduce((p, x) => p + x.dims[axis]!, 0);
    // move the axis to the front, append, move it back
    const perm = [axis, ...dims.map((_, i) => i).filter((i) => i !== axis)];
    const inv = perm.map((_, i) => perm.indexOf(i));
    const data = ins.flatMap((x) => transpose(x, perm).data);
    return [
      transpose(
        { kind: ins.some((x) => x.kind === 'float') ? 'float' : 'int', dims: perm.map((p) => dims[p]!), data },
        inv,
      ),
    ];
  },
  Gather: (xs, c) => {
    const x = need(xs, 0);
    const idx = need(xs, 1);
    const axis = norm(c.num('axis', 0), x.dims.length);
    const n = x.dims[axis]!;
    const flat = select(
      x,
      x.dims.map((d, i) => (i === axis ? idx.data.map((v) => (v < 0 ? v + n : v)) : range(d))),
    );
    return [{ ...flat, dims: [...x.dims.slice(0, axis), ...idx.dims, ...x.dims.slice(axis + 1)] }];
  },
  Expand: (xs) => {
    const x = need(xs, 0);
    const dims = broadcastDims([x.dims, need(xs, 1).data]);
    return [{ kind: x.kind, dims, data: broadcastTo(x, dims) }];
  },
  Tile: (xs) => {
    const x = need(xs, 0);
    const reps = need(xs, 1).data;
    return [
      select(
        x,
        x.dims.map((d, i) => Array.from({ length: d * reps[i]! }, (_, k) => k % d)),
      ),
    ];
  },
  Range: (xs) => {
    const [s, l, d] = [0, 1, 2].map((i) => need(xs, i).data[0]!) as [number, number, number];
    const n = Math.max(Math.ceil((l - s) / d), 0);
    return [
      {
        kind: xs.some((x) => x?.kind === 'float') ? 'float' : 'int',
        dims: [n],
        data: Array.from({ length: n }, (_, i) => s + i * d),
      },
    ];
  },
  ConstantOfShape: (xs, c) => {
    const dims = need(xs, 0).data;
    const t = c.a.get('value');
    const v =
      t && typeof t === 'object' && !Array.isArray(t) ? readTensor(t, 'ConstantOfShape value', c.im.file) : null;
    if (numel(dims) > 1 << 24) throw new Error(`constant of ${numel(dims)} elements is too large to fold`);
    return [
      {
        kind: v?.kind === 'float' ? 'float' : 'int',
        dims,
        data: new Array<number>(numel(dims)).fill(v ? Number(v.data[0] ?? 0) : 0),
      },
    ];
  },
  ScatterND: (xs, c) => {
    if (c.str('reduction', 'none') !== 'none') throw new Error('ScatterND with a reduction is not folded');
    const x = need(xs, 0);
    const idx = need(xs, 1);
    const upd = need(xs, 2);
    const k = idx.dims[idx.dims.length - 1]!;
    const xs_ = strides(x.dims);
    const slice = numel(x.dims.slice(k));
    const data = [...x.data];
    for (let j = 0; j < idx.data.length / k; j++) {
      let off = 0;
      for (let d = 0; d < k; d++) {
        const v = idx.data[j * k + d]!;
        off += (v < 0 ? v + x.dims[d]! : v) * xs_[d]!;
      }
      for (let e = 0; e < slice; e++) data[off + e] = upd.data[j * slice + e]!;
    }
    return [{ ...x, data }];
  },
};

/** The known input as a dense array, or null when it holds a free dimension. */
export function toArr(k: Known): Arr | null {
  if (k.kind === 'float') return { kind: 'float', dims: [...k.dims], data: Array.from(k.data) };
  return k.data.every(isNum) ? { kind: 'int', dims: [...k.dims], data: k.data as number[] } : null;
}

export function fromArr(a: Arr): Known {
  return a.kind === 'float'
    ? { kind: 'float', dims: a.dims, data: Float32Array.from(a.data) }
    : { kind: 'int', dims: a.dims, data: a.data };
}
