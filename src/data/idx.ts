/** IDX files (the MNIST format): big-endian header, then uint8 data. Gzipped files are inflated first. */
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { DataError } from './errors.js';

export interface IdxArray {
  /** Dimensions from the header, e.g. [60000, 28, 28]. */
  readonly dims: readonly number[];
  /** The uint8 payload, row-major. */
  readonly data: Uint8Array;
}

/** Parses an IDX buffer holding unsigned bytes (type code 0x08). `name` is used in errors. */
export function parseIdx(buf: Uint8Array, name: string): IdxArray {
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0)
    throw new DataError(`${name}: not an IDX file (bad magic)`, {
      context: { file: name },
      fix: 'reinstall the dataset package',
    });
  if (buf[2] !== 0x08)
    throw new DataError(`${name}: IDX element type 0x${buf[2]!.toString(16)} is not uint8`, {
      context: { file: name },
    });
  const nd = buf[3]!;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < nd; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const off = 4 + 4 * nd;
  const n = dims.reduce((a, b) => a * b, 1);
  if (buf.length !== off + n) {
    throw new DataError(`${name}: IDX header says ${n} bytes of data, file has ${buf.length - off}`, {
      context: { file: name, dims },
      fix: 'the file is truncated or corrupt: reinstall the dataset package',
    });
  }
  return { dims, data: buf.subarray(off) };
}

/** Reads and parses an IDX file; `.gz` files are gunzipped. */
export async function readIdx(path: string): Promise<IdxArray> {
  const raw = await readFile(path);
  const b = path.endsWith('.gz') ? gunzipSync(new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength)) : raw;
  return parseIdx(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), path);
}
