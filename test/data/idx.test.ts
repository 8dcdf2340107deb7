import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseIdx } from '../../src/data/idx.js';
import { DataError } from '../../src/data/errors.js';

function idx(dims: number[], data: number[]): Uint8Array {
  const b = new Uint8Array(4 + 4 * dims.length + data.length);
  const v = new DataView(b.buffer);
  b[2] = 0x08;
  b[3] = dims.length;
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d, false));
  b.set(data, 4 + 4 * dims.length);
  return b;
}

test('parseIdx reads dims big-endian and the uint8 payload', () => {
  const a = parseIdx(idx([2, 2, 3], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255]), 'x');
  assert.deepEqual(a.dims, [2, 2, 3]);
  assert.deepEqual(Array.from(a.data), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255]);
});

test('parseIdx rejects bad magic, wrong element type and truncated files, naming the file', () => {
  assert.throws(
    () => parseIdx(new Uint8Array([1, 0, 8, 1, 0, 0, 0, 1, 0]), 'bad.idx'),
    (e: unknown) => e instanceof DataError && /bad\.idx.*magic/.test(e.message),
  );
  const f = idx([2], [1, 2]);
  f[2] = 0x0d;
  assert.throws(() => parseIdx(f, 'f.idx'), /f\.idx: IDX element type 0xd/);
  assert.throws(
    () => parseIdx(idx([3], [1, 2]), 'short.idx'),
    /short\.idx: IDX header says 3 bytes of data, file has 2/,
  );
});
