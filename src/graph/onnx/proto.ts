/**
 * ONNX protobuf access (npm `onnx-proto`, protobufjs): decoding a ModelProto without trusting it, reading
 * attributes and TensorProtos into plain values. Every size is checked against the bytes actually present
 * before anything is allocated, so a truncated or hostile file is an error, never a crash or a huge allocation.
 */
import onnxProto from 'onnx-proto';
import { ModelFormatError } from '../errors.js';
import { bfloat16ToFloat32, halfToFloat32 } from '../safetensors.js';

export const onnx = onnxProto.onnx;
export type ModelProto = onnxProto.onnx.ModelProto;
export type NodeProto = onnxProto.onnx.INodeProto;
export type TensorProto = onnxProto.onnx.ITensorProto;
export type AttributeProto = onnxProto.onnx.IAttributeProto;
export const DataType = onnxProto.onnx.TensorProto.DataType;

type LongLike = number | { low: number; high: number; toString(): string };

/** int64 → number, exact below 2^53; larger magnitudes (INT64_MAX as "to the end") saturate at ±2^53. */
export function toNum(v: LongLike | null | undefined): number {
  if (v === null || v === undefined) return 0;
  if (typeof v === 'number') return v;
  const n = v.high * 4294967296 + (v.low >>> 0);
  return Math.max(-Number.MAX_SAFE_INTEGER, Math.min(Number.MAX_SAFE_INTEGER, n));
}

/** Decodes an ONNX file; garbage or truncated bytes become a ModelFormatError naming the file. */
export function decodeModel(bytes: Uint8Array, file: string): ModelProto {
  const fix =
    'the file is not a complete ONNX model: re-export it (torch.onnx.export) or check that it was copied completely';
  if (bytes.byteLength < 8)
    throw new ModelFormatError(`${file}: ${bytes.byteLength} bytes is too short to be an ONNX model`, {
      context: { file },
      fix,
    });
  let m: ModelProto;
  try {
    m = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new ModelFormatError(`${file}: not a valid ONNX protobuf (${(e as Error).message})`, {
      context: { file },
      fix,
      cause: e,
    });
  }
  if (!m.graph || (m.graph.node?.length ?? 0) === 0)
    throw new ModelFormatError(`${file}: ONNX model has no graph or no nodes`, { context: { file }, fix });
  return m;
}

/** Attributes by name as plain values (ints → numbers, strings → text, tensors kept as TensorProto). */
export function attrs(n: NodeProto): Map<string, number | string | number[] | string[] | TensorProto> {
  const out = new Map<string, number | string | number[] | string[] | TensorProto>();
  const AT = onnx.AttributeProto.AttributeType;
  for (const a of n.attribute ?? []) {
    const name = a.name ?? '';
    switch (a.type) {
      case AT.FLOAT:
        out.set(name, a.f ?? 0);
        break;
      case AT.INT:
        out.set(name, toNum(a.i as LongLike));
        break;
      case AT.STRING:
        out.set(name, new TextDecoder().decode(a.s ?? new Uint8Array()));
        break;
      case AT.TENSOR:
        if (a.t) out.set(name, a.t);
        break;
      case AT.FLOATS:
        out.set(name, [...(a.floats ?? [])]);
        break;
      case AT.INTS:
        out.set(
          name,
          (a.ints ?? []).map((v) => toNum(v as LongLike)),
        );
        break;
      case AT.STRINGS:
        out.set(
          name,
          (a.strings ?? []).map((s) => new TextDecoder().decode(s)),
        );
        break;
      default:
        break; // graphs, sparse tensors, type protos: no supported op uses them
    }
  }
  return out;
}

/** A TensorProto's contents: floats (float32/float64/float16/bfloat16 widened) or integers (as numbers). */
export type TensorValue =
  | { kind: 'float'; dims: number[]; data: Float32Array | Float64Array }
  | { kind: 'int'; dims: number[]; data: number[]; dtype: 'int64' | 'int32' | 'bool' | 'uint8' | 'int8' };

const ELEM_SIZE: Record<number, number> = {
  [DataType.FLOAT]: 4,
  [DataType.DOUBLE]: 8,
  [DataType.FLOAT16]: 2,
  [DataType.BFLOAT16]: 2,
  [DataType.INT64]: 8,
  [DataType.INT32]: 4,
  [DataType.INT16]: 2,
  [DataType.INT8]: 1,
  [DataType.UINT8]: 1,
  [DataType.BOOL]: 1,
};

/** Reads a TensorProto, checking that its declared size matches the bytes present. */
export function readTensor(t: TensorProto, what: string, file: string): TensorValue {
  const bad = (why: string): never => {
    throw new ModelFormatError(`${file}: tensor '${t.name ?? what}' (${what}): ${why}`, {
      context: { file, tensor: t.name ?? what },
      fix: 'the ONNX file is corrupt or uses an unsupported tensor encoding; re-export it',
    });
  };
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL || (t.externalData?.length ?? 0) > 0)
    bad('weights stored in an external data file are not supported (re-export with the weights inside the .onnx file)');
  const dims = (t.dims ?? []).map((d) => toNum(d as LongLike));
  if (dims.some((d) => !Number.isSafeInteger(d) || d < 0)) bad(`invalid dims [${dims.join(', ')}]`);
  const numel = dims.reduce((a, b) => a * b, 1);
  const dt = t.dataType ?? 0;
  const size = ELEM_SIZE[dt];
  if (size === undefined) bad(`unsupported data type ${DataType[dt] ?? dt}`);
  const raw = t.rawData && t.rawData.byteLength > 0 ? t.rawData : null;
  const count = (n: number, src: string) => {
    if (n !== numel) bad(`dims [${dims.join(', ')}] need ${numel} values but ${src} holds ${n}`);
  };
  if (raw) {
    count(raw.byteLength / size!, 'raw_data');
    const ab = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength);
    switch (dt) {
      case DataType.FLOAT:
        return { kind: 'float', dims, data: new Float32Array(ab) };
      case DataType.DOUBLE:
        return { kind: 'float', dims, data: new Float64Array(ab) };
      case DataType.FLOAT16:
        return { kind: 'float', dims, data: halfToFloat32(new Uint16Array(ab)) };
      case DataType.BFLOAT16:
        return { kind: 'float', dims, data: bfloat16ToFloat32(new Uint16Array(ab)) };
      case DataType.INT64:
        return { kind: 'int', dims, dtype: 'int64', data: Array.from(new BigInt64Array(ab), (v) => toNum(Number(v))) };
      case DataType.INT32:
        return { kind: 'int', dims, dtype: 'int32', data: Array.from(new Int32Array(ab)) };
      case DataType.INT16:
        return { kind: 'int', dims, dtype: 'int32', data: Array.from(new Int16Array(ab)) };
      case DataType.INT8:
        return { kind: 'int', dims, dtype: 'int8', data: Array.from(new Int8Array(ab)) };
      case DataType.UINT8:
        return { kind: 'int', dims, dtype: 'uint8', data: Array.from(new Uint8Array(ab)) };
      default:
        return { kind: 'int', dims, dtype: 'bool', data: Array.from(new Uint8Array(ab)) };
    }
  }
  switch (dt) {
    case DataType.FLOAT:
      count(t.floatData?.length ?? 0, 'float_data');
      return { kind: 'float', dims, data: Float32Array.from(t.floatData ?? []) };
    case DataType.DOUBLE:
      count(t.doubleData?.length ?? 0, 'double_data');
      return { kind: 'float', dims, data: Float64Array.from(t.doubleData ?? []) };
    case DataType.FLOAT16:
      count(t.int32Data?.length ?? 0, 'int32_data');
      return { kind: 'float', dims, data: halfToFloat32(t.int32Data ?? []) };
    case DataType.INT64:
      count(t.int64Data?.length ?? 0, 'int64_data');
      return { kind: 'int', dims, dtype: 'int64', data: (t.int64Data ?? []).map((v) => toNum(v as LongLike)) };
    case DataType.BFLOAT16:
      return bad('bfloat16 without raw_data');
    default: {
      count(t.int32Data?.length ?? 0, 'int32_data');
      const dtype =
        dt === DataType.BOOL ? 'bool' : dt === DataType.UINT8 ? 'uint8' : dt === DataType.INT8 ? 'int8' : 'int32';
      return { kind: 'int', dims, dtype, data: [...(t.int32Data ?? [])] };
    }
  }
}
