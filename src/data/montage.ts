/**
 * A contact sheet of a split for checking by eye: one row per class (class name on the left), the first
 * `perClass` images of that class in split order.
 */
import sharp from 'sharp';
import { resolve } from 'node:path';
import { DataError } from './errors.js';
import type { ImageSet } from './load.js';
import { writeFileAtomic } from '../engine/index.js';

export interface MontageOptions {
  /** Images per class row (default 8). */
  perClass?: number;
  /** Width of the class-name column in pixels (default: fits the longest name; 0 hides names). */
  labelWidth?: number;
}

/** Writes a PNG montage of `set` to `out` atomically; returns its pixel size and the images shown. */
export async function writeMontage(
  set: ImageSet,
  out: string,
  o: MontageOptions = {},
): Promise<{ width: number; height: number; shown: number }> {
  const per = o.perClass ?? 8;
  if (!Number.isInteger(per) || per < 1)
    throw new DataError(`montage: perClass must be a positive integer, got ${per}`, { context: { perClass: per } });
  if (set.n === 0)
    throw new DataError(`montage: ${set.task}/${set.split} has no images`, {
      context: { task: set.task, split: set.split },
    });
  const [h, w] = set.size;
  const gap = 2;
  const rows = set.classes.length;
  const fontPx = Math.max(9, Math.min(14, h - 2));
  const names = set.classes.map((c, r) => `${r}: ${c}`.slice(0, 24));
  // DejaVu Sans averages ~0.62 em per character.
  const lw = o.labelWidth ?? Math.ceil(8 + 0.62 * fontPx * Math.max(...names.map((n) => n.length)));
  const W = lw + per * (w + gap) + gap;
  const H = rows * (h + gap) + gap;
  const canvas = Buffer.alloc(W * H * 3, 255);
  const hw = h * w;
  const used = new Array<number>(rows).fill(0);
  let shown = 0;
  for (let i = 0; i < set.n; i++) {
    const r = set.labels[i]!;
    const col = used[r]!;
    if (col >= per) continue;
    used[r] = col + 1;
    shown++;
    const img = set.images.subarray(i * 3 * hw, (i + 1) * 3 * hw);
    const x0 = lw + gap + col * (w + gap);
    const y0 = gap + r * (h + gap);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const o3 = ((y0 + y) * W + x0 + x) * 3;
        canvas[o3] = img[y * w + x]!;
        canvas[o3 + 1] = img[hw + y * w + x]!;
        canvas[o3 + 2] = img[2 * hw + y * w + x]!;
      }
    }
  }
  let image = sharp(canvas, { raw: { width: W, height: H, channels: 3 } });
  if (lw > 0) {
    const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
    const texts = names.map(
      (n, r) =>
        `<text x="4" y="${gap + r * (h + gap) + h / 2 + fontPx / 3}" font-family="DejaVu Sans, sans-serif" font-size="${fontPx}">${esc(n)}</text>`,
    );
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${texts.join('')}</svg>`;
    image = image.composite([{ input: Buffer.from(svg), top: 0, left: 0 }]);
  }
  const path = resolve(out);
  await writeFileAtomic(path, async (tmp) => {
    await image.png().toFile(tmp);
  });
  return { width: W, height: H, shown };
}
