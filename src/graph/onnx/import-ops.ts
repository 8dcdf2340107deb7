/**
 * Compute rules of the ONNX importer: each RUNTIME row emits IR nodes (ops.ts names) and the symbolic shapes
 * of their outputs. Shape arithmetic is folded by the FOLD rows (import-fold.ts) before these run.
 */
import type { Ctx, FloatValue } from './import.js';
import { axesOf, transpose2d } from './import-fold.js';
import { broadcast, dimAdd, dimDiv, dimProd, isNum, reshapeOut, windowOut, type Dim } from './shapes.js';
import { parseEinsum } from '../ops-einsum.js';
import { COORD_MODES, NEAREST_MODES } from '../ops-resize.js';

export { FOLD } from './import-fold.js';
type Run = (c: Ctx) => void;

const norm = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);
const BIG = Number.MAX_SAFE_INTEGER;

const same = (c: Ctx, op: string, a: Record<string, number | number[] | string | boolean> = {}) =>
  c.im.emit(c.n, op, [c.in(0)], a, [c.sh(0)]);

/**
 * Window padding: explicit `pads` [top, left, bottom, right], or `auto_pad` kept as the IR's `autoPad`, which the
 * op resolves from the input size at run time (resolution stays free). Returns the IR attributes and a function
 * giving the output size along spatial axis i.
 */
function windowPad(
  c: Ctx,
  k: number[],
  s: number[],
  d: number[],
  ceil = false,
): { a: Record<string, number[] | string>; out: (n: Dim, i: number) => Dim } {
  const auto = c.str('auto_pad', 'NOTSET');
  if (auto === 'SAME_UPPER' || auto === 'SAME_LOWER')
    return {
      a: { autoPad: auto.toLowerCase() },
      out: (n, i) => (isNum(n) ? Math.ceil(n / s[i]!) : `ceil(${n}/${s[i]})`),
    };
  const p = auto === 'VALID' ? [0, 0, 0, 0] : (c.list('pads') ?? [0, 0, 0, 0]);
  if (p.length !== 4) c.im.fail(c.n, `only 2-D windows are supported (pads [${p.join(', ')}])`);
  return { a: { padding: p }, out: (n, i) => windowOut(n, k[i]!, s[i]!, p[i]! + p[i + 2]!, d[i], ceil) };
}

function window(c: Ctx, op: 'maxpool' | 'avgpool'): void {
  c.onlyFirstOutput();
  const x = c.sh(0);
  const k = c.list('kernel_shape')!;
  if (!k || k.length !== 2) c.im.fail(c.n, 'only 2-D pooling is supported');
  const s = c.list('strides') ?? [1, 1];
  const d = c.list('dilations') ?? [1, 1];
  if (d.some((v) => v !== 1)) c.im.fail(c.n, 'dilated pooling is not supported');
  const ceil = c.num('ceil_mode', 0) === 1;
  const wp = windowPad(c, k, s, d, ceil);
  const a: Record<string, number | number[] | boolean | string> = { kernel: k, stride: s, ...wp.a, ceil };
  if (op === 'avgpool') a.countIncludePad = c.num('count_include_pad', 0) === 1;
  c.im.emit(c.n, op, [c.in(0)], a, [[x[0]!, x[1]!, wp.out(x[2]!, 0), wp.out(x[3]!, 1)]]);
}

function binary(op: string): Run {
  return (c) => c.im.emit(c.n, op, [c.in(0), c.in(1)], {}, [broadcast([c.sh(0), c.sh(1)], `${c.n.name}`)]);
}

/** timm/torch module path from a node name: "/blocks/blocks.0/attn/qkv/MatMul" → "blocks.0.attn.qkv". */
function modulePath(nodeName: string): string {
  const segs = nodeName.split('/').filter(Boolean).slice(0, -1);
  const out: string[] = [];
  for (const s of segs) {
    if (out.length && s.startsWith(`${out[out.length - 1]}.`)) out.pop();
    out.push(s);
  }
  return out.join('.');
}

// Scaled in place on one float32 copy (TypedArray.from with a mapping function builds a JS list first, fatal near
// 10⁸ weights).
function scaled(v: FloatValue, s: number): FloatValue {
  if (s === 1) return v;
  const data = new Float32Array(v.data);
  for (let i = 0; i < data.length; i++) data[i]! *= s;
  return { ...v, data };
}

/** MatMul by a constant [in, out] matrix (+ a following bias Add) → one `linear` with weight [out, in]. */
function matmul(c: Ctx): void {
  const im = c.im;
  const w = c.k(1);
  if (!w || w.kind !== 'float' || w.dims.length !== 2 || c.k(0)) {
    const a = c.sh(0);
    const b = c.sh(1);
    const ab = a.length === 1 ? [1, ...a] : a;
    const bb = b.length === 1 ? [...b, 1] : b;
    const batch = broadcast([ab.slice(0, -2), bb.slice(0, -2)], c.n.name ?? '');
    const out = [
      ...batch,
      ...(a.length === 1 ? [] : [ab[ab.length - 2]!]),
      ...(b.length === 1 ? [] : [bb[bb.length - 1]!]),
    ];
    return im.emit(c.n, 'matmul', [c.in(0), c.in(1)], {}, [out]);
  }
  const outF = w.dims[1]!;
  let outName = c.n.output![0]!;
  let bias = '';
  const cons = im.consumers.get(outName) ?? [];
  const add = cons.length === 1 && cons[0]!.opType === 'Add' ? cons[0]! : undefined;
  if (add) {
    const other = add.input!.find((x) => x !== outName) ?? '';
    const bv = im.known.get(other);
    if (bv && bv.kind === 'float' && bv.data.length === outF && bv.dims.at(-1) === outF) {
      bias = other;
      if (bv.dims.length !== 1) im.known.set(other, { ...bv, dims: [outF] });
      im.skip.add(add);
      outName = add.output![0]!;
    }
  }
  const src = im.transposedFrom.get(c.name(1));
  const x = c.sh(0);
  if (src !== undefined && im.fromInit.has(src)) {
    im.emit(
      c.n,
      'linear',
      [c.in(0), im.use(src, 'weight'), bias ? im.use(bias, 'bias') : ''],
      {},
      [[...x.slice(0, -1), outF]],
      [outName],
    );
    return;
  }
  // torch's names: <module>.bias → <module>.weight; nn.MultiheadAttention's in_proj_bias → in_proj_weight
  const wName = bias.endsWith('.bias')
    ? `${bias.slice(0, -5)}.weight`
    : bias.endsWith('_bias')
      ? `${bias.slice(0, -5)}_weight`
      : !c.name(1).includes('::')
        ? c.name(1)
        : `${modulePath(c.n.name ?? '') || c.name(1)}.weight`;
  const wt = im.addKnown(wName, transpose2d(w), 'weight');
  im.emit(c.n, 'linear', [c.in(0), wt, bias ? im.use(bias, 'bias') : ''], {}, [[...x.slice(0, -1), outF]], [outName]);
}

function gemm(c: Ctx): void {
  const b = c.k(1);
  if (!b || b.kind !== 'float' || c.num('transA', 0) !== 0)
    c.im.fail(c.n, 'only Gemm with a constant B and transA = 0 (a linear layer) is supported');
  const transB = c.num('transB', 0) === 1;
  const w = scaled(transB ? b : transpose2d(b), c.num('alpha', 1));
  const outF = w.dims[0]!;
  const wName =
    c.im.fromInit.has(c.name(1)) && !c.name(1).includes('::') && transB && c.num('alpha', 1) === 1
      ? c.in(1, 'weight')
      : c.im.addKnown(c.name(1), w, 'weight');
  let bias = '';
  if (c.has(2)) {
    const cv = c.k(2);
    if (!cv || cv.kind !== 'float' || (cv.data.length !== outF && cv.data.length !== 1))
      c.im.fail(c.n, 'Gemm bias C must be a constant of size [out] or a scalar');
    const beta = c.num('beta', 1);
    if (cv.dims.length === 1 && cv.data.length === outF && beta === 1) bias = c.in(2, 'bias');
    else
      bias = c.im.addKnown(
        c.name(2),
        {
          kind: 'float',
          dims: [outF],
          data: Float32Array.from({ length: outF }, (_, i) => beta * cv.data[cv.data.length === 1 ? 0 : i]!),
        },
        'bias',
      );
  }
  c.im.emit(c.n, 'linear', [c.in(0), wName, bias], {}, [[c.sh(0)[0]!, outF]]);
}

function reshape(c: Ctx): void {
  const x = c.sh(0);
  const t = c.ints(1, 'shape');
  const allowZero = c.num('allowzero', 0) === 1;
  const target = t.map((d, i) => (isNum(d) ? d : !allowZero && x[i] === d ? 0 : d));
  const free = target.filter((d) => !isNum(d) || d === -1);
  if (free.length > 1) c.im.fail(c.n, `reshape target [${t.join(', ')}] has more than one size unknown at import`);
  const attr = target.map((d) => (isNum(d) ? d : -1));
  c.im.emit(c.n, 'reshape', [c.in(0)], { shape: attr, allowzero: allowZero }, [reshapeOut(x, t, allowZero)]);
}

function expand(c: Ctx): void {
  const x = c.sh(0);
  const t = c.ints(1, 'shape');
  const out = broadcast([x, t], c.n.name ?? '');
  const lead = out.length - x.length;
  const shape: number[] = [];
  const refDims: number[] = [];
  let ref = '';
  out.forEach((d, i) => {
    const xi = i >= lead ? x[i - lead]! : undefined;
    if (xi === d && i >= lead) {
      shape.push(-1);
      refDims.push(-1);
      return;
    }
    if (isNum(d)) {
      shape.push(d);
      refDims.push(-1);
      return;
    }
    const src = c.im.symSource.get(d);
    if (!src || (ref && ref !== src.value))
      c.im.fail(c.n, `expand to [${out.join(', ')}]: size ${d} is not known at run time`);
    ref = src.value;
    shape.push(-1);
    refDims.push(src.dim);
  });
  if (ref) c.im.emit(c.n, 'expanddyn', [c.in(0), ref], { shape, refDims }, [out]);
  else c.im.emit(c.n, 'expand', [c.in(0)], { shape }, [out]);
}

function slice(c: Ctx): void {
  const x = c.sh(0);
  const starts = c.has(1) ? c.nums(1, 'starts') : c.list('starts')!;
  const endsRaw = c.has(2) ? c.ints(2, 'ends') : c.list('ends')!;
  const axes = (axesOf(c, 3) ?? starts.map((_, i) => i)).map((a) => norm(a, x.length));
  const steps = c.has(4) ? c.nums(4, 'steps') : starts.map(() => 1);
  const ends = endsRaw.map((e, i) =>
    isNum(e)
      ? Math.max(-BIG, Math.min(BIG, e))
      : e === x[axes[i]!]
        ? BIG
        : c.im.fail(c.n, `slice end ${e} is not known at import`),
  );
  const out = [...x];
  axes.forEach((ax, i) => {
    const n = x[ax]!;
    const [s, e, st] = [starts[i]!, ends[i]!, steps[i]!];
    if (isNum(n)) {
      const cl = (v: number) => Math.min(Math.max(v < 0 ? v + n : v, 0), n);
      out[ax] =
        st > 0
          ? Math.max(0, Math.ceil((cl(e) - cl(s)) / st))
          : Math.max(0, Math.ceil((Math.min(s < 0 ? s + n : s, n - 1) - (e < 0 ? e + n : e)) / st));
    } else out[ax] = s === 0 && e >= BIG && st === 1 ? n : `slice(${n},${s},${e},${st})`;
  });
  c.im.emit(c.n, 'slice', [c.in(0)], { starts, ends, axes, steps }, [out]);
}

function split(c: Ctx): void {
  const x = c.sh(0);
  const axis = norm(c.num('axis', 0), x.length);
  const nOut = c.n.output!.length;
  let sizes = c.has(1) ? c.nums(1, 'split') : c.list('split');
  const n = x[axis]!;
  if (!sizes && isNum(n)) {
    const part = Math.ceil(n / nOut);
    sizes = Array.from({ length: nOut }, (_, i) => Math.min(part, n - part * i));
  }
  const shapes = Array.from({ length: nOut }, (_, i) =>
    x.map((d, k) => (k === axis ? (sizes ? sizes[i]! : dimDiv(n, nOut)) : d)),
  );
  c.im.emit(c.n, 'split', [c.in(0)], sizes ? { axis, split: sizes } : { axis, parts: nOut }, shapes);
}

/**
 * ReduceSum/Mean/Max/Min/L2: axes from the input (ReduceSum from opset 13, all from opset 18) or the attribute;
 * no axes reduces all of them unless noop_with_empty_axes makes the node an identity.
 */
function reduce(op: string): Run {
  return (c) => {
    const x = c.sh(0);
    const given = axesOf(c, 1);
    if ((given === undefined || given.length === 0) && c.num('noop_with_empty_axes', 0) === 1)
      return same(c, 'identity');
    const axes = (given && given.length > 0 ? given : x.map((_, i) => i)).map((a) => norm(a, x.length));
    const keep = c.num('keepdims', 1) === 1;
    const out = keep ? x.map((d, i) => (axes.includes(i) ? 1 : d)) : x.filter((_, i) => !axes.includes(i));
    c.im.emit(c.n, op, [c.in(0)], { axes, keepdims: keep }, [out]);
  };
}

function variadic(op: string): Run {
  return (c) => {
    const ins = c.inputs.map((_, i) => i).filter((i) => c.has(i));
    c.im.emit(
      c.n,
      op,
      ins.map((i) => c.in(i)),
      {},
      [
        broadcast(
          ins.map((i) => c.sh(i)),
          c.n.name ?? '',
        ),
      ],
    );
  };
}

/** Resize (opset 11–19) of the two spatial axes of an NCHW tensor, nearest or linear; see ops-resize.ts. */
function resizeRule(c: Ctx): void {
  const x = c.sh(0);
  const mode = c.str('mode', 'nearest');
  const coord = c.str('coordinate_transformation_mode', 'half_pixel');
  const nearest = c.str('nearest_mode', 'round_prefer_floor');
  const fix = 'export with mode nearest or linear (bilinear) and a torch-style coordinate mode, or report the pattern';
  if (x.length !== 4) c.im.fail(c.n, `only 4-D (NCHW) inputs are resized, got rank ${x.length}`, fix);
  if (mode !== 'nearest' && mode !== 'linear')
    c.im.fail(c.n, `Resize mode '${mode}' is not supported (nearest, linear)`, fix);
  if (!(COORD_MODES as readonly string[]).includes(coord))
    c.im.fail(c.n, `coordinate_transformation_mode '${coord}' is not supported (${COORD_MODES.join(', ')})`, fix);
  if (!(NEAREST_MODES as readonly string[]).includes(nearest))
    c.im.fail(c.n, `nearest_mode '${nearest}' is not supported`, fix);
  if (c.num('antialias', 0) !== 0) c.im.fail(c.n, 'antialiased Resize is not supported', fix);
  if (c.str('keep_aspect_ratio_policy', 'stretch') !== 'stretch')
    c.im.fail(c.n, 'keep_aspect_ratio_policy other than stretch is not supported', fix);
  const axes = c.list('axes')?.map((a) => norm(a, 4));
  if (axes && axes.join() !== '2,3')
    c.im.fail(c.n, `Resize over axes [${axes.join(', ')}] is not supported (only H and W)`, fix);
  const k = axes ? 0 : 2;
  const a: Record<string, string | number[]> = { mode, coord, ...(mode === 'nearest' ? { nearest } : {}) };
  let out: Dim[];
  const sizesIn = c.has(3) ? c.ints(3, 'sizes') : undefined;
  if (sizesIn && sizesIn.length > 0) {
    const hw = sizesIn.slice(k);
    if (!axes && (sizesIn[0] !== x[0] || sizesIn[1] !== x[1]))
      c.im.fail(c.n, `Resize sizes [${sizesIn.join(', ')}] change the batch or channel axis`, fix);
    if (!hw.every(isNum)) c.im.fail(c.n, `Resize sizes [${sizesIn.join(', ')}] are not known at import`, fix);
    a.sizes = hw as number[];
    out = [x[0]!, x[1]!, hw[0]!, hw[1]!];
  } else {
    const kv = c.k(2);
    if (!kv || kv.kind !== 'float') c.im.fail(c.n, "Resize 'scales' must be a constant", fix);
    const sc = Array.from(kv.data);
    if (!axes && (sc[0] !== 1 || sc[1] !== 1))
      c.im.fail(c.n, `Resize scales [${sc.join(', ')}] change the batch or channel axis`, fix);
    a.scales = sc.slice(k);
    out = [
      x[0]!,
      x[1]!,
      ...[0, 1].map((i) =>
        isNum(x[2 + i]!) ? Math.floor((x[2 + i] as number) * sc[k + i]!) : `resize(${x[2 + i]},${sc[k + i]})`,
      ),
    ];
  }
  c.im.emit(c.n, 'resize', [c.in(0)], a, [out]);
}

function einsumRule(c: Ctx): void {
  const equation = c.str('equation', '');
  const ins = c.inputs.map((_, i) => i).filter((i) => c.has(i));
  let parsed: ReturnType<typeof parseEinsum>;
  try {
    parsed = parseEinsum(equation, ins.length);
  } catch (e) {
    return c.im.fail(
      c.n,
      (e as Error).message,
      'rewrite the einsum without ... and without repeated letters in one operand',
    );
  }
  const size = new Map<string, Dim>();
  parsed.inputs.forEach((term, j) =>
    [...term].forEach((ch, i) => {
      const d = c.sh(ins[j]!)[i];
      if (d !== undefined && (!size.has(ch) || size.get(ch) === 1)) size.set(ch, d);
    }),
  );
  c.im.emit(
    c.n,
    'einsum',
    ins.map((i) => c.in(i)),
    { equation },
    [[...parsed.output].map((ch) => size.get(ch)!)],
  );
}

export const RUNTIME: Record<string, Run> = {
  Conv: (c) => {
    const w = c.k(1);
    const x = c.sh(0);
    const ws = c.sh(1);
    if (ws.length !== 4) c.im.fail(c.n, `only 2-D convolutions are supported (weight rank ${ws.length})`);
    const k = c.list('kernel_shape') ?? (ws.slice(2) as number[]);
    const s = c.list('strides') ?? [1, 1];
    const d = c.list('dilations') ?? [1, 1];
    const wp = windowPad(c, k, s, d);
    const inputs = [c.in(0), c.in(1, w ? 'weight' : undefined), c.has(2) ? c.in(2, 'bias') : ''];
    c.im.emit(c.n, 'conv2d', inputs, { stride: s, ...wp.a, dilation: d, groups: c.num('group', 1) }, [
      [x[0]!, ws[0]!, wp.out(x[2]!, 0), wp.out(x[3]!, 1)],
    ]);
  },
  BatchNormalization: (c) => {
    c.onlyFirstOutput();
    const inputs = [c.in(0), c.in(1, 'norm'), c.in(2, 'norm'), c.in(3, 'buffer'), c.in(4, 'buffer')];
    // ONNX momentum weighs the old running value; torch's weighs the new batch statistic.
    same(c, 'batchnorm', { eps: c.num('epsilon', 1e-5), momentum: 1 - c.num('momentum', 0.9) });
    c.im.nodes[c.im.nodes.length - 1] = { ...c.im.nodes[c.im.nodes.length - 1]!, inputs };
  },
  LayerNormalization: (c) => {
    c.onlyFirstOutput();
    c.im.emit(
      c.n,
      'layernorm',
      [c.in(0), c.in(1, 'norm'), c.has(2) ? c.in(2, 'norm') : ''],
      { axis: c.num('axis', -1), eps: c.num('epsilon', 1e-5) },
      [c.sh(0)],
    );
  },
  Relu: (c) => same(c, 'relu'),
  Sigmoid: (c) => same(c, 'sigmoid'),
  Tanh: (c) => same(c, 'tanh'),
  Neg: (c) => same(c, 'neg'),
  Sqrt: (c) => same(c, 'sqrt'),
  Erf: (c) => same(c, 'erf'),
  Identity: (c) => same(c, 'identity'),
  Cast: (c) => {
    const to = c.num('to', 1);
    if (to !== 1 && to !== 11)
      c.im.fail(c.n, 'casting a float tensor to a non-float type at run time is not supported');
    same(c, 'identity');
  },
  Dropout: (c) => {
    c.onlyFirstOutput();
    same(c, 'dropout', { p: c.has(1) ? c.scalar(1, 'ratio') : c.num('ratio', 0.5) });
  },
  Clip: (c) => {
    const min = c.has(1) ? c.scalar(1, 'min') : c.a.has('min') ? c.num('min', 0) : undefined;
    const max = c.has(2) ? c.scalar(2, 'max') : c.a.has('max') ? c.num('max', 0) : undefined;
    if (min === 0 && max === 6) return same(c, 'relu6');
    same(c, 'clip', { ...(min !== undefined ? { min } : {}), ...(max !== undefined ? { max } : {}) });
  },
  Add: binary('add'),
  Sub: binary('sub'),
  Mul: binary('mul'),
  Div: binary('div'),
  Pow: (c) => {
    const e = c.k(1);
    if (e && e.data.length === 1 && isNum(e.data[0]!)) return same(c, 'pow', { exponent: e.data[0] as number });
    binary('pow')(c);
  },
  MatMul: matmul,
  Gemm: gemm,
  MaxPool: (c) => window(c, 'maxpool'),
  AveragePool: (c) => window(c, 'avgpool'),
  GlobalAveragePool: (c) => {
    const x = c.sh(0);
    c.im.emit(c.n, 'globalavgpool', [c.in(0)], { keepdims: true }, [[x[0]!, x[1]!, 1, 1]]);
  },
  Flatten: (c) => {
    const x = c.sh(0);
    const axis = norm(c.num('axis', 1), x.length);
    c.im.emit(c.n, 'flatten', [c.in(0)], { axis }, [[dimProd(x.slice(0, axis)), dimProd(x.slice(axis))]]);
  },
  Reshape: reshape,
  Transpose: (c) => {
    const x = c.sh(0);
    const perm = c.list('perm') ?? x.map((_, i) => x.length - 1 - i);
    c.im.emit(c.n, 'transpose', [c.in(0)], { perm }, [perm.map((p) => x[p]!)]);
  },
  Concat: (c) => {
    const ins = c.inputs.map((_, i) => i).filter((i) => c.has(i));
    const shapes = ins.map((i) => c.sh(i));
    const axis = norm(c.num('axis', 0), shapes[0]!.length);
    const out = [...shapes[0]!];
    out[axis] = shapes.slice(1).reduce<Dim>((p, s) => dimAdd(p, s[axis]!), shapes[0]![axis]!);
    c.im.emit(
      c.n,
      'concat',
      ins.map((i) => c.in(i)),
      { axis },
      [out],
    );
  },
  Gather: (c) => {
    const x = c.sh(0);
    const axis = norm(c.num('axis', 0), x.length);
    const idx = c.k(1);
    if (idx && idx.kind === 'int' && idx.dims.length === 0 && isNum(idx.data[0]!))
      return c.im.emit(c.n, 'select', [c.in(0)], { axis, index: idx.data[0] as number }, [
        x.filter((_, i) => i !== axis),
      ]);
    c.im.emit(c.n, 'gather', [c.in(0, c.k(0) ? 'embedding' : undefined), c.in(1)], { axis }, [
      [...x.slice(0, axis), ...c.sh(1), ...x.slice(axis + 1)],
    ]);
  },
  Slice: slice,
  Split: split,
  Squeeze: (c) => {
    const x = c.sh(0);
    const axes = axesOf(c, 1)?.map((a) => norm(a, x.length)) ?? x.flatMap((d, i) => (d === 1 ? [i] : []));
    c.im.emit(c.n, 'squeeze', [c.in(0)], { axes }, [x.filter((_, i) => !axes.includes(i))]);
  },
  Unsqueeze: (c) => {
    const x = c.sh(0);
    const axes = axesOf(c, 1)!;
    const rank = x.length + axes.length;
    const ax = axes.map((a) => norm(a, rank));
    const out: Dim[] = [];
    for (let i = 0, k = 0; i < rank; i++) out.push(ax.includes(i) ? 1 : x[k++]!);
    c.im.emit(c.n, 'unsqueeze', [c.in(0)], { axes: ax }, [out]);
  },
  Softmax: (c) => {
    const x = c.sh(0);
    const axis = norm(c.num('axis', c.im.opset >= 13 ? -1 : 1), x.length);
    if (c.im.opset < 13 && axis !== x.length - 1)
      c.im.fail(c.n, 'opset < 13 Softmax over several trailing axes is not supported', 'export with opset ≥ 13');
    same(c, 'softmax', { axis });
  },
  ReduceMean: reduce('reducemean'),
  Expand: expand,
  Pad: (c) => {
    const x = c.sh(0);
    let pads = c.has(1) ? c.nums(1, 'pads') : (c.list('pads') ?? []);
    if (c.has(3)) {
      // opset 18: pads for the listed axes only
      const axes = c.nums(3, 'axes').map((a) => norm(a, x.length));
      const full = new Array<number>(2 * x.length).fill(0);
      axes.forEach((a, i) => {
        full[a] = pads[i]!;
        full[a + x.length] = pads[i + axes.length]!;
      });
      pads = full;
    }
    const mode = c.str('mode', 'constant');
    if (!['constant', 'reflect', 'edge'].includes(mode))
      c.im.fail(c.n, `Pad mode '${mode}' is not supported (constant, reflect, edge)`);
    const value = c.has(2) ? c.scalar(2, 'constant_value') : c.num('value', 0);
    const out = x.map((d, i) => dimAdd(d, pads[i]! + pads[i + x.length]!));
    same(c, 'pad', { pads, value, mode: mode === 'edge' ? 'replicate' : mode });
    c.im.shapes.set(c.n.output![0]!, out);
  },
  HardSigmoid: (c) => same(c, 'hardsigmoid', { alpha: c.num('alpha', 0.2), beta: c.num('beta', 0.5) }),
  HardSwish: (c) => same(c, 'hardswish'),
  LeakyRelu: (c) => same(c, 'leakyrelu', { alpha: c.num('alpha', 0.01) }),
  // the slope is a trained parameter (torch nn.PReLU), not prunable: role 'norm'
  PRelu: (c) => {
    const slope = c.k(1);
    // torch folds nn.PReLU's unsqueezed weight into an anonymous initializer ('onnx::PRelu_7'): name it after the module
    const name =
      slope && c.im.fromInit.has(c.name(1)) && c.name(1).includes('::') && modulePath(c.n.name ?? '')
        ? c.im.addKnown(`${modulePath(c.n.name ?? '')}.weight`, slope, 'norm')
        : c.in(1, c.im.fromInit.has(c.name(1)) ? 'norm' : undefined);
    c.im.emit(c.n, 'prelu', [c.in(0), name], {}, [c.sh(0)]);
  },
  Elu: (c) => same(c, 'elu', { alpha: c.num('alpha', 1) }),
  Selu: (c) =>
    same(c, 'selu', {
      alpha: c.num('alpha', 1.67326319217681884765625),
      gamma: c.num('gamma', 1.05070102214813232421875),
    }),
  Gelu: (c) => {
    const approximate = c.str('approximate', 'none');
    if (approximate !== 'none' && approximate !== 'tanh')
      c.im.fail(c.n, `Gelu approximate '${approximate}' is not supported (none, tanh)`);
    same(c, 'gelu', approximate === 'tanh' ? { approximate } : {});
  },
  Softplus: (c) => same(c, 'softplus'),
  Mish: (c) => same(c, 'mish'),
  Exp: (c) => same(c, 'exp'),
  Log: (c) => same(c, 'log'),
  Abs: (c) => same(c, 'abs'),
  Max: variadic('maximum'),
  Min: variadic('minimum'),
  ReduceSum: reduce('reducesum'),
  ReduceMax: reduce('reducemax'),
  ReduceMin: reduce('reducemin'),
  ReduceL2: reduce('reducel2'),
  Resize: resizeRule,
  Einsum: einsumRule,
};
