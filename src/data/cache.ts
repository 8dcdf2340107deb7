/**
 * On-disk cache of decoded, resized images: one file per (dataset, resolution, preprocessing version, class).
 *
 * Layout: `<cache>/data/<dataset>/<h>x<w>-v<PREP_VERSION>-<fingerprint>/class-<index>.bin`.
 * File: magic `TAPIRDC1`, uint32 LE header length, 32-byte SHA-256 of (header + payload), header JSON, payload
 * (n images of [3, h, w] uint8, in header order). A file whose checksum, magic or header does not match is
 * reported corrupt and rebuilt, never trusted. Writes go to a temp file that is renamed into place.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Size } from './decode.js';
import { DataError } from './errors.js';
import type { Dataset, SkippedFile } from './dataset.js';
import { cacheRoot } from './paths.js';
import { hashString } from './rng.js';
import { writeFileAtomic } from '../engine/index.js';

/** Bump when decoding or resizing changes, so old cache files are not reused. */
export const PREP_VERSION = 1;
const MAGIC = 'TAPIRDC1';
const HEAD = 44; // magic 8 + header length 4 + sha256 32

// @types/node 20's Buffer does not type-check as a Uint8Array under TS 5.9, so bytes stay plain Uint8Arrays.
function u8(b: { buffer: ArrayBufferLike; byteOffset: number; byteLength: number }): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export interface ClassEntry {
  /** Example key → image ([3, h, w] uint8). */
  readonly images: Map<string, Uint8Array>;
  /** Example key → why it could not be decoded. */
  readonly bad: Map<string, string>;
}

interface Header {
  dataset: string;
  cls: string;
  size: [number, number];
  version: number;
  keys: string[];
  bad: SkippedFile[];
}

/** Directory of one dataset at one resolution. */
export function cacheDir(ds: Dataset, size: Size): string {
  const id = ds.name.startsWith('folder:')
    ? `folder-${basename(ds.root).replace(/[^\w.-]/g, '_')}-${hashString(ds.root).toString(16)}`
    : ds.name;
  return join(cacheRoot(), 'data', id, `${size[0]}x${size[1]}-v${PREP_VERSION}-${ds.fingerprint}`);
}

export function classFile(ds: Dataset, size: Size, label: number): string {
  return join(cacheDir(ds, size), `class-${label}.bin`);
}

/** Reads a class file: the entry, `missing`, or `corrupt` (bad magic, checksum, header or length). */
export async function readClassFile(
  path: string,
  expect: { dataset: string; cls: string; size: Size },
): Promise<ClassEntry | 'missing' | 'corrupt'> {
  let buf: Uint8Array;
  try {
    buf = u8(await readFile(path));
  } catch {
    return 'missing';
  }
  const dec = new TextDecoder();
  if (buf.length < HEAD || dec.decode(buf.subarray(0, 8)) !== MAGIC) return 'corrupt';
  const hlen = new DataView(buf.buffer, buf.byteOffset, HEAD).getUint32(8, true);
  if (HEAD + hlen > buf.length) return 'corrupt';
  const digest = hex(buf.subarray(12, HEAD));
  if (createHash('sha256').update(buf.subarray(HEAD)).digest('hex') !== digest) return 'corrupt';
  let h: Header;
  try {
    h = JSON.parse(dec.decode(buf.subarray(HEAD, HEAD + hlen))) as Header;
  } catch {
    return 'corrupt';
  }
  const [ih, iw] = expect.size;
  const per = 3 * ih * iw;
  if (
    h.dataset !== expect.dataset ||
    h.cls !== expect.cls ||
    h.size?.[0] !== ih ||
    h.size?.[1] !== iw ||
    h.version !== PREP_VERSION ||
    !Array.isArray(h.keys) ||
    buf.length !== HEAD + hlen + h.keys.length * per
  )
    return 'corrupt';
  const payload = buf.subarray(HEAD + hlen);
  const images = new Map<string, Uint8Array>();
  h.keys.forEach((k, i) => images.set(k, payload.subarray(i * per, (i + 1) * per)));
  return { images, bad: new Map((h.bad ?? []).map((b) => [b.file, b.reason])) };
}

/** Writes a class file atomically (temp file in the same directory, then rename). */
export async function writeClassFile(
  path: string,
  meta: { dataset: string; cls: string; size: Size },
  entry: ClassEntry,
): Promise<void> {
  const keys = [...entry.images.keys()].sort();
  const header: Header = {
    dataset: meta.dataset,
    cls: meta.cls,
    size: [meta.size[0], meta.size[1]],
    version: PREP_VERSION,
    keys,
    bad: [...entry.bad].map(([file, reason]) => ({ file, reason })),
  };
  const hbuf = new TextEncoder().encode(JSON.stringify(header));
  const per = 3 * meta.size[0] * meta.size[1];
  const file = new Uint8Array(HEAD + hbuf.length + keys.length * per);
  file.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(file.buffer).setUint32(8, hbuf.length, true);
  file.set(hbuf, HEAD);
  keys.forEach((k, i) => file.set(entry.images.get(k)!, HEAD + hbuf.length + i * per));
  file.set(u8(createHash('sha256').update(file.subarray(HEAD)).digest()), 12);
  try {
    await writeFileAtomic(path, file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR' || code === 'EEXIST' || code === 'EACCES' || code === 'EPERM' || code === 'EROFS')
      throw new DataError(
        `cannot write the image cache under ${cacheRoot()} (${code}: ${
          code === 'ENOTDIR' || code === 'EEXIST' ? 'a path component is a file' : 'not ' + 'writable'
        })`,
        {
          context: { cache: cacheRoot(), TAPIR_CACHE: process.env.TAPIR_CACHE ?? null },
          fix: 'set TAPIR_CACHE to a writable directory (default ~/.cache/tapir)',
        },
      );
    throw e;
  }
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}
