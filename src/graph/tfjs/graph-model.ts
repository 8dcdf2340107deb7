/**
 * TF.js *graph* models (a frozen TF GraphDef as JSON) → the IR, covering what the TF converter emits for
 * MobileNet-style classifiers (nsfwjs `mobilenet_v2_mid`: folded-BN `_FusedConv2D`, `FusedDepthwiseConv2dNative`,
 * `_FusedMatMul`, Relu6, AddV2, AvgPool, Squeeze). Const nodes become parameters (kernels, biases) or constants
 * (scalars); a Softmax on the output is dropped so the graph outputs logits.
 */
import { noGrad, tensor } from '../../engine/index.js';
import { GraphBuilder } from '../builder.js';
import { ModelFormatError, UnsupportedOpError } from '../errors.js';
import type { AttrValue, Graph } from '../ir.js';
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
] as const;

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
  const paramOf = (
    ref: string,
    kind: 'conv' | 'depthwise' | 'dense' | 'vector',
    role: 'weight' | 'bias' | 'head',
  ): string => {
    const n = refName(ref);
    const pn = short(n);
    if (b.params.has(pn)) return pn;
    const d = w.get(n);
    const t = noGrad(() =>
      kind === 'conv'
        ? convKernel(d)
        : kind === 'depthwise'
          ? depthwiseKernel(d)
          : kind === 'dense'
            ? denseKernel(d)
            : weightTensor(d),
    );
    return b.param(pn, t, role);
  };
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
  /** The activation fused after a conv/matmul (BiasAdd is the conv's own bias input). */
  const fused = (n: TfNode, y: string): string => {
    let out = y;
    for (const f of strs(n.attr, 'fused_ops')) {
      if (f === 'BiasAdd') continue;
      if (f === 'Relu' || f === 'Relu6') out = b.op(f.toLowerCase(), [out], {}, short(n.name));
      else throw new UnsupportedOpError(`${n.op} with fused op '${f}'`, n.name, SUPPORTED_TF_OPS, 'tfjs-graph');
    }
    return out;
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
        const bias = ins[2] ? paramOf(ins[2], 'vector', 'bias') : '';
        const groups = depthwise ? w.get(refName(ins[1]!)).shape[2]! : 1;
        const conv = b.op('conv2d', [val(ins[0]!, n.name).name, kw, bias], { ...window(n), groups }, name);
        y = { name: fused(n, conv), rank: 4 };
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
      case 'Relu6': {
        const x = val(ins[0]!, n.name);
        y = { name: b.op(n.op.toLowerCase(), [x.name], {}, name), rank: x.rank };
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
        const axes = w.has(refName(ins[1]!)) ? Array.from(w.get(refName(ins[1]!)).values) : [1, 2];
        const keep = n.attr?.keep_dims?.b === true;
        y = {
          name: b.op('reducemean', [x.name], { axes: axes.map((d) => nhwcAxis(d, x.rank)), keepdims: keep }, name),
          rank: keep ? x.rank : x.rank - axes.length,
        };
        break;
      }
      case 'Squeeze': {
        const x = val(ins[0]!, n.name);
        const dims = ints(n.attr, 'squeeze_dims');
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
        const bias = ins[2] ? paramOf(ins[2], 'vector', 'bias') : '';
        const lin = b.op('linear', [x.name, kw, bias], {}, name);
        lastLinear = { input: x.name, kernel: kw };
        y = { name: fused(n, lin), rank: 2 };
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
