/** Test set-up shared by the data tests: a throw-away cache, the real assets dir, the optional CIFAR-10 folder. */
import { after } from 'node:test';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where `make setup` put the digits asset (computed before the cache is redirected). */
export const REAL_ASSETS = resolve(
  process.env.TAPIR_ASSETS || join(process.env.TAPIR_CACHE || join(homedir(), '.cache', 'tapir'), 'assets'),
);

/** Points TAPIR_CACHE at a fresh temp dir for this test file, removed afterwards. */
export function useTempCache(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tapir-data-test-'));
  process.env.TAPIR_CACHE = dir;
  process.env.TAPIR_ASSETS = REAL_ASSETS;
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A fresh temp dir removed after the file's tests. */
export function tempDir(prefix = 'tapir-data-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// dist/test/data/env.js → repository root is three levels up.
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The CIFAR-10 subset (natural photos) if present: `$TAPIR_CIFAR10_DIR` or ../shared/data/cifar10 beside the clone. */
export function cifarDir(): string | null {
  const d = process.env.TAPIR_CIFAR10_DIR || resolve(repoRoot, '..', 'shared', 'data', 'cifar10');
  return existsSync(join(d, 'train')) ? d : null;
}

/** A Buffer as a plain Uint8Array (@types/node 20's Buffer does not type-check as one under TS 5.9). */
export function u8(b: { buffer: ArrayBufferLike; byteOffset: number; byteLength: number }): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}
