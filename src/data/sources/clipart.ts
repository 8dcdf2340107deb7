/**
 * OpenClipArt (Debian `openclipart-png`): the class is the top-level category folder. 1,221 of the PNGs are
 * symlinks, often into another category: each file is resolved, counted once, and dropped when the names
 * that reach it sit in more than one category (its class would be ambiguous).
 */
import { existsSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { AssetMissingError } from '../errors.js';
import { hashString } from '../rng.js';
import type { Dataset, SkippedFile } from '../dataset.js';
import { ASSETS } from '../paths.js';
import { fileDataset, walk } from './files.js';

/** Categories with fewer images are not classes (too few for a stratified train/calib/test split). */
export const CLIPART_MIN_PER_CLASS = 60;

export async function openClipart(): Promise<Dataset> {
  const root = ASSETS.clipart.path();
  if (!existsSync(root)) throw new AssetMissingError('clipart', root, ASSETS.clipart.install);
  const realRoot = await realpath(root);
  const cats = new Map<string, Set<string>>();
  const skipped: SkippedFile[] = [];
  for (const f of await walk(root)) {
    if (!/\.png$/i.test(f.rel) || !f.rel.includes('/')) continue;
    let real: string;
    try {
      real = await realpath(join(root, f.rel));
    } catch {
      skipped.push({ file: f.rel, reason: 'dangling symlink' });
      continue;
    }
    const rel = relative(realRoot, real);
    if (rel.startsWith('..')) {
      skipped.push({ file: f.rel, reason: 'resolves outside the clip-art tree' });
      continue;
    }
    const key = rel.split(sep).join('/');
    if (!cats.has(key)) cats.set(key, new Set());
    cats.get(key)!.add(f.rel.slice(0, f.rel.indexOf('/')));
  }
  const files: { rel: string; cls: string }[] = [];
  for (const [rel, set] of [...cats].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (set.size > 1)
      skipped.push({ file: rel, reason: `reached from several categories (${[...set].sort().join(', ')})` });
    else files.push({ rel, cls: [...set][0]! });
  }
  return fileDataset({
    name: 'clipart',
    root: realRoot,
    files,
    skipped,
    fingerprint: hashString(files.map((f) => `${f.cls}/${f.rel}`).join('|')).toString(16),
    minPerClass: CLIPART_MIN_PER_CLASS,
  });
}
