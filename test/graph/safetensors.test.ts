import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tensor, zeros, liveTensors, TapirError } from '../../src/engine/index.js';
import {
  encodeSafetensors,
  loadStateDict,
  parseSafetensors,
  readSafetensors,
  writeSafetensors,
  SafetensorsError,
  bfloat16ToFloat32,
  halfToFloat32,
} from '../../src/graph/safetensors.js';
import type { Graph } from '../../src/graph/ir.js';

/** Builds a file by hand: header JSON as given, then `data` bytes. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), lenOverride?: bigint): Uint8Array {
  const h = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lenOverride ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

test('safetensors: write then read round-trips every engine dtype and the metadata', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tapir-st-'));
  try {
    const path = join(dir, 'a.safetensors');
    const ts = {
      f32: tensor([
        [1.5, -2],
        [3, 4.25],
      ]),
      f64: tensor(new Float64Array([Math.PI, -1e-300]), [2]),
      i64: tensor(new BigInt64Array([-(2n ** 40n), 7n]), [2]),
      u8: tensor(new Uint8Array([0, 255, 3]), [3]),
      b: tensor(new Uint8Array([1, 0, 1]), [3], { dtype: 'bool' }),
    };
    await writeSafetensors(path, ts, { tool: 'tapir', seed: '3' });
    assert.deepEqual((await readdir(dir)).sort(), ['a.safetensors'], 'no temp file left behind');
    const bytes = await readFile(path);
    const hlen = Number(bytes.readBigUInt64LE(0));
    assert.equal((8 + hlen) % 8, 0, 'data region is 8-byte aligned');
    const st = await readSafetensors(path);
    assert.deepEqual(st.metadata, { tool: 'tapir', seed: '3' });
    assert.deepEqual([...st.entries.keys()], Object.keys(ts));
    for (const [k, t] of Object.entries(ts)) {
      const r = st.tensor(k);
      assert.equal(r.dtype, t.dtype, k);
      assert.deepEqual(r.shape, t.shape, k);
      assert.deepEqual(r.toArray(), t.toArray(), k);
    }
  } finally {
    await rm(dir, { recursive: true });
  }
});

test('safetensors: F16 and BF16 widen to float32 exactly', () => {
  const half = new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x3555]);
  const bf = new Uint16Array([0x3f80, 0xc040, 0x0000]);
  const data = new Uint8Array(half.byteLength + bf.byteLength);
  data.set(new Uint8Array(half.buffer), 0);
  data.set(new Uint8Array(bf.buffer), half.byteLength);
  const st = parseSafetensors(
    rawFile(
      {
        h: { dtype: 'F16', shape: [6], data_offsets: [0, 12] },
        b: { dtype: 'BF16', shape: [3], data_offsets: [12, 18] },
      },
      data,
    ),
  );
  assert.deepEqual(st.tensor('h').toArray(), [1, -2, 65504, 2 ** -24, Infinity, Math.fround(0.333251953125)]);
  assert.deepEqual(st.tensor('b').toArray(), [1, -3, 0]);
});

test('half-precision widening handles 1.1e8 values (Float32Array.from with a map aborts V8 near 1e8)', () => {
  const n = 110_000_000;
  const src = new Uint16Array(n);
  src[0] = 0x3c00; // 1 in F16; as BF16 (0x3c000000) it is 2^-7 = 0.0078125
  src[n - 1] = 0xc000; // -2 in F16; -2 in BF16 is 0xc000 too
  const h = halfToFloat32(src);
  assert.equal(h.length, n);
  assert.deepEqual([h[0], h[1], h[n - 1]], [1, 0, -2]);
  const b = bfloat16ToFloat32(src);
  assert.equal(b.length, n);
  assert.deepEqual([b[0], b[1], b[n - 1]], [0.0078125, 0, -2]);
});

test('safetensors: bad files are clear errors before any large allocation', () => {
  const ok = { w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const cases: [string, Uint8Array, RegExp][] = [
    [
      'header longer than file',
      rawFile(ok, new Uint8Array(8), 10_000n),
      /header claims 10000 bytes but the file has only/,
    ],
    ['absurd header length', rawFile(ok, new Uint8Array(8), 2n ** 62n), /header length \d+ bytes is absurd/],
    ['fewer than 8 bytes', new Uint8Array([1, 2, 3]), /fewer than the 8-byte header length/],
    [
      'unknown dtype',
      rawFile({ w: { dtype: 'F128', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /tensor 'w': unknown dtype "F128"/,
    ],
    [
      'offsets past end',
      rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8)),
      /outside the data region of 8 bytes/,
    ],
    [
      'shape/span mismatch',
      rawFile({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /needs 12 bytes but data_offsets span 8/,
    ],
    [
      'garbled JSON',
      (() => {
        const f = rawFile(ok, new Uint8Array(8));
        f[9] = 0xff;
        return f;
      })(),
      /not valid UTF-8 JSON/,
    ],
    [
      'negative shape',
      rawFile({ w: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /non-negative integers/,
    ],
    ['bad metadata', rawFile({ __metadata__: { a: 1 } }), /__metadata__\.a must be a string/],
  ];
  for (const [what, bytes, re] of cases) {
    assert.throws(
      () => parseSafetensors(bytes, 'x.safetensors'),
      (e: unknown) => {
        assert.ok(e instanceof SafetensorsError, `${what}: ${String(e)}`);
        assert.match((e as Error).message, re, what);
        assert.match((e as Error).message, /^x\.safetensors: /, `${what} names the file`);
        return true;
      },
    );
  }
});

test('safetensors: readSafetensors rejects a truncated file on disk', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tapir-st-'));
  try {
    const full = encodeSafetensors({ w: tensor([1, 2, 3, 4]) });
    const path = join(dir, 't.safetensors');
    await writeFile(path, full.subarray(0, 20));
    await assert.rejects(readSafetensors(path), /header claims \d+ bytes but the file has only 12/);
    await writeFile(path, full.subarray(0, full.length - 4));
    await assert.rejects(
      readSafetensors(path),
      /tensor 'w': data_offsets \[0, 16\] lie outside the data region of 12 bytes/,
    );
    await assert.rejects(readSafetensors(join(dir, 'nope')), /cannot open safetensors file/);
  } finally {
    await rm(dir, { recursive: true });
  }
});

function tinyGraph(): Graph {
  const p = (name: string, shape: number[]) => ({
    name,
    tensor: zeros(shape),
    role: 'weight' as const,
    trainable: true,
    prunable: true,
  });
  return {
    name: 'tiny',
    inputs: [{ name: 'x', shape: [null, 3] }],
    outputs: ['y'],
    nodes: [],
    params: new Map([
      ['fc.weight', p('fc.weight', [2, 3])],
      ['fc.bias', p('fc.bias', [2])],
    ]),
    constants: new Map(),
    masks: new Map(),
    featureTap: 'x',
    preprocessing: { size: [1, 1], range: [0, 1] },
    meta: {},
  };
}

test('loadStateDict: copies by name, ignores num_batches_tracked, checks shapes naming the tensor', async () => {
  const g = tinyGraph();
  const src = {
    'fc.weight': tensor(new Float64Array([1, 2, 3, 4, 5, 6]), [2, 3]),
    'fc.bias': tensor([7, 8]),
    'bn.num_batches_tracked': tensor(new BigInt64Array([5n]), [1]),
  };
  const st = parseSafetensors(encodeSafetensors(src), 'w.safetensors');
  for (const t of Object.values(src)) t.dispose();
  const before = liveTensors();
  const r = await loadStateDict(g, st);
  assert.deepEqual(r, { loaded: ['fc.weight', 'fc.bias'], missing: [], unexpected: [] });
  assert.deepEqual(g.params.get('fc.weight')!.tensor.toArray(), [1, 2, 3, 4, 5, 6]);
  assert.equal(g.params.get('fc.weight')!.tensor.dtype, 'float32', 'keeps the parameter dtype');
  assert.equal(liveTensors(), before, 'no tensors leaked');

  const wrong = parseSafetensors(
    encodeSafetensors({ 'fc.weight': zeros([3, 2]), 'fc.bias': zeros([2]) }),
    'w.safetensors',
  );
  await assert.rejects(
    loadStateDict(g, wrong),
    /tensor 'fc\.weight' in w\.safetensors has shape \[3, 2\] but model 'tiny' expects \[2, 3\]/,
  );
  assert.deepEqual(g.params.get('fc.weight')!.tensor.toArray(), [1, 2, 3, 4, 5, 6], 'nothing changed on failure');

  const partial = parseSafetensors(
    encodeSafetensors({ 'fc.bias': tensor([0, 0]), extra: zeros([1]) }),
    'p.safetensors',
  );
  await assert.rejects(
    loadStateDict(g, partial),
    (e: unknown) => e instanceof TapirError && /missing: fc\.weight; unexpected: extra/.test(e.message),
  );
  const lax = await loadStateDict(g, partial, { strict: false });
  assert.deepEqual(lax, { loaded: ['fc.bias'], missing: ['fc.weight'], unexpected: ['extra'] });
  assert.deepEqual(g.params.get('fc.bias')!.tensor.toArray(), [0, 0]);
});
