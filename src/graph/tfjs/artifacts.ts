/**
 * TF.js model artifacts: `model.json` + binary shards, or nsfwjs's JS modules (`model.min.js` holding the JSON
 * as an object literal, `group1-shardKofN.min.js` holding each shard as base64). Weight specs are decoded
 * (float32, float16, uint8/uint16 affine quantisation) after checking the shards hold every byte the
 * manifest promises, before anything large is allocated.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ModelFormatError } from '../errors.js';
import { readExportedLiteral, type JsValue } from './js-literal.js';

export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: string; scale?: number; min?: number };
}
export interface TfjsArtifacts {
  file: string;
  /** The model JSON: `modelTopology`, `weightsManifest`, `format`, … */
  json: { [k: string]: JsValue };
  specs: WeightSpec[];
  /** All shards concatenated in manifest order. */
  weightData: Uint8Array;
  /**
   * The `metadata.json` beside a `model.json`, when there is one (Teachable Machine writes it: labels, image
   * size, its library's name). TF.js itself never reads it; tapir reads the input convention from it.
   */
  metadata?: { file: string; json: { [k: string]: JsValue } };
}
export interface DecodedWeight {
  shape: number[];
  values: Float32Array;
}
/** A decoded weight with its stored name; a manifest may store one name several times (nested models). */
export interface NamedWeight extends DecodedWeight {
  name: string;
}

const fmtErr = (
  file: string,
  msg: string,
  fix = 'the model files are truncated or not a TF.js model; re-export them (tensorflowjs_converter) or reinstall the package',
) => new ModelFormatError(`${file}: ${msg}`, { context: { file }, fix });

/** Reads a TF.js model from `model.json`, an nsfwjs `model.min.js`, or a folder holding either. */
export async function readTfjsArtifacts(path: string): Promise<TfjsArtifacts> {
  let file = path;
  const st = await stat(path).catch(() => null);
  if (!st)
    throw fmtErr(
      path,
      'no such file or folder',
      'pass a TF.js model.json, an nsfwjs model.min.js, or the folder holding one',
    );
  if (st.isDirectory()) {
    const cands = ['model.json', 'model.min.js'].map((f) => join(path, f));
    const found = await Promise.all(
      cands.map((c) =>
        stat(c).then(
          () => true,
          () => false,
        ),
      ),
    );
    const i = found.indexOf(true);
    if (i < 0)
      throw fmtErr(path, 'folder holds neither model.json nor model.min.js', 'pass the folder of a TF.js model');
    file = cands[i]!;
  }
  const isJs = file.endsWith('.js');
  const text = await readFile(file, 'utf8');
  let json: JsValue;
  if (isJs) json = readExportedLiteral(text, file);
  else {
    try {
      json = JSON.parse(text) as JsValue;
    } catch (e) {
      throw fmtErr(file, `not valid JSON (${(e as Error).message})`);
    }
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    throw fmtErr(file, 'the model JSON is not an object');
  if (!json.modelTopology || typeof json.modelTopology !== 'object')
    throw fmtErr(file, "the model JSON has no 'modelTopology'");
  const manifest = json.weightsManifest;
  if (!Array.isArray(manifest)) throw fmtErr(file, "the model JSON has no 'weightsManifest' list");
  const specs: WeightSpec[] = [];
  const shards: Uint8Array[] = [];
  for (const group of manifest) {
    const g = group as { paths?: unknown; weights?: unknown };
    if (!Array.isArray(g.paths) || !Array.isArray(g.weights))
      throw fmtErr(file, "a weightsManifest group lacks 'paths' or 'weights'");
    for (const w of g.weights) specs.push(checkSpec(w, file));
    for (const p of g.paths) {
      if (typeof p !== 'string' || p.includes('..')) throw fmtErr(file, `bad shard path ${JSON.stringify(p)}`);
      shards.push(await readShard(join(dirname(file), isJs ? `${p}.min.js` : p), isJs));
    }
  }
  const total = shards.reduce((n, s) => n + s.byteLength, 0);
  const weightData = new Uint8Array(total);
  let off = 0;
  for (const s of shards) {
    weightData.set(s, off);
    off += s.byteLength;
  }
  const metadata = isJs ? undefined : await readMetadata(join(dirname(file), 'metadata.json'));
  return { file, json, specs, weightData, ...(metadata ? { metadata } : {}) };
}

async function readMetadata(file: string): Promise<TfjsArtifacts['metadata']> {
  const text = await readFile(file, 'utf8').catch(() => null);
  if (text === null) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw fmtErr(
      file,
      `not valid JSON (${(e as Error).message})`,
      'the metadata.json beside model.json sets the input convention: repair it (re-export the model) or remove it',
    );
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw fmtErr(file, 'metadata.json is not a JSON object', 'repair or remove the metadata.json beside model.json');
  return { file, json: v as { [k: string]: JsValue } };
}

async function readShard(file: string, isJs: boolean): Promise<Uint8Array> {
  const buf = await readFile(file).catch(() => {
    throw fmtErr(
      file,
      'weight shard listed in the manifest is missing',
      'copy every group*-shard* file next to the model JSON',
    );
  });
  if (!isJs) return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  const v = readExportedLiteral(buf.toString('utf8'), file);
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v))
    throw fmtErr(file, 'the shard module does not export a base64 string');
  return new Uint8Array(Buffer.from(v, 'base64'));
}

function checkSpec(w: JsValue, file: string): WeightSpec {
  const s = w as unknown as WeightSpec;
  if (!s || typeof s.name !== 'string' || !Array.isArray(s.shape) || typeof s.dtype !== 'string')
    throw fmtErr(file, `bad weight spec ${JSON.stringify(w).slice(0, 200)}`);
  if (!s.shape.every((d) => Number.isInteger(d) && d >= 0 && d < 2 ** 31))
    throw fmtErr(file, `weight '${s.name}' has a bad shape [${s.shape.join(', ')}]`);
  return s;
}

const BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };

function float16ToFloat32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** Every weight spec decoded, by name; a name stored twice keeps its last value (use `decodeWeightList` then). */
export function decodeWeights(a: Pick<TfjsArtifacts, 'file' | 'specs' | 'weightData'>): Map<string, DecodedWeight> {
  return new Map(decodeWeightList(a).map(({ name, shape, values }) => [name, { shape, values }]));
}

/**
 * Decodes every weight spec, in manifest order, duplicates kept. Quantised values are `q · scale + min`
 * (tfjs-core io/io_utils), computed in double and stored as float32 exactly as TF.js does, so parity is
 * bit-for-bit at the weights.
 */
export function decodeWeightList(a: Pick<TfjsArtifacts, 'file' | 'specs' | 'weightData'>): NamedWeight[] {
  let need = 0;
  for (const s of a.specs) {
    const storage = s.quantization?.dtype ?? s.dtype;
    const b = BYTES[storage];
    if (b === undefined)
      throw fmtErr(
        a.file,
        `weight '${s.name}' has unsupported dtype '${storage}' (supported: ${Object.keys(BYTES).join(', ')})`,
      );
    need += s.shape.reduce((p, d) => p * d, 1) * b;
  }
  if (need !== a.weightData.byteLength)
    throw fmtErr(
      a.file,
      `the weight shards hold ${a.weightData.byteLength} bytes but the manifest describes ${need}`,
      'a shard is truncated or from another model; re-download or re-export the model',
    );
  const out: NamedWeight[] = [];
  const dv = new DataView(a.weightData.buffer, a.weightData.byteOffset, a.weightData.byteLength);
  let off = 0;
  for (const s of a.specs) {
    const n = s.shape.reduce((p, d) => p * d, 1);
    const v = new Float32Array(n);
    const q = s.quantization;
    const storage = q?.dtype ?? s.dtype;
    if (storage === 'uint8' || storage === 'uint16') {
      if (typeof q?.scale !== 'number' || typeof q.min !== 'number')
        throw fmtErr(a.file, `quantised weight '${s.name}' lacks scale/min`);
      for (let i = 0; i < n; i++)
        v[i] = (storage === 'uint8' ? dv.getUint8(off + i) : dv.getUint16(off + 2 * i, true)) * q.scale + q.min;
    } else if (storage === 'float16')
      for (let i = 0; i < n; i++) v[i] = float16ToFloat32(dv.getUint16(off + 2 * i, true));
    else if (storage === 'float32') for (let i = 0; i < n; i++) v[i] = dv.getFloat32(off + 4 * i, true);
    else if (storage === 'int32') for (let i = 0; i < n; i++) v[i] = dv.getInt32(off + 4 * i, true);
    else for (let i = 0; i < n; i++) v[i] = dv.getUint8(off + i);
    off += n * BYTES[storage]!;
    out.push({ name: s.name, shape: s.shape, values: v });
  }
  return out;
}

/** A readable model name from its path (folder name for model.json / model.min.js). */
export function modelNameOf(file: string): string {
  const b = basename(file);
  return b === 'model.json' || b === 'model.min.js' ? basename(dirname(file)) : b.replace(/\.(json|js)$/, '');
}
