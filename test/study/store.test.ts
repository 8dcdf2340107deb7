import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randn } from '../../src/engine/index.js';
import { GraphBuilder } from '../../src/graph/index.js';
import { efficiency, layerTable, maskIoU, StudyStore, type CellRecord } from '../../src/study/index.js';
import { packBits } from '../../src/graph/index.js';

const cell = (key: string): CellRecord => ({
  key,
  study: 's',
  protocol: 'p',
  model: 'm',
  control: 'none',
  score: 'magnitude',
  scoreSpec: { name: 'magnitude' },
  sparsity: 0.5,
  source: 'a',
  seed: 0,
  achievedSparsity: 0.5,
  info: {},
  wallS: 1,
});

test('a cell is committed in one transaction: a failing write leaves nothing behind', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tapir-store-'));
  try {
    const s = new StudyStore(join(dir, 'r.sqlite'));
    s.writeCell(
      cell('c1'),
      [{ task: 'a', phase: 'zero-shot', head: 'dense', accuracy: 0.5, nTrain: 1, nTest: 1 }],
      [{ tensor: 'w', numel: 8, kept: 4 }],
      new Map([['w', new Uint8Array([15])]]),
    );
    // The duplicate (cell, task, phase, head) violates the primary key after the cell row and one result were written.
    const row = { task: 'a', phase: 'zero-shot', head: 'dense', accuracy: 0.5, nTrain: 1, nTest: 1 };
    assert.throws(() => s.writeCell(cell('c2'), [row, row], [], new Map()), /UNIQUE/);
    assert.deepEqual([...s.doneKeys()], ['c1']);
    assert.equal(s.all<{ n: number }>('SELECT COUNT(*) AS n FROM results')[0]!.n, 1);
    // Writing a finished cell again is refused, not duplicated.
    assert.throws(() => s.writeCell(cell('c1'), [], [], new Map()), /UNIQUE|PRIMARY/);
    s.close();
    const ro = new StudyStore(join(dir, 'r.sqlite'), { readonly: true });
    assert.equal(ro.all<{ journal_mode: string }>('PRAGMA journal_mode')[0]!.journal_mode, 'wal');
    ro.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a missing database is a clear error in read-only mode', () => {
  assert.throws(
    () => new StudyStore('/nonexistent/dir/r.sqlite', { readonly: true }),
    /results database \/nonexistent\/dir\/r.sqlite does not exist/,
  );
});

test('packed masks and IoU agree with brute force', () => {
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (const n of [1, 7, 8, 9, 100, 1001]) {
    const a = Array.from({ length: n }, () => (rnd() < 0.4 ? 1 : 0));
    const b = Array.from({ length: n }, () => (rnd() < 0.6 ? 1 : 0));
    let inter = 0;
    let union = 0;
    for (let i = 0; i < n; i++) {
      inter += a[i]! & b[i]!;
      union += a[i]! | b[i]!;
    }
    assert.deepEqual(maskIoU(packBits(a), packBits(b)), { inter, union });
    const pa = packBits(a);
    for (let i = 0; i < n; i++) assert.equal((pa[i >> 3]! >> (i & 7)) & 1, a[i]);
  }
  assert.throws(() => maskIoU(new Uint8Array(2), new Uint8Array(3)), /differ in length/);
});

test('layer MACs from the IR at the model resolution, and the efficiency totals, match hand counts', () => {
  const b = new GraphBuilder();
  b.param('c1.weight', randn([4, 3, 3, 3]), 'weight');
  b.param('dw.weight', randn([4, 1, 3, 3]), 'weight');
  b.param('fc.weight', randn([2, 4]), 'weight');
  b.param('fc.bias', randn([2]), 'bias');
  let h = b.op('conv2d', ['x', 'c1.weight'], { padding: 1, stride: 2 }, 'c1');
  h = b.op('conv2d', [h, 'dw.weight'], { padding: 1, groups: 4 }, 'dw');
  const f = b.op('flatten', [b.op('globalavgpool', [h])]);
  const out = b.op('linear', [f, 'fc.weight', 'fc.bias'], {}, 'fc');
  const g = b.build({
    name: 't',
    inputs: [{ name: 'x', shape: [null, 3, 8, 8] }],
    outputs: [out],
    featureTap: f,
    preprocessing: { size: [8, 8], range: [0, 1] },
  });
  const layers = layerTable(g);
  const macs = Object.fromEntries(layers.map((l) => [l.tensor, l.macs]));
  // 8×8 input, stride 2 → 4×4 output: each output element costs 3·3·3 MACs; depthwise: 1·3·3 per element; fc: 4 per logit.
  assert.deepEqual(macs, { 'c1.weight': 4 * 16 * 27, 'dw.weight': 4 * 16 * 9, 'fc.weight': 2 * 4, 'fc.bias': 0 });
  const e = efficiency(layers, [
    { tensor: 'c1.weight', numel: 108, kept: 27 },
    { tensor: 'dw.weight', numel: 36, kept: 36 },
  ]);
  assert.equal(e.parameters, 108 + 36 + 8 + 2);
  assert.equal(e.nonzero, 27 + 36 + 8 + 2);
  assert.equal(e.denseBytes, 4 * 154);
  assert.equal(e.bitmaskBytes, Math.ceil(108 / 8) + 4 * 27 + (Math.ceil(36 / 8) + 4 * 36) + 4 * 10);
  assert.equal(e.csrBytes, 8 * 27 + 4 * 5 + (8 * 36 + 4 * 5) + 4 * 10);
  assert.equal(e.denseMacs, 1728 + 576 + 8);
  assert.equal(e.sparseMacs, 1728 / 4 + 576 + 8);
});
