/**
 * `folder:<path>`: user images, one sub-folder per class (PNG/JPEG, nested folders allowed). A root holding
 * exactly `train/` and `test/`, each with the same class folders, is read as an official train/test split.
 * Zero-byte and non-image files are skipped and listed in `skipped`; corrupt images are found (and skipped)
 * when decoded.
 */
import { existsSync, statSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DataError } from '../errors.js';
import { dataPath } from '../paths.js';
import { hashString } from '../rng.js';
import type { Dataset, PoolName, SkippedFile } from '../dataset.js';
import { fileDataset, IMAGE_EXT, walk } from './files.js';

async function subdirs(dir: string): Promise<string[]> {
  return (await readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
}

export async function openFolder(path: string): Promise<Dataset> {
  const root = dataPath(path);
  const name = `folder:${root}`;
  if (!existsSync(root) || !statSync(root).isDirectory()) {
    throw new DataError(`dataset '${name}': no such directory`, {
      context: { dataset: name },
      fix: 'give a directory with one sub-folder of images per class: folder:/path/to/dir',
    });
  }
  const top = await subdirs(root);
  const split = top.length === 2 && top[0] === 'test' && top[1] === 'train';
  const pools: [PoolName, string][] = split
    ? [
        ['train', 'train'],
        ['test', 'test'],
      ]
    : [['train', '']];
  const files: { rel: string; cls: string; pool: PoolName }[] = [];
  const skipped: SkippedFile[] = [];
  const fp: string[] = [];
  let classNames: string[] | undefined;
  for (const [pool, sub] of pools) {
    const dir = sub ? join(root, sub) : root;
    const classes = await subdirs(dir);
    if (classNames && classes.join('/') !== classNames.join('/')) {
      const odd = [
        ...classes.filter((c) => !classNames!.includes(c)),
        ...classNames.filter((c) => !classes.includes(c)),
      ];
      throw new DataError(`dataset '${name}': train/ and test/ have different class folders (${odd.join(', ')})`, {
        context: { dataset: name, classes: odd },
        fix: 'give train/ and test/ the same class sub-folders',
      });
    }
    classNames = classes;
    for (const cls of classes) {
      let n = 0;
      for (const f of await walk(join(dir, cls))) {
        const rel = [sub, cls, f.rel].filter(Boolean).join('/');
        if (f.rel.split('/').some((p) => p.startsWith('.'))) continue;
        if (!IMAGE_EXT.test(f.rel)) {
          skipped.push({ file: rel, reason: 'not a .png/.jpg/.jpeg file' });
          continue;
        }
        const st = await stat(join(root, rel)).catch(() => null);
        if (!st) {
          skipped.push({ file: rel, reason: 'unreadable (dangling link?)' });
          continue;
        }
        if (st.size === 0) {
          skipped.push({ file: rel, reason: 'zero-byte file' });
          continue;
        }
        files.push({ rel, cls, pool });
        fp.push(`${rel}:${st.size}:${st.mtimeMs}`);
        n++;
      }
      if (n === 0) {
        throw new DataError(`dataset '${name}': class '${cls}' has no usable images in ${join(dir, cls)}`, {
          context: {
            dataset: name,
            class: cls,
            skipped: skipped.filter((s) => s.file.startsWith([sub, cls].filter(Boolean).join('/') + '/')).length,
          },
          fix: `add PNG/JPEG images to ${join(dir, cls)} or remove the folder`,
        });
      }
    }
  }
  if (!classNames || classNames.length < 2) {
    throw new DataError(`dataset '${name}': needs at least 2 class sub-folders, found ${classNames?.length ?? 0}`, {
      context: { dataset: name, classes: classNames ?? [] },
      fix: 'put each class in its own sub-folder: <dir>/<class>/*.png',
    });
  }
  return fileDataset({ name, root, files, skipped, fingerprint: hashString(fp.join('|')).toString(16) });
}
