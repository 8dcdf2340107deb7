/** sklearn's 8x8 digits (1,797 images, pixels 0..16), from the Debian python3-sklearn .deb. */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { AssetMissingError, DataError } from '../errors.js';
import { hashString } from '../rng.js';
import { decodeImage } from '../decode.js';
import type { Dataset, Example } from '../dataset.js';
import { ASSETS } from '../paths.js';

export async function openDigits(): Promise<Dataset> {
  const path = ASSETS.digits.path();
  if (!existsSync(path)) throw new AssetMissingError('digits', path, ASSETS.digits.install);
  const raw = await readFile(path);
  const text = gunzipSync(new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength)).toString('utf8');
  const rows = text.split('\n').filter((l) => l.trim() !== '');
  const pixels = new Uint8Array(rows.length * 64);
  const examples: Example[] = [];
  rows.forEach((row, r) => {
    const v = row.split(',').map(Number);
    if (v.length !== 65 || v.some((x) => !Number.isInteger(x) || x < 0 || x > 16) || v[64]! > 9) {
      throw new DataError(`${path}: row ${r + 1} is not 64 pixels in 0..16 and a label`, {
        context: { dataset: 'digits', file: path, row: r + 1 },
        fix: `delete the file and reinstall: ${ASSETS.digits.install}`,
      });
    }
    // 0..16 → 0..255 so the digits share the byte scale of every other dataset.
    for (let j = 0; j < 64; j++) pixels[r * 64 + j] = Math.round((v[j]! * 255) / 16);
    examples.push({ key: `train/${r}`, label: v[64]!, pool: 'train' });
  });
  return {
    name: 'digits',
    root: path,
    classes: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    examples,
    officialTest: false,
    fingerprint: hashString(text).toString(16),
    skipped: [],
    decode(ex, size) {
      const r = Number(ex.key.slice(6));
      return decodeImage({ data: pixels.subarray(r * 64, r * 64 + 64), width: 8, height: 8 }, size);
    },
  };
}
