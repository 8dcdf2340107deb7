/** Helpers shared by the datasets made of image files (clip-art, emoji, folder). */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeImage } from '../decode.js';
import { DataError } from '../errors.js';
import type { Dataset, Example, PoolName, SkippedFile } from '../dataset.js';

export const IMAGE_EXT = /\.(png|jpe?g)$/i;

/** Every file under `dir` (following no symlinked directories), as paths relative to `dir`, sorted. */
export async function walk(dir: string, rel = ''): Promise<{ rel: string; symlink: boolean }[]> {
  const out: { rel: string; symlink: boolean }[] = [];
  const entries = await readdir(join(dir, rel), { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await walk(dir, r)));
    else if (e.isFile() || e.isSymbolicLink()) out.push({ rel: r, symlink: e.isSymbolicLink() });
  }
  return out;
}

/** Builds a dataset over image files under `root`; example keys are paths relative to `root`. */
export function fileDataset(o: {
  name: string;
  root: string;
  files: readonly { rel: string; cls: string; pool?: PoolName }[];
  skipped: SkippedFile[];
  fingerprint: string;
  minPerClass?: number;
}): Dataset {
  const counts = new Map<string, number>();
  for (const f of o.files) counts.set(f.cls, (counts.get(f.cls) ?? 0) + 1);
  const min = o.minPerClass ?? 1;
  const classes = [...counts.keys()].filter((c) => counts.get(c)! >= min).sort();
  const index = new Map(classes.map((c, i) => [c, i]));
  const examples: Example[] = [];
  for (const f of o.files) {
    const label = index.get(f.cls);
    if (label !== undefined) examples.push({ key: f.rel, label, pool: f.pool ?? 'train' });
  }
  if (classes.length === 0)
    throw new DataError(`dataset '${o.name}': no class has ${min} or more images under ${o.root}`, {
      context: { dataset: o.name, root: o.root },
    });
  return {
    name: o.name,
    root: o.root,
    classes,
    examples,
    officialTest: examples.some((e) => e.pool === 'test'),
    fingerprint: o.fingerprint,
    skipped: o.skipped,
    decode: (ex, size) => decodeImage(join(o.root, ex.key), size),
  };
}
