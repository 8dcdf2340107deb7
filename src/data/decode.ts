/**
 * Image decoding and resizing with sharp, to 3-channel CHW uint8 at the target size. Pixels stay uint8 until a
 * batch is built, so the cache is 4x smaller than float32 and one cached resolution serves any value range.
 */
import sharp from 'sharp';

/** [height, width] in pixels. */
export type Size = readonly [number, number];

/** Raw gray pixels (IDX and CSV datasets). */
export interface GrayImage {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
}

const WHITE = { r: 255, g: 255, b: 255, alpha: 1 };

/**
 * Decodes a PNG/JPEG file (or raw gray pixels) to `[3, h, w]` uint8, row-major.
 * Alpha is composited on white (clip-art and emoji are drawn on transparency); non-square images are
 * letterboxed on white so nothing is cropped or stretched; gray is replicated to three channels.
 * Throws sharp's error for unreadable files; callers decide whether to skip.
 */
export async function decodeImage(src: string | GrayImage, size: Size): Promise<Uint8Array> {
  const [h, w] = size;
  const img =
    typeof src === 'string'
      ? sharp(src, { limitInputPixels: false, failOn: 'error' })
      : sharp(src.data, { raw: { width: src.width, height: src.height, channels: 1 } });
  const { data, info } = await img
    .flatten({ background: WHITE })
    .resize({ width: w, height: h, fit: 'contain', background: WHITE })
    .removeAlpha()
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  return toChw(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), info.width, info.height, info.channels);
}

/** HWC with 1–4 channels → CHW with exactly 3 (gray replicated, alpha dropped). */
export function toChw(hwc: Uint8Array, width: number, height: number, channels: number): Uint8Array {
  const hw = width * height;
  const out = new Uint8Array(3 * hw);
  if (channels === 1 || channels === 2) {
    for (let i = 0; i < hw; i++) {
      const v = hwc[i * channels]!;
      out[i] = v;
      out[hw + i] = v;
      out[2 * hw + i] = v;
    }
  } else {
    for (let i = 0; i < hw; i++) {
      out[i] = hwc[i * channels]!;
      out[hw + i] = hwc[i * channels + 1]!;
      out[2 * hw + i] = hwc[i * channels + 2]!;
    }
  }
  return out;
}
