/** The per-layer error finding on hand-made report data: last-layer error, first layer past the level, largest jump. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CellRow, LayerErr, ReportData } from '../../src/study/report-data.js';
import { layerErrorFindings } from '../../src/study/results-layers.js';

const cell = (key: string, score: string, sparsity: number): CellRow => ({
  key,
  study: 's',
  protocol: 'p',
  model: 'm',
  control: 'none',
  score,
  sparsity,
  source: 'src',
  seed: 0,
  achieved: sparsity,
  wallS: 1,
  info: {},
  allocation: 'global',
  bn: 'none',
  calibration: 8,
  calibData: 'source',
});
const errs = (c: CellRow, values: number[]): LayerErr[] =>
  values.map((e, ord) => ({
    cell: c.key,
    score: c.score,
    control: 'none',
    sparsity: c.sparsity,
    source: c.source,
    allocation: 'global',
    bn: 'none',
    calibration: 8,
    calibData: 'source',
    tensor: `l${ord}`,
    ord,
    relError: e,
  }));

test('layer errors: the best and worst configuration per sparsity, where each first reaches the level, the largest jump', () => {
  const a = cell('a', 'magnitude', 0.5);
  const b = cell('b', 'sparsegpt', 0.5);
  const d = {
    cells: [a, b],
    layerErrors: [...errs(a, [0.01, 0.02, 0.2, 0.5]), ...errs(b, [0.001, 0.004, 0.006, 0.05])],
  } as unknown as ReportData;
  const [f] = layerErrorFindings(d);
  assert.equal(f!.id, 'layer-errors');
  assert.deepEqual(f!.sentences, [
    'At 50% sparsity the relative output error at the last pruned layer ranges from 0.050 (sparsegpt) to 0.500 (magnitude); ' +
      'with sparsegpt it stays below 0.1 (max 0.050), with magnitude it first reaches 0.1 at l2 (layer 3 of 4).',
  ]);
  assert.deepEqual(f!.table!.rows, [
    ['sparsegpt', '50%', '0.050', 'never (max 0.050)', 'l3 (4/4), ×8.3'],
    ['magnitude', '50%', '0.500', 'l2 (3/4)', 'l2 (3/4), ×10.0'],
  ]);
  assert.deepEqual(
    layerErrorFindings({ cells: [a], layerErrors: [] } as unknown as ReportData),
    [],
    'no stored errors, no finding',
  );
});
