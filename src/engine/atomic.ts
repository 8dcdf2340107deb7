/**
 * Atomic file writes, the one helper every layer uses: the data goes to a temp file beside the target (its directory
 * is created if missing), which is then renamed over it, so a reader sees the old file or the new one, never half of
 * one; the temp file is removed when writing fails. `data` may be a function that writes the temp file itself.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { TapirError } from './errors.js';

const tempOf = (path: string) => `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;

function notADirectory(path: string): TapirError {
  return new TapirError('E_FILE', `${path} is a directory, not a file`, {
    context: { path },
    fix: 'pass a file path (e.g. out/report.html)',
  });
}

export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string | ((tmp: string) => Promise<void>),
): Promise<void> {
  if ((await stat(path).catch(() => null))?.isDirectory()) throw notADirectory(path);
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempOf(path);
  try {
    if (typeof data === 'function') await data(tmp);
    else await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

export function writeFileAtomicSync(path: string, data: Uint8Array | string): void {
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    /* absent: fine */
  }
  if (isDir) throw notADirectory(path);
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempOf(path);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}
