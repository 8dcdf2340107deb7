/**
 * TF.js *graph* models (a frozen TF GraphDef as JSON) → the IR, covering what the TF converter emits for
 * MobileNet-style classifiers (nsfwjs `mobilenet_v2_mid`: folded-BN `_FusedConv2D`, `FusedDepthwiseConv2dNative`,
 * `_FusedMatMul`, Relu6, AddV2, AvgPool, Squeeze). Const nodes become parameters (kernels, biases) or constants
 * (scalars); a Softmax on the output is dropped so the graph outputs logits.
 */
import { noGrad, tensor, type Tensor } from '../../engine/index.js';
import { GraphBuilder } from '../builder.js';
import { ModelFormatError, UnsupportedOpError, type UnsupportedOp } from '../errors.js';
import type { AttrValue, Graph, ParamRole } from '../ir.js';
import type { JsValue } from './js-literal.js';
import { decodeWeights, modelNameOf, type TfjsArtifacts } from './artifacts.js';
import { inputRangeOf } from './input-range.js';
import { convKernel, denseKernel, depthwiseKernel, nhwcAxis, weightTensor, WeightIndex } from './convert.js';

export const SUPPORTED_TF_OPS = [
  'Placeholder',
  'Const',
  'Identity',
  '_FusedConv2D',
  'Conv2D',
  'FusedDepthwiseConv2dNative',
  'DepthwiseConv2dNative',
  'BiasAdd',
  'Relu',
  'Relu6',
  'Add',
  'AddV2',
  'Sub',
  'Mul',
  'AvgPool',
  'MaxPool',
  'Mean',
  'Squeeze',
  '_FusedMatMul',
  'MatMul',
  'Softmax',
  'ConcatV2',
  'FusedBatchNorm',
  'FusedBatchNormV2',
  'FusedBatchNormV3',
  'Sigmoid',
  'Tanh',
  'Elu',
  'Selu',
  'LeakyRelu',
  'Prelu',
  'Pad',
  'PadV2',
  'MirrorPad',
  'Reshape',
  'Max',
  'ExpandDims',
] as const;
const FUSED_OPS = ['_FusedConv2D', 'FusedDepthwiseConv2dNative', '_FusedMatMul'];
/** What tfjs-converter fuses into a conv / matmul: a bias or a batch norm first, then at most one activation. */
const FUSED_FIRST = ['BiasAdd', 'FusedBatchNorm'];
const FUSED_ACTIVATIONS = ['Relu', 'Relu6', 'Elu', 'Selu', 'LeakyRelu', 'Sigmoid', 'Tanh', 'Prelu'];
/** Elementwise activation ops: TF name → IR op. */
const ACTIVATION_OPS: Record<string, string> = {
  Relu: 'relu',
  Relu6: 'relu6',
  Elu: 'elu',
  Selu: 'selu',
  LeakyRelu: 'leakyrelu',
  Sigmoid: 'sigmoid',
  Tanh: 'tanh',
  Prelu: 'prelu',
};

/** A fused node's `fused_ops` split into its first op (bias / batch norm) and activation; null if not that shape. */
function fusedParts(ops: readonly string[]): { first: string | undefined; act: string | undefined } | null {
  const first = FUSED_FIRST.includes(ops[0] ?? '') ? ops[0] : undefined;
  const rest = ops.slice(first ? 1 : 0);
  if (rest.length > 1 || (rest.length === 1 && !FUSED_ACTIVATIONS.includes(rest[0]!))) return null;
  return { first, act: rest[0] };
}

/** Every op of the graph with no conversion (and fused-op lists of an unknown shape), with the nodes using it. */
function unsupportedTfOps(nodes: readonly TfNode[]): UnsupportedOp[] {
  const out = new Map<string, string[]>();
  const add = (op: string, node: string) => out.set(op, [...(out.get(op) ?? []), node]);
  for (const n of nodes) {
    if (!(SUPPORTED_TF_OPS as readonly string[]).includes(n.op)) add(n.op, n.name);
    else if (FUSED_OPS.includes(n.op)) {
      const f = strs(n.attr, 'fused_ops');
      if (!fusedParts(f)) add(`${n.op} with fused ops [${f.join(', ')}]`, n.name);
    }
  }
  return [...out].map(([op, nodes]) => ({ op, nodes }));
}

interface TfNode {
  name: string;
  op: string;
  input?: string[];
  attr?: { [k: string]: { [k: string]: JsValue } };
}
interface Val {
  name: string;
  rank: number;
}

const b64 = (s: unknown): string => (typeof s === 'string' ? Buffer.from(s, 'base64').toString('utf8') : '');
const ints = (a: TfNode['attr'], k: string): number[] =>
  ((a?.[k]?.list as { i?: string[] } | undefined)?.i ?? []).map(Number);
const strs = (a: TfNode['attr'], k: string): string[] =>
  ((a?.[k]?.list as { s?: string[] } | undefined)?.s ?? []).map(b64);
/** TF input reference "node:1" / "^ctrl" → node name. */
const refName = (r: string): string => r.replace(/^\^/, '').replace(/:\d+$/, '');

export function importTfjsGraph(a: TfjsArtifacts): Graph {
  const file = a.file;
  const bad = (msg: string) =>
    new ModelFormatError(`${file}: ${msg}`, {
      context: { file },
      fix: 'the model JSON is damaged or not a TF.js graph model',
    });
  const nodes = (a.json.modelTopology as { node?: JsValue }).node;
  if (!Array.isArray(nodes)) throw bad("no 'modelTopology.node' list");
  const tfNodes = nodes as unknown as TfNode[];
  for (const n of tfNodes)
    if (!n || typeof n.name !== 'string' || typeof n.op !== 'string')
      throw bad(`bad node ${JSON.stringify(n).slice(0, 120)}`);
  const unknown = unsupportedTfOps(tfNodes);
  if (unknown.length > 0)
    throw new UnsupportedOpError(unknown[0]!.op, unknown[0]!.nodes[0]!, SUPPORTED_TF_OPS, 'tfjs-graph', unknown);
  const w = new WeightIndex(decodeWeights(a), file);
  const b = new GraphBuilder();
  const vals = new Map<string, Val>();
  const consts = new Set(tfNodes.filter((n) => n.op === 'Const').map((n) => n.name));
  const meta: Record<string, unknown> = { format: 'tfjs-graph', file, convertedBy: a.json.convertedBy ?? null };
  const short = (n: string) =>
    n.replace(/^StatefulPartitionedCall\/(sequential\/)?(keras_layer\/(StatefulPartitionedCall\/)*predict\/)?/, '');
  let input: { name: string; shape: (number | null)[]; hw: [number, number] } | undefined;
  let lastLinear: { input: string; kernel: string } | undefined;
  const outputsOf = new Set(tfNodes.flatMap((n) => (n.input ?? []).map(refName)));

  const val = (ref: string, at: string): Val => {
    const v = vals.get(refName(ref));
    if (!v) throw bad(`node '${at}' reads '${ref}', which no earlier node produces`);
    return v;
  };
  /** A Const used as a model parameter: converted, named after the source node. */
  /** kind 'slope': a PReLU slope for a rank-4 value, NHWC-broadcast ([C], [1, 1, C], [1, H, W, C]) → NCHW. */
  const paramOf = (ref: string, kind: 'conv' | 'depthwise' | 'dense' | 'vector' | 'slope', role: ParamRole): string => {
    const n = refName(ref);
    const pn = short(n);
    if (b.params.has(pn)) return pn;
    const d = w.get(n);
    const slope = (): Tensor => {
      const sh = d.shape;
      if (sh.length <= 1) return weightTensor(d, undefined, [sh[0] ?? 1, 1, 1]);
      if (sh.length === 3) return weightTensor(d, [2, 0, 1]);
      if (sh.length === 4) return weightTensor(d, [0, 3, 1, 2]);
      throw bad(`PReLU slope '${n}' has shape [${sh.join(', ')}]; expected [C], [H, W, C] or [1, H, W, C]`);
    };
    const t = noGrad(() =>
      kind === 'conv'
        ? convKernel(d)
        : kind === 'depthwise'
          ? depthwiseKernel(d)
          : kind === 'dense'
            ? denseKernel(d)
            : kind === 'slope'
              ? slope()
              : weightTensor(d),
    );
    return b.param(pn, t, role);
  };
  const constValues = (ref: string): number[] => Array.from(w.get(refName(ref)).values);
  const constOf = (ref: string): string => {
    const n = refName(ref);
    if (b.constants.has(short(n))) return short(n);
    const d = w.get(n);
    return b.constant(
      short(n),
      noGrad(() => tensor(d.values, d.shape)),
    );
  };
  const operand = (ref: string, at: string): Val =>
    consts.has(refName(ref)) ? { name: constOf(ref), rank: 0 } : val(ref, at);
  /**
   * Activation `op` (a TF name) applied to `x` for node `n`; a PReLU reads its slope from `slopeRef`. LeakyRelu's
   * slope is `alpha` on its own op and `leakyrelu_alpha` when fused (both default 0.2).
   */
  const activation = (n: TfNode, op: string, x: Val, slopeRef?: string): string => {
    const name = short(n.name);
    if (op === 'Prelu') {
      if (!slopeRef) throw bad(`node '${n.name}': a PReLU without its slope input`);
      return b.op('prelu', [x.name, paramOf(slopeRef, x.rank === 4 ? 'slope' : 'vector', 'norm')], {}, name);
    }
    const attrs: Record<string, AttrValue> = {};
    if (op === 'LeakyRelu') attrs.alpha = Number(n.attr?.leakyrelu_alpha?.f ?? n.attr?.alpha?.f ?? 0.2);
    if (op === 'Elu') attrs.alpha = 1;
    return b.op(ACTIVATION_OPS[op]!, [x.name], attrs, name);
  };
  /**
   * A batch norm of `x` with Const inputs [scale, offset, mean, variance] (FusedBatchNorm*, or fused into a conv).
   * A frozen graph keeps no training momentum: Keras' default (0.99, torch 0.01) is used if it is fine-tuned.
   */
  const batchNorm = (x: string, refs: readonly string[], eps: number, name: string): string => {
    if (refs.length < 4) throw bad(`node '${name}': a batch norm needs scale, offset, mean and variance inputs`);
    const [sc, off, mean, vr] = refs as [string, string, string, string];
    const ps = [paramOf(sc, 'vector', 'norm'), paramOf(off, 'vector', 'norm')];
    ps.push(paramOf(mean, 'vector', 'buffer'), paramOf(vr, 'vector', 'buffer'));
    return b.op('batchnorm', [x, ...ps], { eps, momentum: 0.01 }, name);
  };
  /**
   * The rest of a fused conv / matmul after the raw op `y`: BiasAdd (passed as the conv's own bias, see the
   * callers) or FusedBatchNorm, then the activation. `args`: the node's inputs after x and the kernel.
   */
  const fused = (n: TfNode, y: Val, args: readonly string[]): string => {
    const { first, act } = fusedParts(strs(n.attr, 'fused_ops'))!;
    let out = y.name;
    let next = first === 'BiasAdd' ? 1 : 0;
    if (first === 'FusedBatchNorm') {
      // tfjs-converter's default epsilon for a fused batch norm
      out = batchNorm(out, args.slice(0, 4), Number(n.attr?.epsilon?.f ?? 1e-4), `${short(n.name)}/bn`);
      next = 4;
    }
    return act ? activation(n, act, { ...y, name: out }, args[next]) : out;
  };
  /** Whether a fused node's first extra input is its bias. */
  const biasOf = (n: TfNode, args: readonly string[]): string =>
    strs(n.attr, 'fused_ops')[0] === 'BiasAdd' && args[0] ? paramOf(args[0], 'vector', 'bias') : '';
  /** A NHWC-axes reduction of `x` as an IR node: NCHW axes, or through NHWC where dropping axes would reorder. */
  const reduce = (op: string, x: Val, nhwcAxes: readonly number[], keep: boolean, name: string): Val => {
    const axes = nhwcAxes.map((d) => (d < 0 ? d + x.rank : d));
    const rank = keep ? x.rank : x.rank - axes.length;
    // Without keepdims, the kept dims of an image keep NHWC's order only when C is not kept beside H or W.
    const reorder = x.rank === 4 && !keep && !axes.includes(3) && !(axes.includes(1) && axes.includes(2));
    if (!reorder)
      return { name: b.op(op, [x.name], { axes: axes.map((d) => nhwcAxis(d, x.rank)), keepdims: keep }, name), rank };
    const t = b.op('transpose', [x.name], { perm: [0, 2, 3, 1] }, `${name}/to_nhwc`);
    return { name: b.op(op, [t], { axes, keepdims: keep }, name), rank };
  };
  const window = (n: TfNode): Record<string, AttrValue> => {
    const pad = b64(n.attr?.padding?.s);
    const s = ints(n.attr, 'strides');
    const d = ints(n.attr, 'dilations');
    const attrs: Record<string, AttrValue> = { stride: s.length === 4 ? [s[1]!, s[2]!] : [1, 1] };
    if (d.length === 4) attrs.dilation = [d[1]!, d[2]!];
    if (pad === 'SAME') attrs.autoPad = 'same_upper';
    else if (pad === 'EXPLICIT') {
      const p = ints(n.attr, 'explicit_paddings');
      attrs.padding = [p[2]!, p[4]!, p[3]!, p[5]!];
    } else if (pad !== 'VALID') throw bad(`node '${n.name}': padding '${pad}' is not supported`);
    const fmt = b64(n.attr?.data_format?.s);
    if (fmt !== '' && fmt !== 'NHWC') throw bad(`node '${n.name}': data_format '${fmt}' is not supported (NHWC only)`);
    return attrs;
  };

  for (const n of tfNodes) {
    const ins = (n.input ?? []).filter((r) => !r.startsWith('^'));
    const name = short(n.name);
    let y: Val;
    switch (n.op) {
      case 'Const':
        continue;
      case 'Placeholder': {
        const dims = ((n.attr?.shape?.shape as { dim?: { size: string }[] } | undefined)?.dim ?? []).map((d) =>
          Number(d.size),
        );
        if (dims.length !== 4) throw bad(`input '${n.name}' must be 4-D NHWC, got [${dims.join(', ')}]`);
        input = {
          name: n.name,
          shape: [null, dims[3]!, null, null],
          hw: [dims[1]! > 0 ? dims[1]! : 224, dims[2]! > 0 ? dims[2]! : 224],
        };
        y = { name: n.name, rank: 4 };
        vals.set(n.name, y);
        continue;
      }
      case 'Identity':
        y = { ...val(ins[0]!, n.name), name: b.op('identity', [val(ins[0]!, n.name).name], {}, name) };
        break;
      case '_FusedConv2D':
      case 'Conv2D':
      case 'FusedDepthwiseConv2dNative':
      case 'DepthwiseConv2dNative': {
        const depthwise = n.op.includes('Depthwise');
        const kw = paramOf(ins[1]!, depthwise ? 'depthwise' : 'conv', 'weight');
        const args = ins.slice(2);
        const groups = depthwise ? w.get(refName(ins[1]!)).shape[2]! : 1;
        const conv = b.op('conv2d', [val(ins[0]!, n.name).name, kw, biasOf(n, args)], { ...window(n), groups }, name);
        y = { name: fused(n, { name: conv, rank: 4 }, args), rank: 4 };
        break;
      }
      case 'BiasAdd':
      case 'Add':
      case 'AddV2':
      case 'Sub':
      case 'Mul': {
        const [p, q] = [operand(ins[0]!, n.name), operand(ins[1]!, n.name)];
        const op = n.op === 'Sub' ? 'sub' : n.op === 'Mul' ? 'mul' : 'add';
        if (n.op === 'BiasAdd' && p.rank === 4) {
          const bias = b.op('reshape', [q.name], { shape: [1, -1, 1, 1] }, `${name}/bias`);
          y = { name: b.op('add', [p.name, bias], {}, name), rank: 4 };
        } else {
          if ((p.rank === 4 && q.rank !== 0) || (q.rank === 4 && p.rank !== 0)) {
            const cst = consts.has(refName(ins[0]!)) || consts.has(refName(ins[1]!));
            if (cst)
              throw new UnsupportedOpError(
                `${n.op} of an image with a non-scalar constant`,
                n.name,
                SUPPORTED_TF_OPS,
                'tfjs-graph',
              );
          }
          y = { name: b.op(op, [p.name, q.name], {}, name), rank: Math.max(p.rank, q.rank) };
        }
        break;
      }
      case 'Relu':
      case 'Relu6':
      case 'Sigmoid':
      case 'Tanh':
      case 'Elu':
      case 'Selu':
      case 'LeakyRelu':
      case 'Prelu': {
        const x = val(ins[0]!, n.name);
        y = { name: activation(n, n.op, x, ins[1]), rank: x.rank };
        break;
      }
      case 'FusedBatchNorm':
      case 'FusedBatchNormV2':
      case 'FusedBatchNormV3': {
        const x = val(ins[0]!, n.name);
        if (x.rank !== 4 && x.rank !== 2) throw bad(`node '${n.name}': batch norm of a rank-${x.rank} value`);
        // tfjs's default epsilon for FusedBatchNorm*
        y = { name: batchNorm(x.name, ins.slice(1), Number(n.attr?.epsilon?.f ?? 1e-3), name), rank: x.rank };
        break;
      }
      case 'Pad':
      case 'PadV2':
      case 'MirrorPad': {
        const x = val(ins[0]!, n.name);
        const p = constValues(ins[1]!);
        if (p.length !== 2 * x.rank)
          throw bad(`node '${n.name}': paddings has ${p.length} values for a rank-${x.rank} input`);
        // TF: [[before, after] per NHWC dim]; the IR: ONNX order [begins…, ends…] over the value's own dims
        const dims = x.rank === 4 ? [0, 3, 1, 2] : [...Array(x.rank).keys()];
        const attrs: Record<string, AttrValue> = {
          pads: [...dims.map((d) => p[2 * d]!), ...dims.map((d) => p[2 * d + 1]!)],
        };
        if (n.op === 'PadV2' && ins[2]) attrs.value = constValues(ins[2])[0] ?? 0;
        if (n.op === 'MirrorPad') {
          const mode = b64(n.attr?.mode?.s);
          if (mode !== 'REFLECT')
            throw new UnsupportedOpError(`MirrorPad mode '${mode}'`, n.name, SUPPORTED_TF_OPS, 'tfjs-graph');
          attrs.mode = 'reflect';
        }
        y = { name: b.op('pad', [x.name], attrs, name), rank: x.rank };
        break;
      }
      case 'Reshape': {
        const x = val(ins[0]!, n.name);
        // NHWC semantics; a converter's fixed batch of 1 becomes the input's batch (0: copy that dim)
        const t = constValues(ins[1]!);
        const shape = t.map((d, i) => (i === 0 && d === 1 ? 0 : d));
        const src = x.rank === 4 ? b.op('transpose', [x.name], { perm: [0, 2, 3, 1] }, `${name}/to_nhwc`) : x.name;
        let out = b.op('reshape', [src], { shape }, t.length === 4 ? `${name}/nhwc` : name);
        if (t.length === 4) out = b.op('transpose', [out], { perm: [0, 3, 1, 2] }, name);
        y = { name: out, rank: t.length };
        break;
      }
      case 'ExpandDims': {
        const x = val(ins[0]!, n.name);
        if (x.rank >= 4)
          throw new UnsupportedOpError(`ExpandDims of a rank-${x.rank} value`, n.name, SUPPORTED_TF_OPS, 'tfjs-graph');
        const a0 = constValues(ins[1]!)[0]!;
        let out = b.op(
          'unsqueeze',
          [x.name],
          { axes: [a0 < 0 ? a0 + x.rank + 1 : a0] },
          x.rank === 3 ? `${name}/nhwc` : name,
        );
        if (x.rank === 3) out = b.op('transpose', [out], { perm: [0, 3, 1, 2] }, name);
        y = { name: out, rank: x.rank + 1 };
        break;
      }
      case 'Max': {
        const x = val(ins[0]!, n.name);
        y = reduce('reducemax', x, constValues(ins[1]!), n.attr?.keep_dims?.b === true, name);
        break;
      }
      case 'AvgPool':
      case 'MaxPool': {
        const k = ints(n.attr, 'ksize');
        const attrs: Record<string, AttrValue> = { ...window(n), kernel: [k[1]!, k[2]!] };
        delete attrs.dilation;
        y = {
          name: b.op(n.op === 'AvgPool' ? 'avgpool' : 'maxpool', [val(ins[0]!, n.name).name], attrs, name),
          rank: 4,
        };
        break;
      }
      case 'Mean': {
        const x = val(ins[0]!, n.name);
        const axes = w.has(refName(ins[1]!)) ? constValues(ins[1]!) : [1, 2];
        y = reduce('reducemean', x, axes, n.attr?.keep_dims?.b === true, name);
        break;
      }
      case 'Squeeze': {
        const x = val(ins[0]!, n.name);
        const dims = ints(n.attr, 'squeeze_dims').map((d) => (d < 0 ? d + x.rank : d));
        // [N, 1, L, C] → [N, L, C] (TF's Conv1D): squeezed in NHWC so the result keeps Keras' layout
        if (x.rank === 4 && dims.length === 1 && dims[0] !== 3) {
          const t = b.op('transpose', [x.name], { perm: [0, 2, 3, 1] }, `${name}/to_nhwc`);
          y = { name: b.op('squeeze', [t], { axes: dims }, name), rank: 3 };
          break;
        }
        y = {
          name: b.op('squeeze', [x.name], dims.length ? { axes: dims.map((d) => nhwcAxis(d, x.rank)) } : {}, name),
          rank: x.rank - (dims.length || 2),
        };
        break;
      }
      case '_FusedMatMul':
      case 'MatMul': {
        const x = val(ins[0]!, n.name);
        if (n.attr?.transpose_a?.b === true)
          throw new UnsupportedOpError('MatMul with transpose_a', n.name, SUPPORTED_TF_OPS, 'tfjs-graph');
        const kw = paramOf(ins[1]!, n.attr?.transpose_b?.b === true ? 'vector' : 'dense', 'weight');
        const args = ins.slice(2);
        const lin = b.op('linear', [x.name, kw, biasOf(n, args)], {}, name);
        lastLinear = { input: x.name, kernel: kw };
        y = { name: fused(n, { name: lin, rank: 2 }, args), rank: 2 };
        break;
      }
      case 'ConcatV2': {
        const parts = ins.slice(0, -1).map((r) => val(r, n.name));
        const axis = Number(w.get(refName(ins[ins.length - 1]!)).values[0]);
        y = {
          name: b.op(
            'concat',
            parts.map((p) => p.name),
            { axis: nhwcAxis(axis, parts[0]!.rank) },
            name,
          ),
          rank: parts[0]!.rank,
        };
        break;
      }
      case 'Softmax': {
        const x = val(ins[0]!, n.name);
        // Dropped when only the graph output (directly or through Identity) reads it: tapir graphs output logits.
        const readers = tfNodes.filter((m) => (m.input ?? []).map(refName).includes(n.name));
        if (readers.every((m) => m.op === 'Identity' && !outputsOf.has(m.name))) {
          meta.outputActivation = 'softmax';
          y = x;
        } else y = { name: b.op('softmax', [x.name], { axis: x.rank === 4 ? 1 : -1 }, name), rank: x.rank };
        break;
      }
      default:
        throw new UnsupportedOpError(n.op, n.name, SUPPORTED_TF_OPS, 'tfjs-graph');
    }
    vals.set(n.name, y);
  }
  if (!input) throw bad('no Placeholder (graph input) found');
  const sinks = tfNodes.filter((n) => n.op !== 'Const' && !outputsOf.has(n.name) && n.op !== 'Placeholder');
  if (sinks.length === 0) throw bad('the graph has no output node');
  const outputs = sinks.map((n) => vals.get(n.name)!.name);
  if (lastLinear) {
    const p = b.params.get(lastLinear.kernel)!;
    b.params.set(p.name, { ...p, role: 'head', prunable: false });
  }
  const r = inputRangeOf(a);
  meta.inputRangeSource = r.source;
  return b.build({
    name: modelNameOf(file),
    inputs: [{ name: input.name, shape: input.shape }],
    outputs,
    featureTap: lastLinear?.input ?? outputs[0]!,
    preprocessing: { size: input.hw, range: r.range },
    meta,
  });
}
