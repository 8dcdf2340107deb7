/**
 * One ONNX export rule per IR op (ops.ts). Attribute conventions are the op table's: padding as
 * [top, left, bottom, right] (= ONNX pads order), torch-style expand (-1 keeps a dim), IR momentum = torch's.
 */
import type { AttrValue, Node } from '../ir.js';
import { attr, type Emitter, type ExportRule } from './export.js';
import { TapirError } from '../../engine/index.js';

function num(n: Node, k: string, dflt?: number): number {
  const v = n.attrs[k];
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (v === undefined && dflt !== undefined) return dflt;
  throw new TapirError(
    'E_EXPORT',
    `ONNX export: node '${n.name}' (${n.op}) attribute '${k}' must be a number, got ${JSON.stringify(v)}`,
  );
}
function nums(n: Node, k: string, dflt?: readonly number[]): number[] {
  const v: AttrValue | undefined = n.attrs[k];
  if (typeof v === 'number') return [v];
  if (Array.isArray(v)) return v as number[];
  if (v === undefined && dflt !== undefined) return [...dflt];
  throw new TapirError(
    'E_EXPORT',
    `ONNX export: node '${n.name}' (${n.op}) attribute '${k}' must be a number list, got ${JSON.stringify(v)}`,
  );
}
const flag = (n: Node, k: string, dflt: boolean) =>
  n.attrs[k] === undefined ? dflt : n.attrs[k] === true || n.attrs[k] === 1;
const pair = (n: Node, k: string, dflt: number) => {
  const v = nums(n, k, [dflt]);
  return v.length === 1 ? [v[0]!, v[0]!] : v.slice(0, 2);
};
const pads4 = (n: Node) => {
  const v = nums(n, 'padding', [0]);
  return v.length === 1 ? [v[0]!, v[0]!, v[0]!, v[0]!] : v.length === 2 ? [v[0]!, v[1]!, v[0]!, v[1]!] : v;
};
/** auto_pad for 'same_upper' / 'same_lower' / 'valid' (computed by the runtime from the input size), else pads. */
function padAttrs(n: Node): ReturnType<typeof attr.ints>[] {
  const auto = n.attrs.autoPad;
  if (typeof auto === 'string' && auto !== 'notset') return [attr.str('auto_pad', auto.toUpperCase())];
  return [attr.ints('pads', pads4(n))];
}

const simple =
  (opType: string, attrs: (n: Node) => ReturnType<typeof attr.int>[] = () => []): ExportRule =>
  (n, e) =>
    e.node(opType, n.inputs, n.outputs, attrs(n), n.name);

function pool(opType: 'MaxPool' | 'AveragePool'): ExportRule {
  return (n, e) => {
    const k = pair(n, 'kernel', 1);
    const s = n.attrs.stride === undefined ? k : pair(n, 'stride', 1);
    const a = [
      attr.ints('kernel_shape', k),
      attr.ints('strides', s),
      ...padAttrs(n),
      attr.int('ceil_mode', flag(n, 'ceil', false) ? 1 : 0),
    ];
    if (opType === 'AveragePool') a.push(attr.int('count_include_pad', flag(n, 'countIncludePad', false) ? 1 : 0));
    e.node(opType, [n.inputs[0]!], n.outputs, a, n.name);
  };
}

/** A Shape-derived int64 vector [ref.shape[d] or const, ...] for run-time sizes. */
function dynShape(n: Node, e: Emitter, ref: string, shape: number[], refDims: number[]): string {
  const sh = e.tmp(n, 'shape');
  e.node('Shape', [ref], [sh]);
  const parts = shape.map((d, i) => {
    const rd = refDims[i]!;
    if (rd < 0) return e.i64(n, `dim${i}`, [d === -1 ? 1 : d]);
    const out = e.tmp(n, `dim${i}`);
    e.node('Slice', [sh, e.i64(n, `s${i}`, [rd]), e.i64(n, `e${i}`, [rd + 1])], [out]);
    return out;
  });
  const cat = e.tmp(n, 'target');
  e.node('Concat', parts, [cat], [attr.int('axis', 0)]);
  return cat;
}

function layerNorm(n: Node, e: Emitter): void {
  const [x, w, b] = [n.inputs[0]!, n.inputs[1] ?? '', n.inputs[2] ?? ''];
  const axis = num(n, 'axis', -1);
  const eps = num(n, 'eps', 1e-5);
  if (e.opset >= 17)
    return e.node(
      'LayerNormalization',
      [x, w, b],
      [n.outputs[0]!],
      [attr.int('axis', axis), attr.float('epsilon', eps)],
      n.name,
    );
  if (axis !== -1)
    throw new TapirError('E_EXPORT', `ONNX export: layernorm '${n.name}' over axis ${axis} needs opset 17`, {
      fix: 'export with opset 17',
    });
  const t = (s: string) => e.tmp(n, s);
  const [mean, d, sq, v, ve, sd, y, yw] = ['mean', 'd', 'sq', 'var', 'var_eps', 'std', 'y', 'yw'].map(t) as string[];
  e.node('ReduceMean', [x], [mean!], [attr.ints('axes', [-1])]);
  e.node('Sub', [x, mean!], [d!]);
  e.node('Mul', [d!, d!], [sq!]);
  e.node('ReduceMean', [sq!], [v!], [attr.ints('axes', [-1])]);
  e.node('Add', [v!, e.f32(n, 'eps', [eps], [])], [ve!]);
  e.node('Sqrt', [ve!], [sd!]);
  const out = n.outputs[0]!;
  e.node('Div', [d!, sd!], [w || b ? y! : out]);
  if (w) e.node('Mul', [y!, w], [b ? yw! : out]);
  if (b) e.node('Add', [w ? yw! : y!, b], [out], [], n.name);
}

export const EXPORT_RULES: Record<string, ExportRule> = {
  conv2d: (n, e) => {
    const ws = e.shapeOf(n.inputs[1]!);
    const a = [
      attr.ints('strides', pair(n, 'stride', 1)),
      attr.ints('dilations', pair(n, 'dilation', 1)),
      attr.int('group', num(n, 'groups', 1)),
      ...padAttrs(n),
    ];
    if (ws) a.push(attr.ints('kernel_shape', ws.slice(2)));
    e.node(
      'Conv',
      n.inputs.filter((x, i) => i < 2 || x !== ''),
      n.outputs,
      a,
      n.name,
    );
  },
  linear: (n, e) => {
    const wt = e.tmp(n, 'weight_t');
    e.node('Transpose', [n.inputs[1]!], [wt], [attr.ints('perm', [1, 0])]);
    const hasBias = (n.inputs[2] ?? '') !== '';
    const mm = hasBias ? e.tmp(n, 'matmul') : n.outputs[0]!;
    e.node('MatMul', [n.inputs[0]!, wt], [mm], [], hasBias ? `${n.name}/MatMul` : n.name);
    if (hasBias) e.node('Add', [mm, n.inputs[2]!], [n.outputs[0]!], [], n.name);
  },
  matmul: simple('MatMul'),
  batchnorm: (n, e) => {
    const [x, w, b, m, v] = [0, 1, 2, 3, 4].map((i) => n.inputs[i] ?? '');
    const c = e.shapeOf(m!)?.[0] ?? e.shapeOf(w!)?.[0];
    if (!m || !v || c === undefined)
      throw new TapirError(
        'E_EXPORT',
        `ONNX export: batchnorm '${n.name}' needs running statistics (ONNX BatchNormalization has no batch-statistics inference mode)`,
      );
    const scale = w || e.f32(n, 'scale', new Array<number>(c).fill(1));
    const shift = b || e.f32(n, 'shift', new Array<number>(c).fill(0));
    e.node(
      'BatchNormalization',
      [x!, scale, shift, m, v],
      [n.outputs[0]!],
      [attr.float('epsilon', num(n, 'eps', 1e-5)), attr.float('momentum', 1 - num(n, 'momentum', 0.1))],
      n.name,
    );
  },
  layernorm: layerNorm,
  relu: simple('Relu'),
  relu6: (n, e) =>
    e.node('Clip', [n.inputs[0]!, e.f32(n, 'min', [0], []), e.f32(n, 'max', [6], [])], n.outputs, [], n.name),
  clip: (n, e) => {
    const lo = n.attrs.min === undefined ? '' : e.f32(n, 'min', [num(n, 'min')], []);
    const hi = n.attrs.max === undefined ? '' : e.f32(n, 'max', [num(n, 'max')], []);
    e.node('Clip', [n.inputs[0]!, lo, hi], n.outputs, [], n.name);
  },
  gelu: (n, e) => {
    const x = n.inputs[0]!;
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((s) => e.tmp(n, s)) as [string, string, string, string];
    if (n.attrs.approximate === 'tanh') {
      // 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))
      const [x3, inner, t] = ['x3', 'inner', 't'].map((s) => e.tmp(n, s)) as [string, string, string];
      e.node('Pow', [x, e.f32(n, 'three', [3], [])], [x3]);
      e.node('Mul', [x3, e.f32(n, 'k', [0.044715], [])], [a]);
      e.node('Add', [x, a], [b]);
      e.node('Mul', [b, e.f32(n, 'r', [Math.sqrt(2 / Math.PI)], [])], [inner]);
      e.node('Tanh', [inner], [t]);
      e.node('Add', [t, e.f32(n, 'one', [1], [])], [c]);
    } else {
      e.node('Div', [x, e.f32(n, 'sqrt2', [Math.SQRT2], [])], [a]);
      e.node('Erf', [a], [b]);
      e.node('Add', [b, e.f32(n, 'one', [1], [])], [c]);
    }
    e.node('Mul', [x, c], [d]);
    e.node('Mul', [d, e.f32(n, 'half', [0.5], [])], n.outputs, [], n.name);
  },
  silu: (n, e) => {
    const s = e.tmp(n, 'sigmoid');
    e.node('Sigmoid', [n.inputs[0]!], [s]);
    e.node('Mul', [n.inputs[0]!, s], n.outputs, [], n.name);
  },
  sigmoid: simple('Sigmoid'),
  tanh: simple('Tanh'),
  softmax: simple('Softmax', (n) => [attr.int('axis', num(n, 'axis', -1))]),
  add: simple('Add'),
  sub: simple('Sub'),
  mul: simple('Mul'),
  div: simple('Div'),
  pow: (n, e) => {
    const ex = (n.inputs[1] ?? '') !== '' ? n.inputs[1]! : e.f32(n, 'exponent', [num(n, 'exponent')], []);
    e.node('Pow', [n.inputs[0]!, ex], n.outputs, [], n.name);
  },
  sqrt: simple('Sqrt'),
  erf: simple('Erf'),
  neg: simple('Neg'),
  maxpool: pool('MaxPool'),
  avgpool: pool('AveragePool'),
  globalavgpool: (n, e) => {
    if (flag(n, 'keepdims', true)) return e.node('GlobalAveragePool', [n.inputs[0]!], n.outputs, [], n.name);
    const t = e.tmp(n, 'pooled');
    e.node('GlobalAveragePool', [n.inputs[0]!], [t]);
    e.node('Flatten', [t], n.outputs, [attr.int('axis', 1)], n.name);
  },
  flatten: simple('Flatten', (n) => [attr.int('axis', num(n, 'axis', 1))]),
  reshape: (n, e) => {
    const a = flag(n, 'allowzero', false) ? [attr.int('allowzero', 1)] : [];
    e.node('Reshape', [n.inputs[0]!, e.i64(n, 'shape', nums(n, 'shape'))], n.outputs, a, n.name);
  },
  transpose: simple('Transpose', (n) => [attr.ints('perm', nums(n, 'perm'))]),
  concat: (n, e) =>
    e.node(
      'Concat',
      n.inputs.filter((x) => x !== ''),
      n.outputs,
      [attr.int('axis', num(n, 'axis'))],
      n.name,
    ),
  pad: (n, e) => {
    const mode = String(n.attrs.mode ?? 'constant');
    e.node(
      'Pad',
      [n.inputs[0]!, e.i64(n, 'pads', nums(n, 'pads')), e.f32(n, 'value', [num(n, 'value', 0)], [])],
      n.outputs,
      [attr.str('mode', mode === 'replicate' ? 'edge' : mode)],
      n.name,
    );
  },
  dropout: (n, e) => e.node('Identity', [n.inputs[0]!], [n.outputs[0]!], [], n.name),
  identity: simple('Identity'),
  reducemean: (n, e) => {
    const a = [attr.int('keepdims', flag(n, 'keepdims', true) ? 1 : 0)];
    if (n.attrs.axes !== undefined) a.push(attr.ints('axes', nums(n, 'axes')));
    e.node('ReduceMean', [n.inputs[0]!], n.outputs, a, n.name);
  },
  gather: simple('Gather', (n) => [attr.int('axis', num(n, 'axis', 0))]),
  select: (n, e) =>
    e.node(
      'Gather',
      [n.inputs[0]!, e.i64(n, 'index', [num(n, 'index')], [])],
      n.outputs,
      [attr.int('axis', num(n, 'axis'))],
      n.name,
    ),
  slice: (n, e) => {
    const starts = nums(n, 'starts');
    const ins = [
      n.inputs[0]!,
      e.i64(n, 'starts', starts),
      e.i64(n, 'ends', nums(n, 'ends')),
      e.i64(
        n,
        'axes',
        nums(
          n,
          'axes',
          starts.map((_, i) => i),
        ),
      ),
      e.i64(
        n,
        'steps',
        nums(
          n,
          'steps',
          starts.map(() => 1),
        ),
      ),
    ];
    e.node('Slice', ins, n.outputs, [], n.name);
  },
  split: (n, e) => {
    const ins = [n.inputs[0]!];
    if (n.attrs.split !== undefined) ins.push(e.i64(n, 'split', nums(n, 'split')));
    e.node('Split', ins, n.outputs, [attr.int('axis', num(n, 'axis', 0))], n.name);
  },
  squeeze: (n, e) =>
    e.node(
      'Squeeze',
      n.attrs.axes === undefined ? [n.inputs[0]!] : [n.inputs[0]!, e.i64(n, 'axes', nums(n, 'axes'))],
      n.outputs,
      [],
      n.name,
    ),
  unsqueeze: (n, e) => e.node('Unsqueeze', [n.inputs[0]!, e.i64(n, 'axes', nums(n, 'axes'))], n.outputs, [], n.name),
  // ONNX Expand broadcasts: a 1 in the target keeps the input's size, as torch's -1 does.
  expand: (n, e) =>
    e.node(
      'Expand',
      [
        n.inputs[0]!,
        e.i64(
          n,
          'shape',
          nums(n, 'shape').map((d) => (d === -1 ? 1 : d)),
        ),
      ],
      n.outputs,
      [],
      n.name,
    ),
  expanddyn: (n, e) =>
    e.node(
      'Expand',
      [n.inputs[0]!, dynShape(n, e, n.inputs[1]!, nums(n, 'shape'), nums(n, 'refDims'))],
      n.outputs,
      [],
      n.name,
    ),
  prependtoken: (n, e) => {
    const [x, tok] = [n.inputs[0]!, n.inputs[1]!];
    const tokens = e.tmp(n, 'tokens');
    e.node('Expand', [tok, dynShape(n, e, x, [-1, 1, 1], [0, -1, -1])], [tokens]);
    e.node('Concat', [tokens, x], n.outputs, [attr.int('axis', 1)], n.name);
  },
  hardsigmoid: simple('HardSigmoid', (n) => [
    attr.float('alpha', num(n, 'alpha', 0.2)),
    attr.float('beta', num(n, 'beta', 0.5)),
  ]),
  hardswish: (n, e) => {
    if (e.opset >= 14) return e.node('HardSwish', [n.inputs[0]!], n.outputs, [], n.name);
    const h = e.tmp(n, 'hardsigmoid');
    e.node('HardSigmoid', [n.inputs[0]!], [h], [attr.float('alpha', 1 / 6), attr.float('beta', 0.5)]);
    e.node('Mul', [n.inputs[0]!, h], n.outputs, [], n.name);
  },
  leakyrelu: simple('LeakyRelu', (n) => [attr.float('alpha', num(n, 'alpha', 0.01))]),
  prelu: simple('PRelu'),
  elu: simple('Elu', (n) => [attr.float('alpha', num(n, 'alpha', 1))]),
  selu: simple('Selu', (n) => [
    ...(n.attrs.alpha === undefined ? [] : [attr.float('alpha', num(n, 'alpha'))]),
    ...(n.attrs.gamma === undefined ? [] : [attr.float('gamma', num(n, 'gamma'))]),
  ]),
  softplus: simple('Softplus'),
  // Mish is an ONNX op from opset 18 only
  mish: (n, e) => {
    const [sp, th] = [e.tmp(n, 'softplus'), e.tmp(n, 'tanh')];
    e.node('Softplus', [n.inputs[0]!], [sp]);
    e.node('Tanh', [sp], [th]);
    e.node('Mul', [n.inputs[0]!, th], n.outputs, [], n.name);
  },
  exp: simple('Exp'),
  log: simple('Log'),
  abs: simple('Abs'),
  maximum: (n, e) =>
    e.node(
      'Max',
      n.inputs.filter((x) => x !== ''),
      n.outputs,
      [],
      n.name,
    ),
  minimum: (n, e) =>
    e.node(
      'Min',
      n.inputs.filter((x) => x !== ''),
      n.outputs,
      [],
      n.name,
    ),
  // ReduceSum takes its axes as an input from opset 13, the other reductions from opset 18
  reducesum: (n, e) => {
    const ins = [n.inputs[0]!];
    if (n.attrs.axes !== undefined) ins.push(e.i64(n, 'axes', nums(n, 'axes')));
    e.node('ReduceSum', ins, n.outputs, [attr.int('keepdims', flag(n, 'keepdims', true) ? 1 : 0)], n.name);
  },
  reducemax: reduceRule('ReduceMax'),
  reducemin: reduceRule('ReduceMin'),
  reducel2: reduceRule('ReduceL2'),
  resize: (n, e) => {
    const x = n.inputs[0]!;
    const a = [
      attr.str('mode', String(n.attrs.mode ?? 'nearest')),
      attr.str('coordinate_transformation_mode', String(n.attrs.coord ?? 'half_pixel')),
      attr.str('nearest_mode', String(n.attrs.nearest ?? 'round_prefer_floor')),
    ];
    if (n.attrs.sizes !== undefined) {
      // ONNX sizes cover every axis of the (NCHW) input: batch and channels are read from it at run time
      const [h, w] = nums(n, 'sizes');
      return e.node('Resize', [x, '', '', dynShape(n, e, x, [-1, -1, h!, w!], [0, 1, -1, -1])], n.outputs, a, n.name);
    }
    e.node('Resize', [x, '', e.f32(n, 'scales', [1, 1, ...nums(n, 'scales')])], n.outputs, a, n.name);
  },
  einsum: (n, e) =>
    e.node(
      'Einsum',
      n.inputs.filter((x) => x !== ''),
      n.outputs,
      [attr.str('equation', String(n.attrs.equation))],
      n.name,
    ),
};

function reduceRule(opType: string): ExportRule {
  return (n, e) => {
    const a = [attr.int('keepdims', flag(n, 'keepdims', true) ? 1 : 0)];
    if (n.attrs.axes !== undefined) a.push(attr.ints('axes', nums(n, 'axes')));
    e.node(opType, [n.inputs[0]!], n.outputs, a, n.name);
  };
}
