/**
 * safetensors (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N, N bytes of
 * JSON header `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {string: string}}`, then the data.
 *
 * The reader trusts nothing in the file: the header length must fit in the file and stay under a sane cap (checked
 * before anything is allocated), every dtype must be known, every byte span must lie inside the data region and
 * hold exactly shape × dtype-size bytes. Writes go to a temp file that is renamed into place.
 * Used by the mask file (docs/GRAPH.md) and by `loadStateDict` (timm/torchvision-named weights into zoo models).
 */
import { open, readFile } from 'node:fs/promises';
import { writeFileAtomic, noGrad, tensor, TapirError, ShapeError, Tensor, type DType } from '../engine/index.js';
import type { Graph } from './ir.js';

/** Element sizes of the safetensors dtypes tapir can read. */
export const SAFETENSORS_DTYPES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
  U16: 2,
  U32: 4,
  U64: 8,
} as const;
export type SafetensorsDType = keyof typeof SAFETENSORS_DTYPES;

/** Headers of real checkpoints are a few hundred KB; anything near this is a corrupt or hostile file. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** Byte offsets relative to the start of the data region. */
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsFile {
  readonly file: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly entries: ReadonlyMap<string, SafetensorsEntry>;
  /** The raw little-endian bytes of one tensor (a copy, so typed views are aligned). */
  bytes(name: string): Uint8Array;
  /** The tensor as an engine tensor: F16/BF16 widen to float32, small ints to int32, U32/U64 to int64. */
  tensor(name: string): Tensor;
}

export class SafetensorsError extends TapirError {
  constructor(
    file: string,
    message: string,
    fix = 'the file is not a valid safetensors file; re-export it (e.g. safetensors.torch.save_file) or check that it was copied completely',
  ) {
    super('E_SAFETENSORS', `${file}: ${message}`, { context: { file }, fix });
  }
}

/** Parses a whole safetensors file held in memory. */
export function parseSafetensors(buf: Uint8Array, file = '<buffer>'): SafetensorsFile {
  const n = headerLength(buf.subarray(0, 8), buf.byteLength, file);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + n)));
  } catch (e) {
    throw new SafetensorsError(file, `header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header))
    throw new SafetensorsError(file, 'header must be a JSON object');
  const dataStart = 8 + n;
  const dataLen = buf.byteLength - dataStart;
  const entries = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = checkMetadata(v, file);
      continue;
    }
    entries.set(name, checkEntry(name, v, dataLen, file));
  }
  const get = (name: string): SafetensorsEntry => {
    const e = entries.get(name);
    if (!e)
      throw new SafetensorsError(
        file,
        `no tensor named '${name}' (has: ${[...entries.keys()].slice(0, 20).join(', ')}${entries.size > 20 ? ', …' : ''})`,
        'check the tensor name',
      );
    return e;
  };
  const bytes = (name: string): Uint8Array => {
    const e = get(name);
    return buf.slice(dataStart + e.begin, dataStart + e.end);
  };
  return { file, metadata, entries, bytes, tensor: (name) => toTensor(get(name), bytes(name)) };
}

/** Reads and parses a safetensors file; the header length is checked against the file size before the read. */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new TapirError('E_FILE', `cannot open safetensors file ${path}: ${(e as Error).message}`, {
      context: { file: path },
      fix: 'check the path',
    });
  }
  try {
    const { size } = await fh.stat();
    const head = new Uint8Array(8);
    await fh.read(head, 0, 8, 0);
    headerLength(head, size, path);
  } finally {
    await fh.close();
  }
  const b = await readFile(path);
  return parseSafetensors(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), path);
}

function headerLength(first8: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8 || first8.byteLength < 8)
    throw new SafetensorsError(file, `file has ${fileSize} bytes, fewer than the 8-byte header length`);
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES))
    throw new SafetensorsError(file, `header length ${n} bytes is absurd (limit ${MAX_HEADER_BYTES})`);
  if (n < 2n) throw new SafetensorsError(file, `header length ${n} is too small to hold a JSON object`);
  if (n > BigInt(fileSize - 8))
    throw new SafetensorsError(
      file,
      `header claims ${n} bytes but the file has only ${fileSize - 8} after the length field (truncated?)`,
    );
  return Number(n);
}

function checkMetadata(v: unknown, file: string): Record<string, string> {
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new SafetensorsError(file, '__metadata__ must be an object of strings');
  for (const [k, s] of Object.entries(v))
    if (typeof s !== 'string') throw new SafetensorsError(file, `__metadata__.${k} must be a string, got ${typeof s}`);
  return { ...(v as Record<string, string>) };
}

function checkEntry(name: string, v: unknown, dataLen: number, file: string): SafetensorsEntry {
  const bad = (why: string): never => {
    throw new SafetensorsError(file, `tensor '${name}': ${why}`);
  };
  if (v === null || typeof v !== 'object') bad('entry must be an object {dtype, shape, data_offsets}');
  const { dtype, shape, data_offsets: off } = v as Record<string, unknown>;
  if (typeof dtype !== 'string' || !(dtype in SAFETENSORS_DTYPES))
    bad(`unknown dtype ${JSON.stringify(dtype)} (known: ${Object.keys(SAFETENSORS_DTYPES).join(', ')})`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
    bad(`shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
  if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0))
    bad(`data_offsets must be [begin, end], got ${JSON.stringify(off)}`);
  const [begin, end] = off as [number, number];
  if (begin > end || end > dataLen)
    bad(`data_offsets [${begin}, ${end}] lie outside the data region of ${dataLen} bytes (truncated file?)`);
  const numel = (shape as number[]).reduce((a, b) => a * b, 1);
  const want = numel * SAFETENSORS_DTYPES[dtype as SafetensorsDType];
  if (want !== end - begin)
    bad(
      `shape [${(shape as number[]).join(', ')}] × ${dtype} needs ${want} bytes but data_offsets span ${end - begin}`,
    );
  return { name, dtype: dtype as SafetensorsDType, shape: shape as number[], begin, end };
}

function toTensor(e: SafetensorsEntry, b: Uint8Array): Tensor {
  const ab = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  const n = e.end - e.begin;
  switch (e.dtype) {
    case 'F64':
      return tensor(new Float64Array(ab), e.shape);
    case 'F32':
      return tensor(new Float32Array(ab), e.shape);
    case 'F16':
      return tensor(halfToFloat32(new Uint16Array(ab)), e.shape);
    case 'BF16':
      return tensor(bfloat16ToFloat32(new Uint16Array(ab)), e.shape);
    case 'I64':
      return tensor(new BigInt64Array(ab), e.shape);
    case 'U64':
      return tensor(
        BigInt64Array.from(new BigUint64Array(ab), (x) => BigInt.asIntN(64, x)),
        e.shape,
      );
    case 'I32':
      return tensor(new Int32Array(ab), e.shape);
    case 'U32':
      return tensor(
        BigInt64Array.from(new Uint32Array(ab), (x) => BigInt(x)),
        e.shape,
      );
    case 'I16':
      return tensor(Int32Array.from(new Int16Array(ab)), e.shape);
    case 'U16':
      return tensor(Int32Array.from(new Uint16Array(ab)), e.shape);
    case 'I8':
      return tensor(Int32Array.from(new Int8Array(ab)), e.shape);
    case 'U8':
      return tensor(new Uint8Array(ab, 0, n), e.shape);
    case 'BOOL':
      return tensor(new Uint8Array(ab, 0, n), e.shape, { dtype: 'bool' });
  }
}

/*
 * Half-precision arrays are widened in a loop, not with `Float32Array.from(src, f)`: with a mapping function V8 first
 * collects every value into a JS list, which fails near 10⁸ elements ("invalid array length", a fatal out-of-memory).
 */
/** bfloat16 bit patterns (ONNX and safetensors BF16) as float32: the upper 16 bits of each float32, exactly. */
export function bfloat16ToFloat32(src: Uint16Array): Float32Array {
  const u = new Uint32Array(src.length);
  for (let i = 0; i < src.length; i++) u[i] = src[i]! << 16;
  return new Float32Array(u.buffer);
}
/** IEEE 754 half-precision bit patterns (ONNX and safetensors F16) as float32. */
export function halfToFloat32(src: ArrayLike<number>): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = halfToFloat(src[i]!);
  return out;
}
/** An IEEE 754 half-precision bit pattern as a number (ONNX and safetensors F16). */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** A tensor to write: an engine tensor, or raw little-endian bytes with their dtype and shape. */
export type SafetensorsInput = Tensor | { dtype: SafetensorsDType; shape: readonly number[]; data: Uint8Array };

const FROM_ENGINE: Partial<Record<DType, SafetensorsDType>> = {
  float32: 'F32',
  float64: 'F64',
  int64: 'I64',
  int32: 'I32',
  uint8: 'U8',
  bool: 'BOOL',
};

/** Serialises tensors (+ `__metadata__`) into safetensors bytes; the header is space-padded to 8-byte alignment. */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, SafetensorsInput> | Readonly<Record<string, SafetensorsInput>>,
  metadata: Readonly<Record<string, string>> = {},
): Uint8Array {
  const items = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata))
      if (typeof v !== 'string')
        throw new TapirError('E_ARG', `safetensors metadata '${k}' must be a string`, {
          fix: 'JSON.stringify non-string values',
        });
    header.__metadata__ = metadata;
  }
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of items) {
    if (name === '__metadata__') throw new TapirError('E_ARG', `'__metadata__' is reserved and cannot name a tensor`);
    const raw = rawOf(name, t);
    header[name] = { dtype: raw.dtype, shape: [...raw.shape], data_offsets: [offset, offset + raw.data.byteLength] };
    chunks.push(raw.data);
    offset += raw.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((Buffer.byteLength(json) + 8) % 8)) % 8);
  const hb = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + hb.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(hb.byteLength), true);
  out.set(hb, 8);
  let p = 8 + hb.byteLength;
  for (const c of chunks) {
    out.set(c, p);
    p += c.byteLength;
  }
  return out;
}

function rawOf(
  name: string,
  t: SafetensorsInput,
): { dtype: SafetensorsDType; shape: readonly number[]; data: Uint8Array } {
  if (!(t instanceof Tensor)) {
    const want = t.shape.reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPES[t.dtype];
    if (want !== t.data.byteLength)
      throw new ShapeError(
        `safetensors: '${name}' has ${t.data.byteLength} bytes but shape [${t.shape.join(', ')}] × ${t.dtype} needs ${want}`,
      );
    return t;
  }
  const dtype = FROM_ENGINE[t.dtype];
  if (!dtype)
    throw new TapirError('E_DTYPE', `safetensors: cannot write '${name}' of dtype ${t.dtype}`, {
      fix: 'convert it to float32 first',
    });
  const c = t.contiguous();
  const a = c.data() as ArrayBufferView;
  c.dispose();
  return { dtype, shape: t.shape, data: new Uint8Array(a.buffer, a.byteOffset, a.byteLength) };
}

/** Writes atomically: a temp file beside `path`, then rename. */
export async function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, SafetensorsInput> | Readonly<Record<string, SafetensorsInput>>,
  metadata: Readonly<Record<string, string>> = {},
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

export interface LoadStateDictResult {
  loaded: string[];
  /** Graph parameters the file did not have (left as they were). */
  missing: string[];
  /** File tensors with no parameter of that name (torch bookkeeping like `num_batches_tracked` is not listed). */
  unexpected: string[];
}

/**
 * Copies a safetensors state dict into the graph's parameters by name (timm/torchvision names for zoo models).
 * Every shape is checked first, naming the tensor; nothing is modified unless all checks pass. With `strict`
 * (default), missing or unexpected tensors are an error too.
 */
export async function loadStateDict(
  g: Graph,
  file: string | SafetensorsFile,
  o: { strict?: boolean } = {},
): Promise<LoadStateDictResult> {
  const st = typeof file === 'string' ? await readSafetensors(file) : file;
  const strict = o.strict ?? true;
  const names = [...st.entries.keys()].filter((n) => !n.endsWith('num_batches_tracked'));
  const unexpected = names.filter((n) => !g.params.has(n));
  const loaded = names.filter((n) => g.params.has(n));
  const missing = [...g.params.keys()].filter((n) => !st.entries.has(n));
  for (const n of loaded) {
    const want = g.params.get(n)!.tensor.shape;
    const got = st.entries.get(n)!.shape;
    if (want.length !== got.length || want.some((d, i) => d !== got[i]))
      throw new ShapeError(
        `loadStateDict: tensor '${n}' in ${st.file} has shape [${got.join(', ')}] but model '${g.name}' expects [${want.join(', ')}]`,
        {
          context: { file: st.file, tensor: n },
          fix: 'use weights of the same architecture and size (e.g. vit_small weights for vit_small)',
        },
      );
  }
  if (strict && (missing.length > 0 || unexpected.length > 0)) {
    const list = (xs: string[]): string => xs.slice(0, 10).join(', ') + (xs.length > 10 ? `, … (${xs.length})` : '');
    throw new TapirError(
      'E_STATE_DICT',
      `loadStateDict: ${st.file} does not match model '${g.name}'` +
        (missing.length ? `; missing: ${list(missing)}` : '') +
        (unexpected.length ? `; unexpected: ${list(unexpected)}` : ''),
      {
        context: { file: st.file, missing: missing.length, unexpected: unexpected.length },
        fix: 'check that the file is a state dict for this architecture, or pass strict: false',
      },
    );
  }
  noGrad(() => {
    for (const n of loaded) {
      const p = g.params.get(n)!;
      const src = st.tensor(n);
      const conv = src.dtype === p.tensor.dtype ? src : src.to(p.tensor.dtype);
      p.tensor.copy_(conv);
      if (conv !== src) conv.dispose();
      src.dispose();
    }
  });
  return { loaded, missing, unexpected };
}
