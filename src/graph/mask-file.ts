/**
 * The mask file (docs/GRAPH.md): safetensors with one bit-packed uint8 tensor per masked parameter (named like the
 * parameter; bit i of the row-major flattened mask is bit i % 8, LSB first, of byte ⌊i / 8⌋, as numpy's
 * packbits(bitorder='little')), and `__metadata__` with the pruning run's settings, the parameter shapes and the
 * achieved sparsity. Loading checks every name and shape against the model before setting any mask.
 */
import { noGrad, tensor, TapirError } from '../engine/index.js';
import type { Graph } from './ir.js';
import { setMask } from './params.js';
import { readSafetensors, writeSafetensors } from './safetensors.js';

export const MASK_FORMAT = 'tapir-mask/1';

/** What produced the mask (docs/GRAPH.md); free-form values are stored as JSON strings. */
export interface MaskRunInfo {
  score?: string;
  estimator?: string;
  loss?: string;
  allocation?: string;
  schedule?: string;
  sourceTask?: string;
  calibrationCount?: number;
  seed?: number;
  tapirVersion?: string;
  [k: string]: unknown;
}

export class MaskFileError extends TapirError {
  constructor(
    file: string,
    message: string,
    context: Record<string, unknown> = {},
    fix = 'use the mask file written for this model (same zoo id and input size), or re-run the pruning',
  ) {
    super('E_MASK_FILE', `${file}: ${message}`, { context: { file, ...context }, fix });
  }
}

/** Packs a 0/1 array into bits, LSB first (the mask file's and the study store's layout). */
export function packBits(v: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(Math.ceil(v.length / 8));
  for (let i = 0; i < v.length; i++) if (v[i]! !== 0) out[i >> 3]! |= 1 << (i & 7);
  return out;
}
/** The first `n` bits of `b` as 0/1 floats. */
export function unpackBits(b: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (b[i >> 3]! >> (i & 7)) & 1;
  return out;
}

/** Writes `g.masks` (atomically: temp file, then rename). Returns the achieved sparsities. */
export async function writeMaskFile(
  path: string,
  g: Graph,
  info: MaskRunInfo = {},
): Promise<{ global: number; perTensor: Record<string, number> }> {
  const tensors = new Map<string, { dtype: 'U8'; shape: number[]; data: Uint8Array }>();
  const shapes: Record<string, number[]> = {};
  const perTensor: Record<string, number> = {};
  let zeros = 0;
  let total = 0;
  for (const [name, m] of g.masks) {
    const v = noGrad(() => m.to('float32').data<'float32'>());
    const bits = packBits(v);
    let z = 0;
    for (let i = 0; i < v.length; i++) if (v[i] === 0) z++;
    tensors.set(name, { dtype: 'U8', shape: [bits.length], data: bits });
    shapes[name] = [...m.shape];
    perTensor[name] = v.length ? z / v.length : 0;
    zeros += z;
    total += v.length;
  }
  const global = total ? zeros / total : 0;
  const meta: Record<string, string> = {};
  for (const [k, v] of Object.entries(info))
    if (v !== undefined) meta[k] = typeof v === 'string' ? v : JSON.stringify(v);
  Object.assign(meta, {
    format: MASK_FORMAT,
    model: g.name,
    bitorder: 'little',
    shapes: JSON.stringify(shapes),
    sparsity: JSON.stringify(global),
    sparsityPerTensor: JSON.stringify(perTensor),
  });
  await writeSafetensors(path, tensors, meta);
  return { global, perTensor };
}

/** Reads a mask file and sets the masks on `g` by parameter name, after checking every name and shape. */
export async function loadMaskFile(
  g: Graph,
  path: string,
): Promise<{ metadata: Record<string, string>; count: number }> {
  const st = await readSafetensors(path);
  const md = st.metadata;
  if (md.format !== MASK_FORMAT)
    throw new MaskFileError(
      path,
      `not a tapir mask file (metadata format '${md.format ?? 'missing'}', expected '${MASK_FORMAT}')`,
    );
  let shapes: Record<string, number[]>;
  try {
    shapes = JSON.parse(md.shapes ?? '') as Record<string, number[]>;
  } catch {
    throw new MaskFileError(path, "the metadata entry 'shapes' is missing or not JSON");
  }
  // The metadata lists every masked tensor: a file missing one would silently leave that tensor dense.
  const absent = Object.keys(shapes).filter((n) => !st.entries.has(n));
  if (absent.length > 0)
    throw new MaskFileError(
      path,
      `the file lists ${Object.keys(shapes).length} masked tensors but lacks ${absent.length} of them (${absent
        .slice(0, 3)
        .join(', ' + '')}${absent.length > 3 ? ', …' : ''}): it is truncated or was edited`,
      { missing: absent },
      're-run the pruning that wrote it',
    );
  const planned: [string, Float32Array, number[]][] = [];
  for (const [name, e] of st.entries) {
    const p = g.params.get(name);
    if (!p)
      throw new MaskFileError(
        path,
        `mask tensor '${name}' has no parameter of that name in model '${g.name}' (the file was written for '${md.model ?? '?'}')`,
        { tensor: name },
      );
    const shape = shapes[name];
    const want = p.tensor.shape;
    if (!Array.isArray(shape) || shape.length !== want.length || shape.some((d, i) => d !== want[i]))
      throw new MaskFileError(
        path,
        `mask tensor '${name}' is for shape [${(shape ?? []).join(', ')}] but model '${g.name}' has [${want.join(', ')}]`,
        { tensor: name },
      );
    const n = want.reduce((a, d) => a * d, 1);
    if (e.dtype !== 'U8' || e.shape.length !== 1 || e.shape[0] !== Math.ceil(n / 8))
      throw new MaskFileError(
        path,
        `mask tensor '${name}' must be U8 [${Math.ceil(n / 8)}] (bit-packed), got ${e.dtype} [${e.shape.join(', ')}]`,
        { tensor: name },
      );
    planned.push([name, unpackBits(st.bytes(name), n), [...want]]);
  }
  for (const [name, v, shape] of planned) {
    const t = tensor(v, shape);
    setMask(g, name, t);
    t.dispose();
  }
  return { metadata: { ...md }, count: planned.length };
}
