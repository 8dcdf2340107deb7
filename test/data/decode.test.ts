import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import sharp from 'sharp';
import { decodeImage, toChw } from '../../src/data/decode.js';
import { tempDir } from './env.js';

const ORANGE = [200, 100, 50];
const solid = () =>
  sharp(
    Uint8Array.from({ length: 8 * 8 * 3 }, (_, i) => ORANGE[i % 3]!),
    { raw: { width: 8, height: 8, channels: 3 } },
  );

test('decodeImage: 8-bit, 16-bit, palette and CMYK files all come out as 3-channel uint8 CHW', async () => {
  const dir = tempDir();
  const files: [string, sharp.Sharp, number][] = [
    ['rgb.png', solid().png(), 0],
    ['rgb16.png', solid().toColourspace('rgb16').png(), 0],
    ['pal.png', solid().png({ palette: true }), 0],
    ['cmyk.jpg', solid().toColourspace('cmyk').jpeg({ quality: 100 }), 20], // CMYK → sRGB without an ICC profile is approximate
  ];
  for (const [name, img, tol] of files) {
    await img.toFile(join(dir, name));
    const d = await decodeImage(join(dir, name), [4, 6]);
    assert.equal(d.length, 3 * 4 * 6, name);
    // Square source letterboxed into 4x6: the middle column is image, not background.
    for (let c = 0; c < 3; c++)
      assert.ok(Math.abs(d[c * 24 + 2 * 6 + 3]! - ORANGE[c]!) <= tol, `${name} channel ${c}: ${d[c * 24 + 15]}`);
  }
});

test('decodeImage: half-transparent gray over white; gray input replicated to RGB', async () => {
  const dir = tempDir();
  const ga = Uint8Array.from({ length: 8 * 8 * 2 }, (_, i) => (i % 2 ? 128 : 77));
  await sharp(ga, { raw: { width: 8, height: 8, channels: 2 } })
    .png()
    .toFile(join(dir, 'ga.png'));
  const d = await decodeImage(join(dir, 'ga.png'), [8, 8]);
  const want = Math.round(77 * (128 / 255) + 255 * (1 - 128 / 255));
  for (const c of [0, 64, 128]) assert.ok(Math.abs(d[c]! - want) <= 1, `${d[c]} vs ${want}`);
  const g = await decodeImage({ data: Uint8Array.from({ length: 4 }, (_, i) => i * 80), width: 2, height: 2 }, [2, 2]);
  assert.deepEqual(Array.from(g), [0, 80, 160, 240, 0, 80, 160, 240, 0, 80, 160, 240]);
  await assert.rejects(decodeImage(join(dir, 'missing.png'), [4, 4]));
});

test('toChw: HWC RGB and RGBA to planar RGB', () => {
  assert.deepEqual(Array.from(toChw(Uint8Array.from([1, 2, 3, 4, 5, 6]), 2, 1, 3)), [1, 4, 2, 5, 3, 6]);
  assert.deepEqual(Array.from(toChw(Uint8Array.from([1, 2, 3, 9, 4, 5, 6, 9]), 2, 1, 4)), [1, 4, 2, 5, 3, 6]);
});
