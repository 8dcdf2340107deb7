/**
 * Fetches the one asset that is not a plain package install: sklearn's digits CSV, taken out of the Debian
 * python3-sklearn .deb (`apt-get download` + `dpkg-deb -x`) without installing the package and its
 * dependencies. mk/data.mk does the same in shell for `make setup`.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AssetMissingError } from './errors.js';
import { ASSETS, assetsRoot, SKLEARN_DIGITS_REL } from './paths.js';

const run = promisify(execFile);

/** Makes sure the digits CSV is present; returns its path. */
export async function ensureDigits(): Promise<string> {
  const have = ASSETS.digits.path();
  if (existsSync(have)) return have;
  const dest = join(assetsRoot(), 'python3-sklearn');
  await mkdir(assetsRoot(), { recursive: true });
  const tmp = await mkdtemp(join(assetsRoot(), '.sklearn-'));
  try {
    await run('apt-get', ['download', 'python3-sklearn'], { cwd: tmp });
    const deb = (await readdir(tmp)).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error('apt-get download produced no .deb');
    await run('dpkg-deb', ['-x', join(tmp, deb), join(tmp, 'x')]);
    if (!existsSync(join(tmp, 'x', SKLEARN_DIGITS_REL))) throw new Error(`${deb} has no ${SKLEARN_DIGITS_REL}`);
    await rm(dest, { recursive: true, force: true });
    await rename(join(tmp, 'x'), dest);
  } catch (e) {
    const err = new AssetMissingError('digits', join(dest, SKLEARN_DIGITS_REL), ASSETS.digits.install);
    (err as { cause?: unknown }).cause = e;
    throw err;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return ASSETS.digits.path();
}
