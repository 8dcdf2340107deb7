/**
 * Google emoji (npm `emoji-datasource-google`): 64 px PNGs, class = `category` in emoji.json. Only each
 * emoji's base image is used, so skin-tone variants count once.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AssetMissingError } from '../errors.js';
import { hashString } from '../rng.js';
import type { Dataset, SkippedFile } from '../dataset.js';
import { ASSETS } from '../paths.js';
import { fileDataset } from './files.js';

/** Same rule as clip-art; it drops only `Component` (5 skin-tone and hair swatches, not a category of pictures). */
export const EMOJI_MIN_PER_CLASS = 60;

interface EmojiEntry {
  image: string;
  category: string;
  has_img_google?: boolean;
}

export async function openEmoji(): Promise<Dataset> {
  const root = ASSETS.emoji.path();
  const meta = join(root, 'emoji.json');
  if (!existsSync(meta) || !existsSync(join(root, 'img/google/64')))
    throw new AssetMissingError('emoji', root, ASSETS.emoji.install);
  const entries = JSON.parse(await readFile(meta, 'utf8')) as EmojiEntry[];
  const skipped: SkippedFile[] = [];
  const files: { rel: string; cls: string }[] = [];
  for (const e of entries) {
    if (!e.has_img_google) continue;
    const rel = `img/google/64/${e.image}`;
    if (existsSync(join(root, rel))) files.push({ rel, cls: e.category });
    else skipped.push({ file: rel, reason: 'listed in emoji.json but missing' });
  }
  return fileDataset({
    name: 'emoji',
    root,
    files,
    skipped,
    fingerprint: hashString(files.map((f) => `${f.cls}/${f.rel}`).join('|')).toString(16),
    minPerClass: EMOJI_MIN_PER_CLASS,
  });
}
