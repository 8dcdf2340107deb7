/**
 * IR → ONNX (opset 13–17), for onnxruntime and any other ONNX consumer. Masked parameters are written as
 * W ⊙ c (the pruned model is an ONNX file with the pruned weights zeroed). Every initializer keeps
 * its IR parameter name and layout; linear weights stay [out, in] and are transposed by a Transpose node that
 * runtimes fold at load. Training-only behaviour (dropout, BN batch statistics) is exported as inference.
 */
import { writeFileAtomic, noGrad, TapirError, type Tensor } from '../../engine/index.js';
import { UnsupportedOpError } from '../errors.js';
import type { AttrValue, Graph, Node } from '../ir.js';
import type onnxProto from 'onnx-proto';
import { DataType, onnx } from './proto.js';
import { EXPORT_RULES } from './export-ops.js';
import { TAPIR_METADATA_KEY, tapirMetadata } from './metadata.js';

export interface ExportOnnxOptions {
  /** Default opset 17 (LayerNormalization is native from 17; older opsets decompose it). */
  opset?: number;
  /** Recorded as the model's doc string. */
  docString?: string;
  /** The unpruned model this one was pruned from (a zoo spec or path): readers evaluate against it by default. */
  baseModel?: string;
}

type OnnxAttr = onnxProto.onnx.IAttributeProto;
/** An ONNX attribute with an explicit type (ints and floats differ in ONNX, not in JS). */
export const attr = {
  int: (name: string, i: number): OnnxAttr => ({ name, type: onnx.AttributeProto.AttributeType.INT, i }),
  ints: (name: string, ints: readonly number[]): OnnxAttr => ({
    name,
    type: onnx.AttributeProto.AttributeType.INTS,
    ints: [...ints],
  }),
  float: (name: string, f: number): OnnxAttr => ({ name, type: onnx.AttributeProto.AttributeType.FLOAT, f }),
  str: (name: string, s: string): OnnxAttr => ({
    name,
    type: onnx.AttributeProto.AttributeType.STRING,
    s: new TextEncoder().encode(s),
  }),
};

/** What an export rule can do: add nodes, constants and fresh value names. */
export class Emitter {
  readonly nodes: onnxProto.onnx.INodeProto[] = [];
  readonly initializers: onnxProto.onnx.ITensorProto[] = [];
  readonly #names = new Set<string>();
  #k = 0;
  constructor(
    readonly g: Graph,
    readonly opset: number,
  ) {}

  node(
    opType: string,
    inputs: readonly string[],
    outputs: readonly string[],
    attributes: OnnxAttr[] = [],
    name?: string,
  ): void {
    this.nodes.push({
      opType,
      input: [...inputs],
      output: [...outputs],
      attribute: attributes,
      name: name ?? outputs[0],
    });
  }
  /** A fresh value name derived from the IR node's name. */
  tmp(n: Node, what: string): string {
    let s = `${n.name}/${what}`;
    while (this.#names.has(s)) s = `${n.name}/${what}_${++this.#k}`;
    this.#names.add(s);
    return s;
  }
  i64(n: Node, what: string, values: readonly number[], dims: readonly number[] = [values.length]): string {
    const name = this.tmp(n, what);
    this.initializers.push(
      tensorProto(
        name,
        DataType.INT64,
        dims,
        new Uint8Array(BigInt64Array.from(values, (v) => BigInt(Math.trunc(v))).buffer),
      ),
    );
    return name;
  }
  f32(n: Node, what: string, values: readonly number[], dims: readonly number[] = [values.length]): string {
    const name = this.tmp(n, what);
    this.initializers.push(tensorProto(name, DataType.FLOAT, dims, new Uint8Array(Float32Array.from(values).buffer)));
    return name;
  }
  /** The shape of a parameter or constant (for rules that need a channel count). */
  shapeOf(value: string): readonly number[] | undefined {
    return (this.g.params.get(value)?.tensor ?? this.g.constants.get(value))?.shape;
  }
}

function tensorProto(
  name: string,
  dataType: number,
  dims: readonly number[],
  raw: Uint8Array,
): onnxProto.onnx.ITensorProto {
  return { name, dataType, dims: [...dims], rawData: raw };
}

function tensorToProto(name: string, t: Tensor): onnxProto.onnx.ITensorProto {
  const c = noGrad(() =>
    t.dtype === 'float32' || t.dtype === 'int64'
      ? t.contiguous()
      : t.dtype === 'int32' || t.dtype === 'uint8' || t.dtype === 'bool'
        ? t.to('int64')
        : t.to('float32'),
  );
  try {
    const d = c.data() as Float32Array | BigInt64Array;
    const raw = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    return tensorProto(name, c.dtype === 'int64' ? DataType.INT64 : DataType.FLOAT, t.shape, raw);
  } finally {
    c.dispose();
  }
}

/** Serialises the graph (with masks applied) to ONNX bytes. */
export function exportOnnxBytes(g: Graph, o: ExportOnnxOptions = {}): Uint8Array {
  const opset = o.opset ?? 17;
  if (!Number.isInteger(opset) || opset < 13 || opset > 17)
    throw new TapirError('E_ARG', `exportOnnx: opset ${opset} is not supported (13–17)`, {
      context: { option: 'opset' },
      fix: 'pass opset between 13 and 17',
    });
  const e = new Emitter(g, opset);
  for (const n of g.nodes) {
    const rule = EXPORT_RULES[n.op];
    if (!rule) throw new UnsupportedOpError(n.op, n.name, Object.keys(EXPORT_RULES), `ONNX export of '${g.name}'`);
    rule(n, e);
  }
  const inits: onnxProto.onnx.ITensorProto[] = [];
  noGrad(() => {
    for (const [name, p] of g.params) {
      const m = g.masks.get(name);
      const w = m ? p.tensor.mul(m) : p.tensor;
      inits.push(tensorToProto(name, w));
      if (w !== p.tensor) w.dispose();
    }
    for (const [name, t] of g.constants) inits.push(tensorToProto(name, t));
  });
  const f32 = onnx.TensorProto.DataType.FLOAT;
  const valueInfo = (name: string, shape?: readonly (number | null)[]): onnxProto.onnx.IValueInfoProto => ({
    name,
    type: {
      tensorType: {
        elemType: f32,
        ...(shape
          ? {
              shape: {
                dim: shape.map((d, i) =>
                  d === null ? { dimParam: i === 0 ? 'batch' : `${name}_${i}` } : { dimValue: d },
                ),
              },
            }
          : {}),
      },
    },
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'tapir',
    producerVersion: '0.1.0',
    docString: o.docString ?? '',
    metadataProps: [
      {
        key: TAPIR_METADATA_KEY,
        value: JSON.stringify({ ...tapirMetadata(g), ...(o.baseModel ? { baseModel: o.baseModel } : {}) }),
      },
    ],
    opsetImport: [{ domain: '', version: opset }],
    graph: {
      name: g.name,
      node: e.nodes,
      initializer: [...inits, ...e.initializers],
      input: g.inputs.map((i) => valueInfo(i.name, i.shape)),
      output: g.outputs.map((n) => valueInfo(n)),
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

/** Writes the ONNX file atomically (temp file, then rename). */
export async function exportOnnx(g: Graph, path: string, o: ExportOnnxOptions = {}): Promise<void> {
  const bytes = exportOnnxBytes(g, o);
  await writeFileAtomic(path, bytes);
}

export type ExportRule = (n: Node, e: Emitter) => void;
export type { AttrValue };
